package forward

import (
	"context"
	"fmt"
	"testing"

	"github.com/doze-io/doze/push"
)

// BenchmarkMessages: what rules cost a report (two services) for an app
// with no rules (the baseline every report pays) and with 10 rules whose
// conditions read properties, one of which fires for a NATS target.
func BenchmarkMessages(b *testing.B) {
	for _, n := range []int{0, 10} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			hooks, err := push.New(push.NewMemoryStore(), push.Config{})
			if err != nil {
				b.Fatal(err)
			}
			e, err := New(&MemoryStore{}, hooks, Config{MaxRules: 100, Delivery: push.Config{Allow: loopback}})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for i := range n {
				cond := fmt.Sprintf(`serviceId = "Battery" AND data.batteryLevel < %d`, i*3)
				if _, err := e.CreateRule(ctx, Rule{AppID: "app", Name: "r", Condition: cond, Enabled: true,
					Targets: []Target{{Type: NATS, URL: "nats://127.0.0.1:4222", Subject: "s"}}}); err != nil {
					b.Fatal(err)
				}
			}
			ev := battery(26) // fires only the rule with < 27
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := e.Messages(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseCondition(b *testing.B) {
	const c = `manufacturerId = "DozeLabs" AND serviceId = "Battery" AND data.batteryLevel < 20 AND data.mode != "eco"`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCondition(c); err != nil {
			b.Fatal(err)
		}
	}
}
