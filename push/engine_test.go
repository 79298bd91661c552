package push

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var allowLoopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// received is one request a sink got.
type received struct {
	path   string
	header http.Header
	body   []byte
}

// sink is an httptest server that records requests and answers with
// answer(n), n counting requests from 1.
type sink struct {
	srv  *httptest.Server
	n    atomic.Int64
	reqs chan received
}

func newSink(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int64)) *sink {
	t.Helper()
	s := &sink{reqs: make(chan received, 1000)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := s.n.Add(1)
		s.reqs <- received{path: r.URL.Path, header: r.Header.Clone(), body: body}
		if answer == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		answer(w, r, n)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// newHangingSink is a sink that never answers; its requests end when the
// engine gives up on them or the test ends.
func newHangingSink(t *testing.T) *sink {
	stop := make(chan struct{})
	s := newSink(t, func(_ http.ResponseWriter, r *http.Request, _ int64) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	t.Cleanup(func() { close(stop) }) // runs before the server's Close
	return s
}

func (s *sink) url(path string) string { return s.srv.URL + path }

// next waits for the next request; the limit only guards against a hung test.
func (s *sink) next(t *testing.T) received {
	t.Helper()
	select {
	case r := <-s.reqs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("sink %s got no request within 10s (after %d)", s.srv.URL, s.n.Load())
		return received{}
	}
}

// recorder is a Listener that records drops, deliveries and endpoint changes.
type recorder struct {
	mu        sync.Mutex
	drops     []drop
	changes   []EndpointState
	dropped   chan drop
	delivered chan Message
}

func newRecorder() *recorder {
	return &recorder{dropped: make(chan drop, 1000), delivered: make(chan Message, 100000)}
}

func (r *recorder) Delivered(m Message) { r.delivered <- m }

func (r *recorder) getDrops() []drop {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]drop(nil), r.drops...)
}

func (r *recorder) getChanges() []EndpointState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]EndpointState(nil), r.changes...)
}

// waitDelivered waits until n messages were delivered.
func (r *recorder) waitDelivered(t *testing.T, n int) []Message {
	t.Helper()
	var out []Message
	for len(out) < n {
		select {
		case m := <-r.delivered:
			out = append(out, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d messages delivered within 10s", len(out), n)
		}
	}
	return out
}

func (r *recorder) Dropped(m Message, err error) {
	r.mu.Lock()
	r.drops = append(r.drops, drop{msg: m, err: err})
	r.mu.Unlock()
	r.dropped <- drop{msg: m, err: err}
}

func (r *recorder) EndpointChanged(s EndpointState) {
	r.mu.Lock()
	r.changes = append(r.changes, s)
	r.mu.Unlock()
}

func (r *recorder) nextDrop(t *testing.T) drop {
	t.Helper()
	select {
	case d := <-r.dropped:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no message dropped within 10s")
		return drop{}
	}
}

// run starts e.Run, waits until it has loaded the outbox, and stops it
// when the test ends.
func run(t *testing.T, e *Engine) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	t.Cleanup(func() {
		require.NoError(t, e.Close())
		require.NoError(t, <-done)
	})
	waitLoaded(e)
}

// waitLoaded returns once Run has loaded the outbox.
func waitLoaded(e *Engine) {
	for {
		e.mu.Lock()
		loaded := e.loaded
		e.mu.Unlock()
		if loaded {
			return
		}
		runtime.Gosched()
	}
}

func subscribe(t *testing.T, e *Engine, app string, nt NotifyType, url string, secret Secret) Subscription {
	t.Helper()
	s, err := e.Subscribe(context.Background(), Subscription{AppID: app, NotifyType: nt, CallbackURL: url, Secret: secret})
	require.NoError(t, err)
	return s
}

var deleted = DeviceDeletedBody{DeviceID: "d1", GatewayID: "d1"}

