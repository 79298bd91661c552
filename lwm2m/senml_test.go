package lwm2m

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// specDeviceSenMLJSON is the Device object instance of LwM2M 1.1 Core
// §7.4.4 (SenML JSON), the same values as specDeviceTLV.
const specDeviceSenMLJSON = `[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},
{"n":"1","vs":"Lightweight M2M Client"},
{"n":"2","vs":"345000123"},
{"n":"3","vs":"1.0"},
{"n":"6/0","v":1},
{"n":"6/1","v":5},
{"n":"7/0","v":3800},
{"n":"7/1","v":5000},
{"n":"8/0","v":125},
{"n":"8/1","v":900},
{"n":"9","v":100},
{"n":"10","v":15},
{"n":"11/0","v":0},
{"n":"13","v":1367491215},
{"n":"14","vs":"+02:00"},
{"n":"16","vs":"U"}]`

func TestSenMLJSONSpecDevice(t *testing.T) {
	got, err := DecodeSenMLJSON(MustPath("/3/0"), []byte(specDeviceSenMLJSON), NewBuiltinObjects())
	require.NoError(t, err)
	require.Equal(t, specDeviceRecords(), got)

	enc, err := AppendSenMLJSON(nil, MustPath("/3/0"), specDeviceRecords())
	require.NoError(t, err)
	require.JSONEq(t, specDeviceSenMLJSON, string(enc), "AppendSenMLJSON gives the layout of the specification")

	// Without definitions, numbers keep their JSON form.
	got, err = DecodeSenMLJSON(MustPath("/3/0"), []byte(specDeviceSenMLJSON), nil)
	require.NoError(t, err)
	require.Equal(t, IntValue(1367491215), got[13].Value, "Time without a definition is an Integer")
}

