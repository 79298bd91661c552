// Package registrytest is the conformance suite for registry.Store: every
// implementation (registry.MemStore, the bbolt store in package store, any
// a user writes) must pass Run.
//
//	func TestStore(t *testing.T) {
//		registrytest.Run(t, func(t *testing.T) registry.Store { return registry.NewMemStore() })
//	}
package registrytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

// Run runs the conformance tests as subtests of t. newStore must return an
// empty Store each time it is called; it may register cleanups on t.
func Run(t *testing.T, newStore func(t *testing.T) registry.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st registry.Store)
	}{
		{"CreateGet", testCreateGet},
		{"Copies", testCopies},
		{"NodeKeyUnique", testNodeKeyUnique},
		{"ConcurrentSameNode", testConcurrentSameNode},
		{"Update", testUpdate},
		{"UpdateErrors", testUpdateErrors},
		{"Delete", testDelete},
		{"Gateways", testGateways},
		{"ListFilters", testListFilters},
		{"ListPaging", testListPaging},
		{"Owner", testOwner},
		{"Due", testDue},
		{"Groups", testGroups},
		{"DeleteGroup", testDeleteGroup},
		{"CanceledContext", testCanceled},
		{"Registry", testRegistry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// dev returns a valid device numbered n: ids "dev-000n", nodeIds
// "86000000000000n".
func dev(n int) registry.Device {
	return registry.Device{
		ID:         fmt.Sprintf("dev-%04d", n),
		NodeID:     fmt.Sprintf("8600000000%05d", n),
		VerifyCode: fmt.Sprintf("8600000000%05d", n),
		PSK:        registry.PSK{1, 2, 3, 4, 5, 6, 7, byte(n)},
		Security:   registry.SecurityPSK,
		Info: registry.Info{
			ManufacturerID: "acme", ManufacturerName: "Acme", DeviceType: "WaterMeter",
			Model: "WM1", ProtocolType: "CoAP", Name: fmt.Sprintf("meter %d", n),
			SWVersion: "1.0", FWVersion: "2.0", Mode: "PSM",
		},
		NodeType:     registry.Endpoint,
		Status:       registry.StatusInactive,
		Timeout:      180 * time.Second,
		CreatedAt:    base.Add(time.Duration(n) * time.Second),
		LastModified: base.Add(time.Duration(n) * time.Second),
		Deadline:     base.Add(time.Duration(n)*time.Second + 180*time.Second),
	}
}

var ctx = context.Background()

func mustCreate(t *testing.T, st registry.Store, d registry.Device) {
	t.Helper()
	require.NoError(t, st.Create(ctx, d), "Create(%s)", d.ID)
}

func ids(ds []registry.Device) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func testCreateGet(t *testing.T, st registry.Store) {
	d := dev(1)
	d.LastSeen = base.Add(time.Hour)
	d.DisconnectedAt = base.Add(2 * time.Hour)
	d.Connected = true
	d.Bound = true
	mustCreate(t, st, d)

	got, err := st.Get(ctx, d.ID)
	require.NoError(t, err)
	requireSame(t, d, got)

	got, err = st.GetByNodeKey(ctx, registry.NodeKey(d.NodeID))
	require.NoError(t, err)
	require.Equal(t, d.ID, got.ID)

	// A device without security (SEC-1) keeps no key and keeps its
	// Security through the store.
	none := dev(4)
	none.PSK, none.Security = nil, registry.SecurityNone
	mustCreate(t, st, none)
	got, err = st.Get(ctx, none.ID)
	require.NoError(t, err)
	requireSame(t, none, got)
	require.Empty(t, got.PSK)

	// An MQTT device (MQT-1) keeps its secret's hash and its Security.
	mq := dev(5)
	mq.PSK, mq.Security, mq.SecretHash = nil, registry.SecuritySecret, registry.HashSecret("s3cret-of-dev-5")
	mq.Info.ProtocolType = "MQTT"
	mustCreate(t, st, mq)
	got, err = st.Get(ctx, mq.ID)
	require.NoError(t, err)
	require.Equal(t, registry.SecuritySecret, got.Security, "Security of an MQTT device read back")
	require.True(t, got.SecretHash.Matches("s3cret-of-dev-5"), "the stored secret hash must match the secret it was made from")
	require.False(t, got.SecretHash.Matches("s3cret-of-dev-6"), "the stored secret hash must not match another secret")
	requireSame(t, mq, got)

	_, err = st.Get(ctx, "nope")
	require.ErrorIs(t, err, registry.ErrNotFound, "Get of an unknown id")
	_, err = st.GetByNodeKey(ctx, "nope")
	require.ErrorIs(t, err, registry.ErrNotFound, "GetByNodeKey of an unknown key")
	if l, ok := st.(registry.IDLookup); ok {
		for _, want := range []registry.Device{d, none, mq} {
			id, err := l.IDByNodeKey(ctx, registry.NodeKey(want.NodeID))
			require.NoError(t, err, "IDByNodeKey of %s", want.NodeID)
			require.Equal(t, want.ID, id, "IDByNodeKey of %s", want.NodeID)
		}
		_, err = l.IDByNodeKey(ctx, "nope")
		require.ErrorIs(t, err, registry.ErrNotFound, "IDByNodeKey of an unknown key")
	}

	dup := dev(2)
	dup.ID = d.ID
	require.ErrorIs(t, st.Create(ctx, dup), registry.ErrExists, "Create with a taken deviceId")

	bad := dev(3)
	bad.Groups = []string{"no-such-group"}
	require.ErrorIs(t, st.Create(ctx, bad), registry.ErrGroupNotFound, "Create naming an unknown group")
	bad = dev(3)
	bad.GatewayID = "no-such-gateway"
	require.ErrorIs(t, st.Create(ctx, bad), registry.ErrGatewayNotFound, "Create naming an unknown gateway")
	_, err = st.Get(ctx, bad.ID)
	require.ErrorIs(t, err, registry.ErrNotFound, "a refused Create must store nothing")
}

// requireSame compares devices field by field, times by Equal (a store may
// drop the monotonic clock or the location).
func requireSame(t *testing.T, want, got registry.Device) {
	t.Helper()
	for _, p := range []struct {
		name string
		w, g *time.Time
	}{
		{"CreatedAt", &want.CreatedAt, &got.CreatedAt},
		{"LastModified", &want.LastModified, &got.LastModified},
		{"LastSeen", &want.LastSeen, &got.LastSeen},
		{"DisconnectedAt", &want.DisconnectedAt, &got.DisconnectedAt},
		{"Deadline", &want.Deadline, &got.Deadline},
	} {
		require.True(t, p.w.Equal(*p.g), "%s: stored %v, read back %v", p.name, *p.w, *p.g)
		*p.w, *p.g = time.Time{}, time.Time{}
	}
	if len(want.Groups) == 0 {
		want.Groups = nil
	}
	if len(got.Groups) == 0 {
		got.Groups = nil
	}
	require.Equal(t, want.PSK.Hex(), got.PSK.Hex(), "PSK")
	require.Equal(t, []byte(want.SecretHash), []byte(got.SecretHash), "SecretHash")
	want.PSK, got.PSK = nil, nil
	want.SecretHash, got.SecretHash = nil, nil
	require.Equal(t, want, got)
}

func testCopies(t *testing.T, st registry.Store) {
	d := dev(1)
	mustCreate(t, st, d)
	d.PSK[0] = 0xff // the caller's slice must not be the stored one
	got, err := st.Get(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, byte(1), got.PSK[0], "Create must copy the PSK")
	got.PSK[0] = 0xee
	got.Info.Name = "changed"
	again, err := st.Get(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, byte(1), again.PSK[0], "Get must return a copy")
	require.Equal(t, "meter 1", again.Info.Name)

	// A failing Update's fn scribbling on its copy changes nothing.
	_, err = st.Update(ctx, d.ID, func(d *registry.Device) error {
		d.PSK[0] = 0xdd
		d.Info.Name = "scribbled"
		return errors.New("refused")
	})
	require.Error(t, err)
	again, err = st.Get(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, byte(1), again.PSK[0], "Update's fn must get a copy")
	require.Equal(t, "meter 1", again.Info.Name)
}

func testCanceled(t *testing.T, st registry.Store) {
	mustCreate(t, st, dev(1))
	c, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, st.Create(c, dev(2)), context.Canceled, "Create")
	_, err := st.Get(c, dev(1).ID)
	require.ErrorIs(t, err, context.Canceled, "Get")
	_, err = st.Update(c, dev(1).ID, func(d *registry.Device) error { d.Info.Name = "x"; return nil })
	require.ErrorIs(t, err, context.Canceled, "Update")
	_, _, err = st.List(c, registry.Query{})
	require.ErrorIs(t, err, context.Canceled, "List")
	_, err = st.Delete(c, dev(1).ID, nil)
	require.ErrorIs(t, err, context.Canceled, "Delete")
	got, err := st.Get(ctx, dev(1).ID)
	require.NoError(t, err, "nothing was deleted")
	require.Equal(t, "meter 1", got.Info.Name, "nothing was changed")
}

func testNodeKeyUnique(t *testing.T, st registry.Store) {
	d := dev(1)
	mustCreate(t, st, d)
	other := dev(2)
	other.NodeID = "urn:imei:" + d.NodeID
	err := st.Create(ctx, other)
	require.ErrorIs(t, err, registry.ErrNodeIDTaken, "urn:imei:X after X (REG-1)")

	third := dev(3)
	third.NodeID = "URN:IMEI:" + dev(4).NodeID
	mustCreate(t, st, third)
	got, err := st.GetByNodeKey(ctx, dev(4).NodeID)
	require.NoError(t, err, "GetByNodeKey(X) for a device registered as urn:imei:X")
	require.Equal(t, third.ID, got.ID)
	plain := dev(4)
	require.ErrorIs(t, st.Create(ctx, plain), registry.ErrNodeIDTaken, "X after urn:imei:X")
}

func testConcurrentSameNode(t *testing.T, st registry.Store) {
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			d := dev(100 + i)
			d.NodeID = "864000000000001"
			errs[i] = st.Create(ctx, d)
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			require.ErrorIs(t, err, registry.ErrNodeIDTaken)
		}
	}
	require.Equal(t, 1, ok, "exactly one of %d concurrent Creates with the same nodeId may succeed", n)
}

