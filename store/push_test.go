package store

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/push/pushtest"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
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
	select { // at least one try failed
	case <-tried:
	case <-time.After(30 * time.Second):
		t.Fatal("no try reached the receiver within 30 s")
	}
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

// The push crash test (PSH-6): a child process sends pushes from 8
// goroutines and prints each webhook-id after Send returned; the parent
// kills it with SIGKILL, reopens the file, finds every printed message in
// the outbox, then runs an engine on the file and sees each delivered.
const pushCrashEnv = "DOZE_PUSH_CRASH_CHILD"

func TestPushCrashChild(t *testing.T) {
	path, url := os.Getenv(pushCrashEnv), os.Getenv(pushCrashEnv+"_URL")
	if path == "" {
		t.Skip("run by TestPushCrash in a child process")
	}
	db, err := Open(path, nil)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	// No Run: the child only accepts; what it acknowledged must be on disk.
	e, err := push.New(db.Push(), push.Config{Allow: loopback})
	if err != nil {
		fmt.Println("send:", err)
		os.Exit(3)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				id, err := e.Send(context.Background(), url, []byte(`{"deviceId":"d1"}`), "")
				if err != nil {
					fmt.Println("send:", err)
					os.Exit(3)
				}
				out.Lock()
				os.Stdout.WriteString("ok " + id + "\n")
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestPushCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Header.Get(push.HeaderID)]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestPushCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), pushCrashEnv+"="+path, pushCrashEnv+"_URL="+srv.URL+"/cb")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string)
	go func() {
		defer close(lines)
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return // a line cut by the kill has no '\n': not acknowledged
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	var acked []string
	deadline := time.After(60 * time.Second)
read:
	for len(acked) < 200 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("child exited early after %d pushes", len(acked))
			}
			if id, ok := strings.CutPrefix(line, "ok "); ok {
				acked = append(acked, id)
			} else if strings.HasPrefix(line, "open:") || strings.HasPrefix(line, "send:") {
				t.Fatalf("child: %s", line)
			}
		case <-deadline:
			break read
		}
	}
	require.NotEmpty(t, acked, "the child acknowledged nothing in 60 s")
	require.NoError(t, cmd.Process.Kill()) // SIGKILL
	for line := range lines {              // lines written before the kill landed count too
		if id, ok := strings.CutPrefix(line, "ok "); ok {
			acked = append(acked, id)
		}
	}
	var ee *exec.ExitError
	require.ErrorAs(t, cmd.Wait(), &ee, "the child must die by the signal")

	db := openPushDB(t, path)
	defer db.Close()
	require.NoError(t, db.Check())
	msgs, err := db.Push().Messages(context.Background())
	require.NoError(t, err)
	stored := map[string]bool{}
	for _, m := range msgs {
		stored[m.ID] = true
	}
	for _, id := range acked {
		require.True(t, stored[id], "PSH-6: %s was accepted before the kill but is not in the outbox", id)
	}

	// Restart: everything in the outbox is delivered, under its id.
	l := &countListener{delivered: make(chan push.Message, len(msgs))}
	e, err := push.New(db.Push(), push.Config{Allow: loopback, Listener: l})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	for range msgs {
		select {
		case <-l.delivered:
		case <-time.After(30 * time.Second):
			t.Fatalf("after the crash only %d of %d delivered", e.Stats().Delivered, len(msgs))
		}
	}
	require.NoError(t, e.Close())
	require.NoError(t, <-done)
	mu.Lock()
	defer mu.Unlock()
	for _, id := range acked {
		require.Equal(t, 1, got[id], "PSH-6: %s delivered once after the restart", id)
	}
	t.Logf("%d acknowledged before SIGKILL, %d in the outbox, all delivered", len(acked), len(msgs))
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
// reporting at once would; the group commit gives them shared commits.
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
// one endpoint's backlog never holds another's up). Each loop times a
// batch on a solo engine and one on an engine whose other endpoint answered
// once and then hangs, holding 16 tries and 1024 queued messages, in
// alternating slices of 512; "ratio" is beside/solo.
func BenchmarkPushIsolation(b *testing.B) {
	solo := newPushBench(b, false)
	beside := newPushBench(b, true)
	// Solo and beside take turns in slices of 512, so that a change in
	// the machine's load hits both alike.
	var tSolo, tBeside time.Duration
	for b.Loop() {
		for range pushBatch / 512 {
			tSolo += solo.batch(b, 512)
			tBeside += beside.batch(b, 512)
		}
	}
	n := float64(b.N * pushBatch)
	b.ReportMetric(n/tSolo.Seconds(), "solo-deliveries/s")
	b.ReportMetric(n/tBeside.Seconds(), "beside-deliveries/s")
	b.ReportMetric(tSolo.Seconds()/tBeside.Seconds(), "ratio")
	b.ReportMetric(float64(beside.hangingInFlight()), "hanging-inflight")
}

