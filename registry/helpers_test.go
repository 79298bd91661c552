package registry_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

var ctx = context.Background()

// catalog is the fake product catalog of these tests.
var catalog = registry.ProductsFunc(func(m, model string) bool {
	return m == "acme" && (model == "WM1" || model == "WM2" || model == "GW1")
})

var meterInfo = registry.Info{ManufacturerID: "acme", ManufacturerName: "Acme", DeviceType: "WaterMeter", Model: "WM1", ProtocolType: "CoAP"}

// recorder is a Listener that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []registry.Event
}

func (r *recorder) DeviceChanged(e registry.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// take returns the events so far as "type deviceId" strings and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		s := e.Type.String() + " " + e.Device.NodeID
		if e.Type == registry.EventStatusChanged {
			s += " " + string(e.From) + "→" + string(e.Device.Status)
		}
		out = append(out, s)
	}
	r.events = nil
	return out
}

func newRegistry(t testing.TB, cfg registry.Config) (*registry.Registry, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg.Listener = rec
	r, err := registry.New(registry.NewMemStore(), catalog, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r, rec
}

func register(t testing.TB, r *registry.Registry, nodeID string) registry.Device {
	t.Helper()
	d, err := r.Register(ctx, registry.Enrollment{NodeID: nodeID, Info: meterInfo})
	require.NoError(t, err, "Register(%q)", nodeID)
	return d
}

// registerPlain registers a device without security (SEC-1): it binds over
// plain CoAP with its verifyCode (the nodeId).
func registerPlain(t testing.TB, r *registry.Registry, nodeID string) registry.Device {
	t.Helper()
	d, err := r.Register(ctx, registry.Enrollment{NodeID: nodeID, Info: meterInfo, Security: registry.SecurityNone})
	require.NoError(t, err, "Register(%q, security NONE)", nodeID)
	return d
}

func secs(n int) *time.Duration {
	d := time.Duration(n) * time.Second
	return &d
}
