package lwm2m

import (
	"encoding/hex"
	"errors"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	require.NoError(t, err)
	return b
}

// specDeviceTLV is the Device object instance /3/0 of the "Single Object
// Instance Request Example" of OMA-TS-LightweightM2M_Core-V1_1 §7.4.3.1
// (LwM2M 1.0 TS §6.4.3.1): 13 resources, three of them multiple.
const specDeviceTLV = `
C8 00 14 4F70656E204D6F62696C6520416C6C69616E6365
C8 01 16 4C69676874776569676874204D324D20436C69656E74
C8 02 09 333435303030313233
C3 03 312E30
86 06 41 00 01 41 01 05
88 07 08 42 00 0ED8 42 01 1388
87 08 41 00 7D 42 01 0384
C1 09 64
C1 0A 0F
83 0B 41 00 00
C4 0D 5182428F
C6 0E 2B30323A3030
C1 10 55`

// specDeviceRecords are the values of specDeviceTLV as the Device object
// definition types them.
func specDeviceRecords() []Record {
	return []Record{
		{Path: MustPath("/3/0/0"), Value: StringValue("Open Mobile Alliance")},
		{Path: MustPath("/3/0/1"), Value: StringValue("Lightweight M2M Client")},
		{Path: MustPath("/3/0/2"), Value: StringValue("345000123")},
		{Path: MustPath("/3/0/3"), Value: StringValue("1.0")},
		{Path: MustPath("/3/0/6/0"), Value: IntValue(1)},
		{Path: MustPath("/3/0/6/1"), Value: IntValue(5)},
		{Path: MustPath("/3/0/7/0"), Value: IntValue(3800)},
		{Path: MustPath("/3/0/7/1"), Value: IntValue(5000)},
		{Path: MustPath("/3/0/8/0"), Value: IntValue(125)},
		{Path: MustPath("/3/0/8/1"), Value: IntValue(900)},
		{Path: MustPath("/3/0/9"), Value: IntValue(100)},
		{Path: MustPath("/3/0/10"), Value: IntValue(15)},
		{Path: MustPath("/3/0/11/0"), Value: IntValue(0)},
		{Path: MustPath("/3/0/13"), Value: TimeValue(time.Unix(1367491215, 0))},
		{Path: MustPath("/3/0/14"), Value: StringValue("+02:00")},
		{Path: MustPath("/3/0/16"), Value: StringValue("U")},
	}
}

// TestTLVSpecDevice decodes and encodes the Device object example of LwM2M
// 1.1 Core §7.4.3.1, in both forms the section gives: bare resources, and
// wrapped in object instance 0 (08 00 79 …). LWM-6.
func TestTLVSpecDevice(t *testing.T) {
	reg := NewBuiltinObjects()
	payload := unhex(t, specDeviceTLV)
	require.Len(t, payload, 121, "the example is 121 bytes (0x79)")

	got, err := DecodeTLV(MustPath("/3/0"), payload, reg)
	require.NoError(t, err)
	require.Equal(t, specDeviceRecords(), got)

	wrapped := append(unhex(t, "08 00 79"), payload...)
	got, err = DecodeTLV(MustPath("/3/0"), wrapped, reg)
	require.NoError(t, err, "object instance wrapper for /3/0")
	require.Equal(t, specDeviceRecords(), got)

	got, err = DecodeTLV(MustPath("/3"), wrapped, reg)
	require.NoError(t, err, "Read /3 answers object instances")
	require.Equal(t, specDeviceRecords(), got)

	enc, err := AppendTLV(nil, MustPath("/3/0"), specDeviceRecords())
	require.NoError(t, err)
	require.Equal(t, payload, enc, "AppendTLV(/3/0) gives the bytes of the specification")

	enc, err = AppendTLV(nil, MustPath("/3"), specDeviceRecords())
	require.NoError(t, err)
	require.Equal(t, wrapped, enc, "AppendTLV(/3) wraps the resources in object instance 0")
}

