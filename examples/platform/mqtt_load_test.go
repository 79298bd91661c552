package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/examples/device/sim"
)

// TestMQTTSimulatorLoad runs the simulator's MQTT load mode (Paho clients)
// against the platform: every acknowledged report is pushed end to end,
// the bare broker's ceiling is measured in the same run, and a simulated
// device answers a synchronous service call.
func TestMQTTSimulatorLoad(t *testing.T) {
	tp := startPlatform(t)
	api := &sim.API{URL: tp.api.URL, AppID: tp.app.ID, Secret: tp.app.Secret}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, api.Login(ctx))
	info := sim.WaterMeterInfo
	info.ProtocolType = "MQTT"
	var creds []sim.MQTTCredentials
	for i := range 3 {
		cr, err := api.RegisterDevice(ctx, fmt.Sprintf("86800000000050%d", i), info, "")
		require.NoError(t, err)
		require.NotEmpty(t, cr.Secret, "an MQTT device gets its secret at registration")
		creds = append(creds, sim.MQTTCredentials{DeviceID: cr.DeviceID, Secret: cr.Secret})
	}
	res, err := sim.MQTTLoad(ctx, sim.MQTTLoadConfig{Broker: tp.mq.Addr("tcp"), Devices: creds, Uplinks: 5, Workers: 3,
		Timeout: 20 * time.Second, API: api, SinkAddr: "127.0.0.1:0"})
	require.NoError(t, err, "first error: %s", res.FirstError)
	require.Equal(t, 3, res.Devices)
	require.EqualValues(t, 15, res.Sent)
	require.EqualValues(t, 15, res.Pushed, "every acknowledged report is pushed")
	require.EqualValues(t, 15, res.CeilingN)
	require.Positive(t, res.PerSecond)
	require.Positive(t, res.Ratio)
	// The deliveries alone: the sink got every push of the run again.
	require.Positive(t, res.PushesPerUplink)
	require.EqualValues(t, math.Round(res.PushesPerUplink*15), res.FloorN)
	require.Positive(t, res.Floor)
	require.Positive(t, res.Bound)
	require.Zero(t, res.Errors, res.FirstError)
	t.Logf("MQTT end to end %.0f reports/s, bare broker %.0f publishes/s, ratio %.2f", res.PerSecond, res.Ceiling, res.Ratio)

	// A simulated device answers a command at once (MQT-3): one that took
	// no part in the load run (reconnecting a load device's client id
	// right after its connection closed can find the new connection
	// unknown to the broker: see Caveats in the package doc).
	cr, err := api.RegisterDevice(ctx, "868000000000509", info, "")
	require.NoError(t, err)
	d, err := sim.NewMQTT(sim.MQTTConfig{Broker: tp.mq.Addr("tcp"), DeviceID: cr.DeviceID, Secret: cr.Secret})
	require.NoError(t, err)
	require.NoError(t, d.Connect(ctx))
	defer d.Close()
	require.Eventually(t, func() bool {
		m, ok, err := tp.cmds.Mode(ctx, cr.DeviceID)
		return err == nil && ok && m.Kind.String() != "" && tp.mq.Connected(cr.DeviceID)
	}, 5*time.Second, 10*time.Millisecond)
	status, out := serviceCallAt(t, tp, cr.DeviceID, setPeriod("ACK", 30))
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, "SUCCESSFUL", out["status"])
	_, commands := d.Stats()
	require.EqualValues(t, 1, commands)
}
