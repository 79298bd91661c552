package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/examples/device/sim"
	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/lwm2m/transport"
)

// TestMain fails the command's tests when a goroutine outlives them (the
// devices, the load run's sink and bare server, the fake platform). The
// API client's idle keep-alive connections of http.DefaultTransport are
// closed first: they are the transport's, not the command's.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestImports applies docs/architecture.md's import rules to the command.
func TestImports(t *testing.T) { deptest.Check(t) }

// fakePlatform is the smallest platform the simulator's flags need: the
// login, device registration and subscription calls of docs/api.md over
// httptest, a real transport.Server with DTLS, and a push of
// deviceDataChanged for each decoded report.
type fakePlatform struct {
	api       *httptest.Server
	srv       *transport.Server
	keys      *transport.MemoryKeyStore
	mu        sync.Mutex
	subs      []string
	uplinks   int
	devices   map[string]bool // registered through the API
	reporters map[string]bool // sent a report the codec decodes
}

func newFakePlatform(t testing.TB) *fakePlatform {
	p := &fakePlatform{keys: transport.NewMemoryKeyStore(), devices: map[string]bool{}, reporters: map[string]bool{}}
	wm := sim.WaterMeterCodec()
	var wg sync.WaitGroup
	// Pushes reuse connections, as a push engine's client would.
	pusher := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}, Timeout: 30 * time.Second}
	srv, err := transport.New(transport.Config{UDPAddr: "127.0.0.1:0", DTLSAddr: "127.0.0.1:0"}, p.keys, transport.HandlerFunc(func(e transport.Event) {
		if e.Kind != transport.EventUplink {
			return
		}
		m, err := wm.Decode(e.Payload)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.uplinks++
		p.reporters[e.Endpoint] = true
		subs := append([]string(nil), p.subs...)
		p.mu.Unlock()
		r, ok := m.(*codec.Report)
		if !ok {
			return
		}
		meter := map[string]any{}
		for _, sd := range r.Data {
			if sd.ServiceID == "Meter" {
				meter = sd.ServiceData
			}
		}
		body, _ := json.Marshal(map[string]any{"notifyType": "deviceDataChanged", "deviceId": "d-" + e.Endpoint,
			"service": map[string]any{"serviceId": "Meter", "serviceType": "Meter", "data": meter}})
		for _, u := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := pusher.Post(u, "application/json", bytes.NewReader(body))
				if err == nil {
					resp.Body.Close()
				}
			}()
		}
	}))
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	p.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	auth := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("app_key") != "app1" {
			http.Error(w, `{"error_code":"auth","error_desc":"bad token"}`, http.StatusUnauthorized)
			return false
		}
		return true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /iocm/app/sec/v1.1.0/login", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("appId") != "app1" || r.FormValue("secret") != "s3cret" {
			http.Error(w, `{"error_code":"login","error_desc":"wrong appId or secret"}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"accessToken":"tok","tokenType":"bearer","expiresIn":3600}`)
	})
	mux.HandleFunc("POST /iocm/app/reg/v1.1.0/deviceCredentials", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		var req struct {
			NodeID     string         `json:"nodeId"`
			DeviceInfo sim.DeviceInfo `json:"deviceInfo"`
			PSK        string         `json:"psk"`
		}
		if json.NewDecoder(r.Body).Decode(&req) != nil || req.DeviceInfo != sim.WaterMeterInfo {
			http.Error(w, `{"error_code":"product","error_desc":"deviceInfo names no product"}`, 400)
			return
		}
		key := []byte("key-" + req.NodeID)[:16]
		if req.PSK != "" {
			var err error
			if key, err = hex.DecodeString(req.PSK); err != nil {
				http.Error(w, `{"error_code":"psk","error_desc":"psk is not hex"}`, 400)
				return
			}
		}
		p.mu.Lock()
		if p.devices[req.NodeID] {
			p.mu.Unlock()
			http.Error(w, `{"error_code":"exists","error_desc":"nodeId already registered"}`, http.StatusConflict)
			return
		}
		p.devices[req.NodeID] = true
		p.mu.Unlock()
		p.keys.Set(req.NodeID, key)
		fmt.Fprintf(w, `{"deviceId":"d-%s","verifyCode":"%s","timeout":180,"psk":"%s"}`, req.NodeID, req.NodeID, hex.EncodeToString(key))
	})
	mux.HandleFunc("GET /iocm/app/dm/v1.4.0/devices", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		p.mu.Lock()
		var devs []map[string]any
		for n := range p.devices {
			devs = append(devs, map[string]any{"deviceId": "d-" + n, "deviceInfo": map[string]any{"nodeId": n}})
		}
		p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"totalCount": len(devs), "pageNo": 0, "pageSize": len(devs), "devices": devs})
	})
	// The platform listens on every address (host ""): the simulator
	// takes -api's host.
	mux.HandleFunc("GET /doze/v1/deviceAddresses", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		fmt.Fprintf(w, `{"coap":{"host":"","port":%d},"coaps":{"host":"","port":%d}}`,
			p.srv.UDPAddr().(*net.UDPAddr).Port, p.srv.DTLSAddr().(*net.UDPAddr).Port)
	})
	mux.HandleFunc("POST /iocm/app/sub/v1.2.0/subscriptions", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		var req struct{ NotifyType, CallbackURL string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		p.mu.Lock()
		p.subs = append(p.subs, req.CallbackURL)
		p.mu.Unlock()
		w.WriteHeader(201)
		fmt.Fprint(w, `{"subscriptionId":"s1"}`)
	})
	p.api = httptest.NewServer(mux)
	t.Cleanup(func() {
		p.api.Close()
		cancel()
		require.NoError(t, <-done)
		wg.Wait()
		pusher.CloseIdleConnections()
	})
	return p
}

