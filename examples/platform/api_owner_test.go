package main

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"

	"github.com/doze-io/doze/codec"
	"github.com/stretchr/testify/require"
)

// asApp is r as an authenticated call of app, for handlers called
// directly.
func asApp(r *http.Request, app string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), ctxKey{}, app))
}

// TestTenancyIsolation is APP-3's evidence through the REST API: app A
// creates one resource of every type (a device, a group, a product, an
// upgrade package and task, a command, a batch command task, a
// subscription, a bootstrap configuration; LwM2M operations and history
// hang off the device). App B gets 404 on reading, changing and deleting
// each, with the very answer it gets for an id that does not exist (so
// existence does not leak), sees none of them in lists, cannot use them
// in its own calls, and hears no notification of A's device. A's
// resources are all still there afterwards.
func TestTenancyIsolation(t *testing.T) {
	tp, as := twoApps(t)
	tenancyIsolation(t, tp, as, "app-a", "app-b")
}

// TestTenancyIsolationPostgres is TestTenancyIsolation on a platform whose
// store is a PostgreSQL database: app A is the demo app (the default
// owner of the demo products), app B is created by the administrator.
func TestTenancyIsolationPostgres(t *testing.T) {
	dsn := pgStore(t)
	tp := startPlatform(t, func(c *Config) { c.Store, c.NodeID = dsn, "tenancy-1" })
	var created struct{ AppID string }
	require.Equal(t, http.StatusCreated, tp.adminCall(t, tp.newAdminToken, "POST", "/doze/v1/apps", map[string]any{"name": "b"}, &created))
	_, as := appSwitcher(t, tp)
	tenancyIsolation(t, tp, as, tp.app.ID, created.AppID)
}

