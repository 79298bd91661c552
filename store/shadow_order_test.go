package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A report's services that are new to the shadow are added in name order,
// the same every time (a report's services come as a map).
func TestShadowNewServicesInNameOrder(t *testing.T) {
	for range 20 {
		db, err := Open(t.TempDir()+"/d.db", nil)
		require.NoError(t, err)
		reported := map[string]map[string]any{"Meter": {"a": 1.0}, "Battery": {"b": 2.0}, "Connectivity": {"c": 3.0}, "Alarm": {"d": 4.0}}
		require.NoError(t, db.SaveReport("dev", nil, reported, time.Now()))
		all, err := db.Shadow().Get("dev")
		require.NoError(t, err)
		var ids []string
		for _, s := range all {
			ids = append(ids, s.ServiceID)
		}
		require.Equal(t, []string{"Alarm", "Battery", "Connectivity", "Meter"}, ids)
		require.NoError(t, db.Close())
	}
}
