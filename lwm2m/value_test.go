package lwm2m

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestValueAccessors covers the resource types of LWM-6: integer,
// unsigned, float, boolean, string, opaque, time, objlnk, corelnk.
func TestValueAccessors(t *testing.T) {
	i, ok := IntValue(-5).Int()
	require.True(t, ok)
	require.Equal(t, int64(-5), i)
	_, ok = IntValue(-5).Uint()
	require.False(t, ok, "an Integer is not an Unsigned Integer")

	u, ok := UintValue(math.MaxUint64).Uint()
	require.True(t, ok)
	require.Equal(t, uint64(math.MaxUint64), u)

	f, ok := FloatValue(-0.25).Float()
	require.True(t, ok)
	require.Equal(t, -0.25, f)

	b, ok := BoolValue(true).Bool()
	require.True(t, ok)
	require.True(t, b)

	tm, ok := TimeValue(time.Date(2026, 11, 25, 22, 0, 0, 123, time.FixedZone("x", 3600))).Time()
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC), tm, "Time is whole seconds in UTC")

	o, inst, ok := ObjlnkValue(3, 7).Objlnk()
	require.True(t, ok)
	require.Equal(t, [2]uint16{3, 7}, [2]uint16{o, inst})

	src := []byte{1, 2}
	ov := OpaqueValue(src)
	src[0] = 9
	require.Equal(t, []byte{1, 2}, ov.Bytes(), "OpaqueValue copies its input")
	out := ov.Bytes()
	out[0] = 9
	require.Equal(t, []byte{1, 2}, ov.Bytes(), "Bytes returns a copy")
	require.Nil(t, IntValue(1).Bytes())

	require.Equal(t, TypeCorelnk, CorelnkValue("</3/0>").Type())
	require.Equal(t, FormatTLV, RawValue(FormatTLV, nil).RawFormat())
	require.True(t, Value{}.IsZero())
	require.False(t, IntValue(0).IsZero())
	require.Equal(t, IntValue(7), IntValue(7), "values compare with ==")
	require.NotEqual(t, IntValue(7), UintValue(7))
}

func TestValueString(t *testing.T) {
	for _, tt := range []struct {
		v    Value
		want string
	}{
		{StringValue("héllo"), "héllo"},
		{IntValue(-42), "-42"},
		{UintValue(18446744073709551615), "18446744073709551615"},
		{FloatValue(21.5), "21.5"},
		{BoolValue(true), "1"},
		{BoolValue(false), "0"},
		{OpaqueValue([]byte{0xff, 0x00}), "/wA="},
		{TimeValue(time.Unix(1367491215, 0)), "1367491215"},
		{ObjlnkValue(65535, 65535), "65535:65535"},
		{CorelnkValue("</1/0>"), "</1/0>"},
		{RawValue(FormatText, []byte("12")), "12"},
		{RawValue(FormatTLV, []byte{1}), "AQ=="},
		{Value{}, ""},
	} {
		require.Equal(t, tt.want, tt.v.String(), "%s value", tt.v.Type())
	}
	require.Equal(t, "Unsigned Integer", TypeUnsigned.String())
	require.Equal(t, "Type(99)", Type(99).String())
	require.Equal(t, "RW", (OpRead | OpWrite).String())
	require.Equal(t, "", Operations(0).String())
}

// TestRawAs converts raw TLV values once the type is known (the fallback
// of LWM-6: decoders return raw values for unknown resources).
func TestRawAs(t *testing.T) {
	for _, tt := range []struct {
		raw  []byte
		t    Type
		want Value
	}{
		{[]byte{0x0E, 0xD8}, TypeInteger, IntValue(3800)},
		{[]byte{0xFF}, TypeUnsigned, UintValue(255)},
		{[]byte{0x01}, TypeBoolean, BoolValue(true)},
		{[]byte("U"), TypeString, StringValue("U")},
		{[]byte{0x00, 0x03, 0x00, 0x00}, TypeObjlnk, ObjlnkValue(3, 0)},
		{[]byte{0x51, 0x82, 0x42, 0x8F}, TypeTime, TimeValue(time.Unix(1367491215, 0))},
	} {
		v, err := RawValue(FormatTLV, tt.raw).As(tt.t)
		require.NoError(t, err, "As(%s) of % x", tt.t, tt.raw)
		require.Equal(t, tt.want, v)
	}
	_, err := RawValue(FormatTLV, []byte{1, 2, 3}).As(TypeInteger)
	require.ErrorIs(t, err, ErrMalformed)
	require.Contains(t, err.Error(), "Integer of 3 bytes")
	_, err = RawValue(FormatSenMLJSON, []byte{1}).As(TypeInteger)
	require.ErrorIs(t, err, ErrMalformed)
	v, err := IntValue(3).As(TypeInteger)
	require.NoError(t, err)
	require.Equal(t, IntValue(3), v)
}

