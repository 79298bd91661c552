package codec_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/ota/pcp"
)

func mustWaterMeter() *codec.Declarative {
	src, err := os.ReadFile("testdata/watermeter.json")
	if err != nil {
		panic(err)
	}
	d, err := codec.Compile(src, nil)
	if err != nil {
		panic(err)
	}
	return d
}

// Decoding an uplink: the messageId (first byte 01) picks meterReading.
func Example_decode() {
	d := mustWaterMeter()
	payload, _ := hex.DecodeString("0155FFAB0001E24000960010")
	m, err := d.Decode(payload)
	if err != nil {
		fmt.Println(err)
		return
	}
	out, _ := json.Marshal(m)
	fmt.Println(string(out))
	// Output:
	// {"identifier":"0","msgType":"deviceReq","hasMore":0,"data":[{"serviceId":"Battery","serviceData":{"batteryLevel":85}},{"serviceId":"Connectivity","serviceData":{"signalStrength":-85}},{"serviceId":"Meter","serviceData":{"flowRate":1.5,"pulseCount":16,"totalFlow":123.456}}]}
}

// Encoding a command: the mid is assigned when missing and written back; the
// device's response carries it and decodes to a *Response with that mid.
func Example_command() {
	d := mustWaterMeter()
	cmd := &codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Paras: map[string]any{"period": 600}}
	b, err := d.Encode(cmd)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("% X (mid %d)\n", b, cmd.Mid)

	rsp, err := d.Decode([]byte{0x03, 0x00, byte(cmd.Mid), 0x00})
	if err != nil {
		fmt.Println(err)
		return
	}
	out, _ := json.Marshal(rsp)
	fmt.Println(string(out))
	// Output:
	// 10 00 01 00 00 02 58 (mid 1)
	// {"identifier":"0","msgType":"deviceRsp","errcode":0,"mid":1,"hasMore":0,"body":{"result":0}}
}

// Acknowledging reports ("add response field", §6.4): meterReading answers
// with its readingAck message, meterStatus with the default AAAA0000, and a
// command response gets no ACK.
func Example_reportAck() {
	d := mustWaterMeter()
	for _, h := range []string{"0155FFAB0001E24000960010", "0201590A0001E0F300FA0100000E10" + "3230323631313235543232303030305A" + "044E4F4E45", "03000100"} {
		req, _ := hex.DecodeString(h)
		b, err := d.Encode(&codec.ReportAck{Request: req})
		switch {
		case errors.Is(err, codec.ErrNoAck):
			fmt.Println("no ACK")
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Printf("%X\n", b)
		}
	}
	// Output:
	// 1100
	// AAAA0000
	// no ACK
}

// Compile lists every problem of a codec with its stable code (COD-3).
func ExampleCompile() {
	_, err := codec.Compile([]byte(`{"messages":[
	  {"name":"reading","kind":"report","service":"Meter","fields":[
	    {"name":"messageId","type":"string","length":1,"messageId":true,"default":"01"},
	    {"name":"level","type":"uint8","default":"1FF"}]},
	  {"name":"status","kind":"report","service":"Meter","fields":[{"name":"ok","type":"uint8"}]}]}`), nil)
	var ce *codec.CompileError
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			fmt.Println(p.Code, "-", p.Message, p.Field)
		}
	}
	// Output:
	// message-id-type - reading messageId
	// default-too-long - reading level
	// missing-message-id - status
}

// Decoding into a reused Record allocates nothing; values are read by field
// index, and Build makes the JSON-shaped message when it is needed.
func ExampleDeclarative_DecodeRecord() {
	d := mustWaterMeter()
	var rec codec.Record
	for _, h := range []string{"0155FFAB0001E24000960010", "0150FFB00001E24100000011"} {
		p, _ := hex.DecodeString(h)
		if err := d.DecodeRecord(p, &rec); err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s: %s=%d %s=%d %s=%.3f\n", rec.MessageName(),
			rec.Name(1), rec.Int(1), rec.Name(2), rec.Int(2), rec.Name(3), rec.Float(3))
	}
	// Output:
	// meterReading: batteryLevel=85 signalStrength=-85 totalFlow=123.456
	// meterReading: batteryLevel=80 signalStrength=-80 totalFlow=123.457
}

// A PCP frame (FF FE …) is never decoded by a codec: the caller routes it
// to the ota package.
func ExampleErrPCP() {
	d := mustWaterMeter()
	_, err := d.Decode([]byte{0xFF, 0xFE, 0x01, 0x13})
	fmt.Println(errors.Is(err, codec.ErrPCP), pcp.IsPCP([]byte{0xFF, 0xFE}))
	// Output:
	// true true
}

// thermometer is a hand-written codec (the FAQ's "offline plugin"): one
// report of a signed temperature in tenths of a degree, acknowledged with
// 0xAC; no commands.
type thermometer struct{}

func (thermometer) Decode(p []byte) (codec.Message, error) {
	if pcp.IsPCP(p) {
		return nil, codec.ErrPCP
	}
	if len(p) != 2 {
		return nil, &codec.FieldError{Message: "temperature", Field: "celsius", Offset: 0, Err: codec.ErrTruncated}
	}
	c := float64(int16(uint16(p[0])<<8|uint16(p[1]))) / 10
	return &codec.Report{Identifier: "0", Data: []codec.ServiceData{
		{ServiceID: "Thermometer", ServiceData: map[string]any{"celsius": c}},
	}}, nil
}

func (thermometer) Encode(m codec.Message) ([]byte, error) {
	if _, ok := m.(*codec.ReportAck); ok {
		return []byte{0xAC}, nil
	}
	return nil, codec.ErrUnknownMessage
}

// A hand-written codec implements Codec and is used exactly like a
// declarative one.
func Example_handWritten() {
	var c codec.Codec = thermometer{}
	m, _ := c.Decode([]byte{0xFF, 0x85}) // -123 tenths
	out, _ := json.Marshal(m)
	fmt.Println(string(out))
	ack, _ := c.Encode(&codec.ReportAck{Request: []byte{0xFF, 0x85}})
	fmt.Printf("%X\n", ack)
	// Output:
	// {"identifier":"0","msgType":"deviceReq","hasMore":0,"data":[{"serviceId":"Thermometer","serviceData":{"celsius":-12.3}}]}
	// AC
}
