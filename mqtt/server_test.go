package mqtt

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

type noDevices struct{}

func (noDevices) Authenticate(context.Context, string, string) (Device, error) {
	return Device{}, errors.New("nobody")
}

type noHandler struct{}

func (noHandler) Message(Message) error      { return nil }
func (noHandler) Connected(Device)           {}
func (noHandler) Listening(Device)           {}
func (noHandler) Disconnected(Device, error) {}

// offServer is a Server with no listener: its lifecycle without ports.
func offServer(t *testing.T) *Server {
	s, err := New(noDevices{}, noHandler{}, Config{Addr: "off", TLSAddr: "off"})
	require.NoError(t, err)
	return s
}

// TestServerLifecycle: Run blocks until Close and then returns nil (that
// Close waits for it is lifecycle.Guard's, tested there); a second Run wraps ErrClosed saying "Run called twice"; Run
// after Close returns ErrClosed; Close is idempotent (the package doc).
func TestServerLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := offServer(t)
		ret := make(chan error, 1)
		go func() { ret <- s.Run(context.Background()) }()
		synctest.Wait()
		err := s.Run(context.Background())
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorContains(t, err, "Run called twice")
		require.NoError(t, s.Close())
		synctest.Wait() // Run has returned (Close waited for it); let its goroutine deliver
		select {
		case err := <-ret:
			require.NoError(t, err, "Run after a normal stop")
		default:
			t.Fatal("Run did not return after Close")
		}
		require.Equal(t, ErrClosed, s.Run(context.Background()), "Run after Close")
		require.NoError(t, s.Close(), "Close twice")
		require.Equal(t, ErrClosed, s.Listen(), "Listen after Close")
	})
}

// TestServerCloseBeforeRun: Close may come first; Run then returns
// ErrClosed at once.
func TestServerCloseBeforeRun(t *testing.T) {
	s := offServer(t)
	require.NoError(t, s.Close())
	require.Equal(t, ErrClosed, s.Run(context.Background()))
}

// TestServerRunEndsWithContext: Run returns nil when its context ends, and
// the broker is shut down: a later Run says "Run called twice".
func TestServerRunEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := offServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		ret := make(chan error, 1)
		go func() { ret <- s.Run(ctx) }()
		synctest.Wait()
		cancel()
		require.NoError(t, <-ret)
		require.Equal(t, ErrClosed, s.Listen(), "the broker is shut down")
		err := s.Run(context.Background())
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorContains(t, err, "Run called twice")
		require.NoError(t, s.Close())
	})
}
