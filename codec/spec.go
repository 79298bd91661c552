package codec

import (
	"encoding/hex"
	"math"
	"sync/atomic"
)

// Spec is a declarative codec as written by hand in JSON (COD-2). The
// package documentation shows a complete example.
type Spec struct {
	Name        string        `json:"name,omitempty"`        // free text, e.g. the product
	Description string        `json:"description,omitempty"` // free text for people; ignored
	Messages    []MessageSpec `json:"messages"`
}

// Message kinds of a MessageSpec.
const (
	KindReport         = "report"          // uplink data report
	KindCommand        = "command"         // downlink command
	KindResponse       = "commandResponse" // uplink command response
	KindReportResponse = "reportResponse"  // downlink report response (ACK)
)

// MessageSpec is one message of a declarative codec.
type MessageSpec struct {
	Name        string `json:"name"`                  // unique in the codec
	Kind        string `json:"kind"`                  // report, command, commandResponse, reportResponse
	Description string `json:"description,omitempty"` // free text for people; ignored

	// Service is, for a report, the serviceId its fields map to unless a
	// field names another; for a command, the serviceId of the command.
	Service string `json:"service,omitempty"`
	// Command is the command name (commandName in the profile, "cmd" in
	// JSON) of a command message.
	Command string `json:"command,omitempty"`

	// ResponseMessage names, for a command, the commandResponse message the
	// device answers with (both need a mid field at the same index); for a
	// report with AddResponse, the reportResponse message to answer with.
	ResponseMessage string `json:"responseMessage,omitempty"`
	// AddResponse marks a report that the platform acknowledges ("add
	// response field", §6.4): with ResponseMessage, by encoding that
	// message; otherwise with the bytes of ResponseBytes.
	AddResponse bool `json:"addResponse,omitempty"`
	// ResponseBytes is the hex of the acknowledgement of an AddResponse
	// report without ResponseMessage. "" means AAAA0000.
	ResponseBytes string `json:"responseBytes,omitempty"`

	Fields []FieldSpec `json:"fields"`
}

// FieldSpec is one field of a message, in payload order.
type FieldSpec struct {
	Name        string `json:"name"`                  // the property (reports) or para (commands, responses) it maps to
	Description string `json:"description,omitempty"` // free text for people (units, meaning); ignored
	// Type is int8, int16, int24, int32, int64, uint8 … uint64, float32,
	// float64, string, varstring, array or variant.
	Type string `json:"type"`
	// Length is the byte length of a string or array; it may be given for
	// numbers (it must then match the type) and must not be for varstring
	// and variant.
	Length int `json:"length,omitempty"`
	// Default is the field's value in hex (big-endian; "0x" prefix allowed)
	// used when a message leaves the field out. A number's default may be
	// shorter than the field (left-padded); a string's or array's is padded
	// with zero bytes on the right.
	Default string `json:"default,omitempty"`

	// MessageID marks the address field that tells messages of one
	// direction apart; its Default is the message's id.
	MessageID bool `json:"messageId,omitempty"`
	// Mid marks the response-id field tying a command to its response.
	Mid bool `json:"mid,omitempty"`
	// Errcode marks the field of a command response whose value is the
	// response's errcode rather than part of its body.
	Errcode bool `json:"errcode,omitempty"`
	// LengthField names the earlier integer field holding the byte length
	// of a varstring or variant. That field is computed on encoding and not
	// shown in JSON.
	LengthField string `json:"lengthField,omitempty"`

	// Service overrides the message's service for a report field.
	Service string `json:"service,omitempty"`

	// Scale and Offset make an integer of up to 4 bytes a fixed-point
	// value: value = raw*scale + offset (our choice, COD-2). Scale 0 or
	// absent means 1.
	Scale  float64 `json:"scale,omitempty"`
	Offset float64 `json:"offset,omitempty"`
}

type kind uint8

