package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

// subscribe subscribes the sink to notify types of the test app.
func subscribe(t testing.TB, tp *testPlatform, hook *sink, types ...string) {
	t.Helper()
	for _, nt := range types {
		require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
			map[string]any{"notifyType": nt, "callbackUrl": hook.srv.URL + "/push"}, nil), "subscribe to %s", nt)
	}
}

// statusPush matches a deviceInfoChanged push of the device with status.
func statusPush(id, status string) func(map[string]any) bool {
	return func(p map[string]any) bool {
		info, _ := p["deviceInfo"].(map[string]any)
		return p["notifyType"] == "deviceInfoChanged" && p["deviceId"] == id && info["status"] == status
	}
}

func deviceStatus(t *testing.T, tp *testPlatform, id string) string {
	t.Helper()
	var dev deviceJSON
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &dev))
	return dev.DeviceInfo.Status
}

// TestRegistrationEndOffline: a device that de-registers, and one whose
// lifetime passes without an Update, go OFFLINE disconnectGrace later,
// with deviceInfoChanged pushed; registering again makes it ONLINE
// (REG-3, issue 15 item 4).
func TestRegistrationEndOffline(t *testing.T) {
	tp := startPlatform(t, func(c *Config) { c.DisconnectGrace = Duration(100 * time.Millisecond) })
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceInfoChanged")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// De-registration.
	const imei = "868333030001501"
	id, psk := registerDevice(t, tp, imei)
	m := newMeter(t, tp, imei, psk)
	hook.wait(t, "ONLINE on binding", statusPush(id, "ONLINE"))
	require.NoError(t, m.client.Deregister(ctx))
	hook.wait(t, "OFFLINE after De-register", statusPush(id, "OFFLINE"))
	require.Equal(t, "OFFLINE", deviceStatus(t, tp, id))

	// Registering again: ONLINE, and it stays so past the grace.
	hook.mu.Lock()
	hook.got = nil
	hook.mu.Unlock()
	require.NoError(t, m.client.Register(ctx))
	hook.wait(t, "ONLINE after Register", statusPush(id, "ONLINE"))
	d, err := tp.reg.Get(ctx, id)
	require.NoError(t, err)
	require.True(t, d.Deadline.After(time.Now().Add(time.Hour)),
		"a registered device's next status move is the 25-hour silence rule, not its old De-register's grace: deadline %v", d.Deadline)

	// Lifetime expiry: lt=1 and never an Update.
	const lazy = "868333030001502"
	lazyID, lazyPSK := registerDevice(t, tp, lazy)
	c, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.DTLSAddr().String(), Endpoint: lazy, Key: lazyPSK,
		Lifetime: time.Second, Objects: "</1/0>,</3/0>"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	hook.wait(t, "ONLINE on binding", statusPush(lazyID, "ONLINE"))
	hook.wait(t, "OFFLINE after the lifetime expired", statusPush(lazyID, "OFFLINE"))
	require.Equal(t, "OFFLINE", deviceStatus(t, tp, lazyID))
}

// TestAbnormalAfterUnusableUplinks: abnormalAfter unusable uplinks in a
// row make a device ABNORMAL, a usable one clears it; both moves push
// deviceInfoChanged (REG-3, issue 15 item 4).
func TestAbnormalAfterUnusableUplinks(t *testing.T) {
	tp := startPlatform(t, func(c *Config) { c.AbnormalAfter = 2 })
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceInfoChanged")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const imei = "868333030001503"
	id, psk := registerDevice(t, tp, imei)
	m := newMeter(t, tp, imei, psk)
	hook.wait(t, "ONLINE on binding", statusPush(id, "ONLINE"))

	junk := transport.Content{Format: lwm2m.FormatOpaque, Payload: []byte{0x7E, 0x01}} // no message of the codec starts 7E
	require.NoError(t, m.client.Notify(ctx, "/19/0/0", junk))
	require.Eventually(t, func() bool { return hasLog(tp, id, "decoding 7E01") }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "ONLINE", deviceStatus(t, tp, id), "one unusable uplink is not yet abnormal")
	require.NoError(t, m.client.Notify(ctx, "/19/0/0", junk))
	hook.wait(t, "ABNORMAL after 2 unusable uplinks", statusPush(id, "ABNORMAL"))
	require.Equal(t, "ABNORMAL", deviceStatus(t, tp, id))

	m.uplink(t, &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 1.0, "flowRate": 0.5, "pulseCount": 3}},
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 90}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -80}},
	}})
	hook.wait(t, "ONLINE after a usable report", statusPush(id, "ONLINE"))
}
