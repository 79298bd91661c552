package forward

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/doze-io/doze/push"
)

// claimStore is a MemoryStore whose outbox messages carry leases: a
// push.Claimer, as store/postgres's Forward is.
type claimStore struct {
	MemoryStore
	mu     sync.Mutex
	leases map[string]lease // by URL + " " + ID
}

type lease struct {
	owner string
	until time.Time
}

func (s *claimStore) take(m push.Message, owner string, now time.Time, d time.Duration) bool {
	k := m.URL + " " + m.ID
	if l, ok := s.leases[k]; ok && l.until.After(now) && l.owner != owner {
		return false
	}
	s.leases[k] = lease{owner, now.Add(d)}
	return true
}

func (s *claimStore) ClaimMessages(ctx context.Context, owner string, now time.Time, d time.Duration, limit int) ([]push.Message, error) {
	all, err := s.Messages(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []push.Message
	for _, m := range all {
		if len(out) < limit && s.take(m, owner, now, d) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *claimStore) ClaimMessagesOf(_ context.Context, owner string, now time.Time, d time.Duration, msgs []push.Message) ([]push.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []push.Message
	for _, m := range msgs {
		if s.take(m, owner, now, d) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *claimStore) RenewMessages(_ context.Context, owner string, now time.Time, d time.Duration) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, l := range s.leases {
		if l.owner == owner {
			s.leases[k] = lease{owner, now.Add(d)}
			n++
		}
	}
	return n, nil
}

// TestNodeDeliversOnlyItsClaims: an engine given Config.Delivery.Node over
// a Store that is a push.Claimer delivers only the forwarding messages it
// holds a lease on. Twenty messages of a deleted rule wait in the outbox,
// ten leased to node b (alive, elsewhere) for an hour: node a drops its
// ten as final (ErrTargetGone) and leaves b's alone, also when it claims
// again later; after b's leases end, a takes and drops them too.
func TestNodeDeliversOnlyItsClaims(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := &claimStore{leases: map[string]lease{}}
		now := time.Now()
		var msgs []push.Message
		for i := range 20 {
			msgs = append(msgs, push.Message{ID: fmt.Sprintf("rule_%02d", i), URL: targetURL("gone", 0), Body: []byte(`{}`),
				NotifyType: push.RuleEvent, Created: now, Expires: now.Add(3 * time.Hour)})
		}
		if err := st.PutMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.ClaimMessagesOf(ctx, "node-b", now, time.Hour, msgs[10:]); len(got) != 10 {
			t.Fatalf("node b leased %d messages, want 10", len(got))
		}
		hooks, err := push.New(push.NewMemoryStore(), push.Config{})
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(st, hooks, Config{Delivery: push.Config{Node: "node-a", ClaimLease: time.Minute, Timeout: 5 * time.Second,
			KeepTime: 3 * time.Hour}})
		if err != nil {
			t.Fatalf("New with Delivery.Node over a claiming Store: %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()

		time.Sleep(30 * time.Minute) // many claim rounds of node a, within b's leases
		synctest.Wait()
		if got := e.Stats().Rejected; got != 10 {
			t.Fatalf("node a dropped %d messages within node b's leases, want its own 10", got)
		}
		left, _ := st.Messages(ctx)
		if len(left) != 10 || left[0].ID != "rule_10" {
			t.Fatalf("outbox holds %d messages, want node b's 10", len(left))
		}

		time.Sleep(time.Hour) // b's leases ended, b never renewed them
		synctest.Wait()
		if got := e.Stats().Rejected; got != 20 {
			t.Fatalf("node a dropped %d messages after node b's leases ended, want 20", got)
		}
		if left, _ := st.Messages(ctx); len(left) != 0 {
			t.Fatalf("outbox holds %d messages, want none", len(left))
		}
		e.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestNodeNeedsClaimingStore: Delivery.Node over a Store that cannot claim
// (MemoryStore, the bbolt store) is refused by New, naming the cause.
func TestNodeNeedsClaimingStore(t *testing.T) {
	hooks, err := push.New(push.NewMemoryStore(), push.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(&MemoryStore{}, hooks, Config{Delivery: push.Config{Node: "node-a"}})
	if err == nil || !strings.Contains(err.Error(), "Config.Delivery") || !strings.Contains(err.Error(), "push.Claimer") {
		t.Fatalf("New = %v, want an error naming Config.Delivery and push.Claimer", err)
	}
}
