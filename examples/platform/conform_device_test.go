package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store"
)

// The tests here run the platform against lwm2mtest.Device, a device
// written on go-coap's codec (not transport.Client) that is as strict as the
// OMA text and the stacks of issue 20: it refuses single-value writes to
// the Multiple resource /19/1/0, starts DTLS with the record version
// {254,0} in its ClientHellos (mbedTLS 2.x), downloads firmware on a
// socket of its own, and reboots after Execute /5/0/2, registering anew
// from a new source port with its observations forgotten.

// strictDevice is a conformance device of the platform over DTLS (or
// plain CoAP with a NONE device) and the Dialer of its sockets.
type strictDevice struct {
	*lwm2mtest.Device
	dialer *lwm2mtest.Dialer
	flash  *lwm2mtest.Flash
}

// startStrictDevice starts a conformance device for imei, over DTLS with
// psk, or over plain CoAP when psk is nil. cfg.Flash, when nil, is a
// device running FW1.0.
func startStrictDevice(t *testing.T, tp *testPlatform, imei string, psk []byte, cfg lwm2mtest.DeviceConfig) *strictDevice {
	t.Helper()
	if cfg.Flash == nil {
		cfg.Flash = lwm2mtest.NewFlash("FW1.0")
	}
	dl := &lwm2mtest.Dialer{Identity: "urn:imei:" + imei, PSK: psk}
	cfg.Endpoint, cfg.Server = dl.Identity, "coaps://"+tp.lwm.DTLSAddr().String()
	if psk == nil {
		cfg.Endpoint, cfg.Server = imei, "coap://"+tp.lwm.UDPAddr().String()
	}
	cfg.Dial = dl.Dial
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := lwm2mtest.StartDevice(ctx, nil, cfg)
	require.NoError(t, err, "StartDevice(%s)", cfg.Server)
	t.Cleanup(d.Close)
	require.Eventually(t, func() bool {
		dev, err := tp.reg.GetByNodeID(ctx, imei)
		return err == nil && dev.Status == registry.StatusOnline
	}, 10*time.Second, 10*time.Millisecond, "the registration makes the device ONLINE")
	return &strictDevice{Device: d, dialer: dl, flash: cfg.Flash}
}

// firmwarePackage uploads a firmware package for the demo product whose
// first line is version and returns its fileId.
func firmwarePackage(t *testing.T, tp *testPlatform, version string) string {
	t.Helper()
	image := make([]byte, 3000)
	rand.Read(image)
	return tp.upload(t, append([]byte(version+"\n"), image...), map[string]string{"fileType": "firmwarePackage", "version": version,
		"deviceType": demoDeviceType, "manufacturerName": "Doze Labs", "model": demoModel, "protocolType": "LWM2M"})
}

