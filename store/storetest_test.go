package store_test

import (
	"path/filepath"
	"testing"

	"github.com/doze-io/doze/store"
	"github.com/doze-io/doze/store/storetest"
)

// TestStoreConformance runs the history, shadow, inbox and products
// suites (shared with store/postgres) on a bbolt file.
func TestStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		db, err := store.Open(filepath.Join(t.TempDir(), "doze.db"), &store.Options{NoSync: true})
		if err != nil {
			t.Fatalf("store.Open: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return storetest.Stores{Owners: db.Owners(), History: db.History(), Shadow: db.Shadow(), Inbox: db.Inbox(), Products: db.Products(), Reporter: db,
			DeviceLog: func(max int) storetest.DeviceLog { return db.DeviceLog(max) }}
	})
}
