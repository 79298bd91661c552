package push

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// leaseStore is a MemoryStore with leases on its messages: a Claimer as
// the PostgreSQL store is one, for tests in synctest bubbles.
type leaseStore struct {
	*MemoryStore
	mu        sync.Mutex
	leases    map[msgKey]leaseRec
	failRenew bool
}

type leaseRec struct {
	owner string
	until time.Time
}

func newLeaseStore() *leaseStore {
	return &leaseStore{MemoryStore: NewMemoryStore(), leases: map[msgKey]leaseRec{}}
}

func (s *leaseStore) free(k msgKey, owner string, now time.Time) bool {
	l, ok := s.leases[k]
	return !ok || !l.until.After(now) || l.owner == owner
}

func (s *leaseStore) ClaimMessages(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Message, error) {
	all, _ := s.Messages(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.SortStableFunc(all, func(a, b Message) int {
		own := func(m Message) bool { return s.leases[msgKey{m.URL, m.ID}].owner == owner }
		return cmp.Compare(boolInt(own(a)), boolInt(own(b)))
	})
	var out []Message
	for _, m := range all {
		k := msgKey{m.URL, m.ID}
		if len(out) < limit && s.free(k, owner, now) {
			s.leases[k] = leaseRec{owner, now.Add(lease)}
			out = append(out, m)
		}
	}
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *leaseStore) ClaimMessagesOf(ctx context.Context, owner string, now time.Time, lease time.Duration, msgs []Message) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range msgs {
		k := msgKey{m.URL, m.ID}
		if s.free(k, owner, now) {
			s.leases[k] = leaseRec{owner, now.Add(lease)}
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *leaseStore) RenewMessages(_ context.Context, owner string, now time.Time, lease time.Duration) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failRenew {
		return 0, errors.New("database unreachable")
	}
	n := 0
	for k, l := range s.leases {
		if l.owner == owner {
			s.leases[k] = leaseRec{owner, now.Add(lease)}
			n++
		}
	}
	return n, nil
}

// TestNodeNeedsClaimer: Config.Node over a Store that cannot claim, or a
// lease too short for a try, is refused at New.
func TestNodeNeedsClaimer(t *testing.T) {
	_, err := New(NewMemoryStore(), Config{Node: "n1"})
	require.ErrorContains(t, err, "cannot claim messages")
	_, err = New(newLeaseStore(), Config{Node: "n1", Timeout: 10 * time.Second, ClaimLease: 20 * time.Second})
	require.ErrorContains(t, err, "more than twice Config.Timeout")
	_, err = New(newLeaseStore(), Config{Node: string(make([]byte, 201))})
	require.ErrorContains(t, err, "Config.Node")
	e, err := New(newLeaseStore(), Config{Node: "n1", Timeout: 30 * time.Second})
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, e.Config().ClaimLease, "default: 4×Timeout, at least 1 minute")
}

// TestLeaseLapse: a node that cannot renew its leases (its database is
// unreachable) starts no try that could end after they may: with a
// 60 s lease renewed every 15 s and a 15 s timeout, the last try starts
// before 45 s. Meanwhile another node takes one of the messages once the
// lease ended; when renewing works again (105 s) the node forgets what it
// held, claims back only what is still its own, and never tries the
// taken message again.
func TestLeaseLapse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRT(status(503))
		st := newLeaseStore()
		e, err := New(st, Config{Node: "n1", Transport: rt})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- e.Run(context.Background()) }()
		defer func() { e.Close(); require.NoError(t, <-done) }()
		synctest.Wait()
		ctx := context.Background()
		_, err = e.Send(ctx, urlA, []byte(`{}`), "")
		require.NoError(t, err)
		_, err = e.Send(ctx, urlB, []byte(`{}`), "")
		require.NoError(t, err)
		time.Sleep(time.Second) // first tries at 0 s, retried at 1 s
		st.mu.Lock()
		st.failRenew = true
		st.mu.Unlock()

		time.Sleep(69 * time.Second) // t = 70 s: the lease (renewed at 0 s) ended at 60 s
		msgs, _ := st.Messages(ctx)
		var taken []Message
		for _, m := range msgs {
			if m.URL == urlA {
				taken = append(taken, m)
			}
		}
		got, err := st.ClaimMessagesOf(ctx, "n2", time.Now(), time.Hour, taken)
		require.NoError(t, err)
		require.Len(t, got, 1, "node n2 takes urlA's message after n1's lease ended")
		st.mu.Lock()
		st.failRenew = false
		st.mu.Unlock()

		time.Sleep(130 * time.Second) // t = 200 s; renewing works again from the round at 75 s
		for _, s := range rt.times(urlA) {
			require.Less(t, s, 45, "urlA tried at %d s: after n1's lease could end (and after n2 took it)", s)
		}
		var before, after int
		for _, s := range rt.times(urlB) {
			switch {
			case s < 45:
				before++
			case s < 75:
				t.Errorf("urlB tried at %d s, while the lease could have ended", s)
			default:
				after++
			}
		}
		require.NotZero(t, before)
		require.NotZero(t, after, "urlB, still n1's, is tried again once renewing works")
	})
}