func testUpdate(t *testing.T, st registry.Store) {
	mustCreate(t, st, dev(1))
	mustCreate(t, st, dev(2))
	got, err := st.Update(ctx, dev(1).ID, func(d *registry.Device) error {
		d.Status = registry.StatusOnline
		d.Bound = true
		d.Info.Model = "WM2"
		d.NodeID = "urn:imei:999"
		d.Deadline = base.Add(25 * time.Hour)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, registry.StatusOnline, got.Status)

	// Indexes follow the change.
	list, n, err := st.List(ctx, registry.Query{Status: registry.StatusOnline})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{dev(1).ID}, ids(list))
	list, _, err = st.List(ctx, registry.Query{Status: registry.StatusInactive})
	require.NoError(t, err)
	require.Equal(t, []string{dev(2).ID}, ids(list), "old status index entry must be gone")
	list, _, err = st.List(ctx, registry.Query{ManufacturerID: "acme", Model: "WM1"})
	require.NoError(t, err)
	require.Equal(t, []string{dev(2).ID}, ids(list), "old product index entry must be gone")
	_, err = st.GetByNodeKey(ctx, dev(1).NodeID)
	require.ErrorIs(t, err, registry.ErrNotFound, "old nodeId must be free after a change")
	got, err = st.GetByNodeKey(ctx, "999")
	require.NoError(t, err)
	require.Equal(t, dev(1).ID, got.ID)
	due, err := st.Due(ctx, base.Add(24*time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []string{dev(2).ID}, ids(due), "old deadline must be gone")

	// A failing fn stores nothing.
	boom := errors.New("boom")
	_, err = st.Update(ctx, dev(2).ID, func(d *registry.Device) error {
		d.Status = registry.StatusOffline
		return boom
	})
	require.ErrorIs(t, err, boom)
	got, err = st.Get(ctx, dev(2).ID)
	require.NoError(t, err)
	require.Equal(t, registry.StatusInactive, got.Status, "a failed Update must store nothing")

	_, err = st.Update(ctx, "nope", func(*registry.Device) error { return nil })
	require.ErrorIs(t, err, registry.ErrNotFound)
}

func testUpdateErrors(t *testing.T, st registry.Store) {
	mustCreate(t, st, dev(1))
	mustCreate(t, st, dev(2))
	_, err := st.Update(ctx, dev(1).ID, func(d *registry.Device) error {
		d.NodeID = "urn:imei:" + dev(2).NodeID
		return nil
	})
	require.ErrorIs(t, err, registry.ErrNodeIDTaken, "Update to another device's nodeId")
	_, err = st.Update(ctx, dev(1).ID, func(d *registry.Device) error {
		d.Groups = []string{"no-such-group"}
		return nil
	})
	require.ErrorIs(t, err, registry.ErrGroupNotFound, "Update into an unknown group")
	_, err = st.Update(ctx, dev(1).ID, func(d *registry.Device) error {
		d.ID = "other"
		return nil
	})
	require.ErrorIs(t, err, registry.ErrInvalid, "Update that changes the deviceId")
	got, err := st.Get(ctx, dev(1).ID)
	require.NoError(t, err)
	requireSame(t, dev(1), got)
}

func testDelete(t *testing.T, st registry.Store) {
	d := dev(1)
	mustCreate(t, st, d)
	refuse := errors.New("not now")
	_, err := st.Delete(ctx, d.ID, func(got registry.Device) error {
		require.Equal(t, d.ID, got.ID)
		return refuse
	})
	require.ErrorIs(t, err, refuse)
	_, err = st.Get(ctx, d.ID)
	require.NoError(t, err, "a refused Delete must delete nothing")

	old, err := st.Delete(ctx, d.ID, nil)
	require.NoError(t, err)
	require.Equal(t, d.ID, old.ID)
	_, err = st.Get(ctx, d.ID)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = st.GetByNodeKey(ctx, registry.NodeKey(d.NodeID))
	require.ErrorIs(t, err, registry.ErrNotFound, "Delete must free the nodeId (REG-5)")
	list, n, err := st.List(ctx, registry.Query{Status: registry.StatusInactive})
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, list)
	due, err := st.Due(ctx, base.Add(48*time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, due, "Delete must drop the deadline")
	_, err = st.Delete(ctx, d.ID, nil)
	require.ErrorIs(t, err, registry.ErrNotFound, "deleting an unknown device")

	mustCreate(t, st, d) // the nodeId can be registered again
}

func testGateways(t *testing.T, st registry.Store) {
	gw := dev(1)
	gw.NodeType = registry.Gateway
	mustCreate(t, st, gw)
	for i := 2; i <= 4; i++ {
		s := dev(i)
		s.GatewayID = gw.ID
		mustCreate(t, st, s)
	}
	mustCreate(t, st, dev(5))
	list, n, err := st.List(ctx, registry.Query{GatewayID: gw.ID})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, []string{dev(2).ID, dev(3).ID, dev(4).ID}, ids(list))

	_, err = st.Delete(ctx, gw.ID, nil)
	require.ErrorIs(t, err, registry.ErrHasSubDevices, "deleting a gateway with sub-devices")
	for i := 2; i <= 4; i++ {
		_, err := st.Delete(ctx, dev(i).ID, nil)
		require.NoError(t, err)
	}
	_, err = st.Delete(ctx, gw.ID, nil)
	require.NoError(t, err, "a gateway without sub-devices can go")
}

