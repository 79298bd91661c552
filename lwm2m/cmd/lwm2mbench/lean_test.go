package main

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/ceiling"
	"github.com/doze-io/doze/lwm2m/transport"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// TestLeanDevice registers lean devices with both servers of the benchmark
// (a real transport.Server and bare go-coap, each on loopback with pion/dtls)
// and sends an uplink: the load generator speaks DTLS, CoAP and LwM2M as
// the servers expect, or its figures would mean nothing.
func TestLeanDevice(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(n int) server
	}{{"transport.Server", startOurs}, {"bare go-coap", startBare}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(3)
			defer srv.stop()
			for i := range 3 {
				d, err := register(context.Background(), srv.addr, identity(i), nil, "</3/0>,</19/1>")
				if d != nil {
					defer d.Close()
				}
				if err != nil {
					t.Fatalf("device %d: %v", i, err)
				}
				if err := d.send(context.Background(), []byte{1, 2, 3}); err != nil {
					t.Fatalf("device %d uplink: %v", i, err)
				}
			}
		})
	}
}

// TestSourceIP: devices are dealt round-robin over the loopback addresses
// from 127.0.0.2, every address carrying its share, and none is the
// network address, the server's 127.0.0.1 or outside 127.0.0.0/8.
func TestSourceIP(t *testing.T) {
	require.Nil(t, ceiling.SourceIP(7, 0), "ceiling.SourceIP(7, 0): no source address chosen")
	for _, tc := range []struct {
		n, sources int
		want       map[string]int
	}{
		{6, 1, map[string]int{"127.0.0.2": 6}},
		{300, 3, map[string]int{"127.0.0.2": 100, "127.0.0.3": 100, "127.0.0.4": 100}},
		{7, 3, map[string]int{"127.0.0.2": 3, "127.0.0.3": 2, "127.0.0.4": 2}},
	} {
		got := map[string]int{}
		for i := range tc.n {
			got[ceiling.SourceIP(i, tc.sources).String()]++
		}
		require.Equal(t, tc.want, got, "ceiling.SourceIP(0…%d, %d)", tc.n-1, tc.sources)
	}
	// Past 127.0.0.255 the count carries into the third byte.
	for i, want := range map[int]string{253: "127.0.0.255", 254: "127.0.1.0", 255: "127.0.1.1", 1<<24 - 4: "127.255.255.254"} {
		ip := ceiling.SourceIP(i, 1<<24-3)
		require.Equal(t, want, ip.String(), "ceiling.SourceIP(%d, 2^24-3)", i)
		require.True(t, ip.IsLoopback(), "ceiling.SourceIP(%d) = %v is not loopback", i, ip)
	}
	require.Error(t, checkSources(1<<24-2), "-sources beyond 127.255.255.254")
	require.Error(t, checkSources(-1))
	require.Equal(t, 5, autoSources(100000), "autoSources(100000): 20,000 devices per address")
	require.Equal(t, 1, autoSources(1))
}

// TestFleetSources registers 300 devices from 3 source addresses with an
// transport.Server on loopback, each device registering in queue mode with
// </19/0> and answering the server's Observe of /19/0/0: every one
// registers, and the server sees 100 from each address.
func TestFleetSources(t *testing.T) {
	const n, sources = 300, 3
	var mu sync.Mutex
	from := map[string]int{}
	srv := startOursWith(n, func(e transport.Event) {
		if e.Kind == transport.EventRegistered {
			ip := e.Registration.Addr.(*net.UDPAddr).IP.String()
			mu.Lock()
			from[ip]++
			mu.Unlock()
		}
	})
	defer srv.stop()
	f := newFleet(srv.addr, 0, n, sources, "</3/0>,</19/0>,</19/1>")
	defer f.close()
	f.registerAll(context.Background(), 16)
	first, _ := f.firstErr.Load().(string)
	require.Equal(t, int64(n), f.registered.Load(), "registered devices; %d errors, the first: %s", f.errs.Load(), first)
	for i, d := range f.devs {
		require.Equal(t, 1, d.(leanDevice).Observed(), "device %d: Observe requests answered", i)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{"127.0.0.2": 100, "127.0.0.3": 100, "127.0.0.4": 100}, from, "registrations seen by the server, by source address")
	sent, _ := f.uplinks(context.Background(), 16, 1)
	require.Equal(t, int64(n), sent, "uplinks answered 2.04")
}

// TestLeanDeviceAnswers: a lean device that lingers after its uplink
// answers what a server sends a queue-mode device while it is awake: a
// write to the downlink resource /19/1/0 with 2.04, a read of another
// object with 4.04 (RFC 7252 §5.2.1: piggy-backed in the ACK).
func TestLeanDeviceAnswers(t *testing.T) {
	srv := startOurs(1)
	defer srv.stop()
	ctx := context.Background()
	d, err := register(ctx, srv.addr, identity(0), nil, "</3/0>,</19/0>,</19/1>")
	if d != nil {
		defer d.Close()
	}
	require.NoError(t, err)
	require.NoError(t, d.send(ctx, []byte{1}))
	lean := d.(leanDevice)
	answered := make(chan int, 1)
	go func() { answered <- lean.Linger(time.Now().Add(time.Second)) }()
	require.NoError(t, srv.lwm.Write(ctx, identity(0), "/19/1/0/0", transport.Content{Format: lwm2m.FormatOpaque, Payload: []byte{7}}),
		"write of /19/1/0/0 to a lingering lean device")
	_, err = srv.lwm.Read(ctx, identity(0), "/5/0/3", lwm2m.FormatText)
	require.ErrorContains(t, err, "4.04", "read of /5/0/3 from a lean device")
	require.Equal(t, 2, <-answered, "requests answered while lingering (the Observe was answered before)")
}
