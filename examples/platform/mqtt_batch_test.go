package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/lwm2m/transport"
)

// batchTopic is the gateway's batch report topic.
func batchTopic(gw string) string {
	return "$oc/devices/" + gw + "/sys/gateway/sub_devices/properties/report"
}

// batchReport encodes {"devices":[…]}.
func batchReport(devices ...any) string {
	b, _ := json.Marshal(map[string]any{"devices": devices})
	return string(b)
}

// batteryEntry is one sub-device's entry reporting a battery level.
func batteryEntry(id string, level int) map[string]any {
	return map[string]any{"device_id": id, "services": []any{map[string]any{"service_id": "Battery", "properties": map[string]any{"batteryLevel": level}}}}
}

// TestMQTTGatewayBatchReport: a gateway (mosquitto_pub) reports for
// several sub-devices in one message on
// $oc/devices/{gw}/sys/gateway/sub_devices/properties/report (MQT-5); each
// sub-device's report takes the pipeline of a direct one (history, shadow,
// deviceDataChanged with its deviceId and the gateway's id, model check);
// entries for foreign or unknown devices, or that cannot be read, are
// refused one by one — logged on the gateway's device log with their
// code and counted — without dropping the others; a message that cannot
// be taken at all is refused whole with the reason in the MQTT 5 PUBACK.
func TestMQTTGatewayBatchReport(t *testing.T) {
	needMosquitto(t)
	tp := startPlatform(t)
	port := mqttPort(t, tp)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceDataChanged")
	gw, gwSecret := registerBehind(t, tp, "868000000000701", "GATEWAY", "")
	sub1, _ := registerBehind(t, tp, "868000000000702", "ENDPOINT", gw)
	sub2, _ := registerBehind(t, tp, "868000000000703", "ENDPOINT", gw)
	stranger, _ := registerBehind(t, tp, "868000000000704", "ENDPOINT", "")
	otherGw, _ := registerBehind(t, tp, "868000000000705", "GATEWAY", "")
	foreign, _ := registerBehind(t, tp, "868000000000706", "ENDPOINT", otherGw)
	pub := func(payload string) string {
		out, err := mosquittoPub(t, port, "-V", "mqttv5", "-i", gw+"_pub", "-u", gw, "-P", gwSecret, "-q", "1", "-t", batchTopic(gw), "-m", payload)
		require.NoError(t, err, out)
		return out
	}

	sub2Entry := batteryEntry(sub2, 42)
	sub2Entry["services"].([]any)[0].(map[string]any)["event_time"] = "20260301T120000Z"
	out := pub(batchReport(
		batteryEntry(sub1, 41),
		sub2Entry,
		batteryEntry(stranger, 1),
		batteryEntry(foreign, 2),
		batteryEntry("no-such-device", 3),
		map[string]any{"services": []any{map[string]any{"service_id": "Battery", "properties": map[string]any{"batteryLevel": 4}}}},
		map[string]any{"device_id": sub1, "services": []any{map[string]any{"service_id": "Battery"}}},
		map[string]any{"device_id": sub2, "services": []any{map[string]any{"service_id": "NoSuchService", "properties": map[string]any{"x": 1}}}},
		map[string]any{"device_id": sub1, "services": []any{map[string]any{"service_id": "Battery", "properties": map[string]any{"pad": strings.Repeat("x", 4096)}}}},
		batteryEntry(gw, 43), // the gateway's own
	))
	require.NotContains(t, out, "rror", "the message is taken: %s", out)

	// The sub-devices' reports are theirs: history and pushes.
	for _, c := range []struct {
		id    string
		level float64
	}{{sub1, 41}, {sub2, 42}, {gw, 43}} {
		push := hook.wait(t, "deviceDataChanged of "+c.id, func(p map[string]any) bool {
			s, _ := p["service"].(map[string]any)
			return p["notifyType"] == "deviceDataChanged" && p["deviceId"] == c.id && s["serviceId"] == "Battery"
		})
		require.Equal(t, gw, push["gatewayId"], "the gateway's id (its own for its own report)")
		require.Equal(t, c.level, push["service"].(map[string]any)["data"].(map[string]any)["batteryLevel"])
		var hist historyAnswer
		require.Eventually(t, func() bool {
			tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+c.id+"&gatewayId="+gw, nil, &hist)
			return hist.TotalCount == 1
		}, 10*time.Second, 20*time.Millisecond, "%s has its one report in history", c.id)
		require.Equal(t, c.level, hist.DTOs[0].Data["batteryLevel"])
		var dev struct {
			DeviceInfo struct {
				Status string `json:"status"`
			} `json:"deviceInfo"`
		}
		require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+c.id, nil, &dev))
		require.Equal(t, "ONLINE", dev.DeviceInfo.Status, "bound by its gateway's report")
	}
	push := hook.wait(t, "sub2's push", func(p map[string]any) bool { return p["deviceId"] == sub2 })
	require.Equal(t, "20260301T120000Z", push["service"].(map[string]any)["eventTime"], "the entry's event_time is kept")

	// Each refused entry is on the gateway's log, with its code.
	for _, want := range []string{
		`devices[2] (device_id \"` + stranger + `\"): not_behind_gateway`,
		`devices[3] (device_id \"` + foreign + `\"): not_behind_gateway`,
		`devices[4] (device_id \"no-such-device\"): device_not_found`,
		`devices[5] (device_id \"\"): invalid_entry: devices[5].device_id: is required`,
		`devices[6] (device_id \"` + sub1 + `\"): invalid_report: property report: services[0] needs a service_id and a properties object`,
		`devices[8] (device_id \"` + sub1 + `\"): too_large: the entry's report is 4159 bytes, over 4096 (maxMessage, the bound of one report)`,
	} {
		require.Eventually(t, func() bool { return strings.Contains(gatewayLog(t, tp, gw), want) }, 10*time.Second, 20*time.Millisecond,
			"the gateway's log has %s; it has %s", want, gatewayLog(t, tp, gw))
	}
	// A service the sub-device's product does not have is checked as in a
	// direct report: a decode error on the sub-device's log.
	require.Eventually(t, func() bool { return strings.Contains(gatewayLog(t, tp, sub2), "NoSuchService") }, 10*time.Second, 20*time.Millisecond)
	// Nothing reached the devices that are not the gateway's.
	for _, id := range []string{stranger, foreign} {
		var hist historyAnswer
		tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id, nil, &hist)
		require.Zero(t, hist.TotalCount, "%s got nothing", id)
	}
	m := scrape(t, tp)
	for _, want := range []string{
		`doze_mqtt_sub_device_reports_total{outcome="kept"} 4`,
		`doze_mqtt_sub_device_reports_total{outcome="not_behind_gateway"} 2`,
		`doze_mqtt_sub_device_reports_total{outcome="device_not_found"} 1`,
		`doze_mqtt_sub_device_reports_total{outcome="invalid_entry"} 1`,
		`doze_mqtt_sub_device_reports_total{outcome="invalid_report"} 1`,
		`doze_mqtt_sub_device_reports_total{outcome="too_large"} 1`,
		`doze_mqtt_sub_device_reports_total{outcome="not_connected"} 0`,
	} {
		require.Contains(t, m, want)
	}

	// Refused whole: the reason in the MQTT 5 PUBACK and the gateway's log.
	many := make([]any, 101)
	for i := range many {
		many[i] = batteryEntry(sub1, i)
	}
	for _, tc := range []struct{ body, want string }{
		{batchReport(batteryEntry(stranger, 9)), "no entry of the sub-device report was taken; devices[0]"},
		{batchReport(many...), "devices: holds 101 devices, at most 100 per message"},
		{`{"devices":[]}`, "devices: must be a non-empty array"},
		{`nope`, "body: must be"},
	} {
		out := pub(tc.body)
		require.Contains(t, out, tc.want, "MQTT 5 PUBACK reason string")
		require.Eventually(t, func() bool { return strings.Contains(gatewayLog(t, tp, gw), tc.want) }, 10*time.Second, 20*time.Millisecond)
	}
	var hist historyAnswer
	tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+sub1+"&gatewayId="+gw, nil, &hist)
	require.Equal(t, 1, hist.TotalCount, "refused messages add nothing")

	// Only a gateway, and only on its own topic.
	ep, epSecret := registerBehind(t, tp, "868000000000707", "ENDPOINT", "")
	out, _ = mosquittoPub(t, port, "-V", "mqttv5", "-i", ep, "-u", ep, "-P", epSecret, "-q", "1", "-t", batchTopic(ep), "-m", batchReport(batteryEntry(ep, 5)))
	require.Contains(t, out, "only a device of nodeType GATEWAY", "MQTT 5 PUBACK reason string: %s", out)
	out, _ = mosquittoPub(t, port, "-V", "mqttv5", "-i", gw+"_pub", "-u", gw, "-P", gwSecret, "-q", "1", "-t", batchTopic(sub1), "-m", batchReport(batteryEntry(sub1, 5)))
	require.Contains(t, out, "the gateway's own topic", "MQTT 5 PUBACK reason string: %s", out)
}

