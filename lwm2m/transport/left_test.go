package transport

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// WithLeft tells that a downlink left before the device's ACK: a device
// that holds its ACK (its write handler has not returned, so the
// piggybacked 2.04 has not gone out) has the command already; Downlink
// returns only when the ACK comes.
func TestDownlinkLeftBeforeACK(t *testing.T) {
	s, _ := startServer(t, Config{DisableDTLS: true, Policy: plainOnly}, nil)
	const ep = "868333030000701"
	c := newClient(t, ClientConfig{Server: s.UDPAddr().String(), Endpoint: ep, Version: "1.1"})
	hold := make(chan struct{})
	got := newBox()
	c.Handle("/19/1/0", Resource{Write: func(v Content) error {
		got.put(v.Payload)
		<-hold // the device keeps its ACK until the test lets it go
		return nil
	}})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))

	left := make(chan struct{})
	var lefts atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- s.Downlink(WithLeft(ctxT(t), func() { lefts.Add(1); close(left) }), ep, []byte{0xAB})
	}()
	select {
	case <-left:
	case err := <-done:
		t.Fatalf("Downlink returned %v before it told that the message left", err)
	case <-time.After(10 * time.Second):
		t.Fatal("left was not called within 10 s of Downlink")
	}
	<-got.ch // the device has the data and holds the ACK
	select {
	case err := <-done:
		t.Fatalf("Downlink returned %v while the device holds its ACK; want it to wait for the ACK", err)
	default:
	}
	close(hold)
	require.NoError(t, <-done, "Downlink after the device's ACK")
	require.Equal(t, int32(1), lefts.Load(), "left is called once")
	require.Equal(t, [][]byte{{0xAB}}, got.all())
}

// A downlink that falls back from a refused form to the next calls left
// once, for the first form's first transmission.
func TestDownlinkLeftOncePerFallback(t *testing.T) {
	s, _ := startServer(t, Config{DisableDTLS: true, Policy: plainOnly}, nil)
	const ep = "868333030000702"
	c := newClient(t, ClientConfig{Server: s.UDPAddr().String(), Endpoint: ep, Version: "1.1"})
	got := newBox()
	c.Handle("/19/1/0", Resource{Write: func(v Content) error { got.put(v.Payload); return nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	// The legacy opaque write of the Multiple resource is refused with
	// 4.00 by a conforming 1.1 client; Downlink falls back to the instance.
	s.RememberDownlinkForm(ep, DownlinkLegacy)
	var lefts atomic.Int32
	require.NoError(t, s.Downlink(WithLeft(ctxT(t), func() { lefts.Add(1) }), ep, []byte{0xCD}))
	f, _ := s.LearnedDownlinkForm(ep)
	require.Equal(t, DownlinkInstance, f, "the form that carried the data after the refused legacy write")
	require.Equal(t, int32(1), lefts.Load(), "left is called once although two forms were sent")
	require.Equal(t, [][]byte{{0xCD}}, got.all())
}
