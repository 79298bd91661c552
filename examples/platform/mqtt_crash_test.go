package main

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startMQTTProcess starts the platform binary with plain MQTT on a free
// port (for the SIGKILL tests), logged in as the demo app.
func startMQTTProcess(t *testing.T) (p *crashPlatform, tp *testPlatform, mqttPort string) {
	t.Helper()
	p = newCrashPlatform(t)
	base := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	mqttPort = strconv.Itoa(freePort(t))
	p.args = []string{"-http", base[len("http://"):], "-coap", "127.0.0.1:0", "-dtls", "127.0.0.1:0",
		"-admin", "off", "-mqtt", "127.0.0.1:" + mqttPort, "-mqtts", "off"}
	p.ready = answers(base + "/openapi.json")
	app := p.start()
	tp = &testPlatform{api: &httptest.Server{URL: base}, app: app}
	tp.token = tp.login(t)
	return p, tp, mqttPort
}

// TestMQTTCrashKeepsAcknowledged: every MQTT report the broker
// acknowledged (QoS 1 PUBACK, seen by mosquitto_pub) is in history after
// the platform is killed with SIGKILL and started again (MQT-1, SEC-6,
// STO-1): the report is kept in the inbox before the PUBACK goes out.
func TestMQTTCrashKeepsAcknowledged(t *testing.T) {
	needMosquitto(t)
	p, tp, mqttPort := startMQTTProcess(t)
	id, secret := registerMQTT(t, tp, "868000000000901")

	// Each mosquitto_pub -q 1 exits 0 only after the broker's PUBACK.
	const reports = 20
	for i := range reports {
		report := fmt.Sprintf(`{"services":[{"service_id":"Battery","properties":{"batteryLevel":%d}}]}`, 50+i)
		out, err := mosquittoPub(t, mqttPort, "-V", "mqttv5", "-i", id, "-u", id, "-P", secret, "-q", "1",
			"-t", "$oc/devices/"+id+"/sys/properties/report", "-m", report)
		require.NoError(t, err, "report %d: %s", i, out)
		require.NotContains(t, out, "rror", "report %d acknowledged without error: %s", i, out)
	}
	p.kill() // right after the last PUBACK

	p.start()
	tp.token = tp.login(t)
	var hist historyAnswer
	got := map[float64]bool{}
	require.Eventually(t, func() bool { // the inbox is replayed after the start
		tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id+"&serviceId=Battery", nil, &hist)
		clear(got)
		for _, h := range hist.DTOs {
			got[h.Data["batteryLevel"].(float64)] = true
		}
		return len(got) >= reports
	}, 10*time.Second, 50*time.Millisecond, "every acknowledged report is in history after the crash; history has %v", got)
	for i := range reports {
		require.True(t, got[float64(50+i)], "acknowledged report %d is in history after the crash; history has %v", i, got)
	}
}
