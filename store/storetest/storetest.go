// Package storetest holds conformance suites for the stores of package
// store that belong to no other package: history, shadow, the uplink
// inbox, products and the device log. The bbolt DB in package store and the PostgreSQL one in
// store/postgres both run them:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Stores {
//			db := open(t)
//			return storetest.Stores{History: db.History(), Shadow: db.Shadow(),
//				Inbox: db.Inbox(), Products: db.Products(), Reporter: db,
//				DeviceLog: func(max int) storetest.DeviceLog { return db.DeviceLog(max) }}
//		})
//	}
//
// The interfaces here are the method sets those stores share, so a
// platform can take either implementation behind them.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/store"
	"github.com/stretchr/testify/require"
)

// History keeps reported service data per device (STO-2).
type History interface {
	// Append stores records.
	Append(recs ...store.HistoryRecord) error
	// Query returns one page of matches, newest first, and the number of
	// matches in all; store.ErrNoDevice when q names no device.
	Query(q store.HistoryQuery) ([]store.HistoryRecord, int, error)
	// Prune deletes records older than cutoff and says how many.
	Prune(cutoff time.Time) (int, error)
	// DeleteDevice deletes every record of a device.
	DeleteDevice(deviceID string) error
}

// Shadow keeps the latest reported and the desired values (STO-3).
type Shadow interface {
	// Get returns the device's shadow, services in the order first seen.
	Get(deviceID string) ([]store.ServiceShadow, error)
	// Report merges reported values.
	Report(deviceID, serviceID string, data map[string]any, at time.Time) error
	// Desire merges desired values.
	Desire(deviceID, serviceID string, data map[string]any, at time.Time) error
	// Desired returns the device's shadow when some service has desired
	// values, and nil otherwise (the uplink path's question).
	Desired(deviceID string) ([]store.ServiceShadow, error)
	// ClearDesired removes a service's desired values.
	ClearDesired(deviceID, serviceID string) error
	// Delete removes the device's shadow.
	Delete(deviceID string) error
}

// Inbox keeps acknowledged uplinks until they are processed.
type Inbox interface {
	// Put stores e durably and returns its sequence number.
	Put(ctx context.Context, e store.InboxEntry) (uint64, error)
	// Delete removes entries; unknown numbers are ignored.
	Delete(ctx context.Context, seqs ...uint64) error
	// Pending returns the entries not deleted, oldest first.
	Pending(ctx context.Context) ([]store.InboxEntry, error)
}

// Products keeps the uploaded files of every product.
type Products interface {
	// Put stores or replaces a product's files.
	Put(f store.ProductFiles) error
	// Delete removes a product's files; an absent product is no error.
	Delete(manufacturerID, model string) error
	// All returns every product ordered by manufacturer id, then model.
	All() ([]store.ProductFiles, error)
}

// DeviceLog keeps the most recent entries of each device (APP-2).
type DeviceLog interface {
	// Append stores entries of any devices, keeping each device's last
	// max (the max the log was made with); a message is cut at
	// store.MaxLogMessage bytes.
	Append(ctx context.Context, entries ...store.LogEntry) error
	// Recent returns up to limit entries of the device, newest first.
	Recent(deviceID string, limit int) ([]store.LogEntry, error)
	// Delete removes the log of a device.
	Delete(deviceID string) error
}

// Reporter stores one device report: history records and shadow values
// in one write.
type Reporter interface {
	SaveReport(deviceID string, hist []store.HistoryRecord, reported map[string]map[string]any, at time.Time) error
}

// Owners records the owning application of resources that are not
// devices, and one-time migration markers (APP-3).
type Owners interface {
	// Claim makes appID the owner unless there is one; it returns the
	// owner after the call.
	Claim(ctx context.Context, kind, id, appID string) (string, error)
	// Set makes appID the owner, replacing any.
	Set(ctx context.Context, kind, id, appID string) error
	// Owner returns the owner, "" for none.
	Owner(ctx context.Context, kind, id string) (string, error)
	// Delete forgets the owner.
	Delete(ctx context.Context, kind, id string) error
	// IDs returns appID's ids of kind in byte order.
	IDs(ctx context.Context, appID, kind string) ([]string, error)
	// Done and MarkDone read and set a migration marker.
	Done(ctx context.Context, name string) (bool, error)
	MarkDone(ctx context.Context, name string) error
}

