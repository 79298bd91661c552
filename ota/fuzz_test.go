package ota_test

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/pcp"
)

// seeds returns the frames of pcp/testdata/pcp-vectors.txt.
func seeds(f *testing.F) [][]byte {
	raw, err := os.ReadFile(filepath.Join("pcp", "testdata", "pcp-vectors.txt"))
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 2 || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(fields[1])
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzHandleFrame: the platform side never panics on any uplink frame from
// a device in the middle of a download.
func FuzzHandleFrame(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Add(pcp.Encode(pcp.BlockRequest{Version: "V2", Block: 65535}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		files := &ota.MemFiles{}
		files.Put("p", make([]byte, 100))
		e, err := ota.New(ota.NewMemStore(), files, &discard{}, ota.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		ctx := context.Background()
		if _, err := e.AddPackage(ctx, ota.Package{ID: "p", Kind: ota.Software, Version: "V2", BlockSize: 32}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.CreateTask(ctx, ota.TaskSpec{ID: "t", PackageID: "p", Devices: []string{"d"}}); err != nil {
			t.Fatal(err)
		}
		e.HandleFrame(ctx, "d", pcp.Encode(pcp.QueryVersionAnswer{Result: pcp.ResultOK, Version: "V1"}))
		if err := e.HandleFrame(ctx, "d", frame); err != nil && !errors.Is(err, pcp.ErrBadFrame) {
			t.Fatalf("HandleFrame(%x): %v", frame, err)
		}
	})
}
