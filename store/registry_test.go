package store

import (
	"path/filepath"
	"testing"

	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/registry/registrytest"
	"github.com/stretchr/testify/require"
)

func openTemp(t testing.TB, opts *Options) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "doze.db"), opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, db.Check(), "bbolt consistency check")
		db.Close()
	})
	return db
}

// TestRegistryConformance: the bbolt registry store passes registrytest
// (STO-1).
func TestRegistryConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store { return openTemp(t, &Options{NoSync: true}).Registry() })
}