// Stores are the views of one database that the suites use.
type Stores struct {
	Owners   Owners
	History  History
	Shadow   Shadow
	Inbox    Inbox
	Products Products
	Reporter Reporter
	// DeviceLog returns the device log keeping max entries per device.
	DeviceLog func(max int) DeviceLog
}

// Run runs every suite of this package; open returns the views of an
// empty database that lives until the test ends.
func Run(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("HistoryQuery", func(t *testing.T) { testHistoryQuery(t, open(t).History) })
	t.Run("Shadow", func(t *testing.T) { testShadow(t, open(t).Shadow) })
	t.Run("Products", func(t *testing.T) { testProducts(t, open(t).Products) })
	t.Run("SaveReport", func(t *testing.T) { testSaveReport(t, open(t)) })
	t.Run("Inbox", func(t *testing.T) { testInbox(t, open(t).Inbox) })
	t.Run("InboxConcurrentPuts", func(t *testing.T) { testInboxConcurrent(t, open(t).Inbox) })
	t.Run("DeviceLog", func(t *testing.T) { testDeviceLog(t, open(t).DeviceLog) })
	t.Run("Owners", func(t *testing.T) { testOwners(t, open(t).Owners) })
}

// testOwners covers APP-3's owner records: a claim keeps the first owner,
// Set moves a resource, Delete forgets it, IDs lists an app's resources of
// one kind in byte order, bad keys are refused, markers are kept.
func testOwners(t *testing.T, o Owners) {
	ctx := context.Background()
	owner, err := o.Owner(ctx, "group", "g1")
	require.NoError(t, err)
	require.Empty(t, owner, "nothing is owned in a new store")
	owner, err = o.Claim(ctx, "group", "g1", "app-a")
	require.NoError(t, err)
	require.Equal(t, "app-a", owner)
	owner, err = o.Claim(ctx, "group", "g1", "app-b")
	require.NoError(t, err)
	require.Equal(t, "app-a", owner, "a second claim finds the first owner")
	require.NoError(t, o.Set(ctx, "group", "g2", "app-a"))
	require.NoError(t, o.Set(ctx, "product", "5:DozeL/WM1", "app-a"))
	require.NoError(t, o.Set(ctx, "group", "g3", "app-b"))
	ids, err := o.IDs(ctx, "app-a", "group")
	require.NoError(t, err)
	require.Equal(t, []string{"g1", "g2"}, ids, "one kind only")

	require.NoError(t, o.Set(ctx, "group", "g2", "app-b"), "Set moves a resource")
	ids, err = o.IDs(ctx, "app-a", "group")
	require.NoError(t, err)
	require.Equal(t, []string{"g1"}, ids)
	ids, err = o.IDs(ctx, "app-b", "group")
	require.NoError(t, err)
	require.Equal(t, []string{"g2", "g3"}, ids)
	owner, err = o.Owner(ctx, "group", "g2")
	require.NoError(t, err)
	require.Equal(t, "app-b", owner)

	require.NoError(t, o.Delete(ctx, "group", "g1"))
	require.NoError(t, o.Delete(ctx, "group", "never"), "deleting what has no owner is no error")
	ids, err = o.IDs(ctx, "app-a", "group")
	require.NoError(t, err)
	require.Empty(t, ids)
	owner, err = o.Owner(ctx, "group", "g1")
	require.NoError(t, err)
	require.Empty(t, owner)
	for _, bad := range [][3]string{{"group", "", "app-a"}, {"group", "x\x00y", "app-a"}, {"", "g", "app-a"}, {"group", "g", ""}} {
		_, err := o.Claim(ctx, bad[0], bad[1], bad[2])
		require.Error(t, err, "Claim%q", bad)
		require.Error(t, o.Set(ctx, bad[0], bad[1], bad[2]), "Set%q", bad)
	}

	done, err := o.Done(ctx, "devices-v1")
	require.NoError(t, err)
	require.False(t, done)
	require.NoError(t, o.MarkDone(ctx, "devices-v1"))
	require.NoError(t, o.MarkDone(ctx, "devices-v1"), "marking twice is no error")
	done, err = o.Done(ctx, "devices-v1")
	require.NoError(t, err)
	require.True(t, done)
}

