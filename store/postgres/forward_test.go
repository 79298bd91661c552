package postgres

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/forward/forwardtest"
	"github.com/doze-io/doze/internal/brokertest"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/store"
)

func TestForwardConformance(t *testing.T) {
	t.Parallel()
	forwardtest.Run(t, func(t *testing.T) forward.Store { return openTest(t).Forward() })
}

// TestForwardRefusesUnstorableKeys: a rule id or app id PostgreSQL text
// cannot hold (NUL, invalid UTF-8) or longer than allowed is refused with
// ErrTooLarge naming it; reading such an id finds nothing.
func TestForwardRefusesUnstorableKeys(t *testing.T) {
	ctx := context.Background()
	f := openTest(t).Forward()
	r := forward.Rule{ID: "r1", AppID: "app", Name: "n", Enabled: true, Targets: []forward.Target{{Type: forward.Webhook}}}
	for _, bad := range []forward.Rule{
		{ID: "", AppID: "app"}, {ID: "r\x00", AppID: "app"}, {ID: "\xff", AppID: "app"}, {ID: string(make([]byte, 257)), AppID: "app"},
		{ID: "r2", AppID: "a\x00"}, {ID: "r2", AppID: "\xfe"},
	} {
		r.ID, r.AppID = bad.ID, bad.AppID
		err := f.PutRule(ctx, r)
		require.ErrorIs(t, err, ErrTooLarge, "rule %q of app %q", bad.ID, bad.AppID)
		require.ErrorContains(t, err, "forwarding rule")
	}
	_, err := f.Rule(ctx, "r\x00")
	require.ErrorIs(t, err, forward.ErrNotFound)
	ok, err := f.DeleteRule(ctx, "\xff")
	require.NoError(t, err)
	require.False(t, ok)
	got, err := f.Rules(ctx, "a\x00")
	require.NoError(t, err)
	require.Empty(t, got)
	require.ErrorIs(t, f.PutMessages(ctx, push.Message{URL: "rule://r/0"}), ErrTooLarge, "a message without an id")
}

// TestForwardOutboxOwnTable: the forwarding outbox and the push outbox are
// separate (the webhooks' engine never loads a forwarding message, nor the
// reverse), and SaveUplink writes a report's forwarding messages in its
// transaction: all of the uplink, or (a message it cannot store) none.
func TestForwardOutboxOwnTable(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	now := time.Unix(1700000000, 0)
	hook := push.Message{ID: "h1", URL: "https://app.example/cb", Body: []byte(`{}`), Created: now, Expires: now.Add(time.Hour)}
	fwd := push.Message{ID: "rule_1", URL: "rule://r1/0", Body: []byte(`{"n":1}`), NotifyType: push.RuleEvent, Created: now,
		Expires: now.Add(time.Hour), AppID: "app"}
	hist := []store.HistoryRecord{{DeviceID: "d1", ServiceID: "Meter", Data: []byte(`{"v":1}`), Time: now}}

	bad := fwd
	bad.ID = ""
	err := db.SaveUplink(store.Uplink{DeviceID: "d1", History: hist, Time: now, Messages: []push.Message{hook}, Forward: []push.Message{bad}})
	require.ErrorIs(t, err, ErrTooLarge)
	for _, table := range []string{"history", "push_messages", "forward_messages"} {
		var n int
		require.NoError(t, db.pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n))
		require.Zero(t, n, "%s after a refused uplink", table)
	}

	require.NoError(t, db.SaveUplink(store.Uplink{DeviceID: "d1", History: hist, Time: now,
		Messages: []push.Message{hook}, Forward: []push.Message{fwd}}))
	pm, err := db.Push().Messages(ctx)
	require.NoError(t, err)
	require.Len(t, pm, 1)
	require.Equal(t, "h1", pm[0].ID)
	fm, err := db.Forward().Messages(ctx)
	require.NoError(t, err)
	require.Len(t, fm, 1)
	require.Equal(t, "rule_1", fm[0].ID)
	require.Equal(t, `{"n":1}`, string(fm[0].Body))
	require.Equal(t, push.RuleEvent, fm[0].NotifyType)

	got, err := db.Push().ClaimMessages(ctx, "node1", now, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, got, 1, "the push outbox's claims see only pushes")
	got, err = db.Forward().ClaimMessages(ctx, "node1", now, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, got, 1, "the forwarding outbox's claims see only forwarding messages")
	require.Equal(t, "rule_1", got[0].ID)
}

