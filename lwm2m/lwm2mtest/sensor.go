package lwm2mtest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Sensor is an IPSO temperature sensor, object 3303 instance 0, that a
// Device serves when DeviceConfig.Sensor is set (list </3303/0> in
// DeviceConfig.Links): 5700 Sensor Value (Float, R), 5701 Sensor Units
// (String, R) and 5750 Application Type (String, RW).
//
// It takes the single-path operations (GET with or without Observe, PUT of
// 5750) and the composite operations of OMA LwM2M 1.1 as TS Transport
// §6.4 and RFC 8132 write them, and is strict about their bodies:
//
//   - Read-Composite: FETCH on the root path, Content-Format SenML JSON
//     (110) or SenML CBOR (112) (else 4.15), a pack of records that carry
//     only a name (bn/n; a record with a value gets 4.00), every name a
//     path of 3303 instance 0 it serves (else 4.04), Accept 110 or 112 or
//     none (else 4.06). The answer: the values, each record with its full
//     name, in the Accept format (or the request's).
//   - Observe-Composite: the same FETCH with Observe 0 keeps the paths
//     under the token; Observe 1 with that token (and the same body)
//     cancels it. NotifyComposite sends a notification of it.
//   - Write-Composite: iPATCH on the root path, 110 or 112, each record a
//     resource name with exactly one value of the resource's type (else
//     4.00); a resource that is not writable gets 4.05, an unknown one
//     4.04; nothing is written unless every record is good.
//
// SenML is read and written here by hand (JSON) and with fxamacker/cbor
// (CBOR, RFC 8428 §6 labels), not with this module's lwm2m package, so
// that the server is checked against the standard rather than against
// its own encoder.
type Sensor struct {
	mu      sync.Mutex
	value   float64
	units   string
	appType string
}

// NewSensor returns a sensor reading value in units.
func NewSensor(value float64, units string) *Sensor {
	return &Sensor{value: value, units: units, appType: "indoor"}
}

// Set changes the Sensor Value.
func (s *Sensor) Set(v float64) {
	s.mu.Lock()
	s.value = v
	s.mu.Unlock()
}

// AppType returns the Application Type (5750) last written.
func (s *Sensor) AppType() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appType
}

// sensorRes are the resources of the sensor: id → writable, type.
var sensorRes = map[string]struct {
	writable bool
	float    bool
}{
	"5700": {false, true}, "5701": {false, false}, "5750": {true, false},
}

// senmlRecord is one record of a pack read by the sensor: the resolved
// name and which value fields it has.
type senmlRecord struct {
	name   string
	fields []string // the value fields present: v, vs, vb, vd
	num    float64
	str    string
}

const (
	cfSenMLJSON = 110 // message.AppSenmlJSON
	cfSenMLCBOR = 112 // message.AppSenmlCbor
)

// parsePack reads a SenML pack in cf (110 or 112): bn carries to the next
// records (RFC 8428 §4.5.1); the name of each record is bn + n.
func parsePack(cf int, b []byte) ([]senmlRecord, error) {
	var raw []map[string]any
	switch cf {
	case cfSenMLJSON:
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("SenML JSON: %v", err)
		}
	case cfSenMLCBOR:
		var recs []map[int]any
		if err := cbor.Unmarshal(b, &recs); err != nil {
			return nil, fmt.Errorf("SenML CBOR: %v", err)
		}
		labels := map[int]string{-2: "bn", 0: "n", 2: "v", 3: "vs", 4: "vb", 8: "vd", -1: "bver", 1: "u", 6: "t", -3: "bt"}
		for i, r := range recs {
			m := map[string]any{}
			for k, v := range r {
				name, ok := labels[k]
				if !ok {
					return nil, fmt.Errorf("SenML CBOR: record %d: label %d is not one LwM2M uses", i, k)
				}
				m[name] = v
			}
			raw = append(raw, m)
		}
	default:
		return nil, fmt.Errorf("content format %d is not SenML JSON (110) or SenML CBOR (112)", cf)
	}
	var out []senmlRecord
	bn := ""
	for i, r := range raw {
		if v, ok := r["bn"]; ok {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("record %d: bn is not a string", i)
			}
			bn = s
		}
		n := ""
		if v, ok := r["n"]; ok {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("record %d: n is not a string", i)
			}
			n = s
		}
		rec := senmlRecord{name: bn + n}
		for _, k := range []string{"v", "vs", "vb", "vd"} {
			v, ok := r[k]
			if !ok {
				continue
			}
			rec.fields = append(rec.fields, k)
			switch x := v.(type) {
			case float64:
				rec.num = x
			case uint64:
				rec.num = float64(x)
			case int64:
				rec.num = float64(x)
			case string:
				rec.str = x
			}
		}
		for k := range r {
			switch k {
			case "bn", "n", "v", "vs", "vb", "vd":
			default:
				return nil, fmt.Errorf("record %d: field %q has no place in an LwM2M composite request", i, k)
			}
		}
		out = append(out, rec)
	}
	return out, nil
}