func testListFilters(t *testing.T, st registry.Store) {
	g1 := registry.Group{ID: "g1", Name: "north", CreatedAt: base}
	require.NoError(t, st.CreateGroup(ctx, g1))
	gw := dev(0)
	gw.NodeType = registry.Gateway
	mustCreate(t, st, gw)
	statuses := []registry.Status{registry.StatusInactive, registry.StatusOnline, registry.StatusOffline, registry.StatusAbnormal}
	for i := 1; i <= 12; i++ {
		d := dev(i)
		d.Status = statuses[i%4]
		if i%3 == 0 {
			d.Info.Model = "WM2"
			d.Info.DeviceType = "GasMeter"
		}
		if i%2 == 0 {
			d.GatewayID = gw.ID
		}
		if i <= 5 {
			d.Groups = []string{"g1"}
		}
		mustCreate(t, st, d)
	}
	want := func(pred func(i int) bool) []string {
		var out []string
		for i := 1; i <= 12; i++ {
			if pred(i) {
				out = append(out, dev(i).ID)
			}
		}
		return out
	}
	cases := []struct {
		name string
		q    registry.Query
		want []string
	}{
		{"all", registry.Query{}, append([]string{gw.ID}, want(func(int) bool { return true })...)},
		{"status ONLINE", registry.Query{Status: registry.StatusOnline}, want(func(i int) bool { return i%4 == 1 })},
		{"product WM2", registry.Query{ManufacturerID: "acme", Model: "WM2"}, want(func(i int) bool { return i%3 == 0 })},
		{"model only", registry.Query{Model: "WM2"}, want(func(i int) bool { return i%3 == 0 })},
		{"deviceType", registry.Query{DeviceType: "GasMeter"}, want(func(i int) bool { return i%3 == 0 })},
		{"gateway", registry.Query{GatewayID: gw.ID}, want(func(i int) bool { return i%2 == 0 })},
		{"group", registry.Query{GroupID: "g1"}, want(func(i int) bool { return i <= 5 })},
		{"nodeType GATEWAY", registry.Query{NodeType: registry.Gateway}, []string{gw.ID}},
		{"status+gateway", registry.Query{Status: registry.StatusOffline, GatewayID: gw.ID}, want(func(i int) bool { return i%4 == 2 })},
		{"group+product", registry.Query{GroupID: "g1", ManufacturerID: "acme", Model: "WM2"}, want(func(i int) bool { return i <= 5 && i%3 == 0 })},
		{"created in [3 s, 6 s)", registry.Query{From: base.Add(3 * time.Second), To: base.Add(6 * time.Second)}, want(func(i int) bool { return i >= 3 && i < 6 })},
		{"created from 10 s, ONLINE", registry.Query{From: base.Add(10 * time.Second), Status: registry.StatusOnline}, nil},
		{"created before 2 s", registry.Query{To: base.Add(2 * time.Second)}, append([]string{gw.ID}, dev(1).ID)},
		{"unknown group", registry.Query{GroupID: "zzz"}, nil},
		{"unknown product", registry.Query{ManufacturerID: "x", Model: "y"}, nil},
	}
	for _, c := range cases {
		list, n, err := st.List(ctx, c.q)
		require.NoError(t, err, c.name)
		require.Equal(t, len(c.want), n, "%s: total", c.name)
		if c.want == nil {
			require.Empty(t, list, c.name)
			continue
		}
		require.Equal(t, c.want, ids(list), "%s: List(%+v)", c.name, c.q)
	}
}

