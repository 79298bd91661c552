package ota_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/pcp"
	"github.com/stretchr/testify/require"
)

func TestPackageValidate(t *testing.T) {
	ok := ota.Package{ID: "p", Kind: ota.Software, Version: "V1", Size: 1000}
	tests := []struct {
		name  string
		edit  func(p *ota.Package)
		field string
	}{
		{"no id", func(p *ota.Package) { p.ID = "" }, "fileId"},
		{"kind", func(p *ota.Package) { p.Kind = "zip" }, "fileType"},
		{"no version", func(p *ota.Package) { p.Version = "" }, "version"},
		{"long version", func(p *ota.Package) { p.Version = "V1234567890123456" }, "version"},
		{"source version", func(p *ota.Package) { p.SourceVersions = []string{"V0", ""} }, "sourceVersions[1]"},
		{"block size 31", func(p *ota.Package) { p.BlockSize = 31 }, "blockSize"},
		{"block size 501", func(p *ota.Package) { p.BlockSize = 501 }, "blockSize"},
		{"too many blocks", func(p *ota.Package) { p.BlockSize = 32; p.Size = 32*65535 + 1 }, "size"},
	}
	require.NoError(t, ok.Validate())
	for _, bs := range []int{0, 32, 500} {
		p := ok
		p.BlockSize = bs
		require.NoError(t, p.Validate(), "block size %d", bs)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.edit(&p)
			err := p.Validate()
			require.ErrorIs(t, err, ota.ErrInvalid)
			var fe *ota.FieldError
			require.True(t, errors.As(err, &fe))
			require.Equal(t, tt.field, fe.Field, "%v", err)
		})
	}
}

func TestPackageBlocksAndAccepts(t *testing.T) {
	p := ota.Package{Size: 1001, BlockSize: 500}
	require.Equal(t, 3, p.Blocks())
	p.BlockSize = 0
	require.Equal(t, 3, p.Blocks(), "default block size 500")
	require.True(t, p.Accepts("anything"), "no source versions: any")
	p.SourceVersions = []string{"V1", "V2"}
	require.True(t, p.Accepts("V2"))
	require.False(t, p.Accepts("V3"))
}

// TestAddPackage: size, SHA-256 and check code come from the content
// (OTA-1); ids are unique.
func TestAddPackage(t *testing.T) {
	e, _, files := setup(t, ota.Config{})
	body := content(70_000, 11) // more than one 32 KiB read
	p := addPackage(t, e, files, ota.Package{ID: "p", Version: "V2", Description: "fix"}, body)
	require.Equal(t, int64(70_000), p.Size)
	require.Equal(t, sha256.Sum256(body), p.Digest)
	require.Equal(t, pcp.CRC16(0, body), p.CheckCode)
	require.Equal(t, 500, p.BlockSize)
	require.Len(t, p.DigestHex(), 64)
	got, err := e.Package(context.Background(), "p")
	require.NoError(t, err)
	require.Equal(t, p.Digest, got.Digest)

	_, err = e.AddPackage(context.Background(), ota.Package{ID: "p", Kind: ota.Software, Version: "V3"})
	require.ErrorIs(t, err, ota.ErrInvalid, "an id in use")
	_, err = e.AddPackage(context.Background(), ota.Package{ID: "absent", Kind: ota.Software, Version: "V3"})
	require.ErrorIs(t, err, ota.ErrNotFound, "no content")
	files.Put("short", []byte("12345"))
	_, err = e.AddPackage(context.Background(), ota.Package{ID: "short", Kind: ota.Software, Version: "V3", Size: 6})
	require.ErrorIs(t, err, ota.ErrInvalid, "a size that is not the content's")
	require.Contains(t, err.Error(), "has 5 bytes")
	files.Put("empty", nil)
	_, err = e.AddPackage(context.Background(), ota.Package{ID: "empty", Kind: ota.Software, Version: "V3"})
	require.ErrorIs(t, err, ota.ErrInvalid)
}

func TestDeletePackage(t *testing.T) {
	ctx := context.Background()
	e, _, files := setup(t, ota.Config{})
	addPackage(t, e, files, ota.Package{ID: "p", Version: "V2"}, content(100, 1))
	_, err := e.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"d"}})
	require.NoError(t, err)
	require.ErrorIs(t, e.DeletePackage(ctx, "p"), ota.ErrPackageInUse)
	_, err = e.Stop(ctx, "t")
	require.NoError(t, err)
	require.NoError(t, e.DeletePackage(ctx, "p"))
	require.ErrorIs(t, e.DeletePackage(ctx, "p"), ota.ErrNotFound)
	all, err := e.Packages(ctx)
	require.NoError(t, err)
	require.Empty(t, all)
}

func TestDir(t *testing.T) {
	d := ota.Dir(t.TempDir())
	n, err := d.Put("fw-1.bin", bytes.NewReader([]byte("firmware")))
	require.NoError(t, err)
	require.Equal(t, int64(8), n)
	r, err := d.Open("fw-1.bin")
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = r.ReadAt(buf, 4)
	require.NoError(t, err)
	require.Equal(t, "ware", string(buf))
	r.(*os.File).Close()
	for _, bad := range []string{"", "..", "a/b", ".hidden"} {
		_, err := d.Put(bad, bytes.NewReader(nil))
		require.ErrorIs(t, err, ota.ErrInvalid, "Put(%q)", bad)
	}
	_, err = d.Open("absent")
	require.ErrorIs(t, err, ota.ErrNotFound)
	require.NoError(t, d.Remove("fw-1.bin"))
	entries, _ := os.ReadDir(string(d))
	require.Empty(t, entries, "no temporary file left")
	_, err = ota.Dir(filepath.Join(string(d), "missing")).Put("x", bytes.NewReader(nil))
	require.Error(t, err)
}

