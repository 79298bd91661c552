package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
)

// modeDevice is a DTLS LwM2M device that is always reachable (binding U,
// no queue mode: DRX) and hands every write of /19/1/0 to write, which
// answers (and so ACKs, the answer being piggybacked) when it returns.
func modeDevice(t *testing.T, tp *testPlatform, imei string, psk []byte, write func([]byte)) *transport.Client {
	t.Helper()
	c, err := transport.NewClient(transport.ClientConfig{Server: tp.lwm.DTLSAddr().String(), Endpoint: imei, Key: psk,
		Objects: "</1/0>,</3/0>,</19/0>,</19/1>"})
	require.NoError(t, err)
	c.Handle("/19/0/0", transport.Resource{Read: func() (transport.Content, error) { return transport.Content{Format: lwm2m.FormatOpaque}, nil }})
	c.Handle("/19/1/0", transport.Resource{Write: func(ct transport.Content) error { write(ct.Payload); return nil }})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	return c
}

func registerWithMode(t *testing.T, tp *testPlatform, imei string, info map[string]any) (string, []byte, int) {
	t.Helper()
	di := map[string]any{"manufacturerId": demoManufacturerID, "deviceType": demoDeviceType, "model": demoModel, "protocolType": "LWM2M"}
	for k, v := range info {
		di[k] = v
	}
	var reg struct {
		DeviceID string `json:"deviceId"`
		PSK      string `json:"psk"`
	}
	status := tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{"nodeId": imei, "deviceInfo": di}, &reg)
	if status != http.StatusOK {
		return "", nil, status
	}
	psk := make([]byte, 16)
	for i := range psk {
		var b byte
		for _, c := range reg.PSK[2*i : 2*i+2] {
			b <<= 4
			switch {
			case c >= '0' && c <= '9':
				b |= byte(c - '0')
			default:
				b |= byte(c-'a') + 10
			}
		}
		psk[i] = b
	}
	return reg.DeviceID, psk, status
}

func createCommand(t *testing.T, tp *testPlatform, deviceID string) string {
	t.Helper()
	var cmd struct {
		CommandID string `json:"commandId"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": deviceID, "command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}},
	}, &cmd))
	return cmd.CommandID
}

// commandStatus reads a command's status through the API, as an
// application sees it.
func commandStatus(t *testing.T, tp *testPlatform, deviceID, id string) string {
	t.Helper()
	var list struct {
		Data []struct {
			CommandID string `json:"commandId"`
			Status    string `json:"status"`
		} `json:"data"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+deviceID, nil, &list))
	for _, c := range list.Data {
		if c.CommandID == id {
			return c.Status
		}
	}
	t.Fatalf("command %s of device %s not listed: %+v", id, deviceID, list.Data)
	return ""
}

// CMD-11 input: modes are PSM, DRX or EDRX, timers are bounded seconds,
// and a bad value is a 400 naming the field, at registration and in a PUT.
func TestDeviceModeValidation(t *testing.T) {
	tp := startPlatform(t)
	for _, info := range []map[string]any{
		{"mode": "turbo"},
		{"mode": "PSM", "psmActiveTimer": -1},
		{"mode": "EDRX", "edrxCycle": 20000},
		{"mode": "EDRX", "edrxCycle": 20.48, "pagingTimeWindow": 40.96},
	} {
		_, _, status := registerWithMode(t, tp, "868333030000801", info)
		require.Equal(t, http.StatusBadRequest, status, "registration with deviceInfo %v", info)
	}
	id, _, status := registerWithMode(t, tp, "868333030000801", map[string]any{"mode": "edrx", "edrxCycle": 20.48, "pagingTimeWindow": 5.12})
	require.Equal(t, http.StatusOK, status)
	code, e := tp.rawCall(t, "PUT", "/iocm/app/dm/v1.4.0/devices/"+id, []byte(`{"mode":"sleepy"}`))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, e.Desc, "PSM, DRX or EDRX")
	code, _ = tp.rawCall(t, "PUT", "/iocm/app/dm/v1.4.0/devices/"+id, []byte(`{"deviceInfo":{"pagingTimeWindow":30}}`))
	require.Equal(t, http.StatusBadRequest, code, "a paging window longer than the device's 20.48 s cycle")

	var dev deviceJSON
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &dev))
	require.Equal(t, "EDRX", dev.DeviceInfo.Mode)
	require.Equal(t, 20.48, *dev.DeviceInfo.EDRXCycle)
	require.Equal(t, 5.12, *dev.DeviceInfo.PagingTimeWindow)
	m, err := tp.cmds.Effective(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, 2*20480*time.Millisecond+120*time.Second, m.TimeoutAfterSend(), "the eDRX timeout from the device's own cycle")
	require.Equal(t, 93*time.Second, m.ActiveTime, "the active time defaults to the lwm2m server's awake window")
}

