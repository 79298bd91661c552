package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// registerProduct registers a device of a demo product through the API.
func registerProduct(t *testing.T, tp *testPlatform, imei, deviceType, model string) (string, []byte) {
	t.Helper()
	var reg struct {
		DeviceID string `json:"deviceId"`
		PSK      string `json:"psk"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{
		"nodeId": imei, "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID, "deviceType": deviceType,
			"model": model, "protocolType": "LWM2M", "name": "dev " + imei}}, &reg))
	psk, err := hex.DecodeString(reg.PSK)
	require.NoError(t, err)
	return reg.DeviceID, psk
}

// consoleDeviceList: more than 100 devices page through, and a search
// finds one of them.
func consoleDeviceList(t *testing.T, wd *webDriver, tp *testPlatform) {
	const n = 120
	for i := range n {
		registerProduct(t, tp, fmt.Sprintf("8683330310%05d", i), demoDeviceType, demoModel)
	}
	wd.open(t, tp.api.URL+"/#/devices")
	wd.waitText(t, "#pageinfo", fmt.Sprintf("%d devices", n))
	wd.fill(t, "#devsearch [name=pageSize]", "50")
	wd.click(t, "#devsearch button")
	wd.waitText(t, "#pageinfo", "page 1 of 3")
	wd.click(t, "#next")
	wd.waitText(t, "#pageinfo", "page 2 of 3")
	wd.click(t, "#next")
	wd.waitText(t, "#pageinfo", "page 3 of 3")
	wd.waitText(t, "#devices", "868333031000119") // the 120th device, past 100
	var rows int
	wd.js(t, &rows, "return document.querySelectorAll('#devices tbody tr').length")
	require.Equal(t, n-100, rows, "page 3 of 50 holds devices 101 to 120")
	wd.screenshot(t, "console-devices")

	wd.fill(t, "#devsearch [name=q]", "0310 00057")
	wd.click(t, "#devsearch button")
	wd.waitText(t, "#pageinfo", "0 devices")
	wd.fill(t, "#devsearch [name=q]", "031000057")
	wd.click(t, "#devsearch button")
	wd.waitText(t, "#pageinfo", "1 device")
	wd.waitText(t, "#devices", "868333031000057")
	wd.fill(t, "#devsearch [name=q]", "")
	wd.fill(t, "#devsearch [name=pageSize]", "25")
	wd.click(t, "#devsearch button")
	wd.waitText(t, "#pageinfo", "page 1 of")
}

// consoleRegisterOne registers a device through the form; the PSK it
// shows is the device's key.
func consoleRegisterOne(t *testing.T, wd *webDriver, tp *testPlatform) {
	wd.open(t, tp.api.URL+"/#/devices")
	wd.waitJS(t, "the product list is filled", "return document.querySelector('#regone [name=product]').options.length > 0")
	wd.fill(t, "#regone [name=nodeId]", "868333032000001")
	wd.fill(t, "#regone [name=name]", "kitchen")
	wd.fill(t, "#regone [name=product]", demoManufacturerID+"/"+demoModel)
	wd.fill(t, "#regone [name=psk]", "00112233445566778899aabbccddeeff")
	wd.click(t, "#regone button")
	wd.waitText(t, "#regresult", "00112233445566778899aabbccddeeff")
	d, err := tp.reg.GetByNodeID(context.Background(), "868333032000001")
	require.NoError(t, err, "the device the console registered")
	require.Equal(t, "kitchen", d.Info.Name)
	require.Equal(t, "00112233445566778899aabbccddeeff", d.PSK.Hex())
	wd.waitText(t, "#regresult", d.ID)
}

// consoleRegisterCSV registers three lines of a CSV, one of which the API
// refuses, in one call of the batch endpoint (APP-4); each line gets its
// own result.
func consoleRegisterCSV(t *testing.T, wd *webDriver, tp *testPlatform) {
	wd.open(t, tp.api.URL+"/#/devices")
	wd.waitJS(t, "the product list is filled", "return document.querySelector('#regone [name=product]').options.length > 0")
	// Record the page's registration calls.
	var ignored any
	wd.js(t, &ignored, `window.regCalls = []; const f = window.fetch;
		window.fetch = (u, o) => { if (String(u).includes("deviceCredentials")) window.regCalls.push(((o && o.method) || "GET") + " " + u); return f(u, o); };
		return null`)
	csv := "nodeId,name,psk\n868333033000001,hall,\n868333032000001,taken,\n868333033000002,attic,0011223344556677\n"
	wd.attach(t, "#regcsv [name=file]", "devices.csv", []byte(csv))
	wd.click(t, "#regcsv button")
	wd.waitText(t, "#csvresult", "868333033000002")
	wd.waitJS(t, "every line has its result", "return !document.querySelector('#csvresult').innerText.includes('…')")
	got := wd.text(t, "#csvresult")
	require.Contains(t, got, "868333032000001\trefused\tconflict", "the taken nodeId is refused with the API's code")
	for _, imei := range []string{"868333033000001", "868333033000002"} {
		d, err := tp.reg.GetByNodeID(context.Background(), imei)
		require.NoError(t, err, "device %s of the CSV", imei)
		require.Contains(t, got, d.ID)
	}
	d, _ := tp.reg.GetByNodeID(context.Background(), "868333033000002")
	require.Equal(t, "0011223344556677", d.PSK.Hex(), "the CSV's PSK column")
	require.Contains(t, wd.text(t, "#error"), "1 of 3 lines were refused")
	var calls []string
	wd.js(t, &calls, "return window.regCalls")
	require.Equal(t, []string{"POST /iocm/app/reg/v1.1.0/deviceCredentials/batch"}, calls, "the three lines went in one batch call")
	wd.screenshot(t, "console-register")
}

// consoleObjectTree: the device page shows the LwM2M registration and an
// object tree whose resources are read, written, executed, observed and
// no longer observed on a real (strict) LwM2M client.
func consoleObjectTree(t *testing.T, wd *webDriver, tp *testPlatform) {
	const imei = "868333034000001"
	id, psk := registerDevice(t, tp, imei)
	d := startStdDevice(t, tp, imei, psk, false)
	wd.open(t, tp.api.URL+"/#/device/"+id)
	wd.waitText(t, "#lwreg", "lifetime")
	wd.waitText(t, "#lwreg", "always reachable")
	wd.waitText(t, "#lwreg", "</3303/0>")
	wd.waitText(t, "#facts", "fw-1.4.2") // /3/0 read at registration
	wd.waitText(t, "#facts", "ONLINE")

	res := func(path string) string { return `.res[data-path="` + path + `"] ` }
	val := func(path string) string { return `[data-val="` + path + `"]` }
	wd.click(t, res("/3303/0/5700")+"button[data-op=read]")
	wd.waitText(t, val("/3303/0/5700"), "21.5")

	wd.click(t, `#tree button[data-op=read][data-path="/3/0"]`)
	wd.waitText(t, val("/3/0/0"), "Doze Labs")
	wd.waitText(t, val("/3/0/19"), "sw-2.0")

	wd.fill(t, res("/3303/0/5750")+"[data-arg=write]", "outdoor")
	wd.click(t, res("/3303/0/5750")+"button[data-op=write]")
	wd.waitText(t, val("/3303/0/5750"), "CHANGED")
	require.Contains(t, d.callList(), "write /3303/0/5750 outdoor")

	wd.click(t, res("/3/0/4")+"button[data-op=execute]")
	wd.waitText(t, val("/3/0/4"), "CHANGED")
	require.Contains(t, d.callList(), "execute /3/0/4")

	wd.click(t, res("/3303/0/5700")+"button[data-op=observe]")
	wd.waitText(t, val("/3303/0/5700"), "21.5")
	require.Eventually(t, func() bool { return d.client.Observed("/3303/0/5700") }, 5*time.Second, 20*time.Millisecond,
		"the device holds the console's observation")
	wd.waitText(t, val("/3303/0/5700"), "observing")
	wd.click(t, res("/3303/0/5700")+"button[data-op=cancel-observe]")
	wd.waitText(t, val("/3303/0/5700"), "21.5 · observation stopped (CHANGED)")
	require.Eventually(t, func() bool { return !d.client.Observed("/3303/0/5700") }, 5*time.Second, 20*time.Millisecond,
		"the console's Stop ended the observation")

	wd.click(t, res("/3303/0/5601")+"button[data-op=read]") // the device has no such resource
	wd.waitText(t, val("/3303/0/5601"), "NOT_FOUND 4.04")
	wd.screenshot(t, "console-device-lwm2m")
}

// consoleQueuedOperation: on a sleeping queue-mode device an operation is
// queued, shown PENDING, and filled in when the device wakes.
func consoleQueuedOperation(t *testing.T, wd *webDriver, tp *testPlatform) {
	const imei = "868333034000002"
	id, psk := registerDevice(t, tp, imei)
	d := startStdDevice(t, tp, imei, psk, true)
	require.Eventually(t, func() bool { r, ok := tp.lwm.Registration(imei); return ok && !r.Awake(time.Now()) },
		30*time.Second, 50*time.Millisecond, "the device falls asleep")
	wd.open(t, tp.api.URL+"/#/device/"+id)
	wd.waitText(t, "#lwreg", "asleep")
	wd.click(t, `.res[data-path="/3303/0/5700"] button[data-op=read]`)
	wd.waitText(t, `[data-val="/3303/0/5700"]`, "queued")
	wd.waitText(t, "#lwops", "PENDING")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, d.client.Update(ctx)) // the device wakes
	wd.waitText(t, "#lwops", "SUCCESSFUL")
	wd.waitText(t, `[data-val="/3303/0/5700"]`, "21.5")
}

