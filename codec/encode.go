package codec

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/doze-io/doze/ota/pcp"
)

// Encode encodes a downlink *Command or *ReportAck (COD-4); see Append.
func (d *Declarative) Encode(m Message) ([]byte, error) {
	return d.Append(nil, m)
}

// Append appends the encoding of m to dst. Any of the four messages can be
// encoded: commands and report acknowledgements for the platform, reports
// and responses for device simulators and round-trip tests.
//
// A *Command is encoded by the command message of its serviceId and cmd; a
// Mid of 0 gets the next mid of the codec (1…65535, wrapping, never 0, at
// most the mid field's largest value), stored back into the command. A
// *ReportAck is encoded by the report message of its Request: ErrNoAck if
// that message has no "addResponse", else its response message (defaults) or
// response bytes (AAAA0000 unless given). A *Report or *Response is encoded by
// the message whose data fields cover its values, preferring one that needs
// no defaults.
//
// Missing values take the field's default; a field with neither is an error.
// Values that do not fit (300 into uint8, 2.5 into an integer, 17 bytes into
// a 16-byte string) are errors, never wrapped or cut.
func (d *Declarative) Append(dst []byte, m Message) ([]byte, error) {
	switch m := m.(type) {
	case *Command:
		return d.appendCommand(dst, m)
	case *ReportAck:
		return d.appendAck(dst, m)
	case *Report:
		msg, err := d.matchReport(m)
		if err != nil {
			return dst, err
		}
		return d.appendMessage(dst, msg, func(f *field) (any, bool) { return reportValue(m, f) }, 0, 0)
	case *Response:
		msg, err := d.matchBody(m.Body)
		if err != nil {
			return dst, err
		}
		if (m.Mid < 1 || m.Mid > 65535) && msg.midIndex >= 0 {
			return dst, &FieldError{Message: msg.name, Offset: -1, Err: errf(ErrRange, "mid %d is outside 1…65535", m.Mid)}
		}
		if m.Errcode != 0 && msg.errIndex < 0 {
			return dst, &FieldError{Message: msg.name, Offset: -1, Err: errf(ErrValue, "errcode %d but the message has no errcode field", m.Errcode)}
		}
		return d.appendMessage(dst, msg, lookup(m.Body), m.Mid, m.Errcode)
	case nil:
		return dst, fmt.Errorf("%w: nil message", ErrMessage)
	}
	return dst, fmt.Errorf("%w: unknown message type %T", ErrMessage, m)
}

func lookup(vals map[string]any) func(f *field) (any, bool) {
	return func(f *field) (any, bool) {
		v, ok := vals[f.name]
		return v, ok
	}
}

func (d *Declarative) appendCommand(dst []byte, c *Command) ([]byte, error) {
	var msg *message
	for _, i := range d.down {
		if m := &d.messages[i]; m.kind == kCommand && m.service == c.ServiceID && m.command == c.Cmd {
			msg = m
			break
		}
	}
	if msg == nil {
		return dst, &FieldError{Offset: -1, Err: errf(ErrUnknownMessage, "no command message encodes %s of service %s", c.Cmd, c.ServiceID)}
	}
	for k := range c.Paras {
		if !hasData(msg, k) {
			return dst, &FieldError{Message: msg.name, Field: k, Offset: -1, Err: errf(ErrValue, "para %s is not a field of the message", k)}
		}
	}
	if msg.midIndex < 0 {
		// No mid field: nothing to assign or check; the device cannot
		// answer with a response tied to this command.
		return d.appendMessage(dst, msg, lookup(c.Paras), 0, 0)
	}
	if c.Mid == 0 {
		c.Mid = d.nextMid(msg)
	}
	if c.Mid < 1 || c.Mid > 65535 {
		return dst, &FieldError{Message: msg.name, Offset: -1, Err: errf(ErrRange, "mid %d is outside 1…65535", c.Mid)}
	}
	return d.appendMessage(dst, msg, lookup(c.Paras), c.Mid, 0)
}

// nextMid returns the codec's next mid for a command message: 1…65535
// wrapping, never 0, and no larger than its mid field holds.
func (d *Declarative) nextMid(msg *message) int {
	limit := uint64(65535)
	if msg != nil && msg.midIndex >= 0 {
		f := &msg.fields[msg.midIndex]
		lim := maxUint(f.size)
		if f.typ == tInt {
			lim >>= 1
		}
		limit = min(limit, lim)
	}
	n := d.mid.Add(1)
	return int((n-1)%limit) + 1
}

