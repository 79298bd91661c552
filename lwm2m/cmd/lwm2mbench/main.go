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
//     (queue mode; lwm2m.Server parks their sessions once the awake window
//     has passed, -park=false keeps them live as bare go-coap does).
//
// The devices run in a child process (the same binary with -role=devices) so
// that the server's memory is measured alone. Everything runs on loopback.
// They are lean.go's DTLS client by default, which leaves the server nearly
// both cores; -client pion uses lwm2m.Client on pion/dtls, which costs as
// much CPU per handshake as the server and so measures itself as much as
// the server. -cpuprofile and -devprofile profile the registration phase of
// the lwm2m.Server run, in the server and in the devices.
//
//	go run ./lwm2m/cmd/lwm2mbench -n 2000
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
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

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"

	"github.com/doze-io/doze/lwm2m"
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
}

func main() {
	role := flag.String("role", "bench", "bench, or devices (internal: the child process)")
	n := flag.Int("n", 1000, "number of devices")
	uplinks := flag.Int("uplinks", 5, "uplinks per device")
	workers := flag.Int("workers", 64, "devices working at the same time")
	addr := flag.String("addr", "", "server address (devices role)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the lwm2m.Server registration phase to this file")
	flag.StringVar(&clientKind, "client", "lean", "the devices' DTLS client: lean (the load generator's own, see lean.go) or pion (lwm2m.Client on pion/dtls)")
	flag.IntVar(&procs, "procs", 1, "processes the devices are spread over (each holds one socket per device)")
	flag.IntVar(&first, "first", 0, "index of the first device (devices role)")
	flag.StringVar(&upProfile, "upprofile", "", "write a CPU profile of the lwm2m.Server uplink phase to this file")
	flag.StringVar(&devProfile, "devprofile", "", "write a CPU profile of the devices' registration phase (lwm2m.Server run) to this file")
	flag.BoolVar(&park, "park", true, "lwm2m.Server parks the sessions of sleeping queue-mode devices")
	flag.DurationVar(&awake, "awake", 10*time.Second, "awake window of queue-mode devices (lwm2m.Server)")
	flag.Parse()
	if *role == "devices" {
		runDevices(*addr, *n, *uplinks, *workers, devProfile)
		return
	}
	fmt.Printf("lwm2mbench: %d DTLS devices (%s client), %d uplinks each, %d at a time; GOMAXPROCS=%d, %s\n",
		*n, clientKind, *uplinks, *workers, runtime.GOMAXPROCS(0), runtime.Version())
	ours := bench("lwm2m.Server", startOurs, *n, *uplinks, *workers, *cpuprofile, devProfile, upProfile)
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
}

// devProfile is the -devprofile file; clientKind the -client flag.
var (
	devProfile, upProfile, clientKind string
	procs, first                      int
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
			"-uplinks", strconv.Itoa(uplinks), "-workers", strconv.Itoa(max(1, workers*k/n)), "-devprofile", prof, "-client", clientKind)
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

// park and awake configure session parking of the lwm2m.Server run: the
// devices register in queue mode and their sessions are parked once the
// awake window has passed.
var (
	park  = true
	awake = 10 * time.Second
)