// publishOne runs an engine with cfg (loopback allowed) whose only
// subscription sends deviceDeleted to s's "/", and publishes one.
func publishOne(t *testing.T, s *sink, cfg Config) (*Engine, *MemoryStore) {
	t.Helper()
	cfg.Allow = allowLoopback
	e, st := newTestEngine(t, cfg)
	subscribe(t, e, "", DeviceDeleted, s.url("/"), "")
	run(t, e)
	_, err := e.Publish(context.Background(), "", deleted)
	require.NoError(t, err)
	return e, st
}

// TestDeliverSigned: a 2xx answer delivers (PSH-4), the push carries a
// webhook-id and, with a secret, a Standard Webhooks signature (PSH-5, PSH-7).
func TestDeliverSigned(t *testing.T) {
	s := newSink(t, nil)
	rec := newRecorder()
	e, st := newTestEngine(t, Config{Allow: allowLoopback, Listener: rec})
	secret := Secret("whsec_c2VjcmV0LWtleS1ieXRlcw==")
	subscribe(t, e, "app1", DeviceDeleted, s.url("/cb"), secret)
	run(t, e)
	n, err := e.Publish(context.Background(), "app1", deleted)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	r := s.next(t)
	require.Equal(t, "/cb", r.path)
	require.JSONEq(t, `{"notifyType":"deviceDeleted","deviceId":"d1","gatewayId":"d1"}`, string(r.body))
	require.True(t, strings.HasPrefix(string(r.body), `{"notifyType":`), "notifyType first")
	require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))
	require.Regexp(t, `^msg_[0-9a-f]{32}$`, r.header.Get(HeaderID))
	require.NoError(t, Verify(secret, r.header, r.body, time.Now(), time.Minute))
	rec.waitDelivered(t, 1)
	require.NoError(t, e.Close())
	msgs, err := st.Messages(context.Background())
	require.NoError(t, err)
	require.Empty(t, msgs, "a delivered message leaves the outbox")
	stats := e.Stats()
	require.EqualValues(t, 1, stats.Delivered)
	require.EqualValues(t, 1, stats.Enqueued)
	ep, ok := e.Endpoint(s.url("/cb"))
	require.True(t, ok)
	require.Equal(t, StateValid, ep.State)
	require.False(t, ep.LastSuccess.IsZero())
}

// TestUnsignedWithoutSecret: no secret, no signature headers; still a webhook-id.
func TestUnsignedWithoutSecret(t *testing.T) {
	s := newSink(t, nil)
	publishOne(t, s, Config{})
	r := s.next(t)
	require.NotEmpty(t, r.header.Get(HeaderID))
	require.Empty(t, r.header.Get(HeaderSignature))
	require.Empty(t, r.header.Get(HeaderTimestamp))
}

// TestPublishReport: a two-service report gives two deviceDataChanged pushes
// and one deviceDatasChanged push to a subscriber of both (PSH-3, §5.16).
func TestPublishReport(t *testing.T) {
	s := newSink(t, nil)
	e, _ := newTestEngine(t, Config{Allow: allowLoopback})
	subscribe(t, e, "app1", DeviceDataChanged, s.url("/one"), "")
	subscribe(t, e, "app1", DeviceDatasChanged, s.url("/all"), "")
	subscribe(t, e, "app2", DeviceDatasChanged, s.url("/other-app"), "")
	run(t, e)
	n, err := e.PublishReport(context.Background(), "app1", Report{DeviceID: "d1", GatewayID: "d1", Services: []ServiceData{battery, connectivity}})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	got := map[string][]string{}
	for range 3 {
		r := s.next(t)
		got[r.path] = append(got[r.path], string(r.body))
	}
	require.Len(t, got["/one"], 2)
	require.Len(t, got["/all"], 1)
	require.Empty(t, got["/other-app"])
	var services []string
	for _, b := range got["/one"] {
		var v DeviceDataChangedBody
		require.NoError(t, json.Unmarshal([]byte(b), &v))
		services = append(services, v.Service.ServiceID)
	}
	require.ElementsMatch(t, []string{"Battery", "Connectivity"}, services)
	var all DeviceDatasChangedBody
	require.NoError(t, json.Unmarshal([]byte(got["/all"][0]), &all))
	require.Len(t, all.Services, 2)
}

