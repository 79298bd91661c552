package commandtest

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doze-io/doze/command"
)

// Device returns the id of benchmark device i.
func Device(i int) string { return fmt.Sprintf("dev%06d", i) }

// Fill writes perDevice PENDING commands (expireTime 48 h, PSM devices that
// have not woken, so no next try) for each of devices devices, in writes
// of up to 10,000 commands. Every command has its own paras bytes and a
// 32-hex-digit id, like the engine's.
func Fill(tb testing.TB, st command.Store, devices, perDevice int) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now()
	batch := make([]command.Command, 0, 10000)
	n := 0
	flush := func() {
		if err := st.Write(ctx, command.Write{Commands: batch}); err != nil {
			tb.Fatalf("Fill: Write: %v", err)
		}
		batch = batch[:0]
	}
	for d := range devices {
		dev := Device(d)
		for s := 1; s <= perDevice; s++ {
			n++
			batch = append(batch, command.Command{
				ID: fmt.Sprintf("%032x", n), AppID: "app", DeviceID: dev,
				Body:       command.Body{ServiceID: "Valve", Method: "SET", Paras: json.RawMessage(fmt.Sprintf(`{"level":%d}`, n%100))},
				ExpireTime: 172800, Status: command.Pending, CreationTime: now, Seq: uint64(s),
			})
			if len(batch) == cap(batch) {
				flush()
			}
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

func benchRequest(dev string) command.Request {
	return command.Request{AppID: "app", DeviceID: dev,
		Command: command.Body{ServiceID: "Valve", Method: "SET", Paras: json.RawMessage(`{"level":42}`)}}
}

// BenchSubmit measures Engine.Submit into st (already filled for devices
// devices) from one goroutine, round-robin over the devices, and reports
// submits/s.
func BenchSubmit(b *testing.B, st command.Store, devices int) {
	e, err := command.New(st, command.SenderFunc(func(context.Context, command.Command) error { return nil }), nil, command.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if _, err := e.Submit(ctx, benchRequest(Device(i%devices))); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "submits/s")
}

// BenchSubmitParallel is BenchSubmit from many goroutines at once (16 per
// core), where a Store can share commits between writers.
func BenchSubmitParallel(b *testing.B, st command.Store, devices int) {
	e, err := command.New(st, command.SenderFunc(func(context.Context, command.Command) error { return nil }), nil, command.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			if _, err := e.Submit(ctx, benchRequest(Device(i%devices))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(next.Load())/time.Since(start).Seconds(), "submits/s")
}

// WakeLoad is how BenchWake wakes devices.
type WakeLoad struct {
	// PerSecond is the rate of wake-ups: the next device wakes 1/PerSecond
	// after the previous one (or as soon as the previous one's first
	// command went out, if later), whatever the background drain is
	// doing. 0 means as fast as Backlog allows.
	PerSecond float64
	// Backlog, when PerSecond is 0, holds the next wake-up back while more
	// than Backlog sent commands wait for their device's answer. A
	// negative Backlog never waits: devices wake as fast as their first
	// command goes out, faster than the one responder drains their
	// queues, so the answers pile up (up to 65,536; then the Sender
	// blocks) and the latency grows with b.N: an overloaded platform.
	Backlog int
	// Commands is how many commands each new device gets (untimed) once
	// every filled device has woken. 0 means 1.
	Commands int
}

// Wake loads of the benchmarks.
var (
	// WakeSteady: 1,000 wake-ups a second, each device then draining its
	// queue: a busy platform with room to spare.
	WakeSteady = WakeLoad{PerSecond: 1000, Commands: 10}
	// WakeSaturated: the next device wakes as soon as at most 64 sent
	// commands wait for an answer: the engine's throughput limit, CPU
	// saturated.
	WakeSaturated = WakeLoad{Backlog: 64, Commands: 10}
	// WakeUnpaced: no waiting at all (see WakeLoad.Backlog); new devices
	// get one command. The benchmark as it was first written.
	WakeUnpaced = WakeLoad{Backlog: -1, Commands: 1}
)

// BenchWake measures the time from Engine.DeviceWoke to the Sender being
// called for the device's first command, one wake at a time, on a running
// engine over st (filled for devices devices). A responder goroutine ACKs
// and answers every command, so each woken device drains its queue in the
// background while the next ones wake, as on a busy platform; load says
// how fast devices wake. The fill's garbage is collected before timing.
// Past devices wakes, each iteration uses a new device given
// load.Commands commands (untimed). It reports p50 and p99 in
// microseconds (from b.N samples: run long enough, -benchtime=20s, for
// the collections a steady load causes to be among them), the
// collections that ran while timing (gc-cycles), sends per wake, and the
// answers still waiting at the end (backlog).
func BenchWake(b *testing.B, st command.Store, devices int, load WakeLoad) {
	backlog := load.Backlog
	if load.PerSecond > 0 {
		backlog = -1
	}
	extra := max(load.Commands, 1)
	var want atomic.Pointer[string]
	first := make(chan time.Time, 1)
	answers := make(chan command.Command, 1<<16)
	var sends atomic.Int64
	sender := command.SenderFunc(func(ctx context.Context, c command.Command) error {
		sends.Add(1)
		if w := want.Load(); w != nil && *w == c.DeviceID && want.CompareAndSwap(w, nil) {
			first <- time.Now()
		}
		answers <- c
		return nil
	})
	e, err := command.New(st, sender, nil, command.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.Run(ctx) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-answers:
				e.Acked(ctx, c.DeviceID, c.ID)
				e.Responded(ctx, c.DeviceID, command.Response{Mid: c.Mid()})
			}
		}
	}()
	defer func() {
		cancel()
		e.Close()
		wg.Wait()
	}()

	runtime.GC() // the fill's garbage is the setup's, not the wake's
	var lat []time.Duration
	i := 0
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gcs := ms.NumGC
	b.ReportAllocs()
	var start time.Time
	for b.Loop() {
		dev := Device(i)
		if i >= devices { // every device woken once: a new one
			b.StopTimer()
			dev = fmt.Sprintf("extra%07d", i)
			for range extra {
				if _, err := e.Submit(ctx, benchRequest(dev)); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
		}
		switch {
		case load.PerSecond > 0 && i == 0:
			start = time.Now()
		case load.PerSecond > 0:
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) / load.PerSecond * 1e9))))
		}
		for backlog >= 0 && len(answers) > backlog {
			time.Sleep(50 * time.Microsecond)
		}
		want.Store(&dev)
		t0 := time.Now()
		if err := e.DeviceWoke(ctx, dev); err != nil {
			b.Fatal(err)
		}
		select {
		case t1 := <-first:
			lat = append(lat, t1.Sub(t0))
		case <-time.After(10 * time.Second):
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			b.Fatalf("no send for %s within 10 s of DeviceWoke\n%s", dev, buf[:n])
		}
		i++
	}
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.NumGC-gcs), "gc-cycles")
	b.ReportMetric(float64(sends.Load())/float64(i), "sends/wake")
	b.ReportMetric(float64(len(answers)), "backlog")
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	}
}
