package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLwM2MComposite (LWM-11, issue 16 item 4): the composite operations
// through the API on a strict LwM2M 1.1 device (lwm2mtest.Sensor decodes
// the FETCH and iPATCH bodies per TS Transport §6.4 and RFC 8428):
// Read-Composite in the registration's format and in SenML JSON, with the
// answer in Leshan's shape and its mapped value a report;
// Write-Composite; Observe-Composite whose notification is a report;
// its cancel. A 1.0 device gets 400 composite_unsupported and nothing is
// sent; bad bodies get 400 naming what is wrong.
func TestLwM2MComposite(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceDataChanged")
	const imei = "868333030002301"
	id, psk := registerTempSensor(t, tp, imei)
	d, sensor := startStrictSensor(t, tp, imei, psk, "1.1", sensorLinks)
	url := "/doze/v1/devices/" + id + "/lwm2m-composite"

	sensor.Set(19.5)
	var a opAnswer
	require.Equal(t, http.StatusOK, tp.call(t, "POST", url, map[string]any{"op": "read", "paths": []string{"/3303/0/5700", "/3303/0/5701"}}, &a))
	require.Equal(t, opAnswer{Status: "CONTENT", Success: true, Code: "2.05", Content: map[string]any{
		"/3303/0/5700": map[string]any{"kind": "singleResource", "id": float64(5700), "type": "FLOAT", "value": 19.5},
		"/3303/0/5701": map[string]any{"kind": "singleResource", "id": float64(5701), "type": "STRING", "value": "Cel"},
	}}, a)
	hook.wait(t, "of the composite read (mapped)", temperatureOf(id, "temperature", 19.5))

	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", url, map[string]any{"op": "read", "paths": []string{"/3303/0"}, "format": "SENML_JSON"}, &a))
	require.Equal(t, "CONTENT", a.Status)
	inst := a.Content["/3303/0"].(map[string]any)
	require.Equal(t, "instance", inst["kind"])
	require.Len(t, inst["resources"], 3)

	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", url, map[string]any{"op": "write",
		"values": map[string]any{"/3303/0/5750": map[string]any{"id": 5750, "value": "outdoor"}}}, &a))
	require.Equal(t, opAnswer{Status: "CHANGED", Success: true, Code: "2.04"}, a)
	require.Equal(t, "outdoor", sensor.AppType(), "the device took the iPATCH")

	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", url, map[string]any{"op": "write", "values": map[string]any{"/3303/0/5700": 3}}, &a))
	require.Equal(t, opAnswer{Status: "METHOD_NOT_ALLOWED", Code: "4.05", ErrorMessage: "record 0: /3303/0/5700 is not writable"}, a,
		"the device's refusal is a result, as in Leshan")

	paths := []string{"/3303/0/5700", "/3303/0/5750"}
	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", url, map[string]any{"op": "observe", "paths": paths}, &a))
	require.Equal(t, "CONTENT", a.Status)
	require.Equal(t, []string{"5700", "5750"}, d.CompositeObserved())
	sensor.Set(26.5)
	require.NoError(t, d.NotifyComposite())
	hook.wait(t, "of the composite notification (mapped)", temperatureOf(id, "temperature", 26.5))
	a = opAnswer{}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", url, map[string]any{"op": "cancel-observe", "paths": paths}, &a))
	require.Equal(t, "CHANGED", a.Status)
	require.Nil(t, d.CompositeObserved(), "the device ended the observation")

	for _, c := range []struct {
		body any
		code string
		want string
	}{
		{map[string]any{"op": "read"}, "bad_lwm2m_operation", "1 to 64 paths, got 0"},
		{map[string]any{"op": "fetch", "paths": paths}, "bad_lwm2m_operation", "none of read, write, observe, cancel-observe"},
		{map[string]any{"op": "read", "paths": []string{"/3303/x"}}, "bad_lwm2m_operation", `"/3303/x" is not an LwM2M path`},
		{map[string]any{"op": "read", "paths": paths, "format": "TLV"}, "bad_lwm2m_operation", "SENML_JSON or SENML_CBOR"},
		{map[string]any{"op": "write", "values": map[string]any{"/3303/0": 1}}, "bad_lwm2m_operation", "resources and resource instances"},
		{map[string]any{"op": "read", "paths": paths, "values": map[string]any{"/3303/0/5750": "x"}}, "bad_lwm2m_operation", "paths only"},
	} {
		var e map[string]any
		require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", url, c.body, &e), "%v", c.body)
		require.Equal(t, c.code, e["error_code"], "%v: %v", c.body, e)
		require.Contains(t, e["error_desc"], c.want)
	}

	const old = "868333030002302"
	oldID, oldPSK := registerTempSensor(t, tp, old)
	d10, _ := startStrictSensor(t, tp, old, oldPSK, "1.0", "</1/0>,</3303/0>")
	var e map[string]any
	require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", "/doze/v1/devices/"+oldID+"/lwm2m-composite",
		map[string]any{"op": "read", "paths": []string{"/3303/0/5700"}}, &e))
	require.Equal(t, "composite_unsupported", e["error_code"])
	require.Contains(t, e["error_desc"], "registered LwM2M 1.0; composite operations are LwM2M 1.1")
	for _, r := range d10.Requests() {
		require.False(t, strings.HasPrefix(r.String(), "FETCH"), "no composite request reached the 1.0 device: %v", r)
	}
}
