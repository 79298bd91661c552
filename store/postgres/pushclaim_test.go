package postgres

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/push"
	"github.com/stretchr/testify/require"
)

// receiver is an application server counting the pushes it answered 2xx,
// by webhook-id; while holding it answers nothing until the request ends.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	hold    bool
	got     map[string]int
	at      []time.Time // when each 2xx answer went out
	waiting int         // requests held so far
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body) // the server notices a client gone only after the body
		r.mu.Lock()
		if r.hold {
			r.waiting++
			r.mu.Unlock()
			<-req.Context().Done()
			return
		}
		r.got[req.Header.Get(push.HeaderID)]++
		r.at = append(r.at, time.Now())
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) counts() (distinct, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.got {
		total += n
	}
	return len(r.got), total
}

// claimingEngine starts a push engine of node on db, stopped when the
// test ends (or earlier by the returned stop, as a node killed mid-work).
func claimingEngine(t *testing.T, db *DB, node string, lease time.Duration) (*push.Engine, func()) {
	t.Helper()
	e, err := push.New(db.Push(), push.Config{Node: node, ClaimLease: lease, Timeout: time.Second,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, RetrySchedule: []time.Duration{200 * time.Millisecond}})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			require.NoError(t, e.Close())
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return e, stop
}

// TestPushTwoNodesDeliverOnce (CLU-1): two push engines (two nodes) on one
// schema start together over an outbox of 300 messages, and each also
// sends 50 while both run: the application server gets every one of the
// 400 exactly once. (Without claiming, each engine loads the whole outbox
// at start and the 300 arrive twice.)
func TestPushTwoNodesDeliverOnce(t *testing.T) {
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	ctx := context.Background()
	rcv := newReceiver(t)
	now := time.Now()
	var msgs []push.Message
	for i := range 300 {
		msgs = append(msgs, push.Message{ID: fmt.Sprintf("msg_%04d", i), URL: fmt.Sprintf("%s/cb%d", rcv.srv.URL, i%3),
			Body: []byte(`{}`), Created: now, Expires: now.Add(10 * time.Minute)})
	}
	require.NoError(t, a.Push().PutMessages(ctx, msgs...))

	ea, _ := claimingEngine(t, a, "node-a", 4*time.Second)
	eb, _ := claimingEngine(t, b, "node-b", 4*time.Second)
	var wg sync.WaitGroup
	for _, e := range []*push.Engine{ea, eb} {
		wg.Go(func() {
			for i := range 50 {
				if _, err := e.Send(ctx, fmt.Sprintf("%s/cb%d", rcv.srv.URL, i%3), []byte(`{"n":1}`), ""); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool { d, _ := rcv.counts(); return d == 400 }, 30*time.Second, 20*time.Millisecond,
		"every message delivered")
	require.Eventually(t, func() bool {
		left, err := a.Push().Messages(ctx)
		return err == nil && len(left) == 0
	}, 10*time.Second, 20*time.Millisecond, "the outbox empties")
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for id, n := range rcv.got {
		if n != 1 {
			t.Errorf("%s delivered %d times, want once", id, n)
		}
	}
	sa, sb := ea.Stats(), eb.Stats()
	require.EqualValues(t, 400, sa.Delivered+sb.Delivered)
	require.NotZero(t, sa.Delivered, "node a delivered its share")
	require.NotZero(t, sb.Delivered, "node b delivered its share")
}

// TestPushTakeoverAfterLease (CLU-1): node a accepts 50 pushes and dies
// (Close) while its tries hang; node b, running, leaves them alone while
// a's leases last — a restarted or second node does not re-deliver
// another live node's pushes — and delivers each exactly once after they
// end.
func TestPushTakeoverAfterLease(t *testing.T) {
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	ctx := context.Background()
	rcv := newReceiver(t)
	rcv.hold = true
	const lease = 3 * time.Second
	ea, killA := claimingEngine(t, a, "node-a", lease)
	for i := range 50 {
		_, err := ea.Send(ctx, fmt.Sprintf("%s/cb%d", rcv.srv.URL, i%2), []byte(`{}`), "")
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { rcv.mu.Lock(); defer rcv.mu.Unlock(); return rcv.waiting > 0 },
		10*time.Second, 10*time.Millisecond, "node a is delivering")
	killA()
	killed := time.Now()
	rcv.mu.Lock()
	rcv.hold = false
	rcv.mu.Unlock()

	eb, _ := claimingEngine(t, b, "node-b", lease)
	require.Eventually(t, func() bool { d, _ := rcv.counts(); return d == 50 }, 4*lease, 20*time.Millisecond,
		"node b delivers node a's messages once its leases end")
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	// a renewed its leases at the latest lease/4 before it died, so they
	// ended no earlier than killed + 3/4 lease.
	for _, at := range rcv.at {
		require.GreaterOrEqual(t, at.Sub(killed), lease/2, "delivered while node a's lease still held")
	}
	for id, n := range rcv.got {
		require.Equal(t, 1, n, "%s delivered more than once", id)
	}
	require.EqualValues(t, 50, eb.Stats().Delivered)
}
