package profile_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path"
	"testing"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/profile"
	"github.com/stretchr/testify/require"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// The three profiles of testdata/profiles (PRF-1…PRF-6).
var fixtures = []string{
	"WaterMeter_DozeLabs_WM100",
	"SmartLock_DozeLabs_SL2",
	"MultiSensor_DozeLabs_MS3",
}

func loadFixtureDir(t testing.TB, name string) *profile.Product {
	t.Helper()
	p, warns, err := profile.LoadDir(os.DirFS(path.Join("testdata", "profiles", name)), name, nil)
	require.NoError(t, err, "LoadDir(%s)", name)
	require.Empty(t, warns, "LoadDir(%s) warnings", name)
	return p
}

func fixtureZip(t testing.TB, name string) []byte {
	t.Helper()
	return zipFS(t, os.DirFS(path.Join("testdata", "profiles", name)), "")
}

func marshal(t testing.TB, p *profile.Product) []byte {
	t.Helper()
	b, err := json.MarshalIndent(p, "", "  ")
	require.NoError(t, err)
	return append(b, '\n')
}

// TestFixtures loads every fixture as a directory, as a generated zip and as
// the committed zip (PRF-1), checks the three agree, and compares the
// normalized model with its golden file.
func TestFixtures(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			fromDir := loadFixtureDir(t, name)
			z := fixtureZip(t, name)
			zipPath := path.Join("testdata", "zip", name+".zip")
			if *update {
				require.NoError(t, os.MkdirAll(path.Dir(zipPath), 0o755))
				require.NoError(t, os.WriteFile(zipPath, z, 0o644))
			}
			committed, err := os.ReadFile(zipPath)
			require.NoError(t, err, "run go test -update to create %s", zipPath)
			// Compare contents, not bytes: compress/flate output may change
			// between Go releases.
			zr, err := zip.NewReader(bytes.NewReader(committed), int64(len(committed)))
			require.NoError(t, err)
			inZip := map[string]string{}
			for _, f := range zr.File {
				rc, err := f.Open()
				require.NoError(t, err)
				b, err := io.ReadAll(rc)
				require.NoError(t, err)
				rc.Close()
				inZip[f.Name] = string(b)
			}
			inDir := map[string]string{}
			dir := os.DirFS(path.Join("testdata", "profiles", name))
			require.NoError(t, fs.WalkDir(dir, ".", func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					b, rerr := fs.ReadFile(dir, p)
					inDir[p] = string(b)
					return rerr
				}
				return err
			}))
			require.Equal(t, inDir, inZip, "%s is stale: run go test -update", zipPath)

			fromZip, warns, err := profile.LoadZip(bytes.NewReader(committed), int64(len(committed)), name+".zip", nil)
			require.NoError(t, err)
			require.Empty(t, warns)
			require.Equal(t, marshal(t, fromDir), marshal(t, fromZip), "zip and directory load differently")
			golden(t, name+".json", marshal(t, fromZip))
		})
	}
}