func testListPaging(t *testing.T, st registry.Store) {
	var all []string
	for i := 1; i <= 23; i++ {
		mustCreate(t, st, dev(i))
		all = append(all, dev(i).ID)
	}
	var got []string
	for p := 0; ; p++ {
		list, n, err := st.List(ctx, registry.Query{PageNo: p, PageSize: 5})
		require.NoError(t, err)
		require.Equal(t, 23, n, "total on page %d", p)
		if len(list) == 0 {
			require.Equal(t, 5, p, "pages of 5 for 23 devices")
			break
		}
		require.LessOrEqual(t, len(list), 5)
		got = append(got, ids(list)...)
	}
	require.Equal(t, all, got, "pages in deviceId order, each device once")
	list, n, err := st.List(ctx, registry.Query{PageNo: 1000, PageSize: 5})
	require.NoError(t, err)
	require.Equal(t, 23, n)
	require.Empty(t, list, "a page past the end is empty")
}

func testDue(t *testing.T, st registry.Store) {
	for i := 1; i <= 6; i++ {
		d := dev(i)
		d.Deadline = base.Add(time.Duration(10-i) * time.Minute) // 6 is earliest
		if i == 3 {
			d.Deadline = time.Time{}
		}
		mustCreate(t, st, d)
	}
	due, err := st.Due(ctx, base.Add(6*time.Minute), 100)
	require.NoError(t, err)
	require.Equal(t, []string{dev(6).ID, dev(5).ID, dev(4).ID}, ids(due), "deadline ≤ t, earliest first, zero never")
	due, err = st.Due(ctx, base.Add(time.Hour), 2)
	require.NoError(t, err)
	require.Equal(t, []string{dev(6).ID, dev(5).ID}, ids(due), "limit")
	due, err = st.Due(ctx, base.Add(time.Hour), 100)
	require.NoError(t, err)
	require.Len(t, due, 5, "Due must not consume what it returns")

	_, err = st.Update(ctx, dev(6).ID, func(d *registry.Device) error { d.Deadline = base.Add(2 * time.Hour); return nil })
	require.NoError(t, err)
	_, err = st.Update(ctx, dev(3).ID, func(d *registry.Device) error { d.Deadline = base; return nil })
	require.NoError(t, err)
	due, err = st.Due(ctx, base.Add(time.Hour), 100)
	require.NoError(t, err)
	require.Equal(t, []string{dev(3).ID, dev(5).ID, dev(4).ID, dev(2).ID, dev(1).ID}, ids(due), "after moving deadlines")
	next, err := st.Due(ctx, time.Unix(1<<40, 0), 1)
	require.NoError(t, err)
	require.Equal(t, []string{dev(3).ID}, ids(next), "the next deadline")
}

