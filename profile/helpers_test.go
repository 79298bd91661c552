package profile_test

import (
	"archive/zip"
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files and fixture zips in testdata")

// fixtureTime is the modification time of every entry of generated zips,
// so that they come out byte-identical.
var fixtureTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// zipFS compresses every file of fsys (sorted by path) into a zip, each
// path under prefix (empty: at the root).
func zipFS(t testing.TB, fsys fs.FS, prefix string) []byte {
	t.Helper()
	var names []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	require.NoError(t, err)
	sort.Strings(names)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		require.NoError(t, err)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: path.Join(prefix, n), Method: zip.Deflate, Modified: fixtureTime})
		require.NoError(t, err)
		_, err = w.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// zipFiles builds a zip from name → content pairs, in the order given.
func zipFiles(t testing.TB, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: files[i], Method: zip.Deflate, Modified: fixtureTime})
		require.NoError(t, err)
		_, err = w.Write([]byte(files[i+1]))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// golden compares got with testdata/golden/<name>, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := path.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.MkdirAll(path.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, got, 0o644))
		return
	}
	want, err := os.ReadFile(p)
	require.NoError(t, err, "golden file missing; run go test -run %s -update", t.Name())
	require.Equal(t, string(want), string(got), "normalized model differs from %s; if the change is intended, run go test -update", p)
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
