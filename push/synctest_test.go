package push

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests run the engine inside testing/synctest bubbles, where the
// 10-minute keep time passes at once. Real sockets do not work in a bubble,
// so a fakeRT stands in for the HTTP transport; the httptest tests in
// engine_test.go cover the real one.

// lockedBuffer is a log sink safe for the engine's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tryRec is one request the fake transport saw.
type tryRec struct {
	url, id string
	at      time.Duration // since the test's start
}

// fakeRT answers each request with answer(req, n), n counting the
// requests to that URL from 1.
type fakeRT struct {
	start  time.Time
	mu     sync.Mutex
	tries  []tryRec
	count  map[string]int
	answer func(req *http.Request, n int) (*http.Response, error)
}

func newFakeRT(answer func(req *http.Request, n int) (*http.Response, error)) *fakeRT {
	return &fakeRT{start: time.Now(), count: map[string]int{}, answer: answer}
}

func (f *fakeRT) RoundTrip(req *http.Request) (*http.Response, error) {
	io.Copy(io.Discard, req.Body)
	req.Body.Close()
	f.mu.Lock()
	u := req.URL.String()
	f.count[u]++
	n := f.count[u]
	f.tries = append(f.tries, tryRec{url: u, id: req.Header.Get(HeaderID), at: time.Since(f.start)})
	answer := f.answer
	f.mu.Unlock()
	return answer(req, n)
}

func (f *fakeRT) setAnswer(a func(req *http.Request, n int) (*http.Response, error)) {
	f.mu.Lock()
	f.answer = a
	f.mu.Unlock()
}

// times returns when url was tried, in whole seconds since the start.
func (f *fakeRT) times(url string) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, t := range f.tries {
		if t.url == url {
			out = append(out, int(t.at/time.Second))
		}
	}
	return out
}

func status(code int) func(*http.Request, int) (*http.Response, error) {
	return func(req *http.Request, _ int) (*http.Response, error) {
		return &http.Response{StatusCode: code, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
	}
}

// hang never answers; the engine's timeout ends the try.
func hang(req *http.Request, _ int) (*http.Response, error) {
	<-req.Context().Done()
	return nil, req.Context().Err()
}

// bubbleEngine returns a running engine using rt, stopped when the test ends.
func bubbleEngine(t *testing.T, rt http.RoundTripper, l Listener, cfg Config) (*Engine, *MemoryStore) {
	cfg.Transport = rt
	cfg.Listener = l
	st := NewMemoryStore()
	e, err := New(st, cfg)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	t.Cleanup(func() {
		e.Close()
		require.NoError(t, <-done)
	})
	synctest.Wait()
	return e, st
}

const (
	urlA = "http://203.0.113.7:8080/a"
	urlB = "http://203.0.113.8:8080/b"
)

// TestKeepTimeInvalidationProbe follows one message to an endpoint that
// always answers 503 (PSH-4, FAQ §5.15): retried on the schedule 1s, 5s,
// 15s, 30s, 60s…; invalid after the 10th failure (351 s); then probed every
// 30 s; dropped exactly when its 10-minute keep time ends, reported to the
// Listener, and gone from the Store.
func TestKeepTimeInvalidationProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRT(status(503))
		rec := newRecorder()
		var logs lockedBuffer
		e, st := bubbleEngine(t, rt, rec, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		ctx := context.Background()
		start := time.Now()
		_, err := e.Send(ctx, urlA, []byte(`{"n":1}`), "")
		require.NoError(t, err)

		time.Sleep(350 * time.Second)
		synctest.Wait()
		s, _ := e.Endpoint(urlA)
		require.Equal(t, StateValid, s.State, "9 failures: still valid")
		require.Equal(t, 9, s.Failures)

		time.Sleep(1 * time.Second)
		synctest.Wait()
		s, _ = e.Endpoint(urlA)
		require.Equal(t, StateInvalid, s.State, "10 failures within keep time: invalid")
		require.Equal(t, "push: "+urlA+" answered HTTP 503", s.LastError)
		require.Len(t, rec.getChanges(), 1)
		require.Equal(t, StateInvalid, rec.getChanges()[0].State)
		es := e.Stats().Endpoints[0]
		require.Equal(t, 351*time.Second, es.Lag, "PSH-7 metrics: lag is the oldest message's age")
		require.Equal(t, 1, es.Queued)
		require.EqualValues(t, 10, es.Retried)

		// A second message while invalid: it waits for the probes.
		time.Sleep(49 * time.Second) // t = 400 s
		_, err = e.Send(ctx, urlA, []byte(`{"n":2}`), "")
		require.NoError(t, err)
		synctest.Wait()

		time.Sleep(200*time.Second - time.Nanosecond) // just before 600 s
		synctest.Wait()
		require.Empty(t, rec.getDrops(), "nothing dropped before the keep time ends")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		require.Len(t, rec.getDrops(), 1, "the first message is dropped at 600 s")
		require.ErrorIs(t, rec.getDrops()[0].err, ErrExpired)
		require.Contains(t, rec.getDrops()[0].err.Error(), "503")
		require.Equal(t, `{"n":1}`, string(rec.getDrops()[0].msg.Body))
		require.Equal(t, 10*time.Minute, time.Since(start))
		require.Contains(t, logs.String(), "push: message dropped", "drops are logged")
		require.Contains(t, logs.String(), "push: endpoint state changed")

		require.Equal(t, []int{0, 1, 6, 21, 51, 111, 171, 231, 291, 351, // schedule, then invalid
			381, 411, 441, 471, 501, 531, 561, 591}, rt.times(urlA), "tries of the first message")

		time.Sleep(400 * time.Second) // t = 1000 s: the second message's keep time ended at 1000 s
		synctest.Wait()
		require.Len(t, rec.getDrops(), 2)
		require.Equal(t, `{"n":2}`, string(rec.getDrops()[1].msg.Body))
		stats := e.Stats()
		require.EqualValues(t, 2, stats.Dropped)
		require.EqualValues(t, 0, stats.Delivered)
		require.Zero(t, stats.Queued)
		require.Equal(t, StateInvalid, stats.Endpoints[0].State, "still invalid: nobody answered")

		require.NoError(t, e.Close())
		msgs, err := st.Messages(ctx)
		require.NoError(t, err)
		require.Empty(t, msgs, "dropped messages leave the Store")
	})
}

