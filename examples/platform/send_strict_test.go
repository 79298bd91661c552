package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/lwm2m/lwm2mtest"
)

// sensorLinks is the registration of a strict LwM2M 1.1 temperature
// sensor: SenML JSON and CBOR, objects 1 and 3303.
const sensorLinks = `</>;rt="oma.lwm2m";ct="60 110 112",</1/0>,</3303/0>`

// startStrictSensor starts a strict conformance device (lwm2mtest) serving
// the temperature sensor /3303/0 over DTLS, registered with version and
// links.
func startStrictSensor(t *testing.T, tp *testPlatform, imei string, psk []byte, version, links string) (*strictDevice, *lwm2mtest.Sensor) {
	t.Helper()
	s := lwm2mtest.NewSensor(21.5, "Cel")
	d := startStrictDevice(t, tp, imei, psk, lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11, Version: version, Links: links, Sensor: s})
	return d, s
}

func strictSend(t *testing.T, d *strictDevice, senml string) lwm2mtest.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := d.Send(ctx, 110, []byte(senml))
	require.NoError(t, err)
	return a
}

// lwm2mNotificationOf matches an lwm2mNotification of the device's path.
func lwm2mNotificationOf(id, path string) func(m map[string]any) bool {
	return func(m map[string]any) bool {
		return m["notifyType"] == "lwm2mNotification" && m["deviceId"] == id && m["path"] == path
	}
}

// TestSendNoMappingTakes (LWM-12, issue 16 item 2): a strict device of the
// demo product TS3303 sends with LwM2M Send. A Send of a path no mapping
// takes gets 4.04 naming the path and why, never 2.04, and the refusal is
// on the device log; a Send with a mapped value gets 2.04 and is a report.
// Once an application subscribes to lwm2mNotification, the unmapped value
// is taken (2.04) and pushed in Leshan's shape (item 3).
func TestSendNoMappingTakes(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceDataChanged")
	const imei = "868333030002201"
	id, psk := registerTempSensor(t, tp, imei)
	d, _ := startStrictSensor(t, tp, imei, psk, "1.1", sensorLinks)

	a := strictSend(t, d, `[{"bn":"/3/0/","n":"9","v":87}]`)
	require.Equal(t, "4.04", a.CodeText(), "a Send of a path no mapping takes: %s", a)
	require.Contains(t, a.Diagnostic, "/3/0/9")
	require.Contains(t, a.Diagnostic, "product DozeLabs/TS3303 maps no property to them")
	require.Eventually(t, func() bool { return hasLog(tp, id, "refused with 4.04") }, 10*time.Second, 10*time.Millisecond,
		"the refusal is on the device log")

	a = strictSend(t, d, `[{"bn":"/3303/0/","n":"5700","v":30.5},{"bn":"/3/0/","n":"9","v":87}]`)
	require.Equal(t, "2.04", a.CodeText(), "a Send with a mapped value: %s", a)
	hook.wait(t, "of the mapped Send", temperatureOf(id, "temperature", 30.5))
	require.Eventually(t, func() bool { return hasLog(tp, id, "maps no property to /3/0/9") }, 10*time.Second, 10*time.Millisecond,
		"the value left out is on the device log")

	subscribe(t, tp, hook, "lwm2mNotification")
	a = strictSend(t, d, `[{"bn":"/3/0/","n":"9","v":86}]`)
	require.Equal(t, "2.04", a.CodeText(), "an application takes unmapped values now: %s", a)
	got := hook.wait(t, "lwm2mNotification of the Send", lwm2mNotificationOf(id, "/3/0/9"))
	require.Equal(t, id, got["gatewayId"])
	require.Equal(t, map[string]any{"kind": "singleResource", "id": float64(9), "type": "INTEGER", "value": float64(86)}, got["value"])
	require.Regexp(t, `^\d{8}T\d{6}Z$`, got["eventTime"])
}

// TestUnmappedNotificationPushed (LWM-12, issue 16 item 3): a demo water
// meter maps nothing; a resource observed through the API notifies, and
// its value reaches the webhook as lwm2mNotification.
func TestUnmappedNotificationPushed(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	subscribe(t, tp, hook, "lwm2mNotification")
	const imei = "868333030002202"
	id, psk := registerDevice(t, tp, imei)
	d, sensor := startStrictSensor(t, tp, imei, psk, "1.1", sensorLinks)

	var a opAnswer
	require.Equal(t, 200, tp.call(t, "POST", "/doze/v1/devices/"+id+"/lwm2m/3303/0/5700/observe", nil, &a))
	require.Equal(t, "CONTENT", a.Status)
	require.True(t, d.Observed("/3303/0/5700"))
	sensor.Set(25.75)
	require.NoError(t, d.NotifySensor("/3303/0/5700"))
	got := hook.wait(t, "lwm2mNotification of the observed resource", lwm2mNotificationOf(id, "/3303/0/5700"))
	require.Equal(t, map[string]any{"kind": "singleResource", "id": float64(5700), "type": "FLOAT", "value": 25.75}, got["value"])
	require.Equal(t, id, got["gatewayId"])
}

// TestMappedObserveAccept (LWM-12, issue 16 item 5): a sensor that lists
// SenML CBOR and JSON in its registration is observed with Accept SenML
// CBOR (the first it announced), and its notifications, in SenML CBOR but
// without a Content-Format (as lwm2m-node-lib sends them), are reports.
func TestMappedObserveAccept(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceDataChanged")
	const imei = "868333030002203"
	id, psk := registerTempSensor(t, tp, imei)
	sensor := lwm2mtest.NewSensor(20.5, "Cel")
	d := startStrictDevice(t, tp, imei, psk, lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11, Links: sensorLinks,
		Sensor: sensor, BareNotifications: true})
	require.Eventually(t, func() bool { return d.Observed("/3303/0/5700") }, 10*time.Second, 10*time.Millisecond)
	var observe lwm2mtest.Request
	for _, r := range d.Requests() {
		if strings.HasPrefix(r.String(), "GET /3303/0/5700 ") {
			observe = r
		}
	}
	require.Equal(t, 112, observe.Accept, "the observe asks for SenML CBOR, which the device announced: %v", observe)
	hook.wait(t, "of the observe answer", temperatureOf(id, "temperature", 20.5))

	sensor.Set(24.75)
	require.NoError(t, d.NotifySensor("/3303/0/5700"))
	hook.wait(t, "of the notification without Content-Format", temperatureOf(id, "temperature", 24.75))
}
