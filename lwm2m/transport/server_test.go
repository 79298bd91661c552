package transport

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func keys(ids ...string) *MemoryKeyStore {
	k := NewMemoryKeyStore()
	for _, id := range ids {
		k.Set(id, testKey)
	}
	return k
}

// LWM-1, LWM-3: a device registers over DTLS with each PSK cipher suite.
func TestRegisterDTLSEachCipherSuite(t *testing.T) {
	for _, cs := range []CipherSuite{TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CBC_SHA256} {
		t.Run(codeName(cs), func(t *testing.T) {
			s, rec := startServer(t, Config{CipherSuites: []CipherSuite{cs}}, keys("868333030000001"))
			c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "urn:imei:868333030000001", Key: testKey, Lifetime: 300e9})
			c.Handle("/3/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: []byte("Doze")}, nil }})
			require.NoError(t, c.Connect(ctxT(t)))
			require.NoError(t, c.Register(ctxT(t)))
			e := rec.wait(t, EventRegistered, "868333030000001", 1)
			require.True(t, e.Registration.Secure)
			require.Equal(t, "/rd/"+e.Registration.ID, c.Location())
			require.Equal(t, "</3/0>", e.Registration.Links)
			got, err := s.Read(ctxT(t), "868333030000001", "/3/0/0", cfNone)
			require.NoError(t, err)
			require.Equal(t, "Doze", string(got.Payload))
		})
	}
}

func codeName(cs CipherSuite) string {
	if cs == TLS_PSK_WITH_AES_128_CCM_8 {
		return "CCM_8"
	}
	return "CBC_SHA256"
}

// LWM-1: a wrong key or an unknown identity fails the handshake with a
// fatal decrypt_error alert (SEC-4); the same client with the right
// identity and key connects.
func TestDTLSWrongKeyAndUnknownIdentity(t *testing.T) {
	s, _ := startServer(t, Config{HandshakeTimeout: 3e9}, keys("dev1"))
	bad := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "dev1", Key: []byte("wrong-key-123456"), HandshakeTimeout: 3e9})
	err := bad.Connect(ctxT(t))
	require.Error(t, err, "handshake with a wrong key must fail")
	require.Contains(t, err.Error(), "Alert Fatal: DecryptError", "handshake with a wrong key")
	unknown := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "nobody", Key: testKey, HandshakeTimeout: 3e9})
	err = unknown.Connect(ctxT(t))
	require.Error(t, err, "handshake with an unknown identity must fail")
	require.Contains(t, err.Error(), "Alert Fatal: DecryptError", "handshake with an unknown identity")
	require.Empty(t, s.Registrations())
	good := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "dev1", Key: testKey, HandshakeTimeout: 3e9})
	require.NoError(t, good.Connect(ctxT(t)), "the right identity and key")
}

// LWM-1: a device may not register (LwM2M /rd or TUP /t/r) under another
// endpoint than its PSK identity; "urn:imei:X" and "X" are the same (LWM-2).
func TestRegisterWrongEndpointForbidden(t *testing.T) {
	s, _ := startServer(t, Config{}, keys("868333030000001"))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "868333030000002", Identity: "868333030000001", Key: testKey})
	require.NoError(t, c.Connect(ctxT(t)))
	err := c.Register(ctxT(t))
	var re *ResponseError
	require.True(t, errors.As(err, &re), "Register under another endpoint: got %v, want a 4.03 ResponseError", err)
	require.Equal(t, CodeForbidden, re.Code)
	require.Empty(t, s.Registrations())

	// the same rule for TUP's /t/r
	tup := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "868333030000002", Identity: "868333030000001", Key: testKey, TUP: true})
	require.NoError(t, tup.Connect(ctxT(t)))
	err = tup.Register(ctxT(t))
	require.True(t, errors.As(err, &re), "TUP register under another endpoint: got %v, want a 4.03 ResponseError", err)
	require.Equal(t, CodeForbidden, re.Code)
	require.Empty(t, s.Registrations())

	ok := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "urn:imei:868333030000001", Identity: "868333030000001", Key: testKey})
	require.NoError(t, ok.Connect(ctxT(t)))
	require.NoError(t, ok.Register(ctxT(t)), "urn:imei:X under identity X")
}