func tenancyIsolation(t *testing.T, tp *testPlatform, as func(string), appA, appB string) {
	aHook, bHook := newSink(t), newSink(t)

	// App A's resources.
	const nodeID = "868333030000901"
	dev, _ := registerDevice(t, tp, nodeID)
	name, zipped := demoVariant(t, "TenancyA", nil)
	postProfile(t, tp, name, zipped)
	var grp struct {
		ID string `json:"id"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/devgroup/v1.3.0/devGroups",
		map[string]any{"name": "a-group", "deviceIds": []string{dev}}, &grp))
	image := make([]byte, 2000)
	rand.Read(image)
	pkg := tp.upload(t, image, map[string]string{"fileType": "softwarePackage", "version": "1.1.0", "deviceType": demoDeviceType,
		"manufacturerName": "Doze Labs", "model": demoModel, "protocolType": "LWM2M", "sourceVersions": "1.0.0"})
	var op struct{ OperationID string }
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iodm/northbound/v1.5.0/operations/softwareUpgrade",
		map[string]any{"fileId": pkg, "targets": map[string]any{"devices": []string{dev}}}, &op))
	cmdBody := map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}}
	var cmd struct{ CommandID string }
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands",
		map[string]any{"deviceId": dev, "command": cmdBody}, &cmd))
	var task struct{ TaskID string }
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/batchtask/v1.1.0/tasks", map[string]any{
		"taskName": "a-task", "taskType": "DeviceCmd", "param": map[string]any{"type": "DeviceList", "deviceList": []string{dev}, "command": cmdBody}}, &task))
	var sub struct{ SubscriptionID string }
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": "deviceInfoChanged", "callbackUrl": aHook.srv.URL + "/a"}, &sub))
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/doze/v1/bootstrap/"+nodeID,
		map[string]any{"serverUri": "coaps://127.0.0.1:5684", "securityMode": "psk"}, nil))
	for _, id := range []string{dev, grp.ID, pkg, op.OperationID, cmd.CommandID, task.TaskID, sub.SubscriptionID} {
		require.NotEmpty(t, id)
	}

	// Each call names one of A's resources (mine) and, the same call, an
	// id of the same shape that does not exist (none). B must get 404 for
	// both, with the same code and the same message but for the id.
	type probe struct {
		method, path string
		body         any
		id, none     string
	}
	const noDev = "01900000-0000-7000-8000-000000000000"
	const noNode = "868333030000999"
	noHex := strings.Repeat("0", 24)
	noGroup := "01900000-0000-7000-8000-000000000001"
	fill := func(s, id string) string { return strings.ReplaceAll(s, "{}", id) }
	probes := []probe{
		// Devices and what hangs off them.
		{"GET", "/iocm/app/dm/v1.4.0/devices/{}", nil, dev, noDev},
		{"PUT", "/iocm/app/dm/v1.4.0/devices/{}", map[string]any{"name": "b was here"}, dev, noDev},
		{"DELETE", "/iocm/app/dm/v1.4.0/devices/{}", nil, dev, noDev},
		{"GET", "/iocm/app/reg/v1.1.0/deviceCredentials/{}", nil, dev, noDev},
		{"GET", "/iocm/app/shadow/v1.5.0/devices/{}", nil, dev, noDev},
		{"PUT", "/iocm/app/shadow/v1.5.0/devices/{}", map[string]any{"serviceDesireds": []any{map[string]any{"serviceId": "Meter", "desired": map[string]any{"period": 60}}}}, dev, noDev},
		{"GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId={}", nil, dev, noDev},
		{"GET", "/doze/v1/devices/{}/log", nil, dev, noDev},
		{"GET", "/doze/v1/devices/{}/lwm2m/3/0/9", nil, dev, noDev},
		{"GET", "/doze/v1/devices/{}/lwm2m-operations", nil, dev, noDev},
		{"GET", "/doze/v1/devices/{}/lwm2m-registration", nil, dev, noDev},
		{"POST", "/doze/v1/devices/{}/lwm2m-composite", map[string]any{"op": "read", "paths": []string{"/3/0/9"}}, dev, noDev},
		{"GET", "/iocm/app/data/v1.1.0/deviceCapabilities?deviceId={}", nil, dev, noDev},
		{"POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{"deviceId": "{}", "command": cmdBody}, dev, noDev},
		{"GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId={}", nil, dev, noDev},
		{"POST", "/iocm/app/cmd/v1.4.0/deviceCommandCancelTasks", map[string]any{"deviceId": "{}"}, dev, noDev},
		{"POST", "/iocm/app/batchtask/v1.1.0/tasks", map[string]any{"taskName": "b-task", "taskType": "DeviceCmd",
			"param": map[string]any{"type": "DeviceList", "deviceList": []string{"{}"}, "command": cmdBody}}, dev, noDev},
		{"POST", "/iocm/app/devgroup/v1.3.0/devGroups", map[string]any{"name": "b-group", "deviceIds": []string{"{}"}}, dev, noDev},
		// Bootstrap configurations are their device's.
		{"GET", "/doze/v1/bootstrap/{}", nil, nodeID, noNode},
		{"PUT", "/doze/v1/bootstrap/{}", map[string]any{"serverUri": "coap://127.0.0.1:5683", "securityMode": "none"}, nodeID, noNode},
		{"DELETE", "/doze/v1/bootstrap/{}", nil, nodeID, noNode},
		// Groups.
		{"GET", "/iocm/app/devgroup/v1.3.0/devGroups/{}", nil, grp.ID, noGroup},
		{"GET", "/iocm/app/devgroup/v1.3.0/devGroups/{}/members", nil, grp.ID, noGroup},
		{"DELETE", "/iocm/app/devgroup/v1.3.0/devGroups/{}", nil, grp.ID, noGroup},
		{"POST", "/iocm/app/dm/v1.1.0/devices/deleteDevGroupTagFromDevices", map[string]any{"devGroupId": "{}", "deviceIds": []string{}}, grp.ID, noGroup},
		{"POST", "/iocm/app/batchtask/v1.1.0/tasks", map[string]any{"taskName": "b-task", "taskType": "DeviceCmd",
			"param": map[string]any{"type": "GroupList", "groupList": []string{"{}"}, "command": cmdBody}}, grp.ID, noGroup},
		// Products.
		{"GET", "/doze/v1/products/" + demoManufacturerID + "/{}", nil, "TenancyA", "NoSuchModel"},
		{"DELETE", "/doze/v1/products/" + demoManufacturerID + "/{}", nil, "TenancyA", "NoSuchModel"},
		{"POST", "/doze/v1/codec/decode", map[string]any{"manufacturerId": demoManufacturerID, "model": "{}", "hex": "00"}, demoModel, "NoSuchModel"},
		{"POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{"nodeId": "868333030000902", "deviceInfo": map[string]any{
			"manufacturerId": demoManufacturerID, "deviceType": demoDeviceType, "model": "{}", "protocolType": "LWM2M"}}, "TenancyA", "NoSuchModel"},
		// Upgrade packages and tasks.
		{"GET", "/iodm/northbound/v1.5.0/category/{}", nil, pkg, noHex},
		{"DELETE", "/iodm/northbound/v1.5.0/category/{}", nil, pkg, noHex},
		{"POST", "/iodm/northbound/v1.5.0/operations/softwareUpgrade", map[string]any{"fileId": "{}", "targets": map[string]any{"devices": []string{}}}, pkg, noHex},
		{"GET", "/iodm/northbound/v1.5.0/operations/{}", nil, op.OperationID, noGroup},
		{"GET", "/iodm/northbound/v1.5.0/operations/{}/subOperations", nil, op.OperationID, noGroup},
		{"PUT", "/iodm/northbound/v1.5.0/operations/{}/stop", nil, op.OperationID, noGroup},
		{"POST", "/iodm/northbound/v1.5.0/operations/{}/retry", nil, op.OperationID, noGroup},
		// Commands, batch tasks, subscriptions.
		{"PUT", "/iocm/app/cmd/v1.4.0/deviceCommands/{}", map[string]any{"status": "CANCELED"}, cmd.CommandID, noGroup},
		{"GET", "/iocm/app/batchtask/v1.1.0/tasks/{}", nil, task.TaskID, noGroup},
		{"GET", "/iocm/app/batchtask/v1.1.0/taskDetails?taskID={}", nil, task.TaskID, noGroup},
		{"GET", "/iocm/app/sub/v1.2.0/subscriptions/{}", nil, sub.SubscriptionID, noGroup},
		{"DELETE", "/iocm/app/sub/v1.2.0/subscriptions/{}", nil, sub.SubscriptionID, noGroup},
	}
	// The product registration probe above would register a device of
	// B with a nodeId; the upgrade probe would need B's own package:
	// both are refused before anything is created.
	bodyWith := func(b any, id string) any {
		if b == nil {
			return nil
		}
		var walk func(v any) any
		walk = func(v any) any {
			switch x := v.(type) {
			case string:
				return fill(x, id)
			case []string:
				out := make([]string, len(x))
				for i, s := range x {
					out[i] = fill(s, id)
				}
				return out
			case []any:
				out := make([]any, len(x))
				for i, e := range x {
					out[i] = walk(e)
				}
				return out
			case map[string]any:
				out := map[string]any{}
				for k, e := range x {
					out[k] = walk(e)
				}
				return out
			}
			return v
		}
		return walk(b)
	}

	as(appB)
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": "deviceInfoChanged", "callbackUrl": bHook.srv.URL + "/b"}, nil))
	for _, pr := range probes {
		var mine, none apiError
		what := pr.method + " " + fill(pr.path, pr.id)
		want := http.StatusNotFound
		if pr.path == "/iocm/app/reg/v1.1.0/deviceCredentials" {
			want = http.StatusBadRequest // deviceInfo naming no product is bad input (docs/api.md)
		}
		require.Equal(t, want, tp.call(t, pr.method, fill(pr.path, pr.none), bodyWith(pr.body, pr.none), &none),
			"%s with an id that does not exist: %+v", what, none)
		require.Equal(t, want, tp.call(t, pr.method, fill(pr.path, pr.id), bodyWith(pr.body, pr.id), &mine),
			"%s: B gets 404 for A's resource: %+v", what, mine)
		require.Equal(t, none.Code, mine.Code, "%s: the same error_code as for a resource that does not exist", what)
		require.Equal(t, strings.ReplaceAll(none.Desc, pr.none, pr.id), mine.Desc,
			"%s: the same error_desc as for a resource that does not exist", what)
		require.NotContains(t, mine.Desc, appA, "%s: the owner is not named", what)
	}

	// B's lists hold none of A's resources.
	count := func(path, field string) int {
		t.Helper()
		var out map[string]any
		require.Equal(t, http.StatusOK, tp.call(t, "GET", path, nil, &out), path)
		if field == "" {
			return len(out)
		}
		n, ok := out[field].(float64)
		require.True(t, ok, "%s: no %s in %v", path, field, out)
		return int(n)
	}
	require.Zero(t, count("/iocm/app/dm/v1.4.0/devices", "totalCount"), "devices")
	require.Zero(t, count("/iocm/app/devgroup/v1.3.0/devGroups", "totalCount"), "groups")
	require.Zero(t, count("/doze/v1/products", "totalCount"), "products (the demo products are A's too)")
	require.Zero(t, count("/iodm/northbound/v1.5.0/category", "totalCount"), "packages")
	require.Zero(t, count("/iodm/northbound/v1.5.0/operations", "totalCount"), "upgrade tasks")
	var cmds struct {
		Pagination struct{ TotalSize int }
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands", nil, &cmds))
	require.Zero(t, cmds.Pagination.TotalSize, "commands")
	var subs struct {
		TotalCount    int
		Subscriptions []map[string]any
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/sub/v1.2.0/subscriptions", nil, &subs))
	require.Equal(t, 1, subs.TotalCount, "B sees its own subscription only")
	require.Equal(t, bHook.srv.URL+"/b", subs.Subscriptions[0]["callbackUrl"])
	// A broadcast batch task of B reaches none of A's devices.
	var bt struct{ TaskID string }
	status := tp.call(t, "POST", "/iocm/app/batchtask/v1.1.0/tasks", map[string]any{"taskName": "b-all", "taskType": "DeviceCmd",
		"param": map[string]any{"type": "Broadcast", "command": cmdBody}}, &bt)
	require.NotEqual(t, http.StatusOK, status, "B has no device: its broadcast has no target")

	// A's device changes: A's subscriber hears of it, B's does not. B's
	// own device's change is pushed after A's; once B has that, A's
	// would have come first had it been sent to B.
	as(appA)
	require.Equal(t, http.StatusNoContent, tp.call(t, "PUT", "/iocm/app/dm/v1.4.0/devices/"+dev, map[string]any{"name": "renamed by a"}, nil))
	aHook.wait(t, "deviceInfoChanged of A's device", func(m map[string]any) bool { return m["deviceId"] == dev })
	as(appB)
	name, zipped = demoVariant(t, "TenancyB", nil)
	postProfile(t, tp, name, zipped)
	var bDev struct{ DeviceID string }
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{"nodeId": "868333030000903",
		"deviceInfo": map[string]any{"manufacturerId": demoManufacturerID, "deviceType": demoDeviceType, "model": "TenancyB", "protocolType": "LWM2M"}}, &bDev))
	require.Equal(t, http.StatusNoContent, tp.call(t, "PUT", "/iocm/app/dm/v1.4.0/devices/"+bDev.DeviceID, map[string]any{"name": "renamed by b"}, nil))
	bHook.wait(t, "deviceInfoChanged of B's device", func(m map[string]any) bool { return m["deviceId"] == bDev.DeviceID })
	bHook.mu.Lock()
	for _, m := range bHook.got {
		require.Equal(t, bDev.DeviceID, m["deviceId"], "B hears only of its own device: %v", m)
	}
	bHook.mu.Unlock()
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices", nil, nil))
	require.Equal(t, 1, count("/iocm/app/dm/v1.4.0/devices", "totalCount"), "B lists its own device")
	require.Equal(t, 1, count("/doze/v1/products", "totalCount"), "B lists its own product")

	// Everything of A's is still there, unchanged by B's calls.
	as(appA)
	var d deviceJSON
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+dev, nil, &d))
	require.Equal(t, "renamed by a", d.DeviceInfo.Name)
	for _, path := range []string{
		"/iocm/app/devgroup/v1.3.0/devGroups/" + grp.ID,
		"/doze/v1/products/" + demoManufacturerID + "/TenancyA",
		"/iodm/northbound/v1.5.0/category/" + pkg,
		"/iodm/northbound/v1.5.0/operations/" + op.OperationID,
		"/iocm/app/batchtask/v1.1.0/tasks/" + task.TaskID,
		"/iocm/app/sub/v1.2.0/subscriptions/" + sub.SubscriptionID,
		"/doze/v1/bootstrap/" + nodeID,
	} {
		require.Equal(t, http.StatusOK, tp.call(t, "GET", path, nil, nil), path)
	}
	c, err := tp.cmds.Get(context.Background(), cmd.CommandID)
	require.NoError(t, err)
	require.Equal(t, "PENDING", c.Status.String(), "B's cancel did not touch A's command")
	require.Equal(t, 1, count("/iocm/app/dm/v1.4.0/devices", "totalCount"), "A lists its own device only")
	require.Equal(t, 3, count("/doze/v1/products", "totalCount"), "A lists the two demo products and its own")
}

// TestRulesSeeOwnDevicesOnly (APP-3): a report of app A's device fires
// A's forwarding rules only; app B's rule, which matches every report of
// the device type, fires for B's own device and never for A's.
func TestRulesSeeOwnDevicesOnly(t *testing.T) {
	tp, as := twoApps(t)
	aHook, bHook := newSink(t), newSink(t)
	rule := map[string]any{"name": "every report", "condition": `deviceType = "` + demoDeviceType + `"`,
		"targets": []map[string]any{{"type": "webhook"}}}
	subscribe(t, tp, aHook, "ruleEvent")
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/doze/v1/rules", rule, nil))
	const imeiA, imeiB = "868333030004101", "868333030004102"
	idA, pskA := registerDevice(t, tp, imeiA)

	as("app-b")
	subscribe(t, tp, bHook, "ruleEvent")
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/doze/v1/rules", rule, nil))
	name, zipped := demoVariant(t, "RB1", nil)
	postProfile(t, tp, name, zipped)
	idB := registerModel(t, tp, imeiB, "RB1")
	devB, err := tp.reg.Get(context.Background(), idB)
	require.NoError(t, err)

	report := &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 1.5, "flowRate": 0.5, "pulseCount": 5}},
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 50}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -85}}}}
	newMeter(t, tp, "urn:imei:"+imeiA, pskA).uplink(t, report)
	aHook.wait(t, "A's rule fires for A's device", func(m map[string]any) bool { return m["deviceId"] == idA })
	newMeter(t, tp, "urn:imei:"+imeiB, devB.PSK).uplink(t, report)
	bHook.wait(t, "B's rule fires for B's device", func(m map[string]any) bool { return m["deviceId"] == idB })
	bHook.mu.Lock()
	defer bHook.mu.Unlock()
	for _, m := range bHook.got {
		require.Equal(t, idB, m["deviceId"], "B's rule saw A's device: %v", m)
	}
}
