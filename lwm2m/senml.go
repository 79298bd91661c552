package lwm2m

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// SenML (RFC 8428) as LwM2M 1.1 uses it (Core §7.4.4, §7.4.5): an array of
// records; the name of each is bn+n, the path of a resource or resource
// instance; the value is one of v (number), vs (string), vb (boolean), vd
// (opaque data) and vlo (object link, "3:0"); the time is bt+t.

// senmlNum is a SenML number as it came: integer or float.
type senmlNum struct {
	kind byte // 0 none, 'i' int64, 'u' uint64 (above MaxInt64), 'f' float64
	i    int64
	u    uint64
	f    float64
}

// senmlRec is one SenML record, from JSON or CBOR.
type senmlRec struct {
	off   int // byte offset of the record in the payload
	bn, n *string
	bt, t *float64
	v     senmlNum
	vs    *string
	vb    *bool
	vd    []byte
	hasVd bool
	vlo   *string
}

// senmlDecode turns records into Records under base, typing values with
// reg.
func senmlDecode(f Format, base Path, recs []senmlRec, reg *Objects) ([]Record, error) {
	out := make([]Record, 0, len(recs))
	types := typeCache{reg: reg}
	var bn string
	var bt float64
	for i := range recs {
		r := &recs[i]
		fail := func(path, reason string) error {
			return &DecodeError{Format: f, Path: path, Offset: r.off, Reason: reason}
		}
		if r.bn != nil {
			bn = *r.bn
		}
		if r.bt != nil {
			bt = *r.bt
		}
		name := bn
		if r.n != nil {
			name += *r.n
		}
		p, err := ParsePath(name)
		if err != nil {
			return nil, &DecodeError{Format: f, Offset: r.off, Reason: "record name bn+n = " + strconv.Quote(name) + " is not a path", Err: err}
		}
		if !base.Contains(p) {
			return nil, fail(p.String(), "record is not under the request path "+base.String())
		}
		if p.n < 3 {
			return nil, fail(p.String(), "a record names a resource or resource instance, not a "+p.Level().String())
		}
		v, reason := senmlValue(f, r, p, &types)
		if reason != "" {
			return nil, fail(p.String(), reason)
		}
		rec := Record{Path: p, Value: v}
		if r.t != nil || bt != 0 {
			secs := bt
			if r.t != nil {
				secs += *r.t
			}
			if math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > 1<<62/1e9 {
				return nil, fail(p.String(), "time bt+t is out of range")
			}
			whole, frac := math.Modf(secs)
			rec.Time = time.Unix(int64(whole), int64(frac*1e9)).UTC()
		}
		out = append(out, rec)
	}
	return out, nil
}

// senmlValue returns the value of r at p: the type from reg when known,
// else the type the record's value field gives. f is the format of the
// payload.
func senmlValue(f Format, r *senmlRec, p Path, types *typeCache) (Value, string) {
	count := 0
	if r.v.kind != 0 {
		count++
	}
	for _, present := range []bool{r.vs != nil, r.vb != nil, r.hasVd, r.vlo != nil} {
		if present {
			count++
		}
	}
	if count != 1 {
		return Value{}, "record has " + strconv.Itoa(count) + " values; want exactly one of v, vs, vb, vd, vlo"
	}
	t, known := types.typeAt(p)
	mismatch := func(field string) (Value, string) {
		return Value{}, "the resource is " + t.String() + " but the record has " + field
	}
	switch {
	case r.v.kind != 0:
		if !known {
			switch r.v.kind {
			case 'i':
				return IntValue(r.v.i), ""
			case 'u':
				return UintValue(r.v.u), ""
			}
			return FloatValue(r.v.f), ""
		}
		switch t {
		case TypeInteger, TypeTime:
			i, ok := r.v.int()
			if !ok {
				return Value{}, "v " + r.v.String() + " is not an integer in the range of int64 (" + t.String() + ")"
			}
			return Value{t: t, n: uint64(i)}, ""
		case TypeUnsigned:
			u, ok := r.v.uint()
			if !ok {
				return Value{}, "v " + r.v.String() + " is not an integer in 0..2^64-1 (Unsigned Integer)"
			}
			return UintValue(u), ""
		case TypeFloat:
			return FloatValue(r.v.float()), ""
		}
		return mismatch("a number (v)")
	case r.vs != nil:
		switch {
		case !known || t == TypeString:
			return StringValue(*r.vs), ""
		case t == TypeCorelnk:
			return CorelnkValue(*r.vs), ""
		case t == TypeOpaque && f == FormatJSON:
			// LwM2M 1.0 JSON carries opaque data base64-encoded in sv.
			data, err := decodeBase64Any(*r.vs)
			if err != nil {
				return Value{}, "sv of an Opaque resource is not base64: " + err.Error()
			}
			return OpaqueValue(data), ""
		}
		return mismatch("a string (vs)")
	case r.vb != nil:
		if known && t != TypeBoolean {
			return mismatch("a boolean (vb)")
		}
		return BoolValue(*r.vb), ""
	case r.hasVd:
		if known && t != TypeOpaque {
			return mismatch("data (vd)")
		}
		return OpaqueValue(r.vd), ""
	}
	if known && t != TypeObjlnk {
		return mismatch("an object link (vlo)")
	}
	o, i, ok := parseObjlnk(*r.vlo)
	if !ok {
		return Value{}, "vlo " + strconv.Quote(clip(*r.vlo)) + " is not an object link; want object:instance"
	}
	return ObjlnkValue(o, i), ""
}

