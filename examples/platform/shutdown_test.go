package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestShutdown checks that stopping Run and Close leave no goroutine of the
// platform behind, and that a device event arriving while the platform
// stops does not block the lwm2m server (its Close waits for the goroutine
// that hands the event over).
func TestShutdown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tp := startPlatform(t)
	id, _ := registerDevice(t, tp, "868333030000201")
	require.Equal(t, http.StatusNoContent, tp.call(t, "PUT", "/iocm/app/dm/v1.4.0/devices/"+id, map[string]any{"name": "x"}, nil))
	http.DefaultClient.CloseIdleConnections()
	tp.stop()

	// More events for one worker than its queue holds, after the workers
	// are gone: each must return.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 512 {
			tp.enqueueEvent(transport.Event{Endpoint: "868333030000201", Kind: transport.EventUplink}, 0)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("enqueueEvent blocks after Run returned")
	}
}
