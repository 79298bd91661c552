package lwm2m

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"
)

func TestSenMLCBORSpecDevice(t *testing.T) {
	reg := NewBuiltinObjects()
	enc, err := AppendSenMLCBOR(nil, MustPath("/3/0"), specDeviceRecords())
	require.NoError(t, err)
	got, err := DecodeSenMLCBOR(MustPath("/3/0"), enc, reg)
	require.NoError(t, err)
	require.Equal(t, specDeviceRecords(), got, "round trip of the Device example of LwM2M 1.1 Core §7.4.3.1 through SenML CBOR")

	// The first record, byte by byte (RFC 8428 §6 labels: bn -2, n 0, vs 3):
	// array(16), map(3), -2: "/3/0/", 0: "0", 3: "Open Mobile Alliance".
	want := unhex(t, "90 A3 21 65 2F332F302F 00 61 30 03 74 4F70656E204D6F62696C6520416C6C69616E6365")
	require.Equal(t, want, enc[:len(want)])
	// Integers are CBOR integers: {0: "6/0", 2: 1}.
	require.Contains(t, string(enc), string(unhex(t, "A2 00 63 362F30 02 01")))
}

// senmlCBORTests are SenML CBOR payloads written with diagnostic notation;
// they also seed FuzzDecodeSenMLCBOR.
var senmlCBORTests = []struct {
	path string
	hex  string
	want []Record
	off  int
	has  string
}{
	// [{-2: "/19/0/", 0: "0/0", 8: h'010203', 6: 1700000000}]
	{path: "/19/0", hex: "81 A4 21 66 2F31392F302F 00 63 302F30 08 43 010203 06 1A 6553F100",
		want: []Record{{Path: MustPath("/19/0/0/0"), Value: OpaqueValue([]byte{1, 2, 3}), Time: time.Unix(1700000000, 0).UTC()}}},
	// [{0: "/3/0/22/0", "vlo": "4:0"}, {0: "/3/0/9", 2: 100.0 (half float)}]
	{path: "/3/0", hex: "82 A2 00 69 2F332F302F32322F30 63 766C6F 63 343A30 A2 00 66 2F332F302F39 02 F9 5640",
		want: []Record{{Path: MustPath("/3/0/22/0"), Value: ObjlnkValue(4, 0)}, {Path: MustPath("/3/0/9"), Value: IntValue(100)}}},
	// Indefinite-length array: [_ {0: "/1/0/6", 4: true}]
	{path: "/1/0", hex: "9F A2 00 66 2F312F302F36 04 F5 FF",
		want: []Record{{Path: MustPath("/1/0/6"), Value: BoolValue(true)}}},
	{path: "/3/0", hex: "A0", off: 0, has: "want a CBOR array"},
	{path: "/3/0", hex: "", off: 0, has: "want a CBOR array"},
	// Array announcing 2^32-1 records in 10 bytes.
	{path: "/3/0", hex: "9B 00000000FFFFFFFF A0", off: 0, has: "array announces 4294967295 records; at most 65536"},
	// Array announcing 3 records, holding 1.
	{path: "/1/0", hex: "83 A2 00 66 2F312F302F36 04 F5", off: 12, has: "SenML array ends after 1 records"},
	// Byte string claiming 4 GiB.
	{path: "/19/0", hex: "81 A2 00 69 2F31392F302F302F30 08 5A FFFFFFFF 00", off: 1, has: "not a well-formed CBOR map"},
	// Truncated array head, reserved head, trailing data.
	{path: "/3/0", hex: "99 01", off: 0, has: "array head needs 3 bytes, 2 left"},
	{path: "/3/0", hex: "9C", off: 0, has: "malformed CBOR array head"},
	{path: "/1/0", hex: "81 A2 00 66 2F312F302F36 04 F5 00", off: 12, has: "data after the SenML array"},
	// Indefinite array without its break byte.
	{path: "/1/0", hex: "9F A2 00 66 2F312F302F36 04 F5", off: 12, has: "SenML array ends"},
	// Second record has a bad name: offset 1 + 11 bytes of the first record.
	{path: "/1/0", hex: "82 A2 00 66 2F312F302F36 04 F5 A2 00 62 2F78 04 F5", off: 12, has: `"/x" is not a path`},
	// Duplicate key 2.
	{path: "/3/0", hex: "81 A3 00 66 2F332F302F39 02 01 02 02", off: 1, has: "not a well-formed CBOR map of SenML fields"},
	// Bignum v.
	{path: "/3/0", hex: "81 A2 00 66 2F332F302F39 02 C2 49 010000000000000000", off: 1, has: "bignum"},
	{path: "/3/0", hex: "81 A2 00 66 2F332F302F39 03 61 78", off: 1, has: "the resource is Integer but the record has a string"},
}

