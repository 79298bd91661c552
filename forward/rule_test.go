package forward

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRuleCheck(t *testing.T) {
	ok := func(ts ...Target) Rule { return Rule{Name: "n", Targets: ts} }
	two, bad := 2, 3
	for _, tc := range []struct {
		r     Rule
		field string
		msg   string
	}{
		{Rule{Targets: []Target{{Type: Webhook}}}, "name", "1–64 bytes"},
		{Rule{Name: strings.Repeat("n", 65), Targets: []Target{{Type: Webhook}}}, "name", "1–64 bytes"},
		{Rule{Name: "n"}, "targets", "1–8 targets"},
		{ok(make([]Target, 9)...), "targets", "1–8 targets"},
		{Rule{Name: "n", Condition: "x = 1", Targets: []Target{{Type: Webhook}}}, "condition", `unknown field "x"`},
		{ok(Target{Type: "kafka"}), "targets[0].type", "allowed: webhook, nats, mqtt, amqp"},
		{ok(Target{Type: Webhook}, Target{Type: Webhook}), "targets", "at most one webhook"},
		{ok(Target{Type: Webhook, URL: "nats://h"}), "targets[0].url", "does not apply to a webhook target"},
		{ok(Target{Type: NATS, URL: "nats://h"}), "targets[0].subject", "is required"},
		{ok(Target{Type: NATS, URL: "nats://h", Subject: "a.>"}), "targets[0].subject", "wildcards"},
		{ok(Target{Type: NATS, URL: "nats://h", Subject: "a..b"}), "targets[0].subject", "non-empty tokens"},
		{ok(Target{Type: NATS, URL: "nats://h", Subject: "a", Topic: "t"}), "targets[0].topic", "does not apply to a nats target"},
		{ok(Target{Type: NATS, Subject: "a"}), "targets[0].url", "is required (as in nats://host:4222)"},
		{ok(Target{Type: NATS, URL: "tls://h", Subject: "a"}), "targets[0].url", `scheme "tls"`},
		{ok(Target{Type: NATS, URL: "nats://h/x", Subject: "a"}), "targets[0].url", "must not carry a path"},
		{ok(Target{Type: NATS, URL: "nats://h:99999", Subject: "a"}), "targets[0].url", "is not 1–65535"},
		{ok(Target{Type: NATS, URL: "nats://:4222", Subject: "a"}), "targets[0].url", "names no host"},
		{ok(Target{Type: NATS, URL: "nats://h?x=1", Subject: "a"}), "targets[0].url", "query or fragment"},
		{ok(Target{Type: NATS, URL: "nats://h:" + strings.Repeat("1", 1100), Subject: "a"}), "targets[0].url", "at most 1024"},
		{ok(Target{Type: MQTT, URL: "mqtt://h", Topic: "a/#"}), "targets[0].topic", "wildcard"},
		{ok(Target{Type: MQTT, URL: "mqtt://h", Topic: "a", QoS: &bad}), "targets[0].qos", "allowed: 0, 1, 2"},
		{ok(Target{Type: MQTT, URL: "mqtt://h", Topic: strings.Repeat("t", 256)}), "targets[0].topic", "at most 255"},
		{ok(Target{Type: MQTT, URL: "mqtt://h", Topic: "a\x00"}), "targets[0].topic", "without NUL"},
		{ok(Target{Type: AMQP, URL: "amqp://h", Exchange: "a b"}), "targets[0].exchange", "letters, digits"},
		{ok(Target{Type: AMQP, URL: "amqp://h", Subject: "s"}), "targets[0].subject", "does not apply to a amqp target"},
	} {
		_, err := tc.r.Check()
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("%+v: %v, want %s: …%s…", tc.r, err, tc.field, tc.msg)
		}
	}
	good := ok(Target{Type: Webhook}, Target{Type: NATS, URL: "nats://u:p@h", Subject: "a.b"},
		Target{Type: MQTT, URL: "tcp://h:1884", Topic: "a/b", QoS: &two}, Target{Type: AMQP, URL: "amqp://h/vhost"})
	if _, err := good.Check(); err != nil {
		t.Fatal(err)
	}
	if r := good.Targets[1].Redacted(); r.URL != "nats://u:xxxxx@h" {
		t.Errorf("redacted %q", r.URL)
	}
}

// Rules belong to one application: another one gets ErrNotFound for each
// operation and does not see them; MaxRules bounds an application's rules.
func TestRulesPerApp(t *testing.T) {
	e, _, _ := newEngine(t, Config{MaxRules: 2})
	ctx := context.Background()
	r, err := e.CreateRule(ctx, Rule{AppID: "a", Name: "one", Enabled: true, Targets: []Target{{Type: Webhook}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Rule(ctx, "b", r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("get by another app: %v", err)
	}
	if _, err := e.UpdateRule(ctx, Rule{ID: r.ID, AppID: "b", Name: "x", Targets: []Target{{Type: Webhook}}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("change by another app: %v", err)
	}
	if err := e.DeleteRule(ctx, "b", r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete by another app: %v", err)
	}
	if rs, _ := e.Rules(ctx, "b"); len(rs) != 0 {
		t.Errorf("another app lists %d rules", len(rs))
	}
	u, err := e.UpdateRule(ctx, Rule{ID: r.ID, AppID: "a", Name: "renamed", Targets: []Target{{Type: Webhook}}})
	if err != nil || u.Name != "renamed" || !u.Created.Equal(r.Created) || u.Enabled {
		t.Fatalf("update: %+v %v", u, err)
	}
	if _, err := e.CreateRule(ctx, Rule{AppID: "a", Name: "two", Targets: []Target{{Type: Webhook}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateRule(ctx, Rule{AppID: "a", Name: "three", Targets: []Target{{Type: Webhook}}}); !errors.Is(err, ErrTooManyRules) {
		t.Fatalf("third rule with MaxRules 2: %v", err)
	}
	// A disabled rule fires nothing.
	if hm, out, err := e.Messages(ctx, Event{AppID: "a", Services: battery(1).Services}); err != nil || len(hm)+len(out) != 0 || e.Fired() != 0 {
		t.Fatalf("disabled rules fired: %d %d %v", len(hm), len(out), err)
	}
	if err := e.DeleteRule(ctx, "a", r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Rule(ctx, "a", r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}
