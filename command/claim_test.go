package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// claimStore is a MemStore that claims (a stand-in, enough for New).
type claimStore struct{ *MemStore }

func (claimStore) ClaimCommands(context.Context, string, time.Time, time.Duration, int) ([]Command, error) {
	return nil, nil
}

func TestNewNodeNeedsClaimer(t *testing.T) {
	snd := SenderFunc(func(context.Context, Command) error { return nil })
	_, err := New(NewMemStore(), snd, nil, Config{Node: "n1"})
	if err == nil || !strings.Contains(err.Error(), "does not implement command.Claimer") {
		t.Fatalf("Node without a Claimer: err = %v, want a refusal naming command.Claimer", err)
	}
	if _, err := New(claimStore{NewMemStore()}, snd, nil, Config{Node: "n1"}); err != nil {
		t.Fatalf("Node with a Claimer: %v", err)
	}
	for _, c := range []Config{{Node: "n\x001"}, {Node: strings.Repeat("n", maxNode+1)}, {Node: "n1", ClaimLease: -time.Second}} {
		if _, err := New(claimStore{NewMemStore()}, snd, nil, c); err == nil {
			t.Errorf("New(%q, lease %v) accepted", c.Node, c.ClaimLease)
		}
	}
	if _, err := New(NewMemStore(), snd, nil, Config{}); err != nil {
		t.Fatalf("one node: %v", err)
	}
}

// leases is a shared lease table, as the rows of a database would hold
// them: leasedStore views of one MemStore share one.
type leases struct {
	mu    sync.Mutex
	owner map[string]string
	until map[string]time.Time
}

// leasedStore is a MemStore that claims due commands from a lease table
// shared with other views (other nodes) of the same MemStore.
type leasedStore struct {
	*MemStore
	l *leases
}

func (s leasedStore) ClaimCommands(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Command, error) {
	due, err := s.Due(ctx, now, 1<<20)
	if err != nil {
		return nil, err
	}
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	var out []Command
	for _, c := range due {
		if len(out) == limit {
			break
		}
		if u, ok := s.l.until[c.ID]; ok && now.Before(u) && s.l.owner[c.ID] != owner {
			continue
		}
		s.l.owner[c.ID], s.l.until[c.ID] = owner, now.Add(lease)
		out = append(out, c)
	}
	return out, nil
}

// TestClaimedTimeouts (issue 18): two engines (two nodes) on one store,
// claiming: 40 commands SENT by node A time out exactly once each, at
// their deadline. Then node A closes holding leases on 10 more commands
// past their deadline: node B, though it serves their devices (uplinks
// there), leaves them until the leases end, then times each out once,
// within a quarter lease of that.
func TestClaimedTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := NewMemStore()
		l := &leases{owner: map[string]string{}, until: map[string]time.Time{}}
		var mu sync.Mutex
		timeouts := map[string]int{}
		lis := ListenerFunc(func(c Command) {
			if c.Status == Timeout {
				mu.Lock()
				timeouts[c.ID]++
				mu.Unlock()
			}
		})
		count := func(ids []string) (n, total int) {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if timeouts[id] > 0 {
					n++
					total += timeouts[id]
				}
			}
			return n, total
		}
		const lease = 20 * time.Second
		snd := SenderFunc(func(context.Context, Command) error { return nil })
		cfg := func(node string) Config {
			return Config{Node: node, ClaimLease: lease, DefaultMode: Mode{Kind: DRX, Timeout: 10 * time.Second}}
		}
		start := func(e *Engine) func() {
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			return func() { require.NoError(t, e.Close()); require.NoError(t, <-done) }
		}
		ea, err := New(leasedStore{st, l}, snd, lis, cfg("a"))
		require.NoError(t, err)
		eb, err := New(leasedStore{st, l}, snd, lis, cfg("b"))
		require.NoError(t, err)
		stopA, stopB := start(ea), start(eb)
		defer stopB()
		submit := func(prefix string, n int) []string {
			var ids []string
			for i := range n {
				c, err := ea.Submit(ctx, Request{AppID: "app", DeviceID: fmt.Sprintf("%s%02d", prefix, i),
					Command: Body{ServiceID: "s", Method: "m", Paras: []byte(`{"x":1}`)}})
				require.NoError(t, err)
				ids = append(ids, c.ID)
			}
			return ids
		}

		ids := submit("d", 40)
		synctest.Wait()
		time.Sleep(10*time.Second - time.Millisecond)
		synctest.Wait()
		n, _ := count(ids)
		require.Zero(t, n, "timed out before the deadline")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		n, total := count(ids)
		require.Equal(t, len(ids), n, "every command timed out at its deadline")
		require.Equal(t, len(ids), total, "once each")
		byA := 0
		l.mu.Lock()
		for _, id := range ids {
			if l.owner[id] == "a" {
				byA++
			}
		}
		l.mu.Unlock()
		t.Logf("node a timed out %d, node b %d", byA, len(ids)-byA)

		more := submit("late", 10)
		synctest.Wait()
		stopA()
		claimAt := time.Now().Add(10 * time.Second) // at their deadline
		got, err := leasedStore{st, l}.ClaimCommands(ctx, "a", claimAt, lease, 100)
		require.NoError(t, err)
		require.Len(t, got, len(more), "node A's leases")
		time.Sleep(10 * time.Second) // past their deadline
		for i := range more {
			// Node B serves the devices (an uplink there), and leaves
			// the commands node A holds alone.
			require.NoError(t, eb.DeviceWoke(ctx, fmt.Sprintf("late%02d", i)))
		}
		synctest.Wait()
		time.Sleep(lease - time.Millisecond) // the leases end then
		synctest.Wait()
		n, _ = count(more)
		require.Zero(t, n, "node B timed out commands node A holds, or before the deadline")
		time.Sleep(lease/4 + time.Millisecond)
		synctest.Wait()
		n, total = count(more)
		require.Equal(t, len(more), n, "node B takes over within a quarter lease of the leases' end")
		require.Equal(t, len(more), total, "once each")
	})
}

