package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/registry"
)

// subDeviceEvent is an events/up message of the sub-device manager.
func subDeviceEvent(eventType, eventID string, devices any) string {
	b, _ := json.Marshal(map[string]any{"services": []map[string]any{{"service_id": "$sub_device_manager",
		"event_type": eventType, "event_id": eventID, "event_time": "20260101T120000Z", "paras": map[string]any{"devices": devices}}}})
	return string(b)
}

// eventAnswer is the answer on …/sys/events/down.
type eventAnswer struct {
	ObjectDeviceID string `json:"object_device_id"`
	Services       []struct {
		ServiceID string `json:"service_id"`
		EventType string `json:"event_type"`
		EventID   string `json:"event_id"`
		Paras     struct {
			Successful json.RawMessage `json:"successful_devices"`
			Failed     []struct {
				NodeID    string `json:"node_id"`
				DeviceID  string `json:"device_id"`
				ErrorCode string `json:"error_code"`
				ErrorMsg  string `json:"error_msg"`
			} `json:"failed_devices"`
		} `json:"paras"`
	} `json:"services"`
}

// nextAnswer reads the gateway's next events/down message.
func nextAnswer(t *testing.T, l *mqttListener, gw string) eventAnswer {
	t.Helper()
	topic, payload := l.next(t)
	require.Equal(t, "$oc/devices/"+gw+"/sys/events/down", topic)
	b, err := json.Marshal(payload)
	require.NoError(t, err)
	var a eventAnswer
	require.NoError(t, json.Unmarshal(b, &a))
	require.Equal(t, gw, a.ObjectDeviceID)
	require.Len(t, a.Services, 1)
	require.Equal(t, "$sub_device_manager", a.Services[0].ServiceID)
	return a
}

type addedDevice struct {
	DeviceID       string `json:"device_id"`
	NodeID         string `json:"node_id"`
	ParentDeviceID string `json:"parent_device_id"`
	ProductID      string `json:"product_id"`
	Status         string `json:"status"`
}

