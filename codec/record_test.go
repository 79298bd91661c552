package codec_test

import (
	"testing"

	"github.com/doze-io/doze/codec"
	"github.com/stretchr/testify/require"
)

const statusHex = "02 0159 0A 0001E0F3 00FA 01 00000E10 3230323631313235543232303030305A 04 4E4F4E45"

// A Record reused across different messages reports each one correctly, and
// alternating between them still allocates nothing.
func TestRecordReuse(t *testing.T) {
	d := load(t, "watermeter.json", nil)
	reading, status := meterPayload, unhex(t, statusHex)
	var rec codec.Record

	require.NoError(t, d.DecodeRecord(status, &rec))
	require.Equal(t, "meterStatus", rec.MessageName())
	require.Equal(t, codec.MsgReport, rec.Type())
	require.Equal(t, 10, rec.Len())
	require.Equal(t, "meterTime", rec.Name(7))
	require.Equal(t, []byte("20261125T220000Z"), rec.Bytes(7))
	require.Equal(t, "20261125T220000Z", rec.Value(7))
	require.Equal(t, "NONE", rec.Value(9))
	require.InDelta(t, 3.45, rec.Float(1), 1e-12)
	require.Equal(t, int64(345), rec.Int(1), "Int of a scaled field is its raw value")
	require.Equal(t, int64(10), rec.Value(2))
	require.Equal(t, int64(123123), rec.Value(3))

	require.NoError(t, d.DecodeRecord(reading, &rec))
	require.Equal(t, "meterReading", rec.MessageName())
	require.Equal(t, 6, rec.Len())
	require.Nil(t, rec.Bytes(1), "numbers have no bytes, whatever the record held before")
	require.Equal(t, int64(85), rec.Value(1))
	require.Equal(t, int64(-85), rec.Value(2))
	require.Equal(t, 123.456, rec.Value(3))
	require.Equal(t, 1.5, rec.Value(4))
	require.Equal(t, float64(-85), rec.Float(2))
	require.Equal(t, float64(85), rec.Float(1))

	require.NoError(t, d.DecodeRecord(unhex(t, "03 0011 01"), &rec))
	require.Equal(t, codec.MsgResponse, rec.Type())
	require.Equal(t, &codec.Response{Identifier: "0", MsgType: codec.MsgResponse, Mid: 17,
		Body: map[string]any{"result": int64(1)}}, rec.Build())

	if raceEnabled {
		return
	}
	allocs := testing.AllocsPerRun(200, func() {
		if err := d.DecodeRecord(status, &rec); err != nil {
			t.Fatal(err)
		}
		if err := d.DecodeRecord(reading, &rec); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs, "alternating messages in one Record")
}

// Values of every type read back through the Record as Decode shows them.
func TestRecordTypes(t *testing.T) {
	d := load(t, "alltypes.json", nil)
	checked := 0
	for _, rt := range roundTrips {
		if rt.file != "alltypes.json" || rt.message != "numbers" {
			continue
		}
		checked++
		b, err := d.Append(nil, rt.msg)
		require.NoError(t, err)
		var rec codec.Record
		require.NoError(t, d.DecodeRecord(b, &rec))
		want := rt.msg.(*codec.Report).Data[0].ServiceData
		for i := 1; i < rec.Len(); i++ {
			require.Equal(t, want[rec.Name(i)], rec.Value(i), "field %s", rec.Name(i))
		}
		require.Equal(t, int64(-128), rec.Int(1))
		require.Equal(t, float64(-128), rec.Float(1))
		require.Equal(t, uint64(18446744073709551615), uint64(rec.Int(10)), "uint64 wraps in Int")
		require.Equal(t, 1.8446744073709552e19, rec.Float(10))
		require.Equal(t, int64(3), rec.Int(11), "float truncated")
		require.Equal(t, 3.5, rec.Float(11))
		require.Nil(t, rec.Bytes(11))
	}
	require.Equal(t, 1, checked, "roundTrips holds the alltypes numbers message")
}

// CompileSpec takes a Spec built in Go.
func TestCompileSpec(t *testing.T) {
	d, err := codec.CompileSpec(&codec.Spec{Messages: []codec.MessageSpec{{
		Name: "r", Kind: codec.KindReport, Service: "S",
		Fields: []codec.FieldSpec{{Name: "t", Type: "int16", Scale: 0.5}},
	}}}, nil)
	require.NoError(t, err)
	m, err := d.Decode([]byte{0xFF, 0xFF})
	require.NoError(t, err)
	require.Equal(t, -0.5, m.(*codec.Report).Data[0].ServiceData["t"])
}
