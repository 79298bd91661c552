// Command device simulates NB-IoT water meters against a Doze platform:
// one or thousands, over CoAP or DTLS, LwM2M or TUP, in PSM, DRX or eDRX,
// or, with -mqtt, 4G meters over MQTT;
// with -objects standard, temperature sensors serving the standard objects
// 3, 4, 5 and 3303 instead of object 19 (the demo product TS3303).
//
//	go run ./examples/device -n 1000 -api http://127.0.0.1:8743 -app <appId> -secret <secret>
//	go run ./examples/device -n 10000 -mode drx -load -api … -app … -secret …
//	go run ./examples/device -n 1000 -mqtt 127.0.0.1:1883 -load -api … -app … -secret …
//	go run ./examples/device -objects standard -mode drx -period 1m -api … -app … -secret …
//
// With -api the command logs in, asks the platform where devices connect
// (GET /doze/v1/deviceAddresses, on -api's host when the platform listens
// on every address; -server overrides it) and registers the devices. It
// keeps their PSKs in -keys (./doze-sim-keys.json, mode 0600): the
// platform shows a key only once, and a second run connects the devices it
// registered before with the kept keys.
//
// See package sim for the behaviour and the flags' meaning.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/doze-io/doze/examples/device/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "device:", err)
		}
		os.Exit(2)
	}
}

type options struct {
	n                                         int
	imei, server                              string
	dtls                                      bool
	psk, mode, protocol                       string
	period, active, cycle, window, duration   time.Duration
	api, app, secret                          string
	manufacturer, model, deviceType, protoTyp string
	load                                      bool
	uplinks, workers                          int
	timeout                                   time.Duration
	sink, notify                              string
	rate                                      string
	verbose                                   bool
	swVersion, fwVersion                      string
	objects                                   string
	mqtt                                      string
	sources                                   int
	keys                                      string
}

