package sim

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPercentiles: nearest rank — the smallest value with at least p of
// the values at or below it — whatever order the values came in.
func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // 100 ms … 1 ms, reversed
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := latencyOf(ds)
	require.Equal(t, Latency{N: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}, l)

	// 1,000 values with ten slow ones: p99 is the last fast one, the max
	// the slowest.
	ds = ds[:0]
	for i := range 1000 {
		d := time.Millisecond
		if i%100 == 7 {
			d = time.Second + time.Duration(i)
		}
		ds = append(ds, d)
	}
	l = latencyOf(ds)
	require.Equal(t, time.Millisecond, l.P99, "990 of 1,000 at 1 ms")
	require.Equal(t, time.Second+907, l.Max)

	require.Equal(t, Latency{N: 1, P50: 3, P90: 3, P99: 3, Max: 3}, latencyOf([]time.Duration{3}))
	require.Equal(t, Latency{}, latencyOf(nil))
}

// sendLog records which device sent when, relative to a start.
type sendLog struct {
	mu    sync.Mutex
	start time.Time
	at    map[int][]time.Duration
}

func (l *sendLog) add(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at[i] = append(l.at[i], time.Since(l.start))
}

// TestSendPacedSchedule: uplink j of the run is due at j/rate, counting
// round the devices that connected (a nil device is left out), so that
// they send rate uplinks per second between them, evenly spread, and
// every send begins on time when nothing holds it up.
func TestSendPacedSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		devs := []*int{new(int), nil, new(int), new(int)} // three live devices at positions 0, 1, 2
		log := &sendLog{start: time.Now(), at: map[int][]time.Duration{}}
		sent, start, lags := sendPaced(devs, 4, 10, func(i int, _ *int) error { log.add(i); return nil },
			func(err error) { t.Errorf("fail(%v)", err) })
		require.Equal(t, int64(12), sent)
		require.Equal(t, log.start, start)
		ms := func(v ...int) []time.Duration {
			var out []time.Duration
			for _, x := range v {
				out = append(out, time.Duration(x)*time.Millisecond)
			}
			return out
		}
		require.Equal(t, map[int][]time.Duration{
			0: ms(0, 300, 600, 900),
			2: ms(100, 400, 700, 1000),
			3: ms(200, 500, 800, 1100),
		}, log.at, "sends by device index, 100 ms apart round the devices")
		require.Len(t, lags, 12)
		for _, l := range lags {
			require.Zero(t, l, "every send on time")
		}
	})
}

// TestSendPacedOpenLoop: a send held up by its device (still waiting for
// the previous acknowledgement) makes that device's next uplink late — it
// goes at once, not skipped — and delays no other device; the lag is
// reported.
func TestSendPacedOpenLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		devs := []*int{new(int), new(int)}
		log := &sendLog{start: time.Now(), at: map[int][]time.Duration{}}
		first := true
		sent, _, lags := sendPaced(devs, 4, 10, func(i int, _ *int) error {
			log.add(i)
			if i == 0 && first {
				first = false
				time.Sleep(350 * time.Millisecond) // the acknowledgement takes 350 ms
			}
			return nil
		}, func(err error) { t.Errorf("fail(%v)", err) })
		require.Equal(t, int64(8), sent, "no uplink skipped")
		ms := func(v ...int) []time.Duration {
			var out []time.Duration
			for _, x := range v {
				out = append(out, time.Duration(x)*time.Millisecond)
			}
			return out
		}
		require.Equal(t, ms(0, 350, 400, 600), log.at[0], "device 0: its second uplink (due 200 ms) goes late at 350 ms, the next on time")
		require.Equal(t, ms(100, 300, 500, 700), log.at[1], "device 1 keeps its schedule")
		l := latencyOf(lags)
		require.Equal(t, 150*time.Millisecond, l.Max)
	})
}

// TestSendPacedStopsAtError: a device stops at its first failed send,
// which goes to fail; the others send all theirs.
func TestSendPacedStopsAtError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		devs := []*int{new(int), new(int), new(int)}
		var mu sync.Mutex
		var errs []error
		count := map[int]int{}
		sent, _, _ := sendPaced(devs, 5, 100, func(i int, _ *int) error {
			mu.Lock()
			defer mu.Unlock()
			count[i]++
			if i == 1 && count[i] == 2 {
				return errors.New("device 1: no ACK")
			}
			return nil
		}, func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
		require.Equal(t, int64(5+1+5), sent)
		require.Equal(t, map[int]int{0: 5, 1: 2, 2: 5}, count)
		require.Len(t, errs, 1)
		require.ErrorContains(t, errs[0], "device 1: no ACK")
	})
}

