package lwm2m

import (
	"encoding/json"
	"testing"
)

// deviceJSONBaseline is the 13-resource /3/0 of the specification example
// as plain Go data, for the encoding/json baseline.
type deviceJSONBaseline struct {
	Path  string `json:"p"`
	Str   string `json:"s,omitempty"`
	Int   int64  `json:"i,omitempty"`
	IsInt bool   `json:"n,omitempty"`
}

func deviceBaseline() []deviceJSONBaseline {
	var out []deviceJSONBaseline
	for _, r := range specDeviceRecords() {
		d := deviceJSONBaseline{Path: r.Path.String()}
		if i, ok := r.Value.Int(); ok {
			d.Int, d.IsInt = i, true
		} else if tm, ok := r.Value.Time(); ok {
			d.Int, d.IsInt = tm.Unix(), true
		} else {
			d.Str = r.Value.String()
		}
		out = append(out, d)
	}
	return out
}

// BenchmarkDevice measures decoding and encoding of the 13-resource Device
// object instance /3/0 of LwM2M 1.1 Core §7.4.3.1 (16 values) in TLV and
// SenML CBOR, with encoding/json of the same data as the baseline in the
// same run. Figures are quoted in doc.go.
func BenchmarkDevice(b *testing.B) {
	reg := NewBuiltinObjects()
	base := MustPath("/3/0")
	recs := specDeviceRecords()
	tlv, err := AppendTLV(nil, base, recs)
	if err != nil {
		b.Fatal(err)
	}
	cbor, err := AppendSenMLCBOR(nil, base, recs)
	if err != nil {
		b.Fatal(err)
	}
	senmlJSON, err := AppendSenMLJSON(nil, base, recs)
	if err != nil {
		b.Fatal(err)
	}
	plain := deviceBaseline()
	plainJSON, err := json.Marshal(plain)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("tlv-decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(tlv)))
		for b.Loop() {
			if _, err := DecodeTLV(base, tlv, reg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tlv-encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(tlv)))
		buf := make([]byte, 0, 256)
		for b.Loop() {
			buf, _ = AppendTLV(buf[:0], base, recs)
		}
	})
	b.Run("senmlcbor-decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(cbor)))
		for b.Loop() {
			if _, err := DecodeSenMLCBOR(base, cbor, reg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("senmlcbor-encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(cbor)))
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf, _ = AppendSenMLCBOR(buf[:0], base, recs)
		}
	})
	b.Run("senmljson-decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(senmlJSON)))
		for b.Loop() {
			if _, err := DecodeSenMLJSON(base, senmlJSON, reg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-json-unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(plainJSON)))
		for b.Loop() {
			var out []deviceJSONBaseline
			if err := json.Unmarshal(plainJSON, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-json-marshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(plainJSON)))
		for b.Loop() {
			if _, err := json.Marshal(plain); err != nil {
				b.Fatal(err)
			}
		}
	})
}
