package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/store"
	"github.com/stretchr/testify/require"
)

// rawCall sends body as is (not marshalled) and returns the status and the
// decoded error body.
func (tp *testPlatform) rawCall(t *testing.T, method, path string, body []byte) (int, apiError) {
	t.Helper()
	resp := tp.appRequest(t, method, path, "application/json", bytes.NewReader(body))
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var e apiError
	if resp.StatusCode >= 400 {
		require.NoError(t, json.Unmarshal(raw, &e), "error answers are JSON {error_code, error_desc}: %s", raw)
	}
	return resp.StatusCode, e
}

// TestCommandRules checks CMD-6 (403 for a callbackUrl whose host and port
// differ from the app's subscriptions) and the cancel rule of docs/api.md (200
// while PENDING, 409 once it left PENDING, 404 for an unknown command).
func TestCommandRules(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	id, _ := registerDevice(t, tp, "868333030000101")
	subscribe(t, tp, hook, "deviceDataChanged")

	cmd := func(callback string) map[string]any {
		return map[string]any{"deviceId": id, "callbackUrl": callback,
			"command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}}}
	}
	var e apiError
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	require.Equal(t, http.StatusForbidden, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", cmd(other.URL+"/cmd"), &e), "CMD-6")
	require.Equal(t, "callback_address_conflict", e.Code)
	require.NotEmpty(t, e.Desc)

	var c map[string]any
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", cmd(hook.srv.URL+"/cmd"), &c))
	for _, k := range []string{"commandId", "appId", "deviceId", "command", "callbackUrl", "expireTime", "status",
		"creationTime", "issuedTimes", "maxRetransmit"} {
		require.Contains(t, c, k, "docs/api.md field of a command answer")
	}
	require.Equal(t, "PENDING", c["status"], "the device never connected")
	cid := c["commandId"].(string)

	require.Equal(t, http.StatusBadRequest, tp.call(t, "PUT", "/iocm/app/cmd/v1.4.0/deviceCommands/"+cid, map[string]any{"status": "SENT"}, &e))
	require.Equal(t, "invalid_status", e.Code)
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/iocm/app/cmd/v1.4.0/deviceCommands/"+cid, map[string]any{"status": "CANCELED"}, &c))
	require.Equal(t, "CANCELED", c["status"])
	require.Equal(t, http.StatusConflict, tp.call(t, "PUT", "/iocm/app/cmd/v1.4.0/deviceCommands/"+cid, map[string]any{"status": "CANCELED"}, &e),
		"a command that left PENDING cannot be cancelled")
	require.Equal(t, "command_not_pending", e.Code)
	require.Equal(t, http.StatusNotFound, tp.call(t, "PUT", "/iocm/app/cmd/v1.4.0/deviceCommands/nope", map[string]any{"status": "CANCELED"}, &e))
	require.Equal(t, "command_not_found", e.Code)

	var task map[string]any
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommandCancelTasks", map[string]any{"deviceId": id}, &task))
	for _, k := range []string{"taskId", "deviceId", "status", "totalCount", "deviceCommands"} {
		require.Contains(t, task, k)
	}
}

// TestHistoryPaging checks STO-2: without pageNo the whole history comes
// back, newest first; with pageNo it is paged.
func TestHistoryPaging(t *testing.T) {
	tp := startPlatform(t)
	id, _ := registerDevice(t, tp, "868333030000102")
	// Recent times: the platform prunes history older than 7 days (STO-2)
	// when it starts, which may run while this test writes.
	t0 := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	const n = 40 // more than the default page size of 25
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Minute)
		data := fmt.Appendf(nil, `{"batteryLevel":%d}`, i)
		require.NoError(t, tp.db.SaveReport(id, []store.HistoryRecord{{DeviceID: id, GatewayID: id, ServiceID: "Battery", Data: data, Time: at}},
			map[string]map[string]any{"Battery": {"batteryLevel": i}}, at))
	}
	type answer struct {
		TotalCount int `json:"totalCount"`
		PageSize   int `json:"pageSize"`
		DTOs       []struct {
			Data      map[string]any `json:"data"`
			Timestamp string         `json:"timestamp"`
		} `json:"deviceDataHistoryDTOs"`
	}
	var all answer
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id, nil, &all))
	require.Equal(t, n, all.TotalCount)
	require.Equal(t, n, all.PageSize, "the answer says it is one page of everything")
	require.Len(t, all.DTOs, n, "pageNo absent = no paging (STO-2)")
	require.EqualValues(t, n-1, all.DTOs[0].Data["batteryLevel"], "newest first")

	var pg answer
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id+"&pageNo=1&pageSize=10", nil, &pg))
	require.Equal(t, n, pg.TotalCount)
	require.Len(t, pg.DTOs, 10)
	require.EqualValues(t, n-11, pg.DTOs[0].Data["batteryLevel"])

	// A property filter counts and pages only records that have it.
	for i := range 5 {
		at := t0.Add(time.Duration(n+i) * time.Minute)
		require.NoError(t, tp.db.SaveReport(id, []store.HistoryRecord{{DeviceID: id, GatewayID: id, ServiceID: "Connectivity",
			Data: fmt.Appendf(nil, `{"signalStrength":%d}`, -80-i), Time: at}}, map[string]map[string]any{"Connectivity": {"signalStrength": -80 - i}}, at))
	}
	var prop answer
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&property=batteryLevel&pageNo=0&pageSize=10", nil, &prop))
	require.Equal(t, n, prop.TotalCount)
	require.Len(t, prop.DTOs, 10)
	require.EqualValues(t, n-1, prop.DTOs[0].Data["batteryLevel"])

	var e apiError
	require.Equal(t, http.StatusBadRequest, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&pageSize=0&pageNo=0", nil, &e))
	require.Contains(t, e.Desc, "pageSize")
	require.Equal(t, http.StatusBadRequest, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&startTime=yesterday", nil, &e))
	require.Contains(t, e.Desc, "startTime")
	require.Equal(t, http.StatusBadRequest, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory", nil, &e))
	require.Equal(t, "missing_deviceId", e.Code)

	// Deleting the device deletes its history and shadow (REG-5).
	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", "/iocm/app/dm/v1.4.0/devices/"+id, nil, nil))
	require.Eventually(t, func() bool {
		_, total, err := tp.db.History().Query(store.HistoryQuery{DeviceID: id, Page: -1})
		sh, serr := tp.db.Shadow().Get(id)
		return err == nil && total == 0 && serr == nil && len(sh) == 0
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, http.StatusNotFound, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &e))
	require.Equal(t, http.StatusNotFound, tp.call(t, "DELETE", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &e))
}

// TestBadInput sends broken bodies to the JSON handlers: every answer is a
// 4xx with the error body, never a 500.
func TestBadInput(t *testing.T) {
	tp := startPlatform(t, func(c *Config) { c.RateLimit = 100000 })
	id, _ := registerDevice(t, tp, "868333030000103")
	bodies := map[string][]byte{
		"empty":       nil,
		"malformed":   []byte(`{"deviceId":`),
		"not object":  []byte(`[1,2]`),
		"null":        []byte(`null`),
		"wrong type":  []byte(`{"deviceId":5,"nodeId":5,"status":5,"serviceDesireds":5,"notifyType":5,"name":5,"command":5}`),
		"nested type": []byte(`{"deviceId":"` + id + `","command":{"serviceId":1},"deviceInfo":{"model":1},"serviceDesireds":[{"desired":1}]}`),
		"huge":        append(append([]byte(`{"name":"`), bytes.Repeat([]byte("x"), maxBody+10)...), `"}`...),
		"unknown ids": []byte(`{"deviceId":"nope","devGroupId":"nope","deviceIds":["nope"],"command":{"serviceId":"Meter","method":"X"}}`),
		"bad paras":   []byte(`{"deviceId":"` + id + `","command":{"serviceId":"Meter","method":"SET_REPORT_PERIOD","paras":[1]}}`),
	}
	calls := []struct{ method, path string }{
		{"POST", "/iocm/app/reg/v1.1.0/deviceCredentials"},
		{"PUT", "/iocm/app/dm/v1.4.0/devices/" + id},
		{"PUT", "/iocm/app/shadow/v1.5.0/devices/" + id},
		{"POST", "/iocm/app/devgroup/v1.3.0/devGroups"},
		{"POST", "/iocm/app/dm/v1.1.0/devices/addDevGroupTagToDevices"},
		{"POST", "/iocm/app/cmd/v1.4.0/deviceCommands"},
		{"PUT", "/iocm/app/cmd/v1.4.0/deviceCommands/nope"},
		{"POST", "/iocm/app/cmd/v1.4.0/deviceCommandCancelTasks"},
		{"POST", "/iocm/app/batchtask/v1.1.0/tasks"},
		{"POST", "/iocm/app/sub/v1.2.0/subscriptions"},
		{"POST", "/iodm/app/sub/v1.1.0/subscribe"},
		{"POST", "/doze/v1/codec/decode"},
		{"POST", "/iodm/northbound/v1.5.0/operations/firmwareUpgrade"},
	}
	for name, body := range bodies {
		for _, c := range calls {
			status, e := tp.rawCall(t, c.method, c.path, body)
			if status < 300 {
				continue // e.g. PUT device with null changes nothing
			}
			require.True(t, status >= 400 && status < 500, "%s %s with %s body: %d %+v", c.method, c.path, name, status, e)
			require.NotEmpty(t, e.Code, "%s %s with %s body", c.method, c.path, name)
			require.NotEmpty(t, e.Desc, "%s %s with %s body", c.method, c.path, name)
		}
	}
	// The answer says where it went wrong.
	_, e := tp.rawCall(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", bodies["wrong type"])
	require.Contains(t, e.Desc, "deviceId")
	_, e = tp.rawCall(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", bodies["malformed"])
	require.Contains(t, e.Desc, "byte")
	_, e = tp.rawCall(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", bodies["not object"])
	require.NotContains(t, e.Desc, `field ""`)
	_, e = tp.rawCall(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", bodies["huge"])
	require.Equal(t, "body_too_large", e.Code)
	status, e := tp.rawCall(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", []byte(`{"command":{"serviceId":"Meter","method":"SET_REPORT_PERIOD"}}`))
	require.Equal(t, http.StatusBadRequest, status, "a missing deviceId is bad input, not an unknown device: %+v", e)
	require.Contains(t, e.Desc, "deviceId")
}

// FuzzCommandBody feeds arbitrary bodies to the command and registration
// handlers: no panic, no 5xx.
func FuzzCommandBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"deviceId":"x"}`, `[`, `null`, `{"command":{"paras":[]}}`,
		`{"nodeId":"1","deviceInfo":{"manufacturerId":"` + demoManufacturerID + `","model":"` + demoModel + `"}}`,
		`{"deviceId":1}`, `{"timeout":-1}`, `{"psk":"zz"}`, `{"command":{"serviceId":"Meter","method":"SET_REPORT_PERIOD","paras":{"period":"x"}}}`} {
		f.Add([]byte(s))
	}
	tp := startPlatform(f, func(c *Config) { c.RateLimit = 1 << 30 })
	h := tp.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/iocm/app/cmd/v1.4.0/deviceCommands", "/iocm/app/reg/v1.1.0/deviceCredentials"} {
			req := httptest.NewRequest("POST", path, bytes.NewReader(body))
			req.Header.Set("app_key", tp.app.ID)
			req.Header.Set("Authorization", "Bearer "+tp.token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			// 429 is the APP-1 rate limit under the fuzzer's pace.
			if rec.Code >= 500 {
				t.Fatalf("POST %s %q: %d %s", path, body, rec.Code, strings.TrimSpace(rec.Body.String()))
			}
		}
	})
}

// TestUploadTooLarge checks that an upload part over its cap is refused
// with 413 upload_too_large naming the limit, while it streams, and that
// nothing of it stays on disk (SEC-3).
func TestUploadTooLarge(t *testing.T) {
	tp := startPlatform(t, func(c *Config) { c.MaxUpload = 1 << 20 })
	for _, c := range []struct{ path, part, limit string }{
		{"/doze/v1/products", "profile", "4194304 bytes (4 MiB)"},
		{"/iodm/northbound/v1.5.0/category", "file", "1048576 bytes (1 MiB)"},
	} {
		pr, pw := io.Pipe()
		go func() {
			// A multipart file part that never ends before the limit.
			fmt.Fprintf(pw, "--B\r\nContent-Disposition: form-data; name=%q; filename=\"x\"\r\n\r\n", c.part)
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for range 6 {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Close()
		}()
		resp := tp.appRequest(t, "POST", c.path, "multipart/form-data; boundary=B", pr)
		var e apiError
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		resp.Body.Close()
		pr.Close()
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, c.path)
		require.Equal(t, "upload_too_large", e.Code, c.path)
		require.Contains(t, e.Desc, c.limit, c.path)
	}
	left, err := os.ReadDir(filepath.Join(tp.cfg.DataDir, "packages"))
	require.NoError(t, err)
	require.Empty(t, left, "a refused package leaves no file behind")
	require.Zero(t, tp.uploads.inFlight(), "every upload slot is given back")
}

// TestListDevicesSortDESC checks that sort=DESC orders the whole list
// before paging: page 0 of DESC holds the newest devices.
func TestListDevicesSortDESC(t *testing.T) {
	tp := startPlatform(t)
	var ids []string
	for i := range 4 {
		id, _ := registerDevice(t, tp, fmt.Sprintf("86833303000040%d", i))
		ids = append(ids, id)
	}
	type list struct {
		TotalCount int `json:"totalCount"`
		Devices    []struct {
			DeviceID string `json:"deviceId"`
		} `json:"devices"`
	}
	var asc, desc list
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices?pageNo=0&pageSize=2", nil, &asc))
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices?pageNo=0&pageSize=2&sort=DESC", nil, &desc))
	require.Equal(t, asc.TotalCount, desc.TotalCount)
	var all list
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices?pageNo=0&pageSize=1000", nil, &all))
	n := len(all.Devices)
	require.GreaterOrEqual(t, n, 4)
	require.Equal(t, all.Devices[n-1].DeviceID, desc.Devices[0].DeviceID, "DESC starts with the last of ASC")
	require.Equal(t, all.Devices[n-2].DeviceID, desc.Devices[1].DeviceID)
	require.Equal(t, []string{ids[3], ids[2]}, []string{desc.Devices[0].DeviceID, desc.Devices[1].DeviceID},
		"DESC starts with the devices registered last")
	var e apiError
	require.Equal(t, http.StatusBadRequest, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices?sort=sideways", nil, &e))
	require.Contains(t, e.Desc, "sort")
}

// TestCreateGroupAllOrNothing checks that a group with an unknown member
// is refused as a whole: the name stays free.
func TestCreateGroupAllOrNothing(t *testing.T) {
	tp := startPlatform(t)
	id, _ := registerDevice(t, tp, "868333030000501")
	var e apiError
	require.Equal(t, http.StatusNotFound, tp.call(t, "POST", "/iocm/app/devgroup/v1.3.0/devGroups",
		map[string]any{"name": "g1", "deviceIds": []string{id, "nope"}}, &e))
	require.Equal(t, "device_not_found", e.Code)
	var g map[string]any
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/devgroup/v1.3.0/devGroups",
		map[string]any{"name": "g1", "deviceIds": []string{id}}, &g))
	var list struct {
		TotalCount int `json:"totalCount"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/devgroup/v1.3.0/devGroups", nil, &list))
	require.Equal(t, 1, list.TotalCount)
}

// TestCancelOtherAppsCommand checks that one app can neither cancel nor
// list another app's command (it is answered as unknown), nor cancel it
// with a device's cancel task (the device is unknown to it, APP-3).
func TestCancelOtherAppsCommand(t *testing.T) {
	tp := startPlatform(t, func(c *Config) {
		b, _ := json.Marshal([]App{{ID: "app-a", Secret: "secret-a", HistoryEnabled: true}, {ID: "app-b", Secret: "secret-b"}})
		require.NoError(t, os.WriteFile(c.DataDir+"/apps.json", b, 0o600))
	})
	id, _ := registerDevice(t, tp, "868333030000601")
	var c map[string]any
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{"deviceId": id,
		"command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}}}, &c))
	cid := c["commandId"].(string)
	require.Equal(t, "app-a", c["appId"])
	require.Equal(t, "app-a", tp.app.ID)

	b, ok := tp.auth.App("app-b")
	require.True(t, ok)
	tok, err := tp.auth.Login(addr1, b.ID, b.Secret)
	require.NoError(t, err)
	a := tp.app
	tp.app, tp.token = b, tok.AccessToken
	var e apiError
	require.Equal(t, http.StatusNotFound, tp.call(t, "PUT", "/iocm/app/cmd/v1.4.0/deviceCommands/"+cid, map[string]any{"status": "CANCELED"}, &e))
	require.Equal(t, "command_not_found", e.Code)
	// nor list it, by device or in all
	var list struct {
		Pagination struct {
			TotalSize int `json:"totalSize"`
		} `json:"pagination"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands", nil, &list))
	require.Zero(t, list.Pagination.TotalSize, "app-b lists no command of app-a")
	require.Equal(t, http.StatusNotFound, tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, nil),
		"app-a's device does not exist for app-b (APP-3)")
	// and cancelling all PENDING commands of the device leaves app-a's
	require.Equal(t, http.StatusNotFound, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommandCancelTasks", map[string]any{"deviceId": id}, &e),
		"app-a's device does not exist for app-b (APP-3)")
	require.Equal(t, "device_not_found", e.Code)
	tp.app = a
	tp.token = tp.login(t)
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/iocm/app/cmd/v1.4.0/deviceCommands/"+cid, map[string]any{"status": "CANCELED"}, &c))
	var list2 struct {
		Data []map[string]any `json:"data"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, &list2))
	require.Len(t, list2.Data, 1, "app-a lists its own command")
}