// run is the command: it parses args, provisions the devices when -api is
// given, and runs them until ctx ends (or -for passes), or runs the load
// mode and prints its figures.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("device", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 1, "number of devices")
	fs.StringVar(&o.imei, "imei", "868333030000000", "IMEI (nodeId) of the first device; the others count up from it")
	fs.StringVar(&o.server, "server", "", "platform CoAP address host:port (default: with -api, the address the platform gives (GET /doze/v1/deviceAddresses) on -api's host; without, 127.0.0.1:5684 with -dtls, 127.0.0.1:5683 without)")
	fs.BoolVar(&o.dtls, "dtls", true, "connect with DTLS PSK (false: plain CoAP)")
	fs.StringVar(&o.psk, "psk", "", "PSK in hex for every device (required with -dtls and without -api; with -api it is the key asked for)")
	fs.StringVar(&o.mode, "mode", "psm", "power mode: psm, drx or edrx")
	fs.StringVar(&o.protocol, "protocol", "lwm2m", "protocol: lwm2m or tup")
	fs.DurationVar(&o.period, "period", time.Hour, "report period")
	fs.DurationVar(&o.active, "active", 30*time.Second, "PSM/eDRX: time reachable after each uplink")
	fs.DurationVar(&o.cycle, "edrx-cycle", 20480*time.Millisecond, "eDRX cycle")
	fs.DurationVar(&o.window, "paging-window", 2560*time.Millisecond, "eDRX paging window")
	fs.DurationVar(&o.duration, "for", 0, "stop after this long (0: until interrupted)")
	fs.StringVar(&o.api, "api", "", "platform REST API base URL (e.g. http://127.0.0.1:8743): log in and register the devices first")
	fs.StringVar(&o.app, "app", "", "appId for -api")
	fs.StringVar(&o.secret, "secret", "", "app secret for -api")
	fs.StringVar(&o.keys, "keys", "doze-sim-keys.json", `file keeping the PSKs of the devices registered through -api, so that a second run connects them ("" keeps none)`)
	fs.StringVar(&o.manufacturer, "manufacturer", sim.WaterMeterInfo.ManufacturerID, "deviceInfo.manufacturerId")
	fs.StringVar(&o.model, "model", sim.WaterMeterInfo.Model, "deviceInfo.model")
	fs.StringVar(&o.deviceType, "devicetype", sim.WaterMeterInfo.DeviceType, "deviceInfo.deviceType")
	fs.StringVar(&o.protoTyp, "protocoltype", sim.WaterMeterInfo.ProtocolType, "deviceInfo.protocolType")
	fs.BoolVar(&o.load, "load", false, "load mode: measure end-to-end uplinks/s (device → webhook push) and a bare go-coap ceiling; needs -api")
	fs.IntVar(&o.uplinks, "uplinks", 1, "load mode: reports per device")
	fs.IntVar(&o.workers, "workers", 64, "devices connecting or sending at a time")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "load mode: bound on the load run (connecting, reports, pushes and the ceiling; registration through -api comes before it)")
	fs.StringVar(&o.sink, "sink", "127.0.0.1:8745", "load mode: address of the webhook sink (the platform wants one callback host:port per app)")
	fs.StringVar(&o.rate, "rate", "", `load mode: pace the uplinks at this many per second over all devices, evenly spread and open loop, and report the device-to-push latency; "half" first runs unpaced to find the maximum end-to-end rate, then paced at half of it; "" or 0: unpaced`)
	fs.StringVar(&o.notify, "notify", "deviceDataChanged", "load mode: notify type the sink subscribes to (deviceDataChanged: a push per service; deviceDatasChanged: one per report)")
	fs.IntVar(&o.sources, "sources", 0, "loopback source addresses the devices send from (127.0.0.2, 127.0.0.3, …; one gives ~28,000 sockets towards one server); 0 means one per 20,000 devices for a server on 127.0.0.0/8")
	fs.BoolVar(&o.verbose, "v", false, "log every device event")
	fs.StringVar(&o.swVersion, "sw", "1.0.0", "software version (PCP upgrades)")
	fs.StringVar(&o.fwVersion, "fw", "FW1.0", "firmware version (object 5 upgrades)")
	fs.StringVar(&o.objects, "objects", string(sim.WaterMeterObjects), "LwM2M objects served: watermeter (object 19 and the codec) or standard (objects 3, 4, 5 and 3303, product TS3303 unless -model etc. say otherwise)")
	fs.StringVar(&o.mqtt, "mqtt", "", "platform MQTT address host:port: simulate 4G meters over MQTT (protocolType MQTT, secrets from -api) instead of NB-IoT CoAP devices")
	if err := fs.Parse(args); err != nil {
		return err
	}
	objects, err := sim.ParseObjects(o.objects)
	if err != nil {
		return fmt.Errorf("-objects: %w", err)
	}
	if objects == sim.StandardObjects {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]*string{"manufacturer": &o.manufacturer, "model": &o.model,
			"devicetype": &o.deviceType, "protocoltype": &o.protoTyp} {
			if !set[name] {
				*v = map[string]string{"manufacturer": sim.TemperatureSensorInfo.ManufacturerID, "model": sim.TemperatureSensorInfo.Model,
					"devicetype": sim.TemperatureSensorInfo.DeviceType, "protocoltype": sim.TemperatureSensorInfo.ProtocolType}[name]
			}
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.n < 1 {
		return fmt.Errorf("-n %d: need at least 1 device", o.n)
	}
	if o.workers < 1 {
		return fmt.Errorf("-workers %d: need at least 1", o.workers)
	}
	if o.uplinks < 1 {
		return fmt.Errorf("-uplinks %d: need at least 1 report per device", o.uplinks)
	}
	if o.timeout <= 0 {
		return fmt.Errorf("-timeout %v: must be positive", o.timeout)
	}
	rate, paceOfMax, err := parseRate(o.rate)
	if err != nil {
		return err
	}
	if o.rate != "" && (!o.load || o.mqtt != "") {
		return fmt.Errorf("-rate %q: paces the load mode of CoAP devices: use it with -load and without -mqtt", o.rate)
	}
	if o.sources < 0 {
		return fmt.Errorf("-sources %d: must be 0 (one per %d devices) or more", o.sources, sim.DevicesPerSource)
	}
	if err := raiseDescriptorLimit(o.n); err != nil {
		return err
	}
	if o.duration < 0 {
		return fmt.Errorf("-for %v: must not be negative (0 runs until interrupted)", o.duration)
	}
	base, err := strconv.ParseUint(o.imei, 10, 64)
	if err != nil {
		return fmt.Errorf("-imei %q: must be digits: %w", o.imei, err)
	}
	if lastIMEI := strconv.FormatUint(base+uint64(o.n-1), 10); len(lastIMEI) > len(o.imei) {
		return fmt.Errorf("-imei %s with -n %d: the last IMEI %s would have more than %d digits", o.imei, o.n, lastIMEI, len(o.imei))
	}
	mode, err := sim.ParseMode(o.mode)
	if err != nil {
		return fmt.Errorf("-mode: %w", err)
	}
	proto := sim.Protocol(o.protocol)
	if proto != sim.LwM2M && proto != sim.TUP {
		return fmt.Errorf("-protocol %q: allowed: lwm2m, tup", o.protocol)
	}
	var key []byte
	if o.psk != "" {
		if key, err = hex.DecodeString(o.psk); err != nil {
			return fmt.Errorf("-psk %q: not hex (two hex digits per byte, e.g. 000102…): %w", o.psk, err)
		}
	}
	if o.dtls && key == nil && o.api == "" {
		return errors.New("-dtls needs a key: give -psk <hex>, or -api to register the devices and get theirs (or -dtls=false)")
	}
	if o.load && objects == sim.StandardObjects {
		return errors.New("-load measures codec reports on object 19: use it with -objects watermeter")
	}
	if o.load && o.api == "" {
		return errors.New("-load needs -api, -app and -secret: it subscribes a webhook through the platform API")
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	imeis := make([]string, o.n)
	width := len(o.imei)
	for i := range imeis {
		imeis[i] = fmt.Sprintf("%0*d", width, base+uint64(i))
	}
	if o.mqtt != "" {
		return runMQTT(ctx, o, imeis, stdout, logger)
	}
	keys := make([][]byte, o.n)
	var api *sim.API
	if o.api != "" {
		api = &sim.API{URL: o.api, AppID: o.app, Secret: o.secret}
		if err := api.Login(ctx); err != nil {
			return err
		}
		if o.server == "" {
			if o.server, err = serverFromAPI(ctx, api, o.dtls); err != nil {
				return err
			}
		}
		kf, err := openKeyFile(o.keys, o.api)
		if err != nil {
			return err
		}
		info := sim.DeviceInfo{ManufacturerID: o.manufacturer, DeviceType: o.deviceType, Model: o.model, ProtocolType: o.protoTyp}
		var mu sync.Mutex
		var firstErr error
		var before atomic.Int64
		start := time.Now()
		pool(o.n, min(o.workers, 16), func(i int) {
			cr, err := api.RegisterDevice(ctx, imeis[i], info, o.psk)
			var ae *sim.APIError
			switch {
			case errors.As(err, &ae) && ae.Status == http.StatusConflict:
				before.Add(1)
				err = nil
				if key == nil && o.dtls { // -psk gives the key otherwise; plain CoAP needs none
					keys[i], err = kf.key(imeis[i])
					if err == nil && keys[i] == nil {
						err = fmt.Errorf("the platform knows it already and shows a key only once, and -keys %q does not hold it: give its key with -psk, or delete the device (DELETE /iocm/app/dm/v1.4.0/devices/{deviceId}) and run again", o.keys)
					}
				}
			case err == nil:
				if keys[i], err = cr.Key(); err == nil {
					kf.set(imeis[i], keys[i])
				}
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("registering device %s: %w", imeis[i], err)
				}
				mu.Unlock()
			}
		})
		if err := kf.save(); err != nil {
			return errors.Join(firstErr, err)
		}
		if firstErr != nil {
			return firstErr
		}
		fmt.Fprintf(stdout, "registered %d devices through %s in %v (%d registered before)\n", o.n, o.api, time.Since(start).Round(time.Millisecond), before.Load())
	}
	tmpl := sim.Config{
		Server: o.server, Protocol: proto, Objects: objects, ReportPeriod: o.period,
		Power:           sim.Power{Mode: mode, ActiveTime: o.active, Cycle: o.cycle, PagingWindow: o.window},
		SoftwareVersion: o.swVersion, FirmwareVersion: o.fwVersion, Logger: logger,
	}
	if o.dtls {
		tmpl.Key = key
		if tmpl.Key == nil {
			tmpl.Key = []byte{0} // replaced by each device's key
		}
	} else {
		keys = nil
	}
	if o.load {
		res, err := sim.Load(ctx, sim.LoadConfig{Device: tmpl, IMEIs: imeis, Keys: keys, Uplinks: o.uplinks, Workers: o.workers,
			Timeout: o.timeout, API: api, SinkAddr: o.sink, NotifyType: o.notify, Sources: o.sources,
			Rate: rate, PaceOfMax: paceOfMax})
		if err != nil {
			if res.Sent > 0 {
				printLoad(stdout, o, res) // what the run measured before it failed
			}
			return err
		}
		printLoad(stdout, o, res)
		return nil
	}
	return runDevices(ctx, o, tmpl, imeis, keys, stdout, logger)
}

