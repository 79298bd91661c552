package sim

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/internal/lifecycle"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/ota/download"
	"github.com/doze-io/doze/ota/pcp"
)

//go:embed testdata/watermeter.json
var waterMeterJSON []byte

// WaterMeterCodec returns the declarative codec of the demo water meter
// (WaterMeter_DozeLabs_WM100; a copy of codec/testdata/watermeter.json).
func WaterMeterCodec() *codec.Declarative {
	c, err := codec.Compile(waterMeterJSON, nil)
	if err != nil {
		panic("sim: embedded water-meter codec: " + err.Error())
	}
	return c
}

// Protocol is how a device talks to the platform.
type Protocol string

// The protocols of a simulated device.
const (
	// LwM2M registers with POST /rd announcing object 19, reports by
	// notifications of /19/0/0 (or LwM2M Send when /19/0/0 is not
	// observed) and takes downlink writes of the Multiple resource
	// /19/1/0 as a conforming LwM2M 1.1 client does: its instance
	// /19/1/0/0, or the resource as TLV or SenML.
	LwM2M Protocol = "lwm2m"
	// TUP registers with POST /t/r and reports by notifications of /t/d,
	// which also takes downlink POSTs.
	TUP Protocol = "tup"
)

// Config describes one simulated water meter.
type Config struct {
	// Server is the platform's CoAP address host:port; "" means
	// 127.0.0.1:5684 with a Key, 127.0.0.1:5683 without. The lwm2m client
	// binds to 127.0.0.1, so the server must be on loopback.
	Server string
	// LocalAddr is the local UDP address the device sends from, such as
	// "127.0.0.2:0"; "" means 127.0.0.1 with a free port for a loopback
	// server (one address gives about 28,000 sockets towards one server:
	// Load spreads larger runs over several, see LoadConfig.Sources).
	LocalAddr string
	// IMEI is the device's nodeId, its LwM2M endpoint name and its PSK
	// identity (required).
	IMEI string
	// Key is the DTLS pre-shared key; nil means plain CoAP.
	Key []byte
	// Protocol is LwM2M or TUP; "" means LwM2M.
	Protocol Protocol
	// Objects is the object set served over LwM2M: WaterMeterObjects
	// (object 19 and the codec) or StandardObjects (3, 4, 5 and 3303);
	// "" means WaterMeterObjects.
	Objects Objects
	// Power is the power-saving mode; the zero value is PSM with a 30 s
	// active time.
	Power Power
	// ReportPeriod is the time between meter readings; 0 means 1h. The
	// platform changes it with the SET_REPORT_PERIOD command.
	ReportPeriod time.Duration
	// NoFirstReport stops the device from reporting right after it
	// registers; it then reports first after ReportPeriod.
	NoFirstReport bool
	// Codec encodes reports and decodes commands; nil means
	// WaterMeterCodec().
	Codec *codec.Declarative
	// SoftwareVersion is the version PCP upgrades start from; "" means
	// "1.0.0".
	SoftwareVersion string
	// FirmwareVersion is the version of /3/0/3 and /5/0/7; "" means
	// "FW1.0".
	FirmwareVersion string
	// Lifetime is the registration lifetime; 0 means 86400s.
	Lifetime time.Duration
	// NonConfirmable sends reports as NON notifications (default CON).
	NonConfirmable bool
	// Transmission is the retransmission profile of the device's CON
	// messages; the zero value is the NB-IoT profile of lwm2m.
	Transmission transport.Transmission
	// Logger receives the device's events; nil discards them.
	Logger *slog.Logger
}

// Stats counts what a device did. All fields are totals since Run started.
type Stats struct {
	Reports        int64 // meter readings sent
	ReportAcks     int64 // report acknowledgements (readingAck) received
	Writes         int64 // downlink writes (to /19/1/0 or /t/d) the device took and answered
	Commands       int64 // commands received and answered
	DecodeErrors   int64 // downlinks neither PCP nor decodable by the codec
	PCPFrames      int64 // PCP frames received
	UplinkErrors   int64 // uplinks that failed (timeout, reset, …)
	Sleeps         int64 // times the device fell asleep
	FirmwareResult int   // last object 5 Update Result
}

