package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStoreSyncs: the platform opens its bbolt file with syncing on, so
// that what it acknowledged (STO-1, STO-2) outlives a crash of the
// machine, not only of the process (the crash tests kill the process,
// whose writes the kernel keeps either way).
func TestStoreSyncs(t *testing.T) {
	tp := startPlatform(t)
	require.Equal(t, "bbolt", tp.db.kind)
	require.NotNil(t, tp.db.bolt)
	require.True(t, tp.db.bolt.Synced(), "the platform's store syncs every commit")
}