// sensorPaths returns the resources of 3303/0 a name covers: the instance
// gives all three, a resource itself; anything else is not served.
func sensorPaths(name string) ([]string, bool) {
	if name == "/3303/0" || name == "/3303/0/" {
		return []string{"5700", "5701", "5750"}, true
	}
	id, ok := strings.CutPrefix(name, "/3303/0/")
	if _, known := sensorRes[id]; !ok || !known {
		return nil, false
	}
	return []string{id}, true
}

// valuesPack encodes the sensor's resources ids as a pack in cf, each
// record with its full name.
func (s *Sensor) valuesPack(cf int, ids []string) ([]byte, error) {
	s.mu.Lock()
	vals := map[string]any{"5700": s.value, "5701": s.units, "5750": s.appType}
	s.mu.Unlock()
	if cf == cfSenMLCBOR {
		recs := make([]map[int]any, len(ids))
		for i, id := range ids {
			r := map[int]any{0: "/3303/0/" + id}
			if f, ok := vals[id].(float64); ok {
				r[2] = f
			} else {
				r[3] = vals[id]
			}
			recs[i] = r
		}
		return cbor.Marshal(recs)
	}
	recs := make([]map[string]any, len(ids))
	for i, id := range ids {
		r := map[string]any{"n": "/3303/0/" + id}
		if f, ok := vals[id].(float64); ok {
			r["v"] = f
		} else {
			r["vs"] = vals[id]
		}
		recs[i] = r
	}
	return json.Marshal(recs)
}

// compositeObs is the server's Observe-Composite: its paths and format.
type compositeObs struct {
	token []byte
	ids   []string
	cf    int
	seq   uint32
}

// sensor answers a request for the sensor: single-path operations on
// /3303/0/…, FETCH and iPATCH on the root path.
func (d *Device) sensor(m *message.Message, path string, cf int) *message.Message {
	s := d.cfg.Sensor
	switch {
	case m.Code == codes.FETCH && path == "/":
		return d.fetch(m, cf)
	case m.Code == codes.IPATCH && path == "/":
		return d.ipatch(m, cf)
	case m.Code == codes.GET:
		ids, ok := sensorPaths(path)
		if !ok || len(ids) != 1 {
			return errAnswer(codes.NotFound, "%s not served", path)
		}
		accept := -1
		if a, err := m.Options.GetUint32(message.Accept); err == nil {
			accept = int(a)
		}
		resp := &message.Message{Code: codes.Content}
		b := make([]byte, 4)
		switch accept {
		case -1, int(message.TextPlain):
			s.mu.Lock()
			v := map[string]string{"5700": strconv.FormatFloat(s.value, 'g', -1, 64), "5701": s.units, "5750": s.appType}[ids[0]]
			s.mu.Unlock()
			resp.Payload = []byte(v)
			resp.Options, _, _ = resp.Options.SetContentFormat(b, message.TextPlain)
		case cfSenMLJSON, cfSenMLCBOR:
			p, err := s.valuesPack(accept, ids)
			if err != nil {
				return errAnswer(codes.InternalServerError, "%v", err)
			}
			resp.Payload = p
			resp.Options, _, _ = resp.Options.SetContentFormat(b, message.MediaType(accept))
		default:
			return errAnswer(codes.NotAcceptable, "Accept %d: this resource is served as text (0), SenML JSON (110) or SenML CBOR (112)", accept)
		}
		d.observe(m, path, resp)
		return resp
	case m.Code == codes.PUT && path == "/3303/0/5750":
		v, err := singleString(m.Payload, cf, path)
		if err != nil {
			return errAnswer(codes.BadRequest, "%v", err)
		}
		s.mu.Lock()
		s.appType = v
		s.mu.Unlock()
		return changed()
	case m.Code == codes.PUT:
		if _, ok := sensorPaths(path); ok {
			return errAnswer(codes.MethodNotAllowed, "%s is not writable", path)
		}
	}
	return errAnswer(codes.NotFound, "%s not served", path)
}

