package main

import (
	"context"
	"github.com/doze-io/doze/command"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// registerBehind registers an MQTT device of the demo product with the
// given nodeType, behind gatewayID when it is not "".
func registerBehind(t *testing.T, tp *testPlatform, nodeID, nodeType, gatewayID string) (id, secret string) {
	t.Helper()
	var reg struct {
		DeviceID string `json:"deviceId"`
		Secret   string `json:"secret"`
	}
	body := map[string]any{"nodeId": nodeID, "nodeType": nodeType, "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID,
		"deviceType": demoDeviceType, "model": demoModel, "protocolType": "MQTT", "name": nodeType + " " + nodeID}}
	if gatewayID != "" {
		body["gatewayId"] = gatewayID
	}
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", body, &reg))
	return reg.DeviceID, reg.Secret
}

// TestMQTTGateway: a gateway reports and takes commands for the
// sub-devices registered behind it, on its one connection (MQT-5); the
// sub-devices carry gatewayId and nodeType (REG-4), bind through the
// gateway and follow its connection.
func TestMQTTGateway(t *testing.T) {
	needMosquitto(t)
	tp := startPlatform(t)
	port := mqttPort(t, tp)
	gw, gwSecret := registerBehind(t, tp, "868000000000401", "GATEWAY", "")
	sub, _ := registerBehind(t, tp, "868000000000402", "ENDPOINT", gw)
	stranger, _ := registerBehind(t, tp, "868000000000403", "ENDPOINT", "")

	var dev struct {
		GatewayID  string `json:"gatewayId"`
		NodeType   string `json:"nodeType"`
		DeviceInfo struct {
			Status string `json:"status"`
		} `json:"deviceInfo"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+sub, nil, &dev))
	require.Equal(t, gw, dev.GatewayID)
	require.Equal(t, "ENDPOINT", dev.NodeType)
	require.Equal(t, "INACTIVE", dev.DeviceInfo.Status, "not bound before its gateway connects")

	// The gateway connects and listens on its own command topic.
	l := listenMQTT(t, tp, gw, gw, gwSecret, "$oc/devices/"+gw+"/sys/commands/#")
	require.Eventually(t, func() bool { return tp.mq.Connected(gw) }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		d, err := tp.reg.Get(context.Background(), sub)
		return err == nil && d.Bound && d.Connected
	}, 5*time.Second, 10*time.Millisecond, "the sub-device binds through its gateway's connection")

	// A report for the sub-device through the gateway is the sub-device's.
	report := `{"services":[{"service_id":"Battery","properties":{"batteryLevel":42}}]}`
	out, err := mosquittoPub(t, port, "-V", "mqttv5", "-i", gw+"_pub", "-u", gw, "-P", gwSecret, "-q", "1",
		"-t", "$oc/devices/"+sub+"/sys/properties/report", "-m", report)
	require.NoError(t, err, out)
	require.NotContains(t, out, "rror", "the report is accepted: %s", out)
	var hist struct {
		TotalCount int `json:"totalCount"`
		DTOs       []struct {
			DeviceID  string         `json:"deviceId"`
			GatewayID string         `json:"gatewayId"`
			Data      map[string]any `json:"data"`
		} `json:"deviceDataHistoryDTOs"`
	}
	require.Eventually(t, func() bool {
		tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+sub+"&gatewayId="+gw, nil, &hist)
		return hist.TotalCount == 1
	}, 5*time.Second, 20*time.Millisecond, "the sub-device's report is in its history")
	require.Equal(t, sub, hist.DTOs[0].DeviceID)
	require.Equal(t, gw, hist.DTOs[0].GatewayID)
	require.EqualValues(t, 42, hist.DTOs[0].Data["batteryLevel"])

	// Not for a device that is not behind it.
	out, _ = mosquittoPub(t, port, "-V", "mqttv5", "-i", gw+"_pub", "-u", gw, "-P", gwSecret, "-q", "1",
		"-t", "$oc/devices/"+stranger+"/sys/properties/report", "-m", report)
	require.Contains(t, out, "not authorized", "a gateway reports only for its own sub-devices")

	// A command to the sub-device comes down the gateway's topic naming
	// the sub-device; the gateway answers on its own response topic.
	answered := answerOnce(l, port, gw+"_resp", gw, gwSecret, gw, `{"result_code":0,"paras":{"result":"sub ok"}}`)
	status, res := serviceCallAt(t, tp, sub, setPeriod("ACK", 30))
	require.NoError(t, <-answered)
	require.Equal(t, http.StatusOK, status, "%v", res)
	require.Equal(t, "SUCCESSFUL", res["status"])
	require.Equal(t, map[string]any{"result": "sub ok"}, res["body"])
	c, err := tp.cmds.Get(context.Background(), res["requestId"].(string))
	require.NoError(t, err)
	require.Equal(t, sub, c.DeviceID, "the command is the sub-device's")

	var cmd struct {
		CommandID string `json:"commandId"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": sub, "command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 60}},
	}, &cmd))
	topic, payload := l.next(t)
	require.Equal(t, "$oc/devices/"+gw+"/sys/commands/request_id="+cmd.CommandID, topic)
	require.Equal(t, sub, payload["object_device_id"], "the command names the sub-device")
	require.Equal(t, "SET_REPORT_PERIOD", payload["command_name"])

	// The gateway says the sub-device is OFFLINE: a synchronous call is
	// refused, a command waits (the gateway would have no device to hand it
	// to) and comes down once the gateway says it is ONLINE again. (First
	// the command above is answered: a device's commands go one at a time.)
	respond := func(commandID string) {
		out, err := mosquittoPub(t, port, "-V", "mqttv5", "-i", gw+"_resp", "-u", gw, "-P", gwSecret, "-q", "1",
			"-t", "$oc/devices/"+gw+"/sys/commands/response/request_id="+commandID, "-m", `{"result_code":0}`)
		require.NoError(t, err, out)
		require.Eventually(t, func() bool {
			c, err := tp.cmds.Get(context.Background(), commandID)
			return err == nil && c.Status == command.Successful
		}, 10*time.Second, 10*time.Millisecond, "command %s answered", commandID)
	}
	respond(cmd.CommandID)
	statusUp := func(eventID, status string) {
		out, err := mosquittoPub(t, port, "-V", "mqttv5", "-i", gw+"_pub", "-u", gw, "-P", gwSecret, "-q", "1",
			"-t", "$oc/devices/"+gw+"/sys/events/up", "-m", subStatusEvent(eventID, [2]string{sub, status}))
		require.NoError(t, err, out)
		require.Eventually(t, func() bool { return deviceStatus(t, tp, sub) == status }, 10*time.Second, 10*time.Millisecond)
	}
	statusUp("off-1", "OFFLINE")
	status, res = serviceCallAt(t, tp, sub, setPeriod("ACK", 30))
	require.Equal(t, http.StatusConflict, status, "%v", res)
	require.Equal(t, "device_not_connected", res["error_code"])
	require.Contains(t, res["error_desc"], "OFFLINE")
	var waiting map[string]any
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": sub, "command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 120}},
	}, &waiting), "%v", waiting)
	cmd.CommandID, _ = waiting["commandId"].(string)
	require.Never(t, func() bool {
		c, err := tp.cmds.Get(context.Background(), cmd.CommandID)
		return err != nil || c.Status != command.Pending
	}, 500*time.Millisecond, 20*time.Millisecond, "a command to a sub-device its gateway said is OFFLINE waits")
	statusUp("on-1", "ONLINE")
	topic, payload = l.next(t)
	require.Equal(t, "$oc/devices/"+gw+"/sys/commands/request_id="+cmd.CommandID, topic, "the waiting command comes down once ONLINE")
	require.Equal(t, sub, payload["object_device_id"])
	respond(cmd.CommandID)

	// The gateway's connection drops: so does its sub-device's.
	l.cmd.Process.Kill()
	require.Eventually(t, func() bool {
		d, err := tp.reg.Get(context.Background(), sub)
		return err == nil && !d.Connected && !d.DisconnectedAt.IsZero()
	}, 5*time.Second, 10*time.Millisecond, "the sub-device is disconnected with its gateway")
}