// TestTLVSpecMultipleResource reads single and multiple resources of the
// same example: GET /3/0/6 answers 86 06 41 00 01 41 01 05, GET /3/0/6/1
// answers 41 01 05, GET /3/0/0 answers one resource TLV.
func TestTLVSpecMultipleResource(t *testing.T) {
	reg := NewBuiltinObjects()
	for _, tt := range []struct {
		path string
		hex  string
		want []Record
	}{
		{"/3/0/6", "86 06 41 00 01 41 01 05", []Record{
			{Path: MustPath("/3/0/6/0"), Value: IntValue(1)}, {Path: MustPath("/3/0/6/1"), Value: IntValue(5)}}},
		{"/3/0/6/1", "41 01 05", []Record{{Path: MustPath("/3/0/6/1"), Value: IntValue(5)}}},
		{"/3/0/9", "C1 09 64", []Record{{Path: MustPath("/3/0/9"), Value: IntValue(100)}}},
		{"/3/0/7", "88 07 08 42 00 0ED8 42 01 1388", []Record{
			{Path: MustPath("/3/0/7/0"), Value: IntValue(3800)}, {Path: MustPath("/3/0/7/1"), Value: IntValue(5000)}}},
	} {
		b := unhex(t, tt.hex)
		got, err := DecodeTLV(MustPath(tt.path), b, reg)
		require.NoError(t, err, "DecodeTLV(%s, % x)", tt.path, b)
		require.Equal(t, tt.want, got, "DecodeTLV(%s)", tt.path)
		enc, err := AppendTLV(nil, MustPath(tt.path), tt.want)
		require.NoError(t, err)
		require.Equal(t, b, enc, "AppendTLV(%s)", tt.path)
	}
	// Bare resource instances for /3/0/6 are accepted too.
	got, err := DecodeTLV(MustPath("/3/0/6"), unhex(t, "41 00 01 41 01 05"), reg)
	require.NoError(t, err)
	require.Len(t, got, 2)
}

// TestTLVSpecAccessControl decodes the two object instances of Access
// Control (/2) of LwM2M 1.1 Core §7.4.3.2 (Table 7.4.3.2-2), including a
// resource instance with a 16-bit id (61 01 36 01: instance 310 = 1). Object
// 2 is not built in, so values stay raw and convert with Value.As.
func TestTLVSpecAccessControl(t *testing.T) {
	b := unhex(t, `08 00 0E C1 00 01 C1 01 00 83 02 41 7F 07 C1 03 7F
	               08 02 12 C1 00 03 C1 01 00 87 02 41 7F 07 61 01 36 01 C1 03 7F`)
	got, err := DecodeTLV(MustPath("/2"), b, NewBuiltinObjects())
	require.NoError(t, err)
	var paths []string
	for _, r := range got {
		paths = append(paths, r.Path.String())
		require.Equal(t, TypeRaw, r.Value.Type(), "%s of an unknown object is raw", r.Path)
	}
	require.Equal(t, []string{"/2/0/0", "/2/0/1", "/2/0/2/127", "/2/0/3",
		"/2/2/0", "/2/2/1", "/2/2/2/127", "/2/2/2/310", "/2/2/3"}, paths)
	v, err := got[7].Value.As(TypeInteger)
	require.NoError(t, err)
	require.Equal(t, IntValue(1), v, "ACL of server 310")
	enc, err := AppendTLV(nil, MustPath("/2"), got)
	require.NoError(t, err)
	require.Equal(t, b, enc, "raw TLV values encode back unchanged")
}

// TestTLVSpecServer decodes the Server object instance example of LwM2M 1.1
// Core §7.4.3.2 (08 00 0F …): lifetime 86400 in 4 bytes, boolean, binding.
func TestTLVSpecServer(t *testing.T) {
	b := unhex(t, "08 00 0F C1 00 01 C4 01 00015180 C1 06 01 C1 07 55")
	got, err := DecodeTLV(MustPath("/1"), b, NewBuiltinObjects())
	require.NoError(t, err)
	require.Equal(t, []Record{
		{Path: MustPath("/1/0/0"), Value: IntValue(1)},
		{Path: MustPath("/1/0/1"), Value: IntValue(86400)},
		{Path: MustPath("/1/0/6"), Value: BoolValue(true)},
		{Path: MustPath("/1/0/7"), Value: StringValue("U")},
	}, got)
}