// TestLatenciesMatch: a push is matched to its uplink by deviceId (through
// the index) and pulseCount (the uplink's number, modulo 65536); only the
// first of a duplicate counts; a push with an unknown device or without a
// pulseCount, or naming an uplink never sent, is counted unmatched.
func TestLatenciesMatch(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	sends := newSendTimes(2)
	sends.next(0, at(0))
	sends.next(0, at(100))
	sends.next(1, at(50))
	for k := 2; k <= pulseModulo+1; k++ { // device 1: 65,537 uplinks, the last at 10 s
		sends.next(1, at(10_000))
	}
	index := func(id string) (int, bool) {
		i, ok := map[string]int{"d0": 0, "d1": 1}[id]
		return i, ok
	}
	l := latencies([]arrival{
		{deviceID: "d0", pulse: 1, at: at(20)},     // 20 ms
		{deviceID: "d0", pulse: 2, at: at(130)},    // 30 ms
		{deviceID: "d0", pulse: 2, at: at(500)},    // a duplicate: not counted
		{deviceID: "d1", pulse: 1, at: at(10_040)}, // uplink 65,537 (wrapped to 1): 40 ms
		{deviceID: "d1", pulse: 0, at: at(10_010)}, // uplink 65,536: 10 ms
		{deviceID: "d9", pulse: 1, at: at(1)},      // unknown device
		{deviceID: "d0", pulse: -1, at: at(1)},     // no pulseCount
		{deviceID: "d0", pulse: 3, at: at(1)},      // device 0 sent two
	}, sends, index)
	require.Equal(t, Latency{N: 4, Unmatched: 3, P50: 20 * time.Millisecond, P90: 40 * time.Millisecond,
		P99: 40 * time.Millisecond, Max: 40 * time.Millisecond}, l)
}

// TestSinkKeepsArrivals: the sink keeps each Meter push's deviceId and
// pulseCount ("service" or "services" bodies; -1 without a whole
// non-negative pulseCount) and counts an uplink pushed twice once; reset
// starts a new phase.
func TestSinkKeepsArrivals(t *testing.T) {
	s, err := startSink("")
	require.NoError(t, err)
	defer s.close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	post := func(body string) {
		resp, err := c.Post(s.url, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
	}
	post(`{"notifyType":"deviceDataChanged","deviceId":"d1","service":{"serviceId":"Meter","data":{"pulseCount":7,"totalFlow":1.5}}}`)
	post(`{"notifyType":"deviceDatasChanged","deviceId":"d2","services":[{"serviceId":"Battery","data":{"pulseCount":99}},{"serviceId":"Meter","data":{"pulseCount":65535}}]}`)
	post(`{"deviceId":"d3","service":{"serviceId":"Meter","data":{"pulseCount":1.5}}}`)
	post(`{"deviceId":"d4","service":{"serviceId":"Battery","data":{"pulseCount":1}}}`)
	require.Equal(t, int64(3), s.count.Load())
	post(`{"notifyType":"deviceDataChanged","deviceId":"d1","service":{"serviceId":"Meter","data":{"pulseCount":7,"totalFlow":1.5}}}`)
	require.Equal(t, int64(3), s.count.Load(), "a second delivery of d1's uplink 7 is not another uplink")
	arr := s.arrivals()
	require.Len(t, arr, 4)
	for i, want := range []struct {
		id    string
		pulse int64
	}{{"d1", 7}, {"d2", 65535}, {"d3", -1}} {
		require.Equal(t, want.id, arr[i].deviceID)
		require.Equal(t, want.pulse, arr[i].pulse, "push %d", i)
		require.False(t, arr[i].at.IsZero())
	}
	s.reset()
	require.Empty(t, s.arrivals())
	require.Zero(t, s.count.Load())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.True(t, s.wait(ctx, 1).IsZero(), "no push since the reset")
}

// TestCheckRate: a negative or infinite Rate, a PaceOfMax outside (0, 1],
// or both set, is refused naming the field and what is allowed.
func TestCheckRate(t *testing.T) {
	require.NoError(t, checkRate(0, 0))
	require.NoError(t, checkRate(250, 0))
	require.NoError(t, checkRate(0, 0.5))
	require.NoError(t, checkRate(0, 1))
	for _, tc := range []struct {
		rate, pace float64
		want       string
	}{
		{-1, 0, `Rate "-1": allowed: 0 (unpaced`},
		{math.Inf(1), 0, `Rate "+Inf"`},
		{0, 1.5, `PaceOfMax "1.5": allowed: 0 (off) or a fraction`},
		{0, -0.5, `PaceOfMax "-0.5"`},
		{100, 0.5, "give a fixed rate or a fraction of the measured maximum, not both"},
	} {
		err := checkRate(tc.rate, tc.pace)
		require.ErrorIs(t, err, ErrConfig, "%v, %v", tc.rate, tc.pace)
		require.ErrorContains(t, err, tc.want)
	}
}

// FuzzSinkPush: whatever body a push carries, the sink answers 200, counts
// at most one uplink, and keeps a pulseCount only when it is a whole
// non-negative number.
func FuzzSinkPush(f *testing.F) {
	for _, s := range []string{`{"deviceId":"d1","service":{"serviceId":"Meter","data":{"pulseCount":7}}}`,
		`{"deviceId":"d2","services":[{"serviceId":"Meter","data":{"pulseCount":1e3}},{"serviceId":"Meter"}]}`,
		`{"service":{"serviceId":"Meter","data":{"pulseCount":-1.5}}}`, `not json`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s := &sink{tick: make(chan struct{}, 1), seen: map[pushKey]bool{}}
		w := httptest.NewRecorder()
		s.push(w, httptest.NewRequest(http.MethodPost, "/push", bytes.NewReader(body)))
		if w.Code != http.StatusOK {
			t.Fatalf("answered %d", w.Code)
		}
		arr := s.arrivals()
		if c := s.count.Load(); c > 1 || int64(len(arr)) < c {
			t.Fatalf("counted %d, kept %d arrivals", c, len(arr))
		}
		for _, a := range arr {
			if a.pulse < -1 {
				t.Fatalf("pulse %d", a.pulse)
			}
		}
	})
}
