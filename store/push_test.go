package store

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/push/pushtest"
	"github.com/stretchr/testify/require"
)

func openPushDB(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(path, nil)
	require.NoError(t, err)
	return db
}

// TestPushConformance runs the push.Store conformance suite on bbolt (PSH-6).
func TestPushConformance(t *testing.T) {
	pushtest.Run(t, func(t *testing.T) push.Store {
		db := openPushDB(t, filepath.Join(t.TempDir(), "doze.db"))
		t.Cleanup(func() { db.Close() })
		return db.Push()
	})
}

// TestPushSurvivesReopen: subscriptions and queued messages are on disk.
func TestPushSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doze.db")
	ctx := context.Background()
	db := openPushDB(t, path)
	st := db.Push()
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	require.NoError(t, st.PutSubscription(ctx, push.Subscription{ID: "s1", AppID: "a", NotifyType: push.DeviceAdded,
		CallbackURL: "http://203.0.113.7:8080/", Secret: "whsec_c2VjcmV0", Created: t0}))
	require.NoError(t, st.PutMessages(ctx, push.Message{ID: "msg_1", URL: "http://203.0.113.7:8080/", Body: []byte(`{"a":1}`),
		Secret: "k", NotifyType: push.DeviceAdded, SubscriptionID: "s1", Created: t0, Expires: t0.Add(10 * time.Minute)}))
	require.NoError(t, db.Close())

	db = openPushDB(t, path)
	defer db.Close()
	st = db.Push()
	s, err := st.Subscription(ctx, "s1")
	require.NoError(t, err)
	require.Equal(t, push.Secret("whsec_c2VjcmV0"), s.Secret)
	msgs, err := st.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, `{"a":1}`, string(msgs[0].Body))
	require.True(t, msgs[0].Expires.Equal(t0.Add(10*time.Minute)))
	require.NoError(t, db.Check())
}

type countListener struct {
	delivered chan push.Message
	dropped   atomic.Int64
}

func (l *countListener) Delivered(m push.Message)        { l.delivered <- m }
func (l *countListener) Dropped(m push.Message, _ error) { l.dropped.Add(1) }

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// TestPushRestart stops the engine with messages queued on bbolt (the
// receiver answering 503), restarts it on the same file, and checks that
// every message is delivered, each under its original webhook-id (PSH-6).
func TestPushRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doze.db")
	ctx := context.Background()
	var healthy atomic.Bool
	var mu sync.Mutex
	got := map[string]int{}
	tried := make(chan struct{}, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			tried <- struct{}{}
			return
		}
		mu.Lock()
		got[r.Header.Get(push.HeaderID)]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	// Run 1: everything fails; stop with all messages queued.
	db := openPushDB(t, path)
	e, err := push.New(db.Push(), push.Config{Allow: loopback})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	const n = 50
	ids := map[string]bool{}
	for range n {
		id, err := e.Send(ctx, srv.URL+"/cb", []byte(`{"deviceId":"d1","commandId":"c1","result":{"resultCode":"SENT","resultDetail":null}}`), "")
		require.NoError(t, err)
		ids[id] = true
	}
	<-tried // at least one try failed
	require.NoError(t, e.Close())
	require.NoError(t, <-done)
	require.EqualValues(t, 0, e.Stats().Delivered)
	require.NoError(t, db.Close())

	// Run 2: the receiver is back; everything queued goes out.
	healthy.Store(true)
	db = openPushDB(t, path)
	defer db.Close()
	l := &countListener{delivered: make(chan push.Message, n)}
	e, err = push.New(db.Push(), push.Config{Allow: loopback, Listener: l})
	require.NoError(t, err)
	done = make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	for range n {
		select {
		case <-l.delivered:
		case <-time.After(10 * time.Second):
			t.Fatalf("after restart only %d of %d delivered", e.Stats().Delivered, n)
		}
	}
	require.NoError(t, e.Close())
	require.NoError(t, <-done)
	mu.Lock()
	require.Len(t, got, n)
	for id, c := range got {
		require.True(t, ids[id], "webhook-id %s is one of run 1", id)
		require.Equal(t, 1, c, "each delivered once after the restart")
	}
	mu.Unlock()
	msgs, err := db.Push().Messages(ctx)
	require.NoError(t, err)
	require.Empty(t, msgs, "the outbox is empty once everything is delivered")
	require.Zero(t, l.dropped.Load())
}