func (d *Declarative) appendAck(dst []byte, a *ReportAck) ([]byte, error) {
	if pcp.IsPCP(a.Request) {
		return dst, ErrPCP
	}
	if len(a.Request) == 0 {
		return dst, &FieldError{Offset: -1, Err: errf(ErrEmpty, "report acknowledgement without the report in request")}
	}
	m, err := d.identify(d.up, a.Request)
	if err != nil {
		return dst, err
	}
	if m.kind != kReport || !m.ack {
		return dst, ErrNoAck
	}
	if m.response < 0 {
		return append(dst, m.ackBytes...), nil
	}
	return d.appendMessage(dst, &d.messages[m.response], func(*field) (any, bool) { return nil, false }, 0, 0)
}

func hasData(m *message, name string) bool {
	for i := range m.fields {
		if m.fields[i].role == roleData && m.fields[i].name == name {
			return true
		}
	}
	return false
}

// reportValue finds the value of a report field in a Report.
func reportValue(r *Report, f *field) (any, bool) {
	for i := range r.Data {
		if r.Data[i].ServiceID == f.service {
			if v, ok := r.Data[i].ServiceData[f.name]; ok {
				return v, true
			}
		}
	}
	return nil, false
}

// matchReport picks the report message for a Report's values.
func (d *Declarative) matchReport(r *Report) (*message, error) {
	n := 0
	for _, sd := range r.Data {
		n += len(sd.ServiceData)
	}
	m, err := d.match(kReport, n, func(f *field) bool { _, ok := reportValue(r, f); return ok },
		func(yield func(string) bool) {
			for _, sd := range r.Data {
				for k := range sd.ServiceData {
					if !yield(sd.ServiceID + "." + k) {
						return
					}
				}
			}
		}, func(f *field) string { return f.service + "." + f.name })
	return m, err
}

// matchBody picks the command response message whose fields cover body.
func (d *Declarative) matchBody(body map[string]any) (*message, error) {
	return d.match(kResponse, len(body), func(f *field) bool { _, ok := body[f.name]; return ok },
		maps.Keys(body), func(f *field) string { return f.name })
}

