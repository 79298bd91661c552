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
)

// seeds returns the frames of testdata/pcp-vectors.txt.
func seeds(f *testing.F) [][]byte {
	raw, err := os.ReadFile(filepath.Join("testdata", "pcp-vectors.txt"))
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

// FuzzDownloaderHandle: the device side never panics on any downlink frame,
// and rejects undecodable ones with ErrBadFrame.
func FuzzDownloaderHandle(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Add(ota.Encode(ota.Notify{Version: "V2", BlockSize: 32, BlockCount: 2, CheckCode: 7}))
	f.Add(ota.Encode(ota.BlockAnswer{Result: ota.ResultOK, Block: 1, Data: make([]byte, 32)}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		p := &ota.MemProgress{}
		p.Save(ota.DownloadState{Phase: ota.PhaseDownloading, Version: "V2", CheckCode: 7, BlockSize: 32, Blocks: 2, Next: 1})
		d := ota.NewDownloader("V1", p, &ota.MemStorage{}, nil)
		out, err := d.Handle(frame)
		if err != nil && !errors.Is(err, ota.ErrBadFrame) {
			t.Fatalf("Handle(%x): %v", frame, err)
		}
		for _, o := range out {
			if _, err := ota.DecodeMessage(o, ota.Uplink); err != nil {
				t.Fatalf("Handle(%x) answered %x, which does not decode: %v", frame, o, err)
			}
		}
	})
}

// FuzzHandleFrame: the platform side never panics on any uplink frame from
// a device in the middle of a download.
func FuzzHandleFrame(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Add(ota.Encode(ota.BlockRequest{Version: "V2", Block: 65535}))
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
		e.HandleFrame(ctx, "d", ota.Encode(ota.QueryVersionAnswer{Result: ota.ResultOK, Version: "V1"}))
		if err := e.HandleFrame(ctx, "d", frame); err != nil && !errors.Is(err, ota.ErrBadFrame) {
			t.Fatalf("HandleFrame(%x): %v", frame, err)
		}
	})
}