func printLoad(w io.Writer, o options, r sim.LoadResult) {
	transport := "DTLS"
	if !o.dtls {
		transport = "plain CoAP"
	}
	fmt.Fprintf(w, "load: %d devices (%s, %s), %d uplinks each, %d at a time\n", r.Devices, transport, o.protocol, o.uplinks, o.workers)
	if r.Probe != nil {
		fmt.Fprintln(w, "unpaced run (the maximum rate):")
		printRun(w, *r.Probe)
		fmt.Fprintf(w, "paced run at %.0f uplinks/s (half the maximum):\n", r.Rate)
	} else if r.Rate > 0 {
		fmt.Fprintf(w, "paced run at %.0f uplinks/s:\n", r.Rate)
	}
	printRun(w, r)
	fmt.Fprintf(w, "bare go-coap ceiling: %d requests: %.0f requests/s\n", r.CeilingN, r.Ceiling)
	if r.Probe != nil {
		fmt.Fprintf(w, "ratio (unpaced run): %.2f\n", r.Probe.Ratio)
	} else {
		fmt.Fprintf(w, "ratio: %.2f\n", r.Ratio)
	}
	printFloor(w, r, "bare go-coap")
	if r.Errors > 0 {
		fmt.Fprintf(w, "errors: %d, first: %s\n", r.Errors, r.FirstError)
	}
}

