package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/stretchr/testify/require"
)

// addCodeclessProduct uploads the demo profile as model, without a codec.
func addCodeclessProduct(t *testing.T, tp *testPlatform, model string) {
	t.Helper()
	name, zipped := demoVariant(t, model, nil)
	postProfile(t, tp, name, zipped)
	require.Nil(t, tp.products.Codec(demoManufacturerID, model), "the product has no codec")
}

// TestRawDataEndToEnd (APP-5, FAQ §2.8, §6.3): a strict LwM2M 1.1 device
// over DTLS whose product has no codec notifies binary data on /19/0/0;
// the application gets it pushed as deviceDataChanged of service RawData
// with the bytes in base64, and finds it in history and in the device's
// services. A rawData command's bytes reach the device's /19/1/0 as they
// are, and the device's ACK ends the command SUCCESSFUL.
func TestRawDataEndToEnd(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceDataChanged", "deviceDatasChanged")
	addCodeclessProduct(t, tp, "WM-RAW")
	const imei = "868333030002901"
	id := registerModel(t, tp, imei, "WM-RAW")
	// registerModel does not return the PSK: the registry has it.
	d, err := tp.reg.Get(t.Context(), id)
	require.NoError(t, err)
	psk, err := hex.DecodeString(d.PSK.Hex())
	require.NoError(t, err)

	dev := startConformDevice(t, tp, imei, psk, lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11})
	require.Eventually(t, func() bool { return dev.Observed("/19/0/0") }, 20*time.Second, 10*time.Millisecond,
		"the platform observes /19/0/0 after registration (LWM-5)")

	payload := []byte{0x01, 0xFF, 0x00, 0x7E, 0x80}
	want := base64.StdEncoding.EncodeToString(payload) // "Af8AfoA="
	require.NoError(t, dev.Notify(payload))

	got := hook.wait(t, "deviceDataChanged of RawData", func(m map[string]any) bool { return m["notifyType"] == "deviceDataChanged" })
	require.Equal(t, id, got["deviceId"])
	svc := got["service"].(map[string]any)
	require.Equal(t, "RawData", svc["serviceId"])
	require.Equal(t, "RawData", svc["serviceType"])
	require.Equal(t, map[string]any{"rawData": want}, svc["data"])
	require.NotEmpty(t, svc["eventTime"])
	many := hook.wait(t, "deviceDatasChanged of RawData", func(m map[string]any) bool { return m["notifyType"] == "deviceDatasChanged" })
	require.Equal(t, map[string]any{"rawData": want}, many["services"].([]any)[0].(map[string]any)["data"])

	var hist historyAnswer
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id, nil, &hist))
	require.Equal(t, 1, hist.TotalCount, "the raw uplink is in history once (STO-2)")
	require.Equal(t, "RawData", hist.DTOs[0].ServiceID)
	require.Equal(t, want, hist.DTOs[0].Data["rawData"])

	var devJSON deviceJSON
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &devJSON))
	require.Len(t, devJSON.Services, 1)
	require.Equal(t, "RawData", devJSON.Services[0].ServiceID)
	require.Equal(t, want, devJSON.Services[0].Data["rawData"], "the shadow holds the raw data (STO-3)")
	require.NotEqual(t, "ABNORMAL", devJSON.DeviceInfo.Status, "raw data is usable data")

	// Downlink: the bytes as they are.
	down := []byte{0x00, 0x01, 0xFE, 0x7F}
	var cmd struct {
		CommandID string `json:"commandId"`
		Status    string `json:"status"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": id, "callbackUrl": hook.srv.URL + "/cmd",
		"command": map[string]any{"serviceId": "RawData", "method": "RawData",
			"paras": map[string]any{"rawData": base64.StdEncoding.EncodeToString(down)}},
	}, &cmd))
	done := hook.wait(t, "SUCCESSFUL", func(p map[string]any) bool {
		return resultCode(p) == "SUCCESSFUL" && p["commandId"] == cmd.CommandID
	})
	require.Equal(t, id, done["deviceId"])
	require.Equal(t, [][]byte{down}, dev.Data(), "the device took exactly the command's bytes")
	var ws []string
	for _, w := range dev.Writes() {
		ws = append(ws, w.String())
	}
	require.Equal(t, []string{"PUT /19/1/0/0 cf=42 → 2.04"}, ws, "one write of the opaque resource instance (LwM2M 1.1)")
}

// TestRawCommandRefusals: a RawData command whose paras are not exactly
// {"rawData":"<base64>"} of 1 to 4,096 bytes is refused with
// invalid_rawData saying what is wrong, and nothing is queued.
func TestRawCommandRefusals(t *testing.T) {
	tp := startPlatform(t)
	addCodeclessProduct(t, tp, "WM-RAW")
	id := registerModel(t, tp, "868333030002902", "WM-RAW")
	for _, c := range []struct {
		name  string
		paras any
		desc  string
	}{
		{"not base64", map[string]any{"rawData": "***"}, "not standard base64"},
		{"unpadded", map[string]any{"rawData": "AAE"}, "not standard base64"},
		{"not a string", map[string]any{"rawData": 5}, "must be a string"},
		{"another key", map[string]any{"rawData": "AA==", "x": 1}, "nothing else"},
		{"no rawData", map[string]any{"data": "AA=="}, "nothing else"},
		{"empty", map[string]any{"rawData": ""}, "0 bytes"},
		{"over 4 KB", map[string]any{"rawData": base64.StdEncoding.EncodeToString(make([]byte, 4097))}, "4097 bytes; a raw command carries 1 to 4096"},
		{"paras an array", []any{1}, "not a JSON object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e apiError
			status := tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{"deviceId": id,
				"command": map[string]any{"serviceId": "RawData", "method": "RawData", "paras": c.paras}}, &e)
			require.Equal(t, http.StatusBadRequest, status)
			require.Equal(t, "invalid_rawData", e.Code)
			require.True(t, strings.Contains(e.Desc, c.desc), "error_desc %q, want it to say %q", e.Desc, c.desc)
		})
	}
	var list struct {
		Pagination struct {
			TotalSize int `json:"totalSize"`
		} `json:"pagination"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, &list))
	require.Zero(t, list.Pagination.TotalSize, "no refused command was queued")
}

// FuzzRawPayload: any paras give the bytes of exactly {"rawData":"<base64>"}
// (1 to 4,096 of them, re-encoding to the same text) or an httpError.
func FuzzRawPayload(f *testing.F) {
	for _, s := range []string{`{"rawData":"AAE="}`, `{"rawData":""}`, `{"rawData":"AAE"}`, `{"rawData":1}`, `[]`, `null`, `{"rawData":"AA==","x":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, paras []byte) {
		b, err := rawPayload(command.Body{ServiceID: "RawData", Paras: paras}, 4096)
		if err != nil {
			var he *httpError
			require.ErrorAs(t, err, &he)
			return
		}
		require.NotEmpty(t, b)
		require.LessOrEqual(t, len(b), 4096)
		var p struct{ RawData string }
		require.NoError(t, json.Unmarshal(paras, &p))
		require.Equal(t, p.RawData, base64.StdEncoding.EncodeToString(b))
	})
}
