package lwm2m

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Type is the data type of an LwM2M resource (LwM2M 1.1 Core Appendix C).
type Type uint8

// The resource data types. TypeNone is the type of Execute resources, which
// have no value. TypeRaw is not an LwM2M type: it marks a value decoded
// without knowing its resource's type (see Value.As).
const (
	TypeNone     Type = iota // no value (Execute resources)
	TypeString               // UTF-8 string
	TypeInteger              // signed 64-bit integer
	TypeUnsigned             // unsigned 64-bit integer (LwM2M 1.1)
	TypeFloat                // 64-bit IEEE 754 float
	TypeBoolean              // true or false
	TypeOpaque               // bytes
	TypeTime                 // Unix time in seconds
	TypeObjlnk               // object link: object id and instance id
	TypeCorelnk              // CoRE link format string (LwM2M 1.1)
	TypeRaw                  // the undecoded bytes of a resource of unknown type
)

var typeNames = [...]string{
	TypeNone:     "None",
	TypeString:   "String",
	TypeInteger:  "Integer",
	TypeUnsigned: "Unsigned Integer",
	TypeFloat:    "Float",
	TypeBoolean:  "Boolean",
	TypeOpaque:   "Opaque",
	TypeTime:     "Time",
	TypeObjlnk:   "Objlnk",
	TypeCorelnk:  "Corelnk",
	TypeRaw:      "Raw",
}

// String returns the name of t as OMA object definitions spell it
// ("Integer", "Unsigned Integer", "Objlnk", …).
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Value is the value of one resource or resource instance. It is a small
// immutable value; values of the same type and content compare equal with
// ==. Make one with IntValue, StringValue, … and read it with the accessor
// of its Type. The zero Value has TypeNone.
type Value struct {
	t   Type
	src Format // for TypeRaw: the content format the bytes came from
	n   uint64 // Integer, Unsigned, Float bits, Boolean, Time, Objlnk
	s   string // String, Corelnk, Opaque, Raw
}

// StringValue returns a String value.
func StringValue(s string) Value { return Value{t: TypeString, s: s} }

// IntValue returns an Integer value.
func IntValue(i int64) Value { return Value{t: TypeInteger, n: uint64(i)} }

// UintValue returns an Unsigned Integer value.
func UintValue(u uint64) Value { return Value{t: TypeUnsigned, n: u} }

// FloatValue returns a Float value.
func FloatValue(f float64) Value { return Value{t: TypeFloat, n: math.Float64bits(f)} }

// BoolValue returns a Boolean value.
func BoolValue(b bool) Value {
	v := Value{t: TypeBoolean}
	if b {
		v.n = 1
	}
	return v
}

// OpaqueValue returns an Opaque value holding a copy of b.
func OpaqueValue(b []byte) Value { return Value{t: TypeOpaque, s: string(b)} }

// TimeValue returns a Time value: t in whole seconds since the Unix epoch
// (LwM2M time has no fraction of a second).
func TimeValue(t time.Time) Value { return Value{t: TypeTime, n: uint64(t.Unix())} }

// ObjlnkValue returns an Objlnk value pointing at object instance
// /object/instance.
func ObjlnkValue(object, instance uint16) Value {
	return Value{t: TypeObjlnk, n: uint64(object)<<16 | uint64(instance)}
}

// CorelnkValue returns a Corelnk value (a CoRE link-format string).
func CorelnkValue(s string) Value { return Value{t: TypeCorelnk, s: s} }

// RawValue returns a value of unknown type: the bytes of one resource as
// content format f carries them (the value field of a TLV, or the text of
// a plain-text payload). Decoders make raw values for resources that have
// no definition; As converts one once the type is known.
func RawValue(f Format, b []byte) Value { return Value{t: TypeRaw, src: f, s: string(b)} }

// Type returns the type of v.
func (v Value) Type() Type { return v.t }

// IsZero reports whether v is the zero Value (TypeNone).
func (v Value) IsZero() bool { return v == Value{} }

// Int returns the value of an Integer, and whether v is one.
func (v Value) Int() (int64, bool) { return int64(v.n), v.t == TypeInteger }

// Uint returns the value of an Unsigned Integer, and whether v is one.
func (v Value) Uint() (uint64, bool) { return v.n, v.t == TypeUnsigned }

// Float returns the value of a Float, and whether v is one.
func (v Value) Float() (float64, bool) { return math.Float64frombits(v.n), v.t == TypeFloat }

// Bool returns the value of a Boolean, and whether v is one.
func (v Value) Bool() (bool, bool) { return v.n != 0, v.t == TypeBoolean }

// Time returns the value of a Time (in UTC), and whether v is one.
func (v Value) Time() (time.Time, bool) {
	if v.t != TypeTime {
		return time.Time{}, false
	}
	return time.Unix(int64(v.n), 0).UTC(), true
}