const (
	kReport kind = iota
	kCommand
	kResponse
	kReportResponse
	kBad
)

func (k kind) uplink() bool { return k == kReport || k == kResponse }

type ftype uint8

const (
	tInt ftype = iota
	tUint
	tFloat
	tString
	tVarString
	tArray
	tVariant
)

type role uint8

const (
	roleData role = iota
	roleMessageID
	roleMid
	roleLength
	roleErrcode
)

var typeNames = map[string]struct {
	t    ftype
	size int
}{
	"int8": {tInt, 1}, "int16": {tInt, 2}, "int24": {tInt, 3}, "int32": {tInt, 4}, "int64": {tInt, 8},
	"uint8": {tUint, 1}, "uint16": {tUint, 2}, "uint24": {tUint, 3}, "uint32": {tUint, 4}, "uint64": {tUint, 8},
	"float32": {tFloat, 4}, "float64": {tFloat, 8},
	"string": {tString, 0}, "varstring": {tVarString, 0}, "array": {tArray, 0}, "variant": {tVariant, 0},
}

type field struct {
	name    string
	typName string
	service string // report data fields
	typ     ftype
	size    int // bytes; 0 for varstring/variant
	role    role
	ref     int // varstring/variant: index of its length field; length field: index of its varstring/variant
	def     []byte
	hasDef  bool
	scaled  bool
	scale   float64
	inv     float64 // 1/scale when that is a whole number, else 0
	offset  float64
	off     int // fixed byte offset in the message, -1 after a variable field
	svc     int // report data field: index into message.services
}

func (f *field) integer() bool  { return f.typ == tInt || f.typ == tUint }
func (f *field) variable() bool { return f.typ == tVarString || f.typ == tVariant }

func (f *field) class() fieldClass {
	switch {
	case f.integer() && !f.scaled:
		return classInt
	case f.integer() || f.typ == tFloat:
		return classDecimal
	case f.typ == tString || f.typ == tVarString:
		return classString
	}
	return classArray
}

type message struct {
	name     string
	kind     kind
	service  string
	command  string
	fields   []field
	idIndex  int       // -1 without messageId
	id       uint64    // raw bits of the messageId default
	midIndex int       // -1 without mid
	errIndex int       // -1 without errcode field
	response int       // index of the response message, -1
	ack      bool      // report: add response
	ackBytes []byte    // report: response bytes when response < 0
	nData    int       // number of data fields
	services []service // report: services of the data fields, in order of first use

	// Fast path for messages whose fields all have fixed sizes.
	fixedLen int     // total length, -1 if any field is variable
	fastLen  int     // fixedLen when it is 8 or more and fix is empty, else -1
	ints     []slot  // integer fields but the messageId, when fixedLen >= 0
	fix      []fixup // fields ints leaves to a second pass
}

// service is a service a report maps to and how many fields it gets.
type service struct {
	name string
	n    int
}

// slot is how the fixed-layout decoder reads an integer field without a
// branch: load the 8 bytes from base big-endian (a payload shorter than 8
// bytes is first copied into an 8-byte buffer, and base is 0), shift left
// by lsh to put the field's first byte on top, shift right arithmetically
// by rsh to sign-extend it, keep mask (-1 for signed and 8-byte fields,
// the field's bits for shorter unsigned ones), and store it as field dst.
type slot struct {
	mask     int64
	base     uint32
	dst      uint16
	lsh, rsh uint8
}

// fixup is a field whose value the plan does not give by itself.
type fixup struct {
	i    int // field index
	kind fixKind
}

type fixKind uint8

const (
	fixScaled fixKind = iota // 1/scale not whole: the number is raw*scale+offset
	fixU64                   // uint64: the number is the bits as unsigned
	fixF32                   // float32: read, check finite
	fixF64                   // float64: read, check finite
	fixBytes                 // string or array: its bytes
)

