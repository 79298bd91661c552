package transport

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// recorder is a Handler that keeps every event and lets a test wait for one.
type recorder struct {
	mu     sync.Mutex
	events []Event
	signal chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) HandleEvent(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// wait returns the first event of kind for ep after the n-th of that kind
// already consumed by earlier calls with the same (kind, ep), failing after
// 10 s of real time.
func (r *recorder) wait(t *testing.T, kind EventKind, ep string, nth int) Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		seen := 0
		for _, e := range r.all() {
			if e.Kind == kind && e.Endpoint == ep {
				seen++
				if seen == nth {
					return e
				}
			}
		}
		select {
		case <-r.signal:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %v event #%d for %q within 10s; events: %+v", kind, nth, ep, r.all())
		}
	}
}

func (r *recorder) count(kind EventKind, ep string) int {
	n := 0
	for _, e := range r.all() {
		if e.Kind == kind && e.Endpoint == ep {
			n++
		}
	}
	return n
}

var testKey = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// startServer runs a server on loopback ports and stops it when the test
// ends; the test checks for leaked goroutines afterwards.
func startServer(t *testing.T, cfg Config, keys KeyStore) (*Server, *recorder) {
	t.Helper()
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = "127.0.0.1:0"
	}
	if cfg.DTLSAddr == "" {
		cfg.DTLSAddr = "127.0.0.1:0"
	}
	if os.Getenv("LWM2M_DEBUG") != "" && cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rec := newRecorder()
	s, err := New(cfg, keys, rec)
	require.NoError(t, err)
	require.NoError(t, s.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, s.Close(), "second Close")
	})
	return s, rec
}

func newClient(t *testing.T, cfg ClientConfig) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