// testHistoryQuery covers STO-2: by device, service, gateway and
// time range, newest first, pageNo absent = all, pageNo 0 the first page.
func testHistoryQuery(t *testing.T, h History) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		svc := "Meter"
		if i%2 == 1 {
			svc = "Battery"
		}
		require.NoError(t, h.Append(store.HistoryRecord{DeviceID: "d1", GatewayID: "d1", ServiceID: svc,
			Data: json.RawMessage(fmt.Sprintf(`{"v":%d}`, i)), Time: t0.Add(time.Duration(i) * time.Minute)}))
	}
	// Devices whose ids are prefix-neighbours must never leak in.
	require.NoError(t, h.Append(store.HistoryRecord{DeviceID: "d10", ServiceID: "Meter", Data: json.RawMessage(`{}`), Time: t0}))
	require.NoError(t, h.Append(store.HistoryRecord{DeviceID: "d", ServiceID: "Meter", Data: json.RawMessage(`{}`), Time: t0}))

	all, total, err := h.Query(store.HistoryQuery{DeviceID: "d1", Page: -1})
	require.NoError(t, err)
	require.Equal(t, 10, total)
	require.Len(t, all, 10)
	require.JSONEq(t, `{"v":9}`, string(all[0].Data), "newest first")
	require.JSONEq(t, `{"v":0}`, string(all[9].Data))
	require.Equal(t, "d1", all[0].GatewayID)
	require.Equal(t, "Battery", all[0].ServiceID)
	require.True(t, all[0].Time.Equal(t0.Add(9*time.Minute)), "Time = %v, want %v", all[0].Time, t0.Add(9*time.Minute))

	page, total, err := h.Query(store.HistoryQuery{DeviceID: "d1", Page: 1, PageSize: 3})
	require.NoError(t, err)
	require.Equal(t, 10, total)
	require.Len(t, page, 3)
	require.JSONEq(t, `{"v":6}`, string(page[0].Data))

	bat, total, err := h.Query(store.HistoryQuery{DeviceID: "d1", ServiceID: "Battery", Page: 0, PageSize: 2})
	require.NoError(t, err)
	require.Equal(t, 5, total)
	require.Len(t, bat, 2)
	require.JSONEq(t, `{"v":9}`, string(bat[0].Data))
	require.JSONEq(t, `{"v":7}`, string(bat[1].Data))

	rng, total, err := h.Query(store.HistoryQuery{DeviceID: "d1", Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute), Page: -1})
	require.NoError(t, err)
	require.Equal(t, 3, total)
	require.JSONEq(t, `{"v":4}`, string(rng[0].Data))
	require.JSONEq(t, `{"v":2}`, string(rng[2].Data))

	none, total, err := h.Query(store.HistoryQuery{DeviceID: "d1", GatewayID: "other", Page: -1})
	require.NoError(t, err)
	require.Zero(t, total)
	require.Empty(t, none)

	_, _, err = h.Query(store.HistoryQuery{})
	require.ErrorIs(t, err, store.ErrNoDevice)
	require.ErrorIs(t, h.Append(store.HistoryRecord{ServiceID: "x"}), store.ErrNoDevice)

	n, err := h.Prune(t0.Add(5 * time.Minute))
	require.NoError(t, err)
	require.Equal(t, 7, n, "5 of d1, one of d10, one of d")
	_, total, err = h.Query(store.HistoryQuery{DeviceID: "d1", Page: -1})
	require.NoError(t, err)
	require.Equal(t, 5, total)

	require.NoError(t, h.DeleteDevice("d1"))
	_, total, err = h.Query(store.HistoryQuery{DeviceID: "d1", Page: -1})
	require.NoError(t, err)
	require.Zero(t, total)
}

