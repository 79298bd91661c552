package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/examples/device/sim"
	"github.com/doze-io/doze/lwm2m/transport"
)

// fakeAPI answers login and subscription (docs/api.md) and remembers the
// callback URL.
type fakeAPI struct {
	srv   *httptest.Server
	mu    sync.Mutex
	urls  []string
	nodes []string // the app's devices' nodeIds
	lists int      // device list calls
}

func newFakeAPI(t *testing.T) (*fakeAPI, *sim.API) {
	f := &fakeAPI{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /iocm/app/sec/v1.1.0/login", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"accessToken":"tok","expiresIn":3600}`)
	})
	mux.HandleFunc("POST /iocm/app/sub/v1.2.0/subscriptions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			CallbackURL string `json:"callbackUrl"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		f.urls = append(f.urls, req.CallbackURL)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"subscriptionId":"s1"}`)
	})
	// The app's devices, for the load run's matching of pushes to
	// uplinks: every nodeId called back is "dev-<nodeId>".
	mux.HandleFunc("GET /iocm/app/dm/v1.4.0/devices", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.lists++
		var devs []map[string]any
		for _, n := range f.nodes {
			devs = append(devs, map[string]any{"deviceId": "dev-" + n, "deviceInfo": map[string]any{"nodeId": n}})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"totalCount": len(devs), "pageNo": 0, "pageSize": 500, "devices": devs})
	})
	f.srv = httptest.NewServer(mux)
	tr := &http.Transport{}
	t.Cleanup(func() { f.srv.Close(); tr.CloseIdleConnections() })
	api := &sim.API{URL: f.srv.URL, AppID: "app1", Secret: "s", HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	require.NoError(t, api.Login(context.Background()))
	return f, api
}

func (f *fakeAPI) callbacks() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.urls...)
}

// TestLoadCounts: the load mode counts one uplink per push carrying the
// Meter service (a "service" or a "services" body), not the other pushes
// a platform sends for the same report; it runs the bare go-coap ceiling
// with as many requests as reports, then the deliveries alone, and counts
// the report acknowledgements the devices answered.
func TestLoadCounts(t *testing.T) {
	var pushes sync.WaitGroup
	tr := &http.Transport{}
	pusher := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(func() { pushes.Wait(); tr.CloseIdleConnections() })
	var f *fakeAPI
	var api *sim.API
	var p *platform
	// What the fake platform did: uplinks it took (a device's first
	// reports can come twice, once more as the answer to the observe of
	// its data channel, which the server keeps as data) and report
	// acknowledgements the devices answered.
	var uplinks, acked atomic.Int64
	p = startServer(t, transport.Config{DisableDTLS: true}, func(e transport.Event) {
		if e.Kind != transport.EventUplink {
			return
		}
		uplinks.Add(1)
		pushes.Add(1)
		go func() {
			defer pushes.Done()
			// The report's acknowledgement first, as a platform with the
			// meter's codec sends it: a request the device answers.
			ack, err := sim.WaterMeterCodec().Encode(&codec.ReportAck{Request: e.Payload})
			if err != nil || p.srv.Downlink(context.Background(), e.Endpoint, ack) != nil {
				return
			}
			acked.Add(1)
			for _, u := range f.callbacks() {
				// Per report: a Battery push (not a reading), then the
				// Meter one in a batch body.
				for _, body := range []string{`{"notifyType":"deviceDataChanged","service":{"serviceId":"Battery"}}`,
					`{"notifyType":"deviceDatasChanged","services":[{"serviceId":"Connectivity"},{"serviceId":"Meter"}]}`} {
					if resp, err := pusher.Post(u, "application/json", bytes.NewReader([]byte(body))); err == nil {
						resp.Body.Close()
					}
				}
			}
		}()
	})
	f, api = newFakeAPI(t)
	res, err := sim.Load(context.Background(), sim.LoadConfig{
		Device:  sim.Config{Server: p.srv.UDPAddr().String()},
		IMEIs:   []string{"868333030000301", "868333030000302", "868333030000303"},
		Uplinks: 2, Workers: 2, Timeout: time.Minute, API: api,
	})
	require.NoError(t, err)
	require.Len(t, f.callbacks(), 1, "one subscription")
	require.Equal(t, 3, res.Devices)
	require.Equal(t, int64(6), res.Sent)
	// The fake's pushes name no deviceId or pulseCount, so the sink counts
	// each: a first report that came twice (see below) may be counted
	// twice before the phase ends.
	require.True(t, res.Pushed >= 6 && res.Pushed <= 9, "one counted push per report, a first one at most twice: %d", res.Pushed)
	require.Zero(t, res.Errors, "first error: %s", res.FirstError)
	require.Positive(t, res.Elapsed)
	require.Equal(t, int64(6), res.CeilingN)
	require.Positive(t, res.Ceiling)
	require.InDelta(t, res.PerSecond/res.Ceiling, res.Ratio, 1e-9)
	// The deliveries alone: the run's pushes (two per uplink the fake
	// took, every one counted here) posted again to the sink.
	// An answer of an observe that comes late in the run may be counted
	// or not, wholly or in part, so the counts lie between every report
	// once and all the fake did.
	pushes.Wait()
	n := uplinks.Load()
	require.GreaterOrEqual(t, n, int64(6), "every report reached the fake platform")
	require.True(t, res.FloorN >= 12 && res.FloorN <= 2*n, "pushes posted again: %d, want 12 to %d", res.FloorN, 2*n)
	require.InDelta(t, float64(res.FloorN)/6, res.PushesPerUplink, 1e-9, "the run's pushes over its 6 reports")
	answered := res.DownlinksPerUplink * 6
	require.InDelta(t, math.Round(answered), answered, 1e-9)
	require.True(t, answered >= 6 && answered <= float64(acked.Load()), "report acknowledgements answered: %v, want 6 to %d", answered, acked.Load())
	require.Positive(t, res.Floor)
	require.Positive(t, res.Bound)
	require.InDelta(t, res.Bound/res.Ceiling, res.BoundRatio, 1e-9)
}