// firmwareUpgrade creates a firmware upgrade task of one device and
// returns its operationId.
func firmwareUpgrade(t *testing.T, tp *testPlatform, fileID, deviceID string, policy map[string]any) string {
	t.Helper()
	body := map[string]any{"fileId": fileID, "targets": map[string]any{"devices": []string{deviceID}}}
	if policy != nil {
		body["policy"] = policy
	}
	var op struct {
		OperationID string `json:"operationId"`
		Desc        string `json:"error_desc"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iodm/northbound/v1.5.0/operations/firmwareUpgrade", body, &op), op.Desc)
	return op.OperationID
}

// requireUpgraded checks a sub-operation that ended SUCCESS with FW2.0
// read from /3/0/3, and the device's stored version.
func requireUpgraded(t *testing.T, tp *testPlatform, row map[string]any, deviceID string) {
	t.Helper()
	require.Equal(t, "success", row["status"], "sub-operation %v", row)
	require.Equal(t, "FW2.0", row["currentVersion"], "read from /3/0/3 after the reboot: %v", row)
	require.Equal(t, "FW1.0", row["sourceVersion"])
	// The result's listener stores the version after the sub-task ended.
	require.Eventually(t, func() bool {
		var d deviceJSON
		return tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+deviceID, nil, &d) == http.StatusOK && d.DeviceInfo.FWVersion == "FW2.0"
	}, 10*time.Second, 10*time.Millisecond, "the device's fwVersion becomes FW2.0")
}

// Issue 20 items 1 and 3 end to end: a device whose DTLS hellos carry
// {254,0} registers; a command reaches it as the opaque write of the
// resource instance /19/1/0/0 and is DELIVERED; the codec's response,
// notified on /19/0/0, ends it SUCCESSFUL.
func TestConformDeviceCommand(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceDataChanged")
	const imei = "868333030002001"
	id, psk := registerDevice(t, tp, imei)
	d := startStrictDevice(t, tp, imei, psk, lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11})
	require.GreaterOrEqual(t, d.dialer.Hellos(), 2, "the initial and the cookie ClientHello went out as {254,0}")
	require.Equal(t, 1, d.dialer.Sessions())
	require.Eventually(t, func() bool { return d.Observed("/19/0/0") }, 10*time.Second, 10*time.Millisecond,
		"the platform observes the data channel")

	var cmd struct {
		CommandID string `json:"commandId"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": id, "callbackUrl": hook.srv.URL + "/cmd",
		"command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}},
	}, &cmd))
	hook.wait(t, "DELIVERED", func(p map[string]any) bool { return resultCode(p) == "DELIVERED" && p["commandId"] == cmd.CommandID })
	var ws []string
	for _, w := range d.Writes() {
		ws = append(ws, w.String())
	}
	require.Equal(t, []string{"PUT /19/1/0/0 cf=42 → 2.04"}, ws, "one write, of the resource instance")
	cd, err := codec.Compile(demoCodec, nil)
	require.NoError(t, err)
	require.Len(t, d.Data(), 1)
	got, err := cd.DecodeDownlink(d.Data()[0])
	require.NoError(t, err)
	c := got.(*codec.Command)
	require.Equal(t, "SET_REPORT_PERIOD", c.Cmd)

	resp, err := cd.Encode(&codec.Response{Identifier: "0", MsgType: codec.MsgResponse, Mid: c.Mid, Body: map[string]any{"result": 0}})
	require.NoError(t, err)
	require.NoError(t, d.Notify(resp))
	hook.wait(t, "SUCCESSFUL", func(p map[string]any) bool { return resultCode(p) == "SUCCESSFUL" && p["commandId"] == cmd.CommandID })
}

// Issue 20 items 2 and 4 end to end: a firmware upgrade of a device that
// downloads the package from a second socket (a DTLS session of its own,
// at the Package URI the platform derived from its DTLS listener), reboots
// at Execute and registers anew from a new port ends SUCCESS with the
// version read from /3/0/3. The same over plain CoAP, where the package id
// is the download's credential.
func TestConformDeviceFirmware(t *testing.T) {
	tp := startPlatform(t)
	fw := firmwarePackage(t, tp, "FW2.0")

	t.Run("DTLS", func(t *testing.T) {
		const imei = "868333030002002"
		id, psk := registerDevice(t, tp, imei)
		d := startStrictDevice(t, tp, imei, psk, lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11})
		row := tp.waitSubOperation(t, firmwareUpgrade(t, tp, fw, id, nil))
		requireUpgraded(t, tp, row, id)
		require.EqualValues(t, 100, row["progress"], "the blocks served on the download session count")
		regs := d.Registrations()
		require.Len(t, regs, 2, "the device registered again after Execute")
		require.NotEqual(t, regs[0], regs[1], "from a new source port")
		require.Equal(t, 3, d.dialer.Sessions(), "registration, download, registration after the reboot")
		version, state, result := d.flash.Firmware()
		require.Equal(t, []any{"FW2.0", lwm2mtest.StateIdle, lwm2mtest.ResultSuccess}, []any{version, state, result})
		requireNoDownloadOnSession(t, d)
	})

	t.Run("plain CoAP", func(t *testing.T) {
		const imei = "868333030002003"
		var none struct{ DeviceID string }
		require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{
			"nodeId": imei, "security": "NONE", "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID,
				"deviceType": demoDeviceType, "model": demoModel, "protocolType": "LWM2M"}}, &none))
		d := startStrictDevice(t, tp, imei, nil, lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11})
		requireUpgraded(t, tp, tp.waitSubOperation(t, firmwareUpgrade(t, tp, fw, none.DeviceID, nil)), none.DeviceID)
		require.Len(t, d.Registrations(), 2)
		requireNoDownloadOnSession(t, d)
	})
}

