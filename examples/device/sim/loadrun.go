package sim

// The load loop that Load (LwM2M) and MQTTLoad share: subscribe a webhook
// sink, connect the devices, send the uplinks, wait for their pushes,
// then measure the bare server (the ceiling) with as many clients.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadRun is one load run of devices of type D (nil when not connected).
type loadRun[D comparable] struct {
	what   string // "load" or "MQTT load", in errors
	joined string // what a device that is in did: "registered" or "connected"

	n, uplinks, workers  int
	timeout              time.Duration // the run's bound, in errors (ctx carries it)
	api                  *API
	sinkAddr, notifyType string

	// connect connects device i (ctx bounds the run); a device that
	// failed is counted as an error and left out.
	connect func(ctx context.Context, i int) (D, error)
	// report sends one report of a connected device.
	report func(ctx context.Context, d D) error
	// downlinks, when set, is how many requests of the platform a device
	// has answered so far (report acknowledgements): each costs the
	// machine an exchange like the bare server's (LoadResult.Bound).
	downlinks func(d D) int64
	// pushed, when set, is called once the pushes were awaited, before
	// the figures are checked and the ceiling measured.
	pushed func()
	// leave, when set, is called for every connected device when the run
	// returns.
	leave func(d D)
	// rate paces the uplinks (uplinks/s over all devices); 0 is unpaced.
	// paceOfMax, when above 0, first measures the maximum rate unpaced
	// and then paces at that fraction of it.
	rate, paceOfMax float64
	// resolve, when set, fills x with the device index of every deviceId
	// of want (the pushes' deviceIds) it can find, for the latencies; nil
	// measures none.
	resolve func(ctx context.Context, want map[string]bool, x *deviceIndex) error
	// ceiling measures the bare server with as many clients and uplinks,
	// returning the requests answered and the time they took; nil skips
	// it.
	ceiling func(ctx context.Context, fail func(error)) (span, error)
}

// run measures end-to-end uplinks per second — from the first report sent
// to the last webhook push received — with the devices sending unpaced or
// at a paced rate (after an unpaced probe when paceOfMax is set), the
// device-to-push latency of every uplink, and then the ceiling. When ctx
// ends before every acknowledged report was pushed, it returns the
// figures so far with an error wrapping ctx's.
func (r *loadRun[D]) run(ctx context.Context) (res LoadResult, _ error) {
	var errs atomic.Int64
	var firstErr sync.Once
	var first string
	fail := func(err error) {
		errs.Add(1)
		firstErr.Do(func() { first = err.Error() })
	}
	defer func() {
		res.Errors, res.FirstError = errs.Load(), first
		if res.Probe != nil {
			res.Probe.Errors, res.Probe.FirstError = res.Errors, res.FirstError
		}
	}()
	sink, err := startSink(r.sinkAddr)
	if err != nil {
		return res, err
	}
	defer sink.close()
	if err := r.api.Subscribe(ctx, r.notifyType, sink.url); err != nil {
		return res, err
	}

	// Devices: connect, Workers at a time.
	devs := connectAll(r.n, r.workers, func(i int) (D, error) { return r.connect(ctx, i) }, fail)
	var none D
	if r.leave != nil {
		defer func() {
			for _, d := range devs {
				if d != none {
					r.leave(d)
				}
			}
		}()
	}
	devices := 0
	for _, d := range devs {
		if d != none {
			devices++
		}
	}
	if devices == 0 {
		res.Devices = 0
		return res, fmt.Errorf("sim: %s: no device %s: %s", r.what, r.joined, first)
	}

	// Uplinks: an unpaced probe for the maximum rate first when asked,
	// then the measured run.
	sends := newSendTimes(r.n)
	var probe *LoadResult
	var probeArr []arrival
	rate := r.rate
	if r.paceOfMax > 0 {
		p, arr, err := r.phase(ctx, sink, devs, sends, 0, fail)
		p.Devices = devices
		if err != nil {
			if r.pushed != nil {
				r.pushed()
			}
			return p, err
		}
		probe, probeArr = &p, arr
		rate = r.paceOfMax * p.PerSecond
		if rate <= 0 {
			return p, fmt.Errorf("sim: %s: the unpaced run measured no end-to-end rate to pace at %g of", r.what, r.paceOfMax)
		}
	}
	res, arr, err := r.phase(ctx, sink, devs, sends, rate, fail)
	res.Devices, res.Probe = devices, probe
	if r.pushed != nil {
		r.pushed()
	}
	if err != nil {
		return res, err
	}

	// Latency: match every push to its uplink's send.
	if r.resolve != nil {
		x := &deviceIndex{byID: map[string]int{}}
		want := map[string]bool{}
		for _, a := range slices.Concat(probeArr, arr) {
			if a.deviceID != "" {
				want[a.deviceID] = true
			}
		}
		if err := r.resolve(ctx, want, x); err != nil {
			return res, err
		}
		res.Latency = latencies(arr, sends, x.get)
		if probe != nil {
			probe.Latency = latencies(probeArr, sends, x.get)
		}
	}

	if r.ceiling != nil {
		c, err := r.ceiling(ctx, fail)
		if err != nil {
			return res, err
		}
		res.CeilingN = c.n
		if c.took > 0 {
			res.Ceiling = float64(c.n) / c.took.Seconds()
		}
		f, err := r.floor(ctx, sink)
		if err != nil {
			return res, err
		}
		for _, p := range []*LoadResult{&res, probe} {
			if p != nil && res.Ceiling > 0 {
				// Every push of the measured run has arrived by now (the
				// floor waited for the ceiling), not only the counted ones.
				if res.Sent > 0 {
					p.PushesPerUplink = float64(f.n) / float64(res.Sent)
				}
				p.CeilingN, p.Ceiling = res.CeilingN, res.Ceiling
				p.Ratio = p.PerSecond / res.Ceiling
				p.bound(c, f)
			}
		}
	}
	return res, nil
}

