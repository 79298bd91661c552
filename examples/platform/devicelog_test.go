package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/doze-io/doze/store"
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
