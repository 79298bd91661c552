package main

// The capacity run (issue 24): the assembled platform with N registered
// devices, measured, not extrapolated. It is a test that runs only when
// asked for, because it takes minutes and most of the machine:
//
//	go test ./examples/platform -run TestCapacity -capacity 100000 -v -timeout 60m
//
// The devices are lwm2mbench's lean DTLS devices (lwm2m/cmd/lwm2mbench
// -role=devices), in child processes (one UDP socket per device, a
// process may hold its descriptor hard limit of them) and spread over
// loopback source addresses (one holds about 28,000 sockets towards one
// server address), so that the platform's process is measured alone.

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/examples/device/sim"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/registry"
)

var (
	capacityN      = flag.Int("capacity", 0, "TestCapacity: number of devices (0 skips the run)")
	capacityWindow = flag.Duration("capacity-window", 10*time.Second, "TestCapacity: the platform's queue window (how long a device stays awake after it spoke)")
	capacityDir    = flag.String("capacity-dir", "", "TestCapacity: data directory to keep (default: a temporary one)")
	capacityHeap   = flag.String("capacity-heapprofile", "", "TestCapacity: write a heap profile of the idle platform to this file")
	capacityGo     = flag.String("capacity-goroutines", "", "TestCapacity: write the idle platform's goroutines (pprof debug=1 text) to this file")
	capacityPause  = flag.Duration("capacity-pause", 0, "TestCapacity: wait this long between queueing the commands and the wake storm")
	capacityStorm  = flag.String("capacity-stormprofile", "", "TestCapacity: write a CPU profile of the wake storm (until its devices slept again) to this file")
	capacityCPU    = flag.String("capacity-startprofile", "", "TestCapacity: write a CPU profile of the restart (New) to this file")
)

// The lean devices' identities and key, as lwm2mbench names them.
var capacityKey = []byte("0123456789abcdef")

func capacityIdentity(i int) string { return fmt.Sprintf("86833303%07d", i) }

// capacityChild is one device process of the run.
type capacityChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// capacityResult is what a device process reports (lwm2mbench's
// deviceResult).
type capacityResult struct {
	Registered int    `json:"registered"` // registered with no error
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error"`
	Storm      *struct {
		Sent    int       `json:"sent"`
		Last    float64   `json:"last_s"`
		Latency []float64 `json:"latency_ms"`
	} `json:"storm"`
}

