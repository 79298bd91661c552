// Command lwm2mbench measures the lwm2m server under N simulated DTLS
// devices and, in the same run, a bare go-coap DTLS server under the same
// load, and prints both with their ratio:
//
//   - registrations per second: DTLS 1.2 PSK handshake + POST /rd, with
//     -workers devices connecting at a time;
//   - uplinks per second: confirmable POST /dp (LwM2M Send) answered 2.04,
//     -uplinks per device;
//   - heap and goroutines per idle registered device, measured in the
//     server process after a GC while the devices stay connected and silent
//     (queue mode; transport.Server parks their sessions once the awake window
//     has passed, -park=false keeps them live as bare go-coap does).
//
// The devices run in a child process (the same binary with -role=devices) so
// that the server's memory is measured alone. Everything runs on loopback.
// They are lwm2m/ceiling's lean DTLS client by default, which leaves the server nearly
// both cores; -client pion uses transport.Client on pion/dtls, which costs as
// much CPU per handshake as the server and so measures itself as much as
// the server. -cpuprofile and -devprofile profile the registration phase of
// the transport.Server run, in the server and in the devices.
//
// The devices are spread over loopback source addresses (-sources: one
// address holds about 28,000 sockets towards one server, Linux's ephemeral
// port range) and over processes (-procs: one socket per device, up to the
// descriptor hard limit each), so that 100,000 and more run on one
// machine; both default to what -n needs. The devices role also serves
// examples/platform's capacity run: -objects with </19/0> (each device
// answers the server's Observe), -storm (a wake storm instead of -uplinks)
// and -linger (storm devices stay awake answering downlinks).
//
//	go run ./lwm2m/cmd/lwm2mbench -n 2000
//	go run ./lwm2m/cmd/lwm2mbench -n 100000 -uplinks 1
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/ceiling"
	"github.com/doze-io/doze/lwm2m/transport"
)

var key = []byte("0123456789abcdef")

func identity(i int) string { return fmt.Sprintf("86833303%07d", i) }