// TestMQTTGatewayBatchCrashKeepsAcknowledged: every entry of a batch
// report the broker acknowledged (mosquitto_pub -q 1 exits after the
// PUBACK) is in its sub-device's history after the platform is killed
// with SIGKILL and started again: the entries are in the inbox before the
// PUBACK, as a direct report is (SEC-6).
func TestMQTTGatewayBatchCrashKeepsAcknowledged(t *testing.T) {
	needMosquitto(t)
	p, tp, mqttPort := startMQTTProcess(t)
	gw, gwSecret := registerBehind(t, tp, "868000000000801", "GATEWAY", "")
	subs := make([]string, 5)
	for i := range subs {
		subs[i], _ = registerBehind(t, tp, fmt.Sprintf("86800000000081%d", i), "ENDPOINT", gw)
	}

	const batches = 6
	for b := range batches {
		entries := make([]any, len(subs))
		for i, id := range subs {
			entries[i] = batteryEntry(id, 10*b+i)
		}
		out, err := mosquittoPub(t, mqttPort, "-V", "mqttv5", "-i", gw, "-u", gw, "-P", gwSecret, "-q", "1",
			"-t", batchTopic(gw), "-m", batchReport(entries...))
		require.NoError(t, err, "batch %d: %s", b, out)
		require.NotContains(t, out, "rror", "batch %d acknowledged without error: %s", b, out)
	}
	p.kill() // right after the last PUBACK

	p.start()
	tp.token = tp.login(t)
	for i, id := range subs {
		var hist historyAnswer
		got := map[float64]bool{}
		require.Eventually(t, func() bool { // the inbox is replayed after the start
			tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+gw+"&serviceId=Battery", nil, &hist)
			clear(got)
			for _, h := range hist.DTOs {
				got[h.Data["batteryLevel"].(float64)] = true
			}
			return len(got) >= batches
		}, 20*time.Second, 50*time.Millisecond, "every acknowledged entry of %s is in history after the crash; history has %v", id, got)
		for b := range batches {
			require.True(t, got[float64(10*b+i)], "batch %d's entry of %s is in history after the crash; history has %v", b, id, got)
		}
	}
}