// Objlnk returns the object and instance ids of an Objlnk, and whether v is
// one.
func (v Value) Objlnk() (object, instance uint16, ok bool) {
	return uint16(v.n >> 16), uint16(v.n), v.t == TypeObjlnk
}

// Bytes returns a copy of the bytes of an Opaque or Raw value, and nil for
// other types.
func (v Value) Bytes() []byte {
	if v.t != TypeOpaque && v.t != TypeRaw {
		return nil
	}
	return []byte(v.s)
}

// RawFormat returns the content format a Raw value came from.
func (v Value) RawFormat() Format { return v.src }

// String returns v in the plain-text content format: the string itself for
// String and Corelnk, decimal numbers, "0"/"1" for Boolean, Unix seconds
// for Time, "object:instance" for Objlnk, base64 for Opaque. A Raw value
// from the text format prints as its text, from other formats as base64.
// TypeNone prints as "".
func (v Value) String() string {
	b, _ := appendText(nil, v)
	return string(b)
}

// appendText appends v in the plain-text format (LwM2M 1.1 Core §7.3.1).
// It fails only for raw values that came from a binary format.
func appendText(dst []byte, v Value) ([]byte, bool) {
	switch v.t {
	case TypeString, TypeCorelnk:
		return append(dst, v.s...), true
	case TypeInteger, TypeTime:
		return strconv.AppendInt(dst, int64(v.n), 10), true
	case TypeUnsigned:
		return strconv.AppendUint(dst, v.n, 10), true
	case TypeFloat:
		return strconv.AppendFloat(dst, math.Float64frombits(v.n), 'g', -1, 64), true
	case TypeBoolean:
		if v.n != 0 {
			return append(dst, '1'), true
		}
		return append(dst, '0'), true
	case TypeObjlnk:
		dst = strconv.AppendUint(dst, v.n>>16, 10)
		dst = append(dst, ':')
		return strconv.AppendUint(dst, v.n&0xffff, 10), true
	case TypeOpaque:
		return base64.StdEncoding.AppendEncode(dst, []byte(v.s)), true
	case TypeRaw:
		if v.src == FormatText {
			return append(dst, v.s...), true
		}
		return base64.StdEncoding.AppendEncode(dst, []byte(v.s)), false
	}
	return dst, true
}

// As converts a Raw value to type t, interpreting its bytes by the content
// format they came from (TLV or plain text). A value that already has type
// t is returned as it is. Other conversions fail with an error that wraps
// ErrMalformed.
func (v Value) As(t Type) (Value, error) {
	if v.t == t {
		return v, nil
	}
	if v.t != TypeRaw {
		return Value{}, fmt.Errorf("%w: cannot convert a %s value to %s; only Raw values convert", ErrMalformed, v.t, t)
	}
	switch v.src {
	case FormatTLV:
		nv, reason := tlvValue([]byte(v.s), t)
		if reason != "" {
			return Value{}, &DecodeError{Format: v.src, Reason: reason}
		}
		return nv, nil
	case FormatText:
		nv, reason := textValue(v.s, t)
		if reason != "" {
			return Value{}, &DecodeError{Format: v.src, Reason: reason}
		}
		return nv, nil
	}
	return Value{}, &DecodeError{Format: v.src, Reason: "raw values from " + v.src.String() + " cannot be converted"}
}

// textValue parses s, the plain-text form of a value, as type t. It
// returns a reason when s is not a value of type t.
func textValue(s string, t Type) (Value, string) {
	switch t {
	case TypeString:
		return StringValue(s), ""
	case TypeCorelnk:
		return CorelnkValue(s), ""
	case TypeInteger, TypeTime:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Value{}, strconv.Quote(clip(s)) + " is not a decimal integer (" + t.String() + ")"
		}
		if t == TypeTime {
			return Value{t: TypeTime, n: uint64(i)}, ""
		}
		return IntValue(i), ""
	case TypeUnsigned:
		u, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return Value{}, strconv.Quote(clip(s)) + " is not an unsigned decimal integer"
		}
		return UintValue(u), ""
	case TypeFloat:
		if !isDecimal(s) {
			return Value{}, strconv.Quote(clip(s)) + " is not a decimal number (Float); want digits with an optional sign, decimal point and exponent, as 3.14 or -1.2e3"
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return Value{}, strconv.Quote(clip(s)) + " is outside the range of a Float (64-bit)"
		}
		return FloatValue(f), ""
	case TypeBoolean:
		switch s {
		case "0":
			return BoolValue(false), ""
		case "1":
			return BoolValue(true), ""
		}
		return Value{}, strconv.Quote(clip(s)) + " is not a Boolean; want 0 or 1"
	case TypeOpaque:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Value{}, "opaque value is not base64: " + err.Error()
		}
		return OpaqueValue(b), ""
	case TypeObjlnk:
		o, i, ok := parseObjlnk(s)
		if !ok {
			return Value{}, strconv.Quote(clip(s)) + " is not an object link; want object:instance with ids 0–65535"
		}
		return ObjlnkValue(o, i), ""
	case TypeNone:
		if s == "" {
			return Value{}, ""
		}
		return Value{}, "a resource without a type (Execute) has no value"
	}
	return Value{}, "type " + t.String() + " has no text form"
}