func startOurs(n int) server {
	ks := lwm2m.NewMemoryKeyStore()
	for i := range n {
		ks.Set(identity(i), key)
	}
	var uplinks atomic.Int64
	s, err := lwm2m.New(lwm2m.Config{
		DisableUDP: true, DTLSAddr: "127.0.0.1:0",
		RequestRate: 1e6, RequestBurst: 1e6, MaxSessions: n + 10,
		ParkSessions: park, AwakeWindow: awake,
	}, ks, lwm2m.HandlerFunc(func(e lwm2m.Event) {
		if e.Kind == lwm2m.EventUplink {
			uplinks.Add(1)
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
	return server{addr: s.DTLSAddr().String(), stop: func() { cancel(); <-done }, settle: settle}
}

func startBare(n int) server {
	keys := make(map[string][]byte, n)
	for i := range n {
		keys[identity(i)] = key
	}
	var mu sync.Mutex
	r := mux.NewRouter()
	_ = r.Handle("/rd", mux.HandlerFunc(func(w mux.ResponseWriter, m *mux.Message) {
		_ = w.SetResponse(codes.Created, message.TextPlain, nil)
	}))
	_ = r.Handle("/dp", mux.HandlerFunc(func(w mux.ResponseWriter, m *mux.Message) {
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	}))
	l, err := coapnet.NewDTLSListener("udp", "127.0.0.1:0", coapnet.NewDTLSServerOptions(
		piondtls.WithPSK(func(id []byte) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			k, ok := keys[string(id)]
			if !ok {
				return nil, fmt.Errorf("unknown identity")
			}
			return k, nil
		}),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
		piondtls.WithExtendedMasterSecret(piondtls.RequestExtendedMasterSecret),
		piondtls.WithConnectionIDGenerator(piondtls.RandomCIDGenerator(8))))
	if err != nil {
		log.Fatal(err)
	}
	s := coapdtls.NewServer(options.WithMux(r))
	done := make(chan struct{})
	go func() { _ = s.Serve(l); close(done) }()
	return server{addr: l.Addr().String(), stop: func() { s.Stop(); <-done }}
}

// runDevices is the child: n clients register, send uplinks, report, and
// stay connected and silent until stdin closes.
func runDevices(addr string, n, uplinks, workers int, profile string) {
	// one UDP socket per device: raise the descriptor limit where allowed
	lim := syscall.Rlimit{Cur: uint64(n + 1024), Max: uint64(n + 1024)}
	var cur syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur); err == nil && cur.Cur < lim.Cur {
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	clients := make([]device, n)
	ok := make([]bool, n) // registered
	var errs atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		if errs.Add(1) == 1 {
			firstErr.Store(err.Error())
		}
	}
	run := func(f func(i int)) time.Duration {
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					f(i)
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	ctx := context.Background()
	var registered atomic.Int64
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			log.Fatal(err)
		}
		_ = pprof.StartCPUProfile(f)
	}
	regTime := run(func(i int) {
		c, err := register(ctx, addr, identity(first+i))
		if c != nil {
			clients[i] = c
		}
		if err != nil {
			fail(err)
			return
		}
		ok[i] = true
		registered.Add(1)
	})
	if profile != "" {
		pprof.StopCPUProfile()
	}
	fmt.Println("registered")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil { // "go": every process has registered its devices
		return
	}
	var sent atomic.Int64
	payload := []byte("0102030405060708090a0b0c0d0e0f10")
	upTime := run(func(i int) {
		c := clients[i]
		if !ok[i] {
			return
		}
		for range uplinks {
			if err := c.send(ctx, payload); err != nil {
				fail(err)
				return
			}
			sent.Add(1)
		}
	})
	res := deviceResult{
		Registered: int(registered.Load()), RegPerSec: float64(registered.Load()) / regTime.Seconds(),
		Uplinks: int(sent.Load()), UpPerSec: float64(sent.Load()) / upTime.Seconds(), Errors: int(errs.Load()),
	}
	if s, ok := firstErr.Load().(string); ok {
		res.FirstError = s
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range clients {
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

// register connects device ep (DTLS handshake) and registers it in queue
// mode with objects </3/0>,</19/1>, with the client -client chose. A
// non-nil device is returned whenever the socket was opened, so that the
// caller closes it.
func register(ctx context.Context, addr, ep string) (device, error) {
	if clientKind == "pion" {
		c, err := lwm2m.NewClient(lwm2m.ClientConfig{Server: addr, Endpoint: ep, Key: key,
			CipherSuites: []lwm2m.CipherSuite{lwm2m.TLS_PSK_WITH_AES_128_CCM_8}, Objects: "</3/0>,</19/1>", Queue: true})
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
	d, err := dialLean(addr, ep, key)
	if err != nil {
		return nil, err
	}
	if err := d.Handshake(); err != nil {
		return d, err
	}
	code, err := d.Do(codes.POST, "/rd", []string{"ep=" + ep, "lt=86400", "lwm2m=1.1", "b=U", "Q"},
		message.AppLinkFormat, []byte("</3/0>,</19/1>"))
	if err == nil && code != codes.Created {
		err = fmt.Errorf("registration answered %v", code)
	}
	return d, err
}

type pionDevice struct{ *lwm2m.Client }

func (p pionDevice) send(ctx context.Context, payload []byte) error {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return p.Send(cctx, lwm2m.Content{Format: lwm2m.FormatOpaque, Payload: payload})
}

func (d *leanDevice) send(ctx context.Context, payload []byte) error {
	code, err := d.Do(codes.POST, "/dp", nil, message.AppOctets, payload)
	if err == nil && code != codes.Changed {
		err = fmt.Errorf("uplink answered %v", code)
	}
	return err
}
