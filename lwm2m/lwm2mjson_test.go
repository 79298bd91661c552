package lwm2m

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// specDeviceJSON is the Device object instance in the JSON format of LwM2M
// 1.0 (TS 1.0 §6.4.4), with the values of specDeviceTLV.
const specDeviceJSON = `{"bn":"/3/0/",
"e":[{"n":"0","sv":"Open Mobile Alliance"},
{"n":"1","sv":"Lightweight M2M Client"},
{"n":"2","sv":"345000123"},
{"n":"3","sv":"1.0"},
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
{"n":"14","sv":"+02:00"},
{"n":"16","sv":"U"}]}`

func TestJSONSpecDevice(t *testing.T) {
	got, err := DecodeJSON(MustPath("/3/0"), []byte(specDeviceJSON), NewBuiltinObjects())
	require.NoError(t, err)
	require.Equal(t, specDeviceRecords(), got)
	got, err = Decode(FormatJSON, MustPath("/3/0"), []byte(specDeviceJSON), NewBuiltinObjects())
	require.NoError(t, err)
	require.Len(t, got, 16)
}

// lwm2mJSONTests also seed FuzzDecodeJSON.
var lwm2mJSONTests = []struct {
	path, in string
	want     []Record
	off      int
	has      string
}{
	{path: "/3/0/0", in: `{"e":[{"sv":"Open Mobile Alliance"}]}`,
		want: []Record{{Path: MustPath("/3/0/0"), Value: StringValue("Open Mobile Alliance")}}},
	{path: "/3/0", in: `{"e":[{"n":"9","v":90,"t":-5}],"bt":1700000005}`,
		want: []Record{{Path: MustPath("/3/0/9"), Value: IntValue(90), Time: time.Unix(1700000000, 0).UTC()}}},
	{path: "/5/0", in: `{"bn":"/5/0","e":[{"n":"0","sv":"AQID"},{"n":"3","v":2}],"x":[1]}`,
		want: []Record{{Path: MustPath("/5/0/0"), Value: OpaqueValue([]byte{1, 2, 3})}, {Path: MustPath("/5/0/3"), Value: IntValue(2)}}},
	{path: "/3/0", in: `{"e":[{"n":"22/0","ov":"4:1"},{"n":"20","v":4}]}`,
		want: []Record{{Path: MustPath("/3/0/22/0"), Value: ObjlnkValue(4, 1)}, {Path: MustPath("/3/0/20"), Value: IntValue(4)}}},
	{path: "/3/0", in: `[]`, off: 0, has: `want a JSON object with an "e" array`},
	{path: "/3/0", in: `{"e":{}}`, off: 1, has: "e must be an array"},
	{path: "/3/0", in: `{"e":[{"n":"9","v":1},{"n":"x","v":1}]}`, off: 22, has: `"/3/0/x" is not a path`},
	{path: "/3303/0", in: `{"e":[{"n":"5700","v":1},{"n":"5700","v":-1e400}]}`, off: 25, has: "v -1e400 is outside the range of a 64-bit float"},
	{path: "/3/0", in: `{"e":[{"n":"9","sv":"a"}]}`, off: 6, has: "the resource is Integer but the record has a string"},
	{path: "/5/0", in: `{"e":[{"n":"0","sv":"!!"}]}`, off: 6, has: "not base64"},
	{path: "/3/0", in: `{"e":[]} {}`, off: 9, has: "data after"},
	{path: "/3/0", in: `{"bn":3,"e":[]}`, off: 1, has: "bn must be a string"},
	{path: "/3/0", in: `{"e":[{"n":"9","v":1},{"n":"9" "v":1}]}`, off: 22, has: "invalid character"},
	{path: "/3/0", in: `{"x":[1,}`, off: 1, has: `malformed JSON in the value of "x"`},
}

func TestDecodeJSON(t *testing.T) {
	reg := NewBuiltinObjects()
	for _, tt := range lwm2mJSONTests {
		got, err := DecodeJSON(MustPath(tt.path), []byte(tt.in), reg)
		if tt.has != "" {
			var de *DecodeError
			require.ErrorAs(t, err, &de, "DecodeJSON(%s, %s)", tt.path, tt.in)
			require.ErrorIs(t, err, ErrMalformed)
			require.Contains(t, err.Error(), tt.has)
			require.Equal(t, tt.off, de.Offset, "DecodeJSON(%s): %v", tt.in, err)
			continue
		}
		require.NoError(t, err, "DecodeJSON(%s, %s)", tt.path, tt.in)
		require.Equal(t, tt.want, got, "DecodeJSON(%s)", tt.in)
	}
	_, err := Encode(FormatJSON, MustPath("/3/0"), specDeviceRecords())
	require.ErrorIs(t, err, ErrUnsupportedFormat, "11543 is decoded only")
}

// FuzzDecodeJSON checks that DecodeJSON never panics and that errors carry
// an offset inside the payload.
func FuzzDecodeJSON(f *testing.F) {
	f.Add("/3/0", []byte(specDeviceJSON))
	for _, tt := range lwm2mJSONTests {
		f.Add(tt.path, []byte(tt.in))
	}
	reg := NewBuiltinObjects()
	f.Fuzz(func(t *testing.T, path string, b []byte) {
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		if _, err := DecodeJSON(p, b, reg); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(b) {
				t.Fatalf("DecodeJSON(%s, %q) = %v; want *DecodeError with offset in 0..%d", p, b, err, len(b))
			}
		}
	})
}