// Device is one simulated NB-IoT water meter. New starts nothing; Run
// connects, registers and reports until its context ends.
type Device struct {
	cfg   Config
	log   *slog.Logger
	codec *codec.Declarative
	dl    *download.Downloader

	inbox   chan []byte                                        // downlinks from the client's reading goroutine
	work    chan func(ctx context.Context, wg *sync.WaitGroup) // jobs for the Run goroutine
	reports chan chan error                                    // Report calls
	ready   chan struct{}                                      // closed when registered
	stopped chan struct{}                                      // closed when Run returns
	life    lifecycle.Guard                                    // Run once (the module's one Run discipline)

	mu        sync.Mutex
	client    *transport.Client
	period    time.Duration
	lastUp    time.Time
	anchor    time.Time
	asleep    bool
	busy      int // firmware downloads in progress keep the device awake
	fwVersion string
	fw        firmware
	last      []byte // last uplink payload, the value of /19/0/0

	stats struct {
		reports, acks, writes, commands, decodeErrors, pcp, upErrors, sleeps atomic.Int64
	}
	meter  meterState
	sensor sensorState // StandardObjects
}

// New checks cfg and returns a Device; it starts nothing.
func New(cfg Config) (*Device, error) {
	if cfg.IMEI == "" {
		return nil, &ConfigError{Field: "IMEI", Problem: "required: the device's nodeId (15 digits for an IMEI)"}
	}
	switch cfg.Protocol {
	case "":
		cfg.Protocol = LwM2M
	case LwM2M, TUP:
	default:
		return nil, &ConfigError{Field: "Protocol", Value: string(cfg.Protocol), Problem: "allowed: lwm2m, tup"}
	}
	switch cfg.Objects {
	case "":
		cfg.Objects = WaterMeterObjects
	case WaterMeterObjects:
	case StandardObjects:
		if cfg.Protocol == TUP {
			return nil, &ConfigError{Field: "Objects", Value: string(cfg.Objects), Problem: "standard objects need the LwM2M protocol, not TUP"}
		}
	default:
		return nil, &ConfigError{Field: "Objects", Value: string(cfg.Objects), Problem: "allowed: watermeter, standard"}
	}
	if cfg.Power.Mode < PSM || cfg.Power.Mode > EDRX {
		return nil, &ConfigError{Field: "Power.Mode", Value: cfg.Power.Mode.String(), Problem: "allowed: PSM, DRX, EDRX"}
	}
	cfg.Power = cfg.Power.withDefaults()
	if cfg.Server == "" {
		cfg.Server = "127.0.0.1:5683"
		if cfg.Key != nil {
			cfg.Server = "127.0.0.1:5684"
		}
	}
	if cfg.ReportPeriod <= 0 {
		cfg.ReportPeriod = time.Hour
	}
	if cfg.Codec == nil {
		cfg.Codec = WaterMeterCodec()
	}
	if cfg.SoftwareVersion == "" {
		cfg.SoftwareVersion = "1.0.0"
	}
	if cfg.FirmwareVersion == "" {
		cfg.FirmwareVersion = "FW1.0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Device{
		cfg:       cfg,
		log:       cfg.Logger.With("imei", cfg.IMEI),
		codec:     cfg.Codec,
		inbox:     make(chan []byte, 32),
		work:      make(chan func(context.Context, *sync.WaitGroup), 32),
		reports:   make(chan chan error),
		ready:     make(chan struct{}),
		stopped:   make(chan struct{}),
		period:    cfg.ReportPeriod,
		fwVersion: cfg.FirmwareVersion,
		meter:     newMeterState(cfg.IMEI),
		sensor:    newSensorState(cfg.IMEI),
	}
	d.dl = download.New(cfg.SoftwareVersion, &download.MemProgress{}, &download.MemStorage{}, nil)
	return d, nil
}

// IMEI returns the device's nodeId.
func (d *Device) IMEI() string { return d.cfg.IMEI }

// Ready is closed once the device has registered. It stays open when Run
// fails to connect or register; watch Run's error too.
func (d *Device) Ready() <-chan struct{} { return d.ready }

// ReportPeriod returns the current report period.
func (d *Device) ReportPeriod() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.period
}

// SoftwareVersion returns the software version (changed by PCP upgrades).
func (d *Device) SoftwareVersion() string { return d.dl.Version() }

