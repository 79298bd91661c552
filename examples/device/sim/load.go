package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/doze-io/doze/lwm2m"
	coapceiling "github.com/doze-io/doze/lwm2m/ceiling"
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
	// NoCeiling skips the bare go-coap run and the deliveries alone after
	// it (LoadResult.Floor, Bound).
	NoCeiling bool
	// Sources spreads the devices (and the ceiling's clients) over this
	// many loopback source addresses, 127.0.0.2, 127.0.0.3, …, device i
	// sending from the (i mod Sources)-th: one address gives about 28,000
	// sockets towards one server address (Linux's ephemeral port range),
	// and all of 127.0.0.0/8 is loopback. 0 means one address per 20,000
	// devices for a server on 127.0.0.0/8, and the kernel's choice for
	// another. Device.LocalAddr, when set, wins for a run of one address.
	Sources int
	// Rate paces the uplinks: this many per second over all devices,
	// spread evenly in time and open loop (uplink j is due at j/Rate
	// seconds; a device still waiting for its last acknowledgement sends
	// the next one late, never skipping it). 0 sends unpaced: Workers
	// devices at a time, each sending its next report when the last was
	// acknowledged.
	Rate float64
	// PaceOfMax, when above 0 (at most 1), runs twice on the same
	// devices: first unpaced, to measure the maximum end-to-end rate
	// (LoadResult.Probe), then paced at PaceOfMax times that rate. 0.5 is
	// "half the maximum rate". It excludes Rate.
	PaceOfMax float64
}

// LoadResult holds the figures of a load run.
type LoadResult struct {
	Devices   int           // devices registered
	Sent      int64         // reports acknowledged by the platform's CoAP layer
	Pushed    int64         // webhook pushes received carrying a Meter reading
	Errors    int64         // failed connects, registrations and reports
	Elapsed   time.Duration // first report sent → last push received
	Acked     time.Duration // first report sent → last report acknowledged by the platform's CoAP layer
	PerSecond float64       // Pushed / Elapsed: end-to-end uplinks per second
	Ceiling   float64       // bare go-coap: confirmable POSTs per second, same devices count and uplinks
	CeilingN  int64         // requests answered by the bare server
	Ratio     float64       // PerSecond / Ceiling

	// PushesPerUplink is every push the sink received for the measured
	// run (not only the counted Meter ones, and those that came after
	// the last Meter push) per report sent.
	PushesPerUplink float64
	// Floor is the deliveries alone, run after the ceiling: the sink
	// gets as many pushes again (FloorN), their bodies posted by a plain
	// net/http client with FloorConcurrency in flight and no platform in
	// between; Floor is the uplinks per second they amount to (pushes/s ÷
	// PushesPerUplink).
	Floor  float64
	FloorN int64
	// DownlinksPerUplink is the requests of the platform (report
	// acknowledgements) a device answered per report sent, counted until
	// the last push arrived.
	DownlinksPerUplink float64
	// Bound is what the parts of an uplink that no platform can leave
	// out reach together on this machine: the device's exchanges (its
	// report and the DownlinksPerUplink acknowledgements it answers, each
	// a confirmable exchange like the bare server's) and the deliveries.
	// Their CPU times per uplink add up: Bound is the machine's cores
	// divided by (1+DownlinksPerUplink)·ExchangeCPU + DeliveriesCPU, the
	// rate at which those parts alone keep every core busy (without
	// /proc/stat, 1/((1+DownlinksPerUplink)/Ceiling + 1/Floor), which
	// takes both runs to have kept the cores busy). BoundRatio is
	// Bound / Ceiling: the highest Ratio a platform doing that work on
	// the same cores as the devices and the sink can show.
	Bound, BoundRatio float64
	// ExchangeCPU is the machine's CPU time per request of the ceiling
	// run, DeliveriesCPU per uplink's pushes in the floor run (/proc/stat;
	// 0 where it is not there). CeilingCores, FloorCores and RunCores are
	// the cores busy on average in the ceiling run, the floor run and the
	// measured run (first report sent to last push).
	ExchangeCPU, DeliveriesCPU         time.Duration
	CeilingCores, FloorCores, RunCores float64
	FirstError                         string // the first error, if any

	// Rate is the paced rate the uplinks were sent at (uplinks/s); 0 for
	// an unpaced run.
	Rate float64
	// SendLagP99 and SendLagMax say how late a paced run's sends began
	// after they were due (a device still waiting for its previous
	// acknowledgement, or a busy machine): p99 and max.
	SendLagP99, SendLagMax time.Duration
	// Latency is the device-to-push latency of the run's uplinks.
	Latency Latency
	// Probe is the unpaced run that measured the maximum rate before a
	// run paced at LoadConfig.PaceOfMax of it; nil otherwise.
	Probe *LoadResult
}