// buildPlan fills m.ints, m.fix and m.fastLen for a message of fixed
// layout (COD-4 fast path). Messages too long for a slot get no plan.
func buildPlan(m *message) {
	m.fastLen = -1
	if m.fixedLen < 0 || uint64(m.fixedLen) > math.MaxUint32 || len(m.fields) > math.MaxUint16 {
		return
	}
	m.ints = make([]slot, 0, len(m.fields)) // not nil: planned
	for i := range m.fields {
		f := &m.fields[i]
		if !f.integer() {
			k := fixBytes
			if f.typ == tFloat {
				k = fixF64
				if f.size == 4 {
					k = fixF32
				}
			}
			m.fix = append(m.fix, fixup{i, k})
			continue
		}
		switch {
		case f.scaled && f.inv == 0:
			m.fix = append(m.fix, fixup{i, fixScaled})
		case f.typ == tUint && f.size == 8:
			m.fix = append(m.fix, fixup{i, fixU64})
		}
		if i == m.idIndex {
			continue
		}
		end := f.off + f.size
		base := max(0, end-8)
		s := slot{base: uint32(base), dst: uint16(i), lsh: uint8(8 * (f.off - base)), rsh: uint8(64 - 8*f.size), mask: -1}
		if f.typ == tUint && f.size < 8 {
			s.mask = 1<<(8*f.size) - 1
		}
		m.ints = append(m.ints, s)
	}
	if m.fixedLen >= 8 && len(m.fix) == 0 {
		m.fastLen = m.fixedLen
	}
}

// Declarative is a compiled declarative codec. It implements Codec, and it
// also decodes downlinks and encodes uplinks for device simulators. It is
// safe for concurrent use; only the mid counter changes after Compile.
type Declarative struct {
	name     string
	messages []message
	up, down []int // message indexes per direction, in codec order
	upID     idIndex
	downID   idIndex
	mid      atomic.Uint64
}

// idIndex finds a message of one direction by its messageId in one read when
// every message of the direction has its messageId at the same fixed byte
// offset and size (the usual case).
type idIndex struct {
	off, size int // -1: no common position, walk the messages
	ids       []idEntry
}

type idEntry struct {
	id uint64
	m  *message
}

// find returns the message whose messageId p holds, or nil when there is
// none or the index does not apply.
func (x *idIndex) find(p []byte) *message {
	if x.off < 0 || len(p) < x.off+x.size {
		return nil
	}
	var id uint64
	if x.size == 1 {
		id = uint64(p[x.off])
	} else {
		id = readUint(p[x.off : x.off+x.size])
	}
	for _, e := range x.ids {
		if e.id == id {
			return e.m
		}
	}
	return nil
}

func buildIndex(d *Declarative, dir []int) idIndex {
	x := idIndex{off: -1}
	if len(dir) == 0 || d.messages[dir[0]].idIndex < 0 {
		return x
	}
	first := &d.messages[dir[0]].fields[d.messages[dir[0]].idIndex]
	for _, i := range dir {
		m := &d.messages[i]
		if m.idIndex < 0 {
			return idIndex{off: -1}
		}
		f := &m.fields[m.idIndex]
		if f.off < 0 || f.off != first.off || f.size != first.size {
			return idIndex{off: -1}
		}
		x.ids = append(x.ids, idEntry{m.id, m})
	}
	x.off, x.size = first.off, first.size
	return x
}

var _ Codec = (*Declarative)(nil)

// Name returns the codec's name from its JSON.
func (d *Declarative) Name() string { return d.name }

// MaxFieldLength is the largest length of a string or array field. NB-IoT
// messages are far smaller (the platform caps a message at 4 KB, §3.12).
const MaxFieldLength = 65535

// DefaultResponse is the acknowledgement, in hex, of an "addResponse" report
// that names no response message and gives no responseBytes (§6.4).
const DefaultResponse = "AAAA0000"

var defaultResponseBytes, _ = hex.DecodeString(DefaultResponse)