func testGroups(t *testing.T, st registry.Store) {
	a := registry.Group{ID: "g-a", Name: "alpha", Description: "first", CreatedAt: base}
	b := registry.Group{ID: "g-b", Name: "beta", CreatedAt: base.Add(time.Second)}
	require.NoError(t, st.CreateGroup(ctx, b))
	require.NoError(t, st.CreateGroup(ctx, a))
	require.ErrorIs(t, st.CreateGroup(ctx, registry.Group{ID: "g-c", Name: "alpha"}), registry.ErrGroupExists, "same name")
	require.ErrorIs(t, st.CreateGroup(ctx, registry.Group{ID: "g-a", Name: "gamma"}), registry.ErrGroupExists, "same id")
	got, err := st.Group(ctx, "g-a")
	require.NoError(t, err)
	require.Equal(t, a.Name, got.Name)
	require.Equal(t, a.Description, got.Description)
	require.True(t, a.CreatedAt.Equal(got.CreatedAt))
	_, err = st.Group(ctx, "nope")
	require.ErrorIs(t, err, registry.ErrGroupNotFound)
	all, err := st.Groups(ctx)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, []string{"g-a", "g-b"}, []string{all[0].ID, all[1].ID}, "ordered by id")

	d := dev(1)
	d.Groups = []string{"g-b", "g-a"}
	mustCreate(t, st, d)
	stored, err := st.Get(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"g-a", "g-b"}, stored.Groups, "Groups kept sorted")
	_, err = st.Update(ctx, d.ID, func(d *registry.Device) error {
		d.Groups = slices.DeleteFunc(d.Groups, func(g string) bool { return g == "g-a" })
		return nil
	})
	require.NoError(t, err)
	list, n, err := st.List(ctx, registry.Query{GroupID: "g-a"})
	require.NoError(t, err)
	require.Zero(t, n, "left group g-a")
	require.Empty(t, list)
	list, _, err = st.List(ctx, registry.Query{GroupID: "g-b"})
	require.NoError(t, err)
	require.Equal(t, []string{d.ID}, ids(list))
}