// BenchmarkLoad runs the load mode against the fake platform of the tests
// (a real transport.Server, the codec, one HTTP push per report) and reports
// end-to-end uplinks/s, the bare go-coap ceiling and their ratio. Each
// iteration is a whole load run; run it with -benchtime 1x. DOZE_SIM_N sets
// the number of devices (default 1000), DOZE_SIM_DTLS=0 uses plain CoAP.
func BenchmarkLoad(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("DOZE_SIM_N")); err == nil && v > 0 {
		n = v
	}
	secure := os.Getenv("DOZE_SIM_DTLS") != "0"
	p := newFakePlatform(b)
	for b.Loop() {
		var out bytes.Buffer
		addr := p.srv.DTLSAddr().String()
		if !secure {
			addr = p.srv.UDPAddr().String()
		}
		args := []string{"-n", strconv.Itoa(n), "-imei", strconv.Itoa(868333040000000 + rand.IntN(1000000)*n), "-server", addr,
			"-dtls=" + strconv.FormatBool(secure), "-load", "-uplinks", "5", "-timeout", "5m", "-sink", "127.0.0.1:0", "-api", p.api.URL, "-app", "app1", "-secret", "s3cret",
			"-keys", filepath.Join(b.TempDir(), "keys.json")}
		require.NoError(b, run(context.Background(), args, &out, io.Discard))
		b.Log(out.String())
		e2e, ceil, ratio := parseLoad(out.String())
		b.ReportMetric(e2e, "uplinks/s")
		b.ReportMetric(ceil, "ceiling/s")
		b.ReportMetric(ratio, "ratio")
	}
}

func (p *fakePlatform) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.uplinks
}