// bound fills the floor's figures and Bound from the ceiling's span c and
// the floor's f: from their CPU time per item when the machine's is
// known, from their rates otherwise.
func (p *LoadResult) bound(c, f span) {
	p.FloorN = f.n
	if f.took <= 0 || f.n == 0 || p.PushesPerUplink <= 0 || c.n == 0 || c.took <= 0 {
		return
	}
	p.Floor = float64(f.n) / f.took.Seconds() / p.PushesPerUplink
	if c.cpuOK && f.cpuOK && c.cpu > 0 && f.cpu > 0 {
		p.ExchangeCPU = c.cpu / time.Duration(c.n)
		p.DeliveriesCPU = time.Duration(float64(f.cpu) / float64(f.n) * p.PushesPerUplink)
		p.CeilingCores, p.FloorCores = c.cpu.Seconds()/c.took.Seconds(), f.cpu.Seconds()/f.took.Seconds()
		per := time.Duration((1+p.DownlinksPerUplink)*float64(p.ExchangeCPU)) + p.DeliveriesCPU
		// The cores this process may use: /proc/stat counts every core of
		// the machine, so a run pinned to fewer (taskset, a CPU quota)
		// shows a bound lower than the machine's.
		p.Bound = float64(runtime.NumCPU()) / per.Seconds()
	} else {
		p.Bound = partsBound(p.Ceiling/(1+p.DownlinksPerUplink), p.Floor)
	}
	p.BoundRatio = p.Bound / p.Ceiling
}

// downlinkCount sums r.downlinks over the connected devices; 0 without it.
func (r *loadRun[D]) downlinkCount(devs []D) int64 {
	var n int64
	var none D
	for _, d := range devs {
		if r.downlinks != nil && d != none {
			n += r.downlinks(d)
		}
	}
	return n
}