// testShadow covers STO-3: reported values merge per property;
// desired values are kept until cleared.
func testShadow(t *testing.T, s Shadow) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.Report("d1", "Meter", map[string]any{"a": 1.0, "b": 2.0}, t0))
	require.NoError(t, s.Report("d1", "Meter", map[string]any{"b": 3.0}, t0.Add(time.Minute)))
	require.NoError(t, s.Desire("d1", "Config", map[string]any{"period": 60.0}, t0))
	got, err := s.Get("d1")
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "Meter", got[0].ServiceID, "services in the order first seen")
	require.Equal(t, map[string]any{"a": 1.0, "b": 3.0}, got[0].Reported.Data)
	require.Equal(t, t0.Add(time.Minute), got[0].Reported.EventTime)
	require.Equal(t, map[string]any{"period": 60.0}, got[1].Desired.Data)
	des, err := s.Desired("d1")
	require.NoError(t, err)
	require.Equal(t, got, des, "Desired is the whole shadow while a service has desired values")
	require.NoError(t, s.ClearDesired("d1", "Config"))
	got, err = s.Get("d1")
	require.NoError(t, err)
	require.Nil(t, got[1].Desired)
	des, err = s.Desired("d1")
	require.NoError(t, err)
	require.Nil(t, des, "no service has desired values")
	require.NoError(t, s.Report("d2", "Meter", map[string]any{"desired": 1.0}, t0))
	des, err = s.Desired("d2")
	require.NoError(t, err)
	require.Nil(t, des, "a reported property named desired is no desired value")
	des, err = s.Desired("nobody")
	require.NoError(t, err)
	require.Nil(t, des)
	require.NoError(t, s.Delete("d1"))
	got, err = s.Get("d1")
	require.NoError(t, err)
	require.Empty(t, got)
}

func testProducts(t *testing.T, p Products) {
	require.NoError(t, p.Put(store.ProductFiles{ManufacturerID: "Doze", Model: "WM1", Profile: []byte("zip"), Codec: []byte("{}")}))
	require.NoError(t, p.Put(store.ProductFiles{ManufacturerID: "Doze", Model: "Lock", Profile: []byte("zip2")}))
	require.NoError(t, p.Put(store.ProductFiles{ManufacturerID: "Acme", Model: "Z", Profile: []byte("zip3")}))
	all, err := p.All()
	require.NoError(t, err)
	require.Len(t, all, 3)
	require.Equal(t, []string{"Z", "Lock", "WM1"}, []string{all[0].Model, all[1].Model, all[2].Model}, "ordered by manufacturer, then model")
	require.NoError(t, p.Put(store.ProductFiles{ManufacturerID: "Doze", Model: "WM1", Profile: []byte("zip4"), Codec: []byte(`{"v":2}`)}))
	require.NoError(t, p.Delete("Doze", "Lock"))
	require.NoError(t, p.Delete("Doze", "absent"))
	all, err = p.All()
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, []byte(`{"v":2}`), all[1].Codec, "Put replaces")
	require.Equal(t, []byte("zip4"), all[1].Profile)
}

// testSaveReport: one call stores the history records and merges the
// shadow of every service (STO-2, STO-3).
func testSaveReport(t *testing.T, s Stores) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.Shadow.Report("d1", "Meter", map[string]any{"a": 1.0, "b": 2.0}, t0))
	require.NoError(t, s.Reporter.SaveReport("d1", []store.HistoryRecord{
		{DeviceID: "d1", ServiceID: "Meter", Data: json.RawMessage(`{"b":5}`), Time: t0.Add(time.Minute)},
		{DeviceID: "d1", ServiceID: "Battery", Data: json.RawMessage(`{"level":80}`), Time: t0.Add(time.Minute)},
	}, map[string]map[string]any{"Meter": {"b": 5.0}, "Battery": {"level": 80.0}}, t0.Add(time.Minute)))
	_, total, err := s.History.Query(store.HistoryQuery{DeviceID: "d1", Page: -1})
	require.NoError(t, err)
	require.Equal(t, 2, total)
	sh, err := s.Shadow.Get("d1")
	require.NoError(t, err)
	require.Len(t, sh, 2)
	require.Equal(t, map[string]any{"a": 1.0, "b": 5.0}, sh[0].Reported.Data, "a kept, b replaced")
	require.Equal(t, t0.Add(time.Minute), sh[0].Reported.EventTime)
	require.Equal(t, map[string]any{"level": 80.0}, sh[1].Reported.Data)
	require.ErrorIs(t, s.Reporter.SaveReport("d1", []store.HistoryRecord{{ServiceID: "x"}}, nil, t0), store.ErrNoDevice)
}

