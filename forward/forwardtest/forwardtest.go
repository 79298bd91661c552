// Package forwardtest is the conformance suite of forward.Store: every
// implementation (forward.MemoryStore, the bbolt store in store, the
// PostgreSQL one in store/postgres) runs it.
package forwardtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/push"
)

// Run runs the suite; newStore returns an empty store.
func Run(t *testing.T, newStore func(t *testing.T) forward.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, forward.Store)
	}{
		{"RuleRoundTrip", testRuleRoundTrip},
		{"RulesOfOneApp", testRulesOfOneApp},
		{"RuleReplaceMovesApp", testRuleReplace},
		{"DeleteRule", testDeleteRule},
		{"OutboxRoundTrip", testOutbox},
		{"OutboxDelete", testOutboxDelete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func rule(id, app string) forward.Rule {
	q := 2
	return forward.Rule{ID: id, AppID: app, Name: "r " + id, Condition: `serviceId = "Battery"`, Enabled: true,
		Targets: []forward.Target{{Type: forward.Webhook}, {Type: forward.MQTT, URL: "mqtt://u:p@h:1883", Topic: "a/b", QoS: &q},
			{Type: forward.AMQP, URL: "amqp://h/v", Exchange: "x", RoutingKey: "k"}, {Type: forward.NATS, URL: "nats://h", Subject: "s.t"}},
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Updated: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)}
}

func equal(t *testing.T, got, want forward.Rule) {
	t.Helper()
	// Pointers (QoS) print as addresses: compare their values.
	for i := range got.Targets {
		if (got.Targets[i].QoS == nil) != (want.Targets[i].QoS == nil) ||
			got.Targets[i].QoS != nil && *got.Targets[i].QoS != *want.Targets[i].QoS {
			t.Fatalf("target %d QoS differs", i)
		}
		got.Targets[i].QoS, want.Targets[i].QoS = nil, nil
	}
	g, w := fmt.Sprintf("%v %v %v %v %v %v %v", got.ID, got.AppID, got.Name, got.Condition, got.Enabled, got.Targets, got.Created.Equal(want.Created) && got.Updated.Equal(want.Updated)),
		fmt.Sprintf("%v %v %v %v %v %v %v", want.ID, want.AppID, want.Name, want.Condition, want.Enabled, want.Targets, true)
	if g != w {
		t.Fatalf("rule:\n got %s\nwant %s", g, w)
	}
}

func testRuleRoundTrip(t *testing.T, st forward.Store) {
	ctx := context.Background()
	r := rule("r1", "app")
	if err := st.PutRule(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := st.Rule(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, rule("r1", "app"))
	if _, err := st.Rule(ctx, "nope"); !errors.Is(err, forward.ErrNotFound) {
		t.Fatalf("unknown rule: %v, want ErrNotFound", err)
	}
}

func testRulesOfOneApp(t *testing.T, st forward.Store) {
	ctx := context.Background()
	for _, r := range []forward.Rule{rule("r3", "a"), rule("r1", "a"), rule("r2", "b"), rule("r4", "ab")} {
		if err := st.PutRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Rules(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "r1" || got[1].ID != "r3" {
		t.Fatalf("rules of a: %v, want r1, r3 (ordered, not those of ab)", ids(got))
	}
	if got, err := st.Rules(ctx, "none"); err != nil || len(got) != 0 {
		t.Fatalf("rules of an app without rules: %v, %v; want none, nil", ids(got), err)
	}
}

func ids(rs []forward.Rule) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return strings.Join(s, ",")
}

func testRuleReplace(t *testing.T, st forward.Store) {
	ctx := context.Background()
	if err := st.PutRule(ctx, rule("r1", "a")); err != nil {
		t.Fatal(err)
	}
	r := rule("r1", "b")
	r.Name = "changed"
	if err := st.PutRule(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Rules(ctx, "a"); err != nil || len(got) != 0 {
		t.Fatalf("app a still lists %v after the rule moved (err %v)", ids(got), err)
	}
	got, err := st.Rules(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "changed" {
		t.Fatalf("rules of b: %+v", got)
	}
}

func testDeleteRule(t *testing.T, st forward.Store) {
	ctx := context.Background()
	if err := st.PutRule(ctx, rule("r1", "a")); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.DeleteRule(ctx, "r1"); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if ok, err := st.DeleteRule(ctx, "r1"); ok || err != nil {
		t.Fatalf("second delete: %v %v, want false, nil", ok, err)
	}
	if _, err := st.Rule(ctx, "r1"); !errors.Is(err, forward.ErrNotFound) {
		t.Fatal(err)
	}
	if got, err := st.Rules(ctx, "a"); err != nil || len(got) != 0 {
		t.Fatalf("deleted rule still listed: %v (err %v)", ids(got), err)
	}
}

func msg(url, id string) push.Message {
	now := time.Unix(1700000000, 123).UTC()
	return push.Message{ID: id, URL: url, Body: []byte(`{"notifyType":"ruleEvent"}`), NotifyType: push.RuleEvent,
		Created: now, Expires: now.Add(time.Minute)}
}

func testOutbox(t *testing.T, st forward.Store) {
	ctx := context.Background()
	in := []push.Message{msg("rule://b/0", "m2"), msg("rule://a/1", "m1"), msg("rule://b/0", "m1")}
	if err := st.PutMessages(ctx, in...); err != nil {
		t.Fatal(err)
	}
	got, err := st.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"rule://a/1 m1", "rule://b/0 m1", "rule://b/0 m2"}
	if len(got) != 3 {
		t.Fatalf("got %d messages, want 3", len(got))
	}
	for i, m := range got {
		if m.URL+" "+m.ID != want[i] || string(m.Body) != `{"notifyType":"ruleEvent"}` || m.NotifyType != push.RuleEvent ||
			!m.Created.Equal(in[0].Created) || !m.Expires.Equal(in[0].Expires) {
			t.Fatalf("message %d: %+v, want %s with its fields", i, m, want[i])
		}
	}
}

func testOutboxDelete(t *testing.T, st forward.Store) {
	ctx := context.Background()
	if err := st.PutMessages(ctx, msg("rule://a/0", "m1"), msg("rule://a/0", "m2")); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMessages(ctx, msg("rule://a/0", "m1"), msg("rule://zz/0", "m9")); err != nil {
		t.Fatal(err)
	}
	got, err := st.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "m2" {
		t.Fatalf("after delete: %+v, want m2 only", got)
	}
	if err := st.DeleteMessages(ctx, msg("rule://a/0", "m2")); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Messages(ctx); err != nil || len(got) != 0 {
		t.Fatalf("after deleting all: %+v (err %v)", got, err)
	}
}