// copyFile copies a testdata file to a temporary one the test may change.
func copyFile(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	require.NoError(t, os.WriteFile(dst, b, 0o600))
	return dst
}

// legacyOutboxLen returns the number of messages in the first layout's
// bucket, or -1 when the bucket is gone.
func legacyOutboxLen(t *testing.T, db *DB) int {
	t.Helper()
	n := -1
	require.NoError(t, db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketPush).Bucket(pushOutboxV1); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	}))
	return n
}

// TestPushOutboxLegacyLayout opens a file written by the first outbox
// layout (keys URL 0x00 id; testdata/push-outbox-v1.db, made by the code
// of commit b47f074): its messages are read, a put of the same URL and id
// replaces rather than doubles, and deleting the last of them removes the
// old bucket.
func TestPushOutboxLegacyLayout(t *testing.T) {
	ctx := context.Background()
	path := copyFile(t, "testdata/push-outbox-v1.db")
	db := openPushDB(t, path)
	defer func() { db.Close() }()
	st := db.Push()
	require.Equal(t, 4, legacyOutboxLen(t, db), "the file holds 4 messages in the first layout")

	s, err := st.Subscription(ctx, "s1")
	require.NoError(t, err)
	require.Equal(t, "http://203.0.113.7:8080/cb", s.CallbackURL)

	long := "http://203.0.113.7:8080/" + strings.Repeat("x", 3000)
	msgs, err := st.Messages(ctx)
	require.NoError(t, err)
	var got []string
	for _, m := range msgs {
		u := m.URL
		if u == long {
			u = "<long>"
		}
		got = append(got, u+" "+m.ID+" "+string(m.Body))
	}
	require.Equal(t, []string{
		"http://198.51.100.9:9000/cmd msg_0003 {\"n\":3}",
		"http://203.0.113.7:8080/cb msg_0001 {\"n\":1}",
		"http://203.0.113.7:8080/cb msg_0002 {\"n\":2}",
		"<long> msg_0004 {\"n\":4}",
	}, got, "Messages of the old layout, ordered by URL then id")
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	require.Equal(t, push.Secret("whsec_c2VjcmV0"), msgs[1].Secret)
	require.Equal(t, "s1", msgs[1].SubscriptionID)
	require.True(t, msgs[1].Expires.Equal(t0.Add(10*time.Minute)), "Expires %v", msgs[1].Expires)

	// Replacing msg_0001 and adding msg_0005 in the new layout.
	m1 := msgs[1]
	m1.Body = []byte(`{"n":"1b"}`)
	m5 := push.Message{ID: "msg_0005", URL: m1.URL, Body: []byte(`{"n":5}`), Created: t0, Expires: t0.Add(time.Hour)}
	require.NoError(t, st.PutMessages(ctx, m1, m5))
	require.Equal(t, 3, legacyOutboxLen(t, db), "the replaced message left the old layout")
	msgs, err = st.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, msgs, 5, "a put of a stored URL and id replaces it")
	require.Equal(t, `{"n":"1b"}`, string(msgs[1].Body))

	// Reopen: both layouts are still read.
	require.NoError(t, db.Close())
	db = openPushDB(t, path)
	st = db.Push()
	msgs, err = st.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, msgs, 5)
	require.Equal(t, long, msgs[4].URL)

	require.NoError(t, st.DeleteMessages(ctx, msgs...))
	msgs, err = st.Messages(ctx)
	require.NoError(t, err)
	require.Empty(t, msgs)
	require.Equal(t, -1, legacyOutboxLen(t, db), "the old bucket is removed with its last message")
	require.NoError(t, db.bolt.View(func(tx *bolt.Tx) error {
		require.Zero(t, tx.Bucket(bucketPush).Bucket(pushEndpoints).Stats().KeyN, "endpoint table empty with the outbox")
		return nil
	}))
	require.NoError(t, db.Check())
}

