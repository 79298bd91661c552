package command_test

import (
	"context"
	"runtime"
	"testing"
	"time"

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

// BenchmarkMemWakeToSend is the wake latency at 1,000 wake-ups a second
// (commandtest.WakeSteady). Run it with -benchtime=20s for a p99 from
// 20,000 samples that includes the collections the load causes.
func BenchmarkMemWakeToSend(b *testing.B) {
	commandtest.BenchWake(b, filledMemStore(b), benchDevices, commandtest.WakeSteady)
}

// BenchmarkMemWakeSaturated is the wake latency with the CPU saturated by
// draining queues (commandtest.WakeSaturated).
func BenchmarkMemWakeSaturated(b *testing.B) {
	commandtest.BenchWake(b, filledMemStore(b), benchDevices, commandtest.WakeSaturated)
}

// BenchmarkMemWakeUnpaced is the wake latency on an overloaded platform
// (commandtest.WakeUnpaced): it measures the backlog more than the wake
// path.
func BenchmarkMemWakeUnpaced(b *testing.B) {
	commandtest.BenchWake(b, filledMemStore(b), benchDevices, commandtest.WakeUnpaced)
}

// BenchmarkMemPendingMemory reports the heap held per pending command by
// a MemStore with 1,000,000 of them (and the engine's state for 100,000
// devices) and how long a full collection of that heap takes (gc-ms, the
// mean of three runtime.GC calls: what each collection must mark while
// the engine runs), and times a Queue read among them.
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
	t0 := time.Now()
	for range 3 {
		runtime.GC()
	}
	gcMS := float64(time.Since(t0).Microseconds()) / 3e3
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Queue(ctx, commandtest.Device(i%benchDevices)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(perCmd, "B/pending")
	b.ReportMetric(gcMS, "gc-ms")
	runtime.KeepAlive(st)
}

// BenchmarkSmallWakeToSend is the wake latency with 1,000 devices and
// 10,000 pending commands, a baseline for the 1,000,000-pending figure;
// likewise the Small benchmarks below for the other loads.
func BenchmarkSmallWakeToSend(b *testing.B) { smallWake(b, commandtest.WakeSteady) }

func BenchmarkSmallWakeSaturated(b *testing.B) { smallWake(b, commandtest.WakeSaturated) }

func BenchmarkSmallWakeUnpaced(b *testing.B) { smallWake(b, commandtest.WakeUnpaced) }

func smallWake(b *testing.B, load commandtest.WakeLoad) {
	st := command.NewMemStore()
	commandtest.Fill(b, st, 1000, benchPerDevice)
	commandtest.BenchWake(b, st, 1000, load)
}

// BenchmarkSmallSubmit is Submit with 1,000 devices and 10,000 pending, a
// baseline for the 1,000,000-pending figure.
func BenchmarkSmallSubmit(b *testing.B) {
	st := command.NewMemStore()
	commandtest.Fill(b, st, 1000, benchPerDevice)
	commandtest.BenchSubmit(b, st, 1000)
}