// TestLoadBounded: when the platform never pushes, Load ends at its
// Timeout with the reports it sent and an error saying how many pushes
// arrived, instead of waiting for them.
func TestLoadBounded(t *testing.T) {
	p := startServer(t, transport.Config{DisableDTLS: true}, nil)
	_, api := newFakeAPI(t)
	res, err := sim.Load(context.Background(), sim.LoadConfig{
		Device:  sim.Config{Server: p.srv.UDPAddr().String()},
		IMEIs:   []string{"868333030000311", "868333030000312"},
		Timeout: 2 * time.Second, API: api, NoCeiling: true,
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "0 of 2 pushes arrived")
	require.ErrorContains(t, err, "(Timeout 2s)")
	require.Equal(t, int64(2), res.Sent)
	require.Zero(t, res.Pushed)
	require.Zero(t, res.Elapsed)
	// That the wait for pushes ends at the bound, not before or after, is
	// TestPhaseEndsAtBound's part (in a bubble).
}

// TestLoadConfigErrors: Load needs devices and an API.
func TestLoadConfigErrors(t *testing.T) {
	_, err := sim.Load(context.Background(), sim.LoadConfig{})
	require.ErrorIs(t, err, sim.ErrConfig)
	require.ErrorContains(t, err, "IMEIs")
	_, err = sim.Load(context.Background(), sim.LoadConfig{IMEIs: []string{"1"}})
	require.ErrorIs(t, err, sim.ErrConfig)
	require.ErrorContains(t, err, "API")
}

// TestSourceIP: devices are dealt round-robin over the loopback addresses
// from 127.0.0.2, each address carrying its share; none is the server's
// 127.0.0.1, and no choice is made for 0 addresses.
func TestSourceIP(t *testing.T) {
	require.Nil(t, sim.SourceIP(5, 0), "SourceIP(5, 0)")
	for _, tc := range []struct {
		n, sources int
		want       map[string]int
	}{
		{4, 1, map[string]int{"127.0.0.2": 4}},
		{300, 3, map[string]int{"127.0.0.2": 100, "127.0.0.3": 100, "127.0.0.4": 100}},
		{5, 2, map[string]int{"127.0.0.2": 3, "127.0.0.3": 2}},
		{1000, 300, nil}, // checked below: 127.0.0.2 … 127.0.1.45
	} {
		got := map[string]int{}
		for i := range tc.n {
			ip := sim.SourceIP(i, tc.sources)
			require.True(t, ip.IsLoopback(), "SourceIP(%d, %d) = %v", i, tc.sources, ip)
			require.NotEqual(t, "127.0.0.1", ip.String())
			got[ip.String()]++
		}
		if tc.want != nil {
			require.Equal(t, tc.want, got, "SourceIP(0…%d, %d)", tc.n-1, tc.sources)
		} else {
			require.Len(t, got, tc.sources)
			require.Equal(t, 4, got["127.0.0.2"])
			require.Equal(t, 3, got["127.0.1.45"])
		}
	}
}

// TestLoadSources: a load run of 300 devices over 3 source addresses
// registers every device, 100 from each address as the server sees them,
// and each one's uplink is acknowledged and pushed.
func TestLoadSources(t *testing.T) {
	const n = 300
	var mu sync.Mutex
	from := map[string]int{}
	var f *fakeAPI
	var pushes sync.WaitGroup
	tr := &http.Transport{}
	pusher := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(func() { pushes.Wait(); tr.CloseIdleConnections() })
	p := startServer(t, transport.Config{DisableDTLS: true}, func(e transport.Event) {
		switch e.Kind {
		case transport.EventRegistered:
			mu.Lock()
			from[e.Registration.Addr.(*net.UDPAddr).IP.String()]++
			mu.Unlock()
		case transport.EventUplink:
			pushes.Add(1)
			go func() {
				defer pushes.Done()
				for _, u := range f.callbacks() {
					if resp, err := pusher.Post(u, "application/json", strings.NewReader(`{"service":{"serviceId":"Meter"}}`)); err == nil {
						resp.Body.Close()
					}
				}
			}()
		}
	})
	f, api := newFakeAPI(t)
	imeis := make([]string, n)
	for i := range imeis {
		imeis[i] = fmt.Sprintf("8683330301%05d", i)
	}
	res, err := sim.Load(context.Background(), sim.LoadConfig{
		Device: sim.Config{Server: p.srv.UDPAddr().String()},
		IMEIs:  imeis, Workers: 32, Timeout: time.Minute, API: api, NoCeiling: true, Sources: 3,
	})
	require.NoError(t, err)
	require.Equal(t, n, res.Devices, "devices registered; first error: %s", res.FirstError)
	require.Equal(t, int64(n), res.Pushed)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{"127.0.0.2": 100, "127.0.0.3": 100, "127.0.0.4": 100}, from, "registrations by source address")
}

