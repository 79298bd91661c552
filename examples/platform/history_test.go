package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/doze-io/doze/store"
	"github.com/stretchr/testify/require"
)

// TestHistoryOwner: a device's history is its owner's (APP-3, STO-2):
// reports are kept for the owning app alone, and only while its history
// switch is on; the owner's query shows the records marked with its appId
// and the unmarked ones from before per-app records, not copies another
// app kept while devices were shared, paged over its own; another app is
// told the device does not exist.
func TestHistoryOwner(t *testing.T) {
	tp, as := twoApps(t, func(a []App) { a[1].HistoryEnabled = true })
	id, _ := registerDevice(t, tp, "868333030000801")
	d, err := tp.reg.Get(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, []string{"app-a"}, tp.historyApps(d), "both apps keep history; only the owner keeps this device's")
	_, ok := tp.auth.Change("app-a", func(a *App) { a.HistoryEnabled = false })
	require.True(t, ok)
	require.Empty(t, tp.historyApps(d), "the owner's history switch is off: nothing is kept")
	_, _ = tp.auth.Change("app-a", func(a *App) { a.HistoryEnabled = true })

	// Recent records: the history pruner (retention) runs at start.
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Minute)
	var recs []store.HistoryRecord
	for i, app := range []string{"app-a", "app-b", "app-a", "", "app-b", "app-a"} {
		recs = append(recs, store.HistoryRecord{DeviceID: id, GatewayID: id, AppID: app, ServiceID: "Battery",
			Data: json.RawMessage(`{"batteryLevel":` + itoa(80+i) + `}`), Time: t0.Add(time.Duration(i) * time.Minute)})
	}
	require.NoError(t, tp.db.History().Append(recs...))

	type answer struct {
		TotalCount int `json:"totalCount"`
		DTOs       []struct {
			AppID string `json:"appId"`
		} `json:"deviceDataHistoryDTOs"`
	}
	query := func(path string) (answer, int) {
		var a answer
		return a, tp.call(t, "GET", path, nil, &a)
	}
	all, status := query("/iocm/app/data/v1.2.0/deviceDataHistory?deviceId=" + id)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 4, all.TotalCount, "the owner sees its 3 records and the unmarked one, not app-b's copies")
	for _, d := range all.DTOs {
		require.Contains(t, []string{"app-a", ""}, d.AppID)
	}
	page, _ := query("/iocm/app/data/v1.2.0/deviceDataHistory?deviceId=" + id + "&pageNo=1&pageSize=3")
	require.Equal(t, 4, page.TotalCount, "totalCount counts the owner's records")
	require.Len(t, page.DTOs, 1, "the second page of 3 holds its fourth record")

	as("app-b")
	_, status = query("/iocm/app/data/v1.2.0/deviceDataHistory?deviceId=" + id)
	require.Equal(t, http.StatusNotFound, status, "another app's device does not exist for app-b")
}