// floor measures the deliveries alone after the ceiling: the sink gets as
// many pushes as it got in the measured run, posted again from the bodies
// it kept.
func (r *loadRun[D]) floor(ctx context.Context, s *sink) (span, error) {
	s.mu.Lock()
	bodies := s.bodies
	s.mu.Unlock()
	n := s.all.Load()
	s.reset()
	m := startCPU()
	took, err := deliveryFloor(ctx, s.url, bodies, n)
	busy, _, ok := m.stop()
	if err != nil {
		return span{}, err
	}
	if got := s.floor.Load(); got != n {
		return span{}, fmt.Errorf("sim: delivery floor: %d pushes posted, the sink counted %d", n, got)
	}
	return span{n: n, took: took, cpu: busy, cpuOK: ok}, nil
}

// phase has every device send r.uplinks reports, unpaced (Workers devices
// at a time, each sending its next report when the last was acknowledged)
// or, with rate > 0, paced (sendPaced), and waits for their pushes. It
// returns the figures and the Meter pushes that arrived.
func (r *loadRun[D]) phase(ctx context.Context, s *sink, devs []D, sends *sendTimes, rate float64, fail func(error)) (res LoadResult, arr []arrival, _ error) {
	s.reset()
	report := func(i int, d D) error {
		sends.next(i, time.Now())
		return r.report(ctx, d)
	}
	var start time.Time
	down0 := r.downlinkCount(devs)
	cpu := startCPU()
	if rate > 0 {
		var lags []time.Duration
		res.Sent, start, lags = sendPaced(devs, r.uplinks, rate, report, fail)
		res.Rate = rate
		if len(lags) > 0 {
			l := latencyOf(lags)
			res.SendLagP99, res.SendLagMax = l.P99, l.Max
		}
	} else {
		res.Sent, start = sendAllIndexed(devs, r.workers, r.uplinks, report, fail)
	}
	res.Acked = time.Since(start)
	last := s.wait(ctx, res.Sent)
	res.Pushed = s.count.Load()
	if _, cores, ok := cpu.stop(); ok {
		res.RunCores = cores
	}
	if res.Sent > 0 {
		res.DownlinksPerUplink = float64(r.downlinkCount(devs)-down0) / float64(res.Sent)
	}
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
	}
	if res.Pushed > 0 && res.Elapsed > 0 {
		res.PerSecond = float64(res.Pushed) / res.Elapsed.Seconds()
	}
	arr = s.arrivals()
	if res.Pushed < res.Sent {
		// wait returned because ctx ended: the run is over its bound.
		return res, arr, fmt.Errorf("sim: %s: %d of %d pushes arrived at the sink %s before the end of the run (Timeout %v): %w",
			r.what, res.Pushed, res.Sent, s.url, r.timeout, ctx.Err())
	}
	return res, arr, nil
}

// loadDefaults sets the defaults of LoadConfig and MQTTLoadConfig: 1
// uplink per device, 64 workers, a 5-minute bound, deviceDataChanged.
func loadDefaults(uplinks, workers *int, timeout *time.Duration, notifyType *string) {
	if *uplinks <= 0 {
		*uplinks = 1
	}
	if *workers <= 0 {
		*workers = 64
	}
	if *timeout <= 0 {
		*timeout = 5 * time.Minute
	}
	if *notifyType == "" {
		*notifyType = "deviceDataChanged"
	}
}

// connectAll calls connect(0…n-1), workers at a time, and returns the
// devices; a device whose connect failed is left nil and its error given
// to fail.
func connectAll[D comparable](n, workers int, connect func(i int) (D, error), fail func(error)) []D {
	devs := make([]D, n)
	pool(n, workers, func(i int) {
		d, err := connect(i)
		if err != nil {
			fail(err)
			return
		}
		devs[i] = d
	})
	return devs
}

// sendAll has every device of devs that is not nil send uplinks reports,
// workers devices at a time, each device stopping at its first error
// (given to fail). It returns the reports sent and when the first began.
func sendAll[D comparable](devs []D, workers, uplinks int, send func(D) error, fail func(error)) (int64, time.Time) {
	return sendAllIndexed(devs, workers, uplinks, func(_ int, d D) error { return send(d) }, fail)
}