func TestDecodeSenMLCBOR(t *testing.T) {
	reg := NewBuiltinObjects()
	for _, tt := range senmlCBORTests {
		b := unhex(t, tt.hex)
		got, err := DecodeSenMLCBOR(MustPath(tt.path), b, reg)
		if tt.has != "" {
			var de *DecodeError
			require.ErrorAs(t, err, &de, "DecodeSenMLCBOR(%s, % x)", tt.path, b)
			require.ErrorIs(t, err, ErrMalformed)
			require.Contains(t, err.Error(), tt.has)
			require.Equal(t, tt.off, de.Offset, "DecodeSenMLCBOR(% x): %v", b, err)
			continue
		}
		require.NoError(t, err, "DecodeSenMLCBOR(%s, % x)", tt.path, b)
		require.Equal(t, tt.want, got)
		enc, err := AppendSenMLCBOR(nil, MustPath(tt.path), got)
		require.NoError(t, err)
		back, err := DecodeSenMLCBOR(MustPath(tt.path), enc, reg)
		require.NoError(t, err)
		require.Equal(t, got, back, "round trip through % x", enc)
	}
}

func TestSenMLCBORNumbers(t *testing.T) {
	reg := NewObjects()
	require.NoError(t, reg.Add(ObjectDef{ID: 3303, Resources: []ResourceDef{
		{ID: 1, Type: TypeFloat}, {ID: 2, Type: TypeUnsigned}, {ID: 3, Type: TypeInteger}}}))
	recs := []Record{
		{Path: MustPath("/3303/0/1"), Value: FloatValue(21.5)},
		{Path: MustPath("/3303/0/2"), Value: UintValue(1<<64 - 1)},
		{Path: MustPath("/3303/0/3"), Value: IntValue(-1 << 63)},
	}
	enc, err := AppendSenMLCBOR(nil, MustPath("/3303/0"), recs)
	require.NoError(t, err)
	got, err := DecodeSenMLCBOR(MustPath("/3303/0"), enc, reg)
	require.NoError(t, err)
	require.Equal(t, recs, got)
	var diag []map[any]any
	require.NoError(t, cbor.Unmarshal(enc, &diag))
	require.Equal(t, uint64(1<<64-1), diag[1][uint64(2)], "Unsigned is a CBOR unsigned integer")

	// Without definitions, CBOR integers are Integer (or Unsigned above
	// MaxInt64) and floats are Float.
	got, err = DecodeSenMLCBOR(MustPath("/3303/0"), enc, nil)
	require.NoError(t, err)
	require.Equal(t, []Value{FloatValue(21.5), UintValue(1<<64 - 1), IntValue(-1 << 63)},
		[]Value{got[0].Value, got[1].Value, got[2].Value})
}

// TestSenMLCBORHostileLength checks that length fields larger than the
// payload are refused without allocating for them.
func TestSenMLCBORHostileLength(t *testing.T) {
	for _, h := range []string{"9B 00000000FFFFFFFF A0", "81 A2 00 69 2F31392F302F302F30 08 5A FFFFFFFF 00", "81 BB 00000000FFFFFFFF", "99 FFFF" + "A0"} {
		b := unhex(t, h)
		allocated := bytesAllocated(func() { _, _ = DecodeSenMLCBOR(MustPath("/19/0"), b, nil) })
		require.Less(t, allocated, uint64(2048), "DecodeSenMLCBOR(% x) allocated %d bytes", b, allocated)
	}
}

// FuzzDecodeSenMLCBOR checks that DecodeSenMLCBOR never panics, that errors
// carry an offset inside the payload, and that what decodes re-encodes and
// decodes to the same records.
func FuzzDecodeSenMLCBOR(f *testing.F) {
	enc, err := AppendSenMLCBOR(nil, MustPath("/3/0"), specDeviceRecords())
	if err != nil {
		f.Fatal(err)
	}
	f.Add("/3/0", enc)
	for _, tt := range senmlCBORTests {
		f.Add(tt.path, unhex(f, tt.hex))
	}
	reg := NewBuiltinObjects()
	f.Fuzz(func(t *testing.T, path string, b []byte) {
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		recs, err := DecodeSenMLCBOR(p, b, reg)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(b) {
				t.Fatalf("DecodeSenMLCBOR(%s, % x) = %v; want *DecodeError with offset in 0..%d", p, b, err, len(b))
			}
			return
		}
		enc, err := AppendSenMLCBOR(nil, p, recs)
		if err != nil {
			t.Fatalf("AppendSenMLCBOR(DecodeSenMLCBOR(% x)) = %v", b, err)
		}
		back, err := DecodeSenMLCBOR(p, enc, reg)
		if err != nil {
			t.Fatalf("DecodeSenMLCBOR after round trip of % x = %v; encoded % x", b, err, enc)
		}
		if d := recordsDiff(back, recs); d != "" {
			t.Fatalf("round trip of %s % x through % x: %s", p, b, enc, d)
		}
	})
}