// consoleCommand sends a command from the device page and watches its
// states: PENDING, then CANCELED by the console's Cancel button.
func consoleCommand(t *testing.T, wd *webDriver, tp *testPlatform) {
	id, _ := registerDevice(t, tp, "868333035000001")
	wd.open(t, tp.api.URL+"/#/device/"+id)
	wd.waitJS(t, "the command form is filled", "return document.querySelector('#sendcmd [name=method]') !== null && document.querySelector('#sendcmd [name=method]').value === 'SET_REPORT_PERIOD'")
	wd.fill(t, "#sendcmd [name=serviceId]", "Meter")
	wd.fill(t, "#sendcmd [name=method]", "SET_REPORT_PERIOD")
	wd.fill(t, `#sendcmd [name="para.period"]`, "900")
	wd.click(t, "#sendcmd button.primary")
	wd.waitText(t, "#cmdwatch", "PENDING")
	wd.waitText(t, "#cmds", "SET_REPORT_PERIOD")

	var list struct {
		Data []struct {
			CommandID string `json:"commandId"`
			Status    string `json:"status"`
			Command   struct {
				Paras map[string]any `json:"paras"`
			} `json:"command"`
		} `json:"data"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, &list))
	require.Len(t, list.Data, 1)
	require.Equal(t, map[string]any{"period": float64(900)}, list.Data[0].Command.Paras, "the para is sent as a number")
	require.Contains(t, wd.text(t, "#cmdwatch"), list.Data[0].CommandID)

	wd.click(t, "#cmds button[data-cancel]")
	wd.waitText(t, "#cmdwatch", "CANCELED")
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, &list))
	require.Equal(t, "CANCELED", list.Data[0].Status)

	wd.fill(t, `#sendcmd [name="para.period"]`, "ninety")
	wd.click(t, "#sendcmd button.primary")
	wd.waitText(t, "#error", "not a number")
}

// consoleShadow sets a desired value on the device page.
func consoleShadow(t *testing.T, wd *webDriver, tp *testPlatform) {
	id, _ := registerDevice(t, tp, "868333036000001")
	wd.open(t, tp.api.URL+"/#/device/"+id)
	wd.waitJS(t, "the desired form shows", `return document.querySelector('#desired [name="d.period"]') !== null`)
	wd.fill(t, `#desired [data-service=Meter] [name="d.period"]`, "600")
	wd.click(t, "#desired [data-service=Meter] button")
	wd.waitText(t, "#shadowtable", "period")
	var sh struct {
		ShadowInfo []struct {
			ServiceID string `json:"serviceId"`
			Desired   *struct {
				Data map[string]any `json:"data"`
			} `json:"desired"`
		} `json:"shadowInfo"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/shadow/v1.5.0/devices/"+id, nil, &sh))
	found := false
	for _, s := range sh.ShadowInfo {
		if s.ServiceID == "Meter" && s.Desired != nil {
			require.Equal(t, float64(600), s.Desired.Data["period"])
			found = true
		}
	}
	require.True(t, found, "the console set Meter's desired period: %+v", sh)
	wd.waitText(t, "#shadowtable", "600")
}

// consoleHistory: a standard temperature sensor's mapped readings are
// charted with a time axis, the unit and tooltips.
func consoleHistory(t *testing.T, wd *webDriver, tp *testPlatform) {
	const imei = "868333037000001"
	id, psk := registerProduct(t, tp, imei, "TemperatureSensor", "TS3303")
	startStdDevice(t, tp, imei, psk, false)
	require.Eventually(t, func() bool {
		var h struct {
			TotalCount int `json:"totalCount"`
		}
		tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&property=temperature", nil, &h)
		return h.TotalCount > 0
	}, 20*time.Second, 50*time.Millisecond, "the mapped temperature is in the history")
	wd.open(t, tp.api.URL+"/#/device/"+id)
	wd.waitJS(t, "the chart has a point", "return document.querySelectorAll('#chart circle title').length > 0")
	wd.waitText(t, "#chartinfo", "Temperature.temperature")
	var title, unit string
	wd.js(t, &title, "return document.querySelector('#chart circle title').textContent")
	require.Contains(t, title, "21.5 Cel", "a point's tooltip names its value and unit")
	wd.js(t, &unit, "return document.querySelector('#chart .unit').textContent")
	require.Equal(t, "Cel", unit)
	var ticks int
	wd.js(t, &ticks, "return document.querySelectorAll('#chart .axis.x text').length")
	require.GreaterOrEqual(t, ticks, 2, "the time axis has labels")

	// Hovering shows the tooltip of the nearest point.
	var tip string
	wd.js(t, &tip, `const c = document.querySelector('#chart circle'); const r = c.getBoundingClientRect();
const svg = document.querySelector('#chart svg');
svg.dispatchEvent(new MouseEvent('mousemove', {clientX: r.x + r.width / 2, clientY: r.y, bubbles: true}));
const tip = document.querySelector('#chart .tip'); return tip.hidden ? '' : tip.textContent;`)
	require.Contains(t, tip, "21.5 Cel")

	wd.fill(t, "#histform [name=range]", "1h")
	wd.waitJS(t, "the 1 h range is drawn", "return document.querySelectorAll('#chart circle title').length > 0")
	wd.screenshot(t, "console-device-history")
}

// consoleSubscriptions subscribes and unsubscribes.
func consoleSubscriptions(t *testing.T, wd *webDriver, tp *testPlatform) {
	hook := newSink(t)
	wd.open(t, tp.api.URL+"/#/subscriptions")
	wd.waitText(t, "#subs", "no subscriptions")
	wd.fill(t, "#subform [name=notifyType]", "deviceDataChanged")
	wd.fill(t, "#subform [name=callbackUrl]", hook.srv.URL+"/push")
	wd.click(t, "#subform button")
	wd.waitText(t, "#subs", hook.srv.URL+"/push")
	var subs struct {
		Subscriptions []struct {
			NotifyType  string `json:"notifyType"`
			CallbackURL string `json:"callbackUrl"`
		} `json:"subscriptions"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/sub/v1.2.0/subscriptions", nil, &subs))
	require.Len(t, subs.Subscriptions, 1)
	require.Equal(t, "deviceDataChanged", subs.Subscriptions[0].NotifyType)

	wd.fill(t, "#subform [name=callbackUrl]", "http://10.0.0.5/push")
	wd.click(t, "#subform button")
	wd.waitText(t, "#error", "callback_url_no_port")

	wd.click(t, "#subs button[data-unsub]")
	wd.waitText(t, "#subs", "no subscriptions")
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/sub/v1.2.0/subscriptions", nil, &subs))
	require.Empty(t, subs.Subscriptions)
}

// consoleProductUpload: a product with a broken profile and codec shows
// every problem, with where it is; a good one is added.
func consoleProductUpload(t *testing.T, wd *webDriver, tp *testPlatform) {
	wd.open(t, tp.api.URL+"/#/products")
	wd.waitText(t, "#products", "TS3303")
	good, err := os.ReadFile("demo/TemperatureSensor_DozeLabs_TS3303.json")
	require.NoError(t, err)
	bad := strings.Replace(strings.Replace(string(good), `"method": "RW"`, `"method": "RX"`, 1), `"max_length": 32`, `"max_length": -4`, 1)
	bad = strings.Replace(bad, `"model": "TS3303"`, `"model": "TS9"`, 1)
	wd.attach(t, "#productform [name=profile]", "TemperatureSensor_DozeLabs_TS9.json", []byte(bad))
	wd.click(t, "#productform button")
	wd.waitText(t, "#productresult", "invalid_profile")
	var n int
	wd.js(t, &n, "return document.querySelectorAll('#productresult .problems li').length")
	require.GreaterOrEqual(t, n, 2, "both problems of the profile are listed: %s", wd.text(t, "#productresult"))
	require.Regexp(t, `\d+:\d+`, wd.text(t, "#productresult"), "problems say where (line:column)")
	wd.screenshot(t, "console-product-problems")

	fixed := strings.Replace(string(good), `"model": "TS3303"`, `"model": "TS9"`, 1)
	wd.attach(t, "#productform [name=profile]", "TemperatureSensor_DozeLabs_TS9.json", []byte(fixed))
	wd.attach(t, "#productform [name=codec]", "codec.json", []byte(`{"name": "x", "messages": [{"name": "m", "kind": "report", "fields": [{"name": "f", "type": "uint99"}]}]}`))
	wd.click(t, "#productform button")
	wd.waitText(t, "#productresult", "invalid_codec")
	require.Regexp(t, `uint99`, wd.text(t, "#productresult .problems"), "the codec's problem is listed")
	require.False(t, tp.products.catalog.Exists(demoManufacturerID, "TS9"), "a product with a broken codec was added")

	wd.js(t, nil, "document.querySelector('#productform [name=codec]').value = ''") // no codec this time
	wd.attach(t, "#productform [name=profile]", "TemperatureSensor_DozeLabs_TS9.json", []byte(fixed))
	wd.click(t, "#productform button")
	wd.waitText(t, "#productresult", "added")
	wd.waitText(t, "#products", "TS9")
	require.True(t, tp.products.catalog.Exists(demoManufacturerID, "TS9"))
}

// consoleUpgrades uploads a package, starts a task, stops it, and retries
// a task whose device failed.
func consoleUpgrades(t *testing.T, wd *webDriver, tp *testPlatform) {
	id, _ := registerDevice(t, tp, "868333038000001")
	wd.open(t, tp.api.URL+"/#/upgrades")
	wd.waitText(t, "#packages", "no packages")
	wd.attach(t, "#pkgform [name=file]", "wm-1.1.0.bin", []byte(strings.Repeat("firmware", 100)))
	for k, v := range map[string]string{"version": "1.1.0", "deviceType": demoDeviceType, "manufacturerName": "Doze Labs", "model": demoModel} {
		wd.fill(t, "#pkgform [name="+k+"]", v)
	}
	wd.click(t, "#pkgform button")
	wd.waitText(t, "#pkgresult", "uploaded")
	wd.waitText(t, "#packages", "1.1.0")
	wd.waitJS(t, "the package is offered", "return document.querySelector('#taskform [name=fileId]').options.length === 1")

	// op reads the task the console says it started.
	op := func() map[string]any {
		var id string
		wd.js(t, &id, "const b = document.querySelector('#taskresult b'); return b ? b.textContent : ''")
		require.NotEmpty(t, id, "the console names the task it started")
		var task map[string]any
		require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iodm/northbound/v1.5.0/operations/"+id, nil, &task))
		return task
	}
	wd.fill(t, "#taskform [name=devices]", id)
	wd.fill(t, "#taskform [name=executeType]", "device_online")
	wd.click(t, "#taskform button")
	wd.waitText(t, "#taskresult", "started")
	wd.waitText(t, "#tasks", "Stop")
	wd.click(t, "#tasks button[data-act=stop]")
	wd.waitText(t, "#tasks", "stop")
	require.Equal(t, "stop", op()["status"])

	// "now" on a device that is not online fails it; Retry starts it again.
	wd.fill(t, "#taskform [name=executeType]", "now")
	wd.click(t, "#taskform button")
	wd.waitText(t, "#taskresult", "started")
	var first map[string]any
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if first = op(); first["failCount"] == float64(1) {
			break
		}
	}
	require.Equal(t, float64(1), first["failCount"], "the task on a device not online fails it: %v", first)
	task := first["operationId"].(string)
	wd.waitJS(t, "the failed task offers Retry", "return document.querySelector(`#tasks button[data-act=retry][data-id=\"${arguments[0]}\"]`) !== null", task)
	wd.click(t, `#tasks button[data-act=open][data-id="`+task+`"]`)
	wd.waitText(t, "#subops", "not online")
	wd.click(t, `#tasks button[data-act=retry][data-id="`+task+`"]`)
	require.Eventually(t, func() bool { return op()["attempt"] != first["attempt"] }, 10*time.Second, 50*time.Millisecond,
		"the console's Retry started the failed device again")
	wd.screenshot(t, "console-upgrades")
}

// consolePolling: a page polls only the calls it shows, every 3 s while
// visible, and once a minute once the tab is hidden. The page runs on a
// test clock (pageClock): its timers fire only when the test advances it.
func consolePolling(t *testing.T, wd *webDriver, tp *testPlatform) {
	wd.withPageClock(t)
	wd.open(t, tp.api.URL+"/#/subscriptions")
	wd.waitJS(t, "the subscriptions page schedules its first poll", "return document.querySelector('#subs') !== null && __clock.pending() > 0")
	advance := func(ms int) {
		t.Helper()
		wd.js(t, nil, "__clock.advance(arguments[0])", ms)
		// A poll that fired is settled once it scheduled the next one.
		wd.waitJS(t, "the poll settles", "return __clock.pending() > 0")
	}
	// polls returns the test clock's times of the polls so far (each
	// reads the subscriptions) and every path the page fetched.
	polls := func() (at []int, paths []string) {
		t.Helper()
		var log []struct {
			Path string
			At   int
		}
		wd.js(t, &log, "return __clock.fetches")
		for _, f := range log {
			if f.Path == "/iocm/app/sub/v1.2.0/subscriptions" {
				at = append(at, f.At)
			}
			paths = append(paths, f.Path)
		}
		return at, paths
	}
	advance(0) // the first poll, at once
	wd.waitText(t, "#subs", "no subscriptions")
	for range 9 {
		advance(1000)
	}
	at, paths := polls()
	require.Equal(t, []int{0, 3000, 6000, 9000}, at, "the visible page polls at once, then every 3 s")
	for _, p := range paths {
		require.Contains(t, []string{"/iocm/app/sub/v1.2.0/subscriptions", "/doze/v1/endpoints"}, p, "the subscriptions page polls only what it shows")
	}

	wd.js(t, nil, "Object.defineProperty(document, 'hidden', {configurable: true, get: () => true}); document.dispatchEvent(new Event('visibilitychange'))")
	for range 63 {
		advance(1000)
	}
	at, _ = polls()
	require.Equal(t, []int{0, 3000, 6000, 9000, 12000, 72000}, at,
		"a hidden tab polls once more (the poll already scheduled), then once a minute")
}

// consoleNarrow: at 400 px no page scrolls sideways.
func consoleNarrow(t *testing.T, wd *webDriver, tp *testPlatform) {
	d, err := tp.reg.GetByNodeID(context.Background(), "868333037000001")
	require.NoError(t, err)
	wd.resize(t, 400, 900)
	t.Cleanup(func() { wd.resize(t, 1280, 1000) })
	var width int
	wd.js(t, &width, "return window.innerWidth")
	require.LessOrEqual(t, width, 400, "the window is 400 px wide")
	for _, page := range []string{"devices", "device/" + d.ID, "products", "upgrades", "subscriptions"} {
		wd.open(t, tp.api.URL+"/#/"+page)
		wd.waitJS(t, page+" has loaded", "return document.querySelector('#view table tbody tr') !== null && !document.querySelector('#view').innerText.includes('loading…')")
		time.Sleep(300 * time.Millisecond) // the chart draws after the first poll
		var over []string
		wd.js(t, &over, `const w = document.documentElement.clientWidth; const out = [];
if (document.documentElement.scrollWidth > w) out.push('page ' + document.documentElement.scrollWidth + ' > ' + w);
for (const e of document.querySelectorAll('body *')) { const r = e.getBoundingClientRect();
  if (r.width && r.right > w + 1 && !e.closest('.scroll')) out.push(e.tagName + '#' + e.id + '.' + e.className + ' right ' + Math.round(r.right)); }
return out.slice(0, 10);`)
		require.Empty(t, over, "at 400 px, %s has elements past the screen's edge", page)
		wd.screenshot(t, "console-400-"+strings.ReplaceAll(page, "/", "-"))
	}
}

// consoleLogout forgets the token: the login form shows, and a reload
// stays logged out.
func consoleLogout(t *testing.T, wd *webDriver, tp *testPlatform) {
	wd.open(t, tp.api.URL+"/#/devices")
	wd.waitText(t, "#who", tp.app.ID)
	wd.click(t, "#logout")
	wd.waitJS(t, "the login form shows", "return !document.querySelector('#login').hidden")
	var stored string
	wd.js(t, &stored, "return JSON.stringify(sessionStorage)")
	require.NotContains(t, stored, "token", "the token is forgotten")
	wd.open(t, tp.api.URL+"/#/devices")
	wd.waitJS(t, "the login form shows after a reload", "return !document.querySelector('#login').hidden")
	require.Empty(t, wd.text(t, "#view"))
}