// subStatusEvent is a sub_device_update_status request.
func subStatusEvent(eventID string, statuses ...[2]string) string {
	sts := make([]map[string]string, len(statuses))
	for i, s := range statuses {
		sts[i] = map[string]string{"device_id": s[0], "status": s[1]}
	}
	b, _ := json.Marshal(map[string]any{"services": []map[string]any{{"service_id": "$sub_device_manager",
		"event_type": "sub_device_update_status", "event_id": eventID, "paras": map[string]any{"device_statuses": sts}}}})
	return string(b)
}

// statusAnswer reads the successful_devices of a status answer.
func statusAnswer(t *testing.T, a eventAnswer) map[string]string {
	t.Helper()
	require.Equal(t, "sub_device_update_status_response", a.Services[0].EventType)
	var ok []struct {
		DeviceID string `json:"device_id"`
		Status   string `json:"status"`
	}
	require.NoError(t, json.Unmarshal(a.Services[0].Paras.Successful, &ok))
	out := map[string]string{}
	for _, d := range ok {
		out[d.DeviceID] = d.Status
	}
	return out
}

// TestMQTTGatewaySubDeviceStatus: a gateway says its sub-devices are
// OFFLINE or ONLINE with sub_device_update_status on its events/up (MQT-5);
// the platform sets their status at once, pushes deviceInfoChanged, and
// answers sub_device_update_status_response on events/down with each
// device's result. The gateway is mosquitto_pub and mosquitto_sub.
func TestMQTTGatewaySubDeviceStatus(t *testing.T) {
	needMosquitto(t)
	tp := startPlatform(t)
	port := mqttPort(t, tp)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceInfoChanged")
	gw, gwSecret := registerBehind(t, tp, "868000000000901", "GATEWAY", "")
	sub, _ := registerBehind(t, tp, "868000000000902", "ENDPOINT", gw)
	stranger, _ := registerBehind(t, tp, "868000000000903", "ENDPOINT", "")
	l := listenMQTT(t, tp, gw, gw, gwSecret, "$oc/devices/"+gw+"/sys/events/down")
	hook.wait(t, "the sub-device ONLINE with its gateway", statusPush(sub, "ONLINE"))
	late, _ := registerBehind(t, tp, "868000000000904", "ENDPOINT", gw) // after the gateway connected: INACTIVE
	pub := func(payload string) string {
		out, err := mosquittoPub(t, port, "-V", "mqttv5", "-i", gw+"_pub", "-u", gw, "-P", gwSecret, "-q", "1",
			"-t", "$oc/devices/"+gw+"/sys/events/up", "-m", payload)
		require.NoError(t, err, out)
		require.NotContains(t, out, "rror", "the request is taken: %s", out)
		return out
	}

	pub(subStatusEvent("st-1", [2]string{sub, "OFFLINE"}, [2]string{stranger, "OFFLINE"}, [2]string{"no-such-device", "ONLINE"}, [2]string{late, "OFFLINE"}))
	a := nextAnswer(t, l, gw)
	require.Equal(t, "st-1", a.Services[0].EventID)
	require.Equal(t, map[string]string{sub: "OFFLINE"}, statusAnswer(t, a))
	failed := a.Services[0].Paras.Failed
	require.Len(t, failed, 3)
	require.Equal(t, stranger, failed[0].DeviceID)
	require.Equal(t, "not_behind_gateway", failed[0].ErrorCode)
	require.Equal(t, "device_not_found", failed[1].ErrorCode)
	require.Equal(t, late, failed[2].DeviceID)
	require.Equal(t, "device_inactive", failed[2].ErrorCode)
	hook.wait(t, "OFFLINE pushed at once, with the gateway still connected", statusPush(sub, "OFFLINE"))
	require.Equal(t, "OFFLINE", deviceStatus(t, tp, sub))
	require.Equal(t, "INACTIVE", deviceStatus(t, tp, late))
	require.Equal(t, "INACTIVE", deviceStatus(t, tp, stranger), "another's device is untouched")
	require.True(t, tp.mq.Connected(gw))

	// ONLINE again; and ONLINE binds a sub-device that never was.
	pub(subStatusEvent("st-2", [2]string{sub, "ONLINE"}, [2]string{late, "ONLINE"}))
	a = nextAnswer(t, l, gw)
	require.Equal(t, "st-2", a.Services[0].EventID)
	require.Equal(t, map[string]string{sub: "ONLINE", late: "ONLINE"}, statusAnswer(t, a))
	require.Empty(t, a.Services[0].Paras.Failed)
	hook.wait(t, "ONLINE pushed", statusPush(sub, "ONLINE"))
	hook.wait(t, "the late one ONLINE", statusPush(late, "ONLINE"))
	d, err := tp.reg.Get(context.Background(), late)
	require.NoError(t, err)
	require.True(t, d.Bound && d.Connected)

	// A malformed request is refused whole with the field at fault.
	out, _ := mosquittoPub(t, port, "-V", "mqttv5", "-i", gw+"_pub", "-u", gw, "-P", gwSecret, "-q", "1",
		"-t", "$oc/devices/"+gw+"/sys/events/up", "-m", subStatusEvent("st-3", [2]string{sub, "SLEEPING"}))
	require.Contains(t, out, `services[0].paras.device_statuses[0].status: is "SLEEPING"; must be "ONLINE" or "OFFLINE"`)
	require.Equal(t, "ONLINE", deviceStatus(t, tp, sub))
}

