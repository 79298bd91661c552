package main

import (
	"context"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

// TestCrashKeepsAcknowledged builds the platform, lets an application
// register a device, subscribe and create a command, kills the process with
// SIGKILL and starts it again on the same data directory: everything that
// was acknowledged is still there (STO-1, CMD-9, PSH-6), the command in
// the status the app read just before the kill or a later one. A device sends
// reports right up to the kill; every report it saw acknowledged is in
// history after the restart (STO-2: the platform keeps an uplink in its
// inbox before the lwm2m server acknowledges it).
func TestCrashKeepsAcknowledged(t *testing.T) {
	p := newCrashPlatform(t)
	tp, dtlsAddr := p.startWithAPI(t)
	id, psk := registerDevice(t, tp, "868333030000900")
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": "deviceDataChanged", "callbackUrl": "http://127.0.0.1:9/push"}, nil))
	var c struct {
		CommandID string `json:"commandId"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": id, "command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 60}},
	}, &c))

	const reports = 20
	sendReports(t, dtlsAddr, "urn:imei:868333030000900", psk, reports)
	// The command's status as the app sees it just before the kill: the
	// device woke, so it may have been sent and acknowledged (CMD-9).
	before, err := command.ParseStatus(commandStatus(t, tp, id, c.CommandID))
	require.NoError(t, err)
	p.kill() // right after the last acknowledgement

	app2 := p.start()
	require.Equal(t, [2]string{tp.app.ID, tp.app.Secret}, [2]string{app2.ID, app2.Secret}, "the app's credentials survive a restart")
	tp.token = tp.login(t)
	var dev deviceJSON
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &dev))
	require.Equal(t, "868333030000900", dev.DeviceInfo.NodeID)
	var subs struct {
		TotalCount int `json:"totalCount"`
	}
	tp.call(t, "GET", "/iocm/app/sub/v1.2.0/subscriptions", nil, &subs)
	require.Equal(t, 1, subs.TotalCount)
	var list struct {
		Data []struct {
			CommandID, Status string
		} `json:"data"`
	}
	tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, &list)
	require.Len(t, list.Data, 1)
	require.Equal(t, c.CommandID, list.Data[0].CommandID)
	after, err := command.ParseStatus(list.Data[0].Status)
	require.NoError(t, err)
	require.True(t, after == before || slices.Contains(laterStatuses(before), after),
		"the command survives in %v, the status it had before the kill, or a later one; it has %v (CMD-9)", before, after)
	var products struct {
		TotalCount int `json:"totalCount"`
	}
	tp.call(t, "GET", "/doze/v1/products", nil, &products)
	require.Equal(t, 2, products.TotalCount, "the demo products (water meter, temperature sensor) are stored once each, not added again")

	var hist historyAnswer
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id+"&serviceId=Meter", nil, &hist))
	got := map[float64]bool{}
	for _, h := range hist.DTOs {
		got[h.Data["pulseCount"].(float64)] = true
	}
	for i := range reports {
		require.True(t, got[float64(1000+i)], "acknowledged report %d (pulseCount %d) is in history after the crash; history has %v", i, 1000+i, got)
	}
}

// laterStatuses returns the statuses the command life cycle (CMD-1) can
// reach from s in one move or more.
func laterStatuses(s command.Status) []command.Status {
	var out []command.Status
	next := command.Moves(s)
	for len(next) > 0 {
		m := next[0]
		next = next[1:]
		if !slices.Contains(out, m) {
			out = append(out, m)
			next = append(next, command.Moves(m)...)
		}
	}
	return out
}

// sendReports connects a meter over DTLS and sends n reports (pulseCount
// 1000…) as confirmable notifications of /19/0/0, each acknowledged.
func sendReports(t *testing.T, addr, ep string, psk []byte, n int) {
	t.Helper()
	cd, err := codec.Compile(demoCodec, nil)
	require.NoError(t, err)
	c, err := transport.NewClient(transport.ClientConfig{Server: addr, Endpoint: ep, Key: psk, Queue: true,
		ConfirmableNotifications: true, Objects: "</1/0>,</3/0>,</19/0>,</19/1>"})
	require.NoError(t, err)
	defer c.Close()
	c.Handle("/19/0/0", transport.Resource{Read: func() (transport.Content, error) { return transport.Content{Format: lwm2m.FormatOpaque}, nil }})
	// Commands and codec ACKs are taken (a device answering 4.04 to every
	// downlink form would have its commands FAILED).
	c.Handle("/19/1/0", transport.Resource{Write: func(transport.Content) error { return nil }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	require.Eventually(t, func() bool { return c.Observed("/19/0/0") }, 20*time.Second, 10*time.Millisecond)
	for i := range n {
		b, err := cd.Encode(&codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
			{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 1.5, "flowRate": 0.5, "pulseCount": 1000 + i}},
			{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 80}},
			{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -90}},
		}})
		require.NoError(t, err)
		require.NoError(t, c.Notify(ctx, "/19/0/0", transport.Content{Format: lwm2m.FormatOpaque, Payload: b}), "report %d acknowledged", i)
	}
}

func freeUDPAddr(t testing.TB) string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer c.Close()
	return c.LocalAddr().String()
}
