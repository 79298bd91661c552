package registry_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/doze-io/doze/registry"
)

// Benchmarks for the figures in doc.go. Run:
//
//	go test ./registry -run '^$' -bench . -benchtime 2s
//	go test ./registry -run '^$' -bench MemoryPerDevice -benchtime 1x
//
// The bbolt figures come from package store (BenchmarkRegistry…).

// Callers is the set of concurrent caller counts the figures use.
var callers = []int{1, 8, 64}

// parallel runs fn b.N times from exactly n goroutines (n a multiple of
// GOMAXPROCS, or 1) and reports operations per second.
func parallel(b *testing.B, n int, fn func(i int64)) {
	b.ReportAllocs()
	var seq atomic.Int64
	if n == 1 {
		for b.Loop() {
			fn(seq.Add(1))
		}
	} else {
		b.SetParallelism(max(1, n/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				fn(seq.Add(1))
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

var benchRun atomic.Int64

func BenchmarkRegister(b *testing.B) {
	for _, n := range callers {
		b.Run(fmt.Sprintf("mem/callers=%d", n), func(b *testing.B) {
			r, err := registry.New(registry.NewMemStore(), catalog, registry.Config{})
			if err != nil {
				b.Fatal(err)
			}
			run := benchRun.Add(1)
			parallel(b, n, func(i int64) {
				if _, err := r.Register(ctx, registry.Enrollment{NodeID: fmt.Sprintf("86%03d%010d", run, i), Info: meterInfo}); err != nil {
					b.Error(err)
				}
			})
		})
	}
}

func BenchmarkGet(b *testing.B) {
	const devices = 10000
	r, err := registry.New(registry.NewMemStore(), catalog, registry.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = register(b, r, fmt.Sprintf("86%013d", i)).ID
	}
	for _, n := range callers {
		b.Run(fmt.Sprintf("mem/callers=%d", n), func(b *testing.B) {
			parallel(b, n, func(i int64) {
				if _, err := r.Get(ctx, ids[i%devices]); err != nil {
					b.Error(err)
				}
			})
		})
	}
}

// BenchmarkMemoryPerDevice registers 1,000,000 devices in a MemStore and
// reports the heap they take, per device, in total and beyond the bytes of
// their own strings (deviceId, nodeId, PSK; deviceInfo strings are shared
// with the registration). Run it with -benchtime 1x: one round takes
// seconds.
func BenchmarkMemoryPerDevice(b *testing.B) {
	const devices = 1_000_000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		st := registry.NewMemStore()
		r, err := registry.New(st, catalog, registry.Config{})
		if err != nil {
			b.Fatal(err)
		}
		strBytes := 0
		for i := range devices {
			d, err := r.Register(ctx, registry.Enrollment{NodeID: fmt.Sprintf("86%013d", i), Info: meterInfo})
			if err != nil {
				b.Fatal(err)
			}
			strBytes += len(d.ID) + len(d.NodeID) + len(d.PSK)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapAlloc - before.HeapAlloc)
		b.ReportMetric(heap/devices, "B/device")
		b.ReportMetric((heap-float64(strBytes))/devices, "B/device-beyond-strings")
		runtime.KeepAlive(st)
	}
}
