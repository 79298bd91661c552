package codec

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Services returns the number of services the data fields of a decoded
// report belong to, and 0 for other messages. Service j is the j-th of
// Report.Data as Build returns it.
func (r *Record) Services() int {
	if r.msg.kind != kReport {
		return 0
	}
	return len(r.msg.services)
}

// ServiceID returns the serviceId of service j of a decoded report.
func (r *Record) ServiceID(j int) string { return r.msg.services[j].name }

// ServiceValues puts the values of service j of a decoded report into dst,
// as Build puts them into Report.Data[j].ServiceData (see Value).
func (r *Record) ServiceValues(dst map[string]any, j int) {
	for i := range r.fields {
		if f := &r.fields[i]; f.role == roleData && f.svc == j {
			dst[f.name] = r.Value(i)
		}
	}
}

// AppendServiceJSON appends the serviceData object of service j of a
// decoded report to dst: byte for byte what encoding/json writes for
// Report.Data[j].ServiceData of Build (keys sorted, <, > and & escaped,
// arrays and variants in base64), without building the map (COD-4). Like
// encoding/json it refuses a NaN or infinite float with an error naming the
// field; dst is then returned as it came.
func (r *Record) AppendServiceJSON(dst []byte, j int) ([]byte, error) {
	var buf [16]int
	idx := buf[:0]
	for i := range r.fields {
		if f := &r.fields[i]; f.role == roleData && f.svc == j {
			// Insertion sort by name, stable: of fields sharing a name
			// the last stays last, and a map would hold its value.
			k := len(idx)
			idx = append(idx, i)
			for ; k > 0 && r.fields[idx[k-1]].name > f.name; k-- {
				idx[k] = idx[k-1]
			}
			idx[k] = i
		}
	}
	out := append(dst, '{')
	first := true
	for n, i := range idx {
		f := &r.fields[i]
		if n+1 < len(idx) && r.fields[idx[n+1]].name == f.name {
			continue // a later field of the same name wins
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendJSONString(out, f.name)
		out = append(out, ':')
		var err error
		if out, err = r.appendJSONValue(out, i); err != nil {
			return dst, fmt.Errorf("codec: message %s, field %s of service %s: %w", r.msg.name, f.name, r.msg.services[j].name, err)
		}
	}
	return append(out, '}'), nil
}

// appendJSONValue appends field i's Value as encoding/json writes it.
func (r *Record) appendJSONValue(b []byte, i int) ([]byte, error) {
	f := &r.fields[i]
	c := &r.num[i]
	switch {
	case f.typ == tFloat:
		return appendJSONFloat(b, c.add)
	case f.scaled:
		return appendJSONFloat(b, r.Float(i))
	case f.typ == tUint && f.size == 8:
		return strconv.AppendUint(b, uint64(c.i), 10), nil
	case f.integer():
		return strconv.AppendInt(b, c.i, 10), nil
	case f.typ == tString || f.typ == tVarString:
		bs := r.bs[i]
		if f.typ == tString {
			for len(bs) > 0 && bs[len(bs)-1] == 0 {
				bs = bs[:len(bs)-1]
			}
		}
		return appendJSONLatin1(b, bs), nil
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, r.bs[i])
	return append(b, '"'), nil
}

// appendJSONFloat writes f as encoding/json does: the shortest decimal
// that reads back as f, in exponent form below 1e-6 and from 1e21, with
// a one-digit negative exponent not padded (1e-7, not 1e-07).
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendJSONLatin1 writes the string whose runes are the bytes of s (see
// latin1) as a JSON string, escaped as encoding/json escapes it.
func appendJSONLatin1(b []byte, s []byte) []byte {
	for _, c := range s {
		if !plainJSON(c) {
			v, _ := json.Marshal(latin1(s)) // rare: escapes and runes above 0x7F
			return append(b, v...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONString writes s (a field name from the codec) as a JSON
// string.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainJSON(s[i]) {
			v, _ := json.Marshal(s)
			return append(b, v...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainJSON reports whether encoding/json writes byte c of a string as it
// is: printable ASCII other than the quote, the backslash and the
// characters it escapes for HTML.
func plainJSON(c byte) bool {
	return c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}
