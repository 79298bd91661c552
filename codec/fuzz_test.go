package codec_test

import (
	"bytes"
	"errors"
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
		"0100" + "3230323631313235543232303030305A" + "054142", "0201590A", "0100" + "3230323631313235543232303030305A" + "0000",
		"03000102" + "4F4B", "1000010503617070", "110002" + "7B7D",
		// fastpath.json: the fast path, its mid check, a PCP frame that
		// reaches its messageId check.
		"00FE0011FFFFFE8000010001E24080", "00FE000000000000000000000000" + "00", "FFFE001100000000000000000000" + "00",
		"00FD800000000000000100000003FF",
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
			// Decoding twice into one Record: the second decode takes the
			// fast path when the message has one, and must agree.
			var rec codec.Record
			err := d.DecodeRecord(payload, &rec)
			if first, again := decoded(&rec, err), decoded(&rec, d.DecodeRecord(payload, &rec)); first != again {
				t.Fatalf("%s: % X decoded to %s, then into the same Record to %s", d.Name(), payload, first, again)
			}
			if err == nil {
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
			err = d.DecodeDownlinkRecord(payload, &rec)
			if first, again := decoded(&rec, err), decoded(&rec, d.DecodeDownlinkRecord(payload, &rec)); first != again {
				t.Fatalf("%s: downlink % X decoded to %s, then into the same Record to %s", d.Name(), payload, first, again)
			}
			if err == nil {
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

// FuzzCompile feeds arbitrary codec JSON to Compile: no panics, every
// failure is a *CompileError with at least one problem, and a codec that
// compiles decodes and encodes without panicking. Inputs are whole codec
// files, so run it with a short -fuzzminimizetime (1s): minimizing a 3 KB
// input otherwise stalls the run.
func FuzzCompile(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	broken, _ := filepath.Glob("testdata/broken/*.json")
	for _, name := range append(files, broken...) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, []byte{1, 2, 3, 4})
	}
	f.Add([]byte(`{"messages":[{"name":"a","kind":"report","service":"S","fields":[{"name":"n","type":"uint8"},{"name":"v","type":"variant","lengthField":"n"}]}]}`), []byte{2, 0xAA, 0xBB})
	model := waterMeterModel
	f.Fuzz(func(t *testing.T, src, payload []byte) {
		d, err := codec.Compile(src, model)
		if err != nil {
			var ce *codec.CompileError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("Compile failed without problems: %v", err)
			}
			for _, p := range ce.Problems {
				if p.Code == "" || p.Text == "" {
					t.Fatalf("problem without code or text: %+v", p)
				}
			}
			return
		}
		if m, err := d.Decode(payload); err == nil {
			b, err := d.Append(nil, m)
			if err != nil || !bytes.Equal(b, payload) {
				t.Fatalf("decoded % X to %s; re-encoded % X, %v", payload, toJSON(t, m), b, err)
			}
		}
		_, _ = d.DecodeDownlink(payload)
		_, _ = d.Encode(&codec.ReportAck{Request: payload})
	})
}

// FuzzEncodeJSON parses arbitrary JSON messages and encodes them with every
// testdata codec: no panics, and whatever encodes decodes and re-encodes to
// the same bytes (COD-4 round trip from the JSON side).
func FuzzEncodeJSON(f *testing.F) {
	for _, rt := range roundTrips {
		f.Add([]byte(toJSON(f, rt.msg)))
	}
	f.Add([]byte(`{"msgType":"cloudReq","serviceId":"Meter","cmd":"SET_REPORT_PERIOD","paras":{"period":1e3},"mid":7}`))
	f.Add([]byte(`{"msgType":"deviceReq","data":[{"serviceId":"Bytes","serviceData":{"code":"\u0000\u00ff","text":"","blob":"AAAA","data":"","tail":1}}]}`))
	files, _ := filepath.Glob("testdata/*.json")
	var codecs []*codec.Declarative
	for _, name := range files {
		data, _ := os.ReadFile(name)
		d, err := codec.Compile(data, nil)
		if err != nil {
			f.Fatal(err)
		}
		codecs = append(codecs, d)
	}
	f.Fuzz(func(t *testing.T, js []byte) {
		m, err := codec.ParseMessage(js)
		if err != nil {
			return
		}
		for _, d := range codecs {
			b, err := d.Append(nil, m)
			if err != nil {
				continue
			}
			var rec codec.Record
			switch m.(type) {
			case *codec.Report, *codec.Response:
				err = d.DecodeRecord(b, &rec)
			case *codec.Command:
				err = d.DecodeDownlinkRecord(b, &rec)
			default:
				continue
			}
			if err != nil {
				t.Fatalf("%s: %s encoded to % X, which does not decode: %v", d.Name(), js, b, err)
			}
			b2, err := d.Append(nil, rec.Build())
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("%s: %s encoded to % X, decoded to %s, re-encoded to % X (%v)", d.Name(), js, b, toJSON(t, rec.Build()), b2, err)
			}
		}
	})
}
