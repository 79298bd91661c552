package registry_test

import (
	"testing"

	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

// TestDisconnectVia: a gateway that reports its sub-device gone makes it
// OFFLINE at once (MQT-5), with a status event; only its own, bound
// sub-devices; ConnectVia brings it back.
func TestDisconnectVia(t *testing.T) {
	r, rec := newRegistry(t, registry.Config{})
	gw, err := r.Register(ctx, registry.Enrollment{NodeID: "gw", NodeType: registry.Gateway,
		Info: registry.Info{ManufacturerID: "acme", DeviceType: "Gateway", Model: "GW1", ProtocolType: "CoAP"}})
	require.NoError(t, err)
	sub, err := r.Register(ctx, registry.Enrollment{NodeID: "sub", GatewayID: gw.ID, Info: meterInfo})
	require.NoError(t, err)
	idle, err := r.Register(ctx, registry.Enrollment{NodeID: "idle", GatewayID: gw.ID, Info: meterInfo})
	require.NoError(t, err)
	other := register(t, r, "other")
	key, err := r.PSK(ctx, "gw")
	require.NoError(t, err)
	_, err = r.Connect(ctx, "gw", registry.Connection{PSK: key})
	require.NoError(t, err)
	_, err = r.ConnectVia(ctx, sub.ID, gw.ID)
	require.NoError(t, err)
	rec.take()

	d, err := r.DisconnectVia(ctx, sub.ID, gw.ID)
	require.NoError(t, err)
	require.Equal(t, registry.StatusOffline, d.Status, "OFFLINE at once, not after the disconnect grace")
	require.False(t, d.Connected)
	require.False(t, d.DisconnectedAt.IsZero())
	require.Equal(t, []string{"status changed sub ONLINE→OFFLINE"}, rec.take())
	d, err = r.DisconnectVia(ctx, sub.ID, gw.ID)
	require.NoError(t, err, "saying it again is no error")
	require.Equal(t, registry.StatusOffline, d.Status)
	require.Empty(t, rec.take(), "and no second event")

	_, err = r.DisconnectVia(ctx, other.ID, gw.ID)
	require.ErrorIs(t, err, registry.ErrGatewayNotFound, "not behind this gateway")
	_, err = r.DisconnectVia(ctx, idle.ID, gw.ID)
	require.ErrorIs(t, err, registry.ErrNotBound, "never bound")
	d, err = r.Get(ctx, idle.ID)
	require.NoError(t, err)
	require.Equal(t, registry.StatusInactive, d.Status)
	_, err = r.DisconnectVia(ctx, "nope", gw.ID)
	require.ErrorIs(t, err, registry.ErrNotFound)

	d, err = r.ConnectVia(ctx, sub.ID, gw.ID)
	require.NoError(t, err)
	require.Equal(t, registry.StatusOnline, d.Status)
	require.Equal(t, []string{"status changed sub OFFLINE→ONLINE"}, rec.take())

	_, err = r.MarkAbnormal(ctx, sub.ID)
	require.NoError(t, err)
	d, err = r.DisconnectVia(ctx, sub.ID, gw.ID)
	require.NoError(t, err)
	require.Equal(t, registry.StatusAbnormal, d.Status, "ABNORMAL stays")
	require.False(t, d.Connected)
}
