package lwm2m

import (
	"fmt"
	"testing"

	"github.com/doze-io/doze/internal/deptest"
	"github.com/stretchr/testify/require"
)

// TestEncodeDecodeEveryFormat sends the Device example through Encode and
// Decode in each multi-value format, and one value through text and
// opaque (LWM-6 content formats 0, 42, 11542, 110, 112).
func TestEncodeDecodeEveryFormat(t *testing.T) {
	reg := NewBuiltinObjects()
	for _, f := range []Format{FormatTLV, FormatSenMLJSON, FormatSenMLCBOR} {
		enc, err := Encode(f, MustPath("/3/0"), specDeviceRecords())
		require.NoError(t, err, "Encode(%s)", f)
		got, err := Decode(f, MustPath("/3/0"), enc, reg)
		require.NoError(t, err, "Decode(%s)", f)
		require.Equal(t, specDeviceRecords(), got, "round trip through %s", f)
	}
	one := []Record{{Path: MustPath("/3/0/9"), Value: IntValue(88)}}
	enc, err := Encode(FormatText, MustPath("/3/0/9"), one)
	require.NoError(t, err)
	require.Equal(t, "88", string(enc))
	got, err := Decode(FormatText, MustPath("/3/0/9"), enc, reg)
	require.NoError(t, err)
	require.Equal(t, one, got)

	data := []Record{{Path: MustPath("/19/1/0"), Value: OpaqueValue([]byte{0xAA, 0x01})}}
	enc, err = Encode(FormatOpaque, MustPath("/19/1/0"), data)
	require.NoError(t, err)
	require.Equal(t, []byte{0xAA, 0x01}, enc)
	got, err = Decode(FormatOpaque, MustPath("/19/1/0"), enc, reg)
	require.NoError(t, err)
	require.Equal(t, data, got)
}

func TestFormatUnsupported(t *testing.T) {
	_, err := Decode(FormatLink, MustPath("/3/0"), []byte("</3/0>"), nil)
	require.ErrorIs(t, err, ErrUnsupportedFormat)
	require.Contains(t, err.Error(), "ParseLinks")
	_, err = Encode(Format(9999), MustPath("/3/0"), nil)
	require.ErrorIs(t, err, ErrUnsupportedFormat)
	require.Contains(t, err.Error(), "content-format 9999")
	require.Equal(t, "application/senml+cbor", FormatSenMLCBOR.String())
	require.Equal(t, "application/vnd.oma.lwm2m+tlv", FormatTLV.String())
	require.Equal(t, Format(11543), FormatJSON)
	require.Equal(t, Format(40), FormatLink)
}

// TestErrorMessages pins the text of the error types: what, where, what is
// allowed.
func TestErrorMessages(t *testing.T) {
	require.Equal(t, `lwm2m: application/vnd.oma.lwm2m+tlv /3/0/13 at byte 5: Time of 3 bytes; want 1, 2, 4 or 8`,
		(&DecodeError{Format: FormatTLV, Path: "/3/0/13", Offset: 5, Reason: "Time of 3 bytes; want 1, 2, 4 or 8"}).Error())
	require.Equal(t, `lwm2m: cannot encode text/plain /3/0/1: record has no value`,
		(&EncodeError{Format: FormatText, Path: "/3/0/1", Reason: "record has no value"}).Error())
	require.Equal(t, `lwm2m: object definition 3.xml:12 object 3: bad`,
		(&DefinitionError{Source: "3.xml", Line: 12, Object: 3, Reason: "bad"}).Error())
	require.Equal(t, `lwm2m: invalid path "/3/x" at byte 3: no`,
		(&PathError{Input: "/3/x", Offset: 3, Reason: "no"}).Error())
}

// TestImportsModel applies the import rules of docs/architecture.md to the package
// (only lwm2m imports go-coap and pion; no sibling packages).
func TestImportsModel(t *testing.T) { deptest.Check(t) }

// recordsDiff describes the first difference between the records got and
// want, or returns "": the same paths and values (==) in the same order,
// and times that are the same instant.
func recordsDiff(got, want []Record) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Path != w.Path || g.Value != w.Value || !g.Time.Equal(w.Time) {
			return fmt.Sprintf("record %d is %s %s %q (bits %#x) at %v, want %s %s %q (bits %#x) at %v", i,
				g.Path, g.Value.Type(), g.Value, g.Value.n, g.Time, w.Path, w.Value.Type(), w.Value, w.Value.n, w.Time)
		}
	}
	return ""
}

// testObjects are the built-in objects and a Float resource, 3303/x/5700
// (Sensor Value), which they lack.
func testObjects(t testing.TB) *Objects {
	reg := NewBuiltinObjects()
	require.NoError(t, reg.Add(ObjectDef{ID: 3303, Resources: []ResourceDef{{ID: 5700, Type: TypeFloat}}}))
	return reg
}
