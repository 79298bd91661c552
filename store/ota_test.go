package store

import (
	"path/filepath"
	"testing"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/otatest"
	"github.com/stretchr/testify/require"
)

func openOTA(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "doze.db"), &Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOTAConformance(t *testing.T) {
	otatest.Run(t, func(t *testing.T) ota.Store { return openOTA(t).OTA() })
}