// TestMQTTGatewayDropTakesSubDevicesOffline: when the gateway's
// connection drops, its sub-devices go OFFLINE with it after the
// disconnect grace, each with deviceInfoChanged (MQT-3, MQT-5).
func TestMQTTGatewayDropTakesSubDevicesOffline(t *testing.T) {
	needMosquitto(t)
	tp := startPlatform(t, func(c *Config) { c.DisconnectGrace = Duration(200 * time.Millisecond) })
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceInfoChanged")
	gw, gwSecret := registerBehind(t, tp, "868000000001001", "GATEWAY", "")
	subs := []string{}
	for _, n := range []string{"868000000001002", "868000000001003"} {
		id, _ := registerBehind(t, tp, n, "ENDPOINT", gw)
		subs = append(subs, id)
	}
	l := listenMQTT(t, tp, gw, gw, gwSecret, "$oc/devices/"+gw+"/sys/commands/#")
	for _, id := range append([]string{gw}, subs...) {
		hook.wait(t, id+" ONLINE", statusPush(id, "ONLINE"))
	}
	require.NoError(t, l.cmd.Process.Kill())
	for _, id := range append([]string{gw}, subs...) {
		hook.wait(t, id+" OFFLINE with the gateway's connection", statusPush(id, "OFFLINE"))
		require.Equal(t, "OFFLINE", deviceStatus(t, tp, id))
	}
}

