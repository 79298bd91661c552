package main

// LwM2M resource mapping (LWM-12): a product may map its services'
// properties to resources of standard LwM2M objects and its commands to
// writes or executes (profile.Mapping, uploaded with the product as the
// "mapping" file). Then
//
//   - a notification of a mapped resource, a Send (/dp) carrying mapped
//     values, and the answer to a read or observe of one become a report of
//     the product's services, through the same pipeline as a codec's
//     report: model check, history and shadow, deviceDataChanged;
//   - a device of the product that registers has its mapped resources
//     observed (or read once, where the mapping says "observe": false);
//   - a command of the product that is mapped becomes one Write (one para),
//     one partial update of the object instance (several paras) or one
//     Execute, through the command engine: the device's 2.04 ends it
//     SUCCESSFUL, a 4.xx FAILED with the code.
//
// Which values of a Send the lwm2m server takes is asked per device
// (transport.SendFilter, send.go), since products and their mappings come
// and go while it runs: a mapped path, the firmware State and Update
// Result, and any path while an application subscribes to
// lwm2mNotification. A Send of nothing taken is answered 4.04 naming the
// paths; the values of a partly taken Send that are left out are said on
// the device log. Values a notification or Send carries that no mapping
// takes are pushed as lwm2mNotification.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/profile"
	"github.com/doze-io/doze/registry"
)

// maxMappingUpload bounds the mapping file of a product upload (the
// profile package refuses more than 1 MiB, SEC-3).
const maxMappingUpload = 1 << 20

// lwm2mObjects adapts the platform's object model to profile.ObjectModel,
// so that a mapping is checked against the objects the platform decodes.
type lwm2mObjects struct{}

var _ profile.ObjectModel = lwm2mObjects{}

func (lwm2mObjects) LwM2MResource(obj, res uint16) (typ, operations string, ok bool) {
	def, ok := objectModel.Resource(obj, res)
	if !ok {
		return "", "", false
	}
	if def.Type != lwm2m.TypeNone {
		typ = def.Type.String()
	}
	return typ, def.Operations.String(), true
}

// lwm2mType returns the lwm2m type of an OMA type name as a mapping holds
// it ("Float").
func lwm2mType(name string) lwm2m.Type {
	for t := lwm2m.TypeString; t < lwm2m.TypeRaw; t++ {
		if t.String() == name {
			return t
		}
	}
	return lwm2m.TypeNone
}

// mappedNotification turns a notification or Send of mapped resources
// into a report of the product's services (LWM-12), and pushes the values
// no mapping takes as lwm2mNotification (send.go). It returns the error of
// what could not be stored (the event stays in the inbox), nil when all
// was.
func (p *Platform) mappedNotification(ctx context.Context, d registry.Device, e transport.Event, fx *effects) error {
	m := p.products.Mapping(d.Info.ManufacturerID, d.Info.Model)
	base := lwm2m.RootPath // a Send, or an Observe-Composite: records name full paths
	if _, composite := transport.CompositePaths(e.Path); e.Path != "/dp" && !composite {
		path, err := lwm2m.ParsePath(e.Path)
		if err != nil {
			p.log.Add(d.ID, "notification", fmt.Sprintf("notification of %q dropped: not an LwM2M path", e.Path))
			return nil
		}
		if _, ok := m.Property(e.Path); !ok && slices.Contains(firmwarePaths, path.String()) {
			return nil // the firmware flow's (notification)
		}
		base = path
	}
	return p.mappedContent(ctx, d, m, base, transport.Content{Format: e.ContentFormat, Payload: e.Payload}, e.Time, fx, true)
}

// firmwarePaths are the Send values the firmware flow takes.
var firmwarePaths = []string{"/5/0/3", "/5/0/5"}