// TestLoadSourcesRefused: source addresses come from 127.0.0.0/8, so a
// run against another server, or asking for more than the network holds,
// is refused with an error naming the field.
func TestLoadSourcesRefused(t *testing.T) {
	_, api := newFakeAPI(t)
	for _, cfg := range []sim.LoadConfig{
		{Device: sim.Config{Server: "[::1]:5683"}, Sources: 2},
		{Device: sim.Config{Server: "192.0.2.1:5683"}, Sources: 1},
		{Sources: -1},
		{Sources: 1 << 24},
	} {
		cfg.IMEIs, cfg.API = []string{"868333030000001"}, api
		_, err := sim.Load(context.Background(), cfg)
		require.ErrorIs(t, err, sim.ErrConfig, "Sources %d, server %q", cfg.Sources, cfg.Device.Server)
		require.ErrorContains(t, err, "Sources")
	}
}

// meterPusher pushes one deviceDataChanged of the Meter service per
// decoded report to every callback of f, as a platform would: deviceId
// "dev-<IMEI>", the decoded pulseCount. Wait for its pushes with pushes.
func meterPusher(t *testing.T, f **fakeAPI, pushes *sync.WaitGroup) func(transport.Event) {
	tr := &http.Transport{}
	pusher := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(func() { pushes.Wait(); tr.CloseIdleConnections() })
	wm := sim.WaterMeterCodec()
	return func(e transport.Event) {
		if e.Kind != transport.EventUplink {
			return
		}
		m, err := wm.Decode(e.Payload)
		if err != nil {
			return
		}
		r, ok := m.(*codec.Report)
		if !ok {
			return
		}
		var meter map[string]any
		for _, sd := range r.Data {
			if sd.ServiceID == "Meter" {
				meter = sd.ServiceData
			}
		}
		body, _ := json.Marshal(map[string]any{"notifyType": "deviceDataChanged", "deviceId": "dev-" + e.Endpoint,
			"service": map[string]any{"serviceId": "Meter", "data": meter}})
		pushes.Add(1)
		go func() {
			defer pushes.Done()
			for _, u := range (*f).callbacks() {
				if resp, err := pusher.Post(u, "application/json", bytes.NewReader(body)); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
}

// TestLoadPaced: a paced load run sends every uplink, matches each push
// to its uplink through the app's device list (deviceId → nodeId) and the
// reading's pulseCount, and reports the device-to-push latency of all of
// them; its end-to-end rate is the paced rate, not more.
func TestLoadPaced(t *testing.T) {
	var f *fakeAPI
	var pushes sync.WaitGroup
	p := startServer(t, transport.Config{DisableDTLS: true}, meterPusher(t, &f, &pushes))
	f, api := newFakeAPI(t)
	imeis := []string{"868333030000401", "868333030000402", "868333030000403", "868333030000404"}
	f.nodes = append([]string{"868333030000999"}, imeis...) // one device of the app not in the run
	res, err := sim.Load(context.Background(), sim.LoadConfig{
		Device: sim.Config{Server: p.srv.UDPAddr().String()},
		IMEIs:  imeis, Uplinks: 5, Timeout: time.Minute, API: api, NoCeiling: true, Rate: 40,
	})
	require.NoError(t, err)
	require.Zero(t, res.Errors, "first error: %s", res.FirstError)
	require.Equal(t, int64(20), res.Sent)
	require.Equal(t, int64(20), res.Pushed)
	require.Equal(t, 40.0, res.Rate)
	require.Nil(t, res.Probe)
	require.Equal(t, int64(20), res.Latency.N, "every push matched to its uplink")
	require.Zero(t, res.Latency.Unmatched)
	require.Positive(t, res.Latency.P50)
	require.LessOrEqual(t, res.Latency.P50, res.Latency.P99)
	require.LessOrEqual(t, res.Latency.P99, res.Latency.Max)
	// 20 uplinks at 40/s: the last is due at 475 ms, so the run lasts at
	// least that long whatever the machine's speed.
	require.GreaterOrEqual(t, res.Elapsed, 475*time.Millisecond)
	require.Equal(t, 1, f.lists, "one page of the device list")
}

// TestLoadHalfRate: with PaceOfMax the run first sends unpaced (the
// probe, whose end-to-end rate is the maximum), then paced at that
// fraction of it, on the same devices; both report their latencies.
func TestLoadHalfRate(t *testing.T) {
	var f *fakeAPI
	var pushes sync.WaitGroup
	p := startServer(t, transport.Config{DisableDTLS: true}, meterPusher(t, &f, &pushes))
	f, api := newFakeAPI(t)
	imeis := []string{"868333030000501", "868333030000502", "868333030000503"}
	f.nodes = imeis
	res, err := sim.Load(context.Background(), sim.LoadConfig{
		Device: sim.Config{Server: p.srv.UDPAddr().String()},
		IMEIs:  imeis, Uplinks: 4, Timeout: time.Minute, API: api, PaceOfMax: 0.5,
	})
	require.NoError(t, err)
	require.Zero(t, res.Errors, "first error: %s", res.FirstError)
	require.NotNil(t, res.Probe)
	require.Equal(t, int64(12), res.Probe.Sent)
	require.Equal(t, int64(12), res.Probe.Pushed)
	require.Zero(t, res.Probe.Rate, "the probe is unpaced")
	require.Equal(t, int64(12), res.Probe.Latency.N)
	require.InDelta(t, res.Probe.PerSecond/2, res.Rate, 1e-9, "paced at half the probe's end-to-end rate")
	require.Equal(t, int64(12), res.Sent)
	require.Equal(t, int64(12), res.Pushed)
	require.Equal(t, int64(12), res.Latency.N, "the paced run's uplinks (numbers 5 to 8) matched")
	require.Zero(t, res.Latency.Unmatched)
	require.Equal(t, int64(12), res.CeilingN, "the ceiling runs once, after both")
	require.InDelta(t, res.Probe.PerSecond/res.Ceiling, res.Probe.Ratio, 1e-9)
}

// TestLoadRateRefused: a bad Rate or PaceOfMax is refused before any
// device connects.
func TestLoadRateRefused(t *testing.T) {
	_, api := newFakeAPI(t)
	_, err := sim.Load(context.Background(), sim.LoadConfig{IMEIs: []string{"1"}, API: api, Rate: -5})
	require.ErrorIs(t, err, sim.ErrConfig)
	require.ErrorContains(t, err, "Rate")
	_, err = sim.Load(context.Background(), sim.LoadConfig{IMEIs: []string{"1"}, API: api, Rate: 5, PaceOfMax: 0.5})
	require.ErrorContains(t, err, "not both")
}
