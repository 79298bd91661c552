package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/store"
	"github.com/stretchr/testify/require"
)

// TestHistoryQueryUsesIndex: with 200 000 rows of 2 000 devices, the
// planner serves one device's newest page from the (device_id, ts) index
// and Prune's range from the BRIN index — no scan of the whole table, so
// the cost of a query follows the device's rows, not the table's (how it
// stays fast at 100 M rows; see the package doc).
func TestHistoryQueryUsesIndex(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	_, err := db.Pool().Exec(ctx, `INSERT INTO history (device_id, ts, gateway_id, app_id, service_id, data)
		SELECT 'dev' || (i % 2000), 1790000000000000000 + i * 1000000000::bigint, '', 'app', 'Meter', '{"v":1}'
		FROM generate_series(1, 200000) AS i`)
	require.NoError(t, err)
	_, err = db.Pool().Exec(ctx, "ANALYZE history")
	require.NoError(t, err)

	plan := func(sql string, args ...any) string {
		rows, err := db.Pool().Query(ctx, "EXPLAIN "+sql, args...)
		require.NoError(t, err)
		var lines []string
		for rows.Next() {
			var l string
			require.NoError(t, rows.Scan(&l))
			lines = append(lines, l)
		}
		require.NoError(t, rows.Err())
		return strings.Join(lines, "\n")
	}
	q := plan("SELECT data FROM history WHERE device_id = $1 ORDER BY ts DESC, seq DESC LIMIT 25", "dev7")
	require.Contains(t, q, "history_device_ts", "device query plan:\n%s", q)
	require.NotContains(t, q, "Seq Scan", "device query plan:\n%s", q)
	p := plan("SELECT count(*) FROM history WHERE ts < $1", int64(1790000000000000000+1000*1000000000))
	require.NotContains(t, p, "Seq Scan", "prune range plan:\n%s", p)

	got, total, err := db.History().Query(store.HistoryQuery{DeviceID: "dev7", Page: 0, PageSize: 25})
	require.NoError(t, err)
	require.Equal(t, 100, total)
	require.Len(t, got, 25)
	require.True(t, got[0].Time.After(got[24].Time), "newest first")
	require.Equal(t, time.Unix(0, 1790000000000000000+198007*1000000000).UTC(), got[0].Time)
}
