package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func TestDeviceLogKeepsLastN(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "doze.db")
	db, err := Open(path, nil)
	require.NoError(t, err)
	l := db.DeviceLog(5)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 12 {
		// Two devices interleaved, several entries per commit.
		require.NoError(t, l.Append(ctx,
			LogEntry{DeviceID: "d1", Time: t0.Add(time.Duration(i) * time.Second), Kind: "uplink", Message: fmt.Sprint("d1 #", i)},
			LogEntry{DeviceID: "d2", Time: t0, Kind: "command", Message: fmt.Sprint("d2 #", i)}))
	}
	got, err := l.Recent("d1", 100)
	require.NoError(t, err)
	require.Len(t, got, 5, "only the last 5 entries of d1 are kept")
	for i, e := range got {
		require.Equal(t, fmt.Sprint("d1 #", 11-i), e.Message, "newest first")
		require.True(t, e.Time.Equal(t0.Add(time.Duration(11-i)*time.Second)))
		require.Equal(t, "uplink", e.Kind)
		require.Equal(t, "d1", e.DeviceID)
	}
	got, err = l.Recent("d2", 2)
	require.NoError(t, err)
	require.Equal(t, []string{"d2 #11", "d2 #10"}, []string{got[0].Message, got[1].Message}, "limit 2")

	// Pruned entries are gone from the file, not only hidden.
	var keys int
	require.NoError(t, db.bolt.View(func(tx *bolt.Tx) error {
		keys = tx.Bucket(bucketDeviceLog).Bucket([]byte("d1")).Stats().KeyN
		return nil
	}))
	require.Equal(t, 5, keys, "keys left in d1's bucket after pruning")

	// A reopened file has the log (a restart).
	require.NoError(t, db.Close())
	db, err = Open(path, nil)
	require.NoError(t, err)
	defer db.Close()
	got, err = db.DeviceLog(5).Recent("d1", 1)
	require.NoError(t, err)
	require.Equal(t, "d1 #11", got[0].Message, "the newest entry after reopening")

	require.NoError(t, db.DeviceLog(5).Delete("d1"))
	got, err = db.DeviceLog(5).Recent("d1", 10)
	require.NoError(t, err)
	require.Empty(t, got, "a deleted device's log is gone")
	got, err = db.DeviceLog(5).Recent("nobody", 10)
	require.NoError(t, err)
	require.Empty(t, got)
	require.NoError(t, db.Check())
}

func TestDeviceLogBoundsInput(t *testing.T) {
	db := openTemp(t, nil)
	l := db.DeviceLog(0)
	require.Error(t, l.Append(context.Background(), LogEntry{Kind: "x", Message: "no device"}), "an entry without deviceId is refused")
	long := strings.Repeat("é", MaxLogMessage) // 2 bytes per rune
	require.NoError(t, l.Append(context.Background(), LogEntry{DeviceID: "d", Message: long}))
	got, err := l.Recent("d", 1)
	require.NoError(t, err)
	require.LessOrEqual(t, len(got[0].Message), MaxLogMessage, "a message is cut at MaxLogMessage bytes")
	require.True(t, strings.HasSuffix(got[0].Message, "é…"), "cut at a rune boundary and marked: %q", got[0].Message[len(got[0].Message)-8:])
}

// BenchmarkDeviceLogAppend compares one commit (one fsync) per entry with
// the platform's way: entries gathered and written 64 to a commit.
func BenchmarkDeviceLogAppend(b *testing.B) {
	ctx := context.Background()
	for _, per := range []int{1, 64} {
		b.Run(fmt.Sprintf("entries-per-commit=%d", per), func(b *testing.B) {
			db := openTemp(b, nil)
			l := db.DeviceLog(200)
			batch := make([]LogEntry, per)
			for i := range batch {
				batch[i] = LogEntry{DeviceID: fmt.Sprintf("dev%03d", i%50), Time: time.Now(), Kind: "uplink", Message: "report of 3 service(s)"}
			}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if err := l.Append(ctx, batch...); err != nil {
					b.Fatal(err)
				}
				n += per
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/entry")
		})
	}
}
