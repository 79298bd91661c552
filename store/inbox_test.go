package store

import (
	"context"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/stretchr/testify/require"
)

// TestInboxSurvivesReopen: an uplink put in the inbox is in the file after
// Close and Open; deleted entries stay deleted. (That it is synced to disk
// when Put returns, so that it outlives a crash, is TestOpenSyncs's part.)
func TestInboxSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/doze.db"
	db, err := Open(path, nil)
	require.NoError(t, err)
	in := db.Inbox()
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	var seqs []uint64
	for i, ep := range []string{"ep1", "ep2", "ep1"} {
		s, err := in.Put(ctx, InboxEntry{Endpoint: ep, Path: "/19/0/0", Payload: []byte{byte(i), 0xFF},
			ContentFormat: lwm2m.FormatOpaque, Time: t0.Add(time.Duration(i) * time.Second)})
		require.NoError(t, err)
		seqs = append(seqs, s)
	}
	require.Less(t, seqs[0], seqs[1])
	require.Less(t, seqs[1], seqs[2])
	require.NoError(t, in.Delete(ctx, seqs[1], 12345)) // an unknown number is ignored
	require.NoError(t, db.Close())

	db, err = Open(path, nil)
	require.NoError(t, err)
	defer db.Close()
	got, err := db.Inbox().Pending(ctx)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, InboxEntry{Seq: seqs[0], Endpoint: "ep1", Path: "/19/0/0", Payload: []byte{0, 0xFF},
		ContentFormat: lwm2m.FormatOpaque, Time: t0}, got[0])
	require.Equal(t, seqs[2], got[1].Seq)
	require.Equal(t, []byte{2, 0xFF}, got[1].Payload)
	require.NoError(t, db.Inbox().Delete(ctx, seqs[0], seqs[2]))
	got, err = db.Inbox().Pending(ctx)
	require.NoError(t, err)
	require.Empty(t, got)
}