// TestRecovery: an invalid URL that answers a probe is valid again and its
// kept messages flow at once (PSH-4).
func TestRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRT(func(req *http.Request, n int) (*http.Response, error) {
			time.Sleep(time.Millisecond) // a connection failure after 1 ms
			return nil, io.ErrUnexpectedEOF
		})
		rec := newRecorder()
		e, _ := bubbleEngine(t, rt, rec, Config{})
		ctx := context.Background()
		for range 5 {
			_, err := e.Send(ctx, urlA, []byte(`{}`), "")
			require.NoError(t, err)
		}
		time.Sleep(352 * time.Second) // each try takes 1 ms: the 10th ends at 351.010 s
		synctest.Wait()
		s, _ := e.Endpoint(urlA)
		require.Equal(t, StateInvalid, s.State)
		require.Equal(t, 5, s.Queued)
		require.Equal(t, []int{0, 1, 6, 21, 51, 111, 171, 231, 291, 351}, rt.times(urlA), "one at a time, backing off")

		time.Sleep(48 * time.Second) // t = 400 s; probe at 381, next at 411
		rt.setAnswer(status(200))
		synctest.Wait()
		require.Equal(t, []int{381}, rt.times(urlA)[10:], "only probes while invalid")
		time.Sleep(12 * time.Second)
		synctest.Wait()
		s, _ = e.Endpoint(urlA)
		require.Equal(t, StateValid, s.State, "the probe was answered")
		require.Zero(t, s.Failures)
		require.Zero(t, s.Queued, "every kept message went out")
		require.EqualValues(t, 5, e.Stats().Delivered)
		require.Equal(t, []int{411, 411, 411, 411, 411}, rt.times(urlA)[11:], "all at once after the probe")
		ch := rec.getChanges()
		require.Len(t, ch, 2)
		require.Equal(t, StateInvalid, ch[0].State)
		require.Equal(t, StateValid, ch[1].State)
		require.Empty(t, rec.getDrops())
	})
}

// TestBurstFailuresCount: tries in flight together that all fail each count
// toward the threshold; then the URL gets one try at a time (PSH-4).
func TestBurstFailuresCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRT(func(req *http.Request, n int) (*http.Response, error) {
			if n == 1 {
				return status(200)(req, n)
			}
			time.Sleep(time.Millisecond) // all first tries start before one fails
			return status(503)(req, n)
		})
		e, _ := bubbleEngine(t, rt, nil, Config{})
		ctx := context.Background()
		_, err := e.Send(ctx, urlA, []byte(`{}`), "")
		require.NoError(t, err)
		synctest.Wait()
		for range 6 {
			_, err := e.Send(ctx, urlA, []byte(`{}`), "")
			require.NoError(t, err)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		s, _ := e.Endpoint(urlA)
		require.Equal(t, 6, s.Failures, "six tries in flight together, six failures")
		time.Sleep(30 * time.Second)
		synctest.Wait()
		require.Equal(t, []int{0, 0, 0, 0, 0, 0, 0}, rt.times(urlA), "backoff after 6 failures is 60 s")
		time.Sleep(31 * time.Second)
		synctest.Wait()
		require.Len(t, rt.times(urlA), 8, "then one try at a time")
	})
}