func (n senmlNum) int() (int64, bool) {
	switch n.kind {
	case 'i':
		return n.i, true
	case 'f':
		if n.f == math.Trunc(n.f) && n.f >= -(1<<63) && n.f < 1<<63 {
			return int64(n.f), true
		}
	}
	return 0, false
}

func (n senmlNum) uint() (uint64, bool) {
	switch n.kind {
	case 'i':
		return uint64(n.i), n.i >= 0
	case 'u':
		return n.u, true
	case 'f':
		if n.f == math.Trunc(n.f) && n.f >= 0 && n.f < 1<<64 {
			return uint64(n.f), true
		}
	}
	return 0, false
}

func (n senmlNum) float() float64 {
	switch n.kind {
	case 'i':
		return float64(n.i)
	case 'u':
		return float64(n.u)
	}
	return n.f
}

// String returns the number as it would be written.
func (n senmlNum) String() string {
	switch n.kind {
	case 'i':
		return strconv.FormatInt(n.i, 10)
	case 'u':
		return strconv.FormatUint(n.u, 10)
	}
	return strconv.FormatFloat(n.f, 'g', -1, 64)
}

// senmlBase returns the bn the encoders write for base and the prefix of
// the record names it stands for: "/3/0/" for a request on /3/0 or below,
// "/3/" for /3, "" (no bn) for the root.
func senmlBase(base Path) string {
	switch base.n {
	case 0:
		return ""
	case 1:
		return "/" + strconv.Itoa(int(base.ids[0])) + "/"
	}
	return "/" + strconv.Itoa(int(base.ids[0])) + "/" + strconv.Itoa(int(base.ids[1])) + "/"
}

// senmlEncodeCheck checks records for the SenML encoders.
func senmlEncodeCheck(f Format, base Path, recs []Record) error {
	for _, rec := range recs {
		if err := checkRecord(f, base, rec); err != nil {
			return err
		}
	}
	return nil
}

// senmlJSONRec is a SenML JSON record (RFC 8428 §4, §5).
type senmlJSONRec struct {
	Bn  *string      `json:"bn,omitempty"`
	Bt  *float64     `json:"bt,omitempty"`
	N   *string      `json:"n,omitempty"`
	T   *float64     `json:"t,omitempty"`
	V   *json.Number `json:"v,omitempty"`
	Vs  *string      `json:"vs,omitempty"`
	Vb  *bool        `json:"vb,omitempty"`
	Vd  *string      `json:"vd,omitempty"`
	Vlo *string      `json:"vlo,omitempty"`
}