// waitUplinks waits up to 20 s for the platform to have seen n reports,
// and fails at once if the command ends first.
func waitUplinks(t *testing.T, p *fakePlatform, n int, done <-chan error, errOut *bytes.Buffer) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for p.count() < n {
		select {
		case err := <-done:
			t.Fatalf("the command ended before %d reports reached the platform: %v; stderr: %s", n, err, errOut.String())
		case <-deadline:
			t.Fatalf("%d reports did not reach the platform within 20s (%d did)", n, p.count())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestRunDevices runs the command for two DTLS devices registered through
// the API: both register and report; the command prints their totals when
// its context ends.
func TestRunDevices(t *testing.T) {
	p := newFakePlatform(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-n", "2", "-imei", "868333030000100", "-server", p.srv.DTLSAddr().String(),
			"-mode", "drx", "-api", p.api.URL, "-app", "app1", "-secret", "s3cret", "-keys", filepath.Join(t.TempDir(), "keys.json")}, &out, &errOut)
	}()
	// Both devices, not two uplinks: a device's first reading can arrive
	// twice (the observe's answer and a notification).
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.reporters) == 2
	}, 20*time.Second, 10*time.Millisecond, "both devices report")
	cancel()
	require.NoError(t, <-done, "run: %s", errOut.String())
	p.mu.Lock()
	require.True(t, p.devices["868333030000100"] && p.devices["868333030000101"], "devices registered through the API: %v", p.devices)
	require.True(t, p.reporters["868333030000100"] && p.reporters["868333030000101"], "each device reported: %v", p.reporters)
	p.mu.Unlock()
	require.Contains(t, out.String(), "registered 2 devices")
	// The platform has seen both reports, but a device may still wait for
	// the ACK of its report when the context ends: that report is then
	// counted as an uplink error. Each device sent exactly one.
	m := regexp.MustCompile(`devices: 2, failed to register: 0, reports: (\d+), .* uplink errors: (\d+)\n`).FindStringSubmatch(out.String())
	require.NotNil(t, m, "totals line in %q", out.String())
	reports, _ := strconv.Atoi(m[1])
	upErrs, _ := strconv.Atoi(m[2])
	require.Equal(t, 2, reports+upErrs, "reports + uplink errors in %q", m[0])
}

// TestRunRegisteredBefore: with -psk, a device the platform already
// knows (409) is taken as registered with that key and connects over
// DTLS; without -psk, and without a key file holding its key, the 409 is
// an error naming the device and the ways out.
func TestRunRegisteredBefore(t *testing.T) {
	p := newFakePlatform(t)
	args := []string{"-n", "1", "-imei", "868333030000150", "-server", p.srv.DTLSAddr().String(), "-mode", "drx",
		"-api", p.api.URL, "-app", "app1", "-secret", "s3cret", "-keys", "", "-psk", "00112233445566778899aabbccddeeff"}
	for i := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut bytes.Buffer
		done := make(chan error, 1)
		// A device's first reading can arrive twice (observe answer and
		// notification), the second after the run that sent it ended:
		// count from when the count stopped moving.
		before := p.count()
		for n := -1; n != before; {
			n = before
			time.Sleep(200 * time.Millisecond)
			before = p.count()
		}
		go func() { done <- run(ctx, args, &out, &errOut) }()
		waitUplinks(t, p, before+1, done, &errOut)
		cancel()
		require.NoError(t, <-done, "run %d: %s", i+1, errOut.String())
		require.Contains(t, out.String(), "devices: 1, failed to register: 0,", "run %d", i+1)
	}
	err := run(context.Background(), args[:len(args)-2], &bytes.Buffer{}, io.Discard)
	require.ErrorContains(t, err, "registering device 868333030000150")
	require.ErrorContains(t, err, "give its key with -psk, or delete the device")
}

