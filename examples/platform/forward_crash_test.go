package main

import (
	"encoding/json"
	"github.com/doze-io/doze/internal/brokertest"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// TestCrashKeepsForwarded: reports accepted while a rule's MQTT broker is
// down are in the forwarding outbox; the platform is killed (SIGKILL)
// before it could deliver them, the broker comes back, and after the
// restart every one of them arrives on the broker.
func TestCrashKeepsForwarded(t *testing.T) {
	brokertest.Need(t, "Mosquitto", brokertest.MQTT)
	p := newCrashPlatform(t)
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	dtlsAddr := freeUDPAddr(t)
	p.args = []string{"-http", "127.0.0.1:" + strconv.Itoa(port), "-coap", "127.0.0.1:0", "-dtls", dtlsAddr, "-admin", "off", "-mqtt", "off"}
	p.ready = answers(base + "/openapi.json")
	broker := brokertest.NewProxy(t, brokertest.MQTT) // down until started

	topic := brokertest.Name("doze/crash/")
	got := make(chan []byte, 64)
	mc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + brokertest.MQTT).SetClientID(brokertest.Name("doze-test-")))
	tok := mc.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer mc.Disconnect(0)
	tok = mc.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Payload() })
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())

	app := p.start()
	tp := &testPlatform{api: &httptest.Server{URL: base}, app: app}
	tp.token = tp.login(t)
	const imei = "868333030000910"
	_, psk := registerDevice(t, tp, imei)
	var r ruleAnswer
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/doze/v1/rules", map[string]any{
		"name": "meter readings", "condition": `serviceId = "Meter"`,
		"targets": []map[string]any{{"type": "mqtt", "url": "mqtt://" + broker.Addr, "topic": topic, "qos": 1}}}, &r))

	const reports = 5
	sendReports(t, dtlsAddr, "urn:imei:"+imei, psk, reports)
	require.Eventually(t, func() bool {
		var now ruleAnswer
		tp.call(t, "GET", "/doze/v1/rules/"+r.RuleID, nil, &now)
		s := now.Targets[0].State
		return s != nil && s.Failures > 0 && s.Queued == reports
	}, 30*time.Second, 20*time.Millisecond, "the reports wait in the forwarding outbox while the broker is down")
	p.kill()

	broker.Start(t)
	p.start()
	seen := map[float64]bool{}
	deadline := time.After(60 * time.Second)
	for len(seen) < reports {
		select {
		case b := <-got:
			var ev struct {
				RuleID   string `json:"ruleId"`
				Services []struct {
					Data map[string]float64 `json:"data"`
				} `json:"services"`
			}
			require.NoError(t, json.Unmarshal(b, &ev), "%s", b)
			require.Equal(t, r.RuleID, ev.RuleID)
			require.Len(t, ev.Services, 1)
			seen[ev.Services[0].Data["pulseCount"]] = true
		case <-deadline:
			t.Fatalf("after the restart %d of %d forwarded reports arrived: %v", len(seen), reports, seen)
		}
	}
	for i := range reports {
		require.True(t, seen[float64(1000+i)], "report %d arrived", i)
	}
}
