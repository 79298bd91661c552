package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/push"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failingPushStore is a push.Store whose message writes fail while broken
// is set, as a full disk would.
type failingPushStore struct {
	push.Store
	broken atomic.Bool
}

var errDiskFull = errors.New("test: disk full")

func (s *failingPushStore) PutMessages(ctx context.Context, msgs ...push.Message) error {
	if s.broken.Load() {
		return errDiskFull
	}
	return s.Store.PutMessages(ctx, msgs...)
}

// TestPushStoreFailureKeepsUplink: a report whose push cannot be stored
// stays in the inbox, the failure is counted (doze_uplink_failures_total,
// doze_push_refused_total), and a later try pushes it once the store works
// again, without writing its history twice (SEC-6).
func TestPushStoreFailureKeepsUplink(t *testing.T) {
	ps := &failingPushStore{}
	tp := startPlatformWith(t, func(p *Platform) {
		require.NoError(t, p.push.Close())
		ps.Store = p.db.Push()
		allow, err := parseAllow(pushAllow(p.cfg))
		require.NoError(t, err)
		p.push, err = push.New(ps, push.Config{Allow: allow})
		require.NoError(t, err)
	})
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceDataChanged")
	const imei = "868333030000061"
	id, psk := registerDevice(t, tp, imei)
	m := newMeter(t, tp, "urn:imei:"+imei, psk)

	ps.broken.Store(true)
	m.uplink(t, &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 12.345, "flowRate": 1.5, "pulseCount": 77}},
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 42}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -85}},
	}})
	admin := httptest.NewServer(tp.AdminHandler())
	defer admin.Close()
	failures := regexp.MustCompile(`(?m)^doze_uplink_failures_total [1-9]`)
	refused := regexp.MustCompile(`(?m)^doze_push_refused_total [1-9]`)
	var body string
	shown := assert.Eventually(t, func() bool {
		resp, err := http.Get(admin.URL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return failures.MatchString(body) && refused.MatchString(body)
	}, 10*time.Second, 10*time.Millisecond, "doze_uplink_failures_total and doze_push_refused_total after a refused push")
	require.True(t, shown, "last /metrics scrape:\n%s", body)
	pending, err := tp.db.Inbox().Pending(context.Background())
	require.NoError(t, err)
	require.Len(t, pending, 1, "the uplink whose push was refused is still in the inbox")

	// The store works again: the held uplink's next try pushes it and
	// takes it out of the inbox.
	ps.broken.Store(false)
	tp.retryUplinks(time.Now().Add(retryMax))
	hook.wait(t, "deviceDataChanged after the retry", func(p map[string]any) bool {
		return p["notifyType"] == "deviceDataChanged" && p["deviceId"] == id
	})
	require.Eventually(t, func() bool {
		pending, err := tp.db.Inbox().Pending(context.Background())
		return err == nil && len(pending) == 0
	}, 10*time.Second, 10*time.Millisecond, "the inbox empties once the push is stored")
	var hist struct {
		TotalCount int `json:"totalCount"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id, nil, &hist))
	require.Equal(t, 3, hist.TotalCount, "one record per service: the retry did not store history again")
}

// TestRetryDelay: a failed uplink waits retryFirst, then twice as long at
// each failure, up to retryMax.
func TestRetryDelay(t *testing.T) {
	for _, c := range []struct {
		tries int
		want  time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {9, 256 * time.Second}, {10, retryMax}, {1000, retryMax}} {
		require.Equal(t, c.want, retryDelay(c.tries), "retryDelay(%d)", c.tries)
	}
}

// TestRetryQueueTakesDue: takeDue returns only the held uplinks due by
// then and keeps the rest.
func TestRetryQueueTakesDue(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var rq retryQueue
	rq.held = []queuedEvent{{inbox: 1, due: t0}, {inbox: 2, due: t0.Add(time.Minute)}, {inbox: 3, due: t0.Add(-time.Second)}}
	due := rq.takeDue(t0)
	require.Len(t, due, 2)
	require.Equal(t, []uint64{1, 3}, []uint64{due[0].inbox, due[1].inbox})
	require.Len(t, rq.held, 1)
	require.Equal(t, uint64(2), rq.held[0].inbox)
	require.Empty(t, rq.takeDue(t0.Add(59*time.Second)))
}