// requireNoDownloadOnSession checks that the device's registered session
// carried no package block: the download went over its own socket.
func requireNoDownloadOnSession(t *testing.T, d *strictDevice) {
	t.Helper()
	var paths []string
	for _, r := range d.Requests() {
		paths = append(paths, r.String())
	}
	require.Contains(t, paths, "POST /5/0/2 cf=-1 → 2.04", "Execute")
	require.Contains(t, paths, "PUT /5/0/1 cf=0 → 2.04", "Package URI write")
	for _, p := range paths {
		require.NotContains(t, p, "/fw/", "the server does not push the package on the session")
	}
}

// A device that loses power after 4 blocks of the package comes back on
// the same flash, registers anew and resumes the download at block 4; the
// platform sees Downloaded after the new registration, executes, and the
// task ends SUCCESS (issue 20 item 2).
func TestConformDeviceKilledMidDownload(t *testing.T) {
	tp := startPlatform(t)
	fw := firmwarePackage(t, tp, "FW2.0")
	const imei = "868333030002004"
	id, psk := registerDevice(t, tp, imei)
	flash := lwm2mtest.NewFlash("FW1.0")
	cut := make(chan struct{})
	first := startStrictDevice(t, tp, imei, psk, lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11, Flash: flash,
		OnBlock: func(num int) error {
			if num == 3 {
				close(cut)
				return lwm2mtest.ErrPowerCut
			}
			return nil
		}})
	op := firmwareUpgrade(t, tp, fw, id, nil)
	select {
	case <-cut:
	case <-time.After(30 * time.Second):
		t.Fatal("the download did not reach block 3 within 30 s")
	}
	first.Close()
	_, state, _ := flash.Firmware()
	require.Equal(t, lwm2mtest.StateDownloading, state, "the flash keeps the download in progress")
	require.Equal(t, 4*256, flash.Stored())

	var mu sync.Mutex
	var blocks []int
	second := startStrictDevice(t, tp, imei, psk, lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11, Flash: flash,
		OnBlock: func(num int) error { mu.Lock(); blocks = append(blocks, num); mu.Unlock(); return nil }})
	row := tp.waitSubOperation(t, op)
	requireUpgraded(t, tp, row, id)
	mu.Lock()
	require.NotEmpty(t, blocks)
	require.Equal(t, 4, blocks[0], "the download resumed where the power cut stopped it: %v", blocks)
	mu.Unlock()
	require.Len(t, second.Registrations(), 2, "registered at power-on and after the update")
}

// A download aborted by a lost link (State 0, Update Result 4) fails the
// attempt with the device's reason and retryTimes applies: the task is
// FAILED with its automatic retry scheduled; the retry (run here at once
// through the API, instead of 10 minutes later) writes the Package URI
// again and ends SUCCESS (issue 20 item 2).
func TestConformDeviceDownloadAborted(t *testing.T) {
	tp := startPlatform(t)
	fw := firmwarePackage(t, tp, "FW2.0")
	const imei = "868333030002005"
	id, psk := registerDevice(t, tp, imei)
	var mu sync.Mutex
	aborted := false
	d := startStrictDevice(t, tp, imei, psk, lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11,
		OnBlock: func(num int) error {
			mu.Lock()
			defer mu.Unlock()
			if num == 2 && !aborted {
				aborted = true
				return errors.New("link lost")
			}
			return nil
		}})
	op := firmwareUpgrade(t, tp, fw, id, map[string]any{"executeType": "now", "retryTimes": 1})
	row := tp.waitSubOperation(t, op)
	require.Equal(t, "fail", row["status"], "sub-operation %v", row)
	require.Contains(t, fmt.Sprint(row), "4", "the reason carries Update Result 4: %v", row)
	_, state, result := d.flash.Firmware()
	require.Equal(t, []int{lwm2mtest.StateIdle, lwm2mtest.ResultConnectionLost}, []int{state, result})

	task, err := tp.ota.Task(context.Background(), op)
	require.NoError(t, err)
	require.False(t, task.RetryAt.IsZero(), "retryTimes applies: an automatic retry is scheduled (%+v)", task)
	require.WithinDuration(t, time.Now().Add(10*time.Minute), task.RetryAt, time.Minute, "after the engine's retry interval (10 min)")

	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iodm/northbound/v1.5.0/operations/"+op+"/retry", nil, nil))
	requireUpgraded(t, tp, tp.waitSubOperation(t, op), id)
	var uris int
	for _, r := range d.Requests() {
		if r.Path == "/5/0/1" && r.Answer == 0x44 { // 2.04
			uris++
		}
	}
	require.Equal(t, 2, uris, "the Package URI was written again for the retry")
}

