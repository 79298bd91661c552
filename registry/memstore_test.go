package registry_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/registry/registrytest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind (Run must
// return when stopped).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestImports(t *testing.T) { deptest.Check(t) }

func TestMemStore(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store { return registry.NewMemStore() })
}

// TestMemStoreDueCompacts: deadlines that move often leave stale heap
// entries; Due drops them and rebuilds the heap when they pile up, and
// still answers right.
func TestMemStoreDueCompacts(t *testing.T) {
	st := registry.NewMemStore()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		require.NoError(t, st.Create(ctx, registry.Device{ID: fmt.Sprint("d", i), NodeID: fmt.Sprint("n", i), Deadline: base.Add(time.Duration(i) * time.Hour)}))
	}
	for j := range 5000 { // like a device touched 5000 times
		_, err := st.Update(ctx, "d0", func(d *registry.Device) error {
			d.Deadline = base.Add(time.Duration(j+10) * time.Hour)
			return nil
		})
		require.NoError(t, err)
	}
	due, err := st.Due(ctx, base.Add(3*time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, due, 2)
	require.Equal(t, "d1", due[0].ID)
	require.Equal(t, "d2", due[1].ID)
	due, err = st.Due(ctx, base.Add(100000*time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, due, 3, "each device once, stale entries dropped")
	require.Equal(t, "d0", due[2].ID)
	require.True(t, due[2].Deadline.Equal(base.Add(5009*time.Hour)))
}