// TestRetryOn503SameID: 503 is retried, with the same webhook-id (PSH-4, PSH-5).
func TestRetryOn503SameID(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	rec := newRecorder()
	e, _ := publishOne(t, s, Config{RetrySchedule: []time.Duration{time.Millisecond}, Listener: rec})
	first, second := s.next(t), s.next(t)
	require.Equal(t, first.header.Get(HeaderID), second.header.Get(HeaderID), "PSH-5: the same id on every try")
	require.Equal(t, first.body, second.body)
	rec.waitDelivered(t, 1)
	require.NoError(t, e.Close())
	st := e.Stats()
	require.EqualValues(t, 1, st.Retried)
	require.EqualValues(t, 1, st.Delivered)
	require.Empty(t, rec.getDrops())
}

// TestFinalAnswers: other 4xx/5xx answers are final: one try, reported (PSH-4).
func TestFinalAnswers(t *testing.T) {
	for _, code := range []int{400, 404, 410, 500, 505, 302} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			s := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
				if code == 302 {
					w.Header().Set("Location", "http://169.254.169.254:80/")
				}
				w.WriteHeader(code)
			})
			rec := newRecorder()
			e, st := publishOne(t, s, Config{RetrySchedule: []time.Duration{time.Millisecond}, Listener: rec})
			d := rec.nextDrop(t)
			require.ErrorIs(t, d.err, ErrRejected)
			var se *StatusError
			require.True(t, errors.As(d.err, &se))
			require.Equal(t, code, se.Code)
			require.NoError(t, e.Close())
			require.EqualValues(t, 1, s.n.Load(), "a final answer is not retried (nor a redirect followed)")
			require.EqualValues(t, 1, e.Stats().Rejected)
			msgs, err := st.Messages(context.Background())
			require.NoError(t, err)
			require.Empty(t, msgs)
		})
	}
}

// TestRetryableStatuses: 501–504 are failures that are retried (§5.15).
func TestRetryableStatuses(t *testing.T) {
	for code := 100; code < 600; code++ {
		require.Equal(t, code >= 501 && code <= 504, Retryable(code), "Retryable(%d)", code)
	}
}

// TestHangTimesOut: an endpoint that never answers fails after Timeout and
// the message is tried again (PSH-4).
func TestHangTimesOut(t *testing.T) {
	release := make(chan struct{})
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	defer close(release)
	rec := newRecorder()
	e, _ := publishOne(t, s, Config{Timeout: 200 * time.Millisecond, RetrySchedule: []time.Duration{time.Millisecond}, Listener: rec})
	first, second := s.next(t), s.next(t)
	require.Equal(t, first.header.Get(HeaderID), second.header.Get(HeaderID))
	rec.waitDelivered(t, 1)
	require.NoError(t, e.Close())
	st := e.Stats()
	require.GreaterOrEqual(t, st.Retried, uint64(1), "the hung try failed and was retried")
	require.EqualValues(t, 1, st.Delivered)
	require.Contains(t, st.Endpoints[0].LastError, "deadline exceeded")
}

// TestConnectionReset: a reset connection is a failure that is retried (PSH-4).
func TestConnectionReset(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
		if n == 1 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0) // RST instead of FIN
				}
				conn.Close()
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	rec := newRecorder()
	e, _ := publishOne(t, s, Config{RetrySchedule: []time.Duration{time.Millisecond}, Listener: rec})
	s.next(t)
	s.next(t)
	rec.waitDelivered(t, 1)
	require.NoError(t, e.Close())
	st := e.Stats()
	require.EqualValues(t, 1, st.Delivered, "204 is a 2xx")
	require.GreaterOrEqual(t, st.Retried, uint64(1))
}