func testDeleteGroup(t *testing.T, st registry.Store) {
	require.NoError(t, st.CreateGroup(ctx, registry.Group{ID: "g1", Name: "one"}))
	require.NoError(t, st.CreateGroup(ctx, registry.Group{ID: "g2", Name: "two"}))
	for i := 1; i <= 3; i++ {
		d := dev(i)
		d.Groups = []string{"g1", "g2"}
		mustCreate(t, st, d)
	}
	require.NoError(t, st.DeleteGroup(ctx, "g1"))
	require.ErrorIs(t, st.DeleteGroup(ctx, "g1"), registry.ErrGroupNotFound, "deleting twice")
	_, err := st.Group(ctx, "g1")
	require.ErrorIs(t, err, registry.ErrGroupNotFound)
	for i := 1; i <= 3; i++ {
		d, err := st.Get(ctx, dev(i).ID)
		require.NoError(t, err)
		require.Equal(t, []string{"g2"}, d.Groups, "DeleteGroup must take the group out of every member")
	}
	_, n, err := st.List(ctx, registry.Query{GroupID: "g1"})
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoError(t, st.CreateGroup(ctx, registry.Group{ID: "g3", Name: "one"}), "the name is free again")
}

// testRegistry drives a Registry over the store: the rules must hold
// whatever keeps the data.
func testRegistry(t *testing.T, st registry.Store) {
	var events []registry.Event
	var mu sync.Mutex
	r, err := registry.New(st, registry.ProductsFunc(func(m, model string) bool { return m == "acme" && model == "WM1" }),
		registry.Config{Listener: registry.ListenerFunc(func(e registry.Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		})})
	require.NoError(t, err)
	defer r.Close()
	info := registry.Info{ManufacturerID: "acme", Model: "WM1", DeviceType: "WaterMeter", ProtocolType: "CoAP"}
	d, err := r.Register(ctx, registry.Enrollment{NodeID: "861234567890123", Info: info})
	require.NoError(t, err)
	require.Len(t, d.PSK, registry.GeneratedPSKLen)
	_, err = r.Register(ctx, registry.Enrollment{NodeID: "urn:imei:861234567890123", Info: info})
	require.ErrorIs(t, err, registry.ErrNodeIDTaken)

	key, err := r.PSK(ctx, "urn:imei:861234567890123")
	require.NoError(t, err)
	got, err := r.Connect(ctx, "861234567890123", registry.Connection{PSK: key})
	require.NoError(t, err)
	require.True(t, got.Bound)
	require.Equal(t, registry.StatusOnline, got.Status)

	list, n, err := r.List(ctx, registry.Query{Status: registry.StatusOnline})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, d.ID, list[0].ID)

	require.NoError(t, r.Delete(ctx, d.ID))
	_, err = r.PSK(ctx, "861234567890123")
	require.ErrorIs(t, err, registry.ErrNotFound, "a deleted device has no key (REG-5)")
	mu.Lock()
	defer mu.Unlock()
	var types []registry.EventType
	for _, e := range events {
		types = append(types, e.Type)
	}
	require.Equal(t, []registry.EventType{registry.EventAdded, registry.EventBound, registry.EventStatusChanged, registry.EventDeleted}, types)
}

