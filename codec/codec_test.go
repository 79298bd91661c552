package codec_test

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/internal/deptest"
	"github.com/stretchr/testify/require"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// mapModel is a product model for tests: "Service.property" → dataType,
// "Service.COMMAND.para" → dataType, "Service.COMMAND/response.para" for
// response paras.
type mapModel map[string]string

func (m mapModel) PropertyType(s, p string) (string, bool) { t, ok := m[s+"."+p]; return t, ok }
func (m mapModel) ParaType(s, c, p string) (string, bool)  { t, ok := m[s+"."+c+"."+p]; return t, ok }
func (m mapModel) ResponseParaType(s, c, p string) (string, bool) {
	t, ok := m[s+"."+c+"/response."+p]
	return t, ok
}

// waterMeterModel holds the product models of the water meter
// (WaterMeter_DozeLabs_WM100) and the lock (SmartLock_DozeLabs_SL2) of the
// profile package's testdata, which the testdata codecs must fit.
var waterMeterModel = mapModel{
	"Battery.batteryLevel":                    "int",
	"Battery.batteryVoltage":                  "decimal",
	"Connectivity.signalStrength":             "int",
	"Connectivity.linkQuality":                "int",
	"Connectivity.cellId":                     "int",
	"Connectivity.pci":                        "int",
	"Connectivity.ecl":                        "int",
	"Meter.totalFlow":                         "decimal",
	"Meter.flowRate":                          "decimal",
	"Meter.reportPeriod":                      "int",
	"Meter.meterTime":                         "DateTime",
	"Meter.pulseCount":                        "int",
	"Meter.alarmState":                        "string",
	"Meter.SET_REPORT_PERIOD.period":          "int",
	"Meter.SET_REPORT_PERIOD/response.result": "int",
	// SmartLock_DozeLabs_SL2 (Battery as above).
	"Lock.lockState":                 "string",
	"Lock.lastEvent":                 "jsonObject",
	"Lock.eventTime":                 "DateTime",
	"Lock.doorOpen":                  "int",
	"Lock.UNLOCK.holdSeconds":        "int",
	"Lock.UNLOCK.reason":             "string",
	"Lock.UNLOCK/response.lockState": "string",
	"Lock.SET_USERS.users":           "jsonObject",
}

