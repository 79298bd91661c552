package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/internal/brokertest"
)

type ruleAnswer struct {
	RuleID    string `json:"ruleId"`
	Name      string `json:"name"`
	Condition string `json:"condition"`
	Enabled   bool   `json:"enabled"`
	Targets   []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		State *struct {
			State     string `json:"state"`
			Failures  int    `json:"failures"`
			Queued    int    `json:"queued"`
			LastError string `json:"lastError"`
		} `json:"state"`
	} `json:"targets"`
	CreateTime string `json:"createTime"`
}

type apiErrAnswer struct {
	Code string `json:"error_code"`
	Desc string `json:"error_desc"`
}

// TestRulesAPI: create, list, get, change and delete rules through the
// REST API; bad input is refused with a code and a sentence naming the
// field; another app's rules are 404 and never listed; passwords are not
// shown.
func TestRulesAPI(t *testing.T) {
	tp, as := twoApps(t)
	var r ruleAnswer
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/doze/v1/rules", map[string]any{
		"name": "low battery", "condition": `serviceId = "Battery" AND data.batteryLevel < 20`,
		"targets": []map[string]any{{"type": "webhook"}, {"type": "amqp", "url": "amqp://guest:secret@10.1.2.3:5672/", "exchange": "x"}}}, &r))
	require.NotEmpty(t, r.RuleID)
	require.True(t, r.Enabled, "enabled by default")
	require.Len(t, r.Targets, 2)
	require.Equal(t, "amqp://guest:xxxxx@10.1.2.3:5672/", r.Targets[1].URL, "the password is not shown")
	require.NotNil(t, r.Targets[1].State)
	require.Equal(t, "valid", r.Targets[1].State.State)
	require.Nil(t, r.Targets[0].State, "a webhook's state is in /doze/v1/endpoints")
	require.Len(t, r.CreateTime, 16)

	for _, tc := range []struct {
		body map[string]any
		code string
		desc string
	}{
		{map[string]any{"name": "x", "condition": "data.level < \"a\"", "targets": []map[string]any{{"type": "webhook"}}}, "invalid_condition", "condition: at byte 11: < compares numbers"},
		{map[string]any{"name": "x", "condition": "colour = 1", "targets": []map[string]any{{"type": "webhook"}}}, "invalid_condition", `unknown field "colour"`},
		{map[string]any{"name": "x", "targets": []map[string]any{}}, "invalid_rule", "targets: a rule needs 1–8 targets"},
		{map[string]any{"name": "x", "targets": []map[string]any{{"type": "nats", "url": "nats://10.0.0.1"}}}, "invalid_rule", "targets[0].subject: is required"},
		{map[string]any{"name": "x", "targets": []map[string]any{{"type": "mqtt", "url": "mqtt://10.0.0.1", "topic": "a/#"}}}, "invalid_rule", "targets[0].topic"},
		{map[string]any{"name": "x", "targets": []map[string]any{{"type": "kafka"}}}, "invalid_rule", `"kafka" is not a target type`},
		{map[string]any{"name": "x", "targets": []map[string]any{{"type": "nats", "url": "nats://169.254.169.254:4222", "subject": "s"}}}, "target_address_denied", "cloud metadata"},
	} {
		var e apiErrAnswer
		require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", "/doze/v1/rules", tc.body, &e), "%v", tc.body)
		require.Equal(t, tc.code, e.Code, "%v", tc.body)
		require.Contains(t, e.Desc, tc.desc)
	}

	r.Name = "renamed"
	var changed ruleAnswer
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/doze/v1/rules/"+r.RuleID, map[string]any{"name": "renamed", "enabled": false,
		"targets": []map[string]any{{"type": "nats", "url": "nats://10.1.2.3", "subject": "a.b"}}}, &changed))
	require.Equal(t, "renamed", changed.Name)
	require.False(t, changed.Enabled)
	require.Equal(t, "nats://10.1.2.3", changed.Targets[0].URL, "shown as given (the port defaults to 4222)")
	var got ruleAnswer
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/rules/"+r.RuleID, nil, &got))
	require.Equal(t, "renamed", got.Name)

	// Another app: 404 on every operation, an empty list.
	as("app-b")
	var e apiErrAnswer
	require.Equal(t, http.StatusNotFound, tp.call(t, "GET", "/doze/v1/rules/"+r.RuleID, nil, &e))
	require.Equal(t, "rule_not_found", e.Code)
	require.Equal(t, http.StatusNotFound, tp.call(t, "PUT", "/doze/v1/rules/"+r.RuleID, map[string]any{"name": "mine",
		"targets": []map[string]any{{"type": "webhook"}}}, nil))
	require.Equal(t, http.StatusNotFound, tp.call(t, "DELETE", "/doze/v1/rules/"+r.RuleID, nil, nil))
	var list struct {
		TotalCount int          `json:"totalCount"`
		Rules      []ruleAnswer `json:"rules"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/rules", nil, &list))
	require.Zero(t, list.TotalCount)
	require.NotNil(t, list.Rules, "rules is [] rather than null")

	as("app-a")
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/rules", nil, &list))
	require.Equal(t, 1, list.TotalCount)
	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", "/doze/v1/rules/"+r.RuleID, nil, nil))
	require.Equal(t, http.StatusNotFound, tp.call(t, "GET", "/doze/v1/rules/"+r.RuleID, nil, nil))
}

// TestRuleForwardsReport: a device's report that matches a rule reaches
// the app's ruleEvent webhook and a NATS subject, an MQTT topic and an
// AMQP exchange on the machine's brokers, read with each broker's client;
// the report's other pushes go on as before.
func TestRuleForwardsReport(t *testing.T) {
	brokertest.Need(t, "NATS", brokertest.NATS)
	brokertest.Need(t, "Mosquitto", brokertest.MQTT)
	brokertest.Need(t, "RabbitMQ", brokertest.AMQP)
	tp := startPlatform(t)
	subject, topic, exchange := brokertest.Name("doze.rule."), brokertest.Name("doze/rule/"), brokertest.Name("doze-rule-")

	nc, err := nats.Connect("nats://" + brokertest.NATS)
	require.NoError(t, err)
	defer nc.Close()
	nsub, err := nc.SubscribeSync(subject)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	mqttGot := make(chan []byte, 4)
	mc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + brokertest.MQTT).SetClientID(brokertest.Name("doze-test-")))
	tok := mc.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer mc.Disconnect(0)
	tok = mc.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { mqttGot <- m.Payload() })
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())

	ac, err := amqp.Dial("amqp://guest:guest@" + brokertest.AMQP + "/")
	require.NoError(t, err)
	defer ac.Close()
	ch, err := ac.Channel()
	require.NoError(t, err)
	require.NoError(t, ch.ExchangeDeclare(exchange, "fanout", false, true, false, false, nil))
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(q.Name, "", exchange, false, nil))
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	require.NoError(t, err)

	hook := newSink(t)
	subscribe(t, tp, hook, "ruleEvent", "deviceDataChanged")
	var r ruleAnswer
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/doze/v1/rules", map[string]any{
		"name": "low battery", "condition": `deviceType = "` + demoDeviceType + `" AND serviceId = "Battery" AND data.batteryLevel < 20`,
		"targets": []map[string]any{{"type": "webhook"}, {"type": "nats", "url": "nats://" + brokertest.NATS, "subject": subject},
			{"type": "mqtt", "url": "mqtt://" + brokertest.MQTT, "topic": topic, "qos": 1},
			{"type": "amqp", "url": "amqp://guest:guest@" + brokertest.AMQP + "/", "exchange": exchange}}}, &r))

	const imei = "868333030000881"
	id, psk := registerDevice(t, tp, imei)
	m := newMeter(t, tp, "urn:imei:"+imei, psk)
	report := func(level int) {
		m.uplink(t, &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
			{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 1.5, "flowRate": 0.5, "pulseCount": level}},
			{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": level}},
			{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -85}},
		}})
	}
	report(80) // does not match
	hook.wait(t, "deviceDataChanged of the first report", func(p map[string]any) bool {
		return p["notifyType"] == "deviceDataChanged" && p["deviceId"] == id
	})
	report(12)

	check := func(where string, body []byte) {
		t.Helper()
		var b struct {
			NotifyType, RuleID, DeviceID, DeviceType string
			Services                                 []struct {
				ServiceID string
				Data      map[string]any
			}
		}
		require.NoError(t, json.Unmarshal(body, &b), "%s: %s", where, body)
		require.Equal(t, "ruleEvent", b.NotifyType, where)
		require.Equal(t, r.RuleID, b.RuleID, where)
		require.Equal(t, id, b.DeviceID, where)
		require.Equal(t, demoDeviceType, b.DeviceType, where)
		require.Len(t, b.Services, 1, "%s: only the matching service: %s", where, body)
		require.Equal(t, "Battery", b.Services[0].ServiceID)
		require.EqualValues(t, 12, b.Services[0].Data["batteryLevel"], "%s: the second report, not the first", where)
	}
	nm, err := nsub.NextMsg(30 * time.Second)
	require.NoError(t, err, "NATS")
	check("NATS", nm.Data)
	select {
	case b := <-mqttGot:
		check("MQTT", b)
	case <-time.After(30 * time.Second):
		t.Fatal("MQTT: nothing arrived")
	}
	select {
	case d := <-deliveries:
		check("AMQP", d.Body)
	case <-time.After(30 * time.Second):
		t.Fatal("AMQP: nothing arrived")
	}
	ev := hook.wait(t, "ruleEvent", func(p map[string]any) bool { return p["notifyType"] == "ruleEvent" })
	raw, _ := json.Marshal(ev)
	check("webhook", raw)
	_, err = nsub.NextMsg(200 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "one message per matching report")

	var got ruleAnswer
	require.Eventually(t, func() bool {
		tp.call(t, "GET", "/doze/v1/rules/"+r.RuleID, nil, &got)
		return got.Targets[1].State.Queued == 0 && got.Targets[2].State.Queued == 0 && got.Targets[3].State.Queued == 0
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "valid", got.Targets[3].State.State)

	admin := httptest.NewServer(tp.AdminHandler())
	defer admin.Close()
	resp, err := http.Get(admin.URL + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"doze_forward_rules_fired_total 1\n", "doze_forward_delivered_total 3\n", "doze_forward_queued 0\n"} {
		require.Contains(t, string(metrics), want)
	}
}

// TestRuleForwardsReportTwoNodesPostgres (CLU-1): two nodes on one
// PostgreSQL schema share the rules and the forwarding outbox. A rule made
// on node 1 sends to an MQTT broker that is down; a report on node 1
// queues its message there (node 1's lease). Node 2 starts, sees the rule,
// and a report on node 2 queues a message on node 2; node 2 leaves node
// 1's message alone. When the broker comes up each report arrives once.
func TestRuleForwardsReportTwoNodesPostgres(t *testing.T) {
	brokertest.Need(t, "Mosquitto", brokertest.MQTT)
	dsn := pgStore(t)
	topic := brokertest.Name("doze/pgrule/")
	var mu sync.Mutex
	got := map[string]int{} // by deviceId
	mc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + brokertest.MQTT).SetClientID(brokertest.Name("doze-test-")))
	tok := mc.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer mc.Disconnect(0)
	tok = mc.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		var b struct{ RuleID, DeviceID string }
		if json.Unmarshal(m.Payload(), &b) == nil {
			mu.Lock()
			got[b.DeviceID]++
			mu.Unlock()
		}
	})
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	broker := brokertest.NewProxy(t, brokertest.MQTT) // down until started

	n1 := startPlatform(t, func(c *Config) { c.Store, c.NodeID = dsn, "fwd-1" })
	require.Equal(t, "fwd-1", n1.fwd.Config().Delivery.Node, "node 1 claims forwarding messages")
	var r ruleAnswer
	require.Equal(t, http.StatusCreated, n1.call(t, "POST", "/doze/v1/rules", map[string]any{
		"name": "low battery", "condition": `serviceId = "Battery" AND data.batteryLevel < 20`,
		"targets": []map[string]any{{"type": "mqtt", "url": "mqtt://" + broker.Addr, "topic": topic}}}, &r))
	report := func(tp *testPlatform, imei string) string {
		id, psk := registerDevice(t, tp, imei)
		m := newMeter(t, tp, "urn:imei:"+imei, psk)
		m.uplink(t, &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
			{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 1.5, "flowRate": 0.5, "pulseCount": 3}},
			{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 12}},
			{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -85}},
		}})
		return id
	}
	queued := func(tp *testPlatform) int {
		var a ruleAnswer
		require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/rules/"+r.RuleID, nil, &a))
		if a.Targets[0].State == nil {
			return 0
		}
		return a.Targets[0].State.Queued
	}
	dev1 := report(n1, "868333030000771")
	require.Eventually(t, func() bool { return queued(n1) == 1 }, 30*time.Second, 20*time.Millisecond,
		"node 1 holds the report's message while the broker is down")

	n2 := startPlatform(t, func(c *Config) { c.Store, c.NodeID = dsn, "fwd-2" })
	require.Equal(t, "fwd-2", n2.fwd.Config().Delivery.Node)
	var seen ruleAnswer
	require.Equal(t, http.StatusOK, n2.call(t, "GET", "/doze/v1/rules/"+r.RuleID, nil, &seen), "node 2 reads the rule node 1 made")
	require.Equal(t, "low battery", seen.Name)
	dev2 := report(n2, "868333030000772")
	require.Eventually(t, func() bool { return queued(n2) == 1 }, 30*time.Second, 20*time.Millisecond,
		"node 2 holds its own report's message, not node 1's")
	require.Equal(t, 1, queued(n1))

	broker.Start(t)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return got[dev1] > 0 && got[dev2] > 0 },
		90*time.Second, 50*time.Millisecond, "both reports reach the broker once it is up")
	require.Eventually(t, func() bool { return queued(n1) == 0 && queued(n2) == 0 }, 30*time.Second, 20*time.Millisecond)
	require.EqualValues(t, 2, n1.fwd.Stats().Delivered+n2.fwd.Stats().Delivered, "each message delivered by one node")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{dev1: 1, dev2: 1}, got)
}