// TestPushEngineOnLegacyFile runs an engine on the old-layout file: the
// messages it loads (their keep time ended in 2026-11) are dropped as
// expired, each reported, and leave the file.
func TestPushEngineOnLegacyFile(t *testing.T) {
	ctx := context.Background()
	db := openPushDB(t, copyFile(t, "testdata/push-outbox-v1.db"))
	defer db.Close()
	l := &countListener{delivered: make(chan push.Message, 10)}
	e, err := push.New(db.Push(), push.Config{Listener: l, Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		t.Error("an expired message was tried")
		return nil, fmt.Errorf("not expected")
	})})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for l.dropped.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, e.Close())
	require.NoError(t, <-done)
	require.EqualValues(t, 4, l.dropped.Load(), "every loaded message reported dropped")
	require.EqualValues(t, 4, e.Stats().Dropped)
	msgs, err := db.Push().Messages(ctx)
	require.NoError(t, err)
	require.Empty(t, msgs, "dropped messages leave both layouts")
	require.Equal(t, -1, legacyOutboxLen(t, db))
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestPushOutboxLongURL: the outbox key does not grow with the URL. A
// 900 KB URL (far over bbolt's 32 KiB key limit, and over what the engine
// accepts) is stored, read and deleted like any other (SEC-3, SEC-6).
func TestPushOutboxLongURL(t *testing.T) {
	ctx := context.Background()
	db := openPushDB(t, filepath.Join(t.TempDir(), "doze.db"))
	defer db.Close()
	st := db.Push()
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	long := "http://203.0.113.7:8080/" + strings.Repeat("a", 900<<10)
	m := push.Message{ID: "msg_1", URL: long, Body: []byte(`{}`), Created: t0, Expires: t0.Add(time.Minute)}
	require.NoError(t, st.PutMessages(ctx, m))
	msgs, err := st.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, long, msgs[0].URL)
	require.NoError(t, st.DeleteMessages(ctx, m))
	msgs, err = st.Messages(ctx)
	require.NoError(t, err)
	require.Empty(t, msgs)

	err = st.PutMessages(ctx, push.Message{ID: strings.Repeat("i", maxMessageID+1), URL: long})
	require.ErrorContains(t, err, "push message id of 1025 bytes; allowed 1–1024")
	require.NoError(t, db.Check())
}

// TestPushLongURLEndToEnd is finding 6 of issue 14 on bbolt: a 900 KB
// callback URL is refused at subscription (SEC-3), one of the longest
// allowed length is stored and delivered, and when the file cannot take a
// push the caller gets the error and it is counted (SEC-6).
func TestPushLongURLEndToEnd(t *testing.T) {
	ctx := context.Background()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	db := openPushDB(t, filepath.Join(t.TempDir(), "doze.db"))
	defer db.Close()
	e, err := push.New(db.Push(), push.Config{Allow: loopback})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		require.NoError(t, e.Close())
		require.NoError(t, <-done)
	}()

	_, err = e.Subscribe(ctx, push.Subscription{AppID: "a", NotifyType: push.DeviceDeleted,
		CallbackURL: srv.URL + "/" + strings.Repeat("x", 900<<10)})
	require.ErrorIs(t, err, push.ErrURLTooLong)

	path := "/" + strings.Repeat("x", push.MaxURLLength-len(srv.URL)-1)
	_, err = e.Subscribe(ctx, push.Subscription{AppID: "a", NotifyType: push.DeviceDeleted, CallbackURL: srv.URL + path})
	require.NoError(t, err)
	n, err := e.Publish(ctx, "a", push.DeviceDeletedBody{DeviceID: "d1"})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	select {
	case p := <-got:
		require.Equal(t, path, p)
	case <-time.After(10 * time.Second):
		t.Fatal("the push to a 2,048-byte URL was not delivered in 10 s")
	}

	require.NoError(t, db.Close()) // the file goes away under the engine
	_, err = e.Publish(ctx, "a", push.DeviceDeletedBody{DeviceID: "d1"})
	require.ErrorIs(t, err, ErrClosed, "Publish on a closed file")
	require.EqualValues(t, 1, e.Stats().Refused, "SEC-6: counted")
}