// printFloor prints the deliveries alone and the bound of the parts.
func printFloor(w io.Writer, r sim.LoadResult, bare string) {
	if r.FloorN == 0 || r.PushesPerUplink == 0 {
		return
	}
	fmt.Fprintf(w, "deliveries alone (the run's %d pushes posted again by net/http, %d in flight): %.0f uplinks/s at %.2f pushes per uplink\n",
		r.FloorN, sim.FloorConcurrency, r.Floor, r.PushesPerUplink)
	if r.ExchangeCPU > 0 {
		fmt.Fprintf(w, "machine CPU: %v per exchange of %s (%.2f cores busy), %v per uplink's deliveries (%.2f cores busy); %.2f cores busy in the end-to-end run\n",
			r.ExchangeCPU.Round(100*time.Nanosecond), bare, r.CeilingCores, r.DeliveriesCPU.Round(100*time.Nanosecond), r.FloorCores, runCores(r))
	}
	fmt.Fprintf(w, "bound of the parts (each uplink and its %.2f report acknowledgements an exchange of %s, and its deliveries, on the same cores): %.0f uplinks/s, %.2f of %s",
		r.DownlinksPerUplink, bare, r.Bound, r.BoundRatio, bare)
	if r.Bound > 0 {
		fmt.Fprintf(w, "; end to end reached %.2f of it", unpaced(r).PerSecond/r.Bound)
	}
	fmt.Fprintln(w)
}