// A NaN is written as the one CBOR NaN, 0xf97e00, and any NaN is read as
// it, so a round trip gives the Value it started from (found by
// FuzzDecodeSenMLCBOR: a float64 NaN with a payload came back without it).
func TestSenMLCBORNaN(t *testing.T) {
	p, nan := MustPath("/3303/0"), FloatValue(math.Float64frombits(0x7FF8000000000000))
	for _, v := range []string{"fb7ff0000000000001", "fbfff8000000000000", "fa7f800001", "f97c01", "f97e00"} {
		b := unhex(t, "81 a2 00 6c 2f333330332f302f35373030 02"+v) // [{0: "/3303/0/5700", 2: v}]
		got, err := DecodeSenMLCBOR(p, b, nil)
		require.NoError(t, err, "NaN %s", v)
		require.Equal(t, nan, got[0].Value, "NaN %s", v)
		enc, err := AppendSenMLCBOR(nil, p, got)
		require.NoError(t, err)
		require.Equal(t, unhex(t, "f9 7e00"), enc[len(enc)-3:], "NaN %s is written as 0xf97e00", v)
	}
}

// TestSenMLCBORLongArrayOffsets checks record offsets after a two-byte
// array head (more than 23 records).
func TestSenMLCBORLongArrayOffsets(t *testing.T) {
	var recs []Record
	for i := range 30 {
		recs = append(recs, Record{Path: MustPath("/19/0/0/" + itoa(i)), Value: OpaqueValue([]byte{byte(i)})})
	}
	enc, err := AppendSenMLCBOR(nil, MustPath("/19/0"), recs)
	require.NoError(t, err)
	require.Equal(t, []byte{0x98, 30}, enc[:2], "array of 30 has a two-byte head")
	got, err := DecodeSenMLCBOR(MustPath("/19/0"), enc, NewBuiltinObjects())
	require.NoError(t, err)
	require.Equal(t, recs, got)

	// Decoded under /19/1 every record is outside the request path; the
	// error names the first record, right after the head.
	_, err = DecodeSenMLCBOR(MustPath("/19/1"), enc, nil)
	var de *DecodeError
	require.ErrorAs(t, err, &de)
	require.Equal(t, 2, de.Offset)

	// Records 10 to 29 are {0: "0/kk", 8: h'kk'}, 10 bytes each, so record
	// 25 starts 5 records before the end. Corrupt its name.
	first := len(enc) - 5*10
	require.Equal(t, byte(0xA2), enc[first], "record 25 starts at %d", first)
	bad := append([]byte(nil), enc...)
	bad[first+3] = 'x' // "0/25" → "x/25"
	_, err = DecodeSenMLCBOR(MustPath("/19/0"), bad, nil)
	require.ErrorAs(t, err, &de)
	require.Equal(t, first, de.Offset, "offset of record 25: %v", err)
}

func TestSenMLNumberConversions(t *testing.T) {
	reg := NewObjects()
	require.NoError(t, reg.Add(ObjectDef{ID: 3303, Resources: []ResourceDef{
		{ID: 1, Type: TypeFloat}, {ID: 2, Type: TypeUnsigned}, {ID: 3, Type: TypeTime}}}))
	got, err := DecodeSenMLJSON(MustPath("/3303/0"), []byte(`[{"bn":"/3303/0/","n":"1","v":18446744073709551615},{"n":"2","v":4.0},{"n":"3","v":1e9}]`), reg)
	require.NoError(t, err)
	require.Equal(t, FloatValue(18446744073709551615), got[0].Value, "an integer literal for a Float resource")
	require.Equal(t, UintValue(4), got[1].Value, "an integral float for an Unsigned resource")
	require.Equal(t, TimeValue(time.Unix(1e9, 0)), got[2].Value)
	_, err = DecodeSenMLJSON(MustPath("/3303/0"), []byte(`[{"n":"/3303/0/2","v":1.5}]`), reg)
	require.ErrorIs(t, err, ErrMalformed)
	_, err = DecodeSenMLJSON(MustPath("/3303/0"), []byte(`[{"n":"/3303/0/3","v":1e300}]`), reg)
	require.ErrorIs(t, err, ErrMalformed, "a Time beyond int64")
	_, err = DecodeSenMLJSON(MustPath("/3303/0"), []byte(`[{"n":"/3303/0/1","v":1,"t":1e300}]`), reg)
	require.ErrorIs(t, err, ErrMalformed, "a time beyond the range of time.Time")
	got, err = DecodeSenMLJSON(MustPath("/19/0"), []byte(`[{"n":"/19/0/0/0","vd":"AQI="},{"n":"/19/0/0/1","vd":"+/8"}]`), nil)
	require.NoError(t, err, "vd with padding or the standard alphabet")
	require.Equal(t, OpaqueValue([]byte{1, 2}), got[0].Value)
	require.Equal(t, OpaqueValue([]byte{0xfb, 0xff}), got[1].Value)
}
