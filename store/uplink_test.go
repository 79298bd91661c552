package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/push"
	"github.com/stretchr/testify/require"
)

// TestSaveUplinkAllOrNothing: SaveUplink writes history, shadow, outbox
// and the inbox entry's removal together, and on a refused part none of
// them (SEC-6: the uplink stays in the inbox for another try, and a retry
// does not double its history). The file is reopened to read what is on
// disk.
func TestSaveUplinkAllOrNothing(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/doze.db"
	db, err := Open(path, nil)
	require.NoError(t, err)
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	seq, err := db.Inbox().Put(ctx, InboxEntry{Endpoint: "ep1", Path: "/19/0/0", Payload: []byte{1}, ContentFormat: lwm2m.FormatOpaque, Time: t0})
	require.NoError(t, err)
	msg := push.Message{ID: "msg_1", URL: "http://127.0.0.1:9/push", Body: []byte(`{"notifyType":"deviceDataChanged"}`),
		NotifyType: push.DeviceDataChanged, SubscriptionID: "s1", Created: t0, Expires: t0.Add(time.Hour)}
	u := Uplink{
		DeviceID: "d1",
		History:  []HistoryRecord{{DeviceID: "d1", AppID: "a", ServiceID: "Meter", Data: json.RawMessage(`{"totalFlow":1.5}`), Time: t0}},
		Reported: map[string]map[string]any{"Meter": {"totalFlow": 1.5}},
		Time:     t0,
		Messages: []push.Message{msg, {URL: msg.URL}}, // the second has no id: refused
		Inbox:    seq,
	}
	require.Error(t, db.SaveUplink(u), "SaveUplink with a message without an id")
	require.NoError(t, db.Close())

	db, err = Open(path, nil)
	require.NoError(t, err)
	pending, err := db.Inbox().Pending(ctx)
	require.NoError(t, err)
	require.Len(t, pending, 1, "a refused SaveUplink leaves the uplink in the inbox")
	_, n, err := db.History().Query(HistoryQuery{DeviceID: "d1"})
	require.NoError(t, err)
	require.Zero(t, n, "history records written by a refused SaveUplink")
	sh, err := db.Shadow().Get("d1")
	require.NoError(t, err)
	require.Empty(t, sh, "shadow written by a refused SaveUplink")
	msgs, err := db.Push().Messages(ctx)
	require.NoError(t, err)
	require.Empty(t, msgs, "outbox written by a refused SaveUplink")

	u.Messages = u.Messages[:1]
	require.NoError(t, db.SaveUplink(u))
	require.NoError(t, db.Close())

	db, err = Open(path, nil)
	require.NoError(t, err)
	defer db.Close()
	pending, err = db.Inbox().Pending(ctx)
	require.NoError(t, err)
	require.Empty(t, pending, "the uplink left the inbox with its effects")
	recs, n, err := db.History().Query(HistoryQuery{DeviceID: "d1"})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.JSONEq(t, `{"totalFlow":1.5}`, string(recs[0].Data))
	sh, err = db.Shadow().Get("d1")
	require.NoError(t, err)
	require.Len(t, sh, 1)
	require.Equal(t, map[string]any{"totalFlow": 1.5}, sh[0].Reported.Data)
	msgs, err = db.Push().Messages(ctx)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, msg.ID, msgs[0].ID)
	require.Equal(t, msg.Body, msgs[0].Body)
}

// TestShadowDesired: Desired returns the shadow only when a service has
// desired values, including after a reported property named "desired".
func TestShadowDesired(t *testing.T) {
	db, err := Open(t.TempDir()+"/doze.db", nil)
	require.NoError(t, err)
	defer db.Close()
	sh := db.Shadow()
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	got, err := sh.Desired("d1")
	require.NoError(t, err)
	require.Nil(t, got, "no shadow")
	require.NoError(t, sh.Report("d1", "Meter", map[string]any{"desired": 1.0, "x": `"desired":`}, t0))
	got, err = sh.Desired("d1")
	require.NoError(t, err)
	require.Nil(t, got, "reported values only, one named desired")
	require.NoError(t, sh.Desire("d1", "Config", map[string]any{"period": 60.0}, t0))
	got, err = sh.Desired("d1")
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, map[string]any{"period": 60.0}, got[1].Desired.Data)
	require.NoError(t, sh.ClearDesired("d1", "Config"))
	got, err = sh.Desired("d1")
	require.NoError(t, err)
	require.Nil(t, got, "desired values cleared")
}