// singleString reads a write of one String resource: text, or a SenML
// pack of exactly one record at path with vs.
func singleString(b []byte, cf int, path string) (string, error) {
	switch cf {
	case int(message.TextPlain):
		return string(b), nil
	case cfSenMLJSON, cfSenMLCBOR:
		recs, err := parsePack(cf, b)
		if err != nil {
			return "", err
		}
		if len(recs) != 1 || recs[0].name != path || len(recs[0].fields) != 1 || recs[0].fields[0] != "vs" {
			return "", fmt.Errorf("a write of %s takes one record named %s with vs", path, path)
		}
		return recs[0].str, nil
	}
	return "", fmt.Errorf("content format %d: a String resource takes text (0), SenML JSON or CBOR", cf)
}

// fetch is Read-Composite, and Observe-Composite with Observe 0 or 1.
func (d *Device) fetch(m *message.Message, cf int) *message.Message {
	if cf != cfSenMLJSON && cf != cfSenMLCBOR {
		return errAnswer(codes.UnsupportedMediaType, "a composite FETCH carries SenML JSON (110) or SenML CBOR (112), got %d", cf)
	}
	recs, err := parsePack(cf, m.Payload)
	if err != nil {
		return errAnswer(codes.BadRequest, "%v", err)
	}
	if len(recs) == 0 {
		return errAnswer(codes.BadRequest, "a composite FETCH names at least one path")
	}
	var ids []string
	for i, r := range recs {
		if len(r.fields) > 0 {
			return errAnswer(codes.BadRequest, "record %d (%s) of a composite FETCH carries a value (%s); it names a path only", i, r.name, r.fields[0])
		}
		got, ok := sensorPaths(r.name)
		if !ok {
			return errAnswer(codes.NotFound, "%q not served", r.name)
		}
		ids = append(ids, got...)
	}
	accept := cf
	if a, err := m.Options.GetUint32(message.Accept); err == nil {
		accept = int(a)
	}
	if accept != cfSenMLJSON && accept != cfSenMLCBOR {
		return errAnswer(codes.NotAcceptable, "Accept %d: a composite answer is SenML JSON (110) or SenML CBOR (112)", accept)
	}
	body, err := d.cfg.Sensor.valuesPack(accept, ids)
	if err != nil {
		return errAnswer(codes.InternalServerError, "%v", err)
	}
	resp := &message.Message{Code: codes.Content, Payload: body}
	b := make([]byte, 8)
	resp.Options, _, _ = resp.Options.SetContentFormat(b, message.MediaType(accept))
	if obs, err := m.Options.Observe(); err == nil {
		d.mu.Lock()
		switch obs {
		case 0:
			d.composite = &compositeObs{token: append([]byte(nil), m.Token...), ids: ids, cf: accept}
			resp.Options, _, _ = resp.Options.SetObserve(b[4:], 0)
		case 1:
			if d.composite != nil && string(d.composite.token) == string(m.Token) {
				d.composite = nil
			}
		}
		d.mu.Unlock()
	}
	return resp
}

// ipatch is Write-Composite.
func (d *Device) ipatch(m *message.Message, cf int) *message.Message {
	if cf != cfSenMLJSON && cf != cfSenMLCBOR {
		return errAnswer(codes.UnsupportedMediaType, "a composite iPATCH carries SenML JSON (110) or SenML CBOR (112), got %d", cf)
	}
	recs, err := parsePack(cf, m.Payload)
	if err != nil {
		return errAnswer(codes.BadRequest, "%v", err)
	}
	if len(recs) == 0 {
		return errAnswer(codes.BadRequest, "a composite iPATCH carries at least one record")
	}
	writes := map[string]string{}
	for i, r := range recs {
		id, ok := strings.CutPrefix(r.name, "/3303/0/")
		res, known := sensorRes[id]
		if !ok || !known {
			return errAnswer(codes.NotFound, "record %d: %q not served", i, r.name)
		}
		if !res.writable {
			return errAnswer(codes.MethodNotAllowed, "record %d: %s is not writable", i, r.name)
		}
		if len(r.fields) != 1 || r.fields[0] != "vs" {
			return errAnswer(codes.BadRequest, "record %d: %s is a String resource: one vs value, got %v", i, r.name, r.fields)
		}
		writes[id] = r.str
	}
	s := d.cfg.Sensor
	s.mu.Lock()
	if v, ok := writes["5750"]; ok {
		s.appType = v
	}
	s.mu.Unlock()
	return changed()
}

// CompositeObserved returns the resources of 3303/0 the server observes
// with an Observe-Composite ("5700", …), sorted; nil when none.
func (d *Device) CompositeObserved() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.composite == nil {
		return nil
	}
	ids := append([]string(nil), d.composite.ids...)
	sort.Strings(ids)
	return ids
}