// mappedContent reports the mapped values of content c of path base. With
// notified (a notification or Send, not the answer to a read), the values
// no mapping takes, besides the firmware flow's, are pushed as
// lwm2mNotification.
func (p *Platform) mappedContent(ctx context.Context, d registry.Device, m *profile.Mapping, base lwm2m.Path, c transport.Content,
	at time.Time, fx *effects, notified bool) error {
	recs, err := lwm2m.Decode(c.Format, base, c.Payload, objectModel)
	if err != nil {
		if m != nil || notified {
			p.decodeError(d, fmt.Errorf("LwM2M values of %s (content format %d, %d bytes) do not decode: %w", base, c.Format, len(c.Payload), err))
		}
		return nil
	}
	data := map[string]map[string]any{}
	var order, bad []string
	var unmapped []lwm2m.Record
	for _, r := range recs {
		path := r.Path.String()
		pm, ok := m.Property(path)
		if !ok {
			if !slices.Contains(firmwarePaths, path) {
				unmapped = append(unmapped, r)
			}
			continue
		}
		v, err := propertyValue(r.Value, pm)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s (%s.%s): %v", path, pm.ServiceID, pm.Property, err))
			continue
		}
		if data[pm.ServiceID] == nil {
			data[pm.ServiceID] = map[string]any{}
			order = append(order, pm.ServiceID)
		}
		data[pm.ServiceID][pm.Property] = v
	}
	first := !fx.saved && fx.pushed == nil && !fx.notified
	if first && len(bad) > 0 {
		p.decodeError(d, fmt.Errorf("mapped LwM2M values not usable: %s", strings.Join(bad, "; ")))
	}
	if notified && len(unmapped) > 0 && !fx.notified {
		if fx.unmapped == nil {
			fx.unmapped = map[string]bool{}
		}
		if err := p.pushUnmapped(ctx, d, base, unmapped, at, fx.unmapped); err != nil {
			return err
		}
		fx.notified = true
	}
	if len(order) == 0 {
		return nil
	}
	r := &codec.Report{Identifier: "0", MsgType: codec.MsgReport}
	for _, s := range order {
		r.Data = append(r.Data, codec.ServiceData{ServiceID: s, ServiceData: data[s]})
	}
	if !fx.counted {
		p.metrics.uplinks.Inc()
		fx.counted = true
	}
	return p.report(ctx, d, r, at, fx)
}

// propertyValue turns an LwM2M value into a value of the property's
// dataType, as a report carries it.
func propertyValue(v lwm2m.Value, pm profile.PropertyMap) (any, error) {
	if v.Type() == lwm2m.TypeRaw {
		t := lwm2mType(pm.Type)
		nv, err := v.As(t)
		if err != nil {
			return nil, fmt.Errorf("not a %s: %w", pm.Type, err)
		}
		v = nv
	}
	num := func() (float64, bool) {
		if n, ok := v.Int(); ok {
			return float64(n), true
		}
		if n, ok := v.Uint(); ok {
			return float64(n), true
		}
		if f, ok := v.Float(); ok {
			return f, true
		}
		if t, ok := v.Time(); ok {
			return float64(t.Unix()), true
		}
		return 0, false
	}
	switch pm.DataType {
	case profile.TypeInt, profile.TypeLong:
		if b, ok := v.Bool(); ok {
			if b {
				return int64(1), nil
			}
			return int64(0), nil
		}
		if f, ok := num(); ok && f == math.Trunc(f) {
			return f, nil
		}
	case profile.TypeDecimal:
		if f, ok := num(); ok {
			return f, nil
		}
	case profile.TypeBoolean:
		if b, ok := v.Bool(); ok {
			return b, nil
		}
	case profile.TypeDateTime:
		if t, ok := v.Time(); ok {
			return profile.FormatDateTime(t), nil
		}
		if n, ok := v.Int(); ok {
			return profile.FormatDateTime(time.Unix(n, 0)), nil
		}
	case profile.TypeString, profile.TypeEnum:
		switch v.Type() {
		case lwm2m.TypeOpaque:
			return base64.StdEncoding.EncodeToString(v.Bytes()), nil
		case lwm2m.TypeObjlnk:
			o, i, _ := v.Objlnk()
			return fmt.Sprintf("%d:%d", o, i), nil
		}
		return v.String(), nil
	}
	return nil, fmt.Errorf("a %s value (%s) does not fit dataType %s", v.Type(), v.String(), pm.DataType)
}

