package main

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

// newAdminApp creates an app through the administrator API with settings
// and makes it the caller of tp.
func newAdminApp(t *testing.T, tp *testPlatform, settings map[string]any) appJSON {
	t.Helper()
	var created struct {
		AppID  string  `json:"appId"`
		Secret string  `json:"secret"`
		App    appJSON `json:"app"`
	}
	require.Equal(t, http.StatusCreated, tp.adminCall(t, tp.newAdminToken, "POST", "/doze/v1/apps", settings, &created))
	resp, err := http.PostForm(tp.api.URL+"/iocm/app/sec/v1.1.0/login", url.Values{"appId": {created.AppID}, "secret": {created.Secret}})
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	tok, err := tp.auth.Login(addr1, created.AppID, created.Secret)
	require.NoError(t, err)
	tp.app, tp.token = App{ID: created.AppID, Secret: created.Secret}, tok.AccessToken
	return created.App
}

// registerOwn registers a device of the caller's product model.
func registerOwn(t *testing.T, tp *testPlatform, imei, model string) (int, apiError, string) {
	t.Helper()
	var out struct {
		apiError
		DeviceID string `json:"deviceId"`
	}
	status := tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{"nodeId": imei,
		"deviceInfo": map[string]any{"manufacturerId": demoManufacturerID, "deviceType": demoDeviceType, "model": model, "protocolType": "LWM2M"}}, &out)
	return status, out.apiError, out.DeviceID
}