type deviceResult struct {
	Registered int     `json:"registered"`
	RegPerSec  float64 `json:"reg_per_sec"`
	Uplinks    int     `json:"uplinks"`
	UpPerSec   float64 `json:"up_per_sec"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	// Storm is set when the uplink phase was a wake storm (-storm).
	Storm *stormResult `json:"storm,omitempty"`
}

func main() {
	role := flag.String("role", "bench", "bench, or devices (internal: the child process)")
	n := flag.Int("n", 1000, "number of devices")
	uplinks := flag.Int("uplinks", 5, "uplinks per device")
	workers := flag.Int("workers", 64, "devices working at the same time")
	addr := flag.String("addr", "", "server address (devices role)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the transport.Server registration phase to this file")
	flag.StringVar(&clientKind, "client", "lean", "the devices' DTLS client: lean (the load generator's own, lwm2m/ceiling's LeanDevice) or pion (transport.Client on pion/dtls)")
	flag.IntVar(&procs, "procs", 0, "processes the devices are spread over (each holds one socket per device); 0 means as many as the descriptor limit (ulimit -Hn) needs")
	flag.IntVar(&sources, "sources", 0, "loopback source addresses the devices are spread over (127.0.0.2, 127.0.0.3, …); 0 means one per 20,000 devices")
	flag.StringVar(&objects, "objects", "</3/0>,</19/1>", "the devices' registration body; with </19/0> each device waits for the server's Observe of /19/0/0 and answers it")
	flag.IntVar(&storm, "storm", 0, "devices role: instead of -uplinks, a wake storm: every k-th device sends one uplink, their starts spread over -spread")
	flag.DurationVar(&spread, "spread", time.Second, "devices role: the time over which the wake storm's uplinks start")
	flag.DurationVar(&linger, "linger", 0, "devices role: how long a device of the wake storm stays awake after its uplink's answer, answering the server's requests (downlinks)")
	flag.IntVar(&first, "first", 0, "index of the first device (devices role)")
	flag.StringVar(&upProfile, "upprofile", "", "write a CPU profile of the transport.Server uplink phase to this file")
	flag.StringVar(&devProfile, "devprofile", "", "write a CPU profile of the devices' registration phase (transport.Server run) to this file")
	flag.BoolVar(&park, "park", true, "transport.Server parks the sessions of sleeping queue-mode devices")
	flag.DurationVar(&awake, "awake", 10*time.Second, "awake window of queue-mode devices (transport.Server)")
	flag.Parse()
	if err := checkSources(sources); err != nil {
		log.Fatal(err)
	}
	if *role == "devices" {
		runDevices(*addr, *n, *uplinks, *workers, devProfile)
		return
	}
	if sources == 0 {
		sources = autoSources(*n)
	}
	if procs <= 0 {
		procs = autoProcs(*n)
	}
	fmt.Printf("lwm2mbench: %d DTLS devices (%s client), %d uplinks each, %d at a time; from %d source addresses, in %d processes; GOMAXPROCS=%d, %s\n",
		*n, clientKind, *uplinks, *workers, sources, procs, runtime.GOMAXPROCS(0), runtime.Version())
	ours := bench("transport.Server", startOurs, *n, *uplinks, *workers, *cpuprofile, devProfile, upProfile)
	bare := bench("bare go-coap", startBare, *n, *uplinks, *workers, "", "", "")
	fmt.Printf("\nratio lwm2m/bare: registrations/s %.2f, uplinks/s %.2f, server CPU per registration %.2f, per uplink %.2f, heap per idle device %.2f\n",
		ours.reg/bare.reg, ours.up/bare.up, ours.cpuReg/bare.cpuReg, ours.cpuUp/bare.cpuUp, ours.heapPer/bare.heapPer)
}

type figures struct{ reg, up, heapPer, gorPer, cpuReg, cpuUp float64 }

// cpuTime is the CPU time (user + system) the process has used: the
// server's share of the work, whatever the load generator's speed.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type server struct {
	addr   string
	stop   func()
	settle func(registered int) // waits until idle devices are as they will stay
	lwm    *transport.Server    // the transport.Server run's server
}

// devProfile is the -devprofile file; clientKind the -client flag.
var (
	devProfile, upProfile, clientKind string
	procs, first, sources, storm      int
	objects                           = "</3/0>,</19/1>"
	spread                            = time.Second
	linger                            time.Duration
)

func bench(name string, start func(n int) server, n, uplinks, workers int, profile, devProfile, upProfile string) figures {
	runtime.GC()
	debug.FreeOSMemory()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	srv := start(n)
	defer srv.stop()

	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	// -procs children share the devices (one socket each: a process may
	// hold 20,000 descriptors here); each reports its own rates, which run
	// at the same time and add up.
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
	}
	var kids []child
	per := (n + procs - 1) / procs
	for first := 0; first < n; first += per {
		k := min(per, n-first)
		prof := ""
		if first == 0 {
			prof = devProfile
		}
		cmd := exec.Command(self, "-role=devices", "-addr", srv.addr, "-n", strconv.Itoa(k), "-first", strconv.Itoa(first),
			"-uplinks", strconv.Itoa(uplinks), "-workers", strconv.Itoa(max(1, workers*k/n)), "-devprofile", prof, "-client", clientKind,
			"-sources", strconv.Itoa(sources), "-objects", objects)
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		kids = append(kids, child{cmd, stdin, bufio.NewReader(stdout)})
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			log.Fatal(err)
		}
		_ = pprof.StartCPUProfile(f)
	}
	cpu0 := cpuTime()
	for _, c := range kids {
		if err := c.cmd.Start(); err != nil {
			log.Fatal(err)
		}
	}
	for _, c := range kids {
		if _, err := c.out.ReadString('\n'); err != nil { // "registered": its registration phase is over
			log.Fatalf("%s: devices: %v", name, err)
		}
	}
	cpuReg := cpuTime() - cpu0
	if profile != "" {
		pprof.StopCPUProfile()
	}
	if upProfile != "" {
		f, err := os.Create(upProfile)
		if err != nil {
			log.Fatal(err)
		}
		_ = pprof.StartCPUProfile(f)
	}
	for _, c := range kids {
		_, _ = io.WriteString(c.stdin, "go\n") // every device is registered: send the uplinks
	}
	var res deviceResult
	for _, c := range kids {
		line, err := c.out.ReadString('\n')
		if err != nil {
			log.Fatalf("%s: devices: %v", name, err)
		}
		var r deviceResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			log.Fatalf("%s: devices said %q: %v", name, line, err)
		}
		res.Registered += r.Registered
		res.RegPerSec += r.RegPerSec
		res.Uplinks += r.Uplinks
		res.UpPerSec += r.UpPerSec
		res.Errors += r.Errors
		if res.FirstError == "" {
			res.FirstError = r.FirstError
		}
	}
	cpu := cpuTime() - cpu0
	if upProfile != "" {
		pprof.StopCPUProfile()
	}
	// The devices are registered and idle now; measure the server.
	time.Sleep(500 * time.Millisecond)
	if srv.settle != nil {
		srv.settle(res.Registered)
	}
	runtime.GC()
	debug.FreeOSMemory()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	g1 := runtime.NumGoroutine()
	heap := float64(after.HeapInuse) - float64(before.HeapInuse)
	f := figures{reg: res.RegPerSec, up: res.UpPerSec, heapPer: heap / float64(res.Registered), gorPer: float64(g1-g0) / float64(res.Registered)}
	f.cpuReg = cpuReg.Seconds() / float64(res.Registered)
	f.cpuUp = (cpu - cpuReg).Seconds() / float64(max(res.Uplinks, 1))
	fmt.Printf("\n%s\n  registered %d (errors %d %s)\n  registrations/s %.0f, server CPU %.0f µs per registration (handshake included)\n  uplinks/s %.0f (%d), server CPU %.0f µs per uplink\n  heap per idle device %.1f KB, goroutines per idle device %.1f (heap %.1f MB, rss %s)\n",
		name, res.Registered, res.Errors, res.FirstError, res.RegPerSec, f.cpuReg*1e6, res.UpPerSec, res.Uplinks, f.cpuUp*1e6, f.heapPer/1024, f.gorPer, heap/1e6, rss())
	for _, c := range kids {
		_ = c.stdin.Close() // the devices leave
		_, _ = io.Copy(io.Discard, c.out)
		_ = c.cmd.Wait()
	}
	return f
}

func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

// park and awake configure session parking of the transport.Server run: the
// devices register in queue mode and their sessions are parked once the
// awake window has passed.
var (
	park  = true
	awake = 10 * time.Second
)

func startOurs(n int) server { return startOursWith(n, nil) }

// startOursWith is startOurs passing every event to on as well, when not
// nil.
func startOursWith(n int, on func(transport.Event)) server {
	ks := transport.NewMemoryKeyStore()
	for i := range n {
		ks.Set(identity(i), key)
	}
	var uplinks atomic.Int64
	s, err := transport.New(transport.Config{
		DisableUDP: true, DTLSAddr: "127.0.0.1:0",
		RequestRate: 1e6, RequestBurst: 1e6, MaxSessions: n + 10,
		MaxHandshakesPerIP: 1024, // every simulated device handshakes from 127.0.0.1
		ParkSessions:       park, AwakeWindow: awake,
	}, ks, transport.HandlerFunc(func(e transport.Event) {
		if e.Kind == transport.EventUplink {
			uplinks.Add(1)
		}
		if on != nil {
			on(e)
		}
	}))
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	settle := func(registered int) {
		if !park {
			return
		}
		deadline := time.Now().Add(awake + 60*time.Second)
		for s.ParkedSessions() < registered && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		fmt.Printf("  (%d sessions parked)\n", s.ParkedSessions())
	}
	return server{addr: s.DTLSAddr().String(), stop: func() { cancel(); <-done }, settle: settle, lwm: s}
}

// startBare starts the ceiling: a bare go-coap DTLS server that knows the
// devices' keys and only acknowledges.
func startBare(n int) server {
	keys := make(map[string][]byte, n)
	for i := range n {
		keys[identity(i)] = key
	}
	s, err := ceiling.Start(ceiling.Config{
		PSK: func(id []byte) ([]byte, error) {
			k, ok := keys[string(id)]
			if !ok {
				return nil, fmt.Errorf("unknown identity")
			}
			return k, nil
		},
		// Registering 100,000 devices takes longer than go-coap's
		// default idle timeout (16 s), and the benchmark compares
		// sessions kept for sleeping devices.
		Idle: 24 * time.Hour,
		// go-coap's own error handler, as before the ceiling package.
		Errors: func(err error) { fmt.Println(err) },
	})
	if err != nil {
		log.Fatal(err)
	}
	return server{addr: s.Addr(), stop: func() { _ = s.Close() }}
}

// runDevices is the child: n clients register, send uplinks (or a wake
// storm), report, and stay connected and silent until stdin closes.
func runDevices(addr string, n, uplinks, workers int, profile string) {
	if err := raiseDescriptorLimit(n); err != nil {
		log.Fatalf("devices %d–%d: %v", first, first+n-1, err)
	}
	f := newFleet(addr, first, n, sources, objects)
	defer f.close()
	ctx := context.Background()
	if profile != "" {
		pf, err := os.Create(profile)
		if err != nil {
			log.Fatal(err)
		}
		_ = pprof.StartCPUProfile(pf)
	}
	regTime := f.registerAll(ctx, workers)
	if profile != "" {
		pprof.StopCPUProfile()
	}
	fmt.Println("registered")
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil { // "go": every process has registered its devices
		return
	}
	res := deviceResult{Registered: int(f.registered.Load()), RegPerSec: float64(f.registered.Load()) / regTime.Seconds()}
	if storm > 0 {
		s := f.storm(ctx, storm, spread)
		res.Uplinks, res.Storm = s.acked, &s
	} else {
		sent, upTime := f.uplinks(ctx, workers, uplinks)
		res.Uplinks, res.UpPerSec = int(sent), float64(sent)/upTime.Seconds()
	}
	res.Errors = int(f.errs.Load())
	if s, ok := f.firstErr.Load().(string); ok {
		res.FirstError = s
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	_, _ = io.Copy(io.Discard, in)
}

// fleet is the devices of one device process: devices first…first+n-1,
// each on its own socket from its source address.
type fleet struct {
	addr           string
	first, sources int
	objects        string
	devs           []device
	ok             []bool // registered

	registered atomic.Int64
	errs       atomic.Int64
	firstErr   atomic.Value
}

func newFleet(addr string, first, n, sources int, objects string) *fleet {
	return &fleet{addr: addr, first: first, sources: sources, objects: objects, devs: make([]device, n), ok: make([]bool, n)}
}

func (f *fleet) fail(err error) {
	if f.errs.Add(1) == 1 {
		f.firstErr.Store(err.Error())
	}
}

// each calls fn(0…n-1) from workers goroutines and returns how long it
// took.
func (f *fleet) each(workers int, fn func(i int)) time.Duration {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(workers, len(f.devs))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(f.devs) {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// registerAll connects and registers every device, workers at a time.
func (f *fleet) registerAll(ctx context.Context, workers int) time.Duration {
	return f.each(workers, func(i int) {
		c, err := register(ctx, f.addr, identity(f.first+i), ceiling.SourceIP(f.first+i, f.sources), f.objects)
		if c != nil {
			f.devs[i] = c
		}
		if err != nil {
			f.fail(err)
			return
		}
		f.ok[i] = true
		f.registered.Add(1)
	})
}

var payload = []byte("0102030405060708090a0b0c0d0e0f10")

// uplinks sends uplinks confirmable POST /dp from every registered device,
// workers at a time, and returns those answered 2.04 and the time taken.
func (f *fleet) uplinks(ctx context.Context, workers, uplinks int) (int64, time.Duration) {
	var sent atomic.Int64
	took := f.each(workers, func(i int) {
		if !f.ok[i] {
			return
		}
		for range uplinks {
			if err := f.devs[i].send(ctx, payload); err != nil {
				f.fail(err)
				return
			}
			sent.Add(1)
		}
	})
	return sent.Load(), took
}

// stormResult is what the devices of one process saw of a wake storm.
type stormResult struct {
	Sent  int `json:"sent"` // devices that sent their uplink
	acked int // answered 2.04
	// Last is the time from the storm's start to the last 2.04, in
	// seconds; the parent takes the largest over its processes.
	Last float64 `json:"last_s"`
	// Latency holds each answered uplink's time from its sending to its
	// 2.04, in milliseconds.
	Latency []float64 `json:"latency_ms"`
}

// storm is a wake storm: every every-th device (by global index) sends one
// uplink, their starts spread evenly over spread, each device on its own
// goroutine, as sleeping devices that wake at once would.
func (f *fleet) storm(ctx context.Context, every int, spread time.Duration) stormResult {
	var picked []int
	for i := range f.devs {
		if (f.first+i)%every == 0 && f.ok[i] {
			picked = append(picked, i)
		}
	}
	res := stormResult{Sent: len(picked)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for k, i := range picked {
		at := start.Add(spread * time.Duration(k) / time.Duration(len(picked)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(at))
			t0 := time.Now()
			if err := f.devs[i].send(ctx, payload); err != nil {
				f.fail(err)
				return
			}
			t1 := time.Now()
			if d, ok := f.devs[i].(leanDevice); ok && linger > 0 {
				d.Linger(t1.Add(linger)) // awake: the server may send what it held
			}
			mu.Lock()
			res.acked++
			res.Latency = append(res.Latency, float64(t1.Sub(t0).Microseconds())/1000)
			res.Last = max(res.Last, t1.Sub(start).Seconds())
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

func (f *fleet) close() {
	for _, c := range f.devs {
		if c != nil {
			_ = c.Close()
		}
	}
}

// device is one simulated device of the load generator.
type device interface {
	send(ctx context.Context, payload []byte) error // confirmable POST /dp, 2.04 expected
	Close() error
}

// register connects device ep (DTLS handshake) from source address src
// (nil: the kernel's choice) and registers it in queue mode with the
// objects given, with the client -client chose. When the objects list
// </19/0>, it waits for the server to observe /19/0/0. A non-nil device is
// returned whenever the socket was opened, so that the caller closes it.
func register(ctx context.Context, addr, ep string, src net.IP, objects string) (device, error) {
	if clientKind == "pion" {
		cc := transport.ClientConfig{Server: addr, Endpoint: ep, Key: key,
			CipherSuites: []transport.CipherSuite{transport.TLS_PSK_WITH_AES_128_CCM_8}, Objects: objects, Queue: true}
		if src != nil {
			cc.LocalAddr = net.JoinHostPort(src.String(), "0")
		}
		c, err := transport.NewClient(cc)
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := c.Connect(cctx); err != nil {
			return nil, err
		}
		return pionDevice{c}, c.Register(cctx)
	}
	d, err := ceiling.DialLean(addr, ep, key, src)
	if err != nil {
		return nil, err
	}
	if err := d.Handshake(); err != nil {
		return leanDevice{d}, err
	}
	err = d.Register(ep, objects)
	if err == nil && strings.Contains(objects, "</19/0>") {
		err = d.AwaitObserve(5 * time.Second)
	}
	return leanDevice{d}, err
}

type pionDevice struct{ *transport.Client }

func (p pionDevice) send(ctx context.Context, payload []byte) error {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return p.Send(cctx, transport.Content{Format: lwm2m.FormatOpaque, Payload: payload})
}

// leanDevice is the default device: ceiling's lean DTLS client.
type leanDevice struct{ *ceiling.LeanDevice }

func (d leanDevice) send(_ context.Context, payload []byte) error { return d.Send(payload) }