// match picks the uplink message of kind k whose data fields cover the n
// given values exactly (has says whether a field has one), taking defaults
// for the rest, with the fewest defaults. When none fits, the error names
// what the closest message lacks (from keys, the values' names, and key,
// a field's name in those terms) or does not have. It allocates only then.
func (d *Declarative) match(k kind, n int, has func(*field) bool, keys iter.Seq[string], key func(*field) string) (*message, error) {
	var best, near *message
	bestDefaults, nearScore := -1, -1
	for _, i := range d.up {
		m := &d.messages[i]
		if m.kind != k {
			continue
		}
		used, defaults, missing := 0, 0, 0
		for j := range m.fields {
			f := &m.fields[j]
			switch {
			case f.role != roleData:
			case has(f):
				used++
			case f.hasDef:
				defaults++
			default:
				missing++
			}
		}
		if missing == 0 && used == n && (best == nil || defaults < bestDefaults) {
			best, bestDefaults = m, defaults
		}
		if score := 2*used - missing; score > nearScore {
			near, nearScore = m, score
		}
	}
	if best != nil {
		return best, nil
	}
	what := map[kind]string{kReport: "report", kResponse: "command response"}[k]
	if near == nil {
		return nil, &FieldError{Offset: -1, Err: errf(ErrUnknownMessage, "the codec has no %s message", what)}
	}
	fields := map[string]bool{}
	var missing []string
	for j := range near.fields {
		if f := &near.fields[j]; f.role == roleData {
			fields[key(f)] = true
			if !has(f) && !f.hasDef {
				missing = append(missing, f.name)
			}
		}
	}
	var extra []string
	for name := range keys {
		if !fields[name] {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	var why []string
	if len(missing) > 0 {
		why = append(why, "it needs "+strings.Join(missing, ", ")+" (no default)")
	}
	if len(extra) > 0 {
		why = append(why, "it has no field for "+strings.Join(extra, ", "))
	}
	return nil, &FieldError{Message: near.name, Offset: -1, Err: errf(ErrUnknownMessage,
		"no %s message fits these values; the closest is %s, but %s", what, near.name, strings.Join(why, "; "))}
}

// appendMessage writes the fields of msg in order.
func (d *Declarative) appendMessage(dst []byte, msg *message, get func(*field) (any, bool), mid, errcode int) ([]byte, error) {
	start := len(dst)
	var varData [][]byte // contents of varstring/variant fields, by index
	content := func(f *field, i int) ([]byte, error) {
		if varData == nil {
			varData = make([][]byte, len(msg.fields))
		}
		if varData[i] != nil {
			return varData[i], nil
		}
		v, ok := get(f)
		var b []byte
		var err error
		switch {
		case ok:
			b, err = bytesValue(f, v)
		case f.hasDef:
			b = f.def
		default:
			err = ErrMissing
		}
		if err != nil {
			return nil, err
		}
		if b == nil {
			b = []byte{}
		}
		varData[i] = b
		return b, nil
	}
	for i := range msg.fields {
		f := &msg.fields[i]
		off := len(dst) - start
		fail := func(err error) ([]byte, error) {
			return dst[:start], &FieldError{Message: msg.name, Field: f.name, Offset: off, Err: err}
		}
		var err error
		switch f.role {
		case roleMessageID:
			dst = append(dst, f.def...)
		case roleMid:
			dst, err = appendInt(dst, f, int64(mid))
		case roleErrcode:
			dst, err = appendInt(dst, f, int64(errcode))
		case roleLength:
			var b []byte
			b, err = content(&msg.fields[f.ref], f.ref)
			if err != nil {
				return dst[:start], &FieldError{Message: msg.name, Field: msg.fields[f.ref].name, Offset: off, Err: err}
			}
			dst, err = appendInt(dst, f, int64(len(b)))
			if err != nil {
				err = fmt.Errorf("%s is %d bytes long: %w", msg.fields[f.ref].name, len(b), err)
			}
		default:
			if f.variable() {
				var b []byte
				if b, err = content(f, i); err == nil {
					dst = append(dst, b...)
				}
				break
			}
			v, ok := get(f)
			if !ok {
				if !f.hasDef {
					return fail(ErrMissing)
				}
				dst = append(dst, f.def...)
				break
			}
			dst, err = appendValue(dst, f, v)
		}
		if err != nil {
			return fail(err)
		}
	}
	return dst, nil
}

func appendValue(dst []byte, f *field, v any) ([]byte, error) {
	switch f.typ {
	case tInt, tUint:
		if f.scaled {
			x, err := asFloat(v)
			if err != nil {
				return dst, err
			}
			raw, err := f.toRaw(x)
			if err != nil {
				return dst, err
			}
			return appendInt(dst, f, raw)
		}
		i, u, big, err := asInteger(v)
		if err != nil {
			return dst, err
		}
		if big {
			if f.typ == tUint && f.size == 8 {
				return binary.BigEndian.AppendUint64(dst, u), nil
			}
			return dst, errf(ErrRange, "%d does not fit %s (%s)", u, f.typName, rangeText(f))
		}
		return appendInt(dst, f, i)
	case tFloat:
		x, err := asFloat(v)
		if err != nil {
			return dst, err
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return dst, ErrNotFinite
		}
		if f.size == 4 {
			if math.Abs(x) > math.MaxFloat32 {
				return dst, errf(ErrRange, "%g does not fit float32", x)
			}
			return binary.BigEndian.AppendUint32(dst, math.Float32bits(float32(x))), nil
		}
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(x)), nil
	}
	b, err := bytesValue(f, v)
	if err != nil {
		return dst, err
	}
	switch {
	case f.typ == tString && len(b) > f.size:
		return dst, errf(ErrRange, "string is %d bytes; the field holds %d", len(b), f.size)
	case f.typ == tArray && len(b) != f.size:
		return dst, errf(ErrRange, "array is %d bytes; the field holds exactly %d", len(b), f.size)
	}
	dst = append(dst, b...)
	for i := len(b); i < f.size; i++ {
		dst = append(dst, 0)
	}
	return dst, nil
}

// bytesValue converts a string field's value (each rune one byte,
// U+0000…U+00FF) or an array field's value ([]byte or base64 text).
func bytesValue(f *field, v any) ([]byte, error) {
	if f.typ == tString || f.typ == tVarString {
		s, ok := v.(string)
		if !ok {
			return nil, errf(ErrValue, "%s needs a string, got %T", f.typName, v)
		}
		if !utf8.ValidString(s) {
			return nil, errf(ErrValue, "string is not valid UTF-8")
		}
		b := make([]byte, 0, len(s))
		for i, r := range s {
			if r > 0xff {
				return nil, errf(ErrValue, "character %q at %d is not a byte (allowed: ASCII and \\u0000…\\u00ff)", r, i)
			}
			b = append(b, byte(r))
		}
		return b, nil
	}
	switch x := v.(type) {
	case []byte:
		return x, nil
	case string:
		b, err := base64.StdEncoding.DecodeString(x)
		if err != nil {
			return nil, errf(ErrValue, "%s needs base64 text: %v", f.typName, err)
		}
		return b, nil
	}
	return nil, errf(ErrValue, "%s needs base64 text or bytes, got %T", f.typName, v)
}

func rangeText(f *field) string {
	if f.typ == tUint {
		return fmt.Sprintf("0…%d", maxUint(f.size))
	}
	h := int64(maxUint(f.size) >> 1)
	return fmt.Sprintf("%d…%d", -h-1, h)
}

// appendInt writes i as a big-endian integer of the field's size, refusing
// values outside the field's range.
func appendInt(dst []byte, f *field, i int64) ([]byte, error) {
	if f.typ == tUint {
		if i < 0 || uint64(i) > maxUint(f.size) {
			return dst, errf(ErrRange, "%d does not fit %s (%s)", i, f.typName, rangeText(f))
		}
	} else if f.size < 8 {
		h := int64(maxUint(f.size) >> 1)
		if i < -h-1 || i > h {
			return dst, errf(ErrRange, "%d does not fit %s (%s)", i, f.typName, rangeText(f))
		}
	}
	u := uint64(i)
	for s := f.size - 1; s >= 0; s-- {
		dst = append(dst, byte(u>>(8*s)))
	}
	return dst, nil
}

// toRaw turns a fixed-point value into its raw integer, refusing values that
// are not a multiple of the scale (within a millionth of a step).
func (f *field) toRaw(x float64) (int64, error) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, ErrNotFinite
	}
	var r float64
	if f.inv != 0 {
		r = (x - f.offset) * f.inv
	} else {
		r = (x - f.offset) / f.scale
	}
	raw := math.Round(r)
	if math.Abs(raw) > 1<<53 {
		return 0, errf(ErrRange, "%g is out of range for %s with scale %g", x, f.typName, f.scale)
	}
	if math.Abs(f.fromRaw(int64(raw))-x) > math.Abs(f.scale)*1e-6 {
		return 0, errf(ErrValue, "%g is not a multiple of the scale %g (offset %g)", x, f.scale, f.offset)
	}
	return int64(raw), nil
}

