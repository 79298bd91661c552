package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/doze-io/doze/examples/device/sim"
	"github.com/doze-io/doze/ota"
	"github.com/stretchr/testify/require"
)

// upload posts a package as multipart/form-data (docs/api.md "Upgrades").
func (tp *testPlatform) upload(t *testing.T, content []byte, fields map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("file", "package.bin")
	require.NoError(t, err)
	fw.Write(content)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	require.NoError(t, mw.Close())
	resp := tp.appRequest(t, "POST", "/iodm/northbound/v1.5.0/category", mw.FormDataContentType(), &buf)
	defer resp.Body.Close()
	var pkg packageJSON
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&pkg))
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	return pkg.FileID
}

// waitSubOperation waits until the task's only sub-task ends and returns it.
func (tp *testPlatform) waitSubOperation(t *testing.T, op string) map[string]any {
	t.Helper()
	var row map[string]any
	require.Eventually(t, func() bool {
		var subs struct {
			Data []map[string]any `json:"data"`
		}
		tp.call(t, "GET", "/iodm/northbound/v1.5.0/operations/"+op+"/subOperations", nil, &subs)
		if len(subs.Data) != 1 {
			return false
		}
		row = subs.Data[0]
		return row["status"] == "success" || row["status"] == "fail"
	}, 60*time.Second, 50*time.Millisecond, "sub-operation of %s did not end: %v", op, &row)
	return row
}

// TestUpgrades runs a PCP software upgrade and an object-5 firmware upgrade
// of a simulated meter through the API (OTA-1, OTA-2, OTA-6, OTA-7).
func TestUpgrades(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	for _, nt := range []string{"swUpgradeResultNotify", "fwUpgradeStateChangeNotify"} {
		require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iodm/app/sub/v1.1.0/subscribe",
			map[string]any{"notifyType": nt, "callbackurl": hook.srv.URL + "/ota"}, nil))
	}
	const imei = "868333030000500"
	id, psk := registerDevice(t, tp, imei)
	dev, err := sim.New(sim.Config{Server: tp.lwm.DTLSAddr().String(), IMEI: imei, Key: psk,
		Power: sim.Power{Mode: sim.DRX}, ReportPeriod: time.Hour})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { dev.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-dev.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the simulated meter did not register")
	}

	image := make([]byte, 20_000)
	rand.Read(image)
	sw := tp.upload(t, image, map[string]string{"fileType": "softwarePackage", "version": "1.1.0", "deviceType": demoDeviceType,
		"manufacturerName": "Doze Labs", "model": demoModel, "protocolType": "LWM2M", "sourceVersions": "1.0.0", "blockSize": "500"})
	var op struct {
		OperationID string `json:"operationId"`
	}
	// A retryInterval that would overflow a Duration is refused (review fix).
	var e apiError
	require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", "/iodm/northbound/v1.5.0/operations/softwareUpgrade",
		map[string]any{"fileId": sw, "targets": map[string]any{"devices": []string{id}},
			"policy": map[string]any{"executeType": "now", "retryInterval": int64(1) << 40}}, &e))
	require.Contains(t, e.Desc, "policy.retryInterval")
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iodm/northbound/v1.5.0/operations/softwareUpgrade",
		map[string]any{"fileId": sw, "targets": map[string]any{"devices": []string{id}}}, &op))
	row := tp.waitSubOperation(t, op.OperationID)
	require.Equal(t, "success", row["status"], "sub-operation %v", row)
	require.Equal(t, "1.1.0", dev.SoftwareVersion())
	require.EqualValues(t, 100, row["progress"])
	hook.wait(t, "swUpgradeResultNotify", func(p map[string]any) bool {
		return p["notifyType"] == "swUpgradeResultNotify" && p["swUpgradeResult"] == "SUCCESS" && p["deviceId"] == id
	})
	var d deviceJSON
	tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &d)
	require.Equal(t, "1.1.0", d.DeviceInfo.SWVersion)

	fwImage := append([]byte("DOZEFW FW2.0\n"), image[:3000]...)
	fw := tp.upload(t, fwImage, map[string]string{"fileType": "firmwarePackage", "version": "FW2.0", "deviceType": demoDeviceType,
		"manufacturerName": "Doze Labs", "model": demoModel, "protocolType": "LWM2M"})
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iodm/northbound/v1.5.0/operations/firmwareUpgrade",
		map[string]any{"fileId": fw, "targets": map[string]any{"devices": []string{id}}}, &op))
	row = tp.waitSubOperation(t, op.OperationID)
	require.Equal(t, "success", row["status"], "sub-operation %v", row)
	require.Equal(t, "FW2.0", dev.FirmwareVersion())
	hook.wait(t, "fwUpgradeStateChangeNotify downloading", func(p map[string]any) bool {
		return p["notifyType"] == "fwUpgradeStateChangeNotify" && p["step"] == "1"
	})

	// The same package again: the device is at the target version (OTA-2).
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iodm/northbound/v1.5.0/operations/softwareUpgrade",
		map[string]any{"fileId": sw, "targets": map[string]any{"devices": []string{id}}}, &op))
	row = tp.waitSubOperation(t, op.OperationID)
	require.Equal(t, "The current version is the same as the target version", row["errorReason"])
}

// TestSubOperationProgress: a software sub-task's progress is the blocks
// served over the package's blocks, not 100% once one block is served.
func TestSubOperationProgress(t *testing.T) {
	sw := ota.SubTask{TaskID: "t1", Kind: ota.Software, State: ota.SubProcessing}
	saved := sw
	saved.Blocks = 10
	fw := ota.SubTask{TaskID: "t2", Kind: ota.Firmware, State: ota.SubProcessing, Downloaded: 750, Size: 3000}
	done := sw
	done.State = ota.SubSuccess
	for _, c := range []struct {
		name      string
		s         ota.SubTask
		pkgBlocks int
		live      ota.Served
		isLive    bool
		want      int
	}{
		{"one of 40 blocks served, live", sw, 40, ota.Served{TaskID: "t1", Blocks: 40, Distinct: 1}, true, 2},
		{"20 of 40 served, live", sw, 40, ota.Served{TaskID: "t1", Blocks: 40, Distinct: 20}, true, 50},
		{"all 40 served, live", sw, 40, ota.Served{TaskID: "t1", Blocks: 40, Distinct: 40}, true, 100},
		{"10 of 40 as last saved", saved, 40, ota.Served{}, false, 25},
		{"live tracking of another task is ignored", saved, 40, ota.Served{TaskID: "other", Blocks: 40, Distinct: 40}, true, 25},
		{"unknown package size", sw, 0, ota.Served{}, false, 0},
		{"success", done, 40, ota.Served{}, false, 100},
		{"firmware bytes", fw, 0, ota.Served{}, false, 25},
	} {
		require.Equal(t, c.want, subProgress(c.s, c.pkgBlocks, c.live, c.isLive), c.name)
	}
}
