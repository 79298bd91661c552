package lwm2m

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// textTests are plain-text payloads (LwM2M 1.1 Core §7.3.1, LWM-6),
// decoded with testObjects. They also seed FuzzDecodeText.
var textTests = []struct {
	path, in string
	want     Value
	has      string // error text; "" when decoding succeeds
}{
	{"/3/0/0", "Open Mobile Alliance", StringValue("Open Mobile Alliance"), ""},
	{"/3/0/9", "100", IntValue(100), ""},
	{"/3/0/9", "-7", IntValue(-7), ""},
	{"/3/0/13", "1367491215", TimeValue(time.Unix(1367491215, 0)), ""},
	{"/3/0/6/1", "5", IntValue(5), ""},
	{"/1/0/6", "1", BoolValue(true), ""},
	{"/1/0/6", "0", BoolValue(false), ""},
	{"/1/0/11", "255", UintValue(255), ""},
	{"/3/0/22/0", "4:0", ObjlnkValue(4, 0), ""},
	{"/5/0/0", "AQID", OpaqueValue([]byte{1, 2, 3}), ""},
	{"/9999/0/1", "12.5", RawValue(FormatText, []byte("12.5")), ""},
	{"/3303/0/5700", "21.5", FloatValue(21.5), ""},
	{"/3303/0/5700", "-0.125", FloatValue(-0.125), ""},
	{"/3303/0/5700", "1e+21", FloatValue(1e21), ""},
	{"/3303/0/5700", "1.5e-07", FloatValue(1.5e-7), ""},
	{"/3303/0/5700", "-0", FloatValue(math.Copysign(0, -1)), ""},
	{"/3303/0/5700", "NaN", Value{}, `"NaN" is not a decimal number (Float); want digits`},
	{"/3303/0/5700", "Inf", Value{}, `"Inf" is not a decimal number`},
	{"/3303/0/5700", "-Infinity", Value{}, `"-Infinity" is not a decimal number`},
	{"/3303/0/5700", "0x1p-2", Value{}, `"0x1p-2" is not a decimal number`},
	{"/3303/0/5700", "1_0", Value{}, `"1_0" is not a decimal number`},
	{"/3303/0/5700", "0x_1p0", Value{}, `"0x_1p0" is not a decimal number`},
	{"/3303/0/5700", "", Value{}, `"" is not a decimal number`},
	{"/3303/0/5700", ".", Value{}, `"." is not a decimal number`},
	{"/3303/0/5700", "1e", Value{}, `"1e" is not a decimal number`},
	{"/3303/0/5700", "1.2.3", Value{}, `"1.2.3" is not a decimal number`},
	{"/3303/0/5700", " 1", Value{}, `" 1" is not a decimal number`},
	{"/3303/0/5700", "1e400", Value{}, `"1e400" is outside the range of a Float`},
	{"/3/0/9", "ten", Value{}, `"ten" is not a decimal integer`},
	{"/3/0/9", "99999999999999999999", Value{}, "not a decimal integer"},
	{"/1/0/6", "true", Value{}, "want 0 or 1"},
	{"/1/0/6", "2", Value{}, "want 0 or 1"},
	{"/3/0/22/0", "4:65536", Value{}, "not an object link"},
	{"/1/0/11", "-1", Value{}, "not an unsigned decimal integer"},
	{"/3/0/22/0", "4", Value{}, "not an object link"},
	{"/5/0/0", "!!", Value{}, "not base64"},
	{"/3/0", "1", Value{}, "must name a resource"},
	{"/3/0/0", "a\xffb", Value{}, "not valid UTF-8"},
}

func TestDecodeText(t *testing.T) {
	reg := testObjects(t)
	for _, tt := range textTests {
		got, err := DecodeText(MustPath(tt.path), []byte(tt.in), reg)
		if tt.has != "" {
			require.ErrorIs(t, err, ErrMalformed, "DecodeText(%s, %q)", tt.path, tt.in)
			require.Contains(t, err.Error(), tt.has)
			require.Contains(t, err.Error(), tt.path, "error names the path")
			continue
		}
		require.NoError(t, err, "DecodeText(%s, %q)", tt.path, tt.in)
		require.Equal(t, []Record{{Path: MustPath(tt.path), Value: tt.want}}, got, "DecodeText(%s, %q)", tt.path, tt.in)
		enc, err := AppendText(nil, MustPath(tt.path), got)
		require.NoError(t, err)
		require.Equal(t, tt.in, string(enc), "AppendText(DecodeText(%q))", tt.in)
	}
	var de *DecodeError
	_, err := DecodeText(MustPath("/3/0/0"), []byte("a\xffb"), reg)
	require.ErrorAs(t, err, &de)
	require.Equal(t, 1, de.Offset, "offset of the bad byte")
}