// NotifyComposite sends a NON notification of the Observe-Composite with
// the current values, in the format it was asked in. It fails when the
// server observes nothing composite.
func (d *Device) NotifyComposite() error {
	d.mu.Lock()
	o := d.composite
	var tok []byte
	var seq uint32
	var ids []string
	var cf int
	if o != nil {
		o.seq++
		tok, seq, ids, cf = o.token, o.seq, o.ids, o.cf
	}
	d.mu.Unlock()
	if o == nil {
		return errors.New("lwm2mtest: notify-composite: the server observes nothing composite")
	}
	body, err := d.cfg.Sensor.valuesPack(cf, ids)
	if err != nil {
		return err
	}
	n := &message.Message{Code: codes.Content, Token: tok, Type: message.NonConfirmable, MessageID: int32(d.nextMID()), Payload: body}
	b := make([]byte, 8)
	n.Options, _, _ = n.Options.SetObserve(b, seq)
	n.Options, _, _ = n.Options.SetContentFormat(b[4:], message.MediaType(cf))
	return d.send(n)
}

// NotifySensor sends a NON notification of path (a resource of 3303/0 the
// server observes) in the format its observe asked for with Accept (text
// without one), with its Content-Format unless
// DeviceConfig.BareNotifications. It fails when nobody observes path.
func (d *Device) NotifySensor(path string) error {
	ids, ok := sensorPaths(path)
	if !ok || len(ids) != 1 {
		return fmt.Errorf("lwm2mtest: notify: %s is not a resource of the sensor", path)
	}
	d.mu.Lock()
	o := d.obs[path]
	accept := -1
	if o != nil {
		accept = o.accept
	}
	d.mu.Unlock()
	if o == nil {
		return fmt.Errorf("lwm2mtest: notify: the server does not observe %s", path)
	}
	s := d.cfg.Sensor
	var body []byte
	cf := message.TextPlain
	if accept == cfSenMLJSON || accept == cfSenMLCBOR {
		b, err := s.valuesPack(accept, ids)
		if err != nil {
			return err
		}
		body, cf = b, message.MediaType(accept)
	} else {
		s.mu.Lock()
		body = []byte(map[string]string{"5700": strconv.FormatFloat(s.value, 'g', -1, 64), "5701": s.units, "5750": s.appType}[ids[0]])
		s.mu.Unlock()
	}
	if d.cfg.BareNotifications {
		cf = noFormat
	}
	if !d.notify(path, cf, body) {
		return fmt.Errorf("lwm2mtest: notify: the server does not observe %s", path)
	}
	return nil
}

// Answer is a server's answer to a request of the device.
type Answer struct {
	Code       codes.Code
	Diagnostic string // the payload of an error answer
}

// CodeText returns the code as "2.04".
func (a Answer) CodeText() string { return codeText(a.Code) }

// String returns "4.04 (diagnostic)".
func (a Answer) String() string {
	if a.Diagnostic == "" {
		return codeText(a.Code)
	}
	return codeText(a.Code) + " (" + a.Diagnostic + ")"
}

// Send sends an LwM2M 1.1 Send (CON POST /dp) with payload in content
// format cf (110 SenML JSON, 112 SenML CBOR, …) and returns the server's answer, retransmitting every second
// (four times at most) until it comes.
func (d *Device) Send(ctx context.Context, cf int, payload []byte) (Answer, error) {
	tok := make([]byte, 4)
	_, _ = rand.Read(tok)
	m := &message.Message{Code: codes.POST, Token: tok, Type: message.Confirmable, MessageID: int32(d.nextMID()), Payload: payload}
	buf := make([]byte, 16)
	var err error
	if m.Options, _, err = m.Options.SetPath(buf, "/dp"); err != nil {
		return Answer{}, err
	}
	m.Options, _, _ = m.Options.SetContentFormat(buf[4:], message.MediaType(cf))
	for try := 0; try < 5; try++ {
		if err := d.send(m); err != nil {
			return Answer{}, fmt.Errorf("lwm2mtest: send: %w", err)
		}
		wait := time.NewTimer(time.Second)
	inner:
		for {
			select {
			case <-ctx.Done():
				wait.Stop()
				return Answer{}, fmt.Errorf("lwm2mtest: send: %w", ctx.Err())
			case <-d.dead:
				wait.Stop()
				return Answer{}, errors.New("lwm2mtest: send: the device was killed")
			case <-wait.C:
				break inner
			case a := <-d.acks:
				if string(a.Token) != string(tok) || a.Code == codes.Empty {
					continue
				}
				wait.Stop()
				ans := Answer{Code: a.Code}
				if a.Code >= codes.BadRequest {
					ans.Diagnostic = string(a.Payload)
				}
				return ans, nil
			}
		}
	}
	return Answer{}, errors.New("lwm2mtest: send: no answer after 5 tries")
}
