package codec_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/doze-io/doze/codec"
	"github.com/stretchr/testify/require"
)

// compileCodes compiles src and returns the problem codes, nil when it
// compiles.
func compileCodes(t *testing.T, src string, model codec.Model) []string {
	t.Helper()
	_, err := codec.Compile([]byte(src), model)
	if err == nil {
		return nil
	}
	var ce *codec.CompileError
	require.ErrorAs(t, err, &ce, "Compile(%s)", src)
	return ce.Codes()
}

// COD-3 (last line, §9.5): a command response counts as an uplink and a
// report response as a downlink when the messageId rules are checked; a
// report and a command may share an id, being of different directions.
func TestCompileMessageIDDirections(t *testing.T) {
	const (
		report  = `{"name":"rep","kind":"report","service":"S","fields":[{"name":"id","type":"uint8","messageId":true,"default":"01"},{"name":"x","type":"uint8"}]}`
		command = `{"name":"cmd","kind":"command","service":"S","command":"GO","fields":[{"name":"id","type":"uint8","messageId":true,"default":"01"},{"name":"x","type":"uint8"}]}`
	)
	rsp := func(id string, idFirst bool) string {
		if id == "" {
			return `{"name":"rsp","kind":"commandResponse","fields":[{"name":"result","type":"uint8"}]}`
		}
		f := `{"name":"id","type":"uint8","messageId":true,"default":"` + id + `"}`
		if idFirst {
			return `{"name":"rsp","kind":"commandResponse","fields":[` + f + `,{"name":"result","type":"uint8"}]}`
		}
		return `{"name":"rsp","kind":"commandResponse","fields":[{"name":"result","type":"uint8"},` + f + `]}`
	}
	ack := func(id string) string {
		if id == "" {
			return `{"name":"ack","kind":"reportResponse","fields":[{"name":"status","type":"uint8","default":"00"}]}`
		}
		return `{"name":"ack","kind":"reportResponse","fields":[{"name":"id","type":"uint8","messageId":true,"default":"` + id + `"}]}`
	}
	codecOf := func(msgs ...string) string {
		s := `{"messages":[`
		for i, m := range msgs {
			if i > 0 {
				s += ","
			}
			s += m
		}
		return s + `]}`
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"report and command share an id", codecOf(report, command), nil},
		{"report and response distinct ids", codecOf(report, rsp("02", true)), nil},
		{"report and response share an id", codecOf(report, rsp("01", true)), []string{codec.CodeDuplicateMessageID}},
		{"response id at another position", codecOf(report, rsp("02", false)), []string{codec.CodeMessageIDPosition}},
		{"response without id beside a report", codecOf(report, rsp("", false)), []string{codec.CodeMissingMessageID}},
		{"command and report response share an id", codecOf(command, ack("01")), []string{codec.CodeDuplicateMessageID}},
		{"report response without id beside a command", codecOf(command, ack("")), []string{codec.CodeMissingMessageID}},
		{"command and report response distinct ids", codecOf(command, ack("02")), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, compileCodes(t, tt.src, nil), "Compile(%s)", tt.src)
		})
	}
}

// COD-3: a varstring/variant needs lengthField naming an earlier integer
// field; a command with a response and the response both need mid.
func TestCompileLengthAndMid(t *testing.T) {
	rep := func(fields string) string {
		return `{"messages":[{"name":"r","kind":"report","service":"S","fields":[` + fields + `]}]}`
	}
	tests := []struct {
		name, src string
		want      []string
	}{
		{"earlier integer length", rep(`{"name":"n","type":"uint8"},{"name":"v","type":"varstring","lengthField":"n"}`), nil},
		{"no lengthField", rep(`{"name":"v","type":"variant"}`), []string{codec.CodeLengthField}},
		{"lengthField unknown", rep(`{"name":"v","type":"variant","lengthField":"n"}`), []string{codec.CodeLengthField}},
		{"lengthField later", rep(`{"name":"v","type":"varstring","lengthField":"n"},{"name":"n","type":"uint8"}`), []string{codec.CodeLengthField}},
		{"lengthField is itself", rep(`{"name":"v","type":"varstring","lengthField":"v"}`), []string{codec.CodeLengthField}},
		{"lengthField is a string", rep(`{"name":"n","type":"string","length":1},{"name":"v","type":"varstring","lengthField":"n"}`), []string{codec.CodeLengthField}},
		{"lengthField is a float", rep(`{"name":"n","type":"float32"},{"name":"v","type":"variant","lengthField":"n"}`), []string{codec.CodeLengthField}},
		{"response lacks mid", `{"messages":[
			{"name":"cmd","kind":"command","service":"S","command":"GO","responseMessage":"rsp","fields":[{"name":"mid","type":"uint16","mid":true}]},
			{"name":"rsp","kind":"commandResponse","fields":[{"name":"result","type":"uint8"}]}]}`, []string{codec.CodeMissingMid}},
		{"both have mid", `{"messages":[
			{"name":"cmd","kind":"command","service":"S","command":"GO","responseMessage":"rsp","fields":[{"name":"mid","type":"uint16","mid":true}]},
			{"name":"rsp","kind":"commandResponse","fields":[{"name":"mid","type":"uint16","mid":true},{"name":"result","type":"uint8"}]}]}`, nil},
		{"mid is a string", `{"messages":[{"name":"cmd","kind":"command","service":"S","command":"GO","fields":[{"name":"mid","type":"string","length":2,"mid":true}]}]}`,
			[]string{codec.CodeMidType}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, compileCodes(t, tt.src, nil), "Compile(%s)", tt.src)
		})
	}
}