func TestTLVValueTypes(t *testing.T) {
	reg := NewObjects()
	require.NoError(t, reg.Add(ObjectDef{ID: 30000, Resources: []ResourceDef{
		{ID: 0, Type: TypeInteger}, {ID: 1, Type: TypeUnsigned}, {ID: 2, Type: TypeFloat},
		{ID: 3, Type: TypeBoolean}, {ID: 4, Type: TypeOpaque}, {ID: 5, Type: TypeTime},
		{ID: 6, Type: TypeObjlnk}, {ID: 7, Type: TypeCorelnk}, {ID: 300, Type: TypeString},
	}}))
	recs := []Record{
		{Path: MustPath("/30000/1/0"), Value: IntValue(-129)},
		{Path: MustPath("/30000/1/1"), Value: UintValue(math.MaxUint64)},
		{Path: MustPath("/30000/1/2"), Value: FloatValue(0.1)},
		{Path: MustPath("/30000/1/3"), Value: BoolValue(false)},
		{Path: MustPath("/30000/1/4"), Value: OpaqueValue(make([]byte, 300))},
		{Path: MustPath("/30000/1/5"), Value: TimeValue(time.Unix(-1, 0))},
		{Path: MustPath("/30000/1/6"), Value: ObjlnkValue(65535, 65535)},
		{Path: MustPath("/30000/1/7"), Value: CorelnkValue("</3/0>")},
		{Path: MustPath("/30000/1/300"), Value: StringValue(strings.Repeat("x", 70000))},
	}
	enc, err := AppendTLV(nil, MustPath("/30000"), recs)
	require.NoError(t, err)
	got, err := DecodeTLV(MustPath("/30000"), enc, reg)
	require.NoError(t, err)
	require.Equal(t, recs, got, "round trip of every type through TLV")
	require.Equal(t, byte(0x18), enc[0], "object instance length in 3 bytes (type 00 0 11 000)")

	for _, tt := range []struct {
		t     Type
		hex   string
		want  Value
		error string
	}{
		{TypeFloat, "3FC00000", FloatValue(1.5), ""},
		{TypeFloat, "3FF8000000000000", FloatValue(1.5), ""},
		{TypeInteger, "FFFF", IntValue(-1), ""},
		{TypeInteger, "000001", Value{}, "Integer of 3 bytes; want 1, 2, 4 or 8"},
		{TypeUnsigned, "FFFF", UintValue(65535), ""},
		{TypeFloat, "00", Value{}, "Float of 1 bytes; want 4 or 8"},
		{TypeBoolean, "02", Value{}, "Boolean must be one byte 0 or 1"},
		{TypeObjlnk, "0001", Value{}, "Objlnk of 2 bytes; want 4"},
		{TypeNone, "01", Value{}, "has no value"},
	} {
		v, reason := tlvValue(unhex(t, tt.hex), tt.t)
		if tt.error != "" {
			require.Contains(t, reason, tt.error, "tlvValue(%s, %s)", tt.hex, tt.t)
			continue
		}
		require.Empty(t, reason)
		require.Equal(t, tt.want, v, "tlvValue(%s, %s)", tt.hex, tt.t)
	}

	// A Float goes in 4 bytes only when they keep its bits: a NaN whose
	// payload float32 cannot hold takes 8 (found by FuzzDecodeTLV).
	for _, tt := range []struct {
		bits uint64
		hex  string
	}{
		{math.Float64bits(1.5), "E4 1644 3FC00000"},
		{math.Float64bits(0.1), "E8 1644 08 3FB999999999999A"},
		{math.Float64bits(math.Copysign(0, -1)), "E4 1644 80000000"},
		{0x7FF8000000000000, "E4 1644 7FC00000"},
		{0x7FF8000000000001, "E8 1644 08 7FF8000000000001"},
		{0xFFF0000000000001, "E8 1644 08 FFF0000000000001"},
	} {
		p, v := MustPath("/3303/0/5700"), Value{t: TypeFloat, n: tt.bits}
		enc, err := AppendTLV(nil, p, []Record{{Path: p, Value: v}})
		require.NoError(t, err)
		require.Equal(t, unhex(t, tt.hex), enc, "AppendTLV(%#x)", tt.bits)
		got, err := DecodeTLV(p, enc, testObjects(t))
		require.NoError(t, err)
		require.Equal(t, v, got[0].Value, "round trip of %#x", tt.bits)
	}
}

