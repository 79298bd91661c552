package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestOpenURL: the banner's URL opens in a browser: a wildcard address
// becomes loopback, a bound one stays.
func TestOpenURL(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8743}, "http://127.0.0.1:8743/"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8743}, "http://127.0.0.1:8743/"},
		{&net.TCPAddr{Port: 8743}, "http://127.0.0.1:8743/"},
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 443}, "http://192.0.2.7:443/"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8743}, "http://[::1]:8743/"},
	} {
		require.Equal(t, tc.want, openURL("http", tc.addr), "openURL(%v)", tc.addr)
	}
}

// TestBannerURL: a platform listening on every address prints a URL one
// can open, not http://[::]:8743/.
func TestBannerURL(t *testing.T) {
	tp := startPlatform(t)
	var out bytes.Buffer
	printBanner(&out, tp.cfg, tp.Platform, &net.TCPAddr{IP: net.IPv6unspecified, Port: 8743}, nil)
	require.Contains(t, out.String(), "REST API and console  http://127.0.0.1:8743/ (listening on every address, port 8743)\n")
	require.NotContains(t, out.String(), "[::]:8743")
	out.Reset()
	printBanner(&out, tp.cfg, tp.Platform, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8743}, nil)
	require.Contains(t, out.String(), "REST API and console  http://127.0.0.1:8743/\n")
}

// TestLogFlags: -log-level and -log-format take what they list, and say
// what is allowed otherwise.
func TestLogFlags(t *testing.T) {
	cfg, err := parseConfig([]string{"-log-level", "debug", "-log-format", "json"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "debug", cfg.LogLevel)
	require.Equal(t, "json", cfg.LogFormat)
	cfg, err = parseConfig(nil, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "info", cfg.LogLevel, "default level")
	require.Equal(t, "text", cfg.LogFormat, "default format")
	_, err = parseConfig([]string{"-log-level", "loud"}, &bytes.Buffer{})
	require.ErrorContains(t, err, `logLevel "loud": allowed: debug, info, warn, error`)
	_, err = parseConfig([]string{"-log-format", "xml"}, &bytes.Buffer{})
	require.ErrorContains(t, err, `logFormat "xml": allowed: text, json`)

	var b bytes.Buffer
	l, err := newLogger(&b, "info", "json")
	require.NoError(t, err)
	l.Debug("hidden")
	l.Info("shown", "k", 1)
	var line map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &line), "one JSON line: %q", b.String())
	require.Equal(t, "shown", line["msg"])
}

// records is a slog handler keeping what it gets.
type records struct {
	mu    sync.Mutex
	level slog.Level
	got   []slog.Record
}

func (r *records) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// messages returns the messages logged, with each record's attributes.
func (r *records) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.got {
		var b strings.Builder
		b.WriteString(rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.String())
			return true
		})
		out = append(out, b.String())
	}
	return out
}

// TestConnLogAggregates: at info level a storm of connections writes the
// first connLogBurst lines of the window and one count per kind when the
// window is over; the next window starts afresh. At debug level every
// event is written.
func TestConnLogAggregates(t *testing.T) {
	rec := &records{level: slog.LevelInfo}
	c := newConnLog(slog.New(rec))
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for i := range 25 {
		c.note(t0.Add(time.Duration(i)*time.Second), "device connected", "i", i)
	}
	for i := range 3 {
		c.note(t0.Add(30*time.Second), "device disconnected", "i", i)
	}
	require.Len(t, rec.messages(), connLogBurst, "the first %d of the window", connLogBurst)
	c.flush(t0.Add(connLogWindow - time.Nanosecond))
	require.Len(t, rec.messages(), connLogBurst, "the window is not over yet")
	c.flush(t0.Add(connLogWindow))
	got := rec.messages()
	require.Len(t, got, connLogBurst+2)
	require.ElementsMatch(t, []string{
		"device connected (more, not listed) count=15 within=1m0s",
		"device disconnected (more, not listed) count=3 within=1m0s",
	}, got[connLogBurst:])

	c.note(t0.Add(2*connLogWindow), "device connected", "i", 99)
	require.Equal(t, "device connected i=99", rec.messages()[connLogBurst+2], "a new window lists again")
	c.flush(t0.Add(10 * connLogWindow))
	require.Len(t, rec.messages(), connLogBurst+3, "nothing counted: no count line")

	debug := &records{level: slog.LevelDebug}
	c = newConnLog(slog.New(debug))
	for i := range 25 {
		c.note(t0, "device connected", "i", i)
	}
	require.Len(t, debug.messages(), 25, "debug: every one")
}

// TestPlatformLogs: a device connecting and leaving is logged with its
// ids, a refused API call only at debug level, and the shutdown.
func TestPlatformLogs(t *testing.T) {
	rec := &records{level: slog.LevelDebug}
	tp := startPlatformWith(t, func(p *Platform) {
		p.logger = slog.New(rec)
		p.conns = newConnLog(p.logger)
	})
	id, psk := registerDevice(t, tp, "868333030009001")
	m := newMeter(t, tp, "868333030009001", psk)
	has := func(prefix string, parts ...string) bool {
		for _, msg := range rec.messages() {
			if !strings.HasPrefix(msg, prefix) {
				continue
			}
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(msg, p)
			}
			if ok {
				return true
			}
		}
		return false
	}
	require.Eventually(t, func() bool { return has("device connected", "device="+id, "nodeId=868333030009001", "secure=true") },
		10*time.Second, 10*time.Millisecond, "connection logged: %v", rec.messages())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, m.client.Deregister(ctx))
	require.Eventually(t, func() bool { return has("device disconnected", "device="+id, "reason=deregistered") },
		10*time.Second, 10*time.Millisecond, "disconnection logged: %v", rec.messages())

	var e apiError
	require.Equal(t, 404, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/nope", nil, &e))
	require.True(t, has("API call refused", "status=404", "path=/iocm/app/dm/v1.4.0/devices/nope"), "%v", rec.messages())
	rec.mu.Lock()
	for _, r := range rec.got {
		if r.Message == "API call refused" {
			require.Equal(t, slog.LevelDebug, r.Level, "a caller's mistake is quiet by default")
		}
	}
	rec.mu.Unlock()

	tp.stop()
	require.True(t, has("shutting down", "cause=context canceled"), "%v", rec.messages())
}
