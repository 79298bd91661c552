package download_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/ota/download"
	"github.com/doze-io/doze/ota/pcp"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// seeds returns the frames of the PCP vectors (ota/pcp/testdata).
func seeds(f *testing.F) [][]byte {
	raw, err := os.ReadFile(filepath.Join("..", "pcp", "testdata", "pcp-vectors.txt"))
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
	f.Add(pcp.Encode(pcp.Notify{Version: "V2", BlockSize: 32, BlockCount: 2, CheckCode: 7}))
	f.Add(pcp.Encode(pcp.BlockAnswer{Result: pcp.ResultOK, Block: 1, Data: make([]byte, 32)}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		p := &download.MemProgress{}
		p.Save(download.State{Phase: download.PhaseDownloading, Version: "V2", CheckCode: 7, BlockSize: 32, Blocks: 2, Next: 1})
		d := download.New("V1", p, &download.MemStorage{}, nil)
		out, err := d.Handle(frame)
		if err != nil && !errors.Is(err, pcp.ErrBadFrame) {
			t.Fatalf("Handle(%x): %v", frame, err)
		}
		for _, o := range out {
			if _, err := pcp.DecodeMessage(o, pcp.Uplink); err != nil {
				t.Fatalf("Handle(%x) answered %x, which does not decode: %v", frame, o, err)
			}
		}
	})
}

// ExampleDownloader_Resume shows a device resuming a broken download at
// its next missing block, even after a reboot, since its progress is kept
// through Progress (OTA-7).
func ExampleDownloader_Resume() {
	progress := &download.MemProgress{} // flash on a real device
	storage := &download.MemStorage{}
	dev := download.New("1.0", progress, storage, nil)
	notify := pcp.Encode(pcp.Notify{Version: "2.0", BlockSize: 32, BlockCount: 4})
	out, _ := dev.Handle(notify)
	for _, f := range out {
		m, _ := pcp.DecodeMessage(f, pcp.Uplink)
		fmt.Printf("device → platform: %+v\n", m)
	}
	for n := uint16(0); n < 2; n++ {
		dev.Handle(pcp.Encode(pcp.BlockAnswer{Result: pcp.ResultOK, Block: n, Data: make([]byte, 32)}))
	}
	// The link drops and the device reboots.
	dev = download.New("1.0", progress, storage, nil)
	out, _ = dev.Resume()
	m, _ := pcp.DecodeMessage(out[0], pcp.Uplink)
	fmt.Printf("after the reboot: %+v\n", m)
	// Output:
	// device → platform: {Result:ok}
	// device → platform: {Version:2.0 Block:0}
	// after the reboot: {Version:2.0 Block:2}
}