// isDecimal reports whether s is a decimal number: an optional sign,
// digits with an optional decimal point (at least one digit), and an
// optional exponent (e or E, an optional sign, digits). strconv.ParseFloat
// also takes NaN, Inf, hexadecimal and underscores, which the plain-text
// Float is not (LwM2M TS, Plain Text data types).
func isDecimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

// parseObjlnk parses "object:instance". Ids are 0–65535 (65535:65535 is
// the null link).
func parseObjlnk(s string) (uint16, uint16, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	o, err1 := strconv.ParseUint(a, 10, 16)
	i, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint16(o), uint16(i), true
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Record is one value at a path: a single resource (/3/0/1) or one instance
// of a multiple resource (/3/0/6/1). Decoders return payloads as records in
// the order they appear; encoders take them in any order.
type Record struct {
	Path  Path
	Value Value
	// Time is the time of the value for formats that carry one (SenML's
	// bt+t, LwM2M JSON's bt+t); zero when absent.
	Time time.Time
}

// ResourceValue is one resource gathered from records: a single resource
// with its Value, or a multiple resource with its Instances.
type ResourceValue struct {
	Path      Path            // the resource, /o/i/r
	Multiple  bool            // the records named instances (/o/i/r/ri)
	Value     Value           // the value of a single resource
	Instances []InstanceValue // the instances of a multiple resource, by id
}

// InstanceValue is one instance of a multiple resource with its value.
type InstanceValue struct {
	ID    uint16
	Value Value
}

// GroupResources gathers records into resources, ordered by path: records at
// /o/i/r give single resources, records at /o/i/r/ri the instances of
// multiple resources. Records at shallower paths are left out. A resource
// named both ways, or a path named twice, is an error (wrapping
// ErrMalformed). Times of records are dropped.
func GroupResources(recs []Record) ([]ResourceValue, error) {
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, compareRecords)
	var out []ResourceValue
	for i, r := range sorted {
		if r.Path.n < 3 {
			continue
		}
		if i > 0 && sorted[i-1].Path == r.Path {
			return nil, fmt.Errorf("%w: %s has two values", ErrMalformed, r.Path)
		}
		rp := r.Path
		if rp.n == 4 {
			rp = rp.Parent()
		}
		if n := len(out); n > 0 && out[n-1].Path == rp {
			if r.Path.n == 3 || !out[n-1].Multiple {
				return nil, fmt.Errorf("%w: %s has a value and instances; a resource is single or multiple", ErrMalformed, rp)
			}
			out[n-1].Instances = append(out[n-1].Instances, InstanceValue{ID: r.Path.ids[3], Value: r.Value})
			continue
		}
		res := ResourceValue{Path: rp}
		if r.Path.n == 4 {
			res.Multiple = true
			res.Instances = []InstanceValue{{ID: r.Path.ids[3], Value: r.Value}}
		} else {
			res.Value = r.Value
		}
		out = append(out, res)
	}
	return out, nil
}

// Records returns the records of r: one for a single resource, one per
// instance for a multiple resource.
func (r ResourceValue) Records() []Record {
	if !r.Multiple {
		return []Record{{Path: r.Path, Value: r.Value}}
	}
	out := make([]Record, len(r.Instances))
	for i, in := range r.Instances {
		p := r.Path
		p.ids[3], p.n = in.ID, 4
		out[i] = Record{Path: p, Value: in.Value}
	}
	return out
}

// MarshalJSON writes v as the natural JSON value of its type: a number for
// Integer, Unsigned Integer, Float and Time (Unix seconds), true or false
// for Boolean, a string for String and Corelnk, "object:instance" for
// Objlnk, base64 for Opaque and Raw, null for TypeNone. A Float that is NaN
// or infinite is an error, as JSON has neither.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.t {
	case TypeNone:
		return []byte("null"), nil
	case TypeInteger, TypeTime, TypeUnsigned:
		b, _ := appendText(nil, v)
		return b, nil
	case TypeFloat:
		f := math.Float64frombits(v.n)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: JSON has no NaN or infinity (Float %v)", ErrEncode, f)
		}
		return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
	case TypeBoolean:
		return strconv.AppendBool(nil, v.n != 0), nil
	case TypeOpaque, TypeRaw:
		b := []byte{'"'}
		b = base64.StdEncoding.AppendEncode(b, []byte(v.s))
		return append(b, '"'), nil
	}
	return json.Marshal(v.String())
}
