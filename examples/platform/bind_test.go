package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/store"
	"github.com/stretchr/testify/require"
)

// TestDataBeforeBindDropped checks the uplink order (bind before data): a
// plain CoAP device (security NONE) whose binding is refused (its endpoint
// is not its verifyCode, REG-2) has its reports dropped and logged, not
// stored. A device registered with a PSK is refused over plain CoAP with
// 4.01 before anything is kept (SEC-1).
func TestDataBeforeBindDropped(t *testing.T) {
	tp := startPlatform(t)
	const imei = "868333030000301"
	var reg struct {
		DeviceID string `json:"deviceId"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{
		"nodeId": imei, "verifyCode": "not-the-endpoint", "security": "NONE", "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID,
			"deviceType": demoDeviceType, "model": demoModel, "protocolType": "LWM2M"}}, &reg))
	id := reg.DeviceID

	cd, err := codec.Compile(demoCodec, nil)
	require.NoError(t, err)
	c, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.UDPAddr().String(), Endpoint: imei,
		Objects: "</1/0>,</3/0>,</19/0>,</19/1>"})
	require.NoError(t, err)
	c.Handle("/19/0/0", transport.Resource{Read: func() (transport.Content, error) { return transport.Content{Format: lwm2m.FormatOpaque}, nil }})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	require.Eventually(t, func() bool { return c.Observed("/19/0/0") }, 20*time.Second, 10*time.Millisecond)

	b, err := cd.Encode(&codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 12.345, "flowRate": 1.5, "pulseCount": 77}},
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 50}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -85}},
	}})
	require.NoError(t, err)
	require.NoError(t, c.Notify(ctx, "/19/0/0", transport.Content{Format: lwm2m.FormatOpaque, Payload: b}))

	require.Eventually(t, func() bool {
		for _, e := range tp.log.Recent(id, 50) {
			if strings.Contains(e.Message, "not bound dropped") {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "the dropped report is in the device log")
	_, total, err := tp.db.History().Query(store.HistoryQuery{DeviceID: id, Page: -1})
	require.NoError(t, err)
	require.Zero(t, total, "no history from a device that is not bound")
	var dev deviceJSON
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &dev))
	require.Equal(t, "INACTIVE", dev.DeviceInfo.Status)

	// The same over plain CoAP for a device registered with a PSK: refused.
	const keyed = "868333030000304"
	keyedID, _ := registerDevice(t, tp, keyed)
	k, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.UDPAddr().String(), Endpoint: keyed,
		Objects: "</1/0>,</3/0>,</19/0>,</19/1>"})
	require.NoError(t, err)
	t.Cleanup(func() { k.Close() })
	require.NoError(t, k.Connect(ctx))
	err = k.Register(ctx)
	var re *transport.ResponseError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "4.01", re.CodeText())
	_, ok := tp.lwm.Registration(keyed)
	require.False(t, ok, "nothing kept for the refused registration")
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+keyedID, nil, &dev))
	require.Equal(t, "INACTIVE", dev.DeviceInfo.Status)
}

// REG-5: deleting a device ends its registration and DTLS session at once
// (not only its next handshake), and its PENDING commands are cancelled.
func TestDeleteConnectedDevice(t *testing.T) {
	tp := startPlatform(t)
	const imei, sleeper = "868333030000302", "868333030000303"
	id, psk := registerDevice(t, tp, imei)
	m := newMeter(t, tp, "urn:imei:"+imei, psk)
	_, ok := tp.lwm.Registration(imei)
	require.True(t, ok)

	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", "/iocm/app/dm/v1.4.0/devices/"+id, nil, nil))
	_, ok = tp.lwm.Registration(imei)
	require.False(t, ok, "the registration ended with the device")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	require.Error(t, m.client.Update(ctx), "the device's session is gone")

	// A device that has not connected yet: its command waits, PENDING.
	sid, _ := registerDevice(t, tp, sleeper)
	var c struct {
		CommandID string `json:"commandId"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": sid, "expireTime": 3600, "command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 60}},
	}, &c))
	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", "/iocm/app/dm/v1.4.0/devices/"+sid, nil, nil))
	cmd, err := tp.cmds.Get(context.Background(), c.CommandID)
	require.NoError(t, err)
	require.Equal(t, "CANCELED", cmd.Status.String(), "the deleted device's PENDING command is cancelled")
}