// Load runs len(IMEIs) devices against the platform and measures end-to-end
// uplinks per second: from the first report sent to the last webhook push
// received by a sink on 127.0.0.1 that Load subscribes through the API.
// Then, in the same run, the same number of confirmable requests go to a
// bare go-coap server (lwm2m/ceiling: UDP, or DTLS when the template has a Key) in this
// process, from as many lwm2m clients: the ceiling. When Timeout passes
// before every acknowledged report was pushed, Load returns the figures so
// far with an error wrapping context.DeadlineExceeded.
func Load(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if len(cfg.IMEIs) == 0 {
		return LoadResult{}, &ConfigError{Field: "IMEIs", Problem: "at least one device is needed"}
	}
	if cfg.API == nil {
		return LoadResult{}, &ConfigError{Field: "API", Problem: "required: the platform API to subscribe the webhook sink"}
	}
	if err := checkRate(cfg.Rate, cfg.PaceOfMax); err != nil {
		return LoadResult{}, err
	}
	loadDefaults(&cfg.Uplinks, &cfg.Workers, &cfg.Timeout, &cfg.NotifyType)
	sources, err := loadSources(cfg.Device.Server, cfg.Sources, len(cfg.IMEIs))
	if err != nil {
		return LoadResult{}, err
	}
	if cfg.Device.LocalAddr != "" {
		sources = 0
	}
	cfg.Sources = sources
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	// The devices run until the uplinks are pushed, then leave before the
	// ceiling is measured.
	runCtx, stopDevices := context.WithCancel(ctx)
	var running sync.WaitGroup
	stop := func() { stopDevices(); running.Wait() }
	defer stop()
	run := loadRun[*Device]{
		what: "load", joined: "registered",
		n: len(cfg.IMEIs), uplinks: cfg.Uplinks, workers: cfg.Workers, timeout: cfg.Timeout,
		api: cfg.API, sinkAddr: cfg.SinkAddr, notifyType: cfg.NotifyType,
		connect: func(ctx context.Context, i int) (*Device, error) {
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
				return nil, err
			}
			runErr := make(chan error, 1)
			running.Add(1)
			go func() { defer running.Done(); runErr <- d.Run(runCtx) }()
			select {
			case <-d.Ready():
				return d, nil
			case err := <-runErr:
				if err == nil {
					err = ctx.Err()
				}
				return nil, err
			}
		},
		report: func(ctx context.Context, d *Device) error { return d.Report(ctx) },
		// Every write the device answered is an exchange; counted when
		// answered, not when Run has decoded it, so that a platform that
		// pushes once the device answered finds it counted.
		downlinks: func(d *Device) int64 { return d.Stats().Writes },
		pushed:    stop,
		rate:      cfg.Rate, paceOfMax: cfg.PaceOfMax,
		resolve: func(ctx context.Context, want map[string]bool, x *deviceIndex) error {
			return resolveByNodeID(ctx, cfg.API, cfg.IMEIs, want, x)
		},
	}
	if !cfg.NoCeiling {
		run.ceiling = func(ctx context.Context, fail func(error)) (span, error) {
			return ceiling(ctx, cfg, fail)
		}
	}
	return run.run(ctx)
}

// ceilingKey is the PSK of every device of the bare server.
var ceilingKey = []byte("doze-ceiling-key")

// ceiling runs the bare go-coap server and as many clients as the load run
// had devices, each sending cfg.Uplinks confirmable POST /dp. It returns
// the requests answered, the time they took and the machine's CPU time
// over it.
func ceiling(ctx context.Context, cfg LoadConfig, fail func(error)) (span, error) {
	logger := cfg.Device.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sc := coapceiling.Config{Idle: time.Hour, Tick: time.Second,
		Errors: func(err error) { logger.Debug("bare go-coap server", "err", err) }}
	secure := cfg.Device.Key != nil
	if secure {
		sc.PSK = func([]byte) ([]byte, error) { return ceilingKey, nil }
	}
	srv, err := coapceiling.Start(sc)
	if err != nil {
		return span{}, fmt.Errorf("sim: %w", err)
	}
	defer srv.Close()

	clients := connectAll(len(cfg.IMEIs), cfg.Workers, func(i int) (*transport.Client, error) {
		cc := transport.ClientConfig{Server: srv.Addr(), Endpoint: cfg.IMEIs[i], Objects: "</19/0>,</19/1>", Transmission: cfg.Device.Transmission}
		if ip := SourceIP(i, cfg.Sources); ip != nil {
			cc.LocalAddr = net.JoinHostPort(ip.String(), "0")
		}
		if secure {
			cc.Key = ceilingKey
			cc.CipherSuites = []transport.CipherSuite{transport.TLS_PSK_WITH_AES_128_CCM_8}
		}
		c, err := transport.NewClient(cc)
		if err == nil {
			if err = c.Connect(ctx); err == nil {
				err = c.Register(ctx)
			}
		}
		if err != nil {
			if c != nil {
				_ = c.Close()
			}
			return nil, fmt.Errorf("sim: ceiling client %s: %w", cfg.IMEIs[i], err)
		}
		return c, nil
	}, fail)
	defer func() {
		for _, c := range clients {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	payload := []byte{0x01, 0x55, 0xFF, 0xAB, 0x00, 0x01, 0xE2, 0x40, 0x00, 0x96, 0x00, 0x10} // a meterReading
	sp := measureSend(clients, cfg.Workers, cfg.Uplinks, func(c *transport.Client) error {
		if err := c.Send(ctx, transport.Content{Format: lwm2m.FormatOpaque, Payload: payload}); err != nil {
			return fmt.Errorf("sim: ceiling send: %w", err)
		}
		return nil
	}, fail)
	if sp.n == 0 && ctx.Err() != nil {
		return span{}, errors.Join(errors.New("sim: ceiling run: no request answered"), ctx.Err())
	}
	return sp, nil
}

// DevicesPerSource is how many devices Load puts on one source address
// when LoadConfig.Sources is 0: under the 28,232 ports of Linux's default
// ephemeral range (32768–60999), with room for other programs' sockets.
const DevicesPerSource = coapceiling.DevicesPerSource

// SourceIP is the loopback address device i sends from when the devices
// are spread over sources addresses: 127.0.0.2 for i%sources == 0, then
// counting up (127.0.1.0 follows 127.0.0.255), never 127.0.0.1 (the
// server's) or 127.255.255.255. sources ≤ 0 means no choice: nil.
func SourceIP(i, sources int) net.IP { return coapceiling.SourceIP(i, sources) }

// maxSources is the number of addresses from 127.0.0.2 to 127.255.255.254.
const maxSources = coapceiling.MaxSources

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