// TestTimeoutAndDuplicate: a receiver that does not answer within 15 s gets
// the same message again with the same webhook-id (PSH-4, PSH-5).
func TestTimeoutAndDuplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRT(func(req *http.Request, n int) (*http.Response, error) {
			if n == 1 {
				return hang(req, n)
			}
			return status(200)(req, n)
		})
		rec := newRecorder()
		e, _ := bubbleEngine(t, rt, rec, Config{})
		id, err := e.Send(context.Background(), urlA, []byte(`{}`), "")
		require.NoError(t, err)
		time.Sleep(15*time.Second - time.Nanosecond)
		synctest.Wait()
		s, _ := e.Endpoint(urlA)
		require.Zero(t, s.Failures, "still waiting for the answer")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		s, _ = e.Endpoint(urlA)
		require.Equal(t, 1, s.Failures, "no answer within 15 s is a failure")
		require.Contains(t, s.LastError, "deadline exceeded")
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, []int{0, 16}, rt.times(urlA))
		rt.mu.Lock()
		require.Equal(t, id, rt.tries[0].id)
		require.Equal(t, id, rt.tries[1].id)
		rt.mu.Unlock()
		require.EqualValues(t, 1, e.Stats().Delivered)
	})
}

// TestFailingEndpointDoesNotDelayHealthy: while one endpoint hangs and
// another fails, a healthy endpoint's messages go out without any time
// passing (PSH-4 round-robin).
func TestFailingEndpointDoesNotDelayHealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const urlC = "http://203.0.113.9:8080/c"
		rt := newFakeRT(func(req *http.Request, n int) (*http.Response, error) {
			switch req.URL.String() {
			case urlA:
				return hang(req, n)
			case urlC:
				time.Sleep(time.Millisecond) // all 4 first tries start before one fails
				return status(502)(req, n)
			}
			return status(200)(req, n)
		})
		e, _ := bubbleEngine(t, rt, nil, Config{Workers: 16, EndpointConcurrency: 4})
		ctx := context.Background()
		for range 200 {
			for _, u := range []string{urlA, urlC} {
				_, err := e.Send(ctx, u, []byte(`{}`), "")
				require.NoError(t, err)
			}
		}
		for range 500 {
			_, err := e.Send(ctx, urlB, []byte(`{}`), "")
			require.NoError(t, err)
		}
		synctest.Wait()
		b, _ := e.Endpoint(urlB)
		require.Zero(t, b.Queued, "all 500 delivered with no time passing")
		require.EqualValues(t, 500, e.Stats().Delivered)
		require.Len(t, rt.times(urlA), 1, "the hanging endpoint, never answered, holds one slot")
		require.Len(t, rt.times(urlC), 1, "the failing endpoint waits for its retry time")
	})
}

// TestExpiredOnLoad: a message whose keep time ended while the engine was
// down is dropped when Run loads it, not sent (PSH-4, PSH-6).
func TestExpiredOnLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := NewMemoryStore()
		now := time.Now()
		require.NoError(t, st.PutMessages(context.Background(),
			Message{ID: "msg_old", URL: urlA, Body: []byte(`{}`), Created: now.Add(-11 * time.Minute), Expires: now.Add(-time.Minute)},
			Message{ID: "msg_new", URL: urlA, Body: []byte(`{}`), Created: now, Expires: now.Add(10 * time.Minute)}))
		rt := newFakeRT(status(200))
		rec := newRecorder()
		e, err := New(st, Config{Transport: rt, Listener: rec})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- e.Run(context.Background()) }()
		synctest.Wait()
		require.NoError(t, e.Close())
		require.NoError(t, <-done)
		require.Len(t, rec.getDrops(), 1)
		require.Equal(t, "msg_old", rec.getDrops()[0].msg.ID)
		require.ErrorIs(t, rec.getDrops()[0].err, ErrExpired)
		require.Equal(t, []int{0}, rt.times(urlA), "only the fresh message is sent")
		msgs, err := st.Messages(context.Background())
		require.NoError(t, err)
		require.Empty(t, msgs)
	})
}
