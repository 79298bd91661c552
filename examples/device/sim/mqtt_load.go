package sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	mqttceiling "github.com/doze-io/doze/mqtt/ceiling"
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
	NoCeiling  bool              // skip the bare broker run and the deliveries alone after it
}

// MQTTLoad measures end-to-end MQTT reports per second — from the first
// report published to the last webhook push of a Meter reading — with
// every device connected at once and publishing at QoS 1. Then, in the
// same run, as many Paho clients publish as many QoS 1 messages to a bare
// mochi-mqtt broker (no hooks but allow-all) in this process: the
// ceiling, the broker library's own publish rate on this machine.
func MQTTLoad(ctx context.Context, cfg MQTTLoadConfig) (LoadResult, error) {
	switch {
	case len(cfg.Devices) == 0:
		return LoadResult{}, &ConfigError{Field: "Devices", Problem: "at least one device is needed"}
	case cfg.API == nil:
		return LoadResult{}, &ConfigError{Field: "API", Problem: "required: the platform API to subscribe the webhook sink"}
	case cfg.Broker == "":
		return LoadResult{}, &ConfigError{Field: "Broker", Problem: "required: host:port of the platform's MQTT listener"}
	}
	loadDefaults(&cfg.Uplinks, &cfg.Workers, &cfg.Timeout, &cfg.NotifyType)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	run := loadRun[*MQTTDevice]{
		what: "MQTT load", joined: "connected",
		n: len(cfg.Devices), uplinks: cfg.Uplinks, workers: cfg.Workers, timeout: cfg.Timeout,
		api: cfg.API, sinkAddr: cfg.SinkAddr, notifyType: cfg.NotifyType,
		connect: func(ctx context.Context, i int) (*MQTTDevice, error) {
			d, err := NewMQTT(MQTTConfig{Broker: cfg.Broker, DeviceID: cfg.Devices[i].DeviceID, Secret: cfg.Devices[i].Secret})
			if err == nil {
				err = d.Connect(ctx)
			}
			if err != nil {
				return nil, err
			}
			return d, nil
		},
		report: func(ctx context.Context, d *MQTTDevice) error { return d.Report(ctx) },
		// The devices stay connected while the ceiling is measured.
		leave: func(d *MQTTDevice) { d.Close() },
	}
	if !cfg.NoCeiling {
		run.ceiling = func(ctx context.Context, fail func(error)) (span, error) {
			return mqttCeiling(ctx, cfg, fail)
		}
	}
	return run.run(ctx)
}

// mqttCeiling runs a bare mochi-mqtt broker on 127.0.0.1 and as many Paho
// clients as the load run had devices, each publishing cfg.Uplinks QoS 1
// reports; it returns the messages acknowledged, the time they took and
// the machine's CPU time over it.
func mqttCeiling(ctx context.Context, cfg MQTTLoadConfig, fail func(error)) (span, error) {
	b, err := mqttceiling.Start(mqttceiling.Config{})
	if err != nil {
		return span{}, fmt.Errorf("sim: %w", err)
	}
	defer b.Close()

	clients := connectAll(len(cfg.Devices), cfg.Workers, func(i int) (*MQTTDevice, error) {
		d, err := NewMQTT(MQTTConfig{Broker: b.Addr(), DeviceID: cfg.Devices[i].DeviceID, Secret: "ceiling"})
		if err == nil {
			err = d.Connect(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("sim: ceiling client: %w", err)
		}
		return d, nil
	}, fail)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	sp := measureSend(clients, cfg.Workers, cfg.Uplinks, func(c *MQTTDevice) error {
		if err := c.Report(ctx); err != nil {
			return fmt.Errorf("sim: ceiling publish: %w", err)
		}
		return nil
	}, fail)
	if sp.n == 0 {
		return span{}, errors.Join(errors.New("sim: MQTT ceiling run: no message acknowledged"), ctx.Err())
	}
	return sp, nil
}