// tlvErrorTests are malformed payloads: the error must name the path and
// the byte offset. They also seed FuzzDecodeTLV.
var tlvErrorTests = []struct {
	path, hex string
	errPath   string
	off       int
	has       string
}{
	{"/3/0", "C8", "/3/0", 0, "TLV header needs 3 bytes, 1 left"},
	{"/3/0", "C8 00 14 4F70", "/3/0", 0, "declares 20 value bytes, only 2 left"},
	{"/3/0", "C1 09 64 D8 00 FFFFFF", "/3/0", 3, "declares 16777215 value bytes"},
	{"/3/0", "C1 09 64 C3 0D 000001", "/3/0/13", 5, "Time of 3 bytes"},
	{"/3/0", "41 00 01", "/3/0", 0, "resource instance with id 0 cannot appear here"},
	{"/3/0", "83 06 C1 00 01", "/3/0/6", 2, "holds resource instances, not a resource"},
	{"/3/0", "08 01 03 C1 09 64", "/3/0", 0, "object instance with id 1 cannot appear here"},
	{"/3/0/9", "C1 08 64", "/3/0/9", 0, "want resource 9 or its instances"},
	{"/3", "08 00 03 08 00 00", "/3/0", 3, "object instance with id 0 cannot appear here"},
	{"/3/0", "08 00 05 08 00 02 C0 09", "/3/0", 3, "object instance 0 wrapped twice"},
	{"/3/0", "C1 09 64 C1 0A 0F C1 09 64", "/3/0/9", 6, "the payload holds /3/0/9 twice"},
	{"/3", "08 00 03 C1 09 64 08 00 03 C1 09 64", "/3/0/9", 9, "twice"},
	{"/3/0", "C1 06 01 86 06 41 00 01 41 01 05", "/3/0/6/0", 5, "single or multiple"},
	{"/3/0", "86 06 41 00 01 41 01 05 C1 06 01", "/3/0/6", 8, "single or multiple"},
	{"/3/0", "C1 09 64 86 06 41 00 01 41 01 05 C1 06 01", "/3/0/6", 11, "single or multiple"},
	{"/3/0", "E0 FFFF 00", "/3/0", 0, "65535 is reserved"},
	{"/", "C1 09 64", "/", 0, "needs an object"},
	{"/3/0", "88 07 09 42 00 0ED8 43 01 001388", "/3/0/7/1", 9, "Integer of 3 bytes"},
}

func TestTLVErrors(t *testing.T) {
	reg := NewBuiltinObjects()
	for _, tt := range tlvErrorTests {
		_, err := DecodeTLV(MustPath(tt.path), unhex(t, tt.hex), reg)
		var de *DecodeError
		require.ErrorAs(t, err, &de, "DecodeTLV(%s, %s)", tt.path, tt.hex)
		require.ErrorIs(t, err, ErrMalformed)
		require.Equal(t, tt.errPath, de.Path, "DecodeTLV(%s, %s): %v", tt.path, tt.hex, err)
		require.Equal(t, tt.off, de.Offset, "DecodeTLV(%s, %s): %v", tt.path, tt.hex, err)
		require.Contains(t, err.Error(), tt.has)
		require.Contains(t, err.Error(), "at byte "+itoa(tt.off))
	}
}

