package main

// MQTT devices (MQT-1…MQT-5): the embedded broker of package mqtt wired
// to the registry, the uplink pipeline and the command engine.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/internal/apitime"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/mqtt"
	"github.com/doze-io/doze/registry"
	"github.com/prometheus/client_golang/prometheus"
)

// Paths that mark an MQTT uplink in the inbox and the event pipeline; no
// LwM2M path starts with "mqtt:".
const (
	mqttPropertiesPath = "mqtt:properties" // JSON property report: checked against the model, no codec
	mqttMessagePath    = "mqtt:message"    // binary: decoded by the product's codec
)

// newMQTT builds the broker from the config; it opens nothing.
func (p *Platform) newMQTT() (*mqtt.Server, error) {
	cfg := mqtt.Config{Addr: p.cfg.MQTTAddr, TLSAddr: p.cfg.MQTTSAddr, MaxPayload: p.cfg.MaxMessage,
		MaxRate: p.cfg.MQTTRate, Logger: p.logger.With("pkg", "mqtt")}
	if p.cfg.TLSCert != "" && p.cfg.MQTTSAddr != "off" {
		cert, err := tls.LoadX509KeyPair(p.cfg.TLSCert, p.cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("MQTT over TLS (-mqtts): %w", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return mqtt.New(mqttDevices{p}, mqttHandler{p: p, adds: new(sync.Mutex), subReports: p.newBatchCounter()}, cfg)
}

// listenMQTT opens the MQTT listeners. A default port that is taken (a
// Mosquitto already on 1883) is logged and skipped, naming the flag that
// moves it: the platform still serves everything else. An address the
// operator chose must open.
func (p *Platform) listenMQTT() error {
	err := p.mq.Listen()
	var fatal []error
	for _, e := range unjoin(err) {
		le, ok := errors.AsType[*mqtt.ListenError](e)
		switch {
		case ok && le.Listener == "tcp" && le.Addr == mqtt.DefaultAddr:
			p.logger.Warn("MQTT listener not started: its default address is taken; set -mqtt to another address, or -mqtt off", "addr", le.Addr, "err", le.Err)
		case ok && le.Listener == "tls" && le.Addr == mqtt.DefaultTLSAddr:
			p.logger.Warn("MQTT over TLS listener not started: its default address is taken; set -mqtts to another address, or -mqtts off", "addr", le.Addr, "err", le.Err)
		default:
			fatal = append(fatal, e)
		}
	}
	return errors.Join(fatal...)
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// runMQTT serves MQTT devices until ctx ends. Devices the registry still
// counts as connected from before a restart are disconnected first: their
// connections died with the old process.
func (p *Platform) runMQTT(ctx context.Context) error {
	devs, _, err := p.reg.List(ctx, registry.Query{})
	if err != nil {
		return err
	}
	for _, d := range devs {
		if d.Connected && (d.Security == registry.SecuritySecret || d.GatewayID != "") {
			if _, err := p.reg.Disconnect(ctx, d.ID); err != nil {
				p.logger.Warn("MQTT device left connected by the last run", "device", d.ID, "err", err)
			}
		}
	}
	return p.mq.Run(ctx)
}

// mqttDevices authenticates MQTT clients against the registry (MQT-1).
type mqttDevices struct{ p *Platform }

var (
	_ mqtt.Devices    = mqttDevices{}
	_ mqtt.SubDevices = mqttDevices{}
)

// Authenticate finds the device by deviceId or nodeId and connects it with
// the secret: the registry compares the secret's hash in constant time,
// binds the device on its first connection and keeps it ONLINE while
// connected (REG-2, REG-3). A name that is no device is
// mqtt.ErrUnknownDevice, a refused secret an *mqtt.AuthError: the broker
// limits failures per device and per source address. A refusal goes into
// the device's log at most once per refusalLogEvery (refusalLog).
func (m mqttDevices) Authenticate(ctx context.Context, username, password string) (mqtt.Device, error) {
	d, err := m.p.reg.Get(ctx, username)
	if err != nil {
		d, err = m.p.reg.GetByNodeID(ctx, username)
	}
	if errors.Is(err, registry.ErrNotFound) {
		return mqtt.Device{}, fmt.Errorf("%w: %v", mqtt.ErrUnknownDevice, err)
	}
	if err != nil {
		return mqtt.Device{}, err
	}
	if _, err := m.p.reg.Connect(ctx, d.NodeID, registry.Connection{Secret: password, Persistent: true}); err != nil {
		if msg := m.p.mqttRefusals.note(time.Now(), d.ID, "MQTT connection refused: "+err.Error()); msg != "" {
			m.p.log.Add(d.ID, "refused", msg)
		}
		return mqtt.Device{}, &mqtt.AuthError{DeviceID: d.ID, NodeID: d.NodeID, Err: err}
	}
	return mqtt.Device{ID: d.ID, NodeID: d.NodeID, Gateway: d.NodeType == registry.Gateway}, nil
}

// refusalLogEvery is how often at most a device's log gets a "refused"
// entry for its MQTT connections; maxRefusalLogs bounds the devices
// remembered.
const (
	refusalLogEvery = time.Minute
	maxRefusalLogs  = 100_000
)

// refusalLog keeps refused connections from flushing a device's log
// (anyone who knows a nodeId can send a wrong secret): one entry per
// device per refusalLogEvery; the refusals in between are counted and
// named in the next entry. The zero value is ready.
type refusalLog struct {
	mu sync.Mutex
	m  map[string]*refusals
}

type refusals struct {
	next  time.Time // no entry before
	since time.Time // the last entry
	n     int       // refusals not written since
}

// note records a refusal of the device at now and returns the entry to
// write, or "" when one was written less than refusalLogEvery ago.
func (r *refusalLog) note(now time.Time, deviceID, msg string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]*refusals{}
	}
	e := r.m[deviceID]
	if e == nil {
		if len(r.m) >= maxRefusalLogs {
			for k, old := range r.m {
				if old.n == 0 && !now.Before(old.next) {
					delete(r.m, k)
				}
			}
			if len(r.m) >= maxRefusalLogs {
				return msg // remembering nothing more: every refusal is written
			}
		}
		e = &refusals{}
		r.m[deviceID] = e
	}
	if now.Before(e.next) {
		e.n++
		return ""
	}
	if e.n > 0 {
		msg += fmt.Sprintf(" (and %d more refused since %s, not written one by one)", e.n, e.since.UTC().Format(time.RFC3339))
	}
	e.next, e.since, e.n = now.Add(refusalLogEvery), now, 0
	return msg
}

func (m mqttDevices) SubDevice(ctx context.Context, gatewayID, deviceID string) bool {
	d, err := m.p.reg.Get(ctx, deviceID)
	return err == nil && d.GatewayID == gatewayID
}

// mqttHandler takes MQTT devices' messages into the platform.
type mqttHandler struct {
	p    *Platform
	adds *sync.Mutex // sub-device adds of gateways, one at a time (mqtt_events.go)
	// subReports counts the entries of gateways' batch reports by
	// outcome (mqtt_batch.go).
	subReports *prometheus.CounterVec
}

var _ mqtt.Handler = mqttHandler{}

// Message keeps a report in the inbox, synced, before the broker sends
// its PUBACK (SEC-6), then the report takes the same pipeline as a CoAP
// uplink. Command responses settle their command at once.
func (h mqttHandler) Message(m mqtt.Message) error {
	p := h.p
	ctx := context.Background()
	switch m.Kind {
	case mqtt.KindEvent:
		return h.mqttEvents(ctx, m)
	case mqtt.KindSubDeviceReports:
		return h.mqttSubDeviceReports(ctx, m)
	}
	d, err := p.reg.Get(ctx, m.DeviceID)
	if err != nil {
		return fmt.Errorf("%w: %v", mqtt.ErrRefused, err)
	}
	if m.Via.ID != d.ID && (!d.Bound || !d.Connected) {
		// A gateway reports for its sub-device (MQT-5): the first report
		// binds it, and it is ONLINE while the gateway is connected.
		if d, err = p.reg.ConnectVia(ctx, d.ID, m.Via.ID); err != nil {
			p.log.Add(m.DeviceID, "refused", "report through gateway "+m.Via.ID+" refused: "+err.Error())
			return fmt.Errorf("%w: %v", mqtt.ErrRefused, err)
		}
	}
	switch m.Kind {
	case mqtt.KindProperties:
		if _, _, err := parseProperties(m.Payload); err != nil {
			p.decodeError(d, err)
			return fmt.Errorf("%w: %v", mqtt.ErrRefused, err)
		}
		return p.acceptUplink(transport.Event{Kind: transport.EventUplink, Endpoint: d.NodeID, Path: mqttPropertiesPath, Payload: m.Payload, Time: m.Time})
	case mqtt.KindMessage:
		return p.acceptUplink(transport.Event{Kind: transport.EventUplink, Endpoint: d.NodeID, Path: mqttMessagePath, Payload: m.Payload, Time: m.Time})
	case mqtt.KindCommandResponse:
		return p.mqttResponse(ctx, d, m.RequestID, m.Payload)
	}
	return fmt.Errorf("%w: unknown message kind %v", mqtt.ErrRefused, m.Kind)
}

func (h mqttHandler) Connected(d mqtt.Device) {
	h.p.log.Add(d.ID, "connected", "MQTT connection")
	for _, sub := range h.p.subDevices(d) {
		if _, err := h.p.reg.ConnectVia(context.Background(), sub.ID, d.ID); err != nil {
			h.p.logger.Warn("MQTT sub-device not connected through its gateway", "device", sub.ID, "gateway", d.ID, "err", err)
		}
	}
}

// subDevices lists the devices behind a gateway (MQT-5); none for an
// endpoint.
func (p *Platform) subDevices(d mqtt.Device) []registry.Device {
	if !d.Gateway {
		return nil
	}
	subs, _, err := p.reg.List(context.Background(), registry.Query{GatewayID: d.ID})
	if err != nil {
		p.logger.Warn("MQTT gateway's sub-devices", "gateway", d.ID, "err", err)
	}
	return subs
}

// Listening: the device subscribed to its commands; it is reachable at
// all times while connected (MQT-3), so its commands go out at once.
func (h mqttHandler) Listening(d mqtt.Device) {
	p := h.p
	ctx := context.Background()
	ids := []string{d.ID}
	for _, sub := range p.subDevices(d) { // their commands go through the gateway (MQT-5)
		ids = append(ids, sub.ID)
	}
	for _, id := range ids {
		p.mqttReachable(ctx, id)
	}
}

// Disconnected: the device goes OFFLINE after the disconnect grace unless
// it connects again (MQT-3, REG-3); deviceInfoChanged is pushed then.
func (h mqttHandler) Disconnected(d mqtt.Device, err error) {
	p := h.p
	reason := "clean disconnect"
	if err != nil {
		reason = err.Error()
	}
	p.log.Add(d.ID, "disconnected", "MQTT connection closed: "+reason)
	ids := []string{d.ID}
	for _, sub := range p.subDevices(d) {
		if sub.Connected {
			ids = append(ids, sub.ID)
		}
	}
	for _, id := range ids {
		if _, err := p.reg.Disconnect(context.Background(), id); err != nil {
			p.logger.Warn("MQTT disconnect", "device", id, "err", err)
		}
	}
}

// propertiesReport is the JSON property report of MQT-2.
type propertiesReport struct {
	Services []struct {
		ServiceID  string         `json:"service_id"`
		Properties map[string]any `json:"properties"`
		EventTime  string         `json:"event_time"`
	} `json:"services"`
}

// parseProperties reads a JSON property report into a codec report and
// its event time (zero when the report gives none).
func parseProperties(b []byte) (*codec.Report, time.Time, error) {
	var pr propertiesReport
	if err := json.Unmarshal(b, &pr); err != nil {
		return nil, time.Time{}, fmt.Errorf(`property report is not {"services":[{"service_id","properties":{…},"event_time"?}]}: %w`, err)
	}
	if len(pr.Services) == 0 {
		return nil, time.Time{}, errors.New(`property report has no services: "services" must hold at least one {"service_id","properties"}`)
	}
	r := &codec.Report{MsgType: codec.MsgReport}
	var at time.Time
	for i, s := range pr.Services {
		if s.ServiceID == "" || s.Properties == nil {
			return nil, time.Time{}, fmt.Errorf("property report: services[%d] needs a service_id and a properties object", i)
		}
		if s.EventTime != "" {
			t, err := apitime.Parse(s.EventTime)
			if err != nil {
				return nil, time.Time{}, fmt.Errorf("property report: services[%d].event_time %q is not yyyyMMdd'T'HHmmss'Z' (UTC): %v", i, s.EventTime, err)
			}
			if at.IsZero() {
				at = t
			}
		}
		r.Data = append(r.Data, codec.ServiceData{ServiceID: s.ServiceID, ServiceData: s.Properties})
	}
	return r, at, nil
}

// mqttProperties takes a JSON property report through the report
// pipeline: checked against the product model (PRF-8), then history,
// shadow and pushes as a decoded CoAP report.
func (p *Platform) mqttProperties(ctx context.Context, d registry.Device, payload []byte, at time.Time, fx *effects) error {
	if !fx.counted {
		p.metrics.uplinks.Inc()
		fx.counted = true
	}
	r, t, err := parseProperties(payload)
	if err != nil { // refused before it was kept; a replayed bad one is logged again
		p.decodeError(d, err)
		return nil
	}
	if !t.IsZero() {
		at = t
	}
	return p.reportServices(ctx, d, servicesOfJSON(r), at, fx)
}

// mqttResponse settles the command a device answered on
// …/commands/response/request_id={id}: result_code 0 is SUCCESSFUL,
// anything else FAILED; paras become the command's result (MQT-3).
func (p *Platform) mqttResponse(ctx context.Context, d registry.Device, requestID string, payload []byte) error {
	var resp struct {
		ResultCode   *int            `json:"result_code"`
		ResponseName string          `json:"response_name"`
		Paras        json.RawMessage `json:"paras"`
	}
	if err := json.Unmarshal(payload, &resp); err != nil || resp.ResultCode == nil {
		err := fmt.Errorf(`command response to %s is not {"result_code":0,"response_name"?,"paras"?:{…}}: %v`, requestID, err)
		p.log.Add(d.ID, "decode_error", err.Error())
		return fmt.Errorf("%w: %v", mqtt.ErrRefused, err)
	}
	c, err := p.cmds.Get(ctx, requestID)
	if err == nil && c.DeviceID != d.ID && d.NodeType == registry.Gateway {
		// A gateway answers for its sub-device on its own topic (MQT-5).
		if sub, e := p.reg.Get(ctx, c.DeviceID); e == nil && sub.GatewayID == d.ID {
			d = sub
		}
	}
	if err != nil || c.DeviceID != d.ID {
		err := fmt.Errorf("command response names request_id %s, which is no command of device %s", requestID, d.ID)
		p.log.Add(d.ID, "refused", err.Error())
		return fmt.Errorf("%w: %v", mqtt.ErrRefused, err)
	}
	body := resp.Paras
	if len(body) == 0 || string(body) == "null" {
		body = nil
	}
	return p.cmds.Responded(ctx, d.ID, command.Response{Mid: c.Mid(), ErrCode: *resp.ResultCode, Body: body})
}

// mqttTransmit sends a command to an MQTT device on
// …/sys/commands/request_id={commandId}, a sub-device's on its gateway's
// topic with object_device_id naming it (MQT-5): SENT when it leaves, DELIVERED
// when the device's PUBACK arrives (MQT-3). A device that is not
// connected and subscribed keeps the command waiting.
func (p *Platform) mqttTransmit(ctx context.Context, d registry.Device, c command.Command, left func()) error {
	payload, err := json.Marshal(map[string]any{"object_device_id": d.ID, "service_id": c.Body.ServiceID,
		"command_name": c.Body.Method, "paras": c.Body.Paras})
	if err != nil {
		return fmt.Errorf("%w: %v", command.ErrEncode, err)
	}
	link := mqttLink(d)
	if !p.mq.Connected(link) {
		return fmt.Errorf("%w: MQTT device %s is not connected", mqtt.ErrNotSubscribed, link)
	}
	if offlineBehindGateway(d) {
		return fmt.Errorf("%w: sub-device %s is OFFLINE (its gateway %s said so): the command waits until it is ONLINE", mqtt.ErrNotSubscribed, d.ID, d.GatewayID)
	}
	left()
	return p.mq.Command(ctx, link, c.ID, payload)
}

// offlineBehindGateway reports whether d is a sub-device that is OFFLINE
// while its gateway is connected: the gateway said so
// (sub_device_update_status), and commands wait until it says ONLINE or the
// sub-device reports again, rather than go down to a device the gateway
// cannot reach.
func offlineBehindGateway(d registry.Device) bool {
	return d.GatewayID != "" && d.Status == registry.StatusOffline
}

// viaMQTT reports whether d's traffic goes over MQTT: it connects itself,
// or it sits behind an MQTT gateway (MQT-5).
func (p *Platform) viaMQTT(ctx context.Context, d registry.Device) bool {
	if isMQTT(d) {
		return true
	}
	if d.GatewayID == "" {
		return false
	}
	gw, err := p.reg.Get(ctx, d.GatewayID)
	return err == nil && isMQTT(gw)
}

// isMQTT reports whether the device connects over MQTT.
func isMQTT(d registry.Device) bool {
	return d.Security == registry.SecuritySecret
}