// observeMapped observes the mapped resources of a device that registered
// (or updated with an object list that brings them back), and reads those
// the mapping does not observe once at a Register; each answer's values
// are reported. A resource of an object instance the registration does
// not list is said on the device log.
func (p *Platform) observeMapped(d registry.Device, e transport.Event) {
	m := p.products.Mapping(d.Info.ManufacturerID, d.Info.Model)
	if m == nil || (e.Kind != transport.EventRegistered && e.Kind != transport.EventUpdated) {
		return
	}
	observed := map[string]bool{}
	if e.Kind == transport.EventUpdated {
		obs, _ := p.db.Observations().Observations(e.Endpoint)
		for _, o := range obs {
			observed[o.Path] = true
		}
	}
	type job struct {
		path    lwm2m.Path
		observe bool
	}
	var jobs []job
	var absent []string
	for _, pm := range m.Properties {
		path, err := lwm2m.ParsePath(pm.Resource)
		if err != nil || observed[pm.Resource] || (!pm.Observe && e.Kind != transport.EventRegistered) {
			continue
		}
		inst := path.Parent()
		for inst.Len() > 2 {
			inst = inst.Parent()
		}
		if !e.Registration.Objects.Has(inst) {
			absent = append(absent, pm.Resource)
			continue
		}
		jobs = append(jobs, job{path, pm.Observe})
	}
	if len(absent) > 0 && e.Kind == transport.EventRegistered {
		p.log.Add(d.ID, "mapping", fmt.Sprintf("the registration lists no object instance of the mapped %s: not observed", strings.Join(absent, ", ")))
	}
	if len(jobs) == 0 {
		return
	}
	ep := e.Endpoint
	accept := announcedFormat(e.Registration)
	p.background(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		for _, j := range jobs {
			var (
				c   transport.Content
				err error
				op  = "observing"
			)
			if j.observe {
				c, err = p.lwm.ObserveAccept(ctx, ep, j.path.String(), accept)
			} else {
				op = "reading"
				c, err = p.lwm.Read(ctx, ep, j.path.String(), transport.NoFormat)
			}
			if err != nil {
				p.log.Add(d.ID, "mapping", fmt.Sprintf("%s mapped %s failed: %v", op, j.path, err))
				if ctx.Err() != nil {
					return
				}
				continue
			}
			p.mappedAnswer(ctx, d.ID, j.path, c)
		}
	})
}

// announcedFormat is the format the platform asks (Accept) for the
// notifications of a mapped observe: the first of SenML CBOR, SenML JSON
// and TLV the registration lists (ct=), or NoFormat, the device's choice,
// when it lists none of them. A device that then leaves the
// Content-Format out of its notifications (lwm2m-node-lib does) is
// understood: the observation keeps the format asked for.
func announcedFormat(r transport.Registration) lwm2m.Format {
	for _, f := range []lwm2m.Format{lwm2m.FormatSenMLCBOR, lwm2m.FormatSenMLJSON, lwm2m.FormatTLV} {
		if slices.Contains(r.Objects.Formats, f) {
			return f
		}
	}
	return transport.NoFormat
}

// mappedAnswer reports the mapped values of the answer to a read or
// observe of path (LWM-12), on the device's current record.
func (p *Platform) mappedAnswer(ctx context.Context, deviceID string, path lwm2m.Path, c transport.Content) {
	d, err := p.reg.Get(ctx, deviceID)
	if err != nil || len(c.Payload) == 0 {
		return
	}
	m := p.products.Mapping(d.Info.ManufacturerID, d.Info.Model)
	if m == nil {
		return
	}
	if err := p.mappedContent(ctx, d, m, path, c, time.Now(), &effects{}, false); err != nil {
		p.log.Add(d.ID, "mapping", fmt.Sprintf("values read from %s not all stored: %v", path, err))
	}
}

// mappedRead reports the mapped values of the answer to an API read or
// observe of path on endpoint ep.
func (p *Platform) mappedRead(ctx context.Context, ep string, path lwm2m.Path, c transport.Content) {
	d, err := p.reg.GetByNodeID(ctx, ep)
	if err != nil || p.products.Mapping(d.Info.ManufacturerID, d.Info.Model) == nil {
		return
	}
	p.mappedAnswer(ctx, d.ID, path, c)
}