// TestSlowAnswer: an answer slower than usual but within Timeout delivers once.
func TestSlowAnswer(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		time.Sleep(150 * time.Millisecond) // a slow application server
		w.WriteHeader(http.StatusOK)
	})
	rec := newRecorder()
	e, _ := publishOne(t, s, Config{Timeout: 5 * time.Second, Listener: rec})
	s.next(t)
	rec.waitDelivered(t, 1)
	require.NoError(t, e.Close())
	require.EqualValues(t, 1, e.Stats().Delivered)
	require.EqualValues(t, 0, e.Stats().Retried)
	require.EqualValues(t, 1, s.n.Load())
}

// TestHangingEndpointDoesNotDelayHealthy: with one endpoint hanging after
// it answered once (the worst case: it has its full concurrency), every
// message to a healthy one is delivered well before the hanging tries time
// out (PSH-4 round-robin).
func TestHangingEndpointDoesNotDelayHealthy(t *testing.T) {
	stop := make(chan struct{})
	hang := newSink(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			w.WriteHeader(http.StatusOK)
			return
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	defer close(stop)
	good := newSink(t, nil)
	rec := newRecorder()
	e, _ := newTestEngine(t, Config{Allow: allowLoopback, Timeout: time.Minute, EndpointConcurrency: 4, Workers: 8, Listener: rec})
	ctx := context.Background()
	run(t, e)
	_, err := e.Send(ctx, hang.url("/"), []byte(`{}`), "")
	require.NoError(t, err)
	hang.next(t)
	rec.waitDelivered(t, 1) // it answered once: full concurrency from now on
	for range 50 {
		_, err := e.Send(ctx, hang.url("/"), []byte(`{}`), "")
		require.NoError(t, err)
	}
	for range 4 {
		hang.next(t) // four tries hang: the endpoint's concurrency
	}
	for range 100 {
		_, err := e.Send(ctx, good.url("/"), []byte(`{}`), "")
		require.NoError(t, err)
	}
	for range 100 {
		good.next(t)
	}
	hs, _ := e.Endpoint(hang.url("/"))
	require.Equal(t, 50, hs.Queued, "the hanging endpoint keeps its messages")
	for _, es := range e.Stats().Endpoints {
		if es.CallbackURL == hang.url("/") {
			require.Equal(t, 4, es.InFlight, "bounded per-endpoint concurrency")
		}
	}
}

// TestNewEndpointSlowStart: a URL that has not answered yet gets one try at
// a time, so a new URL that hangs holds a single worker.
func TestNewEndpointSlowStart(t *testing.T) {
	hang := newHangingSink(t)
	good := newSink(t, nil)
	e, _ := newTestEngine(t, Config{Allow: allowLoopback, Timeout: time.Minute, Workers: 2})
	ctx := context.Background()
	run(t, e)
	for range 20 {
		_, err := e.Send(ctx, hang.url("/"), []byte(`{}`), "")
		require.NoError(t, err)
	}
	hang.next(t)
	for range 20 {
		_, err := e.Send(ctx, good.url("/"), []byte(`{}`), "")
		require.NoError(t, err)
	}
	for range 20 {
		good.next(t) // served by the second worker
	}
	require.EqualValues(t, 1, hang.n.Load(), "one try in flight to the hanging URL")
}

// TestDialGuardRebinding: a name that resolved to a public address when
// subscribing but to loopback when dialing is refused at dial time, not
// retried, and reported (PSH-2).
func TestDialGuardRebinding(t *testing.T) {
	s := newSink(t, nil)
	port := s.srv.Listener.Addr().(*net.TCPAddr).Port
	rec := newRecorder()
	e, _ := newTestEngine(t, Config{Resolver: fakeResolver{"localhost": "203.0.113.9"}, Listener: rec})
	url := "http://localhost:" + itoa(port) + "/cb"
	subscribe(t, e, "", DeviceDeleted, url, "")
	run(t, e)
	_, err := e.Publish(context.Background(), "", deleted)
	require.NoError(t, err)
	d := rec.nextDrop(t)
	require.ErrorIs(t, d.err, ErrAddressDenied)
	require.EqualValues(t, 0, s.n.Load(), "nothing reached the loopback server")
}

// TestSend: a body goes to a URL without a subscription (CMD-6 callbacks).
func TestSend(t *testing.T) {
	s := newSink(t, nil)
	e, _ := newTestEngine(t, Config{Allow: allowLoopback})
	run(t, e)
	// A command's callback body (command.Notification) as the platform
	// encodes it; push passes any body through unchanged.
	body := []byte(`{"deviceId":"d1","commandId":"c1","result":{"resultCode":"DELIVERED","resultDetail":null}}`)
	id, err := e.Send(context.Background(), s.url("/cmd"), body, "raw-key")
	require.NoError(t, err)
	r := s.next(t)
	require.Equal(t, id, r.header.Get(HeaderID))
	require.Equal(t, string(body), string(r.body))
	require.NoError(t, Verify("raw-key", r.header, r.body, time.Now(), time.Minute))
}

func TestSendRefused(t *testing.T) {
	e, _ := newTestEngine(t, Config{})
	ctx := context.Background()
	_, err := e.Send(ctx, "http://127.0.0.1:8080/", nil, "")
	require.ErrorIs(t, err, ErrAddressDenied, "loopback without the allow-list")
	_, err = e.Send(ctx, "http://203.0.113.7:8080", nil, "")
	require.ErrorIs(t, err, ErrURLNoPath)
	_, err = e.Send(ctx, "http://203.0.113.7:8080/", nil, "whsec_***")
	require.ErrorIs(t, err, ErrSecret)
	require.NoError(t, e.Close())
	_, err = e.Send(ctx, "http://203.0.113.7:8080/", nil, "")
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, e.Run(ctx), ErrClosed)
}