func FuzzDecodePushMessage(f *testing.F) {
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	for _, m := range []push.Message{
		{},
		{Body: []byte(`{"a":1}`), Secret: "whsec_c2VjcmV0", NotifyType: push.DeviceAdded, SubscriptionID: "s1", Created: t0, Expires: t0.Add(time.Minute)},
	} {
		f.Add(encodeMessage(nil, &m))
	}
	f.Add([]byte{1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		again := encodeMessage(nil, &m)
		m2, err := decodeMessage(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if string(m2.Body) != string(m.Body) || m2.Secret != m.Secret || !m2.Created.Equal(m.Created) || !m2.Expires.Equal(m.Expires) {
			t.Fatalf("round trip changed the message")
		}
	})
}

// pushBench is an engine on its own bbolt file delivering to a local sink
// that answers 200, optionally beside an endpoint that never answers.
type pushBench struct {
	e    *push.Engine
	l    *countListener
	url  string
	body []byte
	hang string
}

func newPushBench(b *testing.B, hanging bool) *pushBench {
	db := openPushDB(b, filepath.Join(b.TempDir(), "doze.db"))
	b.Cleanup(func() { db.Close() })
	return newPushBenchOn(b, db.Push(), hanging)
}

func newPushBenchOn(b *testing.B, st push.Store, hanging bool) *pushBench {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(sink.Close)
	l := &countListener{delivered: make(chan push.Message, 1<<16)}
	// A long Timeout keeps the hanging tries in flight for the whole run.
	e, err := push.New(st, push.Config{Allow: loopback, Listener: l, MaxQueued: 1 << 20, Timeout: time.Hour})
	require.NoError(b, err)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	b.Cleanup(func() {
		e.Close()
		<-done
	})
	pb := &pushBench{e: e, l: l, url: sink.URL + "/cb",
		body: []byte(`{"notifyType":"deviceDataChanged","requestId":null,"deviceId":"d1","gatewayId":"d1","service":{"serviceId":"Battery","serviceType":"Battery","data":{"batteryLevel":66},"eventTime":"20170211T034003Z"}}`)}
	if hanging {
		// It answers its first request, so it has its full concurrency
		// (the worst case), then hangs.
		stop := make(chan struct{})
		var n atomic.Int64
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				w.WriteHeader(http.StatusOK)
				return
			}
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		}))
		b.Cleanup(hang.Close)
		b.Cleanup(func() { close(stop) })
		pb.hang = hang.URL + "/"
		pb.send(b, pb.hang, 1)
		<-l.delivered
		pb.send(b, pb.hang, 1024)
	}
	return pb
}

// send enqueues n messages for url from 256 goroutines, as many devices
// reporting at once would; bbolt's Batch gives them shared commits.
func (pb *pushBench) send(b *testing.B, url string, n int) {
	senders := min(256, n)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for range n / senders {
				if _, err := pb.e.Send(context.Background(), url, pb.body, ""); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// batch enqueues n messages for the sink and waits until all are delivered;
// it returns how long that took.
func (pb *pushBench) batch(b *testing.B, n int) time.Duration {
	start := time.Now()
	go pb.send(b, pb.url, n)
	for range n {
		<-pb.l.delivered
	}
	return time.Since(start)
}

func (pb *pushBench) hangingInFlight() int {
	for _, es := range pb.e.Stats().Endpoints {
		if es.CallbackURL == pb.hang {
			return es.InFlight
		}
	}
	return 0
}

const pushBatch = 4096

// BenchmarkPushDeliver: deliveries per second through the engine with the
// bbolt outbox (fsync on) to a local sink answering 200, messages enqueued
// by 256 goroutines (PSH-6 durability on every enqueue). The memory
// sub-benchmark is the baseline without durability: the ratio of the two
// is what the bbolt outbox costs.
func BenchmarkPushDeliver(b *testing.B) {
	for _, name := range []string{"bbolt", "memory"} {
		b.Run("store="+name, func(b *testing.B) {
			var pb *pushBench
			if name == "bbolt" {
				pb = newPushBench(b, false)
			} else {
				pb = newPushBenchOn(b, push.NewMemoryStore(), false)
			}
			b.ReportAllocs()
			for b.Loop() {
				pb.batch(b, pushBatch)
			}
			b.ReportMetric(float64(b.N*pushBatch)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkPushIsolation compares, in one run, a healthy endpoint's
// delivery rate alone and beside an endpoint that never answers (PSH-4:
// one endpoint's backlog never holds another's up). Each loop times one
// batch on a solo engine and one on an engine whose other endpoint answered
// once and then hangs, holding 16 tries and 1024 queued messages; "ratio"
// is beside/solo.
func BenchmarkPushIsolation(b *testing.B) {
	solo := newPushBench(b, false)
	beside := newPushBench(b, true)
	var tSolo, tBeside time.Duration
	for b.Loop() {
		tSolo += solo.batch(b, pushBatch)
		tBeside += beside.batch(b, pushBatch)
	}
	n := float64(b.N * pushBatch)
	b.ReportMetric(n/tSolo.Seconds(), "solo-deliveries/s")
	b.ReportMetric(n/tBeside.Seconds(), "beside-deliveries/s")
	b.ReportMetric(tSolo.Seconds()/tBeside.Seconds(), "ratio")
	b.ReportMetric(float64(beside.hangingInFlight()), "hanging-inflight")
}
