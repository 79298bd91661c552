package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/ota/pcp"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store"
)

// handleEvent is the uplink flow of docs/architecture.md for one device event. It
// returns an error when an uplink's effects (history and shadow, pushes)
// could not all be stored; the caller then keeps it for another try.
func (p *Platform) handleEvent(ctx context.Context, e transport.Event) error {
	return p.process(ctx, e, &effects{})
}

// effects records which effects of one uplink are done, so that a retry
// does only what is left (SEC-6) and nothing twice: history and shadow,
// one push per app, the codec's acknowledgement.
type effects struct {
	inbox    uint64          // the uplink's inbox entry (0: not kept there)
	consumed bool            // the inbox entry left in the report's own transaction
	counted  bool            // the uplink was counted in doze_uplinks_total
	checked  bool            // the report was checked (and its problems logged) once
	saved    bool            // history and shadow stored
	pushed   map[string]bool // app id → the report was accepted by push
	acked    bool            // the report acknowledgement went out
	notified bool            // unmapped LwM2M values were pushed as lwm2mNotification
	unmapped map[string]bool // app id → the lwm2mNotification pushes were accepted
}

// process is handleEvent resuming from fx.
func (p *Platform) process(ctx context.Context, e transport.Event, fx *effects) error {
	d, err := p.reg.GetByNodeID(ctx, e.Endpoint)
	if err != nil {
		p.logger.Info("event from an unknown endpoint dropped", "endpoint", e.Endpoint, "event", e.Kind, "err", err)
		return nil
	}
	switch e.Kind {
	case transport.EventRegistered, transport.EventUpdated:
		if p.connect(ctx, d, e) {
			if e.Kind == transport.EventRegistered {
				p.conns.note(time.Now(), "device connected", "device", d.ID, "nodeId", d.NodeID,
					"secure", e.Registration.Secure, "addr", e.Registration.Addr, "lifetime", e.Registration.Lifetime)
			}
			p.registered(ctx, d, e)
		}
	case transport.EventDeregistered:
		p.conns.note(time.Now(), "device disconnected", "device", d.ID, "nodeId", d.NodeID, "reason", e.Reason)
		p.log.Add(d.ID, "deregistered", string(e.Reason))
		p.registrationEnded(ctx, d, e.Reason)
	case transport.EventWoke:
		// The device is reachable now: queued work goes out in its window.
		// (The command engine heard of it in enqueueEvent already.)
		p.deliverDesired(ctx, d)
		if err := p.ops.DeviceWoke(ctx, d.ID); err != nil {
			p.logger.Warn("LwM2M operations wake-up", "device", d.ID, "err", err)
		}
		p.ota.DeviceOnline(ctx, d.ID)
	case transport.EventRefused:
		// The device sent data it was told is unusable (SEC-6: never
		// dropped silently); the device got the same code and text.
		p.log.Add(d.ID, "refused", fmt.Sprintf("%s %s refused with %d.%02d: %s", e.Kind, e.Path, e.Code>>5, e.Code&31, e.Message))
	case transport.EventUplink, transport.EventNotification:
		// Bind before data (docs/architecture.md "Uplink", REG-2): a device whose
		// registration was refused, or that never registered, has its
		// data dropped and logged rather than stored and pushed.
		if !d.Bound {
			p.log.Add(d.ID, "refused", fmt.Sprintf("%s from a device that is not bound dropped", e.Kind))
			return nil
		}
	}
	switch e.Kind {
	case transport.EventUplink:
		p.touch(ctx, d)
		if e.Path == mqttPropertiesPath { // MQTT JSON properties (MQT-2): no codec
			return p.mqttProperties(ctx, d, e.Payload, e.Time, fx)
		}
		return p.uplink(ctx, d, e.Endpoint, e.Payload, e.Time, fx)
	case transport.EventNotification:
		p.touch(ctx, d)
		p.notification(ctx, d, e)
		return p.mappedNotification(ctx, d, e, fx) // LWM-12
	}
	return nil
}

