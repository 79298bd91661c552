package codec_test

import (
	"encoding/json"
	"testing"

	"github.com/doze-io/doze/codec"
	"github.com/stretchr/testify/require"
)

// roundTrips lists one message per codec message of the testdata codecs, in
// the Go types Decode produces.
var roundTrips = []struct {
	file, message string
	msg           codec.Message
}{
	{"watermeter.json", "meterReading", &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": int64(100)}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": int64(-140)}},
		{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 4294967.295, "flowRate": 655.35, "pulseCount": int64(65535)}},
	}}},
	{"watermeter.json", "meterStatus", &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryVoltage": 4.2}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"linkQuality": int64(-20), "cellId": int64(268435455), "pci": int64(503), "ecl": int64(2)}},
		{ServiceID: "Meter", ServiceData: map[string]any{"reportPeriod": int64(86400), "meterTime": "20170214T164001Z", "alarmState": "REVERSE_FLOW"}},
	}}},
	{"watermeter.json", "setReportPeriodResult", &codec.Response{Identifier: "0", MsgType: codec.MsgResponse,
		Mid: 65535, Body: map[string]any{"result": int64(1)}}},
	{"watermeter.json", "setReportPeriod", &codec.Command{Identifier: "0", MsgType: codec.MsgCommand,
		ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Paras: map[string]any{"period": int64(86400)}, Mid: 2016}},
	{"watermeter.json", "readingAck", &codec.ReportAck{Identifier: "0", MsgType: codec.MsgReportAck,
		Request: []byte{0x01, 0x55, 0xFF, 0xAB, 0x00, 0x01, 0xE2, 0x40, 0x00, 0x96, 0x00, 0x10}}},
	{"lock.json", "lockEvent", &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Lock", ServiceData: map[string]any{"doorOpen": int64(1), "eventTime": "20261125T220000Z",
			"lockState": "UNLOCKED\x01\u00e9", "lastEvent": []byte(`{"user":"ann","via":"nfc"}`)}},
	}}},
	{"lock.json", "batteryStatus", &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": int64(0), "batteryVoltage": 655.35}},
	}}},
	{"lock.json", "unlockResult", &codec.Response{Identifier: "0", MsgType: codec.MsgResponse,
		Mid: 1, Body: map[string]any{"lockState": ""}}},
	{"lock.json", "unlock", &codec.Command{Identifier: "0", MsgType: codec.MsgCommand,
		ServiceID: "Lock", Cmd: "UNLOCK", Paras: map[string]any{"reason": "remote", "holdSeconds": int64(255)}, Mid: 300}},
	{"lock.json", "setUsers", &codec.Command{Identifier: "0", MsgType: codec.MsgCommand,
		ServiceID: "Lock", Cmd: "SET_USERS", Paras: map[string]any{"users": []byte{}}}},
	{"alltypes.json", "numbers", &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Numbers", ServiceData: map[string]any{
			"i8": int64(-128), "i16": int64(-32768), "i24": int64(-8388608), "i32": int64(-2147483648), "i64": int64(-9223372036854775808),
			"u8": int64(255), "u16": int64(65535), "u24": int64(16777215), "u32": int64(4294967295), "u64": uint64(18446744073709551615),
			"f32": 3.5, "f64": -1e300, "celsius": -12.3, "odd": 302.5, "big": -2.147483648e12,
		}},
	}}},
	{"alltypes.json", "bytes", &codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Bytes", ServiceData: map[string]any{
			"code": "AB", "text": "h\u00e9llo", "blob": []byte{0, 0, 0}, "data": []byte{}, "tail": int64(0),
		}},
	}}},
	{"alltypes.json", "result", &codec.Response{Identifier: "0", MsgType: codec.MsgResponse,
		Errcode: -1, Mid: 32767, Body: map[string]any{"detail": 0.25}}},
	{"alltypes.json", "configure", &codec.Command{Identifier: "0", MsgType: codec.MsgCommand,
		ServiceID: "Config", Cmd: "CONFIGURE", Paras: map[string]any{"label": "on", "threshold": -21474836.48}, Mid: 1}},
}