func TestCapacity(t *testing.T) {
	n := *capacityN
	if n <= 0 {
		t.Skip("the capacity run is asked for: go test ./examples/platform -run TestCapacity -capacity 100000 -v -timeout 60m")
	}
	report := func(format string, args ...any) {
		la, _ := os.ReadFile("/proc/loadavg")
		fmt.Printf("capacity: "+format+"  [load %s]\n", append(args, strings.Join(strings.Fields(string(la))[:3], " "))...)
	}
	bin := filepath.Join(t.TempDir(), "lwm2mbench")
	build := exec.Command("go", "build", "-o", bin, "github.com/doze-io/doze/lwm2m/cmd/lwm2mbench")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "building lwm2mbench")

	dir := *capacityDir
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := defaultConfig()
	cfg.DataDir, cfg.CoAPAddr, cfg.DTLSAddr = dir, "off", "127.0.0.1:0"
	cfg.QueueWindow = Duration(*capacityWindow)

	p, err := New(cfg, nil)
	require.NoError(t, err)
	require.NoError(t, p.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, nil) }()
	time.Sleep(time.Second) // Run's goroutines started
	// The baseline: the platform with no device.
	heap0, rss0 := capacityMem()
	g0 := runtime.NumGoroutine()
	report("empty platform: heap %.1f MB, RSS %.1f MB, goroutines %d", float64(heap0)/1e6, float64(rss0)/1e6, g0)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			require.NoError(t, <-done)
			require.NoError(t, p.Close())
		}
	}
	defer stop()

	// Provision: the devices of the demo water meter, with the key the
	// lean devices hold, 64 at a time (the store shares disk syncs among
	// concurrent writes).
	start := time.Now()
	var provErr atomic.Value
	never := time.Duration(0)
	ids := make([]string, n)
	capacityPool(n, 64, func(i int) {
		d, err := p.reg.Register(context.Background(), registry.Enrollment{NodeID: capacityIdentity(i), PSK: capacityKey,
			Timeout: &never, Info: registry.Info{ManufacturerID: sim.WaterMeterInfo.ManufacturerID, DeviceType: sim.WaterMeterInfo.DeviceType,
				Model: sim.WaterMeterInfo.Model, ProtocolType: sim.WaterMeterInfo.ProtocolType}})
		if err != nil {
			provErr.CompareAndSwap(nil, err)
		}
		ids[i] = d.ID
	})
	require.Nil(t, provErr.Load(), "provisioning")
	took := time.Since(start)
	heapP, _ := capacityMem()
	report("provisioned %d devices in %v: %.0f/s", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	report("heap after provisioning: %.1f MB (%.1f KB per device)", float64(heapP)/1e6, float64(heapP-heap0)/1024/float64(n))

	// Register: DTLS handshake, POST /rd in queue mode with </19/0>, and
	// the platform's Observe of /19/0/0 answered.
	addr := p.lwm.DTLSAddr().String()
	per := max(1, capacityDescriptors()-256)
	procs := (n + per - 1) / per
	per = (n + procs - 1) / procs
	sources := (n + sim.DevicesPerSource - 1) / sim.DevicesPerSource
	workers := 64
	var kids []capacityChild
	for first := 0; first < n; first += per {
		k := min(per, n-first)
		cmd := exec.Command(bin, "-role=devices", "-addr", addr, "-n", strconv.Itoa(k), "-first", strconv.Itoa(first),
			"-workers", strconv.Itoa(max(1, workers*k/n)), "-sources", strconv.Itoa(sources),
			"-objects", "</3/0>,</19/0>,</19/1>", "-storm", "10", "-spread", "1s", "-linger", "30s")
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		kids = append(kids, capacityChild{cmd, stdin, bufio.NewReader(stdout)})
	}
	defer func() {
		for _, c := range kids {
			_ = c.stdin.Close()
			_, _ = io.Copy(io.Discard, c.out)
			_ = c.cmd.Wait()
		}
	}()
	start = time.Now()
	for _, c := range kids {
		require.NoError(t, c.cmd.Start())
	}
	for _, c := range kids {
		line, err := c.out.ReadString('\n')
		require.NoError(t, err, "device process")
		require.Equal(t, "registered\n", line)
	}
	took = time.Since(start)
	report("%d devices in %d processes from %d source addresses: registrations (handshake, POST /rd, Observe /19/0/0) done in %v: %.0f/s",
		n, len(kids), sources, took.Round(time.Millisecond), float64(n)/took.Seconds())

	// Idle: every session parked once the queue window has passed.
	deadline := time.Now().Add(time.Duration(cfg.QueueWindow) + 2*time.Minute)
	for p.lwm.ParkedSessions() < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	// Command queues: one pending command per sleeping device, delivered
	// when it wakes (the storm's devices linger to take theirs).
	start = time.Now()
	app := p.auth.Apps()[0].ID
	expire := int64(3600)
	var cmdErr atomic.Value
	cmdIDs := make([]string, n)
	capacityPool(n, 64, func(i int) {
		c, err := p.cmds.Submit(context.Background(), command.Request{AppID: app, DeviceID: ids[i], ExpireTime: &expire,
			Command: command.Body{ServiceID: "Meter", Method: "SET_REPORT_PERIOD", Paras: json.RawMessage(`{"period":600}`)}})
		if err != nil {
			cmdErr.CompareAndSwap(nil, err)
		}
		cmdIDs[i] = c.ID
	})
	require.Nil(t, cmdErr.Load(), "submitting commands")
	took = time.Since(start)
	report("%d commands queued (one per sleeping device) in %v: %.0f/s", n, took.Round(time.Millisecond), float64(n)/took.Seconds())

	regs := len(p.lwm.Registrations())
	observed := 0
	for i := range n {
		o, err := p.db.Observations().Observations(capacityIdentity(i))
		require.NoError(t, err)
		if slices.ContainsFunc(o, func(o transport.Observation) bool { return o.Path == "/19/0/0" }) {
			observed++
		}
	}
	heap1, rss1 := capacityMem()
	g1 := runtime.NumGoroutine()
	if *capacityHeap != "" {
		f, err := os.Create(*capacityHeap)
		require.NoError(t, err)
		require.NoError(t, pprof.WriteHeapProfile(f))
		require.NoError(t, f.Close())
	}
	if *capacityGo != "" {
		f, err := os.Create(*capacityGo)
		require.NoError(t, err)
		require.NoError(t, pprof.Lookup("goroutine").WriteTo(f, 1))
		require.NoError(t, f.Close())
	}
	fi, err := os.Stat(filepath.Join(dir, "doze.db"))
	require.NoError(t, err)
	report("idle: %d registrations, %d sessions parked, %d devices with /19/0/0 observed (stored); heap %.1f MB (%.1f KB per device), RSS %.1f MB (%.1f KB per device over the empty platform), goroutines %d (+%d, %.4f per device); bbolt file %.1f MB (%.0f bytes per device)",
		regs, p.lwm.ParkedSessions(), observed, float64(heap1)/1e6, float64(heap1-heap0)/1024/float64(n), float64(rss1)/1e6, float64(rss1-rss0)/1024/float64(n),
		g1, g1-g0, float64(g1-g0)/float64(n), float64(fi.Size())/1e6, float64(fi.Size())/float64(n))

	time.Sleep(*capacityPause)
	if *capacityStorm != "" {
		f, err := os.Create(*capacityStorm)
		require.NoError(t, err)
		require.NoError(t, pprof.StartCPUProfile(f))
		defer f.Close()
	}
	// The wake storm: every tenth device sends one uplink, their starts
	// spread over one second.
	for _, c := range kids {
		_, _ = io.WriteString(c.stdin, "go\n")
	}
	var sent, errs, registered int
	var last float64
	var lat []float64
	first := ""
	for _, c := range kids {
		line, err := c.out.ReadString('\n')
		require.NoError(t, err)
		var r capacityResult
		require.NoError(t, json.Unmarshal([]byte(line), &r), "device process said %q", line)
		require.NotNil(t, r.Storm, "device process said %q", line)
		sent += r.Storm.Sent
		registered += r.Registered
		errs += r.Errors
		last = max(last, r.Storm.Last)
		lat = append(lat, r.Storm.Latency...)
		if first == "" {
			first = r.FirstError
		}
	}
	slices.Sort(lat)
	q := func(f float64) float64 {
		if len(lat) == 0 {
			return math.NaN()
		}
		return lat[min(len(lat)-1, int(f*float64(len(lat))))]
	}
	report("wake storm: %d uplinks started within 1 s, %d acknowledged (2.04), %d errors %s; the last acknowledged %.2f s after the first was sent; latency p50 %.0f ms, p99 %.0f ms, max %.0f ms",
		sent, len(lat), errs, first, last, q(0.5), q(0.99), q(1))
	// Measured on: a lost uplink fails the run at its end, once every
	// figure is taken.
	lost := sent - len(lat)
	require.Positive(t, sent)

	// The storm's devices' commands: out while the devices were awake
	// (30 s after their uplink, as a PSM device's active time), and
	// how long until none is pending.
	statuses := func() map[command.Status]int {
		m := map[command.Status]int{}
		for i := 0; i < n; i += 10 {
			c, err := p.cmds.Get(context.Background(), cmdIDs[i])
			require.NoError(t, err)
			m[c.Status]++
		}
		return m
	}
	if *capacityStorm != "" {
		pprof.StopCPUProfile()
	}
	report("commands of the storm's devices once they slept again: %v", statuses())
	for wait := 0; wait < 120; wait += 10 {
		time.Sleep(10 * time.Second)
		st := statuses()
		report("  %d s later: %v", wait+10, st)
		if st[command.Pending] == 0 {
			break
		}
	}

	// Startup with that data: from New to the first device registered and
	// acknowledged again.
	stop()
	for _, c := range kids {
		_ = c.stdin.Close()
	}
	if *capacityCPU != "" {
		f, err := os.Create(*capacityCPU)
		require.NoError(t, err)
		require.NoError(t, pprof.StartCPUProfile(f))
		defer f.Close()
	}
	start = time.Now()
	p, err = New(cfg, nil)
	require.NoError(t, err)
	tNew := time.Since(start)
	if *capacityCPU != "" {
		pprof.StopCPUProfile()
	}
	require.NoError(t, p.Listen())
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	done = make(chan error, 1)
	stopped = false
	go func() { done <- p.Run(ctx, nil) }()
	c, err := transport.NewClient(transport.ClientConfig{Server: p.lwm.DTLSAddr().String(), Endpoint: capacityIdentity(n - 1), Key: capacityKey,
		Queue: true, Objects: "</3/0>,</19/1>"})
	require.NoError(t, err)
	defer c.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer ccancel()
	require.NoError(t, c.Connect(cctx))
	require.NoError(t, c.Register(cctx))
	require.NoError(t, c.Send(cctx, transport.Content{Format: lwm2m.FormatOpaque, Payload: []byte{1}}))
	tUp := time.Since(start)
	heap2, rss2 := capacityMem()
	report("restart with %d devices: New %v, first device registered and its uplink acknowledged %v after New; heap %.1f MB, RSS %.1f MB",
		n, tNew.Round(time.Millisecond), tUp.Round(time.Millisecond), float64(heap2)/1e6, float64(rss2)/1e6)
	require.Equal(t, n, registered, "devices registered; the first error: %s", first)
	require.Zero(t, lost, "uplinks of the wake storm never acknowledged; the first error: %s", first)
}

// capacityMem is the heap in use after a full collection, and the
// process's resident set.
func capacityMem() (heap, rss uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b, _ := os.ReadFile("/proc/self/statm")
	if f := strings.Fields(string(b)); len(f) > 1 {
		pages, _ := strconv.ParseUint(f[1], 10, 64)
		rss = pages * uint64(os.Getpagesize())
	}
	return m.HeapInuse, rss
}

// capacityDescriptors is the descriptor hard limit a device process may
// raise itself to.
func capacityDescriptors() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 1024
	}
	return int(min(l.Max, 1<<30))
}

// capacityPool calls f(0…n-1) from workers goroutines.
func capacityPool(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		}()
	}
	wg.Wait()
}