func TestPolicyTimes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	win := ota.Policy{Execute: ota.Window, Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	tests := []struct {
		name string
		got  time.Time
		want time.Time
	}{
		{"now starts at creation", ota.Policy{}.StartAt(t0), t0},
		{"device_online starts at creation", ota.Policy{Execute: ota.DeviceOnline}.StartAt(t0), t0},
		{"window starts at its start", win.StartAt(t0), t0.Add(time.Hour)},
		{"window already open", win.StartAt(t0.Add(90 * time.Minute)), t0.Add(90 * time.Minute)},
		{"online deadline", ota.Policy{Execute: ota.DeviceOnline}.OnlineDeadline(t0, 5*time.Hour), t0.Add(5 * time.Hour)},
		{"window deadline is its end", win.OnlineDeadline(t0, 5*time.Hour), t0.Add(2 * time.Hour)},
		{"first retry", ota.Policy{RetryInterval: 10 * time.Minute}.RetryAt(t0, 1, time.Hour), t0.Add(10 * time.Minute)},
		{"third retry doubles twice", ota.Policy{RetryInterval: 10 * time.Minute}.RetryAt(t0, 3, time.Hour), t0.Add(40 * time.Minute)},
		{"default interval", ota.Policy{}.RetryAt(t0, 2, time.Hour), t0.Add(2 * time.Hour)},
		{"capped at a day", ota.Policy{RetryInterval: 10 * time.Hour}.RetryAt(t0, 5, time.Hour), t0.Add(24 * time.Hour)},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.got, tt.name)
	}
}

func TestNewErrors(t *testing.T) {
	_, err := ota.New(nil, &ota.MemFiles{}, &discard{}, ota.Config{})
	require.ErrorIs(t, err, ota.ErrInvalid)
	_, err = ota.New(ota.NewMemStore(), &ota.MemFiles{}, &discard{}, ota.Config{DownloadTimeout: -1})
	var fe *ota.FieldError
	require.True(t, errors.As(err, &fe))
	require.Equal(t, "Config.DownloadTimeout", fe.Field)
}

// TestRunAndClose: Run owns its goroutines; Close stops and waits for it
// and is idempotent.
func TestRunAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, err := ota.New(ota.NewMemStore(), &ota.MemFiles{}, &discard{}, ota.Config{})
		require.NoError(t, err)
		done := make(chan error)
		go func() { done <- e.Run(context.Background()) }()
		synctest.Wait()
		err = e.Run(context.Background())
		require.ErrorIs(t, err, ota.ErrClosed, "Run twice")
		require.Contains(t, err.Error(), "Run called twice")
		require.NoError(t, e.Close())
		require.NoError(t, <-done)
		require.NoError(t, e.Close(), "Close twice")
		require.ErrorIs(t, e.Run(context.Background()), ota.ErrClosed)
	})
}

// failingStore counts and can fail the load of unfinished tasks.
type failingStore struct {
	ota.Store
	loads atomic.Int64
	fail  atomic.Bool
}

var errStoreDown = errors.New("store down")

func (s *failingStore) Tasks(ctx context.Context) ([]ota.Task, error) {
	s.loads.Add(1)
	if s.fail.Load() {
		return nil, errStoreDown
	}
	return s.Store.Tasks(ctx)
}

// TestLoadOnFirstUse: New does no I/O; the unfinished tasks are loaded once,
// by Run or by the first method that needs them under its caller's ctx; a
// failed load is Run's error and is tried again by the next call.
func TestLoadOnFirstUse(t *testing.T) {
	ctx := context.Background()
	st := &failingStore{Store: ota.NewMemStore()}
	files := &ota.MemFiles{}
	files.Put("p", content(900, 1))
	e1, err := ota.New(st, files, newLink(), ota.Config{})
	require.NoError(t, err)
	require.Zero(t, st.loads.Load(), "New reads the store")
	_, err = e1.AddPackage(ctx, ota.Package{ID: "p", Kind: ota.Software, Version: "V2"})
	require.NoError(t, err)
	_, err = e1.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"a"}})
	require.NoError(t, err)
	require.True(t, e1.Upgrading("a"))
	require.NoError(t, e1.Close())

	st.fail.Store(true)
	e2, err := ota.New(st, files, newLink(), ota.Config{})
	require.NoError(t, err)
	defer e2.Close()
	require.ErrorIs(t, e2.Run(ctx), errStoreDown, "Run returns the load's error")
	_, err = e2.Task(ctx, "t")
	require.ErrorIs(t, err, errStoreDown)
	require.False(t, e2.Upgrading("a"), "a failed load shows no upgrade")

	st.fail.Store(false)
	require.True(t, e2.Upgrading("a"), "the next call loads again")
	n := st.loads.Load()
	require.True(t, e2.Upgrading("a"))
	_, err = e2.Task(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, n, st.loads.Load(), "loaded once")
}
