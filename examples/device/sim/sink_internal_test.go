package sim

import (
	"context"
	"net/http"
	"strings"
	"testing"
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
