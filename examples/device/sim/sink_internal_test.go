package sim

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSinkCounts: the load run's webhook sink counts a push only when it
// carries the Meter service, alone ("service") or in a batch
// ("services"); other services and undecodable bodies are answered 200
// and not counted. wait returns the time of the last counted push, or
// when its context ends.
func TestSinkCounts(t *testing.T) {
	s, err := startSink("")
	require.NoError(t, err)
	defer s.close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, tc := range []struct {
		body  string
		count int64
	}{
		{`{"notifyType":"deviceDataChanged","service":{"serviceId":"Battery"}}`, 0},
		{`not json`, 0},
		{`{"services":[{"serviceId":"Battery"},{"serviceId":"Connectivity"}]}`, 0},
		{`{"notifyType":"deviceDataChanged","service":{"serviceId":"Meter"}}`, 1},
		{`{"services":[{"serviceId":"Battery"},{"serviceId":"Meter"}]}`, 2},
	} {
		resp, err := c.Post(s.url, "application/json", strings.NewReader(tc.body))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, tc.count, s.count.Load(), "after %s", tc.body)
	}
	last := s.wait(context.Background(), 2)
	require.False(t, last.IsZero())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.Equal(t, last, s.wait(ctx, 3), "wait ends with its context")
}

// TestPhaseEndsAtBound: when no push arrives, a phase waits for the
// pushes until its context's deadline (the run's Timeout), exactly, and
// returns the reports it sent with an error wrapping
// context.DeadlineExceeded that says how many pushes arrived.
func TestPhaseEndsAtBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sink{url: "http://sink/push", tick: make(chan struct{}, 1), seen: map[pushKey]bool{}}
		r := &loadRun[*int]{what: "load", uplinks: 1, workers: 2, timeout: 2 * time.Second,
			report: func(context.Context, *int) error { return nil }}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		res, _, err := r.phase(ctx, s, []*int{new(int), new(int)}, newSendTimes(2), 0, func(err error) { t.Errorf("fail(%v)", err) })
		require.Equal(t, 2*time.Second, time.Since(start), "the phase waits for the pushes until the bound, no longer")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "0 of 2 pushes arrived at the sink http://sink/push before the end of the run (Timeout 2s)")
		require.Equal(t, int64(2), res.Sent)
		require.Zero(t, res.Pushed)
		require.Zero(t, res.Elapsed)
	})
}
