package sim_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/examples/device/sim"
	"github.com/doze-io/doze/lwm2m"
)

// platform is a real lwm2m.Server on loopback that records its events.
type platform struct {
	srv    *lwm2m.Server
	keys   *lwm2m.MemoryKeyStore
	events chan lwm2m.Event
	extra  func(lwm2m.Event)
}

func startServer(t *testing.T, cfg lwm2m.Config, extra func(lwm2m.Event)) *platform {
	t.Helper()
	p := &platform{keys: lwm2m.NewMemoryKeyStore(), events: make(chan lwm2m.Event, 1024), extra: extra}
	cfg.UDPAddr, cfg.DTLSAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.Policy == nil {
		// devices with a key use DTLS, the others plain CoAP (SEC-1)
		cfg.Policy = lwm2m.EndpointPolicyFunc(func(ep string) lwm2m.Security {
			if _, err := p.keys.Key(ep); err == nil {
				return lwm2m.SecurityPSK
			}
			return lwm2m.SecurityNone
		})
	}
	if cfg.Transmission == (lwm2m.Transmission{}) {
		cfg.Transmission = lwm2m.Transmission{AckTimeout: 200 * time.Millisecond, MaxRetransmit: 1}
	}
	srv, err := lwm2m.New(cfg, p.keys, lwm2m.HandlerFunc(func(e lwm2m.Event) {
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
		require.NoError(t, <-done, "lwm2m.Server.Run")
	})
	return p
}

// next returns the next event of kind k within 10 s.
func (p *platform) next(t *testing.T, k lwm2m.EventKind) lwm2m.Event {
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