// testInbox: entries come back oldest first with their fields; deleted
// ones stay deleted; unknown numbers are ignored.
func testInbox(t *testing.T, in Inbox) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	var seqs []uint64
	for i, ep := range []string{"ep1", "ep2", "ep1"} {
		s, err := in.Put(ctx, store.InboxEntry{Endpoint: ep, Path: "/19/0/0", Payload: []byte{byte(i), 0xFF},
			ContentFormat: lwm2m.FormatOpaque, Time: t0.Add(time.Duration(i) * time.Second), Node: "node-" + ep})
		require.NoError(t, err)
		seqs = append(seqs, s)
	}
	require.Less(t, seqs[0], seqs[1])
	require.Less(t, seqs[1], seqs[2])
	require.NoError(t, in.Delete(ctx, seqs[1], 12345))
	got, err := in.Pending(ctx)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, store.InboxEntry{Seq: seqs[0], Endpoint: "ep1", Path: "/19/0/0", Payload: []byte{0, 0xFF},
		ContentFormat: lwm2m.FormatOpaque, Time: t0, Node: "node-ep1"}, got[0])
	require.Equal(t, seqs[2], got[1].Seq)
	require.Equal(t, []byte{2, 0xFF}, got[1].Payload)
	require.NoError(t, in.Delete(ctx, seqs[0], seqs[2]))
	got, err = in.Pending(ctx)
	require.NoError(t, err)
	require.Empty(t, got)
}

// testInboxConcurrent: devices put uplinks at the same time; every one
// gets its own sequence number and is kept.
func testInboxConcurrent(t *testing.T, in Inbox) {
	ctx := context.Background()
	var wg sync.WaitGroup
	seen := make(chan uint64, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := in.Put(ctx, store.InboxEntry{Endpoint: "ep", Payload: []byte{byte(i)}})
			if err != nil {
				t.Error(err)
			}
			seen <- s
		}()
	}
	wg.Wait()
	close(seen)
	uniq := map[uint64]bool{}
	for s := range seen {
		uniq[s] = true
	}
	require.Len(t, uniq, 64)
	got, err := in.Pending(ctx)
	require.NoError(t, err)
	require.Len(t, got, 64)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = in.Put(cancelled, store.InboxEntry{Endpoint: "ep"})
	require.ErrorIs(t, err, context.Canceled)
}

// testDeviceLog: each device keeps its last max entries, newest first,
// entries of several devices in one Append; a long message is cut at a
// rune boundary; an entry without a device is refused; Delete forgets a
// device's log.
func testDeviceLog(t *testing.T, open func(max int) DeviceLog) {
	ctx := context.Background()
	l := open(5)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 12 {
		require.NoError(t, l.Append(ctx,
			store.LogEntry{DeviceID: "d1", Time: t0.Add(time.Duration(i) * time.Second), Kind: "uplink", Message: fmt.Sprint("d1 #", i)},
			store.LogEntry{DeviceID: "d2", Time: t0, Kind: "command", Message: fmt.Sprint("d2 #", i)}))
	}
	got, err := l.Recent("d1", 100)
	require.NoError(t, err)
	require.Len(t, got, 5, "only the last 5 entries of d1 are kept")
	for i, e := range got {
		require.Equal(t, fmt.Sprint("d1 #", 11-i), e.Message, "newest first")
		require.True(t, e.Time.Equal(t0.Add(time.Duration(11-i)*time.Second)))
		require.Equal(t, "uplink", e.Kind)
		require.Equal(t, "d1", e.DeviceID)
	}
	got, err = l.Recent("d2", 2)
	require.NoError(t, err)
	require.Equal(t, []string{"d2 #11", "d2 #10"}, []string{got[0].Message, got[1].Message}, "limit 2")

	require.Error(t, l.Append(ctx, store.LogEntry{Kind: "x", Message: "no device"}), "an entry without deviceId is refused")
	long := strings.Repeat("é", store.MaxLogMessage) // 2 bytes per rune
	require.NoError(t, l.Append(ctx, store.LogEntry{DeviceID: "d3", Message: long}))
	got, err = l.Recent("d3", 1)
	require.NoError(t, err)
	require.LessOrEqual(t, len(got[0].Message), store.MaxLogMessage, "a message is cut at MaxLogMessage bytes")
	require.True(t, strings.HasSuffix(got[0].Message, "é…"), "cut at a rune boundary and marked")

	require.NoError(t, l.Delete("d1"))
	got, err = l.Recent("d1", 10)
	require.NoError(t, err)
	require.Empty(t, got, "a deleted device's log is gone")
	got, err = l.Recent("d2", 10)
	require.NoError(t, err)
	require.Len(t, got, 5, "deleting d1 leaves d2")
	got, err = l.Recent("nobody", 10)
	require.NoError(t, err)
	require.Empty(t, got)
}