// unpaced is the run that measured the maximum rate: the probe of a
// half-rate run, the run itself otherwise.
func unpaced(r sim.LoadResult) sim.LoadResult {
	if r.Probe != nil {
		return *r.Probe
	}
	return r
}

func runCores(r sim.LoadResult) float64 { return unpaced(r).RunCores }

// printRun prints the figures of one run (unpaced or paced) of a load run.
func printRun(w io.Writer, r sim.LoadResult) {
	fmt.Fprintf(w, "end-to-end (device → webhook push): %d sent, %d pushed in %v: %.0f uplinks/s\n", r.Sent, r.Pushed, r.Elapsed.Round(time.Millisecond), r.PerSecond)
	if r.Acked > 0 {
		fmt.Fprintf(w, "CoAP layer (device → platform ACK): %.0f uplinks/s\n", float64(r.Sent)/r.Acked.Seconds())
	}
	if l := r.Latency; l.N > 0 {
		fmt.Fprintf(w, "device-to-push latency over %d uplinks: p50 %v, p90 %v, p99 %v, max %v\n", l.N,
			l.P50.Round(10*time.Microsecond), l.P90.Round(10*time.Microsecond), l.P99.Round(10*time.Microsecond), l.Max.Round(10*time.Microsecond))
	}
	if r.Latency.Unmatched > 0 {
		fmt.Fprintf(w, "pushes not matched to an uplink (no deviceId or pulseCount, or an unknown device): %d\n", r.Latency.Unmatched)
	}
	if r.Rate > 0 {
		fmt.Fprintf(w, "sends began late by: p99 %v, max %v\n", r.SendLagP99.Round(10*time.Microsecond), r.SendLagMax.Round(10*time.Microsecond))
	}
}

// parseRate reads -rate: "" or 0 (unpaced), "half" (PaceOfMax 0.5) or a
// positive number of uplinks per second.
func parseRate(s string) (rate, paceOfMax float64, _ error) {
	switch s {
	case "", "0":
		return 0, 0, nil
	case "half":
		return 0, 0.5, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, 0, fmt.Errorf(`-rate %q: allowed: a positive number of uplinks per second, "half" (half the maximum rate, measured first), or "" / 0 (unpaced)`, s)
	}
	return v, 0, nil
}