// LWM-1: a device offering only a suite the server does not allow fails the
// handshake with a fatal alert; the same device offering the allowed
// suite connects.
func TestDTLSCipherSuiteMismatch(t *testing.T) {
	s, _ := startServer(t, Config{CipherSuites: []CipherSuite{TLS_PSK_WITH_AES_128_CCM_8}, HandshakeTimeout: 3e9}, keys("dev1"))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "dev1", Key: testKey,
		CipherSuites: []CipherSuite{TLS_PSK_WITH_AES_128_CBC_SHA256}, HandshakeTimeout: 3e9})
	err := c.Connect(ctxT(t))
	require.Error(t, err)
	require.Contains(t, err.Error(), "Alert Fatal", "refused with an alert, not a timeout")
	ok := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "dev1", Key: testKey,
		CipherSuites: []CipherSuite{TLS_PSK_WITH_AES_128_CCM_8}, HandshakeTimeout: 3e9})
	require.NoError(t, ok.Connect(ctxT(t)), "the allowed suite")
}

// Limits over DTLS: a session beyond MaxSessions is answered 5.03 and
// registers nothing.
func TestDTLSSessionCap(t *testing.T) {
	s, _ := startServer(t, Config{MaxSessions: 1}, keys("a", "b"))
	a := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "a", Key: testKey})
	require.NoError(t, a.Connect(ctxT(t)))
	require.NoError(t, a.Register(ctxT(t)))
	b := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "b", Key: testKey})
	require.NoError(t, b.Connect(ctxT(t)))
	var re *ResponseError
	require.ErrorAs(t, b.Register(ctxT(t)), &re)
	require.Equal(t, CodeServiceUnavailable, re.Code)
	_, ok := s.Registration("b")
	require.False(t, ok)
}

// Config errors name the field and what is allowed.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{DisableUDP: true, DisableDTLS: true}, "DisableUDP/DisableDTLS"},
		{Config{UDPAddr: "no-port"}, "UDPAddr"},
		{Config{CipherSuites: []CipherSuite{0xC02B}}, "CipherSuites"},
		{Config{MaxMessageSize: 10}, "MaxMessageSize"},
	} {
		_, err := New(tc.cfg, NewMemoryKeyStore(), nil)
		var ce *ConfigError
		require.ErrorAs(t, err, &ce, "%+v", tc.cfg)
		require.Equal(t, tc.field, ce.Field)
		require.ErrorIs(t, err, ErrConfig)
	}
	_, err := New(Config{}, nil, nil)
	require.ErrorIs(t, err, ErrConfig, "DTLS without a KeyStore")
}

// A device over MaxSessions whose 5.03 is lost gets it again when it
// retransmits its Register: the refused session is kept for overCapGrace
// and answers from the duplicate cache (before, the session ended at once
// and the retransmission reached nothing; the Register timed out).
func TestDTLSSessionCapAnswerLost(t *testing.T) {
	s, _ := startServer(t, Config{MaxSessions: 1}, keys("a", "b"))
	a := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "a", Key: testKey})
	require.NoError(t, a.Connect(ctxT(t)))
	require.NoError(t, a.Register(ctxT(t)))

	proxy := newDropFirstAppData(t, s.DTLSAddr().String())
	b := newClient(t, ClientConfig{Server: proxy.addr(), Endpoint: "b", Key: testKey,
		Transmission: Transmission{AckTimeout: 500 * time.Millisecond}})
	require.NoError(t, b.Connect(ctxT(t)))
	var re *ResponseError
	require.ErrorAs(t, b.Register(ctxT(t)), &re)
	require.Equal(t, CodeServiceUnavailable, re.Code)
	require.True(t, proxy.dropped.Load(), "the first answer was lost on the way")
}

// dropFirstAppData is a UDP relay for one client that drops the server's
// first DTLS application-data record (content type 23).
type dropFirstAppData struct {
	ln, up  *net.UDPConn
	dropped atomic.Bool
}

func newDropFirstAppData(t *testing.T, server string) *dropFirstAppData {
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	sa, err := net.ResolveUDPAddr("udp", server)
	require.NoError(t, err)
	up, err := net.DialUDP("udp", nil, sa)
	require.NoError(t, err)
	p := &dropFirstAppData{ln: ln, up: up}
	var client atomic.Pointer[net.UDPAddr]
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := ln.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(from)
			_, _ = up.Write(buf[:n])
		}
	})
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			if n > 0 && buf[0] == 23 && p.dropped.CompareAndSwap(false, true) {
				continue
			}
			if c := client.Load(); c != nil {
				_, _ = ln.WriteToUDP(buf[:n], c)
			}
		}
	})
	t.Cleanup(func() { ln.Close(); up.Close(); wg.Wait() })
	return p
}

func (p *dropFirstAppData) addr() string { return p.ln.LocalAddr().String() }
