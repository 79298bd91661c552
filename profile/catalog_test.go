package profile_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/doze-io/doze/profile"
	"github.com/stretchr/testify/require"
)

// devices is a DeviceCounter for tests.
type devices struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *devices) CountDevices(manufacturerID, model string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[manufacturerID+"/"+model]
}

func (d *devices) set(key string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n[key] = n
}

// The registry's Products interface (docs/architecture.md) is satisfied.
var _ interface {
	Exists(manufacturerID, model string) bool
} = (*profile.Catalog)(nil)

// TestCatalog covers PRF-7: keys, ErrExists (§8.4), locking (§8.6).
func TestCatalog(t *testing.T) {
	devs := &devices{n: map[string]int{}}
	c := profile.NewCatalog(devs)
	wm := loadFixtureDir(t, "WaterMeter_DozeLabs_WM100")
	lock := loadFixtureDir(t, "SmartLock_DozeLabs_SL2")

	require.NoError(t, c.Add(wm))
	require.NoError(t, c.Add(lock))
	require.True(t, c.Exists("DozeLabs", "WM100"))
	require.False(t, c.Exists("DozeLabs", "WM101"))

	err := c.Add(loadFixtureDir(t, "WaterMeter_DozeLabs_WM100"))
	require.ErrorIs(t, err, profile.ErrExists)
	require.Contains(t, err.Error(), `manufacturerId "DozeLabs" and model "WM100"`)

	got, err := c.Get("DozeLabs", "SL2")
	require.NoError(t, err)
	require.Same(t, lock, got)
	_, err = c.Get("DozeLabs", "nope")
	require.ErrorIs(t, err, profile.ErrNotFound)

	list := c.List()
	require.Len(t, list, 2)
	require.Equal(t, "SL2", list[0].Model, "List is ordered by manufacturerId, model")
	require.Equal(t, "WM100", list[1].Model)

	// Locked while devices use it: replace and delete fail, naming the count.
	devs.set("DozeLabs/WM100", 3)
	wm2 := loadFixtureDir(t, "WaterMeter_DozeLabs_WM100")
	err = c.Replace(wm2)
	require.ErrorIs(t, err, profile.ErrLocked)
	var le *profile.LockedError
	require.True(t, errors.As(err, &le))
	require.Equal(t, 3, le.Devices)
	require.Contains(t, err.Error(), "3 device(s)")
	require.ErrorIs(t, c.Delete("DozeLabs", "WM100"), profile.ErrLocked)
	got, _ = c.Get("DozeLabs", "WM100")
	require.Same(t, wm, got, "a refused Replace keeps the old product")

	// Unlocked once the devices are gone.
	devs.set("DozeLabs/WM100", 0)
	require.NoError(t, c.Replace(wm2))
	got, _ = c.Get("DozeLabs", "WM100")
	require.Same(t, wm2, got)
	require.NoError(t, c.Delete("DozeLabs", "WM100"))
	require.False(t, c.Exists("DozeLabs", "WM100"))
	require.ErrorIs(t, c.Delete("DozeLabs", "WM100"), profile.ErrNotFound)
	require.ErrorIs(t, c.Replace(wm2), profile.ErrNotFound)

	require.ErrorIs(t, c.Add(&profile.Product{Model: "x"}), profile.ErrInvalid, "a product needs a key")
}

// TestCatalogNilCounter: without a DeviceCounter nothing is ever locked.
func TestCatalogNilCounter(t *testing.T) {
	c := profile.NewCatalog(nil)
	p := &profile.Product{ManufacturerID: "M", Model: "X"}
	require.NoError(t, c.Add(p))
	require.NoError(t, c.Replace(&profile.Product{ManufacturerID: "M", Model: "X"}))
	require.NoError(t, c.Delete("M", "X"))
}

// TestCatalogConcurrent runs adders, readers and checks at once under -race.
func TestCatalogConcurrent(t *testing.T) {
	c := profile.NewCatalog(&devices{n: map[string]int{}})
	base := loadFixtureDir(t, "WaterMeter_DozeLabs_WM100")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				p := *base
				p.Model = fmt.Sprintf("M%d-%d", g, i)
				if err := c.Add(&p); err != nil {
					t.Error(err)
					return
				}
				got, err := c.Get("DozeLabs", p.Model)
				if err != nil {
					t.Error(err)
					return
				}
				if err := got.CheckReport("Battery", map[string]any{"batteryLevel": 50}); err != nil {
					t.Error(err)
				}
				_ = c.List()
			}
		}()
	}
	wg.Wait()
	require.Len(t, c.List(), 200)
}

// TestCatalogCodec: a product that ships a codec is imported, replaced and
// deleted together with it (PRF-7, §8.9).
func TestCatalogCodec(t *testing.T) {
	devs := &devices{n: map[string]int{}}
	c := profile.NewCatalog(devs)
	p := loadFixtureDir(t, "WaterMeter_DozeLabs_WM100")
	require.NoError(t, c.AddWithCodec(p, []byte(`{"messages":[]}`)))
	got, ok := c.Codec("DozeLabs", "WM100")
	require.True(t, ok)
	require.Equal(t, `{"messages":[]}`, string(got))
	require.ErrorIs(t, c.AddWithCodec(p, []byte(`{}`)), profile.ErrExists)

	devs.set("DozeLabs/WM100", 1)
	require.ErrorIs(t, c.ReplaceWithCodec(p, []byte(`{"v":2}`)), profile.ErrLocked)
	got, _ = c.Codec("DozeLabs", "WM100")
	require.Equal(t, `{"messages":[]}`, string(got), "a refused replace keeps the codec")

	devs.set("DozeLabs/WM100", 0)
	require.NoError(t, c.ReplaceWithCodec(p, []byte(`{"v":2}`)))
	got, _ = c.Codec("DozeLabs", "WM100")
	require.Equal(t, `{"v":2}`, string(got))
	require.NoError(t, c.Replace(p))
	_, ok = c.Codec("DozeLabs", "WM100")
	require.False(t, ok, "Replace without a codec drops the old one")
	require.NoError(t, c.AddWithCodec(loadFixtureDir(t, "SmartLock_DozeLabs_SL2"), []byte("x")))
	require.NoError(t, c.Delete("DozeLabs", "SL2"))
	_, ok = c.Codec("DozeLabs", "SL2")
	require.False(t, ok)
}