// TestRunTwice: a second Run returns at once with an error wrapping
// ErrClosed that says "Run called twice"; the first Run goes on and
// returns nil at Close (run's cleanup checks that).
func TestRunTwice(t *testing.T) {
	s := newSink(t, nil)
	e, _ := newTestEngine(t, Config{Allow: allowLoopback})
	run(t, e)
	err := e.Run(context.Background())
	require.ErrorIs(t, err, ErrClosed)
	require.EqualError(t, err, "push: engine closed: push.Engine: Run called twice")
	_, err = e.Send(context.Background(), s.url("/still"), []byte(`{}`), "")
	require.NoError(t, err)
	require.Equal(t, "{}", string(s.next(t).body), "the first Run still delivers")
}

// TestEnqueueBeforeRun: messages accepted before Run wait in the Store and
// go out once Run starts (PSH-6).
func TestEnqueueBeforeRun(t *testing.T) {
	s := newSink(t, nil)
	e, st := newTestEngine(t, Config{Allow: allowLoopback})
	subscribe(t, e, "", DeviceDeleted, s.url("/"), "")
	for range 3 {
		_, err := e.Publish(context.Background(), "", deleted)
		require.NoError(t, err)
	}
	msgs, err := st.Messages(context.Background())
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	run(t, e)
	ids := map[string]bool{}
	for range 3 {
		ids[s.next(t).header.Get(HeaderID)] = true
	}
	require.Len(t, ids, 3)
}

func TestQueueFull(t *testing.T) {
	hang := newHangingSink(t)
	e, _ := newTestEngine(t, Config{Allow: allowLoopback, MaxQueued: 3})
	run(t, e)
	ctx := context.Background()
	for range 3 {
		_, err := e.Send(ctx, hang.url("/"), []byte(`{}`), "")
		require.NoError(t, err)
	}
	_, err := e.Send(ctx, hang.url("/"), []byte(`{}`), "")
	require.ErrorIs(t, err, ErrQueueFull)
	require.ErrorContains(t, err, "MaxQueued")
}

