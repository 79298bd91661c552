package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	coapudp "github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
)

// LoadConfig configures a load run (see Load).
type LoadConfig struct {
	// Device is the template of every device; its IMEI is replaced by
	// IMEIs[i], and Load forces DRX, NoFirstReport and a 24h report period
	// so that only the measured uplinks are sent.
	Device Config
	// IMEIs names the devices (required, one per device).
	IMEIs []string
	// Keys are the devices' PSKs, by index; nil or a nil entry means
	// Device.Key.
	Keys [][]byte
	// Uplinks is the number of reports each device sends; 0 means 1.
	Uplinks int
	// Workers is how many devices connect or send at a time; 0 means 64.
	Workers int
	// Timeout bounds the whole run; 0 means 5 minutes.
	Timeout time.Duration
	// API subscribes the webhook sink to deviceDataChanged; required,
	// already logged in.
	API *API
	// SinkAddr is where the webhook sink listens; "" means 127.0.0.1 on a
	// free port. The platform wants every callback URL of an application
	// on one host and port (PSH-2), so repeated runs for one app give the
	// same address.
	SinkAddr string
	// NotifyType is what the sink subscribes to: "deviceDataChanged" (one
	// push per service of a report) or "deviceDatasChanged" (one push with
	// every service). "" means deviceDataChanged.
	NotifyType string
	// NoCeiling skips the bare go-coap run.
	NoCeiling bool
	// Sources spreads the devices (and the ceiling's clients) over this
	// many loopback source addresses, 127.0.0.2, 127.0.0.3, …, device i
	// sending from the (i mod Sources)-th: one address gives about 28,000
	// sockets towards one server address (Linux's ephemeral port range),
	// and all of 127.0.0.0/8 is loopback. 0 means one address per 20,000
	// devices for a server on 127.0.0.0/8, and the kernel's choice for
	// another. Device.LocalAddr, when set, wins for a run of one address.
	Sources int
}

// LoadResult holds the figures of a load run.
type LoadResult struct {
	Devices    int           // devices registered
	Sent       int64         // reports acknowledged by the platform's CoAP layer
	Pushed     int64         // webhook pushes received carrying a Meter reading
	Errors     int64         // failed connects, registrations and reports
	Elapsed    time.Duration // first report sent → last push received
	Acked      time.Duration // first report sent → last report acknowledged by the platform's CoAP layer
	PerSecond  float64       // Pushed / Elapsed: end-to-end uplinks per second
	Ceiling    float64       // bare go-coap: confirmable POSTs per second, same devices count and uplinks
	CeilingN   int64         // requests answered by the bare server
	Ratio      float64       // PerSecond / Ceiling
	FirstError string        // the first error, if any
}