// TestMQTTMaxSubDevicesSetting: the per-gateway sub-device bound is the
// config file's mqttMaxSubDevices, default 1,000; 0 or less is refused.
// (TestMQTTGatewayAddsAndDeletesSubDevices runs with it at 2.)
func TestMQTTMaxSubDevicesSetting(t *testing.T) {
	cfg, err := parseConfig(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 1000, cfg.MQTTMaxSubDevices)
	f := t.TempDir() + "/c.json"
	require.NoError(t, os.WriteFile(f, []byte(`{"mqttMaxSubDevices": 25}`), 0o600))
	cfg, err = parseConfig([]string{"-config", f}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 25, cfg.MQTTMaxSubDevices)
	for _, bad := range []string{"0", "-1"} {
		require.NoError(t, os.WriteFile(f, []byte(`{"mqttMaxSubDevices": `+bad+`}`), 0o600))
		_, err = parseConfig([]string{"-config", f}, io.Discard)
		require.ErrorContains(t, err, "config: mqttMaxSubDevices is "+bad+": must be positive (default 1000)")
	}
}

// BenchmarkBatchInboxKeep compares, in one run, keeping the 50 entries of
// a batch report in the inbox one after the other (acceptUplink each)
// with acceptUplinks, which writes them concurrently so that they share
// the store's group commits. One op is one batch of 50.
func BenchmarkBatchInboxKeep(b *testing.B) {
	tp := startPlatform(b)
	es := make([]transport.Event, 50)
	for i := range es {
		es[i] = transport.Event{Kind: transport.EventUplink, Endpoint: fmt.Sprintf("bench-%d", i), Path: mqttPropertiesPath,
			Payload: []byte(`{"services":[{"service_id":"Battery","properties":{"batteryLevel":1}}]}`), Time: time.Now()}
	}
	b.Run("one_by_one", func(b *testing.B) {
		for b.Loop() {
			for _, e := range es {
				if err := tp.acceptUplink(e); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("acceptUplinks", func(b *testing.B) {
		for b.Loop() {
			if err := tp.acceptUplinks(es); err != nil {
				b.Fatal(err)
			}
		}
	})
}
