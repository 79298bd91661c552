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
