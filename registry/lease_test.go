package registry_test

import (
	"context"
	"testing"
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