// TestMQTTGatewayAddsAndDeletesSubDevices: a gateway registers sub-devices
// over its own MQTT connection (add_sub_device_request on
// $oc/devices/{gatewayId}/sys/events/up), gets the result on
// …/sys/events/down, reports for them, and deletes them (MQT-5, REG-4,
// REG-5); bad requests are refused with the field at fault, and both the
// per-request and the per-gateway bounds hold. The gateway is played by
// mosquitto_pub and mosquitto_sub.
func TestMQTTGatewayAddsAndDeletesSubDevices(t *testing.T) {
	needMosquitto(t)
	tp := startPlatform(t, func(c *Config) { c.MQTTMaxSubDevices = 2 }) // the per-gateway bound, below
	port := mqttPort(t, tp)
	gw, gwSecret := registerBehind(t, tp, "868000000000601", "GATEWAY", "")
	_, _ = registerBehind(t, tp, "868000000000602", "ENDPOINT", "") // a nodeId taken by another device
	l := listenMQTT(t, tp, gw, gw, gwSecret, "$oc/devices/"+gw+"/sys/events/down")
	require.Eventually(t, func() bool { return tp.mq.Connected(gw) }, 5*time.Second, 10*time.Millisecond)
	pub := func(payload string) string {
		out, err := mosquittoPub(t, port, "-V", "mqttv5", "-i", gw+"_pub", "-u", gw, "-P", gwSecret, "-q", "1",
			"-t", "$oc/devices/"+gw+"/sys/events/up", "-m", payload)
		require.NoError(t, err, out)
		return out
	}

	add := subDeviceEvent("add_sub_device_request", "ev-1", []map[string]any{
		{"node_id": "sub-0001", "product_id": demoModel, "name": "meter one"},
		{"node_id": "sub-0002", "product_id": "NoSuchModel"},
		{"node_id": "868000000000602", "product_id": demoModel},
		{"node_id": "sub-0003", "product_id": demoModel, "device_id": "my-own-id"},
	})
	out := pub(add)
	require.NotContains(t, out, "rror", "the request is taken: %s", out)
	a := nextAnswer(t, l, gw)
	require.Equal(t, "add_sub_device_response", a.Services[0].EventType)
	require.Equal(t, "ev-1", a.Services[0].EventID, "the answer names the request's event_id")
	var added []addedDevice
	require.NoError(t, json.Unmarshal(a.Services[0].Paras.Successful, &added))
	require.Len(t, added, 1)
	sub := added[0]
	require.Equal(t, "sub-0001", sub.NodeID)
	require.Equal(t, gw, sub.ParentDeviceID)
	require.Equal(t, demoModel, sub.ProductID)
	require.Equal(t, "ONLINE", sub.Status, "bound at once through the gateway's live connection")
	failed := a.Services[0].Paras.Failed
	require.Len(t, failed, 3)
	require.Equal(t, "sub-0002", failed[0].NodeID)
	require.Equal(t, "unknown_product", failed[0].ErrorCode)
	require.Contains(t, failed[0].ErrorMsg, `"NoSuchModel"`)
	require.Equal(t, "conflict", failed[1].ErrorCode, "one nodeId belongs to one device")
	require.Equal(t, "invalid_device_id", failed[2].ErrorCode)

	// The sub-device is the application's like any other (REG-4).
	var dev struct {
		GatewayID  string `json:"gatewayId"`
		NodeType   string `json:"nodeType"`
		DeviceInfo struct {
			NodeID       string `json:"nodeId"`
			Name         string `json:"name"`
			Status       string `json:"status"`
			ProtocolType string `json:"protocolType"`
		} `json:"deviceInfo"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+sub.DeviceID, nil, &dev))
	require.Equal(t, gw, dev.GatewayID)
	require.Equal(t, "ENDPOINT", dev.NodeType)
	require.Equal(t, "ONLINE", dev.DeviceInfo.Status)
	require.Equal(t, "meter one", dev.DeviceInfo.Name)
	require.Equal(t, "MQTT", dev.DeviceInfo.ProtocolType)

	// Sent again (the gateway did not get its PUBACK): the same device.
	pub(subDeviceEvent("add_sub_device_request", "ev-1b", []map[string]any{{"node_id": "sub-0001", "product_id": demoModel}}))
	a = nextAnswer(t, l, gw)
	require.NoError(t, json.Unmarshal(a.Services[0].Paras.Successful, &added))
	require.Len(t, added, 1)
	require.Equal(t, sub.DeviceID, added[0].DeviceID, "adding a node_id already behind this gateway answers the device it has")

	// The gateway reports for it on its connection.
	out, err := mosquittoPub(t, port, "-V", "mqttv5", "-i", gw+"_pub", "-u", gw, "-P", gwSecret, "-q", "1",
		"-t", "$oc/devices/"+sub.DeviceID+"/sys/properties/report", "-m", `{"services":[{"service_id":"Battery","properties":{"batteryLevel":77}}]}`)
	require.NoError(t, err, out)
	var hist struct {
		TotalCount int `json:"totalCount"`
	}
	require.Eventually(t, func() bool {
		tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+sub.DeviceID+"&gatewayId="+gw, nil, &hist)
		return hist.TotalCount == 1
	}, 5*time.Second, 20*time.Millisecond)

	// Refusals: the field at fault, in the MQTT 5 PUBACK's reason and the
	// gateway's log; nothing is added.
	tooMany := make([]map[string]any, 51)
	for i := range tooMany {
		tooMany[i] = map[string]any{"node_id": fmt.Sprintf("many-%d", i), "product_id": demoModel}
	}
	for _, tc := range []struct{ body, want string }{
		{subDeviceEvent("add_sub_device_request", "x", tooMany), "names 51 devices, at most 50 per request"},
		{subDeviceEvent("add_sub_device_request", "x", []map[string]any{{"product_id": demoModel}}), "services[0].paras.devices[0].node_id: is required"},
		{subDeviceEvent("reboot_request", "x", []string{"a"}), "event_type: is"},
		{`{"services":[]}`, "services: must be a non-empty array"},
		{`not json`, "body: must be"},
	} {
		pub(tc.body)
		require.Eventually(t, func() bool { return strings.Contains(gatewayLog(t, tp, gw), tc.want) }, 5*time.Second, 20*time.Millisecond,
			"the gateway's log says why: %s", tc.want)
	}
	_, total := subDevicesOf(t, tp, gw)
	require.Equal(t, 1, total, "refused requests add nothing")

	// An ENDPOINT manages no sub-devices; a gateway only on its own topic.
	ep, epSecret := registerBehind(t, tp, "868000000000603", "ENDPOINT", "")
	out, _ = mosquittoPub(t, port, "-V", "mqttv5", "-i", ep, "-u", ep, "-P", epSecret, "-q", "1",
		"-t", "$oc/devices/"+ep+"/sys/events/up", "-m", subDeviceEvent("add_sub_device_request", "x", []map[string]any{{"node_id": "ep-sub", "product_id": demoModel}}))
	require.Contains(t, out, "only a device of nodeType GATEWAY", "MQTT 5 PUBACK reason string: %s", out)

	// The per-gateway bound (mqttMaxSubDevices, 2 here): one added, one
	// refused.
	pub(subDeviceEvent("add_sub_device_request", "ev-2", []map[string]any{
		{"node_id": "sub-0004", "product_id": demoModel}, {"node_id": "sub-0005", "product_id": demoModel}}))
	a = nextAnswer(t, l, gw)
	require.NoError(t, json.Unmarshal(a.Services[0].Paras.Successful, &added))
	require.Len(t, added, 1)
	require.Equal(t, "sub-0004", added[0].NodeID)
	require.Len(t, a.Services[0].Paras.Failed, 1)
	require.Equal(t, "too_many_sub_devices", a.Services[0].Paras.Failed[0].ErrorCode)
	require.Contains(t, a.Services[0].Paras.Failed[0].ErrorMsg, "at most 2")
	second := added[0].DeviceID

	// Delete: only its own sub-devices.
	pub(subDeviceEvent("delete_sub_device_request", "ev-3", []string{sub.DeviceID, ep, "no-such-device"}))
	a = nextAnswer(t, l, gw)
	require.Equal(t, "delete_sub_device_response", a.Services[0].EventType)
	require.Equal(t, "ev-3", a.Services[0].EventID)
	var deleted []string
	require.NoError(t, json.Unmarshal(a.Services[0].Paras.Successful, &deleted))
	require.Equal(t, []string{sub.DeviceID}, deleted)
	require.Len(t, a.Services[0].Paras.Failed, 2)
	require.Equal(t, ep, a.Services[0].Paras.Failed[0].DeviceID)
	require.Equal(t, "not_behind_gateway", a.Services[0].Paras.Failed[0].ErrorCode)
	require.Equal(t, "device_not_found", a.Services[0].Paras.Failed[1].ErrorCode)
	require.Equal(t, http.StatusNotFound, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+sub.DeviceID, nil, nil))
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+ep, nil, nil), "another's device is untouched")
	ids, total := subDevicesOf(t, tp, gw)
	require.Equal(t, 1, total)
	require.Equal(t, []string{second}, ids)
}

// gatewayLog returns the device's log entries as one text.
func gatewayLog(t *testing.T, tp *testPlatform, id string) string {
	t.Helper()
	var out json.RawMessage
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/devices/"+id+"/log?limit=100", nil, &out))
	return string(out)
}

// subDevicesOf lists the gateway's sub-devices through the registry.
func subDevicesOf(t *testing.T, tp *testPlatform, gw string) ([]string, int) {
	t.Helper()
	subs, total, err := tp.reg.SubDevices(context.Background(), gw, registry.Query{})
	require.NoError(t, err)
	var ids []string
	for _, s := range subs {
		ids = append(ids, s.ID)
	}
	return ids, total
}
