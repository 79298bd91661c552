// Package lifecycle is the one Run/Close discipline every long-running part
// of Doze follows (the engines of command, push, ota and registry, the lwm2m
// and mqtt servers). It is written once here so that "Run called twice",
// "Close before Run" and "Close while Run returns" mean the same everywhere:
//
//   - New validates the Config and starts nothing: no goroutine, no I/O.
//   - Run(ctx) starts the work, blocks until ctx ends or Close is called,
//     stops everything it started and returns nil after a normal stop.
//   - A second Run, concurrent or later, returns at once with an error that
//     wraps the package's ErrClosed and says "Run called twice"; Run after
//     Close returns the package's ErrClosed.
//   - Close is idempotent: it cancels Run's context, waits until Run has
//     returned and makes every later Run fail. Close before Run is allowed.
//
// A type embeds a Guard, calls Start at the top of Run and Finish (deferred)
// when Run is done, and calls Stop from Close.
package lifecycle

import (
	"context"
	"fmt"
	"sync"
)

// Guard tracks one Run of one value. The zero value is ready to use; it must
// not be copied after first use.
type Guard struct {
	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// Start begins Run. It returns a context that ends when ctx ends or Stop is
// called, or an error: errClosed itself after Stop, or errClosed wrapped
// with "<name>: Run called twice" when Run was called before. Every
// successful Start must be followed by Finish.
func (g *Guard) Start(ctx context.Context, name string, errClosed error) (context.Context, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return nil, errClosed
	case g.started:
		return nil, fmt.Errorf("%w: %s: Run called twice", errClosed, name)
	}
	ctx, cancel := context.WithCancel(ctx)
	g.started, g.cancel, g.done = true, cancel, make(chan struct{})
	return ctx, nil
}

// Finish marks Run as returned; Stop waits for it.
func (g *Guard) Finish() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cancel()
	close(g.done)
}

// Stop makes every later Start fail, cancels a running Run's context and
// waits until Run has called Finish. It reports whether it was the first
// call, so Close can release what it owns only once.
func (g *Guard) Stop() (first bool) {
	g.mu.Lock()
	first = !g.closed
	g.closed = true
	cancel, done := g.cancel, g.done
	g.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return first
}

// Closed reports whether Stop was called.
func (g *Guard) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}