// BenchmarkUplinkStore measures the store stage of one demo-meter uplink
// (three services, three pushes, one app keeping history), with 64 event
// workers writing at once, in one run: "separate" is the write pattern
// before SaveUplink (inbox put; history and shadow; the outbox; the inbox
// delete: four commits), "one" is the inbox put and SaveUplink (two). Both
// sync to disk; commits are shared by concurrent callers either way. Each
// of the 1,000 devices has 20 uplinks of history and its shadow before the
// timer starts; pages/op is bbolt's pages written per uplink, the disk's
// share of the cost.
func BenchmarkUplinkStore(b *testing.B) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	services := []string{"Meter", "Battery", "Connectivity"}
	data := json.RawMessage(`{"totalFlow":12.345,"flowRate":1.5,"pulseCount":77}`)
	uplink := func(i int64) Uplink {
		dev := fmt.Sprintf("d%d", i%1000)
		u := Uplink{DeviceID: dev, Time: t0, Reported: map[string]map[string]any{}}
		for k, s := range services {
			u.History = append(u.History, HistoryRecord{DeviceID: dev, GatewayID: dev, AppID: "app", ServiceID: s, Data: data, Time: t0})
			u.Reported[s] = map[string]any{"totalFlow": 12.345, "flowRate": 1.5, "pulseCount": 77.0}
			u.Messages = append(u.Messages, push.Message{ID: fmt.Sprintf("msg_%016x%d", i, k), URL: "http://127.0.0.1:9/push",
				Body: data, NotifyType: push.DeviceDataChanged, SubscriptionID: "s1", Created: t0, Expires: t0.Add(time.Hour)})
		}
		return u
	}
	entry := InboxEntry{Endpoint: "urn:imei:868333030000001", Path: "/19/0/0", Payload: []byte{1, 0x55, 0xFF, 0xAB, 0, 1, 0xE2, 0x40, 0, 0x96, 0, 0x10}, Time: t0}
	ways := []struct {
		name string
		do   func(db *DB, u Uplink) error
	}{
		{"separate", func(db *DB, u Uplink) error {
			if err := db.SaveReport(u.DeviceID, u.History, u.Reported, u.Time); err != nil {
				return err
			}
			if err := db.Push().PutMessages(ctx, u.Messages...); err != nil {
				return err
			}
			return db.Inbox().Delete(ctx, u.Inbox)
		}},
		{"one", func(db *DB, u Uplink) error { return db.SaveUplink(u) }},
	}
	for _, w := range ways {
		b.Run(w.name+"/workers=64", func(b *testing.B) {
			db := openTemp(b, nil)
			// Each device starts with 20 uplinks of history, as a meter
			// a day into its life, so that the timed writes land in a
			// tree of the size they would in a platform.
			var seq atomic.Int64
			seq.Store(-20 * 1000)
			var wg sync.WaitGroup
			for range 64 {
				wg.Go(func() {
					for i := seq.Add(1); i <= 0; i = seq.Add(1) {
						u := uplink(i + 20*1000)
						u.Time = u.Time.Add(time.Duration(i) * time.Second)
						for k := range u.History {
							u.History[k].Time = u.Time
						}
						if err := w.do(db, u); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ResetTimer()
			before := db.bolt.Stats().TxStats
			benchParallel(b, 64, func(i int64) {
				u := uplink(i)
				seq, err := db.Inbox().Put(ctx, entry)
				if err == nil {
					u.Inbox = seq
					err = w.do(db, u)
				}
				if err != nil {
					b.Error(err)
				}
			})
			after := db.bolt.Stats().TxStats
			b.ReportMetric(float64(after.GetWrite()-before.GetWrite())/float64(b.N), "pages/op")
		})
	}
}