// Load runs len(IMEIs) devices against the platform and measures end-to-end
// uplinks per second: from the first report sent to the last webhook push
// received by a sink on 127.0.0.1 that Load subscribes through the API.
// Then, in the same run, the same number of confirmable requests go to a
// bare go-coap server (UDP, or DTLS when the template has a Key) in this
// process, from as many lwm2m clients: the ceiling. When Timeout passes
// before every acknowledged report was pushed, Load returns the figures so
// far with an error wrapping context.DeadlineExceeded.
func Load(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	var res LoadResult
	if len(cfg.IMEIs) == 0 {
		return res, &ConfigError{Field: "IMEIs", Problem: "at least one device is needed"}
	}
	if cfg.API == nil {
		return res, &ConfigError{Field: "API", Problem: "required: the platform API to subscribe the webhook sink"}
	}
	if cfg.Uplinks <= 0 {
		cfg.Uplinks = 1
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	sources, err := loadSources(cfg.Device.Server, cfg.Sources, len(cfg.IMEIs))
	if err != nil {
		return res, err
	}
	if cfg.Device.LocalAddr != "" {
		sources = 0
	}
	cfg.Sources = sources
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var errs atomic.Int64
	var firstErr sync.Once
	fail := func(err error) {
		errs.Add(1)
		firstErr.Do(func() { res.FirstError = err.Error() })
	}

	sink, err := startSink(cfg.SinkAddr)
	if err != nil {
		return res, err
	}
	defer sink.close()
	if cfg.NotifyType == "" {
		cfg.NotifyType = "deviceDataChanged"
	}
	if err := cfg.API.Subscribe(ctx, cfg.NotifyType, sink.url); err != nil {
		return res, err
	}

	// Devices: connect and register, Workers at a time.
	devs := make([]*Device, len(cfg.IMEIs))
	runCtx, stopDevices := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer func() { stopDevices(); running.Wait() }()
	pool(len(devs), cfg.Workers, func(i int) {
		c := cfg.Device
		c.IMEI = cfg.IMEIs[i]
		if ip := SourceIP(i, cfg.Sources); ip != nil {
			c.LocalAddr = net.JoinHostPort(ip.String(), "0")
		}
		if i < len(cfg.Keys) && cfg.Keys[i] != nil {
			c.Key = cfg.Keys[i]
		}
		c.Power = Power{Mode: DRX}
		c.NoFirstReport = true
		c.ReportPeriod = 24 * time.Hour
		d, err := New(c)
		if err != nil {
			fail(err)
			return
		}
		runErr := make(chan error, 1)
		running.Add(1)
		go func() { defer running.Done(); runErr <- d.Run(runCtx) }()
		select {
		case <-d.Ready():
			devs[i] = d
		case err := <-runErr:
			if err == nil {
				err = ctx.Err()
			}
			fail(err)
		}
	})
	for _, d := range devs {
		if d != nil {
			res.Devices++
		}
	}
	if res.Devices == 0 {
		return res, fmt.Errorf("sim: load: no device registered: %s", res.FirstError)
	}

	// Uplinks.
	var sent atomic.Int64
	start := time.Now()
	pool(len(devs), cfg.Workers, func(i int) {
		d := devs[i]
		if d == nil {
			return
		}
		for range cfg.Uplinks {
			if err := d.Report(ctx); err != nil {
				fail(err)
				return
			}
			sent.Add(1)
		}
	})
	res.Sent = sent.Load()
	res.Acked = time.Since(start)
	last := sink.wait(ctx, res.Sent)
	res.Pushed = sink.count.Load()
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
	}
	if res.Pushed > 0 && res.Elapsed > 0 {
		res.PerSecond = float64(res.Pushed) / res.Elapsed.Seconds()
	}
	stopDevices()
	running.Wait()
	if res.Pushed < res.Sent {
		// wait returned because ctx ended: the run is over its bound.
		res.Errors = errs.Load()
		return res, fmt.Errorf("sim: load: %d of %d pushes arrived at the sink %s before the end of the run (Timeout %v): %w",
			res.Pushed, res.Sent, sink.url, cfg.Timeout, ctx.Err())
	}

	if !cfg.NoCeiling {
		n, d, err := ceiling(ctx, cfg, fail)
		if err != nil {
			return res, err
		}
		res.CeilingN = n
		if d > 0 {
			res.Ceiling = float64(n) / d.Seconds()
		}
		if res.Ceiling > 0 {
			res.Ratio = res.PerSecond / res.Ceiling
		}
	}
	res.Errors = errs.Load()
	return res, nil
}

// pool calls f(0…n-1) from workers goroutines.
func pool(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
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
}

// sink is the webhook receiver of a load run.
type sink struct {
	url   string
	srv   *http.Server
	done  chan struct{}
	count atomic.Int64
	mu    sync.Mutex
	last  time.Time
	tick  chan struct{}
}

func startSink(addr string) (*sink, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sim: webhook sink: %w", err)
	}
	s := &sink{url: "http://" + l.Addr().String() + "/push", done: make(chan struct{}), tick: make(chan struct{}, 1)}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.push), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(l); close(s.done) }()
	return s, nil
}

