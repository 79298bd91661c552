package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/stretchr/testify/require"
)

func TestImports(t *testing.T) { deptest.Check(t) }

func TestOpenCreatesBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doze.db")
	db, err := Open(path, nil)
	require.NoError(t, err)
	require.NoError(t, db.Check())
	require.NoError(t, db.Close())
	require.NoError(t, db.Close(), "Close twice")
}

// TestOpenSyncs: Open without Options syncs every commit to disk (bbolt's
// NoSync is false), so that what a store acknowledged outlives a crash of
// the machine; only Options.NoSync turns syncing off. The reopen tests
// close the file cleanly and cannot tell.
func TestOpenSyncs(t *testing.T) {
	for _, opts := range []*Options{nil, {}} {
		db := openTemp(t, opts)
		require.False(t, db.bolt.NoSync, "Open(path, %+v) syncs", opts)
		require.True(t, db.Synced())
	}
	db := openTemp(t, &Options{NoSync: true})
	require.True(t, db.bolt.NoSync, "Options.NoSync reaches bbolt")
	require.False(t, db.Synced())
}

func TestOpenNotABoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	require.NoError(t, os.WriteFile(path, []byte("this is not a database, it is a text file of some length............"), 0o600))
	_, err := Open(path, nil)
	require.ErrorIs(t, err, ErrNotDB)
	var oe *OpenError
	require.True(t, errors.As(err, &oe))
	require.Equal(t, path, oe.Path)
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doze.db")
	db, err := Open(path, nil)
	require.NoError(t, err)
	defer db.Close()
	_, err = Open(path, &Options{LockTimeout: 50 * time.Millisecond})
	require.ErrorIs(t, err, ErrLocked)
}
