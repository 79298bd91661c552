package lwm2m

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// DecodeText decodes a plain-text payload (content format 0, LwM2M 1.1 Core
// §7.3.1): one value of the resource or resource instance base. The value
// gets the type reg defines for the resource; without a definition it is a
// Raw value holding the text (see Value.As). Numbers are decimal, Booleans
// 0 or 1, Time is Unix seconds, Objlnk is "object:instance", Opaque is
// base64. Errors are *DecodeError naming the path and the byte offset.
func DecodeText(base Path, b []byte, reg *Objects) ([]Record, error) {
	if base.n < 3 {
		return nil, &DecodeError{Format: FormatText, Path: base.String(),
			Reason: "plain text carries one resource value; the path must name a resource or resource instance"}
	}
	if !utf8.Valid(b) {
		off := 0
		for off < len(b) {
			r, size := utf8.DecodeRune(b[off:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			off += size
		}
		return nil, &DecodeError{Format: FormatText, Path: base.String(), Offset: off, Reason: "text is not valid UTF-8"}
	}
	t, ok := reg.typeAt(base)
	if !ok {
		return []Record{{Path: base, Value: RawValue(FormatText, b)}}, nil
	}
	v, reason := textValue(string(b), t)
	if reason != "" {
		return nil, &DecodeError{Format: FormatText, Path: base.String(), Reason: reason}
	}
	return []Record{{Path: base, Value: v}}, nil
}

// AppendText appends the plain-text form of the one record in recs, which
// must be at base, a resource or resource instance (see Value.String for
// the forms). A Float that is NaN or infinite is an error: plain text has
// decimal numbers only.
func AppendText(dst []byte, base Path, recs []Record) ([]byte, error) {
	rec, err := singleRecord(FormatText, base, recs)
	if err != nil {
		return dst, err
	}
	if rec.Value.t == TypeRaw && rec.Value.src != FormatText {
		return dst, &EncodeError{Format: FormatText, Path: base.String(),
			Reason: "raw value from " + rec.Value.src.String() + "; convert it with Value.As first"}
	}
	if f, ok := rec.Value.Float(); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return dst, &EncodeError{Format: FormatText, Path: base.String(),
			Reason: "Float " + strconv.FormatFloat(f, 'g', -1, 64) + " has no plain-text form; the text format carries decimal numbers only"}
	}
	out, _ := appendText(dst, rec.Value)
	return out, nil
}

// singleRecord returns the one record of a single-value format.
func singleRecord(f Format, base Path, recs []Record) (Record, error) {
	if base.n < 3 {
		return Record{}, &EncodeError{Format: f, Path: base.String(),
			Reason: f.String() + " carries one resource value; the path must name a resource or resource instance"}
	}
	if len(recs) != 1 {
		return Record{}, &EncodeError{Format: f, Path: base.String(),
			Reason: strconv.Itoa(len(recs)) + " records; " + f.String() + " carries exactly one"}
	}
	if recs[0].Path != base {
		return Record{}, &EncodeError{Format: f, Path: recs[0].Path.String(), Reason: "record is not at " + base.String()}
	}
	if recs[0].Value.t == TypeNone {
		return Record{}, &EncodeError{Format: f, Path: base.String(), Reason: "record has no value"}
	}
	return recs[0], nil
}