// TestRunAgain: the README's simulator command run twice. The first run
// registers the devices and keeps their keys in the -keys file (mode
// 0600); the second gets 409 for each and connects them with the kept
// keys. Neither names -server: the platform says where devices connect,
// on -api's host. A key file without the devices' keys gets a clear error.
func TestRunAgain(t *testing.T) {
	p := newFakePlatform(t)
	keyPath := filepath.Join(t.TempDir(), "keys.json")
	args := []string{"-n", "2", "-imei", "868333030000170", "-mode", "drx",
		"-api", p.api.URL, "-app", "app1", "-secret", "s3cret", "-keys", keyPath}
	for i, want := range []string{"(0 registered before)", "(2 registered before)"} {
		p.mu.Lock()
		clear(p.reporters)
		p.mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut bytes.Buffer
		done := make(chan error, 1)
		go func() { done <- run(ctx, args, &out, &errOut) }()
		require.Eventually(t, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.reporters) == 2
		}, 20*time.Second, 10*time.Millisecond, "run %d: both devices report", i+1)
		cancel()
		require.NoError(t, <-done, "run %d: %s", i+1, errOut.String())
		require.Contains(t, out.String(), want, "run %d", i+1)
		require.Contains(t, out.String(), "against "+p.srv.DTLSAddr().String(), "run %d: the DTLS address the platform gave", i+1)
		require.Contains(t, out.String(), "devices: 2, failed to register: 0,", "run %d", i+1)
	}
	fi, err := os.Stat(keyPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the key file holds secrets")
	var kept map[string]map[string]string
	b, err := os.ReadFile(keyPath)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &kept))
	require.Equal(t, map[string]string{
		"868333030000170": hex.EncodeToString([]byte("key-868333030000170")[:16]),
		"868333030000171": hex.EncodeToString([]byte("key-868333030000171")[:16]),
	}, kept[p.api.URL], "keys kept for the platform at -api")

	other := filepath.Join(t.TempDir(), "other.json")
	require.NoError(t, os.WriteFile(other, []byte(`{"http://elsewhere:8743":{"868333030000170":"00"}}`), 0o600))
	err = run(context.Background(), append(args[:len(args)-1:len(args)-1], other), &bytes.Buffer{}, io.Discard)
	require.ErrorContains(t, err, "registering device 86833303000017")
	require.ErrorContains(t, err, "does not hold it")

	require.NoError(t, os.WriteFile(other, []byte(`not json`), 0o600))
	err = run(context.Background(), append(args[:len(args)-1:len(args)-1], other), &bytes.Buffer{}, io.Discard)
	require.ErrorContains(t, err, "not the simulator's key file")
}

// TestDeviceServer: the device address comes from the platform's answer,
// on -api's host when the platform listens on every address.
func TestDeviceServer(t *testing.T) {
	both := map[string]sim.DeviceAddress{"coap": {Port: 15683}, "coaps": {Port: 15684}}
	for _, tc := range []struct {
		api    string
		addrs  map[string]sim.DeviceAddress
		secure bool
		want   string
		err    string
	}{
		{"http://127.0.0.1:8743", both, true, "127.0.0.1:15684", ""},
		{"http://127.0.0.1:8743", both, false, "127.0.0.1:15683", ""},
		{"https://platform.example:443/", both, true, "platform.example:15684", ""},
		{"http://[::1]:8743", both, true, "[::1]:15684", ""},
		{"http://198.51.100.1:8743", map[string]sim.DeviceAddress{"coaps": {Host: "192.0.2.7", Port: 5684}}, true, "192.0.2.7:5684", ""},
		{"http://10.0.0.1:8743", nil, true, "10.0.0.1:5684", ""}, // a platform without the call: default ports
		{"http://10.0.0.1:8743", nil, false, "10.0.0.1:5683", ""},
		{"http://127.0.0.1:8743", map[string]sim.DeviceAddress{"coaps": {Port: 5684}}, false, "", "has no coap socket (it is off); try -dtls, or give -server"},
		{"http://127.0.0.1:8743", map[string]sim.DeviceAddress{"coap": {Port: 5683}}, true, "", "has no coaps socket (it is off); try -dtls=false"},
		{"127.0.0.1:8743", both, true, "", "want a URL such as http://127.0.0.1:8743"},
	} {
		got, err := deviceServer(tc.api, tc.addrs, tc.secure)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, "deviceServer(%q, %v, %v)", tc.api, tc.addrs, tc.secure)
			continue
		}
		require.NoError(t, err, "deviceServer(%q, %v, %v)", tc.api, tc.addrs, tc.secure)
		require.Equal(t, tc.want, got, "deviceServer(%q, %v, %v)", tc.api, tc.addrs, tc.secure)
	}
}

// TestRunNoDeviceRegisters: when no device can register (a key the
// platform does not know), the command ends with an error naming the
// cause, and leaves no goroutine behind (TestMain's goleak) although its
// context never ends.
func TestRunNoDeviceRegisters(t *testing.T) {
	p := newFakePlatform(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"-n", "2", "-imei", "868333030000160", "-server", p.srv.DTLSAddr().String(),
		"-mode", "drx", "-psk", "00112233445566778899aabbccddeeff"}, &out, io.Discard)
	require.ErrorContains(t, err, "no device could register")
	require.ErrorContains(t, err, "DTLS")
	require.Contains(t, out.String(), "devices: 2, failed to register: 2,")
}