// TestEndpointStateJSON: the shape of GET /doze/v1/endpoints (docs/api.md).
func TestEndpointStateJSON(t *testing.T) {
	s := EndpointState{CallbackURL: "http://203.0.113.7:8080/", State: StateInvalid, Failures: 10, Queued: 3, LastError: "HTTP 503"}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	require.Equal(t, `{"callbackUrl":"http://203.0.113.7:8080/","state":"invalid","failures":10,"queued":3,"lastError":"HTTP 503","lastSuccess":null}`, string(b))
	s.LastSuccess = time.Date(2026, 11, 25, 8, 0, 1, 0, time.UTC)
	b, err = json.Marshal(s)
	require.NoError(t, err)
	require.Contains(t, string(b), `"lastSuccess":"20261125T080001Z"`)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestHTTPS: https callback URLs work through the guarded dialer, with the
// application's CA in Config.TLSClientConfig (§5.9).
func TestHTTPS(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(HeaderID)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig
	rec := newRecorder()
	e, _ := newTestEngine(t, Config{Allow: allowLoopback, TLSClientConfig: tlsCfg, Listener: rec})
	run(t, e)
	id, err := e.Send(context.Background(), srv.URL+"/secure", []byte(`{}`), "")
	require.NoError(t, err)
	require.Equal(t, id, <-got)
	rec.waitDelivered(t, 1)
}

// TestNoLossUnderClose: senders race Close; every accepted message is
// either delivered or still in the Store afterwards, never both, never
// neither (PSH-6).
func TestNoLossUnderClose(t *testing.T) {
	s := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int64) { w.WriteHeader(http.StatusOK) })
	stopDrain := make(chan struct{})
	defer close(stopDrain)
	go func() { // drain the sink's record channel
		for {
			select {
			case <-s.reqs:
			case <-stopDrain:
				return
			}
		}
	}()
	rec := newRecorder()
	e, st := newTestEngine(t, Config{Allow: allowLoopback, Listener: rec})
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	waitLoaded(e)
	var mu sync.Mutex
	accepted := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				id, err := e.Send(context.Background(), s.url("/"), []byte(`{}`), "")
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				accepted[id] = true
				n := len(accepted)
				mu.Unlock()
				if n == 1000 {
					go e.Close()
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, e.Close())
	require.NoError(t, <-done)
	close(rec.delivered)
	delivered := map[string]bool{}
	for m := range rec.delivered {
		delivered[m.ID] = true
	}
	msgs, err := st.Messages(context.Background())
	require.NoError(t, err)
	stored := map[string]bool{}
	for _, m := range msgs {
		stored[m.ID] = true
		require.False(t, delivered[m.ID], "%s delivered and still stored", m.ID)
	}
	for id := range accepted {
		require.True(t, delivered[id] || stored[id], "%s accepted but neither delivered nor stored", id)
	}
	require.GreaterOrEqual(t, len(accepted), 1000)
	t.Logf("accepted %d, delivered %d, left in store %d", len(accepted), len(delivered), len(stored))
}

// TestPickTakesTurns checks the dispatcher's order (PSH-4 round-robin):
// every endpoint with messages gets one turn per round, also when an
// endpoint runs empty and leaves the ring.
func TestPickTakesTurns(t *testing.T) {
	e, err := New(NewMemoryStore(), Config{})
	require.NoError(t, err)
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, q := range []struct {
		url string
		n   int
	}{{"X", 1}, {"A", 2}, {"B", 3}, {"C", 3}} {
		for range q.n {
			m := e.newMessage(now, q.url, nil, "", "", "", "")
			e.add(&m)
		}
		e.eps[q.url].lastSuccess = now // answered before: no slow start
	}
	var order []string
	for {
		j, _, drops := e.pick(now)
		require.Empty(t, drops)
		if j.msg == nil {
			break
		}
		order = append(order, j.ep.url)
	}
	require.Equal(t, []string{"X", "A", "B", "C", "A", "B", "C", "B", "C"}, order)
}

