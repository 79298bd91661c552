package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// MQTTCredentials names one registered MQTT device.
type MQTTCredentials struct{ DeviceID, Secret string }

// MQTTLoadConfig configures an MQTT load run (see MQTTLoad).
type MQTTLoadConfig struct {
	Broker     string            // the platform's MQTT listener, host:port (required)
	Devices    []MQTTCredentials // registered MQTT devices (required)
	Uplinks    int               // reports per device; 0 means 1
	Workers    int               // devices connecting or sending at a time; 0 means 64
	Timeout    time.Duration     // bound on the run; 0 means 5 minutes
	API        *API              // subscribes the sink; required, logged in
	SinkAddr   string            // as LoadConfig.SinkAddr
	NotifyType string            // as LoadConfig.NotifyType
	NoCeiling  bool              // skip the bare broker run
}

// MQTTLoad measures end-to-end MQTT reports per second — from the first
// report published to the last webhook push of a Meter reading — with
// every device connected at once and publishing at QoS 1. Then, in the
// same run, as many Paho clients publish as many QoS 1 messages to a bare
// mochi-mqtt broker (no hooks but allow-all) in this process: the
// ceiling, the broker library's own publish rate on this machine.
func MQTTLoad(ctx context.Context, cfg MQTTLoadConfig) (LoadResult, error) {
	var res LoadResult
	switch {
	case len(cfg.Devices) == 0:
		return res, &ConfigError{Field: "Devices", Problem: "at least one device is needed"}
	case cfg.API == nil:
		return res, &ConfigError{Field: "API", Problem: "required: the platform API to subscribe the webhook sink"}
	case cfg.Broker == "":
		return res, &ConfigError{Field: "Broker", Problem: "required: host:port of the platform's MQTT listener"}
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
	if cfg.NotifyType == "" {
		cfg.NotifyType = "deviceDataChanged"
	}
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
	if err := cfg.API.Subscribe(ctx, cfg.NotifyType, sink.url); err != nil {
		return res, err
	}

	devs := make([]*MQTTDevice, len(cfg.Devices))
	defer func() {
		for _, d := range devs {
			if d != nil {
				d.Close()
			}
		}
	}()
	pool(len(devs), cfg.Workers, func(i int) {
		d, err := NewMQTT(MQTTConfig{Broker: cfg.Broker, DeviceID: cfg.Devices[i].DeviceID, Secret: cfg.Devices[i].Secret})
		if err == nil {
			err = d.Connect(ctx)
		}
		if err != nil {
			fail(err)
			return
		}
		devs[i] = d
	})
	for _, d := range devs {
		if d != nil {
			res.Devices++
		}
	}
	if res.Devices == 0 {
		return res, fmt.Errorf("sim: MQTT load: no device connected: %s", res.FirstError)
	}

	var sent atomic.Int64
	start := time.Now()
	pool(len(devs), cfg.Workers, func(i int) {
		if devs[i] == nil {
			return
		}
		for range cfg.Uplinks {
			if err := devs[i].Report(ctx); err != nil {
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
	if res.Pushed < res.Sent {
		res.Errors = errs.Load()
		return res, fmt.Errorf("sim: MQTT load: %d of %d pushes arrived at the sink %s before the end of the run (Timeout %v): %w",
			res.Pushed, res.Sent, sink.url, cfg.Timeout, ctx.Err())
	}
	if !cfg.NoCeiling {
		n, el, err := mqttCeiling(ctx, cfg, fail)
		if err != nil {
			return res, err
		}
		res.CeilingN = n
		if el > 0 {
			res.Ceiling = float64(n) / el.Seconds()
		}
		if res.Ceiling > 0 {
			res.Ratio = res.PerSecond / res.Ceiling
		}
	}
	res.Errors = errs.Load()
	return res, nil
}

// mqttCeiling runs a bare mochi-mqtt broker on 127.0.0.1 and as many Paho
// clients as the load run had devices, each publishing cfg.Uplinks QoS 1
// reports; it returns the messages acknowledged and the time they took.
func mqttCeiling(ctx context.Context, cfg MQTTLoadConfig, fail func(error)) (int64, time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, fmt.Errorf("sim: bare broker: %w", err)
	}
	addr := l.Addr().String()
	b := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := b.AddHook(new(allowAll), nil); err != nil {
		return 0, 0, fmt.Errorf("sim: bare broker: %w", err)
	}
	if err := b.AddListener(listeners.NewNet("tcp", l)); err != nil {
		l.Close()
		return 0, 0, fmt.Errorf("sim: bare broker listener: %w", err)
	}
	if err := b.Serve(); err != nil {
		return 0, 0, fmt.Errorf("sim: bare broker: %w", err)
	}
	defer b.Close()

	clients := make([]*MQTTDevice, len(cfg.Devices))
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	pool(len(clients), cfg.Workers, func(i int) {
		d, err := NewMQTT(MQTTConfig{Broker: addr, DeviceID: cfg.Devices[i].DeviceID, Secret: "ceiling"})
		if err == nil {
			err = d.Connect(ctx)
		}
		if err != nil {
			fail(fmt.Errorf("sim: ceiling client: %w", err))
			return
		}
		clients[i] = d
	})
	var sent atomic.Int64
	start := time.Now()
	pool(len(clients), cfg.Workers, func(i int) {
		if clients[i] == nil {
			return
		}
		for range cfg.Uplinks {
			if err := clients[i].Report(ctx); err != nil {
				fail(fmt.Errorf("sim: ceiling publish: %w", err))
				return
			}
			sent.Add(1)
		}
	})
	el := time.Since(start)
	if sent.Load() == 0 {
		return 0, 0, errors.Join(errors.New("sim: MQTT ceiling run: no message acknowledged"), ctx.Err())
	}
	return sent.Load(), el, nil
}

// allowAll lets every client connect and use every topic: the bare
// broker of the ceiling run has no rules of its own.
type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool              { return true }
