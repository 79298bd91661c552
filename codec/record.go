package codec

import (
	"math"
	"unicode/utf8"
)

// Record is a decoded message held as raw values by field index, owned by the
// caller and reused from one decode to the next: DecodeRecord allocates
// nothing once the record has seen a message of as many fields. String and
// byte values point into the decoded payload, so they are valid only while
// the payload is unchanged. The zero Record is ready to use; its methods
// are meaningful after a successful decode. A Record is not safe for
// concurrent use.
type Record struct {
	msg    *message
	fields []field  // msg.fields
	num    []cell   // numeric values, by field (zero for strings and arrays)
	bs     [][]byte // string and array bytes, by field (stale for numbers)
	fast   fastPlan // how to decode msg quickly
}

// fastPlan is what the fast path of DecodeRecord needs of the message a
// Record holds, copied into the Record so that the path loads nothing but
// the Record and the payload (COD-4). The fast path takes messages with a
// one-byte messageId, of 8 bytes or more, whose fields are integers other
// than uint64 (at most maxFast besides the messageId), scaled, if at all,
// by a step whose inverse is whole (0.001, not 0.3).
type fastPlan struct {
	x       *idIndex // direction and codec of the message; nil: no fast path
	n       int      // payload length
	idOff   int      // offset of the one-byte messageId
	id      byte     // its value
	mid     int      // message.midIndex
	nints   int      // len(message.ints)
	midSlot slot     // the mid's slot when mid >= 0
	ints    [maxFast]slot
}

// maxFast is the most integer fields (besides the messageId) a message may
// have for the fast path: its plan is held in the Record, not behind a
// pointer.
const maxFast = 16

// cell is a field's value and how Float reads it, so that Int is one
// indexed load and Float one load, a divide and an add, without a branch
// (cheap enough to inline): Int is i and Float is float64(i)/div + add.
// Record.reset sets div and add from the field; the decoder writes i, and
// add where the number is not a function of i:
//
//   - integer fields: i is the value, sign-extended. div is 1 and add 0,
//     or for a scaled field whose 1/scale is whole, div is 1/scale and add
//     its offset (123456 with scale 0.001 gives exactly 123.456);
//   - other scaled fields, uint64 fields and floats: i is the raw value,
//     the bits, or the float truncated; div is -Inf, so float64(i)/div is
//     a zero (-0 for i >= 0, which keeps a float's -0), and add is the
//     number (raw*scale+offset, the uint64 converted, the float);
//   - strings and arrays: i and add 0, div 1.
type cell struct {
	i        int64
	div, add float64
}

// setNum sets the decoded value of a numeric field from its bits: integer
// bits sign-extended to 64, or float64 bits.
func (c *cell) setNum(f *field, x uint64) {
	c.i = int64(x)
	switch {
	case f.typ == tFloat:
		v := math.Float64frombits(x)
		c.i, c.add = int64(v), v
	case f.scaled && f.inv == 0:
		c.add = f.fromRaw(int64(x))
	case f.typ == tUint && f.size == 8:
		c.add = float64(x)
	}
}

var negInf = math.Inf(-1)

// convOf is the cell of field f before decoding: how Float reads it.
func convOf(f *field) cell {
	switch {
	case f.scaled && f.inv != 0:
		return cell{div: f.inv, add: f.offset}
	case f.scaled, f.typ == tUint && f.size == 8, f.typ == tFloat:
		return cell{div: negInf}
	}
	return cell{div: 1}
}

// MessageName returns the name of the decoded codec message.
func (r *Record) MessageName() string { return r.msg.name }

// Type returns the msgType the record decodes to (MsgReport, MsgResponse,
// MsgCommand or MsgReportAck).
func (r *Record) Type() string {
	return [...]string{MsgReport, MsgCommand, MsgResponse, MsgReportAck}[r.msg.kind]
}

// Len returns the number of fields.
func (r *Record) Len() int { return len(r.fields) }

// Name returns the name of field i.
func (r *Record) Name(i int) string { return r.fields[i].name }

// Int returns field i as an integer: an integer field's value (a uint64
// above MaxInt64 wraps), a scaled field's raw value, a float truncated, 0
// for strings and arrays.
func (r *Record) Int(i int) int64 { return r.num[i].i }