// COD-4: decode(encode(x)) == x for every message of the testdata codecs,
// and the JSON of x, parsed again, encodes to the same bytes.
func TestRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for _, tt := range roundTrips {
		t.Run(tt.file+"/"+tt.message, func(t *testing.T) {
			var model codec.Model = waterMeterModel
			if tt.file == "alltypes.json" {
				model = nil // a codec of every type, for no product
			}
			d := load(t, tt.file, model)
			b, err := d.Append(nil, tt.msg)
			require.NoError(t, err, "Append(%s)", toJSON(t, tt.msg))

			var rec codec.Record
			decode, want := d.DecodeRecord, tt.msg
			switch tt.msg.(type) {
			case *codec.Command, *codec.ReportAck:
				decode = d.DecodeDownlinkRecord
			}
			if a, ok := tt.msg.(*codec.ReportAck); ok {
				// The acknowledgement does not carry the report it answers.
				c := *a
				c.Request = nil
				want = &c
			}
			require.NoError(t, decode(b, &rec), "decode(% X)", b)
			require.Equal(t, tt.message, rec.MessageName())
			require.Equal(t, want, rec.Build(), "decode(encode(x)) == x, bytes % X", b)
			seen[tt.file+"/"+rec.MessageName()] = true

			if _, ok := tt.msg.(*codec.ReportAck); ok {
				return
			}
			parsed, err := codec.ParseMessage([]byte(toJSON(t, tt.msg)))
			require.NoError(t, err)
			b2, err := d.Append(nil, parsed)
			require.NoError(t, err, "Append(ParseMessage(%s))", toJSON(t, tt.msg))
			require.Equal(t, b, b2, "JSON form encodes to the same bytes")
		})
	}
	require.Len(t, seen, len(roundTrips), "every message of every testdata codec is round-tripped")
}

// COD-1: the four Go types marshal to exactly the JSON shapes of docs/rules.md
func TestMessageJSONShapes(t *testing.T) {
	tests := []struct {
		msg  codec.Message
		want string
	}{
		{&codec.Report{Identifier: "123", Data: []codec.ServiceData{{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 60}}}},
			`{"identifier":"123","msgType":"deviceReq","hasMore":0,"data":[{"serviceId":"Battery","serviceData":{"batteryLevel":60}}]}`},
		{&codec.Response{Identifier: "123", Mid: 17, Body: map[string]any{"result": 0}},
			`{"identifier":"123","msgType":"deviceRsp","errcode":0,"mid":17,"hasMore":0,"body":{"result":0}}`},
		{&codec.Command{Identifier: "0", ServiceID: "WaterMeter", Cmd: "SET_LEVEL", Paras: map[string]any{"value": 20}, Mid: 2016},
			`{"identifier":"0","msgType":"cloudReq","serviceId":"WaterMeter","cmd":"SET_LEVEL","paras":{"value":20},"hasMore":0,"mid":2016}`},
		{&codec.ReportAck{Identifier: "0", Request: []byte{1, 2, 3}},
			`{"identifier":"0","msgType":"cloudRsp","request":"AQID","errcode":0,"hasMore":0}`},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, toJSON(t, tt.msg))
		back, err := codec.ParseMessage([]byte(tt.want))
		require.NoError(t, err)
		require.Equal(t, tt.msg.Type(), back.Type())
		again, err := json.Marshal(back)
		require.NoError(t, err)
		require.Equal(t, tt.want, string(again), "parse and marshal again")
	}
	for _, bad := range []string{`{"msgType":"hello"}`, `{}`, `[1]`, `{"msgType":"cloudReq","paras":5}`, `{"msgType":"cloudReq","color":"red"}`} {
		_, err := codec.ParseMessage([]byte(bad))
		require.ErrorIs(t, err, codec.ErrMessage, "ParseMessage(%s)", bad)
	}
}