// connect binds the device on its first connection and marks it online
// (REG-2, REG-3). The lwm2m server already checked a DTLS device's PSK; a
// plain-CoAP device proves itself with its endpoint name, which is its
// verifyCode by default. It reports whether the device was accepted.
func (p *Platform) connect(ctx context.Context, d registry.Device, e transport.Event) bool {
	conn := registry.Connection{VerifyCode: e.Endpoint}
	if e.Registration.Secure {
		conn = registry.Connection{PSK: d.PSK}
	}
	if _, err := p.reg.Connect(ctx, d.NodeID, conn); err != nil {
		p.log.Add(d.ID, "refused", "registration not accepted: "+err.Error())
		return false
	}
	p.log.Add(d.ID, e.Kind.String(), fmt.Sprintf("lwm2m %s binding %s lifetime %s from %v",
		e.Registration.Version, e.Registration.Binding, e.Registration.Lifetime, e.Registration.Addr))
	return true
}

// touch records that the device was heard from (REG-3). LastSeen only
// needs minute precision against a 25-hour silence rule, so an ONLINE device
// is touched at most once a minute: a store write per uplink would cost a
// disk sync per report.
func (p *Platform) touch(ctx context.Context, d registry.Device) {
	now := time.Now()
	if last, ok := p.touched.Load(d.ID); ok && d.Status == registry.StatusOnline && now.Sub(last.(time.Time)) < touchEvery {
		return
	}
	if _, err := p.reg.Touch(ctx, d.ID); err != nil && !errors.Is(err, registry.ErrNotBound) {
		p.logger.Warn("touch", "device", d.ID, "err", err)
		return
	}
	p.touched.Store(d.ID, now)
}

// touchEvery is how often an ONLINE device's LastSeen is written.
const touchEvery = time.Minute

// uplink routes one payload: PCP frames to ota, the rest to the product's
// codec (COD-4, OTA-6). Its error says which effects of a report could not
// be stored; fx records those that were.
func (p *Platform) uplink(ctx context.Context, d registry.Device, endpoint string, payload []byte, at time.Time, fx *effects) error {
	if !fx.counted {
		p.metrics.uplinks.Inc()
		fx.counted = true
	}
	if len(payload) > p.cfg.MaxMessage {
		p.decodeError(d, fmt.Errorf("payload of %d bytes is over the %d-byte limit for one message (APP-2)", len(payload), p.cfg.MaxMessage))
		p.unusable(ctx, d)
		return nil
	}
	if pcp.IsPCP(payload) {
		if err := p.ota.HandleFrame(ctx, d.ID, payload); err != nil {
			p.log.Add(d.ID, "upgrade", "PCP frame refused: "+err.Error())
		}
		return nil
	}
	cd := p.products.Codec(d.Info.ManufacturerID, d.Info.Model)
	if cd == nil {
		return p.rawUplink(ctx, d, payload, at, fx) // APP-5
	}
	u, err := decodeUplink(cd, payload)
	if err != nil {
		p.decodeError(d, fmt.Errorf("decoding %X: %w", payload, err))
		p.unusable(ctx, d)
		return nil
	}
	if u.report {
		err := p.reportServices(ctx, d, u.services, at, fx)
		if !fx.acked {
			p.ackReport(d, endpoint, cd, payload)
			fx.acked = true
		}
		return err
	}
	switch m := u.msg.(type) {
	case *codec.Response:
		p.usable(ctx, d)
		body, _ := json.Marshal(m.Body)
		if err := p.cmds.Responded(ctx, d.ID, command.Response{Mid: m.Mid, ErrCode: m.Errcode, Body: body}); err != nil {
			p.logger.Warn("command response", "device", d.ID, "err", err)
		}
	}
	return nil
}