// TestDeviceQuota (APP-3): an app with maxDevices set through the
// administrator API registers up to that many devices; one more is 403
// device_quota_exceeded in the API's error shape, singly, in a batch (per
// row) and under concurrent registrations; a deleted device frees its
// place; the administrator raises or lifts the quota. An app that still
// owns devices is not deleted.
func TestDeviceQuota(t *testing.T) {
	tp := startPlatform(t)
	admin := tp.newAdminToken
	app := newAdminApp(t, tp, map[string]any{"name": "small utility", "maxDevices": 2})
	require.Equal(t, 2, app.MaxDevices)
	name, zipped := demoVariant(t, "Q1", nil)
	postProfile(t, tp, name, zipped)

	status, _, first := registerOwn(t, tp, "868333030003001", "Q1")
	require.Equal(t, http.StatusOK, status)
	status, _, _ = registerOwn(t, tp, "868333030003002", "Q1")
	require.Equal(t, http.StatusOK, status)
	status, e, _ := registerOwn(t, tp, "868333030003003", "Q1")
	require.Equal(t, http.StatusForbidden, status)
	require.Equal(t, "device_quota_exceeded", e.Code)
	require.Contains(t, e.Desc, "owns 2 devices")
	require.Contains(t, e.Desc, "may own 2")

	var batch struct {
		Results []batchRow `json:"results"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials/batch", []map[string]any{
		{"nodeId": "868333030003004", "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID, "deviceType": demoDeviceType, "model": "Q1", "protocolType": "LWM2M"}},
	}, &batch))
	require.Len(t, batch.Results, 1)
	require.Equal(t, "device_quota_exceeded", batch.Results[0].ErrorCode, "a batch row beyond the quota says so")

	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", "/iocm/app/dm/v1.4.0/devices/"+first, nil, nil))
	status, _, _ = registerOwn(t, tp, "868333030003005", "Q1")
	require.Equal(t, http.StatusOK, status, "the deleted device's place is free")

	// Raised to 6 with 2 owned: of 8 concurrent registrations exactly 4
	// pass.
	require.Equal(t, http.StatusOK, tp.adminCall(t, admin, "PUT", "/doze/v1/apps/"+app.AppID, map[string]any{"maxDevices": 6}, nil))
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
	)
	for i := range 8 {
		wg.Go(func() {
			status, _, _ := registerOwn(t, tp, "86833303000310"+itoa(i), "Q1")
			mu.Lock()
			counts[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Equal(t, map[int]int{http.StatusOK: 4, http.StatusForbidden: 4}, counts)
	n, err := tp.countDevices(context.Background(), app.AppID)
	require.NoError(t, err)
	require.Equal(t, 6, n)

	require.Equal(t, http.StatusOK, tp.adminCall(t, admin, "PUT", "/doze/v1/apps/"+app.AppID, map[string]any{"maxDevices": 0}, nil))
	status, _, _ = registerOwn(t, tp, "868333030003201", "Q1")
	require.Equal(t, http.StatusOK, status, "maxDevices 0: no limit")

	var ae apiError
	require.Equal(t, http.StatusConflict, tp.adminCall(t, admin, "DELETE", "/doze/v1/apps/"+app.AppID, nil, &ae))
	require.Equal(t, "app_in_use", ae.Code)
	require.Contains(t, ae.Desc, "7 devices")
	require.Contains(t, ae.Desc, "1 products")
}

// TestAppSwitches (APP-3, STO-2, CMD-11): the administrator's switches
// apply. A new device of an app with defaultMode DRX is a DRX device; when
// the default changes to EDRX, new devices and those that follow the
// default are EDRX; reports of an app's device are kept in
// history only while the app's historyEnabled is on. The device is a
// real LwM2M client over DTLS that reports with Send.
func TestAppSwitches(t *testing.T) {
	tp := startPlatform(t)
	admin := tp.newAdminToken
	app := newAdminApp(t, tp, map[string]any{"name": "switches", "defaultMode": "DRX"})
	require.False(t, app.HistoryEnabled, "history is off unless asked for")
	name, zipped := demoVariant(t, "S1", nil)
	postProfile(t, tp, name, zipped)
	mode := func(id string) string {
		var d deviceJSON
		require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &d))
		return d.DeviceInfo.Mode
	}
	const imei = "868333030003301"
	status, _, id := registerOwn(t, tp, imei, "S1")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "DRX", mode(id), "the app's default mode")
	require.Equal(t, http.StatusOK, tp.adminCall(t, admin, "PUT", "/doze/v1/apps/"+app.AppID, map[string]any{"defaultMode": "EDRX"}, nil))
	status, _, other := registerOwn(t, tp, "868333030003302", "S1")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "EDRX", mode(other), "the new default applies to new devices")
	require.Eventually(t, func() bool { return mode(id) == "EDRX" }, 10*time.Second, 10*time.Millisecond,
		"and to the app's devices that follow its default")

	// History: off, then on.
	d, err := tp.reg.Get(context.Background(), id)
	require.NoError(t, err)
	c, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.DTLSAddr().String(), Endpoint: imei, Key: d.PSK,
		Objects: "</3/0>,</19/0>"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	send := func() {
		body, err := lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.RootPath, []lwm2m.Record{
			{Path: lwm2m.MustPath("/19/0/0/0"), Value: lwm2m.OpaqueValue(demoReport(t))}})
		require.NoError(t, err)
		require.NoError(t, c.Send(ctx, transport.Content{Format: lwm2m.FormatSenMLJSON, Payload: body}))
	}
	history := func() int {
		var h historyAnswer
		require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id, nil, &h))
		return h.TotalCount
	}
	send()
	require.Eventually(t, func() bool {
		var dj deviceJSON
		tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &dj)
		return len(dj.Services) == 1
	}, 10*time.Second, 10*time.Millisecond, "the report reached the device's services (RawData: the product has no codec)")
	require.Zero(t, history(), "historyEnabled off: nothing kept")

	require.Equal(t, http.StatusOK, tp.adminCall(t, admin, "PUT", "/doze/v1/apps/"+app.AppID, map[string]any{"historyEnabled": true}, nil))
	send()
	require.Eventually(t, func() bool { return history() == 1 }, 10*time.Second, 10*time.Millisecond,
		"historyEnabled on: the report is kept")
}
