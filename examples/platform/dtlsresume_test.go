package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/stretchr/testify/require"
)

// deviceSessions is a pion client's session store, as a device keeps it
// across its sleeps.
type deviceSessions struct {
	mu sync.Mutex
	m  map[string]dtls.Session
}

func (d *deviceSessions) Set(k []byte, s dtls.Session) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[string(k)] = s
	return nil
}

func (d *deviceSessions) Get(k []byte) (dtls.Session, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[string(k)], nil
}

func (d *deviceSessions) Del(k []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, string(k))
	return nil
}

// pionHandshake is a pion/dtls client handshake with the platform offering
// the sessions in ds for resumption; it returns the session ID. The client
// keeps its connection until settled holds, as a device that goes on to
// register would: a close_notify that overtakes the end of the server's
// handshake (under load) fails the handshake on the server's side.
func pionHandshake(t *testing.T, addr, identity string, psk []byte, ds *deviceSessions, settled func() bool) []byte {
	t.Helper()
	ra, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer pc.Close()
	c, err := dtls.ClientWithOptions(pc, ra,
		dtls.WithPSK(func([]byte) ([]byte, error) { return psk, nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithSessionStore(ds))
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.HandshakeContext(ctx), "DTLS handshake with the platform")
	st, ok := c.ConnectionState()
	require.True(t, ok)
	require.Eventually(t, settled, 10*time.Second, 10*time.Millisecond, "the platform counts the handshake")
	return st.SessionID
}

// scrape returns the platform's /metrics text.
func scrape(t *testing.T, tp *testPlatform) string {
	t.Helper()
	admin := httptest.NewServer(tp.AdminHandler())
	defer admin.Close()
	resp, err := http.Get(admin.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// Issue 20 item 9: the platform keeps DTLS sessions in its data directory,
// so a device (a pion/dtls client keeping its session) resumes its session
// with an abbreviated handshake after the platform restarted; the DTLS
// counters are exported without device identifiers in labels.
func TestDTLSResumptionAcrossRestart(t *testing.T) {
	const imei = "868333030000910"
	data, dtlsAddr := t.TempDir(), freeUDPAddr(t)
	same := func(c *Config) { c.DataDir, c.DTLSAddr = data, dtlsAddr }
	tp := startPlatform(t, same)
	_, psk := registerDevice(t, tp, imei)
	ds := &deviceSessions{m: map[string]dtls.Session{}}

	first := pionHandshake(t, dtlsAddr, "urn:imei:"+imei, psk, ds, func() bool { return tp.lwm.DTLSStats().HandshakesFull == 1 })
	require.NotEmpty(t, first, "the platform offers a session ID")
	body := scrape(t, tp)
	require.Contains(t, body, `doze_dtls_handshakes_total{kind="full"} 1`)
	require.Contains(t, body, `doze_dtls_handshakes_total{kind="resumed"} 0`)
	require.Contains(t, body, "doze_dtls_cookies_sent_total 1", "one stateless HelloVerifyRequest")
	for _, want := range []string{`doze_dtls_hellos_unanswered_total{outcome="shed"} 0`,
		`doze_dtls_handshake_failures_total{reason="bad_key"} 0`, "doze_dtls_handshakes_in_flight 0", "doze_lwm2m_parked_sessions 0"} {
		require.Contains(t, body, want)
	}
	tp.stop()

	tp = startPlatform(t, same)
	again := pionHandshake(t, dtlsAddr, "urn:imei:"+imei, psk, ds, func() bool { return tp.lwm.DTLSStats().HandshakesResumed == 1 })
	require.Equal(t, first, again, "the same session, resumed after the restart")
	body = scrape(t, tp)
	require.Contains(t, body, `doze_dtls_handshakes_total{kind="resumed"} 1`, "the resumed handshake is counted")
	require.Contains(t, body, `doze_dtls_handshakes_total{kind="full"} 0`)
	require.NotContains(t, body, imei, "no device identifiers in labels")
	require.False(t, strings.Contains(body, "127.0.0.1"), "no addresses in labels")
}