// The app's default mode (CMD-11): a device without a mode follows it,
// at once and after a restart; a device with its own keeps it.
func TestAppDefaultMode(t *testing.T) {
	dir := t.TempDir()
	tp := startPlatform(t, func(c *Config) { c.DataDir = dir })
	follower, _, status := registerWithMode(t, tp, "868333030000811", nil)
	require.Equal(t, http.StatusOK, status)
	own, _, status := registerWithMode(t, tp, "868333030000812", map[string]any{"mode": "PSM"})
	require.Equal(t, http.StatusOK, status)
	modeOf := func(tp *testPlatform, id string) string {
		var dev deviceJSON
		require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &dev))
		return dev.DeviceInfo.Mode
	}
	require.Equal(t, "PSM", modeOf(tp, follower), "PSM unless the app says otherwise")

	code, _ := tp.rawCall(t, "PUT", "/doze/v1/app/settings", []byte(`{"defaultMode":"slow"}`))
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/doze/v1/app/settings", map[string]any{"defaultMode": "DRX"}, nil))
	require.Eventually(t, func() bool { return modeOf(tp, follower) == "DRX" }, 10*time.Second, 10*time.Millisecond,
		"the device without a mode follows the app's new default")
	require.Equal(t, "PSM", modeOf(tp, own), "a device's own mode stays")

	tp.stop()
	tp2 := startPlatform(t, func(c *Config) { c.DataDir = dir })
	require.Equal(t, "DRX", modeOf(tp2, follower), "after a restart")
	require.Equal(t, "PSM", modeOf(tp2, own))
	later, _, status := registerWithMode(t, tp2, "868333030000813", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "DRX", modeOf(tp2, later), "a device registered later takes the app's default")
}

// CMD-3 end to end with DTLS devices: a PSM device that has not sent an
// uplink keeps its command PENDING and gets it with its uplink (its
// registration); a DRX device gets a cached command at once, without an
// uplink (here: its mode changes to DRX while the command waits).
func TestPowerModesDeliver(t *testing.T) {
	tp := startPlatform(t)
	got := make(chan []byte, 4)

	psm, pskPSM, _ := registerWithMode(t, tp, "868333030000821", map[string]any{"mode": "PSM"})
	cmdPSM := createCommand(t, tp, psm)
	require.Equal(t, "PENDING", commandStatus(t, tp, psm, cmdPSM), "PSM: no uplink yet")
	modeDevice(t, tp, "868333030000821", pskPSM, func(b []byte) { got <- b })
	require.Eventually(t, func() bool { return commandStatus(t, tp, psm, cmdPSM) == "DELIVERED" }, 20*time.Second, 20*time.Millisecond,
		"PSM: the command goes out after the device's uplink")
	<-got

	// A device that was PSM with a 1 ms active time: its registration's
	// window has closed by the time the command is stored.
	lamp, pskLamp, _ := registerWithMode(t, tp, "868333030000822", map[string]any{"mode": "PSM", "psmActiveTimer": 0.001})
	modeDevice(t, tp, "868333030000822", pskLamp, func(b []byte) { got <- b })
	cmdLamp := createCommand(t, tp, lamp)
	require.Eventually(t, func() bool {
		c, err := tp.cmds.Get(context.Background(), cmdLamp)
		return err == nil && c.Status == command.Pending && c.NextTry.IsZero()
	}, 10*time.Second, 10*time.Millisecond, "PSM with its window closed: waits for an uplink")
	require.Equal(t, http.StatusNoContent, tp.call(t, "PUT", "/iocm/app/dm/v1.4.0/devices/"+lamp, map[string]any{"mode": "DRX"}, nil))
	require.Eventually(t, func() bool { return commandStatus(t, tp, lamp, cmdLamp) == "DELIVERED" }, 20*time.Second, 20*time.Millisecond,
		"DRX: the cached command goes out at once, without an uplink")
	<-got
}

// CMD-1 end to end: while a DTLS device holds its ACK the API shows SENT;
// the ACK makes it DELIVERED. A device that never ACKs keeps it SENT
// (not PENDING) with its mode's deadline stored: 300 s after the send for
// DRX (the TIMEOUT itself at that instant is TestTransmitNoACKTimeout's,
// in a synctest bubble).
func TestSentWhileACKHeld(t *testing.T) {
	tp := startPlatform(t)
	hold := make(chan struct{})
	arrived := make(chan struct{}, 4)
	id, psk, _ := registerWithMode(t, tp, "868333030000831", map[string]any{"mode": "DRX"})
	modeDevice(t, tp, "868333030000831", psk, func([]byte) { arrived <- struct{}{}; <-hold })
	t.Cleanup(func() {
		select {
		case <-hold:
		default:
			close(hold)
		}
	})
	cmd := createCommand(t, tp, id)
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the DRX device did not get the command within 20 s")
	}
	// SENT is stored right after the message left, so it may trail the
	// device's receipt by a store write.
	require.Eventually(t, func() bool { return commandStatus(t, tp, id, cmd) == "SENT" }, 10*time.Second, 10*time.Millisecond,
		"the device has the command and holds its ACK: SENT")
	c, err := tp.cmds.Get(context.Background(), cmd)
	require.NoError(t, err)
	require.Equal(t, c.PlatformIssuedTime.Add(300*time.Second), c.Deadline, "DRX: TIMEOUT 300 s after the send unless ACKed")
	close(hold)
	require.Eventually(t, func() bool { return commandStatus(t, tp, id, cmd) == "DELIVERED" }, 20*time.Second, 20*time.Millisecond,
		"the ACK makes it DELIVERED")
}