// testOwner: a device's AppID is kept, changed by Update, and selects in
// List (alone, with paging, and with another filter); "" selects every
// device (APP-3).
func testOwner(t *testing.T, st registry.Store) {
	for n := 1; n <= 6; n++ {
		d := dev(n)
		d.AppID = []string{"app-a", "app-b", ""}[n%3]
		if n == 4 {
			d.Status = registry.StatusOnline
		}
		mustCreate(t, st, d)
	}
	got, err := st.Get(ctx, "dev-0001")
	require.NoError(t, err)
	require.Equal(t, "app-b", got.AppID)
	list := func(q registry.Query) ([]string, int) {
		t.Helper()
		ds, total, err := st.List(ctx, q)
		require.NoError(t, err)
		return ids(ds), total
	}
	page, total := list(registry.Query{AppID: "app-a"})
	require.Equal(t, []string{"dev-0003", "dev-0006"}, page)
	require.Equal(t, 2, total)
	page, total = list(registry.Query{AppID: "app-b", PageSize: 1, PageNo: 1})
	require.Equal(t, []string{"dev-0004"}, page)
	require.Equal(t, 2, total)
	page, _ = list(registry.Query{AppID: "app-b", Status: registry.StatusInactive})
	require.Equal(t, []string{"dev-0001"}, page)
	_, total = list(registry.Query{})
	require.Equal(t, 6, total)

	_, err = st.Update(ctx, "dev-0002", func(d *registry.Device) error { d.AppID = "app-a"; return nil })
	require.NoError(t, err)
	page, _ = list(registry.Query{AppID: "app-a"})
	require.Equal(t, []string{"dev-0002", "dev-0003", "dev-0006"}, page)
	_, err = st.Delete(ctx, "dev-0003", nil)
	require.NoError(t, err)
	page, _ = list(registry.Query{AppID: "app-a"})
	require.Equal(t, []string{"dev-0002", "dev-0006"}, page)
}