// Issue 20 item 6 end to end: after the device reboots (a new Register
// from a new port, its observations forgotten), the platform observes
// /19/0/0 again and a report notified on it lands in history.
func TestConformDeviceReregistration(t *testing.T) {
	tp := startPlatform(t)
	const imei = "868333030002006"
	id, psk := registerDevice(t, tp, imei)
	d := startStrictDevice(t, tp, imei, psk, lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11})
	require.Eventually(t, func() bool { return d.Observed("/19/0/0") }, 10*time.Second, 10*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, d.Reboot(ctx))
	regs := d.Registrations()
	require.Len(t, regs, 2)
	require.NotEqual(t, regs[0], regs[1], "from a new source port")
	require.Eventually(t, func() bool { return d.Observed("/19/0/0") }, 10*time.Second, 10*time.Millisecond,
		"the platform observes the data channel of the new registration")

	report := demoReport(t)
	require.NoError(t, d.Notify(report))
	require.Eventually(t, func() bool {
		recs, _, err := tp.db.History().Query(store.HistoryQuery{DeviceID: id, Page: -1})
		return err == nil && len(recs) == 3
	}, 10*time.Second, 10*time.Millisecond, "the report notified after the re-registration is stored")
}

// Item 4: without FirmwareURI the Package URI names the listener the
// device registered on, at the port it is bound to; a configured one is
// checked.
func TestListenerURI(t *testing.T) {
	dtls := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40001}
	udp := &net.UDPAddr{IP: net.IPv6zero, Port: 40002}
	for _, c := range []struct {
		secure    bool
		dtls, udp net.Addr
		want      string
	}{
		{true, dtls, udp, "coaps://127.0.0.1:40001"},
		{false, dtls, udp, "coap://127.0.0.1:40002"}, // a wildcard gives loopback
		{true, &net.UDPAddr{IP: net.ParseIP("2001:db8::5"), Port: 5684}, nil, "coaps://[2001:db8::5]:5684"},
		{true, &net.UDPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5684}, nil, "coaps://192.0.2.7:5684"},
	} {
		got, err := listenerURI(c.secure, c.dtls, c.udp)
		require.NoError(t, err, "listenerURI(%v, %v, %v)", c.secure, c.dtls, c.udp)
		require.Equal(t, c.want, got, "listenerURI(%v, %v, %v)", c.secure, c.dtls, c.udp)
	}
	_, err := listenerURI(false, dtls, nil)
	require.ErrorContains(t, err, "no coap listener")

	require.Equal(t, "/fw/", firmwareBase(Config{}))
	require.Equal(t, "coaps://dm.example.com:5684/fw/", firmwareBase(Config{FirmwareURI: "coaps://dm.example.com:5684/fw/"}))
	require.NoError(t, checkFirmwareURI("coaps://dm.example.com:5684/fw/"))
	for _, bad := range []string{"http://dm.example.com/fw/", "coap:///fw/", "/fw/", "coap://h/fw/?x=1", "::"} {
		require.ErrorContains(t, checkFirmwareURI(bad), "firmwareURI", "checkFirmwareURI(%q)", bad)
	}
}