// TestRunLoad runs the load mode for three devices, two uplinks each: six
// pushes arrive at the sink; the bare go-coap ceiling runs in the same
// call.
func TestRunLoad(t *testing.T) {
	p := newFakePlatform(t)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-n", "3", "-imei", "868333030000200", "-server", p.srv.DTLSAddr().String(),
		"-load", "-uplinks", "2", "-timeout", "60s", "-sink", "127.0.0.1:0", "-api", p.api.URL, "-app", "app1", "-secret", "s3cret",
		"-keys", filepath.Join(t.TempDir(), "keys.json")}, &out, &errOut)
	require.NoError(t, err, "run: %s", errOut.String())
	// At least once: a device's first reading can reach the platform twice,
	// in the answer to the server's observe and as a notification.
	m := regexp.MustCompile(`6 sent, (\d+) pushed`).FindStringSubmatch(out.String())
	require.NotNil(t, m, "totals in %q", out.String())
	pushed, _ := strconv.Atoi(m[1])
	require.True(t, pushed >= 6 && pushed <= 6+3, "6 readings of 3 devices pushed at least once, each first one at most twice: %d", pushed)
	require.Contains(t, out.String(), "bare go-coap ceiling: 6 requests")
	require.Contains(t, out.String(), "ratio: ")
	// The deliveries alone: every push of the run posted again, a second
	// copy of a first reading included even when it came after the count.
	m = regexp.MustCompile(`deliveries alone \(the run's (\d+) pushes posted again by net/http, 16 in flight\): \d+ uplinks/s at [0-9.]+ pushes per uplink`).FindStringSubmatch(out.String())
	require.NotNil(t, m, "deliveries alone in %q", out.String())
	again, _ := strconv.Atoi(m[1])
	require.True(t, again >= pushed && again <= 6+3, "pushes posted again: %d, want %d to 9", again, pushed)
	require.Regexp(t, `bound of the parts \(each uplink and its [0-9.]+ report acknowledgements an exchange of bare go-coap, and its deliveries, on the same cores\): \d+ uplinks/s, [0-9.]+ of bare go-coap; end to end reached [0-9.]+ of it`, out.String())
	require.NotContains(t, out.String(), "errors:")
}

// TestRunLoadHalfRate: -rate half runs unpaced, then paced at half the
// end-to-end rate it measured, and prints both runs' figures with the
// device-to-push latency of every uplink.
func TestRunLoadHalfRate(t *testing.T) {
	p := newFakePlatform(t)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-n", "3", "-imei", "868333030000300", "-server", p.srv.DTLSAddr().String(),
		"-load", "-uplinks", "4", "-rate", "half", "-timeout", "60s", "-sink", "127.0.0.1:0", "-api", p.api.URL, "-app", "app1", "-secret", "s3cret",
		"-keys", filepath.Join(t.TempDir(), "keys.json")}, &out, &errOut)
	require.NoError(t, err, "run: %s", errOut.String())
	o := out.String()
	require.Contains(t, o, "unpaced run (the maximum rate):")
	m := regexp.MustCompile(`(?s)end-to-end .*?: ([\d.]+) uplinks/s.*paced run at (\d+) uplinks/s \(half the maximum\)`).FindStringSubmatch(o)
	require.NotNil(t, m, "output: %s", o)
	max, _ := strconv.ParseFloat(m[1], 64)
	half, _ := strconv.ParseFloat(m[2], 64)
	require.InDelta(t, max/2, half, 1, "output: %s", o)
	require.Equal(t, 2, strings.Count(o, "device-to-push latency over 12 uplinks: p50 "), "both runs' latencies: %s", o)
	require.Contains(t, o, "sends began late by: p99 ")
	require.NotContains(t, o, "not matched")
	require.NotContains(t, o, "errors:")
}

