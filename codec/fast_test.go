package codec_test

import (
	"fmt"
	"testing"

	"github.com/doze-io/doze/codec"
	"github.com/stretchr/testify/require"
)

// decoded is what a Record shows after a decode: the error text, or the
// message name and every field's Value, Int and Float.
func decoded(r *codec.Record, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	s := r.MessageName()
	for i := range r.Len() {
		s += fmt.Sprintf(" %s=%v/%d/%v", r.Name(i), r.Value(i), r.Int(i), r.Float(i))
	}
	return s
}

// COD-4: DecodeRecord into a Record that last held the same message takes
// the fast path; whatever it gives must be what a fresh Record (the full
// path) gives, including errors: mid out of range, PCP frames, payloads of
// the other direction or another codec with the same messageId and length.
func TestDecodeRecordFastPath(t *testing.T) {
	// fastpath.json has uplink and downlink messages of the same length
	// whose one-byte messageId sits at byte 1, after a data byte, so that
	// a payload FF FE… reaches the fast path's id check. fastpath2.json has
	// a message of the same id and length, another layout.
	a, b := load(t, "fastpath.json", nil), load(t, "fastpath2.json", nil)

	type step struct {
		d    *codec.Declarative
		down bool
		hex  string
		want string // expected decoded(); "" only checks against a fresh Record
	}
	steps := []step{
		{a, false, "07 FE 0011 FFFFFE 800001 0001E240 80", "resp status=7/7/7 messageId=254/254/254 mid=17/17/17 " +
			"a=-2/-2/-2 b=8388609/8388609/8.388609e+06 c=118.456/123456/118.456 d=-128/-128/-128"},
		// Same message: the fast path, new values.
		{a, false, "00 FE 7FFF 7FFFFF FFFFFF FFFFFFFF 7F", "resp status=0/0/0 messageId=254/254/254 mid=32767/32767/32767 " +
			"a=8388607/8388607/8.388607e+06 b=16777215/16777215/1.6777215e+07 c=-5.001/-1/-5.001 d=127/127/127"},
		// mid 0 and negative: the full path's error, from a primed Record.
		{a, false, "00 FE 0000 000000 000000 00000000 00", "error: codec: message resp, field mid at byte 2: mid 0 is outside 1…65535"},
		{a, false, "00 FE 8000 000000 000000 00000000 00", "error: codec: message resp, field mid at byte 2: mid -32768 is outside 1…65535"},
		{a, false, "00 FE 0001 000000 000000 00000000 00", ""},
		// A PCP frame of the right length whose byte 1 is the messageId.
		{a, false, "FF FE 0011 000000 000000 00000000 00", "error: " + codec.ErrPCP.Error()},
		{a, false, "00 FE 0011 000000 000000 00000000", ""},       // one byte short
		{a, false, "00 FE 0011 000000 000000 00000000 00 00", ""}, // one byte over
		{a, false, "00 FD 8000000000000001 00000003 FF", "rep status=0/0/0 messageId=253/253/253 e=-9223372036854775807/-9223372036854775807/-9.223372036854776e+18 f=1.5/3/1.5 g=-1/-1/-1"},
		{a, false, "00 FD FFFFFFFFFFFFFFFF FFFFFFFF 01", ""},
		{a, false, "00 FE 0102 030405 060708 090A0B0C 0D", ""},
		// Downlink, same id and length: the command, not the response.
		{a, true, "00 FE 0102 030405 060708 090A0B0C 0D", "cmd status=0/0/0 messageId=254/254/254 mid=258/258/258 " +
			"x=50595078/50595078/5.0595078e+07 y=117967114/117967114/1.17967114e+08 z=2828/2828/2828 w=13/13/13"},
		{a, false, "00 FE 0102 030405 060708 090A0B0C 0D", ""},
		// Another codec, same id and length.
		{a, false, "00 FD 0000000000000001 00000002 03", ""},
		{b, false, "00 FD 0000000000000001 00000002 03", "rep2 status=0/0/0 messageId=253/253/253 h=0/0/0 " +
			"i=4294967298/4294967298/4.294967298e+09 j=3/3/3"},
		{a, false, "00 FD 0000000000000001 00000002 03", ""},
	}
	var primed codec.Record
	for i, s := range steps {
		p := unhex(t, s.hex)
		dec := s.d.DecodeRecord
		if s.down {
			dec = s.d.DecodeDownlinkRecord
		}
		var fresh codec.Record
		want := decoded(&fresh, dec(p, &fresh))
		got := decoded(&primed, dec(p, &primed))
		require.Equal(t, want, got, "step %d (%s): primed Record differs from a fresh one", i, s.hex)
		// Twice in a row: the second is surely the fast path when there is one.
		require.Equal(t, want, decoded(&primed, dec(p, &primed)), "step %d (%s), again", i, s.hex)
		if s.want != "" {
			require.Equal(t, s.want, got, "step %d (%s)", i, s.hex)
		}
	}
}

// COD-4: the fast path reads messages of 1 to 16 integer fields besides
// the messageId (one entry point each) and leaves 17 to the full path;
// every width decodes as a fresh Record does.
func TestDecodeRecordFastPathWidths(t *testing.T) {
	types := []struct {
		name string
		size int
	}{{"int8", 1}, {"uint16", 2}, {"int24", 3}, {"uint32", 4}, {"int64", 8}, {"uint24", 3}, {"int16", 2}, {"uint8", 1}, {"int32", 4}}
	for k := 1; k <= 17; k++ {
		fields := `{"name":"id","type":"uint8","messageId":true,"default":"2A"}`
		n := 1
		for j := range k {
			ty := types[j%len(types)]
			if k == 1 {
				ty = types[4] // int64: 9 bytes in all
			}
			fields += fmt.Sprintf(`,{"name":"f%d","type":"%s"}`, j, ty.name)
			n += ty.size
		}
		d, err := codec.Compile([]byte(`{"messages":[{"name":"m","kind":"report","service":"S","fields":[`+fields+`]}]}`), nil)
		require.NoError(t, err, "%d fields", k)
		var primed codec.Record
		for round := range 3 {
			p := make([]byte, n)
			p[0] = 0x2A
			for i := 1; i < n; i++ {
				p[i] = byte(i*37 + round*101 + k)
			}
			var fresh codec.Record
			want := decoded(&fresh, d.DecodeRecord(p, &fresh))
			require.NotContains(t, want, "error", "%d fields", k)
			require.Equal(t, want, decoded(&primed, d.DecodeRecord(p, &primed)), "%d fields, round %d", k, round)
		}
	}
}