// A plain-text Float is a decimal number in any of its spellings;
// AppendText writes the shortest one that reads back the same value, and
// refuses NaN and the infinities, which have none.
func TestTextFloatForms(t *testing.T) {
	reg := testObjects(t)
	p := MustPath("/3303/0/5700")
	for _, tt := range []struct {
		in   string
		want float64
		out  string
	}{
		{"-1.2e3", -1200, "-1200"},
		{"1E3", 1000, "1000"},
		{"+2", 2, "2"},
		{"3.", 3, "3"},
		{".5", 0.5, "0.5"},
		{"007.50", 7.5, "7.5"},
		{"1e-400", 0, "0"},
	} {
		got, err := DecodeText(p, []byte(tt.in), reg)
		require.NoError(t, err, "DecodeText(%q)", tt.in)
		require.Equal(t, FloatValue(tt.want), got[0].Value, "DecodeText(%q)", tt.in)
		enc, err := AppendText(nil, p, got)
		require.NoError(t, err)
		require.Equal(t, tt.out, string(enc), "AppendText(DecodeText(%q))", tt.in)
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, err := AppendText(nil, p, []Record{{Path: p, Value: FloatValue(f)}})
		require.ErrorIs(t, err, ErrEncode, "AppendText(%v)", f)
		require.Contains(t, err.Error(), "decimal numbers only")
		require.Contains(t, err.Error(), "/3303/0/5700", "error names the path")
	}
}

func TestTextFloatAndRawConversion(t *testing.T) {
	reg := NewObjects()
	require.NoError(t, reg.Add(ObjectDef{ID: 3303, Resources: []ResourceDef{{ID: 5700, Type: TypeFloat}}}))
	got, err := DecodeText(MustPath("/3303/0/5700"), []byte("21.5"), reg)
	require.NoError(t, err)
	require.Equal(t, FloatValue(21.5), got[0].Value)

	raw, err := DecodeText(MustPath("/3303/0/5700"), []byte("21.5"), nil)
	require.NoError(t, err)
	require.Equal(t, TypeRaw, raw[0].Value.Type(), "without a definition the value is raw")
	v, err := raw[0].Value.As(TypeFloat)
	require.NoError(t, err)
	require.Equal(t, FloatValue(21.5), v)
	_, err = raw[0].Value.As(TypeBoolean)
	require.ErrorIs(t, err, ErrMalformed)
	_, err = IntValue(1).As(TypeString)
	require.ErrorIs(t, err, ErrMalformed, "only raw values convert")

	_, err = AppendText(nil, MustPath("/3/0/0"), []Record{{Path: MustPath("/3/0/0"), Value: RawValue(FormatTLV, []byte{1})}})
	require.ErrorIs(t, err, ErrEncode)
	_, err = AppendText(nil, MustPath("/3/0/0"), nil)
	require.ErrorIs(t, err, ErrEncode)
	_, err = AppendText(nil, MustPath("/3/0/0"), []Record{{Path: MustPath("/3/0/1"), Value: IntValue(1)}})
	require.ErrorIs(t, err, ErrEncode)
}

// FuzzDecodeText checks that DecodeText never panics and that every value
// it decodes prints back as text that decodes to the same value.
func FuzzDecodeText(f *testing.F) {
	for _, tt := range textTests {
		f.Add(tt.path, []byte(tt.in))
	}
	reg := testObjects(f)
	f.Fuzz(func(t *testing.T, path string, b []byte) {
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		recs, err := DecodeText(p, b, reg)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(b) {
				t.Fatalf("DecodeText(%s, %q) = %v; want *DecodeError with offset in the payload", p, b, err)
			}
			return
		}
		enc, err := AppendText(nil, p, recs)
		if err != nil {
			t.Fatalf("AppendText(DecodeText(%s, %q)) = %v", p, b, err)
		}
		back, err := DecodeText(p, enc, reg)
		if err != nil {
			t.Fatalf("DecodeText(%s, %q) after round trip = %v", p, enc, err)
		}
		if back[0].Value != recs[0].Value {
			t.Fatalf("round trip of %q: %v became %v", b, recs[0].Value, back[0].Value)
		}
	})
}

func TestOpaque(t *testing.T) {
	reg := NewBuiltinObjects()
	data := []byte{0xff, 0xfe, 0x00, 0x01}
	got, err := DecodeOpaque(MustPath("/19/0/0"), data, reg)
	require.NoError(t, err)
	require.Equal(t, []Record{{Path: MustPath("/19/0/0"), Value: OpaqueValue(data)}}, got)
	enc, err := AppendOpaque(nil, MustPath("/19/0/0"), got)
	require.NoError(t, err)
	require.Equal(t, data, enc)

	_, err = DecodeOpaque(MustPath("/3/0/0"), data, reg)
	require.ErrorIs(t, err, ErrMalformed)
	require.Contains(t, err.Error(), "the resource is String; opaque content carries only Opaque resources")
	_, err = DecodeOpaque(MustPath("/19/0"), data, reg)
	require.ErrorIs(t, err, ErrMalformed)
	_, err = AppendOpaque(nil, MustPath("/19/1/0"), []Record{{Path: MustPath("/19/1/0"), Value: StringValue("x")}})
	require.ErrorIs(t, err, ErrEncode)
}
