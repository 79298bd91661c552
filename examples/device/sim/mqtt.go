package sim

// MQTT mode: 4G meters that connect over MQTT 3.1.1 with their deviceId
// and secret (MQT-1), report JSON properties on
// $oc/devices/{deviceId}/sys/properties/report and answer commands
// (MQT-2, MQT-3). The client is Eclipse Paho (github.com/eclipse/paho.mqtt.golang),
// a maintained client nobody here wrote.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// MQTTConfig configures one MQTT device.
type MQTTConfig struct {
	Broker       string        // host:port of the platform's MQTT listener (required)
	DeviceID     string        // the deviceId: client id and username (required)
	Secret       string        // the secret from the registration (required)
	ReportPeriod time.Duration // Run: time between reports; 0 means 1 hour
	Logger       *slog.Logger  // nil discards
}

// MQTTDevice is a simulated MQTT meter. Report and Close are safe for
// concurrent use; Connect is called once.
type MQTTDevice struct {
	cfg      MQTTConfig
	c        paho.Client
	log      *slog.Logger
	seq      atomic.Int64
	reports  atomic.Int64
	commands atomic.Int64
}

// NewMQTT checks cfg and returns a device that is not connected yet.
func NewMQTT(cfg MQTTConfig) (*MQTTDevice, error) {
	switch {
	case cfg.Broker == "":
		return nil, &ConfigError{Field: "Broker", Problem: "required: host:port of the platform's MQTT listener"}
	case cfg.DeviceID == "":
		return nil, &ConfigError{Field: "DeviceID", Problem: "required: the deviceId the platform gave at registration"}
	case cfg.Secret == "":
		return nil, &ConfigError{Field: "Secret", Problem: "required: the secret the platform gave at registration"}
	}
	if cfg.ReportPeriod <= 0 {
		cfg.ReportPeriod = time.Hour
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &MQTTDevice{cfg: cfg, log: log.With("device", cfg.DeviceID)}
	opts := paho.NewClientOptions().AddBroker("tcp://" + cfg.Broker).SetClientID(cfg.DeviceID).
		SetUsername(cfg.DeviceID).SetPassword(cfg.Secret).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second).SetOrderMatters(false)
	d.c = paho.NewClient(opts)
	return d, nil
}

func (d *MQTTDevice) topic(rest string) string {
	return "$oc/devices/" + d.cfg.DeviceID + "/sys/" + rest
}

// wait waits for t or ctx.
func wait(ctx context.Context, what string, t paho.Token) error {
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("sim: MQTT %s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sim: MQTT %s: %w", what, ctx.Err())
	}
}

// Connect connects and subscribes to the device's commands, which it
// answers with result_code 0 on the response topic.
func (d *MQTTDevice) Connect(ctx context.Context) error {
	if err := wait(ctx, "connect to "+d.cfg.Broker, d.c.Connect()); err != nil {
		return err
	}
	return wait(ctx, "subscribe", d.c.Subscribe(d.topic("commands/#"), 1, d.command))
}

// command answers a command (MQT-3).
func (d *MQTTDevice) command(_ paho.Client, m paho.Message) {
	_, id, ok := strings.Cut(m.Topic(), "/sys/commands/request_id=")
	if !ok {
		return
	}
	d.commands.Add(1)
	var cmd struct {
		CommandName string `json:"command_name"`
	}
	_ = json.Unmarshal(m.Payload(), &cmd)
	d.log.Debug("MQTT command", "requestId", id, "command", cmd.CommandName)
	resp := `{"result_code":0,"response_name":"COMMAND_RESPONSE","paras":{"result":"ok"}}`
	// Answered from the callback's goroutine without waiting: paho
	// delivers callbacks in order and a wait here would block it.
	d.c.Publish(d.topic("commands/response/request_id="+id), 1, false, resp)
}

// Report publishes one meter reading as a JSON property report at QoS 1
// and returns when the platform acknowledged it (PUBACK).
func (d *MQTTDevice) Report(ctx context.Context) error {
	n := d.seq.Add(1)
	body := fmt.Sprintf(`{"services":[{"service_id":"Meter","properties":{"totalFlow":%d.5,"flowRate":0.5,"pulseCount":%d}},`+
		`{"service_id":"Battery","properties":{"batteryLevel":80}}]}`, n, n)
	if err := wait(ctx, "report", d.c.Publish(d.topic("properties/report"), 1, false, body)); err != nil {
		return err
	}
	d.reports.Add(1)
	return nil
}

// Run connects, reports every ReportPeriod until ctx ends, then
// disconnects.
func (d *MQTTDevice) Run(ctx context.Context) error {
	if err := d.Connect(ctx); err != nil {
		return err
	}
	defer d.Close()
	t := time.NewTicker(d.cfg.ReportPeriod)
	defer t.Stop()
	for {
		if err := d.Report(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !d.c.IsConnectionOpen() {
			return errors.New("sim: MQTT connection lost")
		}
	}
}

// Stats returns the reports acknowledged and the commands received.
func (d *MQTTDevice) Stats() (reports, commands int64) { return d.reports.Load(), d.commands.Load() }

// Close disconnects cleanly.
func (d *MQTTDevice) Close() {
	if d.c.IsConnected() {
		d.c.Disconnect(100)
	}
}
