package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

// TestAcquireLease: one holder at a time; the holder renews; another
// owner takes the lease only once it ended; of many asking at once, one
// gets it.
func TestAcquireLease(t *testing.T) {
	schema := newSchema(t)
	a, b := openSchema(t, schema), openSchema(t, schema)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for i := range 16 {
		db := []*DB{a, b}[i%2]
		wg.Go(func() {
			ok, err := db.AcquireLease(ctx, "sweep", fmt.Sprintf("node%d", i), t0, time.Minute)
			require.NoError(t, err)
			if ok {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Equal(t, 1, winners, "one of 16 owners asking at once gets the lease")

	ok, err := a.AcquireLease(ctx, "l", "n1", t0, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.AcquireLease(ctx, "l", "n2", t0.Add(59*time.Second), time.Minute)
	require.NoError(t, err)
	require.False(t, ok, "n1's lease lasts until t0+1m")
	ok, err = a.AcquireLease(ctx, "l", "n1", t0.Add(50*time.Second), time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "the holder renews")
	ok, err = b.AcquireLease(ctx, "l", "n2", t0.Add(109*time.Second), time.Minute)
	require.NoError(t, err)
	require.False(t, ok, "renewed until t0+1m50s")
	ok, err = b.AcquireLease(ctx, "l", "n2", t0.Add(110*time.Second), time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "taken over once it ended")
	ok, err = a.AcquireLease(ctx, "l", "n1", t0.Add(111*time.Second), time.Minute)
	require.NoError(t, err)
	require.False(t, ok, "the old holder lost it")
	_, err = a.AcquireLease(ctx, "", "n1", t0, time.Minute)
	require.Error(t, err, "a lease needs a name")
	_, err = a.AcquireLease(ctx, "l", "", t0, time.Minute)
	require.Error(t, err, "and an owner")
}

// TestRegistrySweepOneNode: two registries (two nodes) on one schema, 30
// NB-IoT devices falling silent: each goes OFFLINE once, told to one
// Listener once, and only the node holding the sweep lease sweeps (without
// the lease both would, each settling part of the devices). When that node
// stops, the other takes the sweep over after the lease ends.
func TestRegistrySweepOneNode(t *testing.T) {
	schema := newSchema(t)
	dbs := []*DB{openSchema(t, schema), openSchema(t, schema)}
	ctx := context.Background()
	products := registry.ProductsFunc(func(m, model string) bool { return m == "acme" && model == "WM1" })
	var mu sync.Mutex
	offline := []map[string]int{{}, {}}
	var regs []*registry.Registry
	var done []chan error
	for i, db := range dbs {
		r, err := registry.New(db.Registry(), products, registry.Config{
			Node: fmt.Sprintf("node%d", i+1), SilencePeriod: 2 * time.Second, Recheck: 200 * time.Millisecond,
			SweepLease: time.Second,
			Listener: registry.ListenerFunc(func(e registry.Event) {
				if e.Type == registry.EventStatusChanged && e.Device.Status == registry.StatusOffline {
					mu.Lock()
					offline[i][e.Device.ID]++
					mu.Unlock()
				}
			})})
		require.NoError(t, err)
		regs = append(regs, r)
		ch := make(chan error, 1)
		go func() { ch <- r.Run(ctx) }()
		done = append(done, ch)
		t.Cleanup(func() { r.Close(); <-ch })
	}
	info := registry.Info{ManufacturerID: "acme", Model: "WM1", DeviceType: "WaterMeter", ProtocolType: "CoAP"}
	connect := func(n int, base int, regs ...*registry.Registry) []string {
		var ids []string
		for i := range n {
			nodeID := fmt.Sprintf("8612345678%05d", base+i)
			d, err := regs[i%len(regs)].Register(ctx, registry.Enrollment{NodeID: nodeID, Info: info})
			require.NoError(t, err)
			key, err := regs[i%len(regs)].PSK(ctx, nodeID)
			require.NoError(t, err)
			_, err = regs[(i+1)%len(regs)].Connect(ctx, nodeID, registry.Connection{PSK: key})
			require.NoError(t, err)
			ids = append(ids, d.ID)
		}
		return ids
	}
	count := func() (total int, per [2]int, twice []string) {
		mu.Lock()
		defer mu.Unlock()
		seen := map[string]int{}
		for i, m := range offline {
			for id, n := range m {
				per[i] += n
				total += n
				seen[id] += n
			}
		}
		for id, n := range seen {
			if n > 1 {
				twice = append(twice, id)
			}
		}
		return
	}
	ids := connect(30, 0, regs...)
	require.Eventually(t, func() bool { n, _, _ := count(); return n >= len(ids) }, 20*time.Second, 20*time.Millisecond)
	time.Sleep(600 * time.Millisecond) // three more passes of each node: nothing more to tell
	total, per, twice := count()
	require.Empty(t, twice, "devices told OFFLINE twice")
	require.Equal(t, len(ids), total)
	require.True(t, per[0] == 0 || per[1] == 0, "one node sweeps, not both: %v", per)

	// The sweeping node stops; the other takes over after the lease.
	sweeper := 0
	if per[1] > 0 {
		sweeper = 1
	}
	require.NoError(t, regs[sweeper].Close())
	require.NoError(t, <-done[sweeper])
	done[sweeper] <- nil // for the cleanup
	other := 1 - sweeper
	more := connect(10, 100, regs[other])
	require.Eventually(t, func() bool { _, p, _ := count(); return p[other] == len(more) }, 20*time.Second, 20*time.Millisecond,
		"the other node turns the new devices OFFLINE")
	total, _, twice = count()
	require.Empty(t, twice)
	require.Equal(t, len(ids)+len(more), total)
}
