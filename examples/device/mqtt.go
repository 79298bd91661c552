package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/doze-io/doze/examples/device/sim"
)

// runMQTT is the -mqtt mode: it registers the devices as MQTT devices
// through -api (their secrets are shown once, at registration), then runs
// them until ctx ends or -for passes, or runs the MQTT load mode.
func runMQTT(ctx context.Context, o options, imeis []string, stdout io.Writer, logger *slog.Logger) error {
	if o.api == "" {
		return errors.New("-mqtt needs -api, -app and -secret: an MQTT device's secret is given once, when the simulator registers it")
	}
	api := &sim.API{URL: o.api, AppID: o.app, Secret: o.secret}
	if err := api.Login(ctx); err != nil {
		return err
	}
	info := sim.DeviceInfo{ManufacturerID: o.manufacturer, DeviceType: o.deviceType, Model: o.model, ProtocolType: "MQTT"}
	creds := make([]sim.MQTTCredentials, len(imeis))
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	pool(len(imeis), min(o.workers, 16), func(i int) {
		cr, err := api.RegisterDevice(ctx, imeis[i], info, "")
		if ae, ok := errors.AsType[*sim.APIError](err); ok && ae.Status == 409 {
			err = fmt.Errorf("%w (its secret was shown once, at registration: start from an unused -imei)", err)
		}
		if err == nil && cr.Secret == "" {
			err = fmt.Errorf("the platform gave no secret: is %s/%s a product for MQTT devices?", o.manufacturer, o.model)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("registering MQTT device %s: %w", imeis[i], err)
		}
		creds[i] = sim.MQTTCredentials{DeviceID: cr.DeviceID, Secret: cr.Secret}
	})
	if firstErr != nil {
		return firstErr
	}
	fmt.Fprintf(stdout, "registered %d MQTT devices through %s in %v\n", len(imeis), o.api, time.Since(start).Round(time.Millisecond))

	if o.load {
		res, err := sim.MQTTLoad(ctx, sim.MQTTLoadConfig{Broker: o.mqtt, Devices: creds, Uplinks: o.uplinks, Workers: o.workers,
			Timeout: o.timeout, API: api, SinkAddr: o.sink, NotifyType: o.notify})
		if res.Sent > 0 {
			printMQTTLoad(stdout, o, res)
		}
		return err
	}

	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	devs := make([]*sim.MQTTDevice, len(creds))
	for i, c := range creds {
		d, err := sim.NewMQTT(sim.MQTTConfig{Broker: o.mqtt, DeviceID: c.DeviceID, Secret: c.Secret, ReportPeriod: o.period, Logger: logger})
		if err != nil {
			return err
		}
		devs[i] = d
	}
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Go(func() {
			if err := d.Run(ctx); err != nil {
				logger.Warn("MQTT device stopped", "err", err)
			}
		})
	}
	wg.Wait()
	var reports, commands int64
	for _, d := range devs {
		r, c := d.Stats()
		reports, commands = reports+r, commands+c
	}
	fmt.Fprintf(stdout, "%d MQTT devices: %d reports acknowledged, %d commands answered\n", len(devs), reports, commands)
	return nil
}

func printMQTTLoad(w io.Writer, o options, r sim.LoadResult) {
	fmt.Fprintf(w, "load: %d MQTT devices (QoS 1), %d uplinks each, %d at a time\n", r.Devices, o.uplinks, o.workers)
	fmt.Fprintf(w, "end-to-end (device → webhook push): %d sent, %d pushed in %v: %.0f reports/s\n", r.Sent, r.Pushed, r.Elapsed.Round(time.Millisecond), r.PerSecond)
	if r.Acked > 0 {
		fmt.Fprintf(w, "MQTT layer (device → platform PUBACK): %.0f reports/s\n", float64(r.Sent)/r.Acked.Seconds())
	}
	fmt.Fprintf(w, "bare mochi-mqtt broker: %d QoS 1 publishes: %.0f publishes/s\n", r.CeilingN, r.Ceiling)
	fmt.Fprintf(w, "ratio: %.2f\n", r.Ratio)
	printFloor(w, r, "the bare broker")
	if r.Errors > 0 {
		fmt.Fprintf(w, "errors: %d, first: %s\n", r.Errors, r.FirstError)
	}
}