// sendAllIndexed is sendAll with the device's index given to send.
func sendAllIndexed[D comparable](devs []D, workers, uplinks int, send func(i int, d D) error, fail func(error)) (int64, time.Time) {
	var sent atomic.Int64
	var none D
	start := time.Now()
	pool(len(devs), workers, func(i int) {
		if devs[i] == none {
			return
		}
		for range uplinks {
			if err := send(i, devs[i]); err != nil {
				fail(err)
				return
			}
			sent.Add(1)
		}
	})
	return sent.Load(), start
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
	all   atomic.Int64 // every push received since the last reset
	floor atomic.Int64 // the delivery floor's own posts (floorHeader) since the last reset
	mu    sync.Mutex
	// bodies keeps the first pushes' bodies (at most maxFloorBodies) for
	// the delivery floor.
	bodies [][]byte
	last   time.Time
	arr    []arrival
	seen   map[pushKey]bool // the uplinks pushed since the last reset
	tick   chan struct{}
}

// pushKey names the uplink a push carries: deviceId and pulseCount.
type pushKey struct {
	deviceID string
	pulse    int64
}

func startSink(addr string) (*sink, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sim: webhook sink: %w", err)
	}
	s := &sink{url: "http://" + l.Addr().String() + "/push", done: make(chan struct{}), tick: make(chan struct{}, 1), seen: map[pushKey]bool{}}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.push), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(l); close(s.done) }()
	return s, nil
}

// pushService is a service of a push body, with the Meter's pulseCount.
type pushService struct {
	ServiceID string `json:"serviceId"`
	Data      struct {
		PulseCount *float64 `json:"pulseCount"`
	} `json:"data"`
}

// push counts one uplink per push that carries the Meter service (a
// meterReading decodes to three services, which a platform may push one by
// one), once per deviceId and pulseCount when the push has both, and
// keeps its deviceId, pulseCount and arrival time.
func (s *sink) push(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	now := time.Now()
	// Answer once counted, so that a pusher that saw 200 was counted.
	defer w.WriteHeader(http.StatusOK)
	floor := r.Header.Get(floorHeader) != ""
	if floor {
		s.floor.Add(1) // and handled as any push below, for the same cost
	} else {
		s.all.Add(1)
	}
	s.mu.Lock()
	if !floor && len(s.bodies) < maxFloorBodies {
		s.bodies = append(s.bodies, b)
	}
	s.mu.Unlock()
	var n struct {
		DeviceID string        `json:"deviceId"`
		Service  pushService   `json:"service"`
		Services []pushService `json:"services"`
	}
	if json.Unmarshal(b, &n) != nil {
		return
	}
	a := arrival{deviceID: n.DeviceID, pulse: -1, at: now}
	meter := false
	for _, sv := range append(n.Services, n.Service) {
		if sv.ServiceID != "Meter" {
			continue
		}
		meter = true
		if p := sv.Data.PulseCount; p != nil && *p >= 0 && *p == math.Trunc(*p) {
			a.pulse = int64(*p)
		}
	}
	if !meter {
		return
	}
	s.mu.Lock()
	k := pushKey{a.deviceID, a.pulse}
	// A push that names its uplink counts once however often the
	// platform delivered it (at least once); one that does not counts
	// every time.
	if a.deviceID == "" || a.pulse < 0 || !s.seen[k] {
		if a.deviceID != "" && a.pulse >= 0 {
			s.seen[k] = true
		}
		s.count.Add(1)
		s.last = now
	}
	s.arr = append(s.arr, a)
	s.mu.Unlock()
	select {
	case s.tick <- struct{}{}:
	default:
	}
}

// reset forgets the pushes counted so far: a new phase begins.
func (s *sink) reset() {
	s.mu.Lock()
	s.count.Store(0)
	s.all.Store(0)
	s.floor.Store(0)
	s.last, s.arr, s.seen = time.Time{}, nil, map[pushKey]bool{}
	s.mu.Unlock()
}

// arrivals returns the Meter pushes since the last reset.
func (s *sink) arrivals() []arrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.arr)
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