// runDevices runs the devices until ctx ends or -for passes, then prints
// their totals.
func runDevices(ctx context.Context, o options, tmpl sim.Config, imeis []string, keys [][]byte, stdout io.Writer, logger *slog.Logger) error {
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	sources := o.sources
	if host, _, err := net.SplitHostPort(serverOf(tmpl)); sources == 0 && err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.To4() != nil && ip.IsLoopback() {
			sources = (len(imeis) + sim.DevicesPerSource - 1) / sim.DevicesPerSource
		}
	}
	devs := make([]*sim.Device, len(imeis))
	for i := range devs {
		c := tmpl
		c.IMEI = imeis[i]
		if ip := sim.SourceIP(i, sources); ip != nil {
			c.LocalAddr = net.JoinHostPort(ip.String(), "0")
		}
		if keys != nil && keys[i] != nil {
			c.Key = keys[i]
		}
		d, err := sim.New(c)
		if err != nil {
			return err
		}
		devs[i] = d
	}
	var wg sync.WaitGroup
	var failed sync.Map
	sem := make(chan struct{}, o.workers)
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			// The next device may connect once this one registered or
			// stopped.
			release := sync.OnceFunc(func() { <-sem })
			stopped := make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case <-d.Ready():
				case <-stopped:
				}
				release()
			}()
			err := d.Run(ctx)
			close(stopped)
			if err != nil {
				failed.Store(d.IMEI(), err)
				logger.Error("device stopped", "imei", d.IMEI(), "err", err)
			}
		}()
	}
	fmt.Fprintf(stdout, "running %d %s devices (%s) against %s; interrupt to stop\n", len(devs), o.protocol, o.mode, serverOf(tmpl))
	wg.Wait()
	var t sim.Stats
	nfail := 0
	failed.Range(func(any, any) bool { nfail++; return true })
	for _, d := range devs {
		s := d.Stats()
		t.Reports += s.Reports
		t.ReportAcks += s.ReportAcks
		t.Commands += s.Commands
		t.UplinkErrors += s.UplinkErrors
		t.PCPFrames += s.PCPFrames
	}
	fmt.Fprintf(stdout, "devices: %d, failed to register: %d, reports: %d, report ACKs: %d, commands answered: %d, PCP frames: %d, uplink errors: %d\n",
		len(devs), nfail, t.Reports, t.ReportAcks, t.Commands, t.PCPFrames, t.UplinkErrors)
	if nfail == len(devs) {
		var first error
		failed.Range(func(_, v any) bool { first = v.(error); return false })
		return fmt.Errorf("no device could register: %w", first)
	}
	return nil
}

// serverFromAPI asks the platform where devices connect and returns the
// address of its DTLS socket (secure) or plain CoAP one, on api's host
// when the platform listens on every address. A platform without the call
// (404) gets the default port on api's host.
func serverFromAPI(ctx context.Context, api *sim.API, secure bool) (string, error) {
	addrs, err := api.DeviceAddresses(ctx)
	var ae *sim.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		addrs, err = nil, nil
	}
	if err != nil {
		return "", fmt.Errorf("asking the platform where devices connect (or give -server): %w", err)
	}
	return deviceServer(api.URL, addrs, secure)
}

// deviceServer is the host:port a device connects to, from the API's URL
// and the platform's device addresses (nil: unknown, the default ports).
func deviceServer(apiURL string, addrs map[string]sim.DeviceAddress, secure bool) (string, error) {
	u, err := url.Parse(apiURL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("-api %q: want a URL such as http://127.0.0.1:8743", apiURL)
	}
	name, port := "coap", 5683
	if secure {
		name, port = "coaps", 5684
	}
	host := u.Hostname()
	if addrs != nil {
		a, ok := addrs[name]
		if !ok {
			other := map[bool]string{true: "-dtls=false", false: "-dtls"}[secure]
			return "", fmt.Errorf("the platform at %s has no %s socket (it is off); try %s, or give -server", apiURL, name, other)
		}
		port = a.Port
		if a.Host != "" {
			host = a.Host
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

func serverOf(c sim.Config) string {
	if c.Server != "" {
		return c.Server
	}
	if c.Key != nil {
		return "127.0.0.1:5684"
	}
	return "127.0.0.1:5683"
}

// pool calls f(0…n-1) from workers goroutines.
func pool(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range max(1, min(workers, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// spareDescriptors is what the process keeps for itself (the API's and
// the webhook sink's connections, the runtime) beside one socket per
// device.
const spareDescriptors = 256

// raiseDescriptorLimit raises the soft limit of open files to what n
// devices need (one UDP socket each), up to the hard limit, and refuses a
// run the hard limit cannot hold, saying how to split it.
func raiseDescriptorLimit(n int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return nil // unknown: let the sockets say
	}
	need := uint64(n + spareDescriptors)
	if l.Cur >= need {
		return nil
	}
	if l.Max < need {
		return fmt.Errorf("-n %d needs %d open files (one socket per device) and this process may open %d (ulimit -Hn): run several processes of at most %d devices each, with -imei counting on from the last one's and, with -load, each its own -sink port",
			n, need, l.Max, max(int64(l.Max)-spareDescriptors, 0))
	}
	l.Cur = need
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}