// push counts one uplink per push that carries the Meter service (a
// meterReading decodes to three services, which a platform may push one by
// one).
func (s *sink) push(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	// Answer once counted, so that a pusher that saw 200 was counted.
	defer w.WriteHeader(http.StatusOK)
	var n struct {
		Service  struct{ ServiceID string }   `json:"service"`
		Services []struct{ ServiceID string } `json:"services"`
	}
	if json.Unmarshal(b, &n) != nil {
		return
	}
	meter := n.Service.ServiceID == "Meter"
	for _, sv := range n.Services {
		meter = meter || sv.ServiceID == "Meter"
	}
	if !meter {
		return
	}
	s.count.Add(1)
	s.mu.Lock()
	s.last = time.Now()
	s.mu.Unlock()
	select {
	case s.tick <- struct{}{}:
	default:
	}
}

// wait returns the time of the last push once want pushes arrived or ctx
// ended.
func (s *sink) wait(ctx context.Context, want int64) time.Time {
	for s.count.Load() < want {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.last
		case <-s.tick:
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *sink) close() {
	_ = s.srv.Close()
	<-s.done
}

// ceilingKey is the PSK of every device of the bare server.
var ceilingKey = []byte("doze-ceiling-key")

// ceiling runs the bare go-coap server and as many clients as the load run
// had devices, each sending cfg.Uplinks confirmable POST /dp. It returns
// the requests answered and the time they took.
func ceiling(ctx context.Context, cfg LoadConfig, fail func(error)) (int64, time.Duration, error) {
	r := mux.NewRouter()
	_ = r.Handle("/rd", mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
		_ = w.SetResponse(codes.Created, message.TextPlain, nil)
	}))
	_ = r.Handle("/dp", mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	}))
	// go-coap closes a connection idle for 16 s by default; the devices
	// that connected first wait longer than that for the others.
	idle := options.WithInactivityMonitor(time.Hour, func(cc *udpclient.Conn) { _ = cc.Close() })
	// go-coap's default periodic runner sleeps 4 s between ticks in a
	// goroutine that outlives Stop by up to 4 s, and its default error
	// handler prints to stdout: stop the runner with the server, log the
	// errors.
	runnerStop := make(chan struct{})
	var runners sync.WaitGroup
	periodic := options.WithPeriodicRunner(func(f func(now time.Time) bool) {
		runners.Add(1)
		go func() {
			defer runners.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for f(time.Now()) {
				select {
				case <-runnerStop:
					return
				case <-t.C:
				}
			}
		}()
	})
	logger := cfg.Device.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	errs := options.WithErrors(func(err error) { logger.Debug("bare go-coap server", "err", err) })
	stopRunners := func() { close(runnerStop); runners.Wait() }
	secure := cfg.Device.Key != nil
	var addr string
	var stop func()
	if secure {
		l, err := coapnet.NewDTLSListener("udp", "127.0.0.1:0", coapnet.NewDTLSServerOptions(
			piondtls.WithPSK(func([]byte) ([]byte, error) { return ceilingKey, nil }),
			piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
			piondtls.WithExtendedMasterSecret(piondtls.RequestExtendedMasterSecret),
			piondtls.WithConnectionIDGenerator(piondtls.RandomCIDGenerator(8))))
		if err != nil {
			return 0, 0, fmt.Errorf("sim: bare go-coap DTLS listener: %w", err)
		}
		s := coapdtls.NewServer(options.WithMux(r), idle, periodic, errs)
		done := make(chan struct{})
		go func() { _ = s.Serve(l); close(done) }()
		addr, stop = l.Addr().String(), func() { s.Stop(); <-done; stopRunners() }
	} else {
		l, err := coapnet.NewListenUDP("udp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("sim: bare go-coap UDP listener: %w", err)
		}
		s := coapudp.NewServer(options.WithMux(r), idle, periodic, errs)
		done := make(chan struct{})
		go func() { _ = s.Serve(l); close(done) }()
		addr, stop = l.LocalAddr().String(), func() { s.Stop(); <-done; stopRunners() }
	}
	defer stop()

	clients := make([]*transport.Client, len(cfg.IMEIs))
	defer func() {
		for _, c := range clients {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	pool(len(clients), cfg.Workers, func(i int) {
		cc := transport.ClientConfig{Server: addr, Endpoint: cfg.IMEIs[i], Objects: "</19/0>,</19/1>", Transmission: cfg.Device.Transmission}
		if ip := SourceIP(i, cfg.Sources); ip != nil {
			cc.LocalAddr = net.JoinHostPort(ip.String(), "0")
		}
		if secure {
			cc.Key = ceilingKey
			cc.CipherSuites = []transport.CipherSuite{transport.TLS_PSK_WITH_AES_128_CCM_8}
		}
		c, err := transport.NewClient(cc)
		if err == nil {
			err = c.Connect(ctx)
			if err == nil {
				clients[i] = c
				err = c.Register(ctx)
			}
		}
		if err != nil {
			fail(fmt.Errorf("sim: ceiling client %s: %w", cfg.IMEIs[i], err))
			clients[i] = nil
			if c != nil {
				_ = c.Close()
			}
		}
	})
	payload := []byte{0x01, 0x55, 0xFF, 0xAB, 0x00, 0x01, 0xE2, 0x40, 0x00, 0x96, 0x00, 0x10} // a meterReading
	var sent atomic.Int64
	start := time.Now()
	pool(len(clients), cfg.Workers, func(i int) {
		c := clients[i]
		if c == nil {
			return
		}
		for range cfg.Uplinks {
			if err := c.Send(ctx, transport.Content{Format: lwm2m.FormatOpaque, Payload: payload}); err != nil {
				fail(fmt.Errorf("sim: ceiling send: %w", err))
				return
			}
			sent.Add(1)
		}
	})
	el := time.Since(start)
	if sent.Load() == 0 && ctx.Err() != nil {
		return 0, 0, errors.Join(errors.New("sim: ceiling run: no request answered"), ctx.Err())
	}
	return sent.Load(), el, nil
}

// DevicesPerSource is how many devices Load puts on one source address
// when LoadConfig.Sources is 0: under the 28,232 ports of Linux's default
// ephemeral range (32768–60999), with room for other programs' sockets.
const DevicesPerSource = 20000

// SourceIP is the loopback address device i sends from when the devices
// are spread over sources addresses: 127.0.0.2 for i%sources == 0, then
// counting up (127.0.1.0 follows 127.0.0.255), never 127.0.0.1 (the
// server's) or 127.255.255.255. sources ≤ 0 means no choice: nil.
func SourceIP(i, sources int) net.IP {
	if sources <= 0 {
		return nil
	}
	k := 2 + i%sources
	return net.IPv4(127, byte(k>>16), byte(k>>8), byte(k))
}

// maxSources is the number of addresses from 127.0.0.2 to 127.255.255.254.
const maxSources = 1<<24 - 3

// loadSources is the number of source addresses of a run of n devices
// against server ("" is 127.0.0.1), for LoadConfig.Sources = sources.
func loadSources(server string, sources, n int) (int, error) {
	if sources < 0 || sources > maxSources {
		return 0, &ConfigError{Field: "Sources", Value: strconv.Itoa(sources),
			Problem: fmt.Sprintf("allowed: 0 (one per %d devices) to %d (127.0.0.2 to 127.255.255.254)", DevicesPerSource, maxSources)}
	}
	loopback4 := server == ""
	if host, _, err := net.SplitHostPort(server); err == nil {
		ip := net.ParseIP(host)
		loopback4 = ip != nil && ip.To4() != nil && ip.IsLoopback()
	}
	switch {
	case sources > 0 && !loopback4:
		return 0, &ConfigError{Field: "Sources", Value: strconv.Itoa(sources),
			Problem: fmt.Sprintf("source addresses are taken from 127.0.0.0/8, which reaches only a server on it; Device.Server is %q", server)}
	case sources > 0:
		return sources, nil
	case loopback4:
		return (n + DevicesPerSource - 1) / DevicesPerSource, nil
	}
	return 0, nil
}
