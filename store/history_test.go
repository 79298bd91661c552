package store

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestHistoryQuery covers SPEC STO-2: by device, service, gateway and time
// range, newest first, pageNo absent = all, pageNo 0 the first page.
func TestHistoryQuery(t *testing.T) {
	h := openTemp(t, nil).History()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		svc := "Meter"
		if i%2 == 1 {
			svc = "Battery"
		}
		require.NoError(t, h.Append(HistoryRecord{DeviceID: "d1", GatewayID: "d1", ServiceID: svc,
			Data: json.RawMessage(fmt.Sprintf(`{"v":%d}`, i)), Time: t0.Add(time.Duration(i) * time.Minute)}))
	}
	// Another device whose id is a prefix-neighbour must never leak in.
	require.NoError(t, h.Append(HistoryRecord{DeviceID: "d10", ServiceID: "Meter", Data: json.RawMessage(`{}`), Time: t0}))
	require.NoError(t, h.Append(HistoryRecord{DeviceID: "d", ServiceID: "Meter", Data: json.RawMessage(`{}`), Time: t0}))

	all, total, err := h.Query(HistoryQuery{DeviceID: "d1", Page: -1})
	require.NoError(t, err)
	require.Equal(t, 10, total)
	require.Len(t, all, 10)
	require.JSONEq(t, `{"v":9}`, string(all[0].Data), "newest first")
	require.JSONEq(t, `{"v":0}`, string(all[9].Data))

	page, total, err := h.Query(HistoryQuery{DeviceID: "d1", Page: 1, PageSize: 3})
	require.NoError(t, err)
	require.Equal(t, 10, total)
	require.Len(t, page, 3)
	require.JSONEq(t, `{"v":6}`, string(page[0].Data))

	bat, total, err := h.Query(HistoryQuery{DeviceID: "d1", ServiceID: "Battery", Page: 0, PageSize: 2})
	require.NoError(t, err)
	require.Equal(t, 5, total)
	require.Len(t, bat, 2)
	require.JSONEq(t, `{"v":9}`, string(bat[0].Data))
	require.JSONEq(t, `{"v":7}`, string(bat[1].Data))

	rng, total, err := h.Query(HistoryQuery{DeviceID: "d1", Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute), Page: -1})
	require.NoError(t, err)
	require.Equal(t, 3, total)
	require.JSONEq(t, `{"v":4}`, string(rng[0].Data))
	require.JSONEq(t, `{"v":2}`, string(rng[2].Data))

	none, total, err := h.Query(HistoryQuery{DeviceID: "d1", GatewayID: "other", Page: -1})
	require.NoError(t, err)
	require.Zero(t, total)
	require.Empty(t, none)

	_, _, err = h.Query(HistoryQuery{})
	require.ErrorIs(t, err, ErrNoDevice)

	n, err := h.Prune(t0.Add(5 * time.Minute))
	require.NoError(t, err)
	require.Equal(t, 7, n, "5 of d1, one of d10, one of d")
	_, total, err = h.Query(HistoryQuery{DeviceID: "d1", Page: -1})
	require.NoError(t, err)
	require.Equal(t, 5, total)

	require.NoError(t, h.DeleteDevice("d1"))
	_, total, err = h.Query(HistoryQuery{DeviceID: "d1", Page: -1})
	require.NoError(t, err)
	require.Zero(t, total)
}

// TestShadow covers SPEC STO-3: reported values merge per property; desired
// values are kept until cleared.
func TestShadow(t *testing.T) {
	db := openTemp(t, nil)
	s := db.Shadow()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.Report("d1", "Meter", map[string]any{"a": 1.0, "b": 2.0}, t0))
	require.NoError(t, s.Report("d1", "Meter", map[string]any{"b": 3.0}, t0.Add(time.Minute)))
	require.NoError(t, s.Desire("d1", "Config", map[string]any{"period": 60.0}, t0))
	got, err := s.Get("d1")
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, map[string]any{"a": 1.0, "b": 3.0}, got[0].Reported.Data)
	require.Equal(t, t0.Add(time.Minute), got[0].Reported.EventTime)
	require.Equal(t, map[string]any{"period": 60.0}, got[1].Desired.Data)
	require.NoError(t, s.ClearDesired("d1", "Config"))
	got, err = s.Get("d1")
	require.NoError(t, err)
	require.Nil(t, got[1].Desired)
	require.NoError(t, s.Delete("d1"))
	got, err = s.Get("d1")
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestProductsRoundTrip(t *testing.T) {
	db := openTemp(t, nil)
	p := db.Products()
	require.NoError(t, p.Put(ProductFiles{ManufacturerID: "Doze", Model: "WM1", Profile: []byte("zip"), Codec: []byte("{}")}))
	require.NoError(t, p.Put(ProductFiles{ManufacturerID: "Doze", Model: "Lock", Profile: []byte("zip2")}))
	all, err := p.All()
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, "Lock", all[0].Model)
	require.NoError(t, p.Delete("Doze", "Lock"))
	all, err = p.All()
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, []byte("{}"), all[0].Codec)
}

// TestSaveReport: one call stores the history records and merges the
// shadow of every service (STO-2, STO-3).
func TestSaveReport(t *testing.T) {
	db := openTemp(t, nil)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, db.Shadow().Report("d1", "Meter", map[string]any{"a": 1.0, "b": 2.0}, t0))
	require.NoError(t, db.SaveReport("d1", []HistoryRecord{
		{DeviceID: "d1", ServiceID: "Meter", Data: json.RawMessage(`{"b":5}`), Time: t0.Add(time.Minute)},
		{DeviceID: "d1", ServiceID: "Battery", Data: json.RawMessage(`{"level":80}`), Time: t0.Add(time.Minute)},
	}, map[string]map[string]any{"Meter": {"b": 5.0}, "Battery": {"level": 80.0}}, t0.Add(time.Minute)))
	_, total, err := db.History().Query(HistoryQuery{DeviceID: "d1", Page: -1})
	require.NoError(t, err)
	require.Equal(t, 2, total)
	sh, err := db.Shadow().Get("d1")
	require.NoError(t, err)
	require.Len(t, sh, 2)
	require.Equal(t, map[string]any{"a": 1.0, "b": 5.0}, sh[0].Reported.Data, "a kept, b replaced")
	require.Equal(t, t0.Add(time.Minute), sh[0].Reported.EventTime)
	require.Equal(t, map[string]any{"level": 80.0}, sh[1].Reported.Data)
	require.ErrorIs(t, db.SaveReport("d1", []HistoryRecord{{ServiceID: "x"}}, nil, t0), ErrNoDevice)
}