// senmlJSONTests are SenML JSON payloads; they also seed
// FuzzDecodeSenMLJSON. off is the byte offset the error names.
var senmlJSONTests = []struct {
	path, in string
	want     []Record
	off      int
	has      string
}{
	{path: "/", in: `[{"bn":"/19/0/","n":"0/0","vd":"AQID","t":1700000000},{"n":"0/1","vd":"_-8","bt":1700000000,"t":5.5}]`,
		want: []Record{
			{Path: MustPath("/19/0/0/0"), Value: OpaqueValue([]byte{1, 2, 3}), Time: time.Unix(1700000000, 0).UTC()},
			{Path: MustPath("/19/0/0/1"), Value: OpaqueValue([]byte{0xff, 0xef}), Time: time.Unix(1700000005, 5e8).UTC()},
		}},
	// bn and bt hold for the records after them until changed (RFC 8428
	// §4.1); bt alone gives the time.
	{path: "/", in: `[{"bn":"/3/0/","bt":1700000000,"n":"9","v":50},{"n":"10","v":7},{"bn":"/4/0/","n":"2","v":-90}]`,
		want: []Record{
			{Path: MustPath("/3/0/9"), Value: IntValue(50), Time: time.Unix(1700000000, 0).UTC()},
			{Path: MustPath("/3/0/10"), Value: IntValue(7), Time: time.Unix(1700000000, 0).UTC()},
			{Path: MustPath("/4/0/2"), Value: IntValue(-90), Time: time.Unix(1700000000, 0).UTC()},
		}},
	{path: "/3/0", in: `[{"n":"/3/0/22/0","vlo":"4:0"},{"n":"/3/0/9","v":1e2}]`, want: []Record{
		{Path: MustPath("/3/0/22/0"), Value: ObjlnkValue(4, 0)}, {Path: MustPath("/3/0/9"), Value: IntValue(100)}}},
	{path: "/1/0", in: ` [ {"bn":"/1/0/","n":"6","vb":true} , {"n":"11","v":255} ] `, want: []Record{
		{Path: MustPath("/1/0/6"), Value: BoolValue(true)}, {Path: MustPath("/1/0/11"), Value: UintValue(255)}}},
	{path: "/3303", in: `[{"bn":"/3303/0/","n":"5700","v":21.5},{"n":"5701","vs":"Cel"},{"n":"5702","v":18446744073709551615}]`, want: []Record{
		{Path: MustPath("/3303/0/5700"), Value: FloatValue(21.5)}, {Path: MustPath("/3303/0/5701"), Value: StringValue("Cel")},
		{Path: MustPath("/3303/0/5702"), Value: UintValue(18446744073709551615)}}},
	{path: "/3/0", in: `{}`, off: 0, has: "want a JSON array"},
	{path: "/3/0", in: `[{"n":"/3/0/9","v":1}`, off: 21, has: "not closed"},
	{path: "/3/0", in: `[{"n":"/3/0/9","v":1},{"n":"/3/0/x","v":1}]`, off: 22, has: `"/3/0/x" is not a path`},
	{path: "/3303/0", in: `[{"n":"/3303/0/5700","v":1},{"n":"/3303/0/5700","v":1e400}]`, off: 28, has: "v 1e400 is outside the range of a 64-bit float"},
	{path: "/3/0", in: `[{"n":"/3/0/9","v":1},{"n":"/4/0/9","v":1}]`, off: 22, has: "not under the request path /3/0"},
	{path: "/3/0", in: `[{"n":"/3/0/9","v":1.5}]`, off: 1, has: "not an integer"},
	{path: "/3/0", in: `[{"n":"/3/0/9","vs":"x"}]`, off: 1, has: "the resource is Integer but the record has a string"},
	{path: "/3/0", in: `[{"n":"/3/0/9","v":1,"vs":"x"}]`, off: 1, has: "2 values"},
	{path: "/3/0", in: `[{"n":"/3/0/9"}]`, off: 1, has: "0 values"},
	{path: "/3/0", in: `[{"n":"/3/0","v":1}]`, off: 1, has: "not a object instance"},
	{path: "/19/0", in: `[{"n":"/19/0/0/0","vd":"***"}]`, off: 1, has: "vd is not base64url"},
	{path: "/3/0", in: `[{"n":5}]`, off: 1, has: "not a JSON object of SenML fields"},
	{path: "/3/0", in: `[] x`, off: 3, has: "data after"},
	{path: "/1/0", in: `[{"n":"/1/0/11","v":-1}]`, off: 1, has: "not an integer in 0..2^64-1"},
	{path: "/3/0", in: `[{"n":"/3/0/9","v":1},{"n":"/3/0/9" "v":1}]`, off: 22, has: "invalid character"},
	{path: "/3/0", in: `[{"n":"/3/0/9","v":1},{"n":"/3/0/9","v":"x"}]`, off: 22, has: "not a JSON object of SenML fields"},
	{path: "/3/0", in: `[{"n":"/3/0/22/0","vlo":"4"}]`, off: 1, has: "not an object link"},
}

func TestDecodeSenMLJSON(t *testing.T) {
	reg := NewBuiltinObjects()
	require.NoError(t, reg.Add(ObjectDef{ID: 3303, Resources: []ResourceDef{
		{ID: 5700, Type: TypeFloat}, {ID: 5701, Type: TypeString}, {ID: 5702, Type: TypeUnsigned}}}))
	for _, tt := range senmlJSONTests {
		got, err := DecodeSenMLJSON(MustPath(tt.path), []byte(tt.in), reg)
		if tt.has != "" {
			var de *DecodeError
			require.ErrorAs(t, err, &de, "DecodeSenMLJSON(%s, %s)", tt.path, tt.in)
			require.ErrorIs(t, err, ErrMalformed)
			require.Contains(t, err.Error(), tt.has, "DecodeSenMLJSON(%s)", tt.in)
			require.Equal(t, tt.off, de.Offset, "DecodeSenMLJSON(%s): %v", tt.in, err)
			continue
		}
		require.NoError(t, err, "DecodeSenMLJSON(%s, %s)", tt.path, tt.in)
		require.Equal(t, tt.want, got, "DecodeSenMLJSON(%s)", tt.in)

		// Round trip through the encoder.
		enc, err := AppendSenMLJSON(nil, MustPath(tt.path), got)
		require.NoError(t, err)
		back, err := DecodeSenMLJSON(MustPath(tt.path), enc, reg)
		require.NoError(t, err, "decoding %s", enc)
		require.Equal(t, got, back, "round trip through %s", enc)
	}
}

