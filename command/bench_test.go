package command_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/command/commandtest"
)

// The big benchmarks: 100,000 devices with 10 PENDING commands each
// (1,000,000 pending). They run only under -bench.
const (
	benchDevices   = 100_000
	benchPerDevice = 10
)

func filledMemStore(b *testing.B) *command.MemStore {
	st := command.NewMemStore()
	commandtest.Fill(b, st, benchDevices, benchPerDevice)
	return st
}

func BenchmarkMemSubmit(b *testing.B) {
	commandtest.BenchSubmit(b, filledMemStore(b), benchDevices)
}

var parallelStore *command.MemStore

func BenchmarkMemSubmitParallel(b *testing.B) {
	if parallelStore == nil { // RunParallel benchmarks run more than once
		parallelStore = filledMemStore(b)
	}
	commandtest.BenchSubmitParallel(b, parallelStore, benchDevices)
}

func BenchmarkMemWakeToSend(b *testing.B) {
	commandtest.BenchWake(b, filledMemStore(b), benchDevices)
}

// BenchmarkMemPendingMemory reports the heap held per pending command by
// a MemStore with 1,000,000 of them (and the engine's state for 100,000
// devices), and times a Get among them.
func BenchmarkMemPendingMemory(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st := filledMemStore(b)
	e, err := command.New(st, command.SenderFunc(func(context.Context, command.Command) error { return nil }), nil, command.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range benchDevices { // engine state for every device
		e.DeviceWoke(ctx, commandtest.Device(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perCmd := float64(after.HeapAlloc-before.HeapAlloc) / (benchDevices * benchPerDevice)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Queue(ctx, commandtest.Device(i%benchDevices)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(perCmd, "B/pending")
	runtime.KeepAlive(st)
}

// BenchmarkSmallWakeToSend is the wake latency with 1,000 devices, a
// baseline for the 100,000-device figure.
func BenchmarkSmallWakeToSend(b *testing.B) {
	st := command.NewMemStore()
	commandtest.Fill(b, st, 1000, benchPerDevice)
	commandtest.BenchWake(b, st, 1000)
}

// BenchmarkSmallSubmit is Submit with 1,000 devices and 10,000 pending, a
// baseline for the 1,000,000-pending figure.
func BenchmarkSmallSubmit(b *testing.B) {
	st := command.NewMemStore()
	commandtest.Fill(b, st, 1000, benchPerDevice)
	commandtest.BenchSubmit(b, st, 1000)
}