func TestTLVEncodeErrors(t *testing.T) {
	for _, tt := range []struct {
		base string
		recs []Record
		has  string
	}{
		{"/", []Record{{Path: MustPath("/3/0/1"), Value: IntValue(1)}}, "needs an object"},
		{"/3/0", []Record{{Path: MustPath("/4/0/1"), Value: IntValue(1)}}, "not under /3/0"},
		{"/3", []Record{{Path: MustPath("/3/0"), Value: IntValue(1)}}, "not a object instance"},
		{"/3/0", []Record{{Path: MustPath("/3/0/1")}}, "no value"},
		{"/3/0", []Record{{Path: MustPath("/3/0/1"), Value: RawValue(FormatText, []byte("x"))}}, "convert it with Value.As"},
		{"/3/0", []Record{{Path: MustPath("/3/0/1"), Value: IntValue(1)}, {Path: MustPath("/3/0/1"), Value: IntValue(2)}}, "two values"},
		{"/3/0", []Record{{Path: MustPath("/3/0/6/0"), Value: IntValue(1)}, {Path: MustPath("/3/0/6"), Value: IntValue(2)}}, "single or multiple"},
		{"/3/0/6/1", []Record{{Path: MustPath("/3/0/6/1"), Value: IntValue(1)}, {Path: MustPath("/3/0/6/1"), Value: IntValue(2)}}, "2 records"},
	} {
		_, err := AppendTLV(nil, MustPath(tt.base), tt.recs)
		require.ErrorIs(t, err, ErrEncode, "AppendTLV(%s, %v)", tt.base, tt.recs)
		require.Contains(t, err.Error(), tt.has)
	}
}

func TestTLVEncodeUnsortedAndAllocs(t *testing.T) {
	recs := specDeviceRecords()
	want, err := AppendTLV(nil, MustPath("/3/0"), recs)
	require.NoError(t, err)
	rev := make([]Record, len(recs))
	for i := range recs {
		rev[len(recs)-1-i] = recs[i]
	}
	got, err := AppendTLV(nil, MustPath("/3/0"), rev)
	require.NoError(t, err)
	require.Equal(t, want, got, "order of records does not matter")
	require.Equal(t, recs[0], specDeviceRecords()[0], "input not modified")

	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() { buf, _ = AppendTLV(buf[:0], MustPath("/3/0"), recs) })
	require.Zero(t, allocs, "AppendTLV of sorted records into a buffer with room")
}

// TestTLVHostileLength checks that a length field larger than the payload
// is refused before anything is allocated for it (LWM-6).
func TestTLVHostileLength(t *testing.T) {
	for _, h := range []string{"D8 00 FFFFFF", "98 00 FFFFFF", "18 00 FFFFFF", "08 00 FF C8 00 FF 00"} {
		b := unhex(t, h)
		allocated := bytesAllocated(func() { _, _ = DecodeTLV(MustPath("/3/0"), b, nil) })
		require.Less(t, allocated, uint64(1024), "DecodeTLV(% x) allocated %d bytes", b, allocated)
	}
}

// bytesAllocated returns the bytes f allocates on the heap, averaged over
// 100 runs.
func bytesAllocated(f func()) uint64 {
	const runs = 100
	f() // warm up
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&m1)
	return (m1.TotalAlloc - m0.TotalAlloc) / runs
}

