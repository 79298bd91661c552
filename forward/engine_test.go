package forward

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/doze-io/doze/internal/brokertest"
	"github.com/doze-io/doze/push"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// newEngine returns a running engine over a memory store with a push
// engine for webhooks that allows loopback callbacks.
func newEngine(t *testing.T, cfg Config) (*Engine, *push.Engine, *MemoryStore) {
	t.Helper()
	hooks, err := push.New(push.NewMemoryStore(), push.Config{Allow: loopback})
	if err != nil {
		t.Fatal(err)
	}
	st := &MemoryStore{}
	if cfg.Delivery.Allow == nil {
		cfg.Delivery.Allow = loopback
	}
	if cfg.Delivery.RetrySchedule == nil {
		cfg.Delivery.RetrySchedule = []time.Duration{50 * time.Millisecond}
	}
	if cfg.Delivery.Timeout == 0 {
		cfg.Delivery.Timeout = 5 * time.Second
	}
	e, err := New(st, hooks, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = hooks.Run(ctx) })
	wg.Go(func() {
		if err := e.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait(); e.Close(); hooks.Close() })
	return e, hooks, st
}

func battery(level int) Event {
	return Event{AppID: "app", DeviceID: "dev1", GatewayID: "dev1", ManufacturerID: "Acme", Model: "WM1", DeviceType: "WaterMeter",
		Services: []push.ServiceData{
			{ServiceID: "Battery", ServiceType: "Battery", Data: json.RawMessage(`{"batteryLevel":` + itoa(level) + `}`), EventTime: "20260101T000000Z"},
			{ServiceID: "Meter", ServiceType: "Meter", Data: json.RawMessage(`{"volume":7}`), EventTime: "20260101T000000Z"},
		}}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// forward runs ev through e as the platform does: messages built, then
// admitted with one write per outbox.
func forward(t *testing.T, e *Engine, hooks *push.Engine, st *MemoryStore, ev Event) (int, int) {
	t.Helper()
	ctx := context.Background()
	hm, out, err := e.Messages(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := hooks.Admit(ctx, hm, func() error { return hooks.Store().PutMessages(ctx, hm...) }); err != nil {
		t.Fatal(err)
	}
	if err := e.Admit(ctx, out, func() error { return st.PutMessages(ctx, out...) }); err != nil {
		t.Fatal(err)
	}
	return len(hm), len(out)
}

// checkBody checks a delivered ruleEvent body: the rule, the device and
// only the service that matched.
func checkBody(t *testing.T, where string, body []byte, ruleID string) {
	t.Helper()
	var b struct {
		NotifyType, RuleID, RuleName, DeviceID, ManufacturerID, Model, DeviceType string
		Services                                                                  []push.ServiceData
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("%s: body %s: %v", where, body, err)
	}
	if !strings.HasPrefix(string(body), `{"notifyType":"ruleEvent",`) || b.RuleID != ruleID || b.DeviceID != "dev1" ||
		b.ManufacturerID != "Acme" || b.Model != "WM1" || b.DeviceType != "WaterMeter" ||
		len(b.Services) != 1 || b.Services[0].ServiceID != "Battery" || string(b.Services[0].Data) != `{"batteryLevel":12}` {
		t.Fatalf("%s: body %s", where, body)
	}
}

// A rule forwards a matching report to a webhook and to NATS, MQTT and
// AMQP brokers, and the message arrives at each (read with each broker's
// own client); a report that does not match sends nothing.
func TestRuleForwardsToEveryTarget(t *testing.T) {
	brokertest.Need(t, "NATS", brokertest.NATS)
	brokertest.Need(t, "Mosquitto", brokertest.MQTT)
	brokertest.Need(t, "RabbitMQ", brokertest.AMQP)
	e, hooks, st := newEngine(t, Config{})
	ctx := context.Background()
	subject, topic, exchange := brokertest.Name("doze.test."), brokertest.Name("doze/test/"), brokertest.Name("doze-test-")

	// Subscribers first.
	nc, err := nats.Connect("nats://" + brokertest.NATS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nsub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	got := make(chan mqtt.Message, 4)
	mc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + brokertest.MQTT).SetClientID(brokertest.Name("sub-")))
	if tok := mc.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer mc.Disconnect(0)
	if tok := mc.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt subscribe: %v", tok.Error())
	}

	ac, err := amqp.Dial("amqp://guest:guest@" + brokertest.AMQP + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ch, err := ac.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "battery", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	hooked := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hooked <- b
	}))
	defer srv.Close()
	if _, err := hooks.Subscribe(ctx, push.Subscription{AppID: "app", NotifyType: push.RuleEvent, CallbackURL: srv.URL + "/rules"}); err != nil {
		t.Fatal(err)
	}

	qos := 1
	r, err := e.CreateRule(ctx, Rule{AppID: "app", Name: "low battery", Enabled: true,
		Condition: `manufacturerId = "Acme" AND serviceId = "Battery" AND data.batteryLevel < 20`,
		Targets: []Target{{Type: Webhook}, {Type: NATS, URL: "nats://" + brokertest.NATS, Subject: subject},
			{Type: MQTT, URL: "mqtt://" + brokertest.MQTT, Topic: topic, QoS: &qos},
			{Type: AMQP, URL: "amqp://guest:guest@" + brokertest.AMQP + "/", Exchange: exchange, RoutingKey: "battery"}}})
	if err != nil {
		t.Fatal(err)
	}
	if h, o := forward(t, e, hooks, st, battery(50)); h+o != 0 {
		t.Fatalf("a report that does not match made %d webhook and %d broker messages", h, o)
	}
	if h, o := forward(t, e, hooks, st, battery(12)); h != 1 || o != 3 {
		t.Fatalf("a matching report made %d webhook and %d broker messages, want 1 and 3", h, o)
	}

	m, err := nsub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("NATS: %v", err)
	}
	checkBody(t, "NATS", m.Data, r.ID)
	if !strings.HasPrefix(m.Header.Get("Nats-Msg-Id"), "rule_") {
		t.Errorf("NATS message id header %q", m.Header.Get("Nats-Msg-Id"))
	}
	select {
	case m := <-got:
		checkBody(t, "MQTT", m.Payload(), r.ID)
	case <-time.After(10 * time.Second):
		t.Fatal("MQTT: nothing arrived")
	}
	select {
	case d := <-deliveries:
		checkBody(t, "AMQP", d.Body, r.ID)
		if d.DeliveryMode != amqp.Persistent || d.ContentType != "application/json" || !strings.HasPrefix(d.MessageId, "rule_") {
			t.Errorf("AMQP properties: mode %d, type %q, id %q", d.DeliveryMode, d.ContentType, d.MessageId)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AMQP: nothing arrived")
	}
	select {
	case b := <-hooked:
		checkBody(t, "webhook", b, r.ID)
	case <-time.After(10 * time.Second):
		t.Fatal("webhook: nothing arrived")
	}
	waitFor(t, func() bool { return e.Stats().Delivered == 3 })
	for i := 1; i <= 3; i++ {
		s, ok := e.TargetState(r.ID, i)
		if !ok || s.State != push.StateValid || s.LastSuccess.IsZero() {
			t.Errorf("target %d state %+v", i, s)
		}
	}
	if e.Fired() != 1 {
		t.Errorf("fired %d, want 1", e.Fired())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A message for a broker that is down is kept and retried, and arrives
// once the broker is back; meanwhile the target shows the failure.
func TestDeliveredWhenBrokerComesBack(t *testing.T) {
	brokertest.Need(t, "Mosquitto", brokertest.MQTT)
	e, hooks, st := newEngine(t, Config{})
	ctx := context.Background()
	px := brokertest.NewProxy(t, brokertest.MQTT)
	topic := brokertest.Name("doze/down/")
	got := make(chan mqtt.Message, 4)
	mc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + brokertest.MQTT).SetClientID(brokertest.Name("sub-")))
	if tok := mc.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer mc.Disconnect(0)
	if tok := mc.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	r, err := e.CreateRule(ctx, Rule{AppID: "app", Name: "all", Enabled: true, Targets: []Target{{Type: MQTT, URL: "tcp://" + px.Addr, Topic: topic}}})
	if err != nil {
		t.Fatal(err)
	}
	forward(t, e, hooks, st, battery(12))
	waitFor(t, func() bool { s, _ := e.TargetState(r.ID, 0); return s.Failures >= 2 })
	if s, _ := e.TargetState(r.ID, 0); !strings.Contains(s.LastError, "connecting to mqtt") || s.Queued != 1 {
		t.Fatalf("target state while down: %+v", s)
	}
	px.Start(t)
	select {
	case m := <-got:
		if !strings.Contains(string(m.Payload()), r.ID) {
			t.Fatalf("payload %s", m.Payload())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("nothing arrived after the broker came back")
	}
	waitFor(t, func() bool { msgs, _ := st.Messages(ctx); return len(msgs) == 0 })
}

// A broker address the guard refuses is refused when the rule is saved
// (400 material), and a message whose rule was deleted is dropped as
// final, not retried.
func TestGuardAndDeletedRule(t *testing.T) {
	e, hooks, st := newEngine(t, Config{Delivery: push.Config{Allow: []netip.Prefix{}}})
	ctx := context.Background()
	_, err := e.CreateRule(ctx, Rule{AppID: "app", Name: "x", Enabled: true, Targets: []Target{{Type: NATS, URL: "nats://127.0.0.1:4222", Subject: "s"}}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "targets[0].url" || !errors.Is(err, push.ErrAddressDenied) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("loopback broker: %v, want a FieldError on targets[0].url wrapping ErrAddressDenied", err)
	}
	_, err = e.CreateRule(ctx, Rule{AppID: "app", Name: "x", Enabled: true, Targets: []Target{{Type: NATS, URL: "nats://169.254.169.254:80", Subject: "s"}}})
	if !errors.Is(err, push.ErrAddressDenied) || !strings.Contains(err.Error(), "cloud metadata") {
		t.Fatalf("metadata address: %v", err)
	}
	// A rule stored directly (as by another node) that names a denied
	// address is refused at dial time, as final.
	st.PutRule(ctx, Rule{ID: "r1", AppID: "app", Name: "x", Enabled: true, Targets: []Target{{Type: NATS, URL: "nats://127.0.0.1:4222", Subject: "s"}}})
	e.forget()
	_, out := forward(t, e, hooks, st, battery(12))
	if out != 1 {
		t.Fatalf("%d messages", out)
	}
	waitFor(t, func() bool { return e.Stats().Rejected == 1 })
	if s, _ := e.TargetState("r1", 0); !strings.Contains(s.LastError, "not allowed") {
		t.Fatalf("dial-time refusal: %+v", s)
	}
	// Deleted rule: its queued message is dropped as final.
	st.PutRule(ctx, Rule{ID: "r2", AppID: "app", Name: "y", Enabled: true, Targets: []Target{{Type: NATS, URL: "nats://10.255.255.1:4222", Subject: "s"}}})
	st.DeleteRule(ctx, "r1")
	e.forget()
	hm, out2, _ := e.Messages(ctx, battery(12))
	if len(hm) != 0 || len(out2) != 1 {
		t.Fatal(len(out2))
	}
	st.DeleteRule(ctx, "r2")
	if err := e.Admit(ctx, out2, func() error { return st.PutMessages(ctx, out2...) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return e.Stats().Rejected == 2 })
	if s, _ := e.TargetState("r2", 0); !strings.Contains(s.LastError, "deleted") {
		t.Fatalf("deleted rule: %+v", s)
	}
}