// COD-3, §8.5: which codec field types each profile dataType can hold —
// int ← int or array; decimal ← int, string or array (and our decimal
// fields: scaled integers, floats); string, DateTime, jsonObject ← string or
// array. Checked for report properties and for command paras.
func TestCompileDataTypeTable(t *testing.T) {
	fields := []struct {
		name, json string
	}{
		{"int", `{"name":"p","type":"uint16"}`},
		{"scaled", `{"name":"p","type":"int16","scale":0.1}`},
		{"float", `{"name":"p","type":"float32"}`},
		{"string", `{"name":"p","type":"string","length":4}`},
		{"varstring", `{"name":"n","type":"uint8"},{"name":"p","type":"varstring","lengthField":"n"}`},
		{"array", `{"name":"p","type":"array","length":4}`},
		{"variant", `{"name":"n","type":"uint8"},{"name":"p","type":"variant","lengthField":"n"}`},
	}
	allowed := map[string][]string{
		"int":        {"int", "array", "variant"},
		"decimal":    {"int", "scaled", "float", "string", "varstring", "array", "variant"},
		"string":     {"string", "varstring", "array", "variant"},
		"DateTime":   {"string", "varstring", "array", "variant"},
		"jsonObject": {"string", "varstring", "array", "variant"},
	}
	for dataType, ok := range allowed {
		for _, f := range fields {
			want := []string{codec.CodeTypeMismatch}
			for _, a := range ok {
				if a == f.name {
					want = nil
				}
			}
			t.Run(dataType+"/"+f.name, func(t *testing.T) {
				report := `{"messages":[{"name":"r","kind":"report","service":"S","fields":[` + f.json + `]}]}`
				require.Equal(t, want, compileCodes(t, report, mapModel{"S.p": dataType}), "property of dataType %s from a %s field", dataType, f.name)
				command := `{"messages":[{"name":"c","kind":"command","service":"S","command":"GO","fields":[` + f.json + `]}]}`
				require.Equal(t, want, compileCodes(t, command, mapModel{"S.GO.p": dataType}), "para of dataType %s from a %s field", dataType, f.name)
			})
		}
	}
	require.Equal(t, []string{codec.CodeTypeMismatch},
		compileCodes(t, `{"messages":[{"name":"r","kind":"report","service":"S","fields":[{"name":"p","type":"uint8"}]}]}`, mapModel{"S.p": "colour"}),
		"a dataType outside §8.5 is a mismatch")
}

// COD-4: two's complement on the general decoding path too (a message with a
// variable field, which the fixed-layout path does not take), and array and
// variant values are base64 in JSON.
func TestDecodeVariableMessage(t *testing.T) {
	d, err := codec.Compile([]byte(`{"messages":[{"name":"r","kind":"report","service":"S","fields":[
		{"name":"n","type":"uint8"},{"name":"v","type":"variant","lengthField":"n"},
		{"name":"a","type":"int8"},{"name":"b","type":"int16"},{"name":"c","type":"int24"},{"name":"d","type":"int32"},{"name":"e","type":"int64"},
		{"name":"raw","type":"array","length":2}]}]}`), nil)
	require.NoError(t, err)
	payload := unhex(t, "02 7B7D FB FFFE FFFFFD FFFFFFFC FFFFFFFFFFFFFFFB 00FF")
	m, err := d.Decode(payload)
	require.NoError(t, err)
	want := map[string]any{"v": []byte("{}"), "a": int64(-5), "b": int64(-2), "c": int64(-3), "d": int64(-4), "e": int64(-5), "raw": []byte{0x00, 0xFF}}
	require.Equal(t, want, m.(*codec.Report).Data[0].ServiceData)

	js, err := json.Marshal(m)
	require.NoError(t, err)
	require.Contains(t, string(js), fmt.Sprintf(`"raw":%q`, base64.StdEncoding.EncodeToString([]byte{0, 0xFF})))
	require.Contains(t, string(js), `"v":"e30="`, "variant {} is base64 e30=")

	b, err := d.Append(nil, m)
	require.NoError(t, err)
	require.Equal(t, payload, b)
}

// COD-4: mids are 1…65535; a decoded command response with mid 0 is refused
// with the field and its offset, and an assigned mid never exceeds what the
// mid field holds (a uint8 mid wraps after 255 to 1, never 0).
func TestMidRange(t *testing.T) {
	d := load(t, "watermeter.json", nil)
	_, err := d.Decode(unhex(t, "03 0000 00"))
	require.ErrorIs(t, err, codec.ErrRange)
	require.EqualError(t, err, "codec: message setReportPeriodResult, field mid at byte 1: mid 0 is outside 1…65535")

	small, err := codec.Compile([]byte(`{"messages":[{"name":"c","kind":"command","service":"S","command":"GO","fields":[{"name":"mid","type":"uint8","mid":true}]}]}`), nil)
	require.NoError(t, err)
	var mids []int
	for range 256 {
		c := &codec.Command{ServiceID: "S", Cmd: "GO"}
		b, err := small.Encode(c)
		require.NoError(t, err)
		require.Equal(t, []byte{byte(c.Mid)}, b)
		mids = append(mids, c.Mid)
	}
	require.Equal(t, []int{1, 2, 255, 1}, []int{mids[0], mids[1], mids[254], mids[255]})
}
