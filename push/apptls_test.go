package push

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// trust is a Config.TLSConfig whose answers a test changes.
type trust struct {
	mu  sync.Mutex
	cfg map[string]*tls.Config
}

func (tr *trust) get(app string) *tls.Config {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.cfg[app]
}

func (tr *trust) set(app string, c *tls.Config) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.cfg[app] = c
}

// tlsSink is an https server with a self-signed certificate (valid for
// 127.0.0.1, ::1 and example.com) that records the paths it got.
func tlsSink(t *testing.T) (*httptest.Server, chan string, *tls.Config) {
	t.Helper()
	paths := make(chan string, 100)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, paths, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// waitLastError waits until url's endpoint state has a LastError
// containing every one of want.
func waitLastError(t *testing.T, e *Engine, url string, want ...string) string {
	t.Helper()
	var last string
	require.Eventually(t, func() bool {
		s, ok := e.Endpoint(url)
		last = s.LastError
		if !ok {
			return false
		}
		for _, w := range want {
			if !strings.Contains(last, w) {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "endpoint %s: last error %q, want it to say %q", url, last, want)
	return last
}

// TestAppTLSTrust (APP-6): a callback server with a self-signed
// certificate is refused, with a readable error in the endpoint state,
// until its application trusts the certificate's CA; the push then goes
// through. Another application pushing to the same server still does not
// trust it, and a host name the certificate does not name is refused
// even with the CA trusted.
func TestAppTLSTrust(t *testing.T) {
	srv, paths, trusted := tlsSink(t)
	port := itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	tr := &trust{cfg: map[string]*tls.Config{}}
	rec := newRecorder()
	e, _ := newTestEngine(t, Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")},
		RetrySchedule: []time.Duration{10 * time.Millisecond}, TLSConfig: tr.get, Listener: rec})
	urlA, urlB := srv.URL+"/a", srv.URL+"/b"
	subscribe(t, e, "app-a", DeviceDeleted, urlA, "")
	subscribe(t, e, "app-b", DeviceDeleted, urlB, "")
	run(t, e)
	ctx := context.Background()

	_, err := e.Publish(ctx, "app-a", deleted)
	require.NoError(t, err)
	msg := waitLastError(t, e, urlA, `is not trusted for application "app-a"`, "127.0.0.1:"+port, "x509: certificate signed by unknown authority")
	t.Logf("before the CA: %s", msg)
	require.Empty(t, paths, "no request passed the handshake")

	tr.set("app-a", trusted)
	rec.waitDelivered(t, 1)
	require.Equal(t, "/a", <-paths, "the push went through once app-a trusts the CA")

	_, err = e.Publish(ctx, "app-b", deleted)
	require.NoError(t, err)
	waitLastError(t, e, urlB, `is not trusted for application "app-b"`, "unknown authority")
	require.Empty(t, paths, "app-a's CA does not verify app-b's pushes")

	// The certificate names 127.0.0.1, ::1 and example.com, not localhost.
	wrongHost := "https://localhost:" + port + "/h"
	_, err = e.SendFor(ctx, "app-a", wrongHost, []byte(`{}`), "")
	require.NoError(t, err)
	waitLastError(t, e, wrongHost, `is not trusted for application "app-a"`, "not localhost")
	require.Empty(t, paths, "a certificate for another host name is refused")
}

// TestAppTLSGuard: an application's own transport keeps the dial-time
// SSRF guard (PSH-2): a host name that resolves to loopback is refused
// when loopback is not allowed, however the application's TLS is set.
func TestAppTLSGuard(t *testing.T) {
	srv, paths, trusted := tlsSink(t)
	port := itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	rec := newRecorder()
	e, _ := newTestEngine(t, Config{TLSConfig: func(string) *tls.Config { return trusted }, Listener: rec})
	run(t, e)
	_, err := e.SendFor(context.Background(), "app-a", "https://localhost:"+port+"/", []byte(`{}`), "")
	require.NoError(t, err, "a host name is checked at dial time")
	d := rec.nextDrop(t)
	require.ErrorIs(t, d.err, ErrAddressDenied)
	require.Empty(t, paths)
	c, app := e.clientFor(context.Background(), &d.msg)
	require.Equal(t, "app-a", app)
	require.NotSame(t, e.client, c, "the dial went through app-a's own transport")
}

// TestAppOf: a message's application comes from the message, else its
// subscription (a message loaded after a restart), else the one
// application whose subscriptions share the URL's host and port; two
// applications on one server give none.
func TestAppOf(t *testing.T) {
	e, _ := newTestEngine(t, Config{Allow: allowLoopback})
	sa := subscribe(t, e, "app-a", DeviceDeleted, "https://127.0.0.1:8443/a", "")
	subscribe(t, e, "app-b", DeviceDeleted, "https://127.0.0.1:9443/b", "")
	subscribe(t, e, "app-c", DeviceDeleted, "https://127.0.0.1:9443/c", "")
	ctx := context.Background()
	for _, c := range []struct {
		name string
		m    Message
		want string
	}{
		{"on the message", Message{AppID: "app-x", URL: "https://127.0.0.1:8443/a"}, "app-x"},
		{"from the subscription", Message{SubscriptionID: sa.ID, URL: sa.CallbackURL}, "app-a"},
		{"deleted subscription", Message{SubscriptionID: "gone", URL: sa.CallbackURL}, ""},
		{"command callback on app-a's server", Message{URL: "https://127.0.0.1:8443/cmd"}, "app-a"},
		{"server of two apps", Message{URL: "https://127.0.0.1:9443/cmd"}, ""},
		{"server of none", Message{URL: "https://127.0.0.1:7443/cmd"}, ""},
	} {
		require.Equal(t, c.want, e.appOf(ctx, &c.m), c.name)
	}
}

// TestAppClients: an application's client is made once and kept while
// Config.TLSConfig returns the same settings, and made anew when they
// change; http URLs and applications without settings use the engine's
// own client.
func TestAppClients(t *testing.T) {
	tr := &trust{cfg: map[string]*tls.Config{"app-a": {MinVersion: tls.VersionTLS12}}}
	e, _ := newTestEngine(t, Config{TLSConfig: tr.get})
	ctx := context.Background()
	m := &Message{AppID: "app-a", URL: "https://203.0.113.7:8443/"}
	c1, _ := e.clientFor(ctx, m)
	c2, _ := e.clientFor(ctx, m)
	require.Same(t, c1, c2, "unchanged settings: the same client")
	require.NotSame(t, e.client, c1)
	tr.set("app-a", &tls.Config{MinVersion: tls.VersionTLS13})
	c3, _ := e.clientFor(ctx, m)
	require.NotSame(t, c1, c3, "new settings: a new client")
	plain, _ := e.clientFor(ctx, &Message{AppID: "app-a", URL: "http://203.0.113.7:8080/"})
	require.Same(t, e.client, plain, "http needs no TLS settings")
	other, _ := e.clientFor(ctx, &Message{AppID: "app-b", URL: "https://203.0.113.7:8443/"})
	require.Same(t, e.client, other, "no settings for app-b: the engine's own")
}