// FuzzDecodeTLV checks that DecodeTLV never panics, that errors are
// *DecodeError with an offset inside the payload, that what decodes
// re-encodes and decodes to the same records, and that memory stays in
// proportion to the payload.
func FuzzDecodeTLV(f *testing.F) {
	f.Add("/3/0", unhex(f, specDeviceTLV))
	f.Add("/3", append(unhex(f, "08 00 79"), unhex(f, specDeviceTLV)...))
	f.Add("/2", unhex(f, "08 00 0E C1 00 01 C1 01 00 83 02 41 7F 07 C1 03 7F 08 02 12 C1 00 03 C1 01 00 87 02 41 7F 07 61 01 36 01 C1 03 7F"))
	f.Add("/3/0/6", unhex(f, "86 06 41 00 01 41 01 05"))
	f.Add("/3/0/6/1", unhex(f, "41 01 05"))
	f.Add("/3303/0", unhex(f, "E4 1644 41AC0000"))
	f.Add("/3303/0", unhex(f, "E8 1644 08 3FB999999999999A"))
	for _, tt := range tlvErrorTests {
		f.Add(tt.path, unhex(f, tt.hex))
	}
	reg := testObjects(f)
	f.Fuzz(func(t *testing.T, path string, b []byte) {
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		recs, err := DecodeTLV(p, b, reg)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(b) {
				t.Fatalf("DecodeTLV(%s, % x) = %v; want *DecodeError with offset in 0..%d", p, b, err, len(b))
			}
			return
		}
		if len(recs) > len(b)/2+1 {
			t.Fatalf("DecodeTLV(%s, % x): %d records from %d bytes", p, b, len(recs), len(b))
		}
		enc, err := AppendTLV(nil, p, recs)
		if err != nil {
			t.Fatalf("AppendTLV(DecodeTLV(%s, % x)) = %v", p, b, err)
		}
		back, err := DecodeTLV(p, enc, reg)
		if err != nil {
			t.Fatalf("DecodeTLV(AppendTLV(DecodeTLV(%s, % x))) = %v; encoded % x", p, b, err, enc)
		}
		// The encoder sorts the records by path; the decoder keeps the
		// payload's order.
		slices.SortStableFunc(recs, compareRecords)
		slices.SortStableFunc(back, compareRecords)
		if d := recordsDiff(back, recs); d != "" {
			t.Fatalf("round trip of %s % x through % x: %s", p, b, enc, d)
		}
	})
}

// TestTLVObject19 covers the data channel of LWM-5: /19/0/0 is a
// multiple Opaque resource, so a TLV notification carries its instances.
func TestTLVObject19(t *testing.T) {
	reg := NewBuiltinObjects()
	// 86 00: multiple resource 0 of 6 bytes, holding 42 00 AA BB (instance
	// 0, 2 bytes) and 40 01 (instance 1, empty).
	b := unhex(t, "86 00 42 00 AABB 40 01")
	got, err := DecodeTLV(MustPath("/19/0/0"), b, reg)
	require.NoError(t, err)
	require.Equal(t, []Record{
		{Path: MustPath("/19/0/0/0"), Value: OpaqueValue([]byte{0xAA, 0xBB})},
		{Path: MustPath("/19/0/0/1"), Value: OpaqueValue(nil)},
	}, got)
	enc, err := Encode(FormatTLV, MustPath("/19/0/0"), got)
	require.NoError(t, err)
	require.Equal(t, b, enc)

	// A downlink write of 300 bytes to /19/1/0 instance 0: 16-bit lengths.
	data := make([]byte, 300)
	enc, err = Encode(FormatTLV, MustPath("/19/1/0"), []Record{{Path: MustPath("/19/1/0/0"), Value: OpaqueValue(data)}})
	require.NoError(t, err)
	require.Equal(t, unhex(t, "90 00 0130 50 00 012C"), enc[:8], "multiple resource of 304 bytes holding an instance of 300")
	require.Len(t, enc, 8+300)
}

