package store

import (
	"path/filepath"
	"testing"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/command/commandtest"
	"github.com/stretchr/testify/require"
)

func openTemp(t testing.TB, opts *Options) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "doze.db"), opts)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestCommandStore runs the command.Store conformance suite on bbolt.
func TestCommandStore(t *testing.T) {
	commandtest.Run(t, func(t *testing.T) command.Store { return openTemp(t, nil).Commands() })
}