func TestSenMLJSONEncodeErrors(t *testing.T) {
	_, err := AppendSenMLJSON(nil, MustPath("/3303/0"), []Record{{Path: MustPath("/3303/0/5700"), Value: FloatValue(posInf())}})
	require.ErrorIs(t, err, ErrEncode)
	require.Contains(t, err.Error(), "NaN or infinity")
	_, err = AppendSenMLJSON(nil, MustPath("/3/0"), []Record{{Path: MustPath("/3/0/1"), Value: RawValue(FormatTLV, []byte{1})}})
	require.ErrorIs(t, err, ErrEncode)
	enc, err := AppendSenMLJSON(nil, RootPath, []Record{{Path: MustPath("/3/0/1"), Value: StringValue("m")}, {Path: MustPath("/4/0/2"), Value: IntValue(-90)}})
	require.NoError(t, err)
	require.JSONEq(t, `[{"n":"/3/0/1","vs":"m"},{"n":"/4/0/2","v":-90}]`, string(enc), "at the root, names are full paths")
	enc, err = AppendSenMLJSON(nil, MustPath("/3"), []Record{{Path: MustPath("/3/0/1"), Value: StringValue("m")}})
	require.NoError(t, err)
	require.JSONEq(t, `[{"bn":"/3/","n":"0/1","vs":"m"}]`, string(enc))
}

func posInf() float64 { var z float64; return 1 / z }

// TestSenMLJSONAllocationBound checks that a large SenML JSON payload
// allocates in proportion to its size.
func TestSenMLJSONAllocationBound(t *testing.T) {
	in := []byte("[" + strings.Repeat(`{"n":"/19/0/0/0","vd":"AA"},`, 200) + `{"n":"/19/0/0/0","vd":"AA"}]`)
	allocated := bytesAllocated(func() { _, _ = DecodeSenMLJSON(MustPath("/19/0"), in, nil) })
	require.Less(t, allocated, uint64(64*len(in)), "DecodeSenMLJSON of %d bytes allocated %d bytes", len(in), allocated)
}

// FuzzDecodeSenMLJSON checks that DecodeSenMLJSON never panics, that
// errors carry an offset inside the payload, and that what decodes
// re-encodes and decodes to the same records.
func FuzzDecodeSenMLJSON(f *testing.F) {
	f.Add("/3/0", []byte(specDeviceSenMLJSON))
	for _, tt := range senmlJSONTests {
		f.Add(tt.path, []byte(tt.in))
	}
	reg := NewBuiltinObjects()
	f.Fuzz(func(t *testing.T, path string, b []byte) {
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		recs, err := DecodeSenMLJSON(p, b, reg)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(b) {
				t.Fatalf("DecodeSenMLJSON(%s, %q) = %v; want *DecodeError with offset in 0..%d", p, b, err, len(b))
			}
			return
		}
		enc, err := AppendSenMLJSON(nil, p, recs)
		if err != nil {
			// A number past float64's range decodes to ±Inf, which JSON
			// cannot carry; any other refusal is a fault.
			var ee *EncodeError
			if !errors.As(err, &ee) || ee.Reason != "JSON has no NaN or infinity" {
				t.Fatalf("AppendSenMLJSON(DecodeSenMLJSON(%s, %q)) = %v", p, b, err)
			}
			return
		}
		back, err := DecodeSenMLJSON(p, enc, reg)
		if err != nil {
			t.Fatalf("DecodeSenMLJSON(AppendSenMLJSON(DecodeSenMLJSON(%q))) = %v; encoded %s", b, err, enc)
		}
		if d := recordsDiff(back, recs); d != "" {
			t.Fatalf("round trip of %s %q through %s: %s", p, b, enc, d)
		}
	})
}
