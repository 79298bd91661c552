package transport

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lifecycleOf is what the package doc promises of every Run/Close type.
type lifecycleOf interface {
	Run(ctx context.Context) error
	Close() error
	UDPAddr() net.Addr
}

// checkLifecycle runs v, checks that a second Run wraps ErrClosed and says
// "Run called twice", that Run returns nil after Close, and that Run
// after Close returns ErrClosed.
func checkLifecycle(t *testing.T, v lifecycleOf) {
	t.Helper()
	ret := make(chan error, 1)
	go func() { ret <- v.Run(context.Background()) }()
	// Run binds the sockets after it started: once they are bound, Run runs.
	require.Eventually(t, func() bool { return v.UDPAddr() != nil }, 5*time.Second, time.Millisecond)
	err := v.Run(context.Background())
	require.ErrorIs(t, err, ErrClosed)
	require.True(t, strings.Contains(err.Error(), "Run called twice"), "second Run = %v", err)
	require.NoError(t, v.Close())
	// Run's result reaches ret just after Run returned, so it is awaited;
	// that Close itself waits for Run is internal/lifecycle's test.
	select {
	case err := <-ret:
		require.NoError(t, err, "Run after a normal stop")
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	require.NoError(t, v.Close(), "Close is idempotent")
	require.True(t, errors.Is(v.Run(context.Background()), ErrClosed), "Run after Close")
}

func TestServerLifecycle(t *testing.T) {
	s, err := New(Config{UDPAddr: "127.0.0.1:0", DTLSAddr: "127.0.0.1:0"}, NewMemoryKeyStore(), nil)
	require.NoError(t, err)
	checkLifecycle(t, s)

	s, err = New(Config{UDPAddr: "127.0.0.1:0", DisableDTLS: true}, nil, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close(), "Close before Run")
	require.ErrorIs(t, s.Run(context.Background()), ErrClosed)
	require.ErrorIs(t, s.Listen(), ErrClosed)
}

func TestBootstrapServerLifecycle(t *testing.T) {
	st := noBootstrap{}
	b, err := NewBootstrapServer(BootstrapConfig{UDPAddr: "127.0.0.1:0", DTLSAddr: "127.0.0.1:0"}, st)
	require.NoError(t, err)
	checkLifecycle(t, b)

	b, err = NewBootstrapServer(BootstrapConfig{UDPAddr: "127.0.0.1:0", DisableDTLS: true}, st)
	require.NoError(t, err)
	require.NoError(t, b.Close(), "Close before Run")
	require.ErrorIs(t, b.Run(context.Background()), ErrClosed)
	require.ErrorIs(t, b.Listen(), ErrClosed)
}

type noBootstrap struct{}

func (noBootstrap) BootstrapInfo(string) (BootstrapInfo, error) { return BootstrapInfo{}, ErrNotFound }