func (p *Platform) decodeError(d registry.Device, err error) {
	p.metrics.decodeErrors.Inc()
	p.log.Add(d.ID, "decode_error", err.Error())
}

// report checks a decoded report against the product model, keeps it in
// history and the shadow, and pushes it (APP-2, STO-2, STO-3, PSH-3); see
// reportServices.
func (p *Platform) report(ctx context.Context, d registry.Device, r *codec.Report, at time.Time, fx *effects) error {
	return p.reportServices(ctx, d, servicesOf(r), at, fx)
}

// reportServices checks the services of a report against the product
// model, keeps them in history and the shadow, and pushes them (APP-2,
// STO-2, STO-3, PSH-3). Each service's JSON is encoded once, before, and
// the same bytes go to history and into every push body. Services whose
// data break the model are logged and left out. It returns an error naming
// each effect that could not be stored (SEC-6); fx records those that
// were, so a retry neither doubles history nor pushes again to an app that
// has the report.
func (p *Platform) reportServices(ctx context.Context, d registry.Device, svcs []serviceReport, at time.Time, fx *effects) error {
	prod, err := p.products.catalog.Get(d.Info.ManufacturerID, d.Info.Model)
	if err != nil {
		p.decodeError(d, fmt.Errorf("product %s/%s is not in the catalog", d.Info.ManufacturerID, d.Info.Model))
		p.unusable(ctx, d)
		return nil
	}
	var (
		hist     []store.HistoryRecord
		reported = make(map[string]map[string]any, len(svcs))
		services = make([]push.ServiceData, 0, len(svcs))
		history  = p.historyApps(d)
		first    = !fx.checked
	)
	fx.checked = true
	for _, sv := range svcs {
		if err := prod.CheckReport(sv.id, sv.values); err != nil {
			if first {
				p.decodeError(d, fmt.Errorf("report of service %s does not fit the product model: %w", sv.id, err))
			}
			continue
		}
		if sv.err != nil {
			if first {
				p.decodeError(d, sv.err)
			}
			continue
		}
		for _, app := range history {
			hist = append(hist, store.HistoryRecord{DeviceID: d.ID, GatewayID: gatewayOf(d), AppID: app, ServiceID: sv.id, Data: sv.data, Time: at})
		}
		reported[sv.id] = sv.shadow
		services = append(services, push.ServiceData{ServiceID: sv.id, ServiceType: p.serviceType(d, sv.id),
			Data: sv.data, EventTime: push.FormatTime(at)})
	}
	if len(services) == 0 {
		if first {
			p.unusable(ctx, d)
		}
		return nil
	}
	if first {
		p.usable(ctx, d)
	}
	rep := push.Report{DeviceID: d.ID, GatewayID: gatewayOf(d), Services: services}
	if first {
		p.log.Add(d.ID, "uplink", fmt.Sprintf("report of %d service(s)", len(services)))
	}
	return p.keep(ctx, d, rep, hist, reported, at, fx)
}

