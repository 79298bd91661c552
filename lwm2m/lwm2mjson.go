package lwm2m

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// lwm2mJSONRec is one entry of the "e" array of the LwM2M 1.0 JSON format.
type lwm2mJSONRec struct {
	N  *string      `json:"n"`
	V  *json.Number `json:"v"`
	Sv *string      `json:"sv"`
	Bv *bool        `json:"bv"`
	Ov *string      `json:"ov"`
	T  *float64     `json:"t"`
}

// DecodeJSON decodes a payload in the JSON format of LwM2M 1.0 (content
// format 11543, LwM2M 1.0 TS §6.4.4): an object with an optional base name
// "bn", an optional base time "bt" and an array "e" of entries with a name
// "n" relative to bn and one of "v" (number), "sv" (string), "bv"
// (boolean), "ov" (object link "3:0"). Without bn, names are relative to
// base. Opaque resources travel base64-encoded in sv. Values are typed as
// in DecodeSenMLJSON. The package decodes this format but does not write
// it; LwM2M 1.1 replaced it with SenML JSON.
func DecodeJSON(base Path, b []byte, reg *Objects) ([]Record, error) {
	fail := func(off int, reason string, err error) error {
		return &DecodeError{Format: FormatJSON, Path: base.String(), Offset: off, Reason: reason, Err: err}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil, fail(0, "want a JSON object with an \"e\" array", err)
	}
	var bn *string
	var bt *float64
	var entries []lwm2mJSONRec
	var offs []int
	for d.More() {
		keyOff := skipJSONSpace(b, int(d.InputOffset()))
		tok, err := d.Token()
		if err != nil {
			return nil, fail(jsonOffset(d), "malformed JSON", err)
		}
		key, _ := tok.(string)
		switch key {
		case "bn":
			if err := d.Decode(&bn); err != nil || bn == nil {
				return nil, fail(keyOff, "bn must be a string", err)
			}
		case "bt":
			if err := d.Decode(&bt); err != nil || bt == nil {
				return nil, fail(keyOff, "bt must be a number", err)
			}
		case "e":
			if tok, err := d.Token(); err != nil || tok != json.Delim('[') {
				return nil, fail(keyOff, "e must be an array of entries", err)
			}
			for d.More() {
				off := skipJSONSpace(b, int(d.InputOffset()))
				var e lwm2mJSONRec
				if err := d.Decode(&e); err != nil {
					return nil, fail(off, "entry is not an object of n, v, sv, bv, ov, t", err)
				}
				entries = append(entries, e)
				offs = append(offs, off)
			}
			if _, err := d.Token(); err != nil {
				return nil, fail(jsonOffset(d), "e array not closed", err)
			}
		default:
			var skip json.RawMessage
			if err := d.Decode(&skip); err != nil {
				return nil, fail(keyOff, "malformed JSON in the value of "+strconv.Quote(key), err)
			}
		}
	}
	if _, err := d.Token(); err != nil {
		return nil, fail(jsonOffset(d), "object not closed", err)
	}
	if off := skipJSONSpace(b, int(d.InputOffset())); off != len(b) {
		return nil, fail(off, "data after the JSON object", nil)
	}
	prefix := base.String()
	if bn != nil {
		prefix = *bn
	}
	if prefix != "" && prefix[len(prefix)-1] != '/' {
		prefix += "/"
	}
	recs := make([]senmlRec, len(entries))
	for i, e := range entries {
		name := prefix
		if e.N != nil {
			name += *e.N
		}
		if len(name) > 1 && name[len(name)-1] == '/' {
			name = name[:len(name)-1]
		}
		r := senmlRec{off: offs[i], n: &name, bt: bt, t: e.T, vs: e.Sv, vb: e.Bv, vlo: e.Ov}
		if i > 0 {
			r.bt = nil // senmlDecode keeps bt from the first record
		}
		if e.V != nil {
			var ok bool
			if r.v, ok = parseJSONNumber(string(*e.V)); !ok {
				return nil, fail(offs[i], numberRangeError("v", string(*e.V)), nil)
			}
		}
		recs[i] = r
	}
	return senmlDecode(FormatJSON, base, recs, reg)
}