// TestClaimForwardMessagesTwoNodes: the forwarding outbox, claimed by two
// nodes at once from four goroutines each: each message goes to one node.
// A lease keeps a third node off until it ends; renewing extends it.
func TestClaimForwardMessagesTwoNodes(t *testing.T) {
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	ctx := context.Background()
	msgs, t0 := claimOutboxRace(t, a, b, func(db *DB) claimingOutbox { return db.Forward() },
		func(i int) (string, string) { return fmt.Sprintf("rule_%03d", i), fmt.Sprintf("rule://r%d/0", i%7) })

	require.NoError(t, a.Forward().PutMessages(ctx, msgs[:10]...))
	got, err := a.Forward().ClaimMessagesOf(ctx, "node1", t0, time.Minute, msgs[:10])
	require.NoError(t, err)
	require.Len(t, got, 10)
	got, err = b.Forward().ClaimMessages(ctx, "node2", t0.Add(59*time.Second), time.Minute, 100)
	require.NoError(t, err)
	require.Empty(t, got, "node1's leases still run")
	n, err := a.Forward().RenewMessages(ctx, "node1", t0.Add(30*time.Second), time.Minute)
	require.NoError(t, err)
	require.Equal(t, 10, n)
	got, err = b.Forward().ClaimMessages(ctx, "node2", t0.Add(61*time.Second), time.Minute, 100)
	require.NoError(t, err)
	require.Empty(t, got, "node1 renewed its leases until t0+90s")
	got, err = b.Forward().ClaimMessages(ctx, "node2", t0.Add(91*time.Second), time.Minute, 100)
	require.NoError(t, err)
	require.Len(t, got, 10, "after node1's leases end node2 takes the messages over")
	_, err = b.Forward().ClaimMessages(ctx, "", t0, time.Minute, 1)
	require.Error(t, err, "an empty owner is refused")
}

// forwardNode starts a forwarding engine of node on db (claiming, as the
// platform's nodes on PostgreSQL do), stopped when the test ends.
func forwardNode(t *testing.T, db *DB, node string) *forward.Engine {
	t.Helper()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	hooks, err := push.New(db.Push(), push.Config{Node: node, Allow: loopback})
	require.NoError(t, err)
	e, err := forward.New(db.Forward(), hooks, forward.Config{Delivery: push.Config{Node: node, ClaimLease: 12 * time.Second,
		Timeout: 5 * time.Second, Allow: loopback, RetrySchedule: []time.Duration{200 * time.Millisecond}}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = hooks.Run(ctx) })
	wg.Go(func() {
		if err := e.Run(ctx); err != nil {
			t.Errorf("%s: Run: %v", node, err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait(); e.Close(); hooks.Close() })
	return e
}

// TestForwardTwoNodesDeliverOnce (CLU-1): two nodes on one schema run a
// forwarding engine each over the shared outbox, which holds 200 messages
// for a rule's MQTT target when they start; each node also forwards 20
// reports while both run. The broker gets each of the 240 exactly once
// (read by a subscriber), and the nodes' delivery counts add up to 240.
// (Without claiming, each engine loads the whole outbox and the 200 go
// out twice.)
func TestForwardTwoNodesDeliverOnce(t *testing.T) {
	brokertest.Need(t, "Mosquitto", brokertest.MQTT)
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	ctx := context.Background()

	topic := brokertest.Name("doze/pgfwd/")
	var mu sync.Mutex
	got := map[string]int{}
	mc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + brokertest.MQTT).SetClientID(brokertest.Name("sub-")))
	if tok := mc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting to Mosquitto: %v", tok.Error())
	}
	t.Cleanup(func() { mc.Disconnect(100) })
	if tok := mc.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		got[string(m.Payload())]++
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing: %v", tok.Error())
	}

	hooks, err := push.New(a.Push(), push.Config{})
	require.NoError(t, err)
	admin, err := forward.New(a.Forward(), hooks, forward.Config{Delivery: push.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	require.NoError(t, err)
	rule, err := admin.CreateRule(ctx, forward.Rule{AppID: "app", Name: "all", Enabled: true,
		Targets: []forward.Target{{Type: forward.MQTT, URL: "mqtt://" + brokertest.MQTT, Topic: topic}}})
	require.NoError(t, err)

	now := time.Now()
	var msgs []push.Message
	for i := range 200 {
		msgs = append(msgs, push.Message{ID: fmt.Sprintf("rule_%04d", i), URL: "rule://" + rule.ID + "/0",
			Body: fmt.Appendf(nil, `{"n":%d}`, i), NotifyType: push.RuleEvent, Created: now, Expires: now.Add(10 * time.Minute), AppID: "app"})
	}
	require.NoError(t, a.Forward().PutMessages(ctx, msgs...))

	na, nb := forwardNode(t, a, "node-a"), forwardNode(t, b, "node-b")
	var wg sync.WaitGroup
	for name, e := range map[string]*forward.Engine{"a": na, "b": nb} {
		wg.Go(func() {
			for i := range 20 {
				ev := forward.Event{AppID: "app", DeviceID: fmt.Sprintf("dev-%s-%02d", name, i),
					Services: []push.ServiceData{{ServiceID: "Meter", ServiceType: "Meter", Data: []byte(`{"v":1}`), EventTime: "20260101T000000Z"}}}
				if err := e.Forward(ctx, ev); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 240 }, 60*time.Second, 20*time.Millisecond,
		"every forwarding message reaches the broker")
	require.Eventually(t, func() bool {
		left, err := a.Forward().Messages(ctx)
		return err == nil && len(left) == 0
	}, 20*time.Second, 20*time.Millisecond, "the outbox empties")
	sa, sb := na.Stats(), nb.Stats()
	require.EqualValues(t, 240, sa.Delivered+sb.Delivered, "deliveries of node a (%d) and b (%d)", sa.Delivered, sb.Delivered)
	require.NotZero(t, sa.Delivered, "node a delivered its share")
	require.NotZero(t, sb.Delivered, "node b delivered its share")
	mu.Lock()
	defer mu.Unlock()
	for body, n := range got {
		require.Equal(t, 1, n, "%s published %d times", body, n)
	}
}