// keep stores a report's history and shadow and its pushes to every app:
// in one transaction with its inbox entry when the outbox is in the
// platform's file, else as separate writes, skipping the effects fx says
// are done. It returns an error naming each effect not stored.
func (p *Platform) keep(ctx context.Context, d registry.Device, rep push.Report, hist []store.HistoryRecord,
	reported map[string]map[string]any, at time.Time, fx *effects) error {
	if p.outboxInStore() {
		return p.saveUplink(ctx, d, rep, hist, reported, at, fx)
	}
	var errs []error
	if !fx.saved {
		// History and shadow in one commit (STO-2, STO-3).
		if err := p.db.SaveReport(d.ID, hist, reported, at); err != nil {
			errs = append(errs, fmt.Errorf("storing the report in history and shadow: %w", err))
		} else {
			fx.saved = true
		}
	}
	if fx.pushed == nil {
		fx.pushed = map[string]bool{}
	}
	for _, app := range p.deviceApps(d) {
		if fx.pushed[app] {
			continue
		}
		// The push engine counts and logs a refusal itself (Stats.Refused).
		if _, err := p.push.PublishReport(ctx, app, rep); err != nil {
			errs = append(errs, fmt.Errorf("push of the report to app %s: %w", app, err))
			continue
		}
		fx.pushed[app] = true
	}
	if err := p.forwardReport(ctx, d, rep); err != nil { // no fx mark: a retry repeats it (forward.go)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// outboxInStore reports whether the push engine keeps its outbox in the
// platform's own file, so that a report's pushes can share the
// transaction of its history, shadow and inbox entry.
func (p *Platform) outboxInStore() bool {
	return p.push.Store() == p.db.Push()
}

// saveUplink stores everything a report causes in one transaction: history
// and shadow (STO-2, STO-3), the pushes to every app's subscribers (PSH-3)
// and the removal of the uplink from the inbox. Concurrent workers share
// the commit, so a batch of uplinks costs one disk sync. All or nothing:
// on an error the uplink stays in the inbox and a retry does it all.
func (p *Platform) saveUplink(ctx context.Context, d registry.Device, rep push.Report, hist []store.HistoryRecord,
	reported map[string]map[string]any, at time.Time, fx *effects) error {
	var msgs []push.Message
	for _, app := range p.deviceApps(d) {
		// The push engine counts and logs a refusal itself (Stats.Refused).
		m, err := p.push.ReportMessages(ctx, app, rep)
		if err != nil {
			return fmt.Errorf("push of the report to app %s: %w", app, err)
		}
		msgs = append(msgs, m...)
	}
	u := store.Uplink{DeviceID: d.ID, History: hist, Reported: reported, Time: at, Messages: msgs, Inbox: fx.inbox}
	if err := p.admitUplink(ctx, d, rep, u); err != nil { // with the rules' messages (forward.go)
		return fmt.Errorf("storing the report (history, shadow, %d pushes): %w", len(msgs), err)
	}
	fx.saved, fx.consumed = true, fx.inbox != 0
	return nil
}

// serviceReport is one service of a decoded report: its values, for the
// product model check, and its JSON, encoded once for history and every
// push body.
type serviceReport struct {
	id     string
	values map[string]any // as the codec decoded them
	shadow map[string]any // what the shadow keeps
	data   []byte         // the values as a JSON object
	err    error          // the values have no JSON form
}

// servicesOf encodes the services of a report a codec built as maps.
func servicesOf(r *codec.Report) []serviceReport {
	svcs := make([]serviceReport, len(r.Data))
	for i, sd := range r.Data {
		sv := serviceReport{id: sd.ServiceID, values: sd.ServiceData}
		sv.data, sv.err = json.Marshal(sd.ServiceData)
		if sv.err == nil {
			sv.shadow = normalize(sv.data)
		}
		svcs[i] = sv
	}
	return svcs
}

// servicesOfJSON encodes the services of a report whose values were
// decoded from JSON (an MQTT property report): they already are the plain
// values the shadow keeps (float64, string, bool, nil, []any,
// map[string]any), which encoding and decoding them again would give
// back unchanged, so the shadow takes them as they are.
func servicesOfJSON(r *codec.Report) []serviceReport {
	svcs := make([]serviceReport, len(r.Data))
	for i, sd := range r.Data {
		sv := serviceReport{id: sd.ServiceID, values: sd.ServiceData, shadow: sd.ServiceData}
		sv.data, sv.err = json.Marshal(sd.ServiceData)
		svcs[i] = sv
	}
	return svcs
}

// normalize turns a JSON object back into plain values for the shadow.
func normalize(data []byte) map[string]any {
	var m map[string]any
	json.Unmarshal(data, &m)
	return m
}

// A recordDecoder decodes into a reusable codec.Record (the declarative
// codec does): a report's services are encoded to JSON straight from the
// record, with no map built and encoded on the way.
type recordDecoder interface {
	DecodeRecord(payload []byte, r *codec.Record) error
}

var recordPool = sync.Pool{New: func() any { return new(codec.Record) }}

// uplinkMessage is an uplink payload decoded by a codec: a report's
// services, or another message.
type uplinkMessage struct {
	report   bool
	services []serviceReport // a report's
	msg      codec.Message   // any other message
}

// decodeUplink decodes payload with cd. A codec that decodes into a
// codec.Record gives a report's services straight from the record, each
// service's JSON appended to one buffer shared by the report; their values
// are what the shadow keeps, numbers as the codec decoded them (a 64-bit
// integer stays exact), arrays as []byte (written in base64). Any other
// codec builds maps, which are encoded here.
func decodeUplink(cd codec.Codec, payload []byte) (uplinkMessage, error) {
	rd, ok := cd.(recordDecoder)
	if !ok {
		m, err := cd.Decode(payload)
		if r, ok := m.(*codec.Report); ok && err == nil {
			return uplinkMessage{report: true, services: servicesOf(r)}, nil
		}
		return uplinkMessage{msg: m}, err
	}
	rec := recordPool.Get().(*codec.Record)
	defer recordPool.Put(rec)
	if err := rd.DecodeRecord(payload, rec); err != nil {
		return uplinkMessage{}, err
	}
	if rec.Type() != codec.MsgReport {
		return uplinkMessage{msg: rec.Build()}, nil
	}
	n := rec.Services()
	svcs := make([]serviceReport, n)
	ends := make([]int, n)
	buf := make([]byte, 0, 32+16*rec.Len())
	for j := range n {
		vals := map[string]any{}
		rec.ServiceValues(vals, j)
		svcs[j] = serviceReport{id: rec.ServiceID(j), values: vals, shadow: vals}
		buf, svcs[j].err = rec.AppendServiceJSON(buf, j)
		ends[j] = len(buf)
	}
	start := 0
	for j := range svcs {
		if svcs[j].err == nil {
			svcs[j].data = buf[start:ends[j]:ends[j]]
		}
		start = ends[j]
	}
	return uplinkMessage{report: true, services: svcs}, nil
}

// ackReport sends the codec's report acknowledgement, when it has one
// (COD-4: "add response field"), right after the report. It runs on its
// own goroutine: the device's ACK of it may take a retransmission or two.
//
// It is a downlink of its own, not the payload of the device's ACK: the
// ACK of a notification (/19/0/0, TUP /t/d) is Empty (RFC 7252 §4.2, RFC
// 7641 §4.5), and the 2.04 of an LwM2M Send has no payload an LwM2M client
// hands to its application, which takes application data from writes of
// /19/1/0 (LWM-5); a TUP device takes them from a POST to /t/d (LWM-4).
// The original platform sends it the same way.
func (p *Platform) ackReport(d registry.Device, endpoint string, cd codec.Codec, payload []byte) {
	ack, err := cd.Encode(&codec.ReportAck{Identifier: "0", MsgType: codec.MsgReportAck, Request: payload})
	if errors.Is(err, codec.ErrNoAck) {
		return
	}
	if err != nil {
		p.log.Add(d.ID, "encode_error", "report acknowledgement: "+err.Error())
		return
	}
	p.background(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		send := p.lwm.Downlink
		if isMQTT(d) { // on …/sys/messages/down (MQT-2)
			send = func(ctx context.Context, _ string, b []byte) error { return p.mq.Send(ctx, d.ID, b) }
		}
		if err := send(ctx, endpoint, ack); err != nil {
			p.log.Add(d.ID, "ack", "report acknowledgement not delivered: "+err.Error())
		}
	})
}

// notification handles observed values other than the data channel: the
// firmware-update State and Update Result of object 5, notified or sent
// with LwM2M Send (path "/dp").
func (p *Platform) notification(ctx context.Context, d registry.Device, e transport.Event) {
	var which func(context.Context, string, int)
	path := strings.TrimSuffix(e.Path, "/")
	switch path {
	case "/5/0/3":
		which = p.ota.FirmwareState
	case "/5/0/5":
		which = p.ota.FirmwareResult
	case "/dp":
		p.firmwareSend(ctx, d, e)
		return
	default:
		return
	}
	v := firmwareValue(transport.Content{Format: e.ContentFormat, Payload: e.Payload}, path)
	if v == ota.FwUnknown {
		p.log.Add(d.ID, "upgrade", fmt.Sprintf("object 5 notification on %s not understood: content format %d, %d bytes %X",
			e.Path, e.ContentFormat, len(e.Payload), e.Payload))
		return
	}
	which(ctx, d.ID, v)
}

// historyApps returns the apps that keep d's history (STO-2): its owner
// when its history switch is on (APP-3). Records are marked with the
// app's id.
func (p *Platform) historyApps(d registry.Device) []string {
	if a, ok := p.auth.App(d.AppID); ok && d.AppID != "" && a.HistoryEnabled {
		return []string{a.ID}
	}
	return nil
}

// Uplinks whose effects could not all be stored stay in the inbox and are
// tried again on their device's worker after a backoff (SEC-6). At most
// maxHeldRetries wait in memory; beyond that an uplink waits in the inbox
// for the next start, which replays it.
const (
	maxHeldRetries = 4096
	retryFirst     = time.Second
	retryMax       = 5 * time.Minute
)

// retryDelay is the wait before try n+1 of an uplink after n failed tries:
// retryFirst doubling up to retryMax.
func retryDelay(tries int) time.Duration {
	d := retryFirst
	for i := 1; i < tries && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// retryQueue holds the uplinks waiting for another try, each with its
// due time.
type retryQueue struct {
	mu   sync.Mutex
	held []queuedEvent
}

// failed counts and logs a try of q that left effects unstored, and holds
// q for another try. The uplink stays in the inbox either way.
func (p *Platform) failed(q queuedEvent, err error) {
	p.metrics.uplinkFailures.Inc()
	q.tries++
	q.due = time.Now().Add(retryDelay(q.tries))
	rq := &p.retries
	rq.mu.Lock()
	held := len(rq.held) < maxHeldRetries
	if held {
		rq.held = append(rq.held, q)
	}
	rq.mu.Unlock()
	where := "it stays in the inbox and is tried again"
	if !held {
		where = fmt.Sprintf("%d uplinks already wait for a retry: it stays in the inbox until the next start", maxHeldRetries)
		if q.inbox == 0 {
			where = fmt.Sprintf("%d uplinks already wait for a retry and it is not in the inbox: it is dropped", maxHeldRetries)
		}
	}
	p.logger.Error("uplink effects not stored; "+where, "endpoint", q.e.Endpoint, "inbox", q.inbox,
		"try", q.tries, "retryAt", q.due, "err", err)
}

// takeDue removes and returns the held uplinks due at now, oldest first.
func (rq *retryQueue) takeDue(now time.Time) []queuedEvent {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	var due []queuedEvent
	kept := rq.held[:0]
	for _, q := range rq.held {
		if q.due.After(now) {
			kept = append(kept, q)
		} else {
			due = append(due, q)
		}
	}
	clear(rq.held[len(kept):])
	rq.held = kept
	return due
}

// retryUplinks hands the uplinks due at now back to their workers.
func (p *Platform) retryUplinks(now time.Time) {
	for _, q := range p.retries.takeDue(now) {
		p.enqueue(q)
	}
}

// runRetries retries held uplinks as they come due, until ctx ends.
func (p *Platform) runRetries(ctx context.Context) error {
	t := time.NewTicker(retryFirst)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			p.retryUplinks(now)
		}
	}
}
