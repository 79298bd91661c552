package sim

// The load loop that Load (LwM2M) and MQTTLoad share: subscribe a webhook
// sink, connect the devices, send the uplinks, wait for their pushes,
// then measure the bare server (the ceiling) with as many clients.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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
	// pushed, when set, is called once the pushes were awaited, before
	// the figures are checked and the ceiling measured.
	pushed func()
	// leave, when set, is called for every connected device when the run
	// returns.
	leave func(d D)
	// ceiling measures the bare server with as many clients and uplinks,
	// returning the requests answered and the time they took; nil skips
	// it.
	ceiling func(ctx context.Context, fail func(error)) (int64, time.Duration, error)
}

// run measures end-to-end uplinks per second — from the first report sent
// to the last webhook push received — and then the ceiling. When ctx ends
// before every acknowledged report was pushed, it returns the figures so
// far with an error wrapping ctx's.
func (r *loadRun[D]) run(ctx context.Context) (res LoadResult, _ error) {
	var errs atomic.Int64
	var firstErr sync.Once
	fail := func(err error) {
		errs.Add(1)
		firstErr.Do(func() { res.FirstError = err.Error() })
	}
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
	for _, d := range devs {
		if d != none {
			res.Devices++
		}
	}
	if res.Devices == 0 {
		return res, fmt.Errorf("sim: %s: no device %s: %s", r.what, r.joined, res.FirstError)
	}

	// Uplinks.
	var start time.Time
	res.Sent, start = sendAll(devs, r.workers, r.uplinks, func(d D) error { return r.report(ctx, d) }, fail)
	res.Acked = time.Since(start)
	last := sink.wait(ctx, res.Sent)
	res.Pushed = sink.count.Load()
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
	}
	if res.Pushed > 0 && res.Elapsed > 0 {
		res.PerSecond = float64(res.Pushed) / res.Elapsed.Seconds()
	}
	if r.pushed != nil {
		r.pushed()
	}
	if res.Pushed < res.Sent {
		// wait returned because ctx ended: the run is over its bound.
		res.Errors = errs.Load()
		return res, fmt.Errorf("sim: %s: %d of %d pushes arrived at the sink %s before the end of the run (Timeout %v): %w",
			r.what, res.Pushed, res.Sent, sink.url, r.timeout, ctx.Err())
	}

	if r.ceiling != nil {
		n, took, err := r.ceiling(ctx, fail)
		if err != nil {
			return res, err
		}
		res.CeilingN = n
		if took > 0 {
			res.Ceiling = float64(n) / took.Seconds()
		}
		if res.Ceiling > 0 {
			res.Ratio = res.PerSecond / res.Ceiling
		}
	}
	res.Errors = errs.Load()
	return res, nil
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
	var sent atomic.Int64
	var none D
	start := time.Now()
	pool(len(devs), workers, func(i int) {
		if devs[i] == none {
			return
		}
		for range uplinks {
			if err := send(devs[i]); err != nil {
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