// FirmwareVersion returns the firmware version (changed by object 5
// upgrades).
func (d *Device) FirmwareVersion() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fwVersion
}

// Asleep reports whether the device is asleep: it answers no downlink
// request until its next uplink (PSM) or paging window (eDRX).
func (d *Device) Asleep() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asleep
}

// Stats returns the device's counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	fr := d.fw.result
	d.mu.Unlock()
	return Stats{
		Reports:        d.stats.reports.Load(),
		ReportAcks:     d.stats.acks.Load(),
		Writes:         d.stats.writes.Load(),
		Commands:       d.stats.commands.Load(),
		DecodeErrors:   d.stats.decodeErrors.Load(),
		PCPFrames:      d.stats.pcp.Load(),
		UplinkErrors:   d.stats.upErrors.Load(),
		Sleeps:         d.stats.sleeps.Load(),
		FirmwareResult: fr,
	}
}

// Report sends a meter reading now, waking the device, and returns when
// the server acknowledged it (a CON report) or it was sent (NON). It fails
// with ErrNotRunning unless Run is running and registered.
func (d *Device) Report(ctx context.Context) error {
	select {
	case <-d.ready:
	default:
		return ErrNotRunning
	}
	done := make(chan error, 1)
	select {
	case d.reports <- done:
	case <-d.stopped:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-d.stopped:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run connects (DTLS handshake when a Key is set), registers and then
// reports every ReportPeriod, answers commands and upgrades, and sleeps as
// its power mode says, until ctx ends. It returns nil when ctx ends, or
// the error that stopped it from connecting or registering. A Device runs
// once: a second Run returns an error wrapping ErrClosed that says "Run
// called twice".
func (d *Device) Run(ctx context.Context) error {
	ctx, err := d.life.Start(ctx, "sim.Device "+d.cfg.IMEI, ErrClosed)
	if err != nil {
		return err
	}
	defer d.life.Finish()
	defer close(d.stopped)
	c, err := transport.NewClient(transport.ClientConfig{
		Server:                   d.cfg.Server,
		LocalAddr:                d.cfg.LocalAddr,
		Endpoint:                 d.cfg.IMEI,
		Key:                      d.cfg.Key,
		Lifetime:                 d.cfg.Lifetime,
		Queue:                    d.cfg.Power.Mode == PSM,
		TUP:                      d.cfg.Protocol == TUP,
		ConfirmableNotifications: !d.cfg.NonConfirmable,
		Transmission:             d.cfg.Transmission,
		Logger:                   d.cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("sim: device %s: %w", d.cfg.IMEI, err)
	}
	d.serve(c)
	d.mu.Lock()
	d.client = c
	d.mu.Unlock()
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		wg.Wait()
		_ = c.Close()
	}()
	if err := c.Connect(ctx); err != nil {
		return fmt.Errorf("sim: device %s: %w", d.cfg.IMEI, err)
	}
	if err := c.Register(ctx); err != nil {
		return fmt.Errorf("sim: device %s: %w", d.cfg.IMEI, err)
	}
	now := time.Now()
	d.mu.Lock()
	d.anchor, d.lastUp = now, now
	d.mu.Unlock()
	close(d.ready)
	d.log.Info("registered", "protocol", d.cfg.Protocol, "mode", d.cfg.Power.Mode, "dtls", d.cfg.Key != nil)

	report := time.NewTimer(d.ReportPeriod())
	defer report.Stop()
	if !d.cfg.NoFirstReport {
		report.Reset(0)
	}
	power := time.NewTimer(time.Hour)
	defer power.Stop()
	armPower := func() {
		d.mu.Lock()
		next := d.cfg.Power.NextChange(d.anchor, d.lastUp, time.Now())
		d.mu.Unlock()
		power.Stop()
		if !next.IsZero() {
			power.Reset(time.Until(next))
		}
	}
	armPower()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-report.C:
			_ = d.sendReport(ctx)
			report.Reset(d.ReportPeriod())
		case done := <-d.reports:
			done <- d.sendReport(ctx)
		case p := <-d.inbox:
			d.downlink(ctx, p)
		case f := <-d.work:
			f(ctx, &wg)
		case <-power.C:
			d.powerTick(ctx)
		}
		armPower()
		if d.periodChanged() {
			report.Stop()
			report.Reset(d.ReportPeriod())
		}
	}
}

