package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/stretchr/testify/require"
)

// TestModelNotifications: adding and deleting a product pushes
// deviceModelAdded and deviceModelDeleted (APP-7; issue 15 item 6).
func TestModelNotifications(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceModelAdded", "deviceModelDeleted")

	name, zipped := demoVariant(t, "WM300", nil)
	postProfile(t, tp, name, zipped)

	model := func(nt string) func(map[string]any) bool {
		return func(p map[string]any) bool { return p["notifyType"] == nt && p["model"] == "WM300" }
	}
	added := hook.wait(t, "deviceModelAdded", model("deviceModelAdded"))
	require.Equal(t, map[string]any{"notifyType": "deviceModelAdded", "appId": tp.app.ID, "deviceType": demoDeviceType,
		"manufacturerName": "Doze Labs", "manufacturerId": demoManufacturerID, "model": "WM300", "protocolType": "CoAP"}, added)

	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", "/doze/v1/products/"+demoManufacturerID+"/WM300", nil, nil))
	deleted := hook.wait(t, "deviceModelDeleted", model("deviceModelDeleted"))
	require.Equal(t, demoManufacturerID, deleted["manufacturerId"])
}

// TestDesiredStatusNotification: desired shadow values go out as a
// command when the device wakes, and its moves push
// deviceDesiredPropertiesModifyStatusChanged (APP-7, STO-3; issue 15
// item 6).
func TestDesiredStatusNotification(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceDesiredPropertiesModifyStatusChanged")
	const imei = "868333030001601"
	id, psk := registerDevice(t, tp, imei)
	m := newMeter(t, tp, imei, psk)
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/iocm/app/shadow/v1.5.0/devices/"+id, map[string]any{
		"serviceDesireds": []map[string]any{{"serviceId": "Meter", "desired": map[string]any{"period": 600}}}}, nil))

	// The device wakes with a report; the desired period goes out.
	m.uplink(t, &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 1.0, "flowRate": 0.5, "pulseCount": 3}},
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 90}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -80}},
	}})
	var cmd *codec.Command
	select {
	case cmd = <-m.cmds:
	case <-time.After(30 * time.Second):
		t.Fatal("the desired value was not sent to the device within 30s")
	}
	require.Equal(t, "SET_REPORT_PERIOD", cmd.Cmd)
	got := hook.wait(t, "desired status DELIVERED", func(p map[string]any) bool {
		return p["notifyType"] == "deviceDesiredPropertiesModifyStatusChanged" && p["deviceId"] == id && p["status"] == "DELIVERED"
	})
	require.Equal(t, "Meter", got["serviceId"])
	require.Equal(t, map[string]any{"period": float64(600)}, got["properties"])
}

// TestUnsentTypesRefused: notify types nothing sends cannot be subscribed
// to; the 400 says why (APP-7; issue 15 item 6).
func TestUnsentTypesRefused(t *testing.T) {
	tp := startPlatform(t)
	for _, nt := range []string{"deviceEvent", "serviceInfoChanged"} {
		var e apiError
		require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
			map[string]any{"notifyType": nt, "callbackUrl": "http://127.0.0.1:9/push"}, &e), nt)
		require.Equal(t, "notify_type_not_sent", e.Code)
		require.Contains(t, e.Desc, nt+" is not sent by this platform")
	}
}