func load(t testing.TB, name string, model codec.Model) *codec.Declarative {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	d, err := codec.Compile(data, model)
	require.NoError(t, err, "Compile(%s)", name)
	return d
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

func toJSON(t testing.TB, m codec.Message) string {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

// COD-1, COD-4: decoding the water meter's messages by messageId.
func TestDecodeWaterMeter(t *testing.T) {
	d := load(t, "watermeter.json", waterMeterModel)
	tests := []struct {
		name, hex, json string
	}{
		{"meterReading", "01 55 FFAB 0001E240 0096 0010",
			`{"identifier":"0","msgType":"deviceReq","hasMore":0,"data":[` +
				`{"serviceId":"Battery","serviceData":{"batteryLevel":85}},` +
				`{"serviceId":"Connectivity","serviceData":{"signalStrength":-85}},` +
				`{"serviceId":"Meter","serviceData":{"flowRate":1.5,"pulseCount":16,"totalFlow":123.456}}]}`},
		{"meterStatus", "02 0159 0A 0001E0F3 00FA 01 00000E10 3230323631313235543232303030305A 04 4E4F4E45",
			`{"identifier":"0","msgType":"deviceReq","hasMore":0,"data":[` +
				`{"serviceId":"Battery","serviceData":{"batteryVoltage":3.45}},` +
				`{"serviceId":"Connectivity","serviceData":{"cellId":123123,"ecl":1,"linkQuality":10,"pci":250}},` +
				`{"serviceId":"Meter","serviceData":{"alarmState":"NONE","meterTime":"20261125T220000Z","reportPeriod":3600}}]}`},
		{"setReportPeriodResult", "03 0011 00",
			`{"identifier":"0","msgType":"deviceRsp","errcode":0,"mid":17,"hasMore":0,"body":{"result":0}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := d.Decode(unhex(t, tt.hex))
			require.NoError(t, err, "Decode(%s)", tt.hex)
			require.JSONEq(t, tt.json, toJSON(t, m))
			require.Equal(t, tt.json, toJSON(t, m), "field order of COD-1")
		})
	}
}

// COD-4: negative numbers are two's complement, -5 as int8 is FB (§3.13);
// "abc" is 61 62 63 (§3.21).
func TestTwosComplementAndASCII(t *testing.T) {
	src := `{"messages":[{"name":"r","kind":"report","service":"S","fields":[
		{"name":"a","type":"int8"},{"name":"b","type":"int24"},{"name":"c","type":"int64"},
		{"name":"s","type":"string","length":3}]}]}`
	d, err := codec.Compile([]byte(src), nil)
	require.NoError(t, err)
	rep := &codec.Report{Data: []codec.ServiceData{{ServiceID: "S", ServiceData: map[string]any{
		"a": -5, "b": -2, "c": int64(-1) << 40, "s": "abc"}}}}
	b, err := d.Append(nil, rep)
	require.NoError(t, err)
	require.Equal(t, "fb"+"fffffe"+"ffffff0000000000"+"616263", hex.EncodeToString(b))
	m, err := d.Decode(b)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"a": int64(-5), "b": int64(-2), "c": int64(-1) << 40, "s": "abc"},
		m.(*codec.Report).Data[0].ServiceData)
}

// COD-4: non-printable bytes of a decoded string read \u00XX in JSON, and
// that JSON encodes back to the same bytes.
func TestStringEscapes(t *testing.T) {
	src := `{"messages":[{"name":"r","kind":"report","service":"S","fields":[
		{"name":"s","type":"string","length":6},{"name":"n","type":"uint8"},{"name":"v","type":"varstring","lengthField":"n"}]}]}`
	d, err := codec.Compile([]byte(src), nil)
	require.NoError(t, err)
	payload := unhex(t, "41 01 7F FF 42 00 02 0A E9")
	m, err := d.Decode(payload)
	require.NoError(t, err)
	js := toJSON(t, m)
	require.Equal(t, `{"identifier":"0","msgType":"deviceReq","hasMore":0,"data":[{"serviceId":"S","serviceData":{"s":"A\u0001\u007f\u00ffB","v":"\n\u00e9"}}]}`, js)

	back, err := codec.ParseMessage([]byte(js))
	require.NoError(t, err)
	out, err := d.Append(nil, back)
	require.NoError(t, err)
	require.Equal(t, payload, out, "JSON with \\u00XX re-encodes to the decoded bytes")

	_, err = d.Append(nil, &codec.Report{Data: []codec.ServiceData{{ServiceID: "S",
		ServiceData: map[string]any{"s": "€", "v": ""}}}})
	require.ErrorIs(t, err, codec.ErrValue, "a rune above U+00FF is not a byte")
}

// COD-4: errors name message, field and byte offset; leftover bytes and
// unknown messageIds are errors; PCP frames are refused with ErrPCP.
func TestDecodeErrors(t *testing.T) {
	d := load(t, "watermeter.json", nil)
	lock := load(t, "lock.json", nil)
	anyTwo, err := codec.Compile([]byte(`{"messages":[{"name":"r","kind":"report","service":"S","fields":[{"name":"x","type":"uint16"}]}]}`), nil)
	require.NoError(t, err)
	floats, err := codec.Compile([]byte(`{"messages":[{"name":"r","kind":"report","service":"S","fields":[{"name":"t","type":"float32"}]}]}`), nil)
	require.NoError(t, err)
	tests := []struct {
		name    string
		d       *codec.Declarative
		hex     string
		want    error
		message string
	}{
		{"truncated", d, "01 55 FFAB 0001E240 0096 00", codec.ErrTruncated,
			"codec: message meterReading, field pulseCount at byte 10: need 2 bytes, 1 left"},
		{"trailing", d, "03 0011 00 FF", codec.ErrTrailing,
			"codec: message setReportPeriodResult at byte 4: 1 byte(s) left over after the last field result; the message is 4 bytes"},
		{"unknown id", d, "09 0011 00", codec.ErrUnknownMessage, "codec: field messageId at byte 0: messageId 9 (0x09) matches no message"},
		{"empty", d, "", codec.ErrEmpty, "codec: at byte 0: empty payload"},
		{"pcp", d, "FFFE 01 00", codec.ErrPCP, codec.ErrPCP.Error()},
		// Without a messageId any two bytes would decode; FF FE still never does.
		{"pcp without messageId", anyTwo, "FFFE", codec.ErrPCP, codec.ErrPCP.Error()},
		{"varstring too long", lock, "01 00 3230323631313235543232303030305A 05 4142", codec.ErrTruncated,
			"codec: message lockEvent, field lockState at byte 19: need 5 bytes (from stateLength), 2 left"},
		{"variant too long", lock, "01 00 3230323631313235543232303030305A 00 0100 7B7D", codec.ErrTruncated,
			"codec: message lockEvent, field lastEvent at byte 21: need 256 bytes (from eventLength), 2 left"},
		{"float NaN", floats, "7FC00000", codec.ErrNotFinite,
			"codec: message r, field t at byte 0: 7FC00000 is NaN or infinite; only finite numbers are allowed"},
		{"float infinity", floats, "7F800000", codec.ErrNotFinite,
			"codec: message r, field t at byte 0: 7F800000 is NaN or infinite; only finite numbers are allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.d.Decode(unhex(t, tt.hex))
			require.ErrorIs(t, err, tt.want, "Decode(%s)", tt.hex)
			require.Equal(t, tt.message, err.Error())
			if tt.want == codec.ErrPCP {
				require.Same(t, codec.ErrPCP, err, "ErrPCP is returned as is, for routing")
				return
			}
			var fe *codec.FieldError
			require.ErrorAs(t, err, &fe)
		})
	}
}

// COD-4: encoding refuses values that do not fit, fills defaults.
func TestEncodeRefuses(t *testing.T) {
	d := load(t, "watermeter.json", nil)
	lock := load(t, "lock.json", nil)
	reading := func(vals map[string]map[string]any) *codec.Report {
		r := &codec.Report{}
		for _, s := range []string{"Battery", "Connectivity", "Meter"} {
			r.Data = append(r.Data, codec.ServiceData{ServiceID: s, ServiceData: vals[s]})
		}
		return r
	}
	good := func() map[string]map[string]any {
		return map[string]map[string]any{
			"Battery":      {"batteryLevel": 85},
			"Connectivity": {"signalStrength": -85},
			"Meter":        {"totalFlow": 123.456, "flowRate": 1.5, "pulseCount": 16},
		}
	}
	b, err := d.Append(nil, reading(good()))
	require.NoError(t, err)
	require.Equal(t, unhex(t, "01 55 FFAB 0001E240 0096 0010"), b)

	tests := []struct {
		name    string
		service string
		key     string
		value   any
		want    error
		text    string
	}{
		{"300 into uint8", "Battery", "batteryLevel", 300, codec.ErrRange,
			"codec: message meterReading, field batteryLevel at byte 1: 300 does not fit uint8 (0…255)"},
		{"negative into uint8", "Battery", "batteryLevel", -1, codec.ErrRange, ""},
		{"int16 overflow", "Connectivity", "signalStrength", 40000, codec.ErrRange, ""},
		{"fraction into int", "Meter", "pulseCount", 1.5, codec.ErrValue, ""},
		{"string into int", "Meter", "pulseCount", "12", codec.ErrValue, ""},
		{"not a multiple of the scale", "Meter", "totalFlow", 1.0005, codec.ErrValue, ""},
		{"scaled overflow", "Meter", "totalFlow", 5e6, codec.ErrRange, ""},
		{"scaled negative into uint32", "Meter", "flowRate", -1.0, codec.ErrRange, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := good()
			v[tt.service][tt.key] = tt.value
			_, err := d.Append(nil, reading(v))
			require.ErrorIs(t, err, tt.want)
			var fe *codec.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tt.key, fe.Field)
			if tt.text != "" {
				require.Equal(t, tt.text, err.Error())
			}
		})
	}

	// Missing value without default.
	v := good()
	delete(v["Battery"], "batteryLevel")
	_, err = d.Append(nil, reading(v))
	require.ErrorIs(t, err, codec.ErrUnknownMessage, "no report message fits without batteryLevel")
	require.EqualError(t, err, "codec: message meterReading: no report message fits these values; the closest is meterReading, but it needs batteryLevel (no default)")
	v = good()
	v["Battery"]["batteryVolts"] = 3.3
	_, err = d.Append(nil, reading(v))
	require.EqualError(t, err, "codec: message meterReading: no report message fits these values; the closest is meterReading, but it has no field for Battery.batteryVolts")

	// Command: default fills value, unknown para and unknown command refused.
	cmd := &codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Paras: map[string]any{}, Mid: 7}
	b, err = d.Encode(cmd)
	require.NoError(t, err)
	require.Equal(t, unhex(t, "10 0007 00000E10"), b, "period takes its default 0E10 = 3600")
	_, err = d.Encode(&codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Paras: map[string]any{"value": 5}, Mid: 7})
	require.ErrorIs(t, err, codec.ErrValue)
	_, err = d.Encode(&codec.Command{ServiceID: "Meter", Cmd: "REBOOT", Mid: 7})
	require.ErrorIs(t, err, codec.ErrUnknownMessage)
	_, err = d.Encode(&codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Mid: 70000})
	require.ErrorIs(t, err, codec.ErrRange)

	// Booleans are integers 1 and 0 (profiles model them as int, PRF-4).
	v = good()
	v["Meter"]["pulseCount"] = true
	b, err = d.Append(nil, reading(v))
	require.NoError(t, err)
	require.Equal(t, []byte{0x00, 0x01}, b[10:])

	// Lock: varstring and variant lengths, defaults.
	lockCmd := func(cmd string, p map[string]any) ([]byte, error) {
		return lock.Encode(&codec.Command{ServiceID: "Lock", Cmd: cmd, Paras: p, Mid: 1})
	}
	b, err = lockCmd("UNLOCK", map[string]any{})
	require.NoError(t, err)
	require.Equal(t, unhex(t, "10 0001 05 03 617070"), b, "holdSeconds 5 and reason \"app\" by default")
	_, err = lockCmd("UNLOCK", map[string]any{"reason": strings.Repeat("x", 256)})
	require.ErrorIs(t, err, codec.ErrRange, "varstring longer than its uint8 length field")
	_, err = lockCmd("UNLOCK", map[string]any{"holdSeconds": 300})
	require.ErrorIs(t, err, codec.ErrRange)
	_, err = lockCmd("SET_USERS", map[string]any{"users": "!!"})
	require.ErrorIs(t, err, codec.ErrValue, "not base64")
	b, err = lockCmd("SET_USERS", map[string]any{"users": []byte(`{"ann":1}`)})
	require.NoError(t, err)
	require.Equal(t, append(unhex(t, "11 0009"), `{"ann":1}`...), b)
	_, err = lockCmd("SET_USERS", map[string]any{})
	require.ErrorIs(t, err, codec.ErrMissing, "users has no default")
}

// COD-4: a mid is assigned when missing: 1…65535, wrapping, never 0.
func TestMidAssigned(t *testing.T) {
	d := load(t, "watermeter.json", nil)
	seen := make([]int, 0, 65536)
	for range 65536 {
		c := &codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Paras: map[string]any{"period": 60}}
		b, err := d.Encode(c)
		require.NoError(t, err)
		require.Equal(t, c.Mid, int(b[1])<<8|int(b[2]), "assigned mid is written and stored in the command")
		seen = append(seen, c.Mid)
	}
	require.Equal(t, 1, seen[0])
	require.Equal(t, 65535, seen[65534])
	require.Equal(t, 1, seen[65535], "wraps to 1, never 0")
	for _, m := range seen {
		require.NotZero(t, m)
	}
	c := &codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Mid: 2016}
	_, err := d.Encode(c)
	require.NoError(t, err)
	require.Equal(t, 2016, c.Mid, "a given mid is kept")
}

// COD-4 / §6.4: the report response of "add response field".
func TestReportAck(t *testing.T) {
	d := load(t, "watermeter.json", nil)
	lock := load(t, "lock.json", nil)
	ack := func(d *codec.Declarative, h string) ([]byte, error) {
		return d.Encode(&codec.ReportAck{Request: unhex(t, h)})
	}
	b, err := ack(d, "01 55 FFAB 0001E240 0096 0010")
	require.NoError(t, err)
	require.Equal(t, unhex(t, "11 00"), b, "meterReading is answered with its readingAck message")

	b, err = ack(d, "02 0159 0A 0001E0F3 00FA 01 00000E10 3230323631313235543232303030305A 04 4E4F4E45")
	require.NoError(t, err)
	require.Equal(t, unhex(t, "AAAA0000"), b, "meterStatus is answered with the default response bytes")

	_, err = ack(d, "03 0011 00")
	require.ErrorIs(t, err, codec.ErrNoAck, "command responses are not acknowledged")

	_, err = ack(d, "FFFE0100")
	require.ErrorIs(t, err, codec.ErrPCP)

	b, err = ack(lock, "01 00 3230323631313235543232303030305A 00 0000")
	require.NoError(t, err)
	require.Equal(t, unhex(t, "AAAA0000"), b, "lockEvent: addResponse without responseMessage")
	_, err = ack(lock, "02 50 0159")
	require.ErrorIs(t, err, codec.ErrNoAck, "batteryStatus has no addResponse")

	noAck, err := codec.Compile([]byte(`{"messages":[{"name":"r","kind":"report","service":"S","fields":[{"name":"x","type":"uint8"}]}]}`), nil)
	require.NoError(t, err)
	_, err = noAck.Encode(&codec.ReportAck{Request: []byte{1}})
	require.ErrorIs(t, err, codec.ErrNoAck, "a report without addResponse gets no ACK")

	custom, err := codec.Compile([]byte(`{"messages":[{"name":"r","kind":"report","service":"S","addResponse":true,"responseBytes":"0xBEEF","fields":[{"name":"x","type":"uint8"}]}]}`), nil)
	require.NoError(t, err)
	b, err = custom.Encode(&codec.ReportAck{Request: []byte{1}})
	require.NoError(t, err)
	require.Equal(t, []byte{0xBE, 0xEF}, b)
}

// COD-3: each broken codec yields its stable problem code, and only it.
func TestCompileBroken(t *testing.T) {
	model := mapModel{"Battery.batteryLevel": "int"}
	files, err := filepath.Glob("testdata/broken/*.json")
	require.NoError(t, err)
	rules := []string{
		codec.CodeDuplicateMessageID, codec.CodeMessageIDPosition, codec.CodeMissingMessageID,
		codec.CodeMessageIDType, codec.CodeMidType, codec.CodeDefaultNotHex, codec.CodeDefaultTooLong,
		codec.CodeLengthField, codec.CodeMissingMid, codec.CodeMidPosition, codec.CodeUnknownProperty,
		codec.CodeTypeMismatch,
	}
	require.Len(t, files, len(rules), "one broken codec per COD-3 rule")
	for _, code := range rules {
		t.Run(code, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "broken", code+".json"))
			require.NoError(t, err)
			var m codec.Model
			if code == codec.CodeUnknownProperty || code == codec.CodeTypeMismatch {
				m = model
			}
			_, err = codec.Compile(data, m)
			require.ErrorIs(t, err, codec.ErrInvalid)
			var ce *codec.CompileError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, []string{code}, ce.Codes(), "problems: %v", err)
			p := ce.Problems[0]
			require.NotEmpty(t, p.Message, "problem names its message")
			require.NotEmpty(t, p.Text)
		})
	}
}

// COD-3: every problem is listed, not just the first.
func TestCompileListsEveryProblem(t *testing.T) {
	src := `{"messages":[
	 {"name":"a","kind":"report","service":"S","fields":[{"name":"id","type":"string","length":1,"messageId":true,"default":"01"},{"name":"x","type":"uint8","default":"xyz"}]},
	 {"name":"b","kind":"report","service":"S","fields":[{"name":"x","type":"uint9"}]},
	 {"name":"a","kind":"telemetry","fields":[]},
	 {"name":"c","kind":"command","service":"S","command":"GO","responseMessage":"nope","fields":[{"name":"v","type":"variant","lengthField":"zz"}]}
	]}`
	_, err := codec.Compile([]byte(src), nil)
	var ce *codec.CompileError
	require.ErrorAs(t, err, &ce)
	require.ElementsMatch(t, []string{
		codec.CodeMessageIDType, codec.CodeDefaultNotHex, codec.CodeBadType, codec.CodeBadKind,
		codec.CodeDuplicateMessage, codec.CodeLengthField, codec.CodeUnknownResponse, codec.CodeMissingMessageID,
	}, ce.Codes(), "%v", err)
	require.Contains(t, err.Error(), "message a, field x: [default-not-hex]")
}

// Problems of the file's shape beyond COD-3, each with its code.
func TestCompileShapeProblems(t *testing.T) {
	rep := func(extra, fields string) string {
		return `{"messages":[{"name":"r","kind":"report","service":"S"` + extra + `,"fields":[` + fields + `]}]}`
	}
	tests := []struct {
		name, src, code string
	}{
		{"no name", `{"messages":[{"kind":"report","service":"S","fields":[]}]}`, codec.CodeMissingName},
		{"field no name", rep("", `{"type":"uint8"}`), codec.CodeMissingName},
		{"duplicate field", rep("", `{"name":"a","type":"uint8"},{"name":"a","type":"uint8"}`), codec.CodeDuplicateField},
		{"string without length", rep("", `{"name":"a","type":"string"}`), codec.CodeBadLength},
		{"string too long", rep("", `{"name":"a","type":"array","length":70000}`), codec.CodeBadLength},
		{"length contradicts type", rep("", `{"name":"a","type":"uint16","length":4}`), codec.CodeBadLength},
		{"varstring with length", rep("", `{"name":"n","type":"uint8"},{"name":"a","type":"varstring","length":3,"lengthField":"n"}`), codec.CodeBadLength},
		{"scale on string", rep("", `{"name":"a","type":"string","length":2,"scale":0.1}`), codec.CodeBadScale},
		{"scale on int64", rep("", `{"name":"a","type":"int64","scale":0.1}`), codec.CodeBadScale},
		{"messageId without value", rep("", `{"name":"id","type":"uint8","messageId":true}`), codec.CodeMessageIDValue},
		{"report field without service", `{"messages":[{"name":"r","kind":"report","fields":[{"name":"a","type":"uint8"}]}]}`, codec.CodeMissingService},
		{"command without name", `{"messages":[{"name":"c","kind":"command","service":"S","fields":[]}]}`, codec.CodeMissingService},
		{"duplicate command", `{"messages":[{"name":"c","kind":"command","service":"S","command":"GO","fields":[{"name":"id","type":"uint8","messageId":true,"default":"01"}]},` +
			`{"name":"d","kind":"command","service":"S","command":"GO","fields":[{"name":"id","type":"uint8","messageId":true,"default":"02"}]}]}`, codec.CodeDuplicateCommand},
		{"unknown response", rep(`,"addResponse":true,"responseMessage":"nope"`, `{"name":"a","type":"uint8"}`), codec.CodeUnknownResponse},
		{"response bytes not hex", rep(`,"addResponse":true,"responseBytes":"XY"`, `{"name":"a","type":"uint8"}`), codec.CodeBadResponse},
		{"response without addResponse", rep(`,"responseBytes":"AA"`, `{"name":"a","type":"uint8"}`), codec.CodeBadResponse},
		{"response bytes and message", `{"messages":[{"name":"r","kind":"report","service":"S","addResponse":true,"responseBytes":"AA","responseMessage":"ack","fields":[]},` +
			`{"name":"ack","kind":"reportResponse","fields":[]}]}`, codec.CodeBadResponse},
		{"report response without default", `{"messages":[{"name":"ack","kind":"reportResponse","fields":[{"name":"a","type":"uint8"}]}]}`, codec.CodeResponseDefault},
		{"mid on report", rep("", `{"name":"mid","type":"uint16","mid":true}`), codec.CodeBadFlag},
		{"errcode on report", rep("", `{"name":"e","type":"uint8","errcode":true}`), codec.CodeBadFlag},
		{"two flags", `{"messages":[{"name":"r","kind":"commandResponse","fields":[{"name":"x","type":"uint16","mid":true,"errcode":true}]}]}`, codec.CodeBadFlag},
		{"lengthField on number", rep("", `{"name":"n","type":"uint8"},{"name":"a","type":"uint8","lengthField":"n"}`), codec.CodeBadFlag},
		{"shared length", rep("", `{"name":"n","type":"uint8"},{"name":"a","type":"varstring","lengthField":"n"},{"name":"b","type":"variant","lengthField":"n"}`), codec.CodeSharedLength},
		{"varstring default too long", rep("", `{"name":"n","type":"uint8"},{"name":"a","type":"varstring","lengthField":"n","default":"`+strings.Repeat("41", 256)+`"}`), codec.CodeDefaultTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := codec.Compile([]byte(tt.src), nil)
			var ce *codec.CompileError
			require.ErrorAs(t, err, &ce, "Compile(%s)", tt.src)
			require.Equal(t, []string{tt.code}, ce.Codes(), "%v", err)
		})
	}
}

// Problems carry the line and column of the message or field they name.
func TestCompileLocates(t *testing.T) {
	src := "{\"messages\": [\n" +
		"  {\"name\": \"a\", \"kind\": \"report\", \"service\": \"S\", \"fields\": [\n" +
		"    {\"name\": \"x\", \"type\": \"uint8\"},\n" +
		"    {\"name\": \"y\", \"type\": \"uint8\", \"default\": \"zz\"}\n" +
		"  ]},\n" +
		"  {\"kind\": \"thing\", \"fields\": [{\"type\": \"uint8\"}]}\n" +
		"]}"
	_, err := codec.Compile([]byte(src), nil)
	var ce *codec.CompileError
	require.ErrorAs(t, err, &ce)
	type at struct {
		code         string
		line, column int
	}
	var got []at
	for _, p := range ce.Problems {
		got = append(got, at{p.Code, p.Line, p.Column})
	}
	require.Equal(t, []at{
		{codec.CodeDefaultNotHex, 4, 5},
		{codec.CodeBadKind, 6, 3},
		{codec.CodeMissingName, 6, 32},
		{codec.CodeMissingName, 6, 3},
	}, got, "%v", err)
	require.Contains(t, err.Error(), "line 6:32: message #2, field #1: [missing-name]")
	require.Contains(t, err.Error(), "line 4:5: message a, field y: [default-not-hex]")
}

func TestCompileSyntax(t *testing.T) {
	for _, src := range []string{`{"messages": [}`, `{"messages": [], "extra": 1}`, `{"messages": 5}`, ``, `{} {}`} {
		_, err := codec.Compile([]byte(src), nil)
		var ce *codec.CompileError
		require.ErrorAs(t, err, &ce, "Compile(%q)", src)
		require.Equal(t, []string{codec.CodeSyntax}, ce.Codes(), "Compile(%q): %v", src, err)
	}
	_, err := codec.Compile([]byte("{\n  \"messages\": [\n    }"), nil)
	require.ErrorContains(t, err, "line 3:5")
	_, err = codec.Compile([]byte(`{"messages":[]}`), nil)
	require.ErrorContains(t, err, codec.CodeNoMessages)
}

// COD-3: the testdata codecs fit their product model; a model that lacks or
// mistypes a property is reported.
func TestCompileAgainstModel(t *testing.T) {
	load(t, "watermeter.json", waterMeterModel)
	load(t, "lock.json", waterMeterModel)

	data, err := os.ReadFile("testdata/watermeter.json")
	require.NoError(t, err)
	m := mapModel{}
	for k, v := range waterMeterModel {
		m[k] = v
	}
	m["Meter.totalFlow"] = "int"                                // scaled field into int
	m["Meter.SET_REPORT_PERIOD/response.result"] = "jsonObject" // int into jsonObject
	delete(m, "Connectivity.pci")
	_, err = codec.Compile(data, m)
	var ce *codec.CompileError
	require.ErrorAs(t, err, &ce)
	require.ElementsMatch(t, []string{codec.CodeTypeMismatch, codec.CodeUnknownProperty, codec.CodeTypeMismatch}, ce.Codes(), "%v", err)
}

// An uplink whose messageId makes the payload start FF FE could never be
// decoded: the platform routes such payloads to OTA (COD-4).
func TestCompilePCPPrefix(t *testing.T) {
	_, err := codec.Compile([]byte(`{"messages":[{"name":"r","kind":"report","service":"S","fields":[
		{"name":"id","type":"uint16","messageId":true,"default":"FFFE"},{"name":"x","type":"uint8"}]}]}`), nil)
	var ce *codec.CompileError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, []string{codec.CodePCPPrefix}, ce.Codes())
}

// The mid counter is safe for concurrent use: concurrent encodes get
// distinct mids.
func TestMidConcurrent(t *testing.T) {
	d := load(t, "watermeter.json", nil)
	const workers, each = 4, 500
	mids := make(chan int, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				c := &codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD"}
				if _, err := d.Encode(c); err != nil {
					t.Error(err)
					return
				}
				mids <- c.Mid
			}
		})
	}
	wg.Wait()
	close(mids)
	seen := map[int]bool{}
	for m := range mids {
		require.False(t, seen[m], "mid %d assigned twice", m)
		seen[m] = true
	}
	require.Len(t, seen, workers*each)
}

func TestFieldErrorText(t *testing.T) {
	tests := []struct {
		err  codec.FieldError
		want string
	}{
		{codec.FieldError{Message: "m", Field: "f", Offset: 3, Err: codec.ErrTruncated}, "codec: message m, field f at byte 3: payload too short"},
		{codec.FieldError{Message: "m", Offset: -1, Err: codec.ErrMissing}, "codec: message m: value missing and the field has no default"},
		{codec.FieldError{Field: "f", Offset: -1, Err: codec.ErrValue}, "codec: field f: value not allowed for the field"},
		{codec.FieldError{Offset: -1, Err: codec.ErrUnknownMessage}, "codec: no message matches"},
		{codec.FieldError{Offset: 0, Err: codec.ErrEmpty}, "codec: at byte 0: empty payload"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.err.Error())
		require.ErrorIs(t, &tt.err, tt.err.Err)
	}
	_, err := load(t, "watermeter.json", nil).Encode(&codec.Command{ServiceID: "Meter", Cmd: "REBOOT"})
	require.EqualError(t, err, "codec: no command message encodes REBOOT of service Meter")
}

// COD-2: defaults are hex; a number's is left-padded (odd digit counts and a
// 0x prefix allowed), a string's or array's right-padded with zero bytes.
// An offset without a scale shifts the value.
func TestDefaults(t *testing.T) {
	src := `{"messages":[{"name":"r","kind":"report","service":"S","fields":[
		{"name":"n","type":"uint16","default":"1"},
		{"name":"h","type":"int32","default":"0xFFFFFFFE"},
		{"name":"s","type":"string","length":4,"default":"4142"},
		{"name":"a","type":"array","length":3,"default":"0A"},
		{"name":"c","type":"int8","offset":-40,"default":"3C"}]}]}`
	d, err := codec.Compile([]byte(src), nil)
	require.NoError(t, err)
	b, err := d.Append(nil, &codec.Report{Data: []codec.ServiceData{{ServiceID: "S", ServiceData: map[string]any{}}}})
	require.NoError(t, err)
	require.Equal(t, unhex(t, "0001 FFFFFFFE 41420000 0A0000 3C"), b)
	m, err := d.Decode(b)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"n": int64(1), "h": int64(-2), "s": "AB", "a": []byte{0x0A, 0, 0}, "c": 20.0},
		m.(*codec.Report).Data[0].ServiceData)
}
