package main

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/doze-io/doze/store"
	"github.com/stretchr/testify/require"
)

// TestHistoryPerApp: with two apps keeping history, each report is stored
// once per app (marked with its appId), and each app's history query
// returns only its own copy, paged over its own records (STO-2).
func TestHistoryPerApp(t *testing.T) {
	tp := startPlatform(t, func(c *Config) {
		b, _ := json.Marshal([]App{{ID: "app-a", Secret: "secret-a", HistoryEnabled: true}, {ID: "app-b", Secret: "secret-b", HistoryEnabled: true}})
		require.NoError(t, os.WriteFile(c.DataDir+"/apps.json", b, 0o600))
	})
	require.ElementsMatch(t, []string{"app-a", "app-b"}, tp.historyApps())
	const dev = "dev-history-1"
	// Recent records: the history pruner (retention) runs at start.
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Minute)
	var recs []store.HistoryRecord
	for i := range 3 { // as report stores them: one copy per app that keeps history
		for _, app := range tp.historyApps() {
			recs = append(recs, store.HistoryRecord{DeviceID: dev, GatewayID: dev, AppID: app, ServiceID: "Battery",
				Data: json.RawMessage(`{"batteryLevel":` + itoa(80+i) + `}`), Time: t0.Add(time.Duration(i) * time.Minute)})
		}
	}
	require.NoError(t, tp.db.History().Append(recs...))

	type answer struct {
		TotalCount int `json:"totalCount"`
		DTOs       []struct {
			AppID string `json:"appId"`
		} `json:"deviceDataHistoryDTOs"`
	}
	query := func(path string) answer {
		var a answer
		require.Equal(t, http.StatusOK, tp.call(t, "GET", path, nil, &a))
		return a
	}
	for _, id := range []string{"app-a", "app-b"} {
		app, ok := tp.auth.App(id)
		require.True(t, ok)
		tok, err := tp.auth.Login(addr1, app.ID, app.Secret)
		require.NoError(t, err)
		tp.app, tp.token = app, tok.AccessToken

		all := query("/iocm/app/data/v1.2.0/deviceDataHistory?deviceId=" + dev)
		require.Equal(t, 3, all.TotalCount, "%s sees its own 3 records, not the other app's copies", id)
		require.Len(t, all.DTOs, 3)
		for _, d := range all.DTOs {
			require.Equal(t, id, d.AppID)
		}
		page := query("/iocm/app/data/v1.2.0/deviceDataHistory?deviceId=" + dev + "&pageNo=1&pageSize=2")
		require.Equal(t, 3, page.TotalCount, "%s: totalCount counts its own records", id)
		require.Len(t, page.DTOs, 1, "%s: the second page of 2 holds its third record", id)
		require.Equal(t, id, page.DTOs[0].AppID)
	}
}
