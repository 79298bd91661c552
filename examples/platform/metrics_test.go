package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMetrics: /metrics speaks the Prometheus text format and carries the
// platform's gauges and counters.
func TestMetrics(t *testing.T) {
	tp := startPlatform(t)
	registerDevice(t, tp, "868333030000077")
	tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices", nil, nil)

	resp, err := http.Get(tp.api.URL + "/metrics")
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
		`doze_upgrade_subtasks{state="processing"} 0`,
		"go_goroutines",
	} {
		require.Contains(t, body, want)
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
	go func() {
		done <- run(ctx, []string{"-data", t.TempDir(), "-http", "127.0.0.1:" + itoa(port), "-coap", "127.0.0.1:0", "-dtls", "127.0.0.1:0"}, pw, io.Discard)
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
}

func itoa(n int) string { return strconv.Itoa(n) }