// mappedCommand performs a mapped command: an Execute, a Write of one
// resource or a partial update of the object instance. The device's 2.xx
// ends it SUCCESSFUL with {"code","status"} as its result; a 4.xx FAILED
// with the code; no answer leaves it to the command engine's retries.
func (p *Platform) mappedCommand(ctx context.Context, d registry.Device, c command.Command, cm profile.CommandMap, left func()) error {
	reg, ok := p.lwm.Registration(d.NodeID)
	if !ok {
		return fmt.Errorf("device %s has no LwM2M registration; the command waits", d.ID)
	}
	var paras map[string]json.RawMessage
	if err := json.Unmarshal(c.Body.Paras, &paras); err != nil {
		return fmt.Errorf("%w: paras: %v", command.ErrEncode, err)
	}
	ctx = transport.WithLeft(ctx, left)
	var err error
	if cm.Execute != "" {
		var args []byte
		if raw, ok := paras[cm.Args]; ok && cm.Args != "" {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("%w: para %s (the execute arguments) is not a string", command.ErrEncode, cm.Args)
			}
			args = []byte(s)
		}
		err = p.lwm.Execute(ctx, reg.Endpoint, cm.Execute, args)
	} else {
		err = p.mappedWrite(ctx, reg, cm, paras)
	}
	if re, ok := errors.AsType[*transport.ResponseError](err); ok && re.ClientError() {
		p.log.Add(d.ID, "command_refused", err.Error())
		return &command.RefusedError{Code: re.CodeText(), Err: err}
	}
	if err != nil {
		if errors.Is(err, command.ErrEncode) {
			p.log.Add(d.ID, "encode_error", err.Error())
			p.metrics.encodeErrors.Inc()
		}
		return err
	}
	left()
	body, _ := json.Marshal(map[string]string{"status": "CHANGED", "code": "2.04"})
	return p.cmds.Responded(ctx, d.ID, command.Response{Mid: c.Mid(), Body: body})
}

// mappedWrite writes the command's paras to their resources in one
// request, in the content format of the device's registration.
func (p *Platform) mappedWrite(ctx context.Context, reg transport.Registration, cm profile.CommandMap, paras map[string]json.RawMessage) error {
	var recs []lwm2m.Record
	for _, pm := range cm.Write {
		raw, ok := paras[pm.Para]
		if !ok {
			continue // an optional para not given
		}
		path, err := lwm2m.ParsePath(pm.Resource)
		if err != nil {
			return fmt.Errorf("%w: %v", command.ErrEncode, err)
		}
		v, err := paraValue(path, raw, pm)
		if err != nil {
			return fmt.Errorf("%w: para %s: %v", command.ErrEncode, pm.Para, err)
		}
		recs = append(recs, lwm2m.Record{Path: path, Value: v})
	}
	if len(recs) == 0 {
		return fmt.Errorf("%w: command %s carries none of the paras it writes", command.ErrEncode, cm.Command)
	}
	f, _ := contentFormat(reg, "")
	base := recs[0].Path
	if len(recs) > 1 {
		base = base.Parent()
	}
	b, err := lwm2m.Encode(f, base, recs)
	if err != nil {
		return fmt.Errorf("%w: %v", command.ErrEncode, err)
	}
	content := transport.Content{Format: f, Payload: b}
	if len(recs) == 1 {
		return p.lwm.Write(ctx, reg.Endpoint, base.String(), content)
	}
	return p.lwm.WritePartial(ctx, reg.Endpoint, base.String(), content)
}

// paraValue reads a para's JSON value as the resource's LwM2M type; a
// DateTime para (yyyyMMdd'T'HHmmss'Z') becomes a Time.
func paraValue(path lwm2m.Path, raw json.RawMessage, pm profile.ParaMap) (lwm2m.Value, error) {
	t := lwm2mType(pm.Type)
	if pm.DataType == profile.TypeDateTime {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return lwm2m.Value{}, fmt.Errorf("value %s is not a DateTime string", raw)
		}
		tm, err := profile.ParseDateTime(s)
		if err != nil {
			return lwm2m.Value{}, err
		}
		if t == lwm2m.TypeTime {
			return lwm2m.TimeValue(tm), nil
		}
		return lwm2m.IntValue(tm.Unix()), nil
	}
	if t == lwm2m.TypeBoolean && pm.DataType == profile.TypeInt {
		var n int
		if err := json.Unmarshal(raw, &n); err != nil || (n != 0 && n != 1) {
			return lwm2m.Value{}, fmt.Errorf("value %s is not 0 or 1 (a Boolean resource)", raw)
		}
		return lwm2m.BoolValue(n == 1), nil
	}
	return jsonValue(path, raw, t)
}
