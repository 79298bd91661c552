package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// newLogger is the platform's logger: level debug, info, warn or error;
// format text or json; written to w.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("config: logLevel %q: allowed: debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("config: logFormat %q: allowed: text, json", format)
}

// openURL is a URL a person can open for a listener bound to addr: a
// wildcard address ([::]:8743, 0.0.0.0:8743) becomes the loopback one.
func openURL(scheme string, addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// Connection logging: every device connection and disconnection is logged
// at debug level; at info level, the first connLogBurst of each
// connLogWindow one by one and the others counted in one line when the
// window is over, so that a reconnect storm of 10,000 devices writes a
// dozen lines rather than 10,000.
const (
	connLogBurst  = 10
	connLogWindow = time.Minute
)

// connLog is the aggregated log of device connections. Its methods take
// the time, so that the aggregation is arithmetic (tests pass their own);
// Run flushes the counts once a window.
type connLog struct {
	logger *slog.Logger

	mu     sync.Mutex
	end    time.Time      // the end of the current window
	shown  int            // lines written in the window
	hidden map[string]int // message → events counted, not written
}

func newConnLog(logger *slog.Logger) *connLog {
	return &connLog{logger: logger, hidden: map[string]int{}}
}

// note logs one event (msg is "device connected" or "device
// disconnected") with its attributes.
func (c *connLog) note(now time.Time, msg string, args ...any) {
	ctx := context.Background()
	if c.logger.Enabled(ctx, slog.LevelDebug) {
		c.logger.Debug(msg, args...)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked(now)
	if c.end.IsZero() {
		c.end = now.Add(connLogWindow)
	}
	if c.shown < connLogBurst {
		c.shown++
		c.logger.Info(msg, args...)
		return
	}
	c.hidden[msg]++
}

// flush writes the counts of a window that is over at now.
func (c *connLog) flush(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked(now)
}

func (c *connLog) flushLocked(now time.Time) {
	if c.end.IsZero() || now.Before(c.end) {
		return
	}
	for msg, n := range c.hidden {
		c.logger.Info(msg+" (more, not listed)", "count", n, "within", connLogWindow)
	}
	clear(c.hidden)
	c.shown, c.end = 0, time.Time{}
}

// Run flushes the counts once a window until ctx ends, and the last ones
// then.
func (c *connLog) Run(ctx context.Context) error {
	t := time.NewTicker(connLogWindow)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.flush(time.Now().Add(connLogWindow))
			return nil
		case now := <-t.C:
			c.flush(now)
		}
	}
}