// sessionsOn is a Sessions for one node of a test cluster: the devices
// whose sessions are on it, and what it does when a send is due
// elsewhere.
type sessionsOn struct {
	mu        sync.Mutex
	here      map[string]bool
	elsewhere func(deviceID string)
	handed    []string
}

func (s *sessionsOn) Here(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.here[id]
}

func (s *sessionsOn) Elsewhere(id string) {
	s.mu.Lock()
	s.handed = append(s.handed, id)
	f := s.elsewhere
	s.mu.Unlock()
	if f != nil {
		f(id)
	}
}

// TestSessionsElsewhere (issue 18, CLU-2): two nodes share a store; the
// device's session is on node B. A command queued through node A is not
// sent by A (which has no session to send it on): A hands it to B
// (Elsewhere), and B, kicked, sends it at once — not at the device's next
// uplink. Without the kick B would not send it until then. An immediate
// command queued through A fails as unreachable instead of waiting.
func TestSessionsElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := NewMemStore()
		l := &leases{owner: map[string]string{}, until: map[string]time.Time{}}
		var mu sync.Mutex
		sent := map[string][]string{} // node → command ids it sent
		sender := func(node string) Sender {
			return SenderFunc(func(_ context.Context, c Command) error {
				mu.Lock()
				defer mu.Unlock()
				sent[node] = append(sent[node], c.ID)
				return nil
			})
		}
		sentBy := func(node string) []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), sent[node]...)
		}
		onA := &sessionsOn{here: map[string]bool{}}
		onB := &sessionsOn{here: map[string]bool{"dev": true}}
		cfg := func(node string, s Sessions) Config {
			return Config{Node: node, ClaimLease: 20 * time.Second, Sessions: s,
				DefaultMode: Mode{Kind: DRX, Timeout: 30 * time.Second}}
		}
		ea, err := New(leasedStore{st, l}, sender("a"), nil, cfg("a", onA))
		require.NoError(t, err)
		eb, err := New(leasedStore{st, l}, sender("b"), nil, cfg("b", onB))
		require.NoError(t, err)
		for _, e := range []*Engine{ea, eb} {
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			defer func() { require.NoError(t, e.Close()); require.NoError(t, <-done) }()
		}
		require.NoError(t, eb.DeviceWoke(ctx, "dev")) // the device talks to node B
		synctest.Wait()
		body := Body{ServiceID: "s", Method: "m", Paras: []byte(`{"x":1}`)}

		// No kick: A does not send, and B has no reason to look.
		c1, err := ea.Submit(ctx, Request{AppID: "app", DeviceID: "dev", Command: body})
		require.NoError(t, err)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		require.Empty(t, sentBy("a"), "node A has no session for the device: it never sends")
		require.Empty(t, sentBy("b"), "node B was not told")
		onA.mu.Lock()
		require.Contains(t, onA.handed, "dev", "node A handed the send to the node with the session")
		onA.mu.Unlock()

		// With the kick (what the platform does over NATS), B sends at once.
		onA.mu.Lock()
		onA.elsewhere = func(id string) {
			if err := eb.Kick(id); err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("kick on node B: %v", err)
			}
		}
		onA.mu.Unlock()
		require.NoError(t, ea.Kick("dev")) // A looks again: the head is still to send
		synctest.Wait()
		require.Equal(t, []string{c1.ID}, sentBy("b"), "node B sent the command queued through node A")
		require.Empty(t, sentBy("a"))
		got, err := st.Get(ctx, c1.ID)
		require.NoError(t, err)
		require.Equal(t, Sent, got.Status)

		// A PSM device that node A has never heard: A would wait for an
		// uplink, but the node with the session is told at once.
		require.NoError(t, ea.SetMode(ctx, "psm", Mode{Kind: PSM}))
		_, err = ea.Submit(ctx, Request{AppID: "app", DeviceID: "psm", Command: body})
		require.NoError(t, err)
		onA.mu.Lock()
		require.Contains(t, onA.handed, "psm", "a command queued through A is handed to the node with the session")
		onA.mu.Unlock()

		// An immediate command through A: the session is not there.
		zero := int64(0)
		c2, err := ea.Submit(ctx, Request{AppID: "app", DeviceID: "other", Command: body, ExpireTime: &zero})
		require.ErrorIs(t, err, ErrUnreachable)
		require.Equal(t, Failed, c2.Status)
		require.Contains(t, c2.Reason, "not on this node")
		require.ErrorIs(t, eb.Close(), nil)
		require.ErrorIs(t, eb.Kick("dev"), ErrClosed)
	})
}