// TestRunFlags: bad flags get errors that say what is allowed.
func TestRunFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-mode", "sleepy", "-dtls=false"}, "allowed: psm, drx, edrx"},
		{[]string{"-protocol", "mqtt", "-dtls=false"}, "allowed: lwm2m, tup"},
		{[]string{}, "-dtls needs a key"},
		{[]string{"-psk", "zz"}, `-psk "zz": not hex`},
		{[]string{"-load", "-dtls=false"}, "-load needs -api"},
		{[]string{"-n", "0"}, "-n 0: need at least 1 device"},
		{[]string{"-imei", "86x"}, "must be digits"},
		{[]string{"-n", "-3"}, "-n -3: need at least 1 device"},
		{[]string{"-imei", "999999999999998", "-n", "3", "-dtls=false"}, "-imei 999999999999998 with -n 3: the last IMEI 1000000000000000 would have more than 15 digits"},
		{[]string{"-psk", "0g"}, `-psk "0g": not hex`},
		{[]string{"-psk", "abc"}, `-psk "abc": not hex`},
		{[]string{"-mode", "psm2", "-dtls=false"}, `-mode: sim: Mode "psm2": allowed: psm, drx, edrx`},
		// -workers 0 used to block every device on an unbuffered semaphore.
		{[]string{"-workers", "0", "-dtls=false"}, "-workers 0: need at least 1"},
		{[]string{"-load", "-uplinks", "0"}, "-uplinks 0: need at least 1"},
		{[]string{"-load", "-timeout", "0s"}, "-timeout 0s: must be positive"},
		{[]string{"-for", "-1s", "-dtls=false"}, "-for -1s: must not be negative"},
		{[]string{"-dtls=false", "extra"}, `unexpected arguments ["extra"]`},
		{[]string{"-sources", "-1", "-dtls=false"}, "-sources -1: must be 0"},
		{[]string{"-load", "-rate", "fast"}, `-rate "fast": allowed: a positive number of uplinks per second, "half"`},
		{[]string{"-load", "-rate", "-10"}, `-rate "-10": allowed`},
		{[]string{"-rate", "100", "-dtls=false"}, `-rate "100": paces the load mode of CoAP devices: use it with -load`},
		{[]string{"-load", "-rate", "half", "-mqtt", "127.0.0.1:1883"}, "without -mqtt"},
		// One socket per device: beyond the descriptor hard limit (at
		// most fs.nr_open, 1,048,576 by default) the run is refused
		// before any device starts, saying how to split it.
		{[]string{"-n", "2000000", "-dtls=false"}, "-n 2000000 needs 2000256 open files"},
	} {
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &bytes.Buffer{})
		require.Error(t, err, "run %q", tc.args)
		require.True(t, strings.Contains(err.Error(), tc.want), "run %q: %v, want %q", tc.args, err, tc.want)
	}
}

// parseLoad reads the figures of the load mode's output.
func parseLoad(out string) (e2e, ceil, ratio float64) {
	for _, line := range strings.Split(out, "\n") {
		tail := line[strings.LastIndex(line, ":")+1:]
		if strings.HasPrefix(line, "end-to-end") {
			_, _ = fmt.Sscanf(tail, " %f uplinks/s", &e2e)
		}
		if strings.HasPrefix(line, "bare go-coap") {
			_, _ = fmt.Sscanf(tail, " %f requests/s", &ceil)
		}
		if strings.HasPrefix(line, "ratio") {
			_, _ = fmt.Sscanf(tail, " %f", &ratio)
		}
	}
	return e2e, ceil, ratio
}

// FuzzParseRate: -rate is "" / 0 (unpaced), "half", or a positive finite
// number, and never both a rate and a fraction; anything else is refused
// naming the flag.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"", "0", "half", "100", "0.5", "-1", "NaN", "+Inf", "1e400", "fast"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rate, pace, err := parseRate(s)
		if err != nil {
			if !strings.Contains(err.Error(), "-rate") {
				t.Fatalf("error without the flag: %v", err)
			}
			return
		}
		if rate < 0 || math.IsInf(rate, 0) || math.IsNaN(rate) || (pace != 0 && pace != 0.5) || (rate > 0 && pace > 0) {
			t.Fatalf("parseRate(%q) = %v, %v", s, rate, pace)
		}
	})
}
