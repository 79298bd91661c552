package sim_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/examples/device/sim"
	"github.com/doze-io/doze/lwm2m/transport"
)

// platform is a real transport.Server on loopback that records its events.
type platform struct {
	srv    *transport.Server
	keys   *transport.MemoryKeyStore
	events chan transport.Event
	extra  func(transport.Event)
}

func startServer(t *testing.T, cfg transport.Config, extra func(transport.Event)) *platform {
	t.Helper()
	p := &platform{keys: transport.NewMemoryKeyStore(), events: make(chan transport.Event, 1024), extra: extra}
	cfg.UDPAddr, cfg.DTLSAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.Policy == nil {
		// devices with a key use DTLS, the others plain CoAP (SEC-1)
		cfg.Policy = transport.EndpointPolicyFunc(func(ep string) transport.Security {
			if _, err := p.keys.Key(ep); err == nil {
				return transport.SecurityPSK
			}
			return transport.SecurityNone
		})
	}
	if cfg.Transmission == (transport.Transmission{}) {
		cfg.Transmission = transport.Transmission{AckTimeout: 200 * time.Millisecond, MaxRetransmit: 1}
	}
	srv, err := transport.New(cfg, p.keys, transport.HandlerFunc(func(e transport.Event) {
		if p.extra != nil {
			p.extra(e)
		}
		select {
		case p.events <- e:
		default:
		}
	}))
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	p.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done, "transport.Server.Run")
	})
	return p
}

// next returns the next event of kind k within 10 s.
func (p *platform) next(t *testing.T, k transport.EventKind) transport.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-p.events:
			if e.Kind == k {
				return e
			}
		case <-timeout:
			t.Fatalf("no %v event within 10s", k)
		}
	}
}

// run starts d and stops it at the end of the test.
func run(t *testing.T, d *sim.Device) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() { defer wg.Done(); err = d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		require.NoError(t, err, "Device.Run")
	})
	select {
	case <-d.Ready():
	case <-time.After(10 * time.Second):
		cancel()
		wg.Wait()
		t.Fatalf("device %s did not register within 10s: Run returned %v", d.IMEI(), err)
	}
}
