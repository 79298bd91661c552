package ota_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/download"
	"github.com/doze-io/doze/ota/pcp"
)

// loopback carries the engine's frames to one simulated device and its
// answers back.
type loopback struct {
	e     *ota.Engine
	dev   *download.Downloader
	queue [][]byte
}

func (l *loopback) SendFrame(_ context.Context, _ string, frame []byte) error {
	l.queue = append(l.queue, frame)
	return nil
}

func (l *loopback) pump(deviceID string) {
	for len(l.queue) > 0 {
		f := l.queue[0]
		l.queue = l.queue[1:]
		m, _ := pcp.DecodeMessage(f, pcp.Downlink)
		fmt.Printf("platform → device: %T\n", m)
		answers, _ := l.dev.Handle(f)
		for _, a := range answers {
			l.e.HandleFrame(context.Background(), deviceID, a)
		}
	}
}

// ExampleEngine upgrades one device's software over PCP: upload, task,
// query version, notify, blocks, execute, result.
func ExampleEngine() {
	ctx := context.Background()
	files := &ota.MemFiles{}
	files.Put("app-2.0", bytes.Repeat([]byte("new firmware "), 100)) // 1300 bytes
	link := &loopback{}
	e, _ := ota.New(ota.NewMemStore(), files, link, ota.Config{})
	defer e.Close()
	link.e = e
	link.dev = download.New("1.0", &download.MemProgress{}, &download.MemStorage{}, nil)

	p, _ := e.AddPackage(ctx, ota.Package{ID: "app-2.0", Kind: ota.Software, Version: "2.0", SourceVersions: []string{"1.0"}})
	fmt.Println("blocks:", p.Blocks())
	e.CreateTask(ctx, ota.TaskSpec{ID: "op1", PackageID: "app-2.0", Devices: []string{"meter-7"}})
	link.pump("meter-7")
	subs, _ := e.SubTasks(ctx, "op1")
	fmt.Println(subs[0].State, subs[0].SourceVersion, "→", subs[0].CurrentVersion, "device runs", link.dev.Version())
	// Output:
	// blocks: 3
	// platform → device: pcp.QueryVersion
	// platform → device: pcp.Notify
	// platform → device: pcp.BlockAnswer
	// platform → device: pcp.BlockAnswer
	// platform → device: pcp.BlockAnswer
	// platform → device: pcp.DownloadResultAnswer
	// platform → device: pcp.Execute
	// platform → device: pcp.UpgradeResultAnswer
	// success 1.0 → 2.0 device runs 2.0
}

// ExampleContent_Block2 serves a firmware package as CoAP Block2 blocks of
// 256 bytes (SZX 4) with the digest as ETag.
func ExampleContent_Block2() {
	body := bytes.Repeat([]byte{0xAB}, 600)
	p := ota.Package{ID: "fw", Kind: ota.Firmware, Version: "F2", Size: int64(len(body))}
	p.Digest, p.CheckCode, _ = ota.Summarize(bytes.NewReader(body), p.Size)
	c := &ota.Content{Package: p, R: bytes.NewReader(body)}
	for num := uint32(0); ; num++ {
		data, more, etag, size2, _ := c.Block2(num, 4)
		fmt.Printf("block %d: %d bytes, more %v, size2 %d, etag %x…\n", num, len(data), more, size2, etag[:4])
		if !more {
			break
		}
	}
	// Output:
	// block 0: 256 bytes, more true, size2 600, etag f1f3edfa…
	// block 1: 256 bytes, more true, size2 600, etag f1f3edfa…
	// block 2: 88 bytes, more false, size2 600, etag f1f3edfa…
}

// ExampleUpdateResultReason maps LwM2M Update Result values to the failure
// reasons applications see.
func ExampleUpdateResultReason() {
	for r := 1; r <= 8; r++ {
		if reason, failed := ota.UpdateResultReason(r); failed {
			fmt.Println(r, reason)
		} else {
			fmt.Println(r, "success, not a failure")
		}
	}
	// Output:
	// 1 success, not a failure
	// 2 Not enough storage for the new firmware package
	// 3 Out of memory during downloading process
	// 4 Connection lost during downloading process
	// 5 Integrity check failure for new downloaded package
	// 6 Unsupported package type
	// 7 Invalid URI
	// 8 Firmware update failed
}
