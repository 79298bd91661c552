package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

// TestMetrics: /metrics speaks the Prometheus text format and carries the
// platform's gauges and counters.
func TestMetrics(t *testing.T) {
	tp := startPlatform(t)
	registerDevice(t, tp, "868333030000077")
	tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices", nil, nil)

	// The public listener does not serve them (SEC-5).
	pub, err := http.Get(tp.api.URL + "/metrics")
	require.NoError(t, err)
	pub.Body.Close()
	require.Equal(t, http.StatusNotFound, pub.StatusCode, "/metrics on the public API")

	admin := httptest.NewServer(tp.AdminHandler())
	defer admin.Close()
	resp, err := http.Get(admin.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	body := string(b)
	for _, want := range []string{
		`doze_devices{status="INACTIVE"} 1`,
		`doze_devices{status="ONLINE"} 0`,
		`doze_api_calls_total{outcome="ok"}`,
		"doze_uplinks_total 0",
		"doze_decode_errors_total 0",
		"doze_push_delivered_total",
		"doze_push_refused_total 0",
		"doze_uplink_failures_total 0",
		"doze_uplink_backlog 0",
		"doze_uplinks_not_acknowledged_total 0",
		"doze_ingest_held_seconds_total 0",
		`doze_upgrade_subtasks{state="processing"} 0`,
		"go_goroutines",
	} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, "868333030000077", "no device identifiers in labels")
}

// TestMetricsNeedAdminToken: with adminToken set, /metrics is refused
// without it (401, with the way to send it) and served with it; callback
// URLs never appear in labels (SEC-5).
func TestMetricsNeedAdminToken(t *testing.T) {
	tp := startPlatform(t, func(c *Config) { c.AdminToken = "operator-token" })
	s := newSink(t)
	tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions", map[string]any{"notifyType": "deviceAdded", "callbackUrl": s.srv.URL + "/hook"}, nil)
	registerDevice(t, tp, "868333030000078")
	admin := httptest.NewServer(tp.AdminHandler())
	defer admin.Close()

	get := func(token string) (int, string) {
		resp := doRequest(t, "GET", admin.URL+"/metrics", bearer(token), nil)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	for _, tok := range []string{"", "wrong"} {
		status, body := get(tok)
		require.Equal(t, http.StatusUnauthorized, status, "token %q", tok)
		require.Contains(t, body, "adminToken")
	}
	status, body := get("operator-token")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "doze_push_delivered_total")
	require.NotContains(t, body, s.srv.URL, "no callback URLs in labels")
	require.NotContains(t, body, "868333030000078")
}

// TestAdminAddrNeedsToken: an admin listener off loopback needs a token.
func TestAdminAddrNeedsToken(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-admin", "127.0.0.1:0"}, true},
		{[]string{"-admin", "[::1]:0"}, true},
		{[]string{"-admin", "off"}, true},
		{[]string{"-admin", ":8744"}, false},
		{[]string{"-admin", "0.0.0.0:8744"}, false},
	} {
		_, err := parseConfig(c.args, io.Discard)
		if c.ok {
			require.NoError(t, err, "%v", c.args)
		} else {
			require.ErrorContains(t, err, "adminToken", "%v", c.args)
		}
	}
}

// TestRunHelpAndServe runs the command itself: -help lists the flags, and
// with loopback ports it starts, prints the demo credentials, answers the
// API and stops when its context ends.
func TestRunHelpAndServe(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"-help"}, &out, &errb)
	require.ErrorIs(t, err, errHelp)
	for _, flag := range []string{"-data", "-http", "-coap", "-dtls", "-tls-cert", "-tls-key", "-config", "-demo"} {
		require.Contains(t, errb.String(), flag)
	}

	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out.Reset()
	errb.Reset()
	pr, pw := io.Pipe()
	dataDir := t.TempDir()
	args := []string{"-data", dataDir, "-http", "127.0.0.1:" + itoa(port), "-coap", "127.0.0.1:0", "-dtls", "127.0.0.1:0", "-admin", "127.0.0.1:0"}
	go func() {
		done <- run(ctx, args, pw, io.Discard)
		pw.Close()
	}()
	banner := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(pr)
		banner <- string(b)
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://127.0.0.1:" + itoa(port) + "/openapi.json")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	got := <-banner
	require.Contains(t, got, "appId=demo-")
	require.Contains(t, got, "secret=")
	require.True(t, strings.Contains(got, "CoAP over DTLS-PSK"), got)
	require.Contains(t, got, "/metrics")

	// SEC-5: the second start prints no secret and says how to get a new
	// one; -reset-secret prints the new one, once.
	apps, _, err := loadApps(dataDir, true)
	require.NoError(t, err)
	second := runOnce(t, args)
	require.NotContains(t, second, "secret=")
	require.NotContains(t, second, apps[0].Secret)
	require.Contains(t, second, "-reset-secret "+apps[0].ID)
	reset := runOnce(t, append(args, "-reset-secret", apps[0].ID))
	after, _, err := loadApps(dataDir, true)
	require.NoError(t, err)
	require.NotEqual(t, apps[0].Secret, after[0].Secret)
	require.Contains(t, reset, "secret="+after[0].Secret)
	require.NotContains(t, runOnce(t, args), "secret=")
}

// runOnce starts the command, waits for its banner and stops it.
func runOnce(t *testing.T, args []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &out, io.Discard) }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "data ") }, 20*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	return out.String()
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestMaxSessionsSetting: the platform holds more device sessions than the
// lwm2m package's default (100,000 exactly was the capacity run's ceiling,
// issue 24), and a config file can change it, within reason.
func TestMaxSessionsSetting(t *testing.T) {
	cfg, err := parseConfig(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 250000, cfg.MaxSessions)
	f := t.TempDir() + "/c.json"
	require.NoError(t, os.WriteFile(f, []byte(`{"maxSessions": 0}`), 0o600))
	_, err = parseConfig([]string{"-config", f}, io.Discard)
	require.ErrorContains(t, err, "maxSessions")
	require.NoError(t, os.WriteFile(f, []byte(`{"maxSessions": 3}`), 0o600))
	cfg, err = parseConfig([]string{"-config", f}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 3, cfg.MaxSessions)
	tp := startPlatform(t, func(c *Config) { c.MaxSessions = 1 })
	_, psk := registerDevice(t, tp, "868333030000910")
	newMeter(t, tp, "868333030000910", psk)
	_, psk2 := registerDevice(t, tp, "868333030000911")
	c, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.DTLSAddr().String(), Endpoint: "868333030000911",
		Key: psk2, Objects: "</19/0>,</19/1>"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = c.Connect(ctx)
	if err == nil {
		err = c.Register(ctx)
	}
	require.Error(t, err, "a second device is refused with maxSessions 1: the setting reaches the lwm2m server")
}
