package codec_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/doze-io/doze/codec"
)

// FuzzDecode decodes arbitrary bytes with every testdata codec, as uplink and
// as downlink: no panics, and whatever decodes re-encodes to the same bytes
// (COD-4 round trip). Seeds come from the table tests.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata codecs: %v", err)
	}
	var codecs []*codec.Declarative
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		d, err := codec.Compile(data, nil)
		if err != nil {
			f.Fatalf("Compile(%s): %v", name, err)
		}
		codecs = append(codecs, d)
	}
	for _, h := range []string{
		"0155FFAB0001E24000960010", "0201590A0001E0F300FA0100000E10" + "3230323631313235543232303030305A" + "044E4F4E45", "03001100",
		"100007" + "00000E10", "1100", "0155FFAB0001E240009600", "030011" + "00FF", "FFFE0100", "",
		"01054142", "0100000000000000", "01034142430002ABCD41AC0000", "0431323334" + "61626364" + "05",
	} {
		f.Add(unhex(f, h))
	}
	for _, rt := range roundTrips {
		d := load(f, rt.file, nil)
		if b, err := d.Append(nil, rt.msg); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, d := range codecs {
			var rec codec.Record
			if err := d.DecodeRecord(payload, &rec); err == nil {
				m := rec.Build()
				b, err := d.Append(nil, m)
				if err != nil {
					t.Fatalf("%s: decoded % X to %s but encoding it failed: %v", d.Name(), payload, toJSON(t, m), err)
				}
				if !bytes.Equal(b, payload) {
					t.Fatalf("%s: decoded % X to %s, re-encoded to % X", d.Name(), payload, toJSON(t, m), b)
				}
				if _, err := d.Decode(payload); err != nil {
					t.Fatalf("%s: DecodeRecord accepted % X, Decode refused: %v", d.Name(), payload, err)
				}
			}
			if err := d.DecodeDownlinkRecord(payload, &rec); err == nil {
				m := rec.Build()
				if _, ok := m.(*codec.ReportAck); ok {
					continue // an acknowledgement does not carry its report
				}
				b, err := d.Append(nil, m)
				if err != nil {
					t.Fatalf("%s: decoded downlink % X to %s but encoding it failed: %v", d.Name(), payload, toJSON(t, m), err)
				}
				if !bytes.Equal(b, payload) {
					t.Fatalf("%s: decoded downlink % X to %s, re-encoded to % X", d.Name(), payload, toJSON(t, m), b)
				}
			}
		}
	})
}
