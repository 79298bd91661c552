package main

// A gateway reports for many of its sub-devices in one message (MQT-5):
// $oc/devices/{gatewayId}/sys/gateway/sub_devices/properties/report, read
// by package mqtt's ParseSubDeviceReports. Each entry that can be taken
// becomes the sub-device's own property report and takes the pipeline of
// one sent on $oc/devices/{sub-device}/sys/properties/report: kept in the
// inbox before the PUBACK, then checked against the sub-device's product
// model, stored in history and the shadow and pushed with its deviceId.

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/mqtt"
	"github.com/doze-io/doze/registry"
)

// Why an entry of a batch report was not taken: the label of
// doze_mqtt_sub_device_reports_total and the code in the gateway's device
// log. "kept" counts the entries taken.
const (
	batchKept          = "kept"
	batchInvalidEntry  = "invalid_entry"      // device_id or services missing or malformed
	batchNotFound      = "device_not_found"   // no device with that device_id
	batchNotBehind     = "not_behind_gateway" // another gateway's device, or one behind none
	batchNotConnected  = "not_connected"      // the sub-device could not be connected through the gateway (binding timeout passed, …)
	batchInvalidReport = "invalid_report"     // the services are not a property report (service_id, properties, event_time)
	batchTooLarge      = "too_large"          // the entry's report is over maxMessage, the bound of one report
)

// batchWriters bounds the inbox writes of one batch report done at once:
// concurrent writes share one disk sync (the store's group commit).
const batchWriters = 16

// newBatchCounter is doze_mqtt_sub_device_reports_total, registered with
// the platform's metrics.
func (p *Platform) newBatchCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "doze_mqtt_sub_device_reports_total",
		Help: "Entries of MQTT gateways' batch sub-device reports, by outcome: kept, or why not (invalid_entry, device_not_found, not_behind_gateway, not_connected, invalid_report, too_large)."},
		[]string{"outcome"})
	for _, o := range []string{batchKept, batchInvalidEntry, batchNotFound, batchNotBehind, batchNotConnected, batchInvalidReport, batchTooLarge} {
		c.WithLabelValues(o)
	}
	p.metrics.reg.MustRegister(c)
	return c
}

// mqttSubDeviceReports takes a gateway's batch report. Entries that cannot
// be taken are refused one by one, each logged on the gateway's device log
// with its index, device_id, a code and the reason, and counted; the
// others are kept. The message is acknowledged once every entry taken is
// in the inbox; a store failure leaves it unacknowledged, so the gateway
// sends it again (at least once, as any QoS 1 report). A message that
// cannot be read at all, or of which no entry can be taken, is refused
// whole (MQTT 5: PUBACK 0x99 with the reason).
func (h mqttHandler) mqttSubDeviceReports(ctx context.Context, m mqtt.Message) error {
	p, gw := h.p, m.Via
	refuse := func(err error) error {
		p.log.Add(gw.ID, "refused", "sub-device report refused: "+err.Error())
		return fmt.Errorf("%w: %v", mqtt.ErrRefused, err)
	}
	switch {
	case m.DeviceID != gw.ID:
		return refuse(fmt.Errorf("batch reports go on the gateway's own topic $oc/devices/%s/sys/gateway/sub_devices/properties/report", gw.ID))
	case !gw.Gateway:
		return refuse(errors.New("only a device of nodeType GATEWAY reports for sub-devices; this one is an ENDPOINT"))
	}
	entries, err := mqtt.ParseSubDeviceReports(m.Payload)
	if err != nil {
		return refuse(err)
	}
	var (
		keep  []transport.Event
		first string // the first refusal, for a message refused whole
	)
	for _, e := range entries {
		ev, code, why, err := h.batchEntry(ctx, gw, e, m)
		if err != nil {
			p.logger.Error("sub-device report not kept; not acknowledged", "gateway", gw.ID, "device", e.DeviceID, "err", err)
			return err
		}
		if code != "" {
			h.subReports.WithLabelValues(code).Inc()
			msg := fmt.Sprintf("devices[%d] (device_id %q): %s: %s", e.Index, e.DeviceID, code, why)
			p.log.Add(gw.ID, "refused", "sub-device report "+msg)
			if first == "" {
				first = msg
			}
			continue
		}
		keep = append(keep, ev)
	}
	if len(keep) == 0 {
		return refuse(fmt.Errorf("no entry of the sub-device report was taken; %s", first))
	}
	if err := p.acceptUplinks(keep); err != nil {
		return err
	}
	h.subReports.WithLabelValues(batchKept).Add(float64(len(keep)))
	return nil
}

// batchEntry checks one entry of a batch report and returns the uplink it
// becomes, or the code and reason it is refused with. An error is a store
// failure.
func (h mqttHandler) batchEntry(ctx context.Context, gw mqtt.Device, e mqtt.SubDeviceReport, m mqtt.Message) (ev transport.Event, code, why string, err error) {
	p := h.p
	if e.Err != nil {
		return ev, batchInvalidEntry, e.Err.Field + ": " + e.Err.Rule, nil
	}
	d, err := p.reg.Get(ctx, e.DeviceID)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return ev, batchNotFound, "no device " + e.DeviceID, nil
	case err != nil:
		return ev, "", "", err
	case d.ID != gw.ID && d.GatewayID != gw.ID:
		return ev, batchNotBehind, "device " + d.ID + " is not a sub-device of gateway " + gw.ID, nil
	}
	if d.ID != gw.ID && (!d.Bound || !d.Connected) {
		// As a report on the sub-device's own topic: the first binds it,
		// and it is ONLINE while the gateway is connected.
		var fe *registry.FieldError
		if d, err = p.reg.ConnectVia(ctx, d.ID, gw.ID); errors.As(err, &fe) {
			p.log.Add(e.DeviceID, "refused", "report through gateway "+gw.ID+" refused: "+err.Error())
			return ev, batchNotConnected, err.Error(), nil
		} else if err != nil {
			return ev, "", "", err
		}
	}
	if len(e.Report) > p.cfg.MaxMessage {
		return ev, batchTooLarge, fmt.Sprintf("the entry's report is %d bytes, over %d (maxMessage, the bound of one report)", len(e.Report), p.cfg.MaxMessage), nil
	}
	if _, _, err := parseProperties(e.Report); err != nil {
		p.decodeError(d, err)
		return ev, batchInvalidReport, err.Error(), nil
	}
	return transport.Event{Kind: transport.EventUplink, Endpoint: d.NodeID, Path: mqttPropertiesPath, Payload: e.Report, Time: m.Time}, "", "", nil
}

// acceptUplinks keeps several uplinks as acceptUplink keeps one, writing
// them concurrently (at most batchWriters at once) so that they share disk
// syncs; one device's uplinks are kept and handed on in their order. An
// error names every uplink not kept; those kept are processed all the
// same.
func (p *Platform) acceptUplinks(es []transport.Event) error {
	var order []string
	byDevice := map[string][]transport.Event{}
	for _, e := range es {
		if _, ok := byDevice[e.Endpoint]; !ok {
			order = append(order, e.Endpoint)
		}
		byDevice[e.Endpoint] = append(byDevice[e.Endpoint], e)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, batchWriters)
	)
	for _, ep := range order {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for _, e := range byDevice[ep] {
				if err := p.acceptUplink(e); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return // the device's later ones would overtake it
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
