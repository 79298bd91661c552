package transport

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/stretchr/testify/require"
)

// clientSessions is a pion client's session store, as a device keeps it.
type clientSessions struct {
	mu sync.Mutex
	m  map[string]dtls.Session
}

func (c *clientSessions) Set(k []byte, s dtls.Session) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[string(k)] = s
	return nil
}

func (c *clientSessions) Get(k []byte) (dtls.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[string(k)], nil
}

func (c *clientSessions) Del(k []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, string(k))
	return nil
}

// resumeHandshake is a pion client handshake with s offering the session
// in cs; it closes the connection once the server has finished too (in an
// abbreviated handshake the server finishes after the device).
func resumeHandshake(t *testing.T, s *Server, cs *clientSessions, key []byte) *dtls.State {
	t.Helper()
	addr := s.DTLSAddr()
	done := s.DTLSStats().HandshakesCompleted
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer pc.Close()
	c, err := dtls.ClientWithOptions(pc, addr,
		dtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		dtls.WithPSKIdentityHint([]byte("dev1")),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithSessionStore(cs))
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.HandshakeContext(ctx), "handshake")
	st, ok := c.ConnectionState()
	require.True(t, ok)
	eventuallyStats(t, s, func(st DTLSStats) bool { return st.HandshakesCompleted == done+1 })
	return &st
}

// Issue 20.9: a device that kept its session resumes it by ID with an
// abbreviated handshake, also after the server restarted with the same
// durable store; full and abbreviated handshakes are counted apart; a
// session made with a key that changed since is not resumed.
func TestDTLSSessionResumption(t *testing.T) {
	store := NewMemorySessionStore(0)
	ks := keys("dev1")
	s, _ := startServer(t, Config{DisableUDP: true, Sessions: store}, ks)
	cs := &clientSessions{m: map[string]dtls.Session{}}

	first := resumeHandshake(t, s, cs, testKey)
	require.NotEmpty(t, first.SessionID, "the server offers a session ID")
	require.Equal(t, 1, store.Len())
	second := resumeHandshake(t, s, cs, testKey)
	require.Equal(t, first.SessionID, second.SessionID, "the session resumed")
	eventuallyStats(t, s, func(st DTLSStats) bool { return st.HandshakesFull == 1 && st.HandshakesResumed == 1 })

	// A restart with the same store: the device resumes still.
	addr := s.DTLSAddr().String()
	require.NoError(t, s.Close())
	s2, _ := startServer(t, Config{DisableUDP: true, DTLSAddr: addr, Sessions: store}, ks)
	third := resumeHandshake(t, s2, cs, testKey)
	require.Equal(t, first.SessionID, third.SessionID)
	eventuallyStats(t, s2, func(st DTLSStats) bool { return st.HandshakesResumed == 1 })

	// The identity's key changed: a full handshake with the new key.
	newKey := []byte("another-key-0123")
	ks.Set("dev1", newKey)
	fourth := resumeHandshake(t, s2, cs, newKey)
	require.NotEqual(t, first.SessionID, fourth.SessionID, "no resumption with a changed key")
	eventuallyStats(t, s2, func(st DTLSStats) bool { return st.HandshakesFull == 1 && st.HandshakesResumed == 1 })
}

func eventuallyStats(t *testing.T, s *Server, ok func(DTLSStats) bool) {
	t.Helper()
	require.Eventually(t, func() bool { return ok(s.DTLSStats()) }, 5*time.Second, 5*time.Millisecond,
		"DTLSStats: %+v", s.DTLSStats())
}

func TestMemorySessionStore(t *testing.T) {
	s := NewMemorySessionStore(2)
	_, err := s.GetSession([]byte("a"))
	require.ErrorIs(t, err, ErrNotFound)
	for _, k := range []string{"a", "b", "c"} {
		require.NoError(t, s.PutSession([]byte(k), []byte("v"+k)))
	}
	require.Equal(t, 2, s.Len(), "bounded")
	_, err = s.GetSession([]byte("a"))
	require.ErrorIs(t, err, ErrNotFound, "the oldest went first")
	v, err := s.GetSession([]byte("c"))
	require.NoError(t, err)
	require.Equal(t, "vc", string(v))
	require.NoError(t, s.DeleteSession([]byte("c")))
	_, err = s.GetSession([]byte("c"))
	require.ErrorIs(t, err, ErrNotFound)
}