// TestAdmit: messages a caller stores itself (ReportMessages, then Admit
// with the caller's write) are queued and delivered once the write
// succeeds; a failed write queues nothing, counts them as refused and
// returns the write's error; write runs once even with no messages.
func TestAdmit(t *testing.T) {
	ctx := context.Background()
	s := newSink(t, nil)
	e, st := newTestEngine(t, Config{Allow: allowLoopback})
	subscribe(t, e, "app1", DeviceDataChanged, s.url("/one"), "")
	run(t, e)
	rep := Report{DeviceID: "d1", GatewayID: "d1", Services: []ServiceData{battery, connectivity}}

	msgs, err := e.ReportMessages(ctx, "app1", rep)
	require.NoError(t, err)
	require.Len(t, msgs, 2, "one deviceDataChanged per service")
	broken := errors.New("disk full")
	writes := 0
	err = e.Admit(ctx, msgs, func() error { writes++; return broken })
	require.ErrorIs(t, err, broken)
	require.Equal(t, 1, writes)
	require.EqualValues(t, 2, e.Stats().Refused, "messages of a failed write are refused")
	require.EqualValues(t, 0, e.Stats().Enqueued)

	writes = 0
	require.NoError(t, e.Admit(ctx, nil, func() error { writes++; return nil }))
	require.Equal(t, 1, writes, "write runs for no messages too (the caller's other effects)")

	require.NoError(t, e.Admit(ctx, msgs, func() error { return st.PutMessages(ctx, msgs...) }))
	ids := map[string]bool{}
	for range 2 {
		r := s.next(t)
		ids[r.header.Get(HeaderID)] = true
	}
	require.Equal(t, map[string]bool{msgs[0].ID: true, msgs[1].ID: true}, ids, "the admitted messages went out under their ids")
	require.NoError(t, e.Close())
	require.EqualValues(t, 2, s.n.Load(), "only the admitted messages went out")
	require.EqualValues(t, 2, e.Stats().Enqueued)
}

// TestSubscriberCache: a report's subscribers are read from the Store once
// per Config.SubscriptionCache, and a subscription made or removed through
// the engine shows in the very next report.
func TestSubscriberCache(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{MemoryStore: NewMemoryStore()}
	e, err := New(st, Config{Allow: allowLoopback, SubscriptionCache: time.Hour})
	require.NoError(t, err)
	defer e.Close()
	rep := Report{DeviceID: "d1", GatewayID: "d1", Services: []ServiceData{battery}}
	subscribe(t, e, "app1", DeviceDataChanged, "http://127.0.0.1:9/one", "")
	before := st.reads.Load()
	for range 5 {
		msgs, err := e.ReportMessages(ctx, "app1", rep)
		require.NoError(t, err)
		require.Len(t, msgs, 1)
	}
	require.EqualValues(t, 2, st.reads.Load()-before, "one read per notify type for five reports")

	s2 := subscribe(t, e, "app1", DeviceDatasChanged, "http://127.0.0.1:9/all", "")
	msgs, err := e.ReportMessages(ctx, "app1", rep)
	require.NoError(t, err)
	require.Len(t, msgs, 2, "the new deviceDatasChanged subscriber gets the next report")
	require.NoError(t, e.Unsubscribe(ctx, s2.ID))
	msgs, err = e.ReportMessages(ctx, "app1", rep)
	require.NoError(t, err)
	require.Len(t, msgs, 1, "the removed subscriber does not get the next report")
}

// countingStore counts subscription reads.
type countingStore struct {
	*MemoryStore
	reads atomic.Int64
}

func (c *countingStore) Subscriptions(ctx context.Context, f Filter) ([]Subscription, error) {
	c.reads.Add(1)
	return c.MemoryStore.Subscriptions(ctx, f)
}