// Float returns field i as a float64: a scaled field's value raw*scale+offset,
// a float field's value, an integer converted, 0 for strings and arrays.
func (r *Record) Float(i int) float64 {
	c := &r.num[i]
	return float64(c.i)/c.div + c.add
}

// Bytes returns the bytes of a string, varstring, array or variant field i,
// pointing into the payload, and nil for numbers.
func (r *Record) Bytes(i int) []byte {
	if r.fields[i].typ < tString {
		return nil
	}
	return r.bs[i]
}

// Value returns field i as it appears in JSON: int64 for integers (uint64 for
// uint64 fields), float64 for scaled and float fields, string for strings
// (each byte one rune U+0000…U+00FF, trailing zero bytes of a fixed string
// dropped), []byte (a copy) for arrays and variants.
func (r *Record) Value(i int) any {
	f := &r.fields[i]
	c := &r.num[i]
	switch f.typ {
	case tInt:
		if f.scaled {
			return r.Float(i)
		}
		return c.i
	case tUint:
		if f.scaled {
			return r.Float(i)
		}
		if f.size == 8 {
			return uint64(c.i)
		}
		return c.i
	case tFloat:
		return c.add
	case tString:
		b := r.bs[i]
		for len(b) > 0 && b[len(b)-1] == 0 {
			b = b[:len(b)-1]
		}
		return latin1(b)
	case tVarString:
		return latin1(r.bs[i])
	}
	return append([]byte{}, r.bs[i]...)
}

// fromRaw applies scale and offset. When 1/scale is whole it divides, so
// that 123456 with scale 0.001 gives exactly 123.456.
func (f *field) fromRaw(raw int64) float64 {
	if f.inv != 0 {
		return float64(raw)/f.inv + f.offset
	}
	return float64(raw)*f.scale + f.offset
}

// latin1 maps each byte to the rune of the same value, so that JSON shows a
// non-printable byte XX as \u00XX and parsing that JSON gives the byte back.
func latin1(b []byte) string {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			rs := make([]rune, len(b))
			for i, c := range b {
				rs[i] = rune(c)
			}
			return string(rs)
		}
	}
	return string(b)
}

// Build returns the JSON-shaped message of the record: a *Report or
// *Response for uplinks, a *Command or *ReportAck for downlinks. Data fields
// appear under their service (reports), in the body (responses) or in paras
// (commands); messageId and length fields do not appear, the mid and errcode
// fields fill Mid and Errcode.
func (r *Record) Build() Message {
	m := r.msg
	switch m.kind {
	case kReport:
		var rep *Report
		if len(m.services) <= 4 {
			// One allocation for the report and its data.
			both := &struct {
				r Report
				d [4]ServiceData
			}{}
			rep = &both.r
			rep.Data = both.d[:len(m.services):len(m.services)]
		} else {
			rep = &Report{Data: make([]ServiceData, len(m.services))}
		}
		rep.Identifier, rep.MsgType = "0", MsgReport
		for j, sv := range m.services {
			rep.Data[j] = ServiceData{ServiceID: sv.name, ServiceData: make(map[string]any, sv.n)}
		}
		for i := range r.fields {
			if f := &r.fields[i]; f.role == roleData {
				rep.Data[f.svc].ServiceData[f.name] = r.Value(i)
			}
		}
		return rep
	case kResponse:
		rsp := &Response{Identifier: "0", MsgType: MsgResponse, Body: make(map[string]any, m.nData)}
		r.fill(rsp.Body, &rsp.Mid, &rsp.Errcode)
		return rsp
	case kCommand:
		cmd := &Command{Identifier: "0", MsgType: MsgCommand, ServiceID: m.service, Cmd: m.command,
			Paras: make(map[string]any, m.nData)}
		r.fill(cmd.Paras, &cmd.Mid, nil)
		return cmd
	}
	return &ReportAck{Identifier: "0", MsgType: MsgReportAck}
}

func (r *Record) fill(dst map[string]any, mid, errcode *int) {
	for i := range r.fields {
		switch r.fields[i].role {
		case roleData:
			dst[r.fields[i].name] = r.Value(i)
		case roleMid:
			*mid = int(r.Int(i))
		case roleErrcode:
			if errcode != nil {
				*errcode = int(r.Int(i))
			}
		}
	}
}
