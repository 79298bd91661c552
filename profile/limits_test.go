package profile_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"runtime"
	"testing"
	"testing/fstest"
	"time"

	"github.com/doze-io/doze/profile"
	"github.com/stretchr/testify/require"
)

// zerosDeflate returns a raw deflate stream that expands to mib MiB of
// zeros, built from one compressed MiB repeated (back-references to zeros
// stay zeros), so a test can craft a 64 MiB bomb in a few kilobytes
// without compressing 64 MiB.
func zerosDeflate(t testing.TB, mib int) []byte {
	t.Helper()
	var chunk bytes.Buffer
	w, err := flate.NewWriter(&chunk, flate.BestCompression)
	require.NoError(t, err)
	_, err = w.Write(make([]byte, 1<<20))
	require.NoError(t, err)
	require.NoError(t, w.Flush()) // ends byte-aligned, not final
	var end bytes.Buffer
	w2, _ := flate.NewWriter(&end, flate.BestSpeed)
	require.NoError(t, w2.Close()) // an empty final block
	return append(bytes.Repeat(chunk.Bytes(), mib), end.Bytes()...)
}

// bombZip wraps a deflate stream of mib MiB of zeros as entry name, with
// the uncompressed size its header declares.
func bombZip(t testing.TB, name string, mib int, declared uint64) []byte {
	t.Helper()
	stream := zerosDeflate(t, mib)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name: name, Method: zip.Deflate, Modified: fixtureTime,
		CRC32:              crc32.ChecksumIEEE(make([]byte, 1<<20)), // wrong for mib > 1; never reached
		CompressedSize64:   uint64(len(stream)),
		UncompressedSize64: declared,
	})
	require.NoError(t, err)
	_, err = w.Write(stream)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// allocated runs f and returns the bytes it allocated.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestZipBombDeclared: an entry declaring 64 MiB is refused by its
// declared size before anything is decompressed.
func TestZipBombDeclared(t *testing.T) {
	z := bombZip(t, "profile/devicetype-capability.json", 64, 64<<20)
	require.Less(t, len(z), 256<<10, "the bomb is small")
	var err error
	n := allocated(func() { _, _, err = profile.LoadZip(bytes.NewReader(z), int64(len(z)), "", nil) })
	var le *profile.LimitError
	require.True(t, errors.As(err, &le), "LoadZip(bomb) = %v", err)
	require.ErrorIs(t, err, profile.ErrTooLarge)
	require.Equal(t, "MaxEntrySize", le.Limit)
	require.Equal(t, "profile/devicetype-capability.json", le.File)
	require.EqualValues(t, 64<<20, le.Size, "refused by the declared size, not after streaming")
	require.Contains(t, err.Error(), "exceeds MaxEntrySize of 1048576")
	require.Less(t, n, uint64(4<<20), "refusing the bomb allocated %d bytes", n)
}

// TestZipBombLyingHeader: an entry whose header declares 1000 bytes but
// whose data expands to 64 MiB is stopped at the declared size.
func TestZipBombLyingHeader(t *testing.T) {
	z := bombZip(t, "profile/devicetype-capability.json", 64, 1000)
	var err error
	n := allocated(func() { _, _, err = profile.LoadZip(bytes.NewReader(z), int64(len(z)), "", nil) })
	require.ErrorIs(t, err, profile.ErrInvalid)
	require.Contains(t, err.Error(), "does not match its header (1000 bytes declared")
	require.Less(t, n, uint64(4<<20), "refusing the bomb allocated %d bytes", n)
}

// TestZipTotalSize: many entries each under MaxEntrySize but together over
// MaxTotalSize are refused by their declared sizes.
func TestZipTotalSize(t *testing.T) {
	var files []string
	for i := 0; i < 5; i++ {
		files = append(files, fmt.Sprintf("service/S%d/profile/servicetype-capability.json", i), string(make([]byte, 300<<10)))
	}
	z := zipFiles(t, files...)
	_, _, err := profile.LoadZip(bytes.NewReader(z), int64(len(z)), "", &profile.Options{MaxTotalSize: 1 << 20})
	var le *profile.LimitError
	require.True(t, errors.As(err, &le), "got %v", err)
	require.Equal(t, "MaxTotalSize", le.Limit)
}

