package codec_test

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/doze-io/doze/codec"
	"github.com/stretchr/testify/require"
)

// numbersPayload is the numbers message of alltypes.json with f32 and
// f64 set to the given bits and the other fields at their extremes.
func numbersPayload(f32 uint32, f64 uint64) []byte {
	b := []byte{0x01, 0x80, 0x80, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00}
	b = binary.BigEndian.AppendUint64(b, 1<<63)                               // i64
	b = append(b, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF) // u8 u16 u24 u32
	b = binary.BigEndian.AppendUint64(b, math.MaxUint64)                      // u64
	b = binary.BigEndian.AppendUint32(b, f32)                                 // f32
	b = binary.BigEndian.AppendUint64(b, f64)                                 // f64
	return append(b, 0xFF, 0x85, 0x00, 0x03, 0xF1, 0x80, 0x00, 0x00, 0x00)    // celsius odd big
}

// serviceJSONCases are reports whose service JSON must equal encoding/json's
// encoding of the maps Build returns: every field type, floats on both
// sides of the exponent-form bounds, and strings that JSON escapes.
func serviceJSONCases(t testing.TB) []struct {
	file    string
	payload []byte
} {
	f64 := math.Float64bits
	cases := []struct {
		file    string
		payload []byte
	}{
		{"watermeter.json", meterPayload},
		{"watermeter.json", unhex(t, statusHex)},
		{"watermeter.json", unhex(t, "02 FFFF 80 FFFFFFFF FFFF FF FFFFFFFF 3C263E225C01080C0A0D097F80E9FF00 06 5441004D50E2")},
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1e-7, 1e-6, 9.99999e-7, 1e20, 1e21, -1e21, 123456789.125, 5e-324,
		math.MaxFloat64, 0.1, 1.0 / 3, -2.5e-10, 1e100} {
		cases = append(cases, struct {
			file    string
			payload []byte
		}{"alltypes.json", numbersPayload(math.Float32bits(min(float32(f), math.MaxFloat32)), f64(f))})
	}
	bytesMsg := []byte{0x02, 'A', 'B', 0, 0, 7, 'h', 0xE9, '<', '&', '>', '"', 0x1F, 0, 1, 2, 0, 4, 0xFF, 0x00, '\\', 0xF0, 9}
	cases = append(cases, struct {
		file    string
		payload []byte
	}{"alltypes.json", bytesMsg})
	return cases
}

// TestServiceJSON: for every service of a decoded report,
// AppendServiceJSON writes what encoding/json writes for the serviceData
// map of Build, ServiceID is its serviceId and ServiceValues its values.
func TestServiceJSON(t *testing.T) {
	for _, c := range serviceJSONCases(t) {
		d := load(t, c.file, nil)
		var rec codec.Record
		require.NoError(t, d.DecodeRecord(c.payload, &rec), "%s % X", c.file, c.payload)
		rep, ok := rec.Build().(*codec.Report)
		require.True(t, ok, "% X decodes to a report", c.payload)
		require.Equal(t, len(rep.Data), rec.Services())
		for j, sd := range rep.Data {
			want, err := json.Marshal(sd.ServiceData)
			require.NoError(t, err)
			got, err := rec.AppendServiceJSON([]byte("prefix"), j)
			require.NoError(t, err)
			require.Equal(t, "prefix"+string(want), string(got), "%s % X service %s", c.file, c.payload, sd.ServiceID)
			require.Equal(t, sd.ServiceID, rec.ServiceID(j))
			vals := map[string]any{}
			rec.ServiceValues(vals, j)
			require.Equal(t, sd.ServiceData, vals)
		}
	}
}

// TestServiceJSONRefusesInfinity: a scaled value too large for a
// float64 is refused with an error naming the field, as encoding/json
// refuses it, and dst comes back as it was.
func TestServiceJSONRefusesInfinity(t *testing.T) {
	d, err := codec.Compile([]byte(`{"name":"huge","messages":[{"name":"m","kind":"report","service":"S",
		"fields":[{"name":"x","type":"int32","scale":1e308}]}]}`), nil)
	require.NoError(t, err)
	var rec codec.Record
	require.NoError(t, d.DecodeRecord([]byte{0x7F, 0xFF, 0xFF, 0xFF}, &rec))
	_, jerr := json.Marshal(rec.Build().(*codec.Report).Data[0].ServiceData)
	require.Error(t, jerr, "encoding/json refuses x = %v", rec.Float(0))
	got, err := rec.AppendServiceJSON([]byte("x"), 0)
	require.ErrorContains(t, err, "field x of service S")
	require.Equal(t, "x", string(got))
}

// TestServiceJSONAllocs: encoding the demo meter's services allocates
// nothing once dst has room (COD-4).
func TestServiceJSONAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	d := load(t, "watermeter.json", nil)
	for _, p := range [][]byte{meterPayload, unhex(t, statusHex)} {
		var rec codec.Record
		require.NoError(t, d.DecodeRecord(p, &rec))
		buf := make([]byte, 0, 512)
		allocs := testing.AllocsPerRun(100, func() {
			b := buf[:0]
			for j := range rec.Services() {
				b, _ = rec.AppendServiceJSON(b, j)
			}
		})
		require.Zero(t, allocs, "AppendServiceJSON of % X", p)
	}
}

// FuzzServiceJSON decodes arbitrary bytes with every testdata codec: for
// a report, AppendServiceJSON agrees with encoding/json on the maps of
// Build, error for error. Seeds: the table of TestServiceJSON.
func FuzzServiceJSON(f *testing.F) {
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
	for _, c := range serviceJSONCases(f) {
		f.Add(c.payload)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, d := range codecs {
			var rec codec.Record
			if d.DecodeRecord(payload, &rec) != nil || rec.Type() != codec.MsgReport {
				continue
			}
			rep := rec.Build().(*codec.Report)
			for j, sd := range rep.Data {
				want, werr := json.Marshal(sd.ServiceData)
				got, err := rec.AppendServiceJSON(nil, j)
				if (werr != nil) != (err != nil) || string(want) != string(got) {
					t.Fatalf("%s % X service %s: AppendServiceJSON = %s, %v; encoding/json = %s, %v",
						d.Name(), payload, sd.ServiceID, got, err, want, werr)
				}
			}
		}
	})
}