// periodChanged reports (once) that a command changed the report period.
func (d *Device) periodChanged() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := d.meter.periodChanged
	d.meter.periodChanged = false
	return ch
}

// powerTick puts the device to sleep or wakes it for a paging window.
func (d *Device) powerTick(ctx context.Context) {
	now := time.Now()
	d.mu.Lock()
	reach := d.cfg.Power.Reachable(d.anchor, d.lastUp, now) || d.busy > 0
	was := !d.asleep
	c := d.client
	d.mu.Unlock()
	switch {
	case was && !reach:
		// A sleeping device's radio is off: the server's requests reach
		// a port nobody listens on any more, as behind a NAT.
		if err := c.Rebind(); err != nil {
			d.log.Warn("sleep", "err", err)
			return
		}
		d.mu.Lock()
		d.asleep = true
		d.mu.Unlock()
		d.stats.sleeps.Add(1)
		d.log.Debug("asleep")
	case !was && reach:
		// eDRX paging window: tell the server where the device is now.
		d.wake(ctx)
	}
}

// wake makes a sleeping device reachable again before it sends: a plain
// CoAP device updates its registration so that the server learns its new
// address (a DTLS device keeps its session through its Connection ID).
func (d *Device) wake(ctx context.Context) {
	d.mu.Lock()
	asleep := d.asleep
	d.asleep = false
	c := d.client
	d.mu.Unlock()
	if !asleep {
		return
	}
	if d.cfg.Key == nil || d.cfg.Power.Mode == EDRX {
		if err := c.Update(ctx); err != nil {
			d.log.Warn("wake: registration update", "err", err)
		}
		d.touch()
	}
	d.log.Debug("awake")
}

func (d *Device) touch() {
	d.mu.Lock()
	d.lastUp = time.Now()
	d.mu.Unlock()
}

// sendReport sends one meter reading, or temperature.
func (d *Device) sendReport(ctx context.Context) error {
	if d.cfg.Objects == StandardObjects {
		return d.sendTemperature(ctx)
	}
	d.mu.Lock()
	r := d.meter.next(d.period)
	d.mu.Unlock()
	b, err := d.codec.Append(nil, r)
	if err != nil {
		return fmt.Errorf("sim: device %s: encoding the meter reading: %w", d.cfg.IMEI, err)
	}
	if err := d.uplink(ctx, b); err != nil {
		return err
	}
	d.stats.reports.Add(1)
	return nil
}

// uplink sends application bytes: a notification of /19/0/0 or /t/d, or
// an LwM2M Send when /19/0/0 is not observed.
func (d *Device) uplink(ctx context.Context, b []byte) error {
	d.wake(ctx)
	d.mu.Lock()
	c := d.client
	d.last = b
	d.mu.Unlock()
	v := transport.Content{Format: lwm2m.FormatOpaque, Payload: b}
	var err error
	switch {
	case d.cfg.Protocol == TUP:
		if err = d.waitObserved(ctx, c, "/t/d"); err == nil {
			err = c.Notify(ctx, "/t/d", v)
		}
	case c.Observed("/19/0/0"):
		err = c.Notify(ctx, "/19/0/0", v)
	default:
		err = c.Send(ctx, v)
	}
	d.touch()
	if err != nil {
		d.stats.upErrors.Add(1)
		d.log.Warn("uplink", "err", err)
		return fmt.Errorf("sim: device %s: uplink: %w", d.cfg.IMEI, err)
	}
	return nil
}