// TestZipEntryCount: an archive with more entries than MaxEntries is
// refused from its end-of-directory record.
func TestZipEntryCount(t *testing.T) {
	var files []string
	for i := 0; i < 40; i++ {
		files = append(files, fmt.Sprintf("f%d", i), "")
	}
	z := zipFiles(t, files...)
	_, _, err := profile.LoadZip(bytes.NewReader(z), int64(len(z)), "", &profile.Options{MaxEntries: 32})
	var le *profile.LimitError
	require.True(t, errors.As(err, &le), "got %v", err)
	require.Equal(t, "MaxEntries", le.Limit)
	require.EqualValues(t, 33, le.Size, "counting stops one past the limit")
}

// TestZipEntryCountLying: archive/zip reads every directory record it
// finds whatever count the end record declares (compared modulo 65536).
// 65537 entries must be refused by counting headers, before a File is
// allocated for each.
func TestZipEntryCountLying(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < 65537; i++ {
		_, err := zw.CreateHeader(&zip.FileHeader{Name: "x", Method: zip.Store})
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	z := buf.Bytes()
	var err error
	n := allocated(func() { _, _, err = profile.LoadZip(bytes.NewReader(z), int64(len(z)), "", nil) })
	var le *profile.LimitError
	require.True(t, errors.As(err, &le), "got %v", err)
	require.Equal(t, "MaxEntries", le.Limit)
	require.Less(t, n, uint64(1<<20), "refusing 65537 entries allocated %d bytes", n)
}

// failReader fails every read: the archive must be refused unread.
type failReader struct{}

func (failReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("read") }

// TestArchiveSize: a zip over MaxArchiveSize is refused without a read.
func TestArchiveSize(t *testing.T) {
	_, _, err := profile.LoadZip(failReader{}, 1<<40, "big.zip", nil)
	var le *profile.LimitError
	require.True(t, errors.As(err, &le), "got %v", err)
	require.Equal(t, "MaxArchiveSize", le.Limit)
}

// endless is a file that claims to be small and never ends.
type endless struct{ size int64 }

func (e endless) Stat() (fs.FileInfo, error) { return e, nil }
func (endless) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
func (endless) Close() error               { return nil }
func (endless) Name() string               { return "devicetype-capability.json" }
func (e endless) Size() int64              { return e.size }
func (endless) Mode() fs.FileMode          { return 0o444 }
func (endless) ModTime() time.Time         { return fixtureTime }
func (endless) IsDir() bool                { return false }
func (endless) Sys() any                   { return nil }
func (endless) Info() (fs.FileInfo, error) { return endless{}, nil }

// lyingFS serves profile/devicetype-capability.json as an endless file.
type lyingFS struct{ fstest.MapFS }

func (l lyingFS) Open(name string) (fs.File, error) {
	if name == "profile/devicetype-capability.json" {
		return endless{size: 10}, nil
	}
	return l.MapFS.Open(name)
}

// TestDirStreamedLimit: a directory file larger than its stat says is cut
// off at MaxEntrySize while it streams.
func TestDirStreamedLimit(t *testing.T) {
	fsys := lyingFS{fstest.MapFS{"profile/devicetype-capability.json": {Data: []byte("0123456789")}}}
	var err error
	n := allocated(func() { _, _, err = profile.LoadDir(fsys, "", &profile.Options{MaxEntrySize: 64 << 10}) })
	var le *profile.LimitError
	require.True(t, errors.As(err, &le), "got %v", err)
	require.Equal(t, "MaxEntrySize", le.Limit)
	require.EqualValues(t, 64<<10+1, le.Size, "cut off one byte past the limit")
	require.Less(t, n, uint64(1<<20), "an endless file cost %d bytes", n)
}

// TestDirEntryCount: a directory with too many entries is refused.
func TestDirEntryCount(t *testing.T) {
	m := fstest.MapFS{}
	for i := 0; i < 20; i++ {
		m[fmt.Sprintf("x/f%d", i)] = &fstest.MapFile{}
	}
	_, _, err := profile.LoadDir(m, "", &profile.Options{MaxEntries: 10})
	require.ErrorIs(t, err, profile.ErrTooLarge)
}