// TestTLVSpecObjectLinks decodes the object link examples of LwM2M 1.1 Core
// §7.4.3.3 (objects 65 and 66 of the specification): a multiple Objlnk
// resource, and two instances linking to 67:0 and to the null link
// 65535:65535.
func TestTLVSpecObjectLinks(t *testing.T) {
	reg := NewObjects()
	require.NoError(t, reg.Add(
		ObjectDef{ID: 65, Resources: []ResourceDef{
			{ID: 0, Type: TypeObjlnk, Multiple: true}, {ID: 1, Type: TypeString}, {ID: 2, Type: TypeInteger}}},
		ObjectDef{ID: 66, Multiple: true, Resources: []ResourceDef{
			{ID: 0, Type: TypeString}, {ID: 1, Type: TypeString}, {ID: 2, Type: TypeObjlnk}}}))
	b65 := unhex(t, "88 00 0C 44 00 00420000 44 01 00420001 C8 01 0D 38363133383030373535353030 C4 02 12345678")
	got, err := DecodeTLV(MustPath("/65/0"), b65, reg)
	require.NoError(t, err)
	require.Equal(t, []Record{
		{Path: MustPath("/65/0/0/0"), Value: ObjlnkValue(66, 0)},
		{Path: MustPath("/65/0/0/1"), Value: ObjlnkValue(66, 1)},
		{Path: MustPath("/65/0/1"), Value: StringValue("8613800755500")},
		{Path: MustPath("/65/0/2"), Value: IntValue(0x12345678)},
	}, got)
	enc, err := AppendTLV(nil, MustPath("/65/0"), got)
	require.NoError(t, err)
	require.Equal(t, b65, enc)

	b66 := unhex(t, `08 00 26 C8 00 0B 6D79536572766963652031 C8 01 0F 496E7465726E65742E31352E323334 C4 02 00430000
	                 08 01 26 C8 00 0B 6D79536572766963652032 C8 01 0F 496E7465726E65742E31352E323335 C4 02 FFFFFFFF`)
	got, err = DecodeTLV(MustPath("/66"), b66, reg)
	require.NoError(t, err)
	require.Len(t, got, 6)
	require.Equal(t, Record{Path: MustPath("/66/0/2"), Value: ObjlnkValue(67, 0)}, got[2])
	require.Equal(t, Record{Path: MustPath("/66/1/1"), Value: StringValue("Internet.15.235")}, got[4])
	require.Equal(t, Record{Path: MustPath("/66/1/2"), Value: ObjlnkValue(65535, 65535)}, got[5])
	enc, err = AppendTLV(nil, MustPath("/66"), got)
	require.NoError(t, err)
	require.Equal(t, b66, enc)
}

// TestTLVWrappedResource accepts a read of /3/0/1 answered inside object
// instance 0, as some clients do.
func TestTLVWrappedResource(t *testing.T) {
	got, err := DecodeTLV(MustPath("/3/0/1"), unhex(t, "08 00 05 C3 01 616263"), NewBuiltinObjects())
	require.NoError(t, err)
	require.Equal(t, []Record{{Path: MustPath("/3/0/1"), Value: StringValue("abc")}}, got)
	_, err = DecodeTLV(MustPath("/3/0/1"), unhex(t, "08 01 05 C3 01 616263"), NewBuiltinObjects())
	require.ErrorIs(t, err, ErrMalformed, "a wrapper for another instance")
	// Out of order but distinct paths are fine.
	got, err = DecodeTLV(MustPath("/3/0"), unhex(t, "C1 0A 0F C1 09 64"), NewBuiltinObjects())
	require.NoError(t, err)
	require.Len(t, got, 2)
}

// TestTLVHeaderBoundaries checks the type byte at each boundary of LwM2M
// 1.1 Core §7.4.3: an identifier of 8 bits up to 255 and 16 bits from 256,
// and a length in the type byte up to 7, then in 8, 16 and 24 bits.
func TestTLVHeaderBoundaries(t *testing.T) {
	for _, tt := range []struct {
		id     uint16
		vlen   int
		header string
	}{
		{255, 0, "C0 FF"},
		{256, 0, "E0 0100"},
		{1, 7, "C7 01"},
		{1, 8, "C8 01 08"},
		{1, 255, "C8 01 FF"},
		{1, 256, "D0 01 0100"},
		{65534, 65535, "F0 FFFE FFFF"},
		{1, 65536, "D8 01 010000"},
	} {
		data := make([]byte, tt.vlen)
		for i := range data {
			data[i] = byte(i)
		}
		p, err := NewPath(30000, 0, tt.id)
		require.NoError(t, err)
		enc, err := AppendTLV(nil, p, []Record{{Path: p, Value: OpaqueValue(data)}})
		require.NoError(t, err)
		h := unhex(t, tt.header)
		require.Equal(t, h, enc[:len(h)], "header of resource %d with %d value bytes", tt.id, tt.vlen)
		require.Equal(t, data, enc[len(h):], "value of resource %d with %d value bytes", tt.id, tt.vlen)
		got, err := DecodeTLV(p, enc, nil)
		require.NoError(t, err)
		require.Equal(t, []Record{{Path: p, Value: RawValue(FormatTLV, data)}}, got)
	}
}