// asInteger reads an integer from a Go or JSON number or a bool (1 or 0).
// big is true (and u set) for values above MaxInt64.
func asInteger(v any) (i int64, u uint64, big bool, err error) {
	switch x := v.(type) {
	case int:
		return int64(x), 0, false, nil
	case int8:
		return int64(x), 0, false, nil
	case int16:
		return int64(x), 0, false, nil
	case int32:
		return int64(x), 0, false, nil
	case int64:
		return x, 0, false, nil
	case uint:
		return fromUint(uint64(x))
	case uint8:
		return int64(x), 0, false, nil
	case uint16:
		return int64(x), 0, false, nil
	case uint32:
		return int64(x), 0, false, nil
	case uint64:
		return fromUint(x)
	case float32:
		return fromFloat(float64(x))
	case float64:
		return fromFloat(x)
	case bool:
		// Profiles model booleans as int (PRF-4): true is 1, false 0.
		if x {
			return 1, 0, false, nil
		}
		return 0, 0, false, nil
	case json.Number:
		if n, e := strconv.ParseInt(string(x), 10, 64); e == nil {
			return n, 0, false, nil
		}
		if n, e := strconv.ParseUint(string(x), 10, 64); e == nil {
			return fromUint(n)
		}
		f, e := strconv.ParseFloat(string(x), 64)
		if e != nil {
			return 0, 0, false, errf(ErrValue, "%q is not a number", string(x))
		}
		return fromFloat(f)
	}
	return 0, 0, false, errf(ErrValue, "an integer field needs a number, got %T", v)
}

func fromUint(u uint64) (int64, uint64, bool, error) {
	if u > math.MaxInt64 {
		return 0, u, true, nil
	}
	return int64(u), 0, false, nil
}

func fromFloat(f float64) (int64, uint64, bool, error) {
	switch {
	case f != math.Trunc(f) || math.IsInf(f, 0):
		return 0, 0, false, errf(ErrValue, "%g is not a whole number", f)
	case f >= -(1<<63) && f < 1<<63:
		return int64(f), 0, false, nil
	case f >= 0 && f < 1<<64:
		return 0, uint64(f), true, nil
	}
	return 0, 0, false, errf(ErrRange, "%g is out of range for any integer", f)
}

func asFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return 0, errf(ErrValue, "%q is not a number", string(x))
		}
		return f, nil
	}
	i, u, big, err := asInteger(v)
	if err != nil {
		return 0, err
	}
	if big {
		return float64(u), nil
	}
	return float64(i), nil
}
