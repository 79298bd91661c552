package registry_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

// leaseMem is a MemStore that can hold the sweep lease (registry.Leaser).
type leaseMem struct{ *registry.MemStore }

func (leaseMem) AcquireLease(context.Context, string, string, time.Time, time.Duration) (bool, error) {
	return true, nil
}

// TestNodeNeedsLeaser: Config.Node over a Store that cannot hold leases,
// or a sweep lease not longer than Recheck, is refused at New.
func TestNodeNeedsLeaser(t *testing.T) {
	_, err := registry.New(registry.NewMemStore(), catalog, registry.Config{Node: "n1"})
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.ErrorContains(t, err, "cannot hold leases")
	_, err = registry.New(leaseMem{registry.NewMemStore()}, catalog, registry.Config{Node: "n1", Recheck: time.Minute, SweepLease: time.Minute})
	require.ErrorContains(t, err, "must exceed Config.Recheck")
	r, err := registry.New(leaseMem{registry.NewMemStore()}, catalog, registry.Config{Node: "n1", Recheck: time.Minute})
	require.NoError(t, err)
	require.Equal(t, 3*time.Minute, r.Config().SweepLease)
}

// heldLease is a MemStore with one sweep lease in memory: its holder and
// expiry can be set, and err, when set, fails every AcquireLease.
type heldLease struct {
	*registry.MemStore
	mu      sync.Mutex
	holder  string
	expires time.Time
	err     error
	asked   int // AcquireLease calls
}

func (l *heldLease) AcquireLease(_ context.Context, name, owner string, now time.Time, lease time.Duration) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked++
	if name != registry.SweepLeaseName {
		return false, errors.New("unexpected lease " + name)
	}
	if l.err != nil {
		return false, l.err
	}
	if l.holder != "" && l.holder != owner && now.Before(l.expires) {
		return false, nil
	}
	l.holder, l.expires = owner, now.Add(lease)
	return true, nil
}

func (l *heldLease) set(holder string, expires time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holder, l.expires, l.err = holder, expires, err
}

func (l *heldLease) calls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.asked
}

// leaseBubble runs fn in a synctest bubble with a Registry of node n1 over
// st, whose Run goroutine is going; it stops Run at the end.
func leaseBubble(t *testing.T, fn func(t *testing.T, st *heldLease, r *registry.Registry)) {
	synctest.Test(t, func(t *testing.T) {
		st := &heldLease{MemStore: registry.NewMemStore()}
		r, err := registry.New(st, catalog, registry.Config{Node: "n1", Recheck: time.Minute})
		require.NoError(t, err)
		defer r.Close() // stops Run when fn fails
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		fn(t, st, r)
		cancel()
		require.NoError(t, <-done)
	})
}

// TestSweepNeedsLease: a registry with Config.Node sweeps no deadline
// while another node holds the sweep lease, and sweeps once that lease
// ended and it took it.
func TestSweepNeedsLease(t *testing.T) {
	leaseBubble(t, func(t *testing.T, st *heldLease, r *registry.Registry) {
		st.set("n2", time.Now().Add(10*time.Minute), nil)
		d := register(t, r, "861") // binding timeout 180 s
		time.Sleep(9 * time.Minute)
		synctest.Wait()
		_, err := r.Get(ctx, d.ID)
		require.NoError(t, err, "not expired while n2 holds the lease, 6 min after the deadline")
		require.Greater(t, st.calls(), 5, "n1 asks for the lease at every pass (every Recheck)")

		time.Sleep(2 * time.Minute) // n2's lease ended at 10 min; n1 asks at least every minute
		synctest.Wait()
		_, err = r.Get(ctx, d.ID)
		require.ErrorIs(t, err, registry.ErrNotFound, "expired once n1 holds the lease")
	})
}

// TestSweepLeaseError: a lease that cannot be read is not held: no sweep
// until AcquireLease answers again.
func TestSweepLeaseError(t *testing.T) {
	leaseBubble(t, func(t *testing.T, st *heldLease, r *registry.Registry) {
		st.set("", time.Time{}, errors.New("database down"))
		d := register(t, r, "861") // binding timeout 180 s
		time.Sleep(time.Hour)
		synctest.Wait()
		_, err := r.Get(ctx, d.ID)
		require.NoError(t, err, "not expired while the lease cannot be taken")
		require.Greater(t, st.calls(), 50, "n1 keeps asking every Recheck")

		st.set("", time.Time{}, nil)
		time.Sleep(time.Minute)
		synctest.Wait()
		_, err = r.Get(ctx, d.ID)
		require.ErrorIs(t, err, registry.ErrNotFound, "expired once the lease is held")
	})
}
