package ota_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/pcp"
	"github.com/stretchr/testify/require"
)

// discard is a Channel that drops frames and counts them.
type discard struct{ frames atomic.Int64 }

func (d *discard) SendFrame(context.Context, string, []byte) error { d.frames.Add(1); return nil }

// downloading returns an engine whose n devices are all downloading a 1 MB
// package kept in a file, with block size 500.
func downloading(b *testing.B, n int) (*ota.Engine, []string, ota.Package) {
	dir := b.TempDir()
	files := ota.Dir(dir)
	_, err := files.Put("mb", bytesReader(content(1<<20, 7)))
	require.NoError(b, err)
	e, err := ota.New(ota.NewMemStore(), files, &discard{}, ota.Config{})
	require.NoError(b, err)
	b.Cleanup(func() { e.Close() })
	ctx := context.Background()
	p, err := e.AddPackage(ctx, ota.Package{ID: "mb", Kind: ota.Software, Version: "V2"})
	require.NoError(b, err)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%05d", i)
	}
	_, err = e.CreateTask(ctx, ota.TaskSpec{ID: "bench", PackageID: "mb", Devices: ids})
	require.NoError(b, err)
	va, na := pcp.Encode(pcp.QueryVersionAnswer{Result: pcp.ResultOK, Version: "V1"}), pcp.Encode(pcp.NotifyAnswer{})
	for _, id := range ids {
		require.NoError(b, e.HandleFrame(ctx, id, va))
		require.NoError(b, e.HandleFrame(ctx, id, na))
	}
	return e, ids, p
}

// BenchmarkServeBlocks measures blocks served per second from a 1 MB
// package (a file) to 1,000 devices requesting at once, against the
// baseline of 1,000 goroutines reading blocks from the same file and
// framing them (the floor: no decoding, lookup, tracking or sending).
func BenchmarkServeBlocks(b *testing.B) {
	b.Run("baseline-read-and-frame", func(b *testing.B) {
		dir := b.TempDir()
		path := filepath.Join(dir, "mb")
		require.NoError(b, os.WriteFile(path, content(1<<20, 7), 0o600))
		f, err := os.Open(path)
		require.NoError(b, err)
		defer f.Close()
		var next atomic.Int64
		b.SetParallelism(1000 / runtime.GOMAXPROCS(0))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1) - 1)
			buf, frame := make([]byte, 500), make([]byte, 0, 520)
			for j := 0; pb.Next(); j++ {
				blk := (i*64 + j%64) % 2098
				f.ReadAt(buf, int64(blk)*500)
				frame = pcp.AppendBlockAnswer(frame[:0], pcp.ResultOK, uint16(blk), buf)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
	})
	b.Run("engine-1000-devices", func(b *testing.B) {
		e, ids, p := downloading(b, 1000)
		blocks := p.Blocks()
		reqs := make([][][]byte, len(ids)) // pre-encoded requests per device
		for i := range ids {
			reqs[i] = make([][]byte, 64)
			for j := range reqs[i] {
				reqs[i][j] = pcp.Encode(pcp.BlockRequest{Version: "V2", Block: uint16((i*64 + j) % blocks)})
			}
		}
		var next atomic.Int64
		ctx := context.Background()
		b.SetParallelism(1000 / runtime.GOMAXPROCS(0))
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1)-1) % len(ids)
			id, rq := ids[i], reqs[i]
			for j := 0; pb.Next(); j++ {
				if err := e.HandleFrame(ctx, id, rq[j%len(rq)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
	})
}

// BenchmarkMemoryPerDevice measures the heap held per device with a
// download in progress (session, block bitmap, sub-task in the in-memory
// store), over 1,000 devices.
func BenchmarkMemoryPerDevice(b *testing.B) {
	const n = 1000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e, ids, _ := downloading(b, n)
		ctx := context.Background()
		for i, id := range ids {
			require.NoError(b, e.HandleFrame(ctx, id, pcp.Encode(pcp.BlockRequest{Version: "V2", Block: uint16(i)})))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/device")
		runtime.KeepAlive(e)
	}
}
