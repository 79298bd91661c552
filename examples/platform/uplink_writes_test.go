package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/store"
	"github.com/stretchr/testify/require"
)

// writeLog records the durable writes of the uplink path: inbox puts and
// deletes, and the SaveUplink transactions with the inbox entry each
// consumes.
type writeLog struct {
	mu      sync.Mutex
	puts    []uint64
	deletes []uint64
	saves   []uint64 // store.Uplink.Inbox of each SaveUplink
}

type loggedInbox struct {
	inboxStore
	log *writeLog
}

func (l loggedInbox) Put(ctx context.Context, e store.InboxEntry) (uint64, error) {
	seq, err := l.inboxStore.Put(ctx, e)
	if err == nil {
		l.log.mu.Lock()
		l.log.puts = append(l.log.puts, seq)
		l.log.mu.Unlock()
	}
	return seq, err
}

func (l loggedInbox) Delete(ctx context.Context, seqs ...uint64) error {
	l.log.mu.Lock()
	l.log.deletes = append(l.log.deletes, seqs...)
	l.log.mu.Unlock()
	return l.inboxStore.Delete(ctx, seqs...)
}

type loggedUplinks struct {
	uplinkSaver
	log *writeLog
}

func (l loggedUplinks) SaveUplink(u store.Uplink) error {
	err := l.uplinkSaver.SaveUplink(u)
	if err == nil {
		l.log.mu.Lock()
		l.log.saves = append(l.log.saves, u.Inbox)
		l.log.mu.Unlock()
	}
	return err
}

// TestMQTTReportTwoCommits: an MQTT property report costs the durable
// path two commits, as a CoAP uplink does — its inbox entry, synced
// before the PUBACK, and one SaveUplink transaction that stores history,
// shadow and pushes and consumes that entry — and no separate inbox
// delete (issue 22).
func TestMQTTReportTwoCommits(t *testing.T) {
	needMosquitto(t)
	log := &writeLog{}
	tp := startPlatformWith(t, func(p *Platform) {
		p.db.inbox = loggedInbox{inboxStore: p.db.inbox, log: log}
		p.db.uplinks = loggedUplinks{uplinkSaver: p.db.uplinks, log: log}
	})
	s := newSink(t)
	tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions", map[string]any{"notifyType": "deviceDataChanged", "callbackUrl": s.srv.URL + "/hook"}, nil)
	id, secret := registerMQTT(t, tp, "868000000000911")
	port := mqttPort(t, tp)

	const reports = 5
	for i := range reports {
		report := fmt.Sprintf(`{"services":[{"service_id":"Battery","properties":{"batteryLevel":%d}}]}`, 60+i)
		out, err := mosquittoPub(t, port, "-V", "mqttv5", "-i", id, "-u", id, "-P", secret, "-q", "1",
			"-t", "$oc/devices/"+id+"/sys/properties/report", "-m", report)
		require.NoError(t, err, "report %d: %s", i, out)
	}
	require.Eventually(t, func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return len(log.saves) >= reports
	}, 10*time.Second, 20*time.Millisecond, "every report is stored")
	log.mu.Lock()
	defer log.mu.Unlock()
	require.Len(t, log.puts, reports, "one inbox put per report, before its PUBACK")
	require.Len(t, log.saves, reports, "one SaveUplink per report")
	for _, seq := range log.puts {
		require.NotZero(t, seq)
		require.True(t, slices.Contains(log.saves, seq), "report %d leaves the inbox in its own SaveUplink transaction (saves consumed %v)", seq, log.saves)
		require.False(t, slices.Contains(log.deletes, seq), "report %d is not deleted from the inbox a second time", seq)
	}
	pending, err := tp.db.Inbox().Pending(context.Background())
	require.NoError(t, err)
	require.Empty(t, pending, "nothing is left in the inbox")
}
