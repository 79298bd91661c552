package lifecycle

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

var errClosed = errors.New("x: closed")

type engine struct {
	g       Guard
	stopped atomic.Bool // set by Run after its work stopped, before Finish
}

func (e *engine) Run(ctx context.Context) error {
	ctx, err := e.g.Start(ctx, "x.Engine", errClosed)
	if err != nil {
		return err
	}
	defer e.g.Finish()
	<-ctx.Done()
	e.stopped.Store(true)
	return nil
}

func (e *engine) Close() error { e.g.Stop(); return nil }

func TestRunTwiceWrapsErrClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &engine{}
		ret := make(chan error, 1)
		go func() { ret <- e.Run(context.Background()) }()
		synctest.Wait()
		err := e.Run(context.Background())
		if !errors.Is(err, errClosed) || !strings.Contains(err.Error(), "Run called twice") {
			t.Fatalf("second Run = %v, want ErrClosed saying Run called twice", err)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		// Close returned, so Run's work has stopped.
		if !e.stopped.Load() {
			t.Fatal("Close returned before Run had stopped")
		}
		if err := <-ret; err != nil {
			t.Fatalf("Run after Close = %v, want nil", err)
		}
		if err := e.Run(context.Background()); err != errClosed {
			t.Fatalf("Run after Close = %v, want ErrClosed", err)
		}
	})
}

func TestCloseBeforeRun(t *testing.T) {
	e := &engine{}
	if !e.g.Stop() {
		t.Fatal("first Stop reported not first")
	}
	if e.g.Stop() {
		t.Fatal("second Stop reported first")
	}
	if err := e.Run(context.Background()); err != errClosed {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
	if !e.g.Closed() {
		t.Fatal("Closed() = false after Stop")
	}
}

func TestRunEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &engine{}
		ctx, cancel := context.WithCancel(context.Background())
		ret := make(chan error, 1)
		go func() { ret <- e.Run(ctx) }()
		synctest.Wait()
		cancel()
		if err := <-ret; err != nil {
			t.Fatalf("Run = %v after its context ended, want nil", err)
		}
		// A Run that ended with its context was still the one Run.
		if err := e.Run(context.Background()); !errors.Is(err, errClosed) {
			t.Fatalf("Run after a finished Run = %v, want ErrClosed", err)
		}
		e.Close()
	})
}