// DecodeSenMLJSON decodes a SenML JSON payload (content format 110) read
// from base. Record names (bn+n) must be paths of resources or resource
// instances under base. Values get the type reg defines for their resource;
// without a definition they keep the type the record gives (v: Integer
// when integral, else Float; vs: String; vb: Boolean; vd: Opaque; vlo:
// Objlnk). Errors are *DecodeError naming the path and the byte offset of
// the record.
func DecodeSenMLJSON(base Path, b []byte, reg *Objects) ([]Record, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	fail := func(off int, reason string, err error) error {
		return &DecodeError{Format: FormatSenMLJSON, Path: base.String(), Offset: off, Reason: reason, Err: err}
	}
	tok, err := d.Token()
	if err != nil {
		return nil, fail(jsonOffset(d), "want a JSON array of SenML records", err)
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '[' {
		return nil, fail(0, "want a JSON array of SenML records", nil)
	}
	var recs []senmlRec
	for d.More() {
		off := skipJSONSpace(b, int(d.InputOffset()))
		var jr senmlJSONRec
		if err := d.Decode(&jr); err != nil {
			// encoding/json's offsets inside a streamed value are not
			// reliable; the record's own offset is.
			return nil, fail(off, "SenML record is not a JSON object of SenML fields", err)
		}
		r := senmlRec{off: off, bn: jr.Bn, n: jr.N, bt: jr.Bt, t: jr.T, vs: jr.Vs, vb: jr.Vb, vlo: jr.Vlo}
		if jr.V != nil {
			var ok bool
			if r.v, ok = parseJSONNumber(string(*jr.V)); !ok {
				return nil, fail(off, numberRangeError("v", string(*jr.V)), nil)
			}
		}
		if jr.Vd != nil {
			r.hasVd = true
			if r.vd, err = decodeBase64Any(*jr.Vd); err != nil {
				return nil, fail(off, "vd is not base64url", err)
			}
		}
		recs = append(recs, r)
	}
	if _, err := d.Token(); err != nil {
		return nil, fail(jsonOffset(d), "SenML array not closed", err)
	}
	if off := skipJSONSpace(b, int(d.InputOffset())); off != len(b) {
		return nil, fail(off, "data after the SenML array", nil)
	}
	return senmlDecode(FormatSenMLJSON, base, recs, reg)
}

func skipJSONSpace(b []byte, off int) int {
	for off < len(b) && (b[off] == ' ' || b[off] == '\t' || b[off] == '\r' || b[off] == '\n' || b[off] == ',') {
		off++
	}
	return off
}

// jsonOffset returns the byte offset of a token error: the decoder's
// position, which for a truncated payload is its end.
func jsonOffset(d *json.Decoder) int { return int(d.InputOffset()) }

// parseJSONNumber reads a JSON number (encoding/json checked its syntax)
// as an integer when it is one, else as a float; ok is false for a number
// outside the range of a 64-bit float (1e400), which would read as an
// infinity JSON cannot carry back.
func parseJSONNumber(s string) (n senmlNum, ok bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return senmlNum{kind: 'i', i: i}, true
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return senmlNum{kind: 'u', u: u}, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return senmlNum{}, false // out of range: ±Inf
	}
	return senmlNum{kind: 'f', f: f}, true
}

// numberRangeError is the reason of a DecodeError for a number
// parseJSONNumber refused.
func numberRangeError(field, s string) string {
	return field + " " + clip(s) + " is outside the range of a 64-bit float (about ±1.8e308)"
}

// decodeBase64Any decodes base64url as RFC 8428 writes it (no padding),
// and also padded or standard base64, which some clients send.
func decodeBase64Any(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// AppendSenMLJSON appends the SenML JSON encoding (content format 110) of
// recs under base to dst. The first record carries bn (see the package
// documentation); records keep their order; a record's Time becomes t.
func AppendSenMLJSON(dst []byte, base Path, recs []Record) ([]byte, error) {
	if err := senmlEncodeCheck(FormatSenMLJSON, base, recs); err != nil {
		return dst, err
	}
	bn := senmlBase(base)
	out := make([]senmlJSONRec, len(recs))
	for i, rec := range recs {
		jr := &out[i]
		if i == 0 && bn != "" {
			jr.Bn = &bn
		}
		n := rec.Path.String()[len(bn):] // the root has no bn: n is the whole path
		jr.N = &n
		if !rec.Time.IsZero() {
			t := float64(rec.Time.UnixNano()) / 1e9
			if rec.Time.Nanosecond() == 0 {
				t = float64(rec.Time.Unix())
			}
			jr.T = &t
		}
		v := rec.Value
		switch v.t {
		case TypeInteger, TypeTime, TypeUnsigned, TypeFloat:
			if v.t == TypeFloat {
				f, _ := v.Float()
				if math.IsNaN(f) || math.IsInf(f, 0) {
					return dst, &EncodeError{Format: FormatSenMLJSON, Path: rec.Path.String(), Reason: "JSON has no NaN or infinity"}
				}
			}
			num := json.Number(v.String())
			jr.V = &num
		case TypeString, TypeCorelnk:
			s := v.s
			jr.Vs = &s
		case TypeBoolean:
			b := v.n != 0
			jr.Vb = &b
		case TypeOpaque:
			s := base64.RawURLEncoding.EncodeToString([]byte(v.s))
			jr.Vd = &s
		case TypeObjlnk:
			s := v.String()
			jr.Vlo = &s
		}
	}
	enc, err := json.Marshal(out)
	if err != nil {
		return dst, &EncodeError{Format: FormatSenMLJSON, Reason: err.Error()}
	}
	return append(dst, enc...), nil
}
