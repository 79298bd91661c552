package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

// TestDefaultOwner: unowned resources go to the demo app, else the only
// app, else the first app by name (APP-3, our choice).
func TestDefaultOwner(t *testing.T) {
	for _, c := range []struct {
		apps []App
		want string
	}{
		{nil, ""},
		{[]App{{ID: "app-1", Name: "only"}}, "app-1"},
		{[]App{{ID: "app-1", Name: "zeta"}, {ID: "demo-ab12"}, {ID: "app-0", Name: "alpha"}}, "demo-ab12"},
		{[]App{{ID: "app-1", Name: "zeta"}, {ID: "app-2", Name: "alpha"}, {ID: "app-0", Name: "beta"}}, "app-2"},
		{[]App{{ID: "app-2"}, {ID: "app-1"}}, "app-1"},
	} {
		got, _ := defaultOwner(c.apps)
		require.Equal(t, c.want, got, "%v", c.apps)
	}
}

// oldDataDir builds a data directory as a platform without ownership left
// it: a device, a gateway's sub-device, a group, a product, an upgrade
// package and task, all without owner (the device records carry no
// AppID, the Owners table is empty), and no apps file. It returns the
// directory and the ids.
func oldDataDir(t *testing.T) (dir string, ids map[string]string) {
	t.Helper()
	dir = t.TempDir()
	cfg := defaultConfig()
	cfg.DataDir, cfg.Demo = dir, false
	cfg.CoAPAddr, cfg.DTLSAddr, cfg.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	p, err := New(cfg, nil)
	require.NoError(t, err)
	require.Empty(t, p.auth.Apps(), "no apps: nothing is migrated yet")
	ctx := context.Background()
	_, _, err = p.products.AddUpload(ctx, upload{name: demoProfileName, prof: demoProfile, codecJSON: demoCodec})
	require.NoError(t, err)
	info := registry.Info{ManufacturerID: demoManufacturerID, DeviceType: demoDeviceType, Model: demoModel, ProtocolType: "LWM2M"}
	d, err := p.reg.Register(ctx, registry.Enrollment{NodeID: "868333030004001", Info: info})
	require.NoError(t, err)
	gw, err := p.reg.Register(ctx, registry.Enrollment{NodeID: "868333030004002", Info: info, NodeType: registry.Gateway})
	require.NoError(t, err)
	sub, err := p.reg.Register(ctx, registry.Enrollment{NodeID: "868333030004003", Info: info, GatewayID: gw.ID})
	require.NoError(t, err)
	g, err := p.reg.CreateGroup(ctx, "old group", "")
	require.NoError(t, err)
	require.NoError(t, p.reg.AddToGroup(ctx, g.ID, d.ID))
	pkgID := randomHex(12)
	_, err = p.files.Put(pkgID, bytes.NewReader([]byte("an old image")))
	require.NoError(t, err)
	pkg, err := p.ota.AddPackage(ctx, ota.Package{ID: pkgID, Kind: ota.Software, Version: "1.1.0", DeviceType: demoDeviceType,
		Manufacturer: "Doze Labs", Model: demoModel, Protocol: "LWM2M", Size: 12})
	require.NoError(t, err)
	task, err := p.ota.CreateTask(ctx, ota.TaskSpec{PackageID: pkg.ID, Devices: []string{d.ID}})
	require.NoError(t, err)
	for _, id := range []string{d.ID, gw.ID, sub.ID} {
		got, err := p.db.Registry().Get(ctx, id)
		require.NoError(t, err)
		require.Empty(t, got.AppID, "the record has no owner, as one written before ownership")
	}
	require.NoError(t, p.Close())
	return dir, map[string]string{"device": d.ID, "gateway": gw.ID, "sub": sub.ID, "group": g.ID, "package": pkg.ID, "task": task.ID}
}

// writeApps writes the apps file of dir.
func writeApps(t *testing.T, dir string, apps ...App) {
	t.Helper()
	b, err := json.Marshal(apps)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "apps.json"), b, 0o600))
}

