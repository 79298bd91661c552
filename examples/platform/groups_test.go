package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// demoVariant is the demo profile zip as product model, with edit applied
// to its devicetype-capability.json (a JSON object).
func demoVariant(t *testing.T, model string, edit func(dev map[string]any)) (name string, zipped []byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(demoProfile), int64(len(demoProfile)))
	require.NoError(t, err)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		if strings.HasSuffix(f.Name, "devicetype-capability.json") {
			var doc map[string][]map[string]any
			require.NoError(t, json.Unmarshal(b, &doc))
			doc["devices"][0]["model"] = model
			if edit != nil {
				edit(doc["devices"][0])
			}
			b, err = json.Marshal(doc)
			require.NoError(t, err)
		}
		w, err := zw.Create(f.Name)
		require.NoError(t, err)
		w.Write(b)
	}
	require.NoError(t, zw.Close())
	return demoDeviceType + "_" + demoManufacturerID + "_" + model + ".zip", buf.Bytes()
}

// registerModel registers a device of the demo manufacturer's model.
func registerModel(t *testing.T, tp *testPlatform, imei, model string) string {
	t.Helper()
	var reg struct{ DeviceID string }
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{
		"nodeId": imei, "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID, "deviceType": demoDeviceType,
			"model": model, "protocolType": "LWM2M"}}, &reg))
	return reg.DeviceID
}

// TestGroupMembers: a group and its members are listed through the API,
// page by page (docs/api.md, REG-4; issue 15 item 7).
func TestGroupMembers(t *testing.T) {
	tp := startPlatform(t)
	var ids []string
	for _, imei := range []string{"868333030001701", "868333030001702", "868333030001703"} {
		id, _ := registerDevice(t, tp, imei)
		ids = append(ids, id)
	}
	var g struct{ ID string }
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/devgroup/v1.3.0/devGroups",
		map[string]any{"name": "street-3", "deviceIds": ids}, &g))

	var one map[string]any
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/devgroup/v1.3.0/devGroups/"+g.ID, nil, &one))
	require.Equal(t, "street-3", one["name"])
	require.EqualValues(t, 3, one["curNum"])

	type members struct {
		TotalCount, PageNo, PageSize int
		DeviceIDs                    []string `json:"deviceIds"`
	}
	var p0, p1 members
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/devgroup/v1.3.0/devGroups/"+g.ID+"/members?pageNo=0&pageSize=2", nil, &p0))
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/devgroup/v1.3.0/devGroups/"+g.ID+"/members?pageNo=1&pageSize=2", nil, &p1))
	require.Equal(t, 3, p0.TotalCount)
	require.Equal(t, 2, p0.PageSize)
	require.Len(t, p0.DeviceIDs, 2)
	require.Len(t, p1.DeviceIDs, 1)
	require.ElementsMatch(t, ids, append(p0.DeviceIDs, p1.DeviceIDs...), "the two pages hold every member once")

	var e apiError
	require.Equal(t, http.StatusNotFound, tp.call(t, "GET", "/iocm/app/devgroup/v1.3.0/devGroups/no-such-group/members", nil, &e))
	require.NotEmpty(t, e.Code)
}