// TestResources gathers the Device example into single and multiple
// resources with their instances (LWM-6).
func TestGroupResources(t *testing.T) {
	recs := specDeviceRecords()
	res, err := GroupResources(recs)
	require.NoError(t, err)
	require.Len(t, res, 13, "the Device example has 13 resources")
	require.Equal(t, ResourceValue{Path: MustPath("/3/0/6"), Multiple: true, Instances: []InstanceValue{
		{ID: 0, Value: IntValue(1)}, {ID: 1, Value: IntValue(5)}}}, res[4])
	require.Equal(t, ResourceValue{Path: MustPath("/3/0/9"), Value: IntValue(100)}, res[7])
	var back []Record
	for _, r := range res {
		back = append(back, r.Records()...)
	}
	require.Equal(t, recs, back, "Records undoes GroupResources")

	_, err = GroupResources([]Record{{Path: MustPath("/3/0/6"), Value: IntValue(1)}, {Path: MustPath("/3/0/6/0"), Value: IntValue(1)}})
	require.ErrorIs(t, err, ErrMalformed)
	require.Contains(t, err.Error(), "single or multiple")
	_, err = GroupResources([]Record{{Path: MustPath("/3/0/6/0"), Value: IntValue(1)}, {Path: MustPath("/3/0/6"), Value: IntValue(1)}})
	require.ErrorIs(t, err, ErrMalformed, "order does not matter")
	_, err = GroupResources([]Record{{Path: MustPath("/3/0/9"), Value: IntValue(1)}, {Path: MustPath("/3/0/9"), Value: IntValue(2)}})
	require.ErrorIs(t, err, ErrMalformed)
	require.Contains(t, err.Error(), "two values")
}

func TestValueMarshalJSON(t *testing.T) {
	recs := []Record{
		{Path: MustPath("/3/0/0"), Value: StringValue(`say "hi"`)},
		{Path: MustPath("/3/0/9"), Value: IntValue(-3)},
		{Path: MustPath("/1/0/11"), Value: UintValue(18446744073709551615)},
		{Path: MustPath("/3303/0/5700"), Value: FloatValue(21.5)},
		{Path: MustPath("/1/0/6"), Value: BoolValue(true)},
		{Path: MustPath("/19/0/0/0"), Value: OpaqueValue([]byte{1, 2})},
		{Path: MustPath("/3/0/13"), Value: TimeValue(time.Unix(1367491215, 0))},
		{Path: MustPath("/3/0/22/0"), Value: ObjlnkValue(4, 0)},
		{Path: MustPath("/3/0/4")},
	}
	b, err := json.Marshal(recs)
	require.NoError(t, err)
	require.JSONEq(t, `[
		{"Path":"/3/0/0","Value":"say \"hi\"","Time":"0001-01-01T00:00:00Z"},
		{"Path":"/3/0/9","Value":-3,"Time":"0001-01-01T00:00:00Z"},
		{"Path":"/1/0/11","Value":18446744073709551615,"Time":"0001-01-01T00:00:00Z"},
		{"Path":"/3303/0/5700","Value":21.5,"Time":"0001-01-01T00:00:00Z"},
		{"Path":"/1/0/6","Value":true,"Time":"0001-01-01T00:00:00Z"},
		{"Path":"/19/0/0/0","Value":"AQI=","Time":"0001-01-01T00:00:00Z"},
		{"Path":"/3/0/13","Value":1367491215,"Time":"0001-01-01T00:00:00Z"},
		{"Path":"/3/0/22/0","Value":"4:0","Time":"0001-01-01T00:00:00Z"},
		{"Path":"/3/0/4","Value":null,"Time":"0001-01-01T00:00:00Z"}]`, string(b))
	_, err = json.Marshal(FloatValue(math.NaN()))
	require.ErrorIs(t, err, ErrEncode)
}

// TestObjectsConcurrent adds definitions while other goroutines decode;
// run with -race.
func TestObjectsConcurrent(t *testing.T) {
	reg := NewBuiltinObjects()
	payload := unhex(t, specDeviceTLV)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			_ = reg.Add(ObjectDef{ID: uint16(30000 + i), Resources: []ResourceDef{{ID: 1, Type: TypeInteger}}})
		}
	}()
	for range 50 {
		got, err := DecodeTLV(MustPath("/3/0"), payload, reg)
		require.NoError(t, err)
		require.Len(t, got, 16)
	}
	<-done
	require.Len(t, reg.IDs(), 6+50)
}