// waitObserved waits up to 2 s for the server's observation, which
// follows a TUP registration at once but on the server's own goroutine.
func (d *Device) waitObserved(ctx context.Context, c *transport.Client, path string) error {
	if c.Observed(path) {
		return nil
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	deadline := time.Now().Add(2 * time.Second)
	for !c.Observed(path) {
		if time.Now().After(deadline) {
			return ErrNoObserver
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// downlink handles bytes the platform wrote to /19/1/0 or /t/d: PCP frames
// go to the OTA downloader, the rest to the codec.
func (d *Device) downlink(ctx context.Context, p []byte) {
	if pcp.IsPCP(p) {
		d.stats.pcp.Add(1)
		out, err := d.dl.Handle(p)
		if err != nil {
			d.log.Warn("PCP frame", "err", err)
		}
		for _, f := range out {
			if d.uplink(ctx, f) != nil {
				return
			}
		}
		return
	}
	m, err := d.codec.DecodeDownlink(p)
	if err != nil {
		d.stats.decodeErrors.Add(1)
		d.log.Warn("undecodable downlink", "hex", fmt.Sprintf("%X", p), "err", err)
		return
	}
	switch m := m.(type) {
	case *codec.ReportAck:
		d.stats.acks.Add(1)
	case *codec.Command:
		result := int64(0)
		switch m.Cmd {
		case "SET_REPORT_PERIOD":
			secs, ok := intPara(m.Paras["period"])
			if !ok || secs <= 0 {
				result = 1
				break
			}
			d.mu.Lock()
			d.period = time.Duration(secs) * time.Second
			d.meter.periodChanged = true
			d.mu.Unlock()
		default:
			result = 1
		}
		d.log.Info("command", "cmd", m.Cmd, "mid", m.Mid, "result", result)
		b, err := d.codec.Append(nil, &codec.Response{Mid: m.Mid, Body: map[string]any{"result": result}})
		if err != nil {
			d.log.Warn("encoding the command response", "err", err)
			return
		}
		if d.uplink(ctx, b) == nil {
			d.stats.commands.Add(1)
		}
	}
}

func intPara(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case uint64:
		return int64(v), true
	case float64:
		return int64(v), v == float64(int64(v))
	case int:
		return int64(v), true
	}
	return 0, false
}

// serve installs the device's resources on the client. Handlers run on
// the client's reading goroutine, so they only hand work to Run.
func (d *Device) serve(c *transport.Client) {
	lastValue := func() (transport.Content, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return transport.Content{Format: lwm2m.FormatOpaque, Payload: d.last}, nil
	}
	in := func(v transport.Content) error {
		select {
		case d.inbox <- append([]byte(nil), v.Payload...):
			// Counted here, before the answer goes out, so that whoever
			// saw the answer sees the count (Run decodes it later).
			d.stats.writes.Add(1)
			return nil
		default:
			return errors.New("device busy: downlink queue full")
		}
	}
	if d.cfg.Protocol == TUP {
		c.Handle("/t/d", transport.Resource{Read: lastValue, Write: in})
		return
	}
	if d.cfg.Objects == StandardObjects {
		d.serveStandard(c)
		return
	}
	c.Handle("/19/0/0", transport.Resource{Read: lastValue})
	c.Handle("/19/1/0", transport.Resource{Write: in})
	text := func(f func() string) func() (transport.Content, error) {
		return func() (transport.Content, error) {
			return transport.Content{Format: lwm2m.FormatText, Payload: []byte(f())}, nil
		}
	}
	c.Handle("/3/0/0", transport.Resource{Read: text(func() string { return "DozeLabs" })})
	c.Handle("/3/0/1", transport.Resource{Read: text(func() string { return "WM100" })})
	c.Handle("/3/0/3", transport.Resource{Read: text(d.FirmwareVersion)})
	d.serveFirmware(c, text)
}

// meterState is the simulated meter: a counter that grows with a flow.
type meterState struct {
	totalMilli    int64 // m³ / 1000
	flowCenti     int64 // m³/h / 100
	pulses        int64
	battery       int64
	periodChanged bool
}

func newMeterState(imei string) meterState {
	seed, _ := strconv.ParseInt(imei[max(0, len(imei)-4):], 10, 64)
	return meterState{totalMilli: 1000 * (seed % 1000), flowCenti: 50 + seed%200, battery: 100}
}

// next advances the meter by one period and returns the reading.
func (m *meterState) next(period time.Duration) *codec.Report {
	m.totalMilli = (m.totalMilli + m.flowCenti*10*int64(period/time.Second)/3600 + 1) % 4_000_000_000
	m.pulses = (m.pulses + 1) % 65536
	if m.battery > 5 && m.pulses%50 == 0 {
		m.battery--
	}
	return &codec.Report{Data: []codec.ServiceData{
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": m.battery}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": int64(-85)}},
		{ServiceID: "Meter", ServiceData: map[string]any{
			"totalFlow":  float64(m.totalMilli) / 1000,
			"flowRate":   float64(m.flowCenti) / 100,
			"pulseCount": m.pulses,
		}},
	}}
}