// TestMigrateOwners (APP-3): a data directory from before ownership opens,
// and with several apps and no demo app every resource goes to the first
// app by name (logged as a warning); the other app sees none of it. A
// restart moves nothing more.
func TestMigrateOwners(t *testing.T) {
	dir, ids := oldDataDir(t)
	writeApps(t, dir, App{ID: "app-z", Name: "zeta", Secret: "secret-z"}, App{ID: "app-y", Name: "alpha", Secret: "secret-y"})
	var logs bytes.Buffer
	cfg := defaultConfig()
	cfg.DataDir, cfg.Demo = dir, false
	cfg.CoAPAddr, cfg.DTLSAddr, cfg.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	p, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	require.Contains(t, logs.String(), "level=WARN msg=\"resources without an owner given to the default app\" app=app-y")
	require.Contains(t, logs.String(), "devices=3 groups=1 products=1 packages=1 upgrades=1")
	require.NoError(t, p.Close())

	tp := startPlatform(t, func(c *Config) { c.DataDir, c.Demo = dir, false })
	_, as := appSwitcher(t, tp)
	as("app-y")
	for _, path := range []string{
		"/iocm/app/dm/v1.4.0/devices/" + ids["device"],
		"/iocm/app/dm/v1.4.0/devices/" + ids["sub"],
		"/iocm/app/devgroup/v1.3.0/devGroups/" + ids["group"],
		"/doze/v1/products/" + demoManufacturerID + "/" + demoModel,
		"/iodm/northbound/v1.5.0/category/" + ids["package"],
		"/iodm/northbound/v1.5.0/operations/" + ids["task"],
	} {
		require.Equal(t, http.StatusOK, tp.call(t, "GET", path, nil, nil), "app-y owns %s", path)
	}
	var list struct{ TotalCount int }
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices", nil, &list))
	require.Equal(t, 3, list.TotalCount)
	// The sub-device is app-y's like its gateway, so app-y can add more.
	var reg struct{ DeviceID string }
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{"nodeId": "868333030004004",
		"gatewayId": ids["gateway"], "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID, "deviceType": demoDeviceType,
			"model": demoModel, "protocolType": "LWM2M"}}, &reg))

	as("app-z")
	require.Equal(t, http.StatusNotFound, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+ids["device"], nil, nil))
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices", nil, &list))
	require.Zero(t, list.TotalCount)
	var e apiError
	require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{"nodeId": "868333030004005",
		"gatewayId": ids["gateway"], "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID, "deviceType": demoDeviceType,
			"model": demoModel, "protocolType": "LWM2M"}}, &e), "app-z may use neither app-y's gateway nor its product")
	tp.stop()

	logs.Reset()
	p, err = New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	require.NotContains(t, logs.String(), "without an owner", "a restart moves nothing more")
	require.NoError(t, p.Close())
}

// TestMigrateOwnersSingleApp (APP-3): with one app, which is no demo app,
// an old data directory's resources are that app's; the log says so at
// info level.
func TestMigrateOwnersSingleApp(t *testing.T) {
	dir, ids := oldDataDir(t)
	writeApps(t, dir, App{ID: "app-1", Secret: "secret-1"})
	tp := startPlatform(t, func(c *Config) { c.DataDir, c.Demo = dir, false })
	require.Equal(t, "app-1", tp.app.ID)
	d, err := tp.reg.Get(context.Background(), ids["device"])
	require.NoError(t, err)
	require.Equal(t, "app-1", d.AppID, "the device record now carries its owner")
	var list struct{ TotalCount int }
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/devgroup/v1.3.0/devGroups", nil, &list))
	require.Equal(t, 1, list.TotalCount)
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iodm/northbound/v1.5.0/operations", nil, &list))
	require.Equal(t, 1, list.TotalCount)
}

// TestFreshStartMigratesNothing: the demo products are owned by the demo
// app when they are installed, so a fresh data directory has nothing
// without an owner and logs no migration.
func TestFreshStartMigratesNothing(t *testing.T) {
	var logs bytes.Buffer
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.CoAPAddr, cfg.DTLSAddr, cfg.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	p, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer p.Close()
	require.NotContains(t, logs.String(), "without an owner", "a fresh start has nothing to migrate")
	owner, _ := defaultOwner(p.auth.Apps())
	require.NotEmpty(t, owner)
	got, err := p.db.Owners().Owner(context.Background(), kindProduct, productKey(demoManufacturerID, demoModel))
	require.NoError(t, err)
	require.Equal(t, owner, got, "the demo product belongs to the demo app")
}
