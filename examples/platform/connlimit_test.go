package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestHTTPConnectionLimits: connections over the per-address cap, or over
// the cap in all, are answered 503 and closed at once, and counted; a
// closed connection gives its place back. Without the limit an idle client
// holds every connection it opens for ever.
func TestHTTPConnectionLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := newLimitListener(ln, 3, 2, true)
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()

	dial := func(local string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	get := func(c net.Conn) string {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if err != nil {
			return "write: " + err.Error()
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "read: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + strings.TrimSpace(string(b))
	}

	a1, a2 := dial("127.0.0.1"), dial("127.0.0.1")
	require.Equal(t, "200 OK ok", get(a1))
	over := dial("127.0.0.1")
	require.Equal(t, "503 Service Unavailable too many connections from this address or to all", get(over), "a third connection from one address")
	require.EqualValues(t, 1, l.refused.Load())

	b1 := dial("127.0.0.2") // another address: its own share
	require.Equal(t, "200 OK ok", get(b1))
	require.Contains(t, get(dial("127.0.0.3")), "503", "over the cap in all")

	// A connection closed gives its place back.
	a2.Close()
	require.Eventually(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.byIP["127.0.0.1"] == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "200 OK ok", get(dial("127.0.0.1")))
	require.EqualValues(t, 2, l.refused.Load())
}

// TestHTTPServerTimeouts: the API's server bounds an idle keep-alive and a
// request whose body never comes (before, only the headers were bounded).
func TestHTTPServerTimeouts(t *testing.T) {
	s := newHTTPServer(http.NotFoundHandler())
	require.Positive(t, s.IdleTimeout, "an idle keep-alive is closed")
	require.Positive(t, s.ReadTimeout, "a body that never comes is given up")
	require.Less(t, s.ReadTimeout, time.Hour)
	require.Positive(t, s.ReadHeaderTimeout)
	require.Zero(t, s.WriteTimeout, "a service call may wait for its device")
}
