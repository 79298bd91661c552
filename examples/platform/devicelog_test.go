package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/doze-io/doze/store"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// TestDeviceLogSurvivesRestart: the device log is kept in the store,
// bounded to deviceLogSize entries per device, and is there after the
// platform restarts on the same data directory (issue 15 item 8).
func TestDeviceLogSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *Config) { c.DataDir = dir; c.DeviceLogSize = 5 }
	tp := startPlatform(t, cfg)
	id, _ := registerDevice(t, tp, "868000000000801")
	for i := range 7 {
		tp.log.Add(id, "test", fmt.Sprint("line ", i))
	}
	tp.stop()

	tp = startPlatform(t, cfg)
	var got struct {
		DeviceID string     `json:"deviceId"`
		Entries  []logEntry `json:"entries"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/devices/"+id+"/log?limit=100", nil, &got))
	var msgs []string
	for _, e := range got.Entries {
		msgs = append(msgs, e.Message)
		require.NotEmpty(t, e.Time, "each entry has its time")
	}
	require.Equal(t, []string{"line 6", "line 5", "line 4", "line 3", "line 2"}, msgs,
		"after a restart the log holds the device's last 5 entries (deviceLogSize), newest first")

	// Deleting the device deletes its log, in the store too.
	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", "/iocm/app/dm/v1.4.0/devices/"+id, nil, nil))
	require.Eventually(t, func() bool {
		stored, err := tp.db.DeviceLog(5).Recent(id, 10)
		return err == nil && len(stored) == 0
	}, 10*time.Second, 10*time.Millisecond, "the deleted device's stored log is gone")
}

// BenchmarkDeviceLogAdd is what a log line costs the uplink path: queued
// (the platform's way, written by Run many to a commit) against written
// with its own synced commit.
func BenchmarkDeviceLogAdd(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "doze.db"), nil)
	require.NoError(b, err)
	defer db.Close()
	st := db.DeviceLog(200)
	b.Run("queued", func(b *testing.B) {
		l := newDeviceLog(st, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- l.Run(ctx) }()
		b.ReportAllocs()
		for b.Loop() {
			l.Add("dev1", "uplink", "report of 3 service(s)")
		}
		cancel()
		<-done
	})
	b.Run("synced", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := st.Append(context.Background(), store.LogEntry{DeviceID: "dev1", Time: time.Now(), Kind: "uplink", Message: "report of 3 service(s)"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDeviceLogBoundedInTotal (issue 24): when the store falls behind, the
// queue of log lines stays bounded whatever the number of devices; the
// oldest lines are dropped for the newest, counted in
// doze_devicelog_dropped_total and logged at the next flush.
func TestDeviceLogBoundedInTotal(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "doze.db"), nil)
	require.NoError(t, err)
	defer db.Close()
	var logged bytes.Buffer
	l := newDeviceLog(db.DeviceLog(5), slog.New(slog.NewTextHandler(&logged, nil)))

	// Nobody flushes: 3 lines of each of 10,000 devices, 30,000 in all.
	const devices = 10000
	for line := range 3 {
		for d := range devices {
			l.Add(fmt.Sprintf("dev%05d", d), "uplink", fmt.Sprint("line ", line))
		}
	}
	l.mu.Lock()
	queued := len(l.pending)
	newest := l.pending[len(l.pending)-1]
	l.mu.Unlock()
	require.LessOrEqual(t, queued, maxPending, "entries held in memory")
	require.Equal(t, uint64(3*devices-queued), l.Dropped(), "every entry is either queued or counted as dropped")
	require.Equal(t, store.LogEntry{DeviceID: "dev09999", Kind: "uplink", Message: "line 2"},
		store.LogEntry{DeviceID: newest.DeviceID, Kind: newest.Kind, Message: newest.Message}, "the newest entry is kept")
	var m dto.Metric
	require.NoError(t, l.droppedMetric().Write(&m))
	require.Equal(t, float64(l.Dropped()), m.GetCounter().GetValue(), "doze_devicelog_dropped_total")

	// The newest lines are those kept: the last device's last line is
	// there, the first device's first line is not.
	require.Equal(t, "line 2", l.Recent("dev09999", 1)[0].Message)
	for _, e := range l.Recent("dev00000", 10) {
		require.NotEqual(t, "line 0", e.Message, "the oldest entries were dropped")
	}
	l.Flush()
	require.Contains(t, logged.String(), fmt.Sprintf("dropped=%d", l.Dropped()), "the drop is logged with its count")
	stored, err := db.DeviceLog(5).Recent("dev09999", 1)
	require.NoError(t, err)
	require.Equal(t, "line 2", stored[0].Message, "the kept entries reach the store")
}