// TestBatchChecksModelAndTimeout: a batch task's command is checked
// against each device's product model as a single command is, and the
// task's timeout bounds its commands' expireTime (CMD-8, PRF-9; issue 15
// item 7).
func TestBatchChecksModelAndTimeout(t *testing.T) {
	tp := startPlatform(t)
	id, _ := registerDevice(t, tp, "868333030001711")
	task := func(timeout int, cmd map[string]any, param map[string]any) (int, map[string]any) {
		body := map[string]any{"taskName": "t", "taskType": "DeviceCmd",
			"param": map[string]any{"type": "DeviceList", "deviceList": []string{id}, "command": cmd}}
		if timeout != 0 {
			body["timeout"] = timeout
		}
		for k, v := range param {
			body["param"].(map[string]any)[k] = v
		}
		var out map[string]any
		return tp.call(t, "POST", "/iocm/app/batchtask/v1.1.0/tasks", body, &out), out
	}
	good := map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}}

	for name, cmd := range map[string]map[string]any{
		"unknown method":     {"serviceId": "Meter", "method": "SELF_DESTRUCT", "paras": map[string]any{}},
		"unknown service":    {"serviceId": "Valve", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}},
		"para out of range":  {"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 5}},
		"required para gone": {"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{}},
	} {
		status, out := task(0, cmd, nil)
		require.Equal(t, http.StatusBadRequest, status, "%s: %v", name, out)
		require.Equal(t, "command_mismatch", out["error_code"], "%s: %v", name, out)
		require.Contains(t, out["error_desc"], demoManufacturerID+"/"+demoModel, "%s: the answer names the product", name)
	}
	for _, bad := range []int{-1, 9, 2881} {
		status, out := task(bad, good, nil)
		require.Equal(t, http.StatusBadRequest, status, "timeout %d: %v", bad, out)
		require.Equal(t, "invalid_timeout", out["error_code"])
	}

	expireOf := func(taskID string) float64 {
		var d struct {
			TaskDetails []struct {
				Command map[string]any `json:"command"`
			} `json:"taskDetails"`
		}
		require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/batchtask/v1.1.0/taskDetails?taskID="+taskID, nil, &d))
		require.Len(t, d.TaskDetails, 1)
		return d.TaskDetails[0].Command["expireTime"].(float64)
	}
	status, out := task(10, good, nil)
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.EqualValues(t, 600, expireOf(out["taskID"].(string)), "timeout 10 minutes: no command waits longer than 600 s")
	status, out = task(10, good, map[string]any{"expireTime": 300})
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.EqualValues(t, 300, expireOf(out["taskID"].(string)), "a shorter expireTime stays")
}

// TestUpgradeCapabilityEnforced: a device whose product declares no
// software upgrade is refused from a software upgrade task with its
// reason; devices that can take it are in the task (OTA-5; issue 15
// item 7).
func TestUpgradeCapabilityEnforced(t *testing.T) {
	tp := startPlatform(t)
	name, zipped := demoVariant(t, "WM200", func(dev map[string]any) {
		om := dev["omCapability"].(map[string]any)
		om["upgradeCapability"] = map[string]any{"supportUpgrade": false}
	})
	_, _, err := tp.products.Add(context.Background(), name, zipped, nil)
	require.NoError(t, err)
	able, _ := registerDevice(t, tp, "868333030001721")
	unable := registerModel(t, tp, "868333030001722", "WM200")
	sw := tp.upload(t, []byte("a software image"), map[string]string{"fileType": "softwarePackage", "version": "1.1.0",
		"deviceType": demoDeviceType, "manufacturerName": "Doze Labs", "protocolType": "LWM2M"})

	var e struct {
		Code     string `json:"error_code"`
		Desc     string `json:"error_desc"`
		Problems []refusedDevice
	}
	require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", "/iodm/northbound/v1.5.0/operations/softwareUpgrade",
		map[string]any{"fileId": sw, "targets": map[string]any{"devices": []string{unable}}}, &e))
	require.Equal(t, "upgrade_not_supported", e.Code)
	require.Equal(t, []refusedDevice{{unable, "its product DozeLabs/WM200 does not support software upgrade (its profile's omCapability.upgradeCapability.supportUpgrade is not true)"}},
		e.Problems)

	var op struct {
		OperationID    string          `json:"operationId"`
		RefusedDevices []refusedDevice `json:"refusedDevices"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iodm/northbound/v1.5.0/operations/softwareUpgrade",
		map[string]any{"fileId": sw, "targets": map[string]any{"devices": []string{able, unable}}}, &op))
	require.Len(t, op.RefusedDevices, 1)
	require.Equal(t, unable, op.RefusedDevices[0].DeviceID)
	var subs struct {
		Data []map[string]any `json:"data"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iodm/northbound/v1.5.0/operations/"+op.OperationID+"/subOperations", nil, &subs))
	require.Len(t, subs.Data, 1, "only the device that can take the upgrade is in the task")
	require.Equal(t, able, subs.Data[0]["deviceId"])
}
