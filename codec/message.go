package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// MsgType values of the four COD-1 message kinds.
const (
	MsgReport    = "deviceReq" // uplink data report (*Report)
	MsgResponse  = "deviceRsp" // uplink command response (*Response)
	MsgCommand   = "cloudReq"  // downlink command (*Command)
	MsgReportAck = "cloudRsp"  // downlink report acknowledgement (*ReportAck)
)

// Message is one of the four COD-1 messages: *Report, *Response, *Command or
// *ReportAck. The unexported method keeps the set closed, so a type switch
// over the four is complete.
type Message interface {
	// Type returns the message's msgType: MsgReport, MsgResponse,
	// MsgCommand or MsgReportAck.
	Type() string
	message()
}

// Codec turns a device's bytes into messages and messages into bytes. The
// declarative codec (*Declarative) implements it; so can hand-written codecs
// (the "offline plugin" case). Implementations must be safe for concurrent use.
type Codec interface {
	// Decode decodes an uplink payload into a *Report or a *Response. It
	// returns ErrPCP, without looking further, for a payload starting FF FE.
	Decode(payload []byte) (Message, error)

	// Encode encodes a downlink *Command or *ReportAck. For a *Command whose
	// Mid is 0 it assigns one and stores it in the command. For a *ReportAck
	// it may return ErrNoAck: the report gets no acknowledgement.
	Encode(m Message) ([]byte, error)
}

// Report is an uplink data report (msgType "deviceReq").
//
//	{"identifier":"0","msgType":"deviceReq","hasMore":0,"data":[{"serviceId":"Battery","serviceData":{"batteryLevel":60}}]}
type Report struct {
	Identifier string        `json:"identifier"`
	MsgType    string        `json:"msgType"` // always "deviceReq"
	HasMore    int           `json:"hasMore"` // 1: more data follows
	Data       []ServiceData `json:"data"`
}

// ServiceData is the data of one service in a Report.
type ServiceData struct {
	ServiceID   string         `json:"serviceId"`
	ServiceData map[string]any `json:"serviceData"`
}

// Response is an uplink command response (msgType "deviceRsp"); Mid ties it
// to the command, Body is one flat object.
//
//	{"identifier":"0","msgType":"deviceRsp","errcode":0,"mid":17,"hasMore":0,"body":{"result":0}}
type Response struct {
	Identifier string         `json:"identifier"`
	MsgType    string         `json:"msgType"` // always "deviceRsp"
	Errcode    int            `json:"errcode"`
	Mid        int            `json:"mid"` // 1..65535
	HasMore    int            `json:"hasMore"`
	Body       map[string]any `json:"body"`
}

// Command is a downlink command (msgType "cloudReq").
//
//	{"identifier":"0","msgType":"cloudReq","serviceId":"WaterMeter","cmd":"SET_LEVEL","paras":{"value":20},"hasMore":0,"mid":2016}
type Command struct {
	Identifier string         `json:"identifier"`
	MsgType    string         `json:"msgType"` // always "cloudReq"
	ServiceID  string         `json:"serviceId"`
	Cmd        string         `json:"cmd"`
	Paras      map[string]any `json:"paras"`
	HasMore    int            `json:"hasMore"`
	Mid        int            `json:"mid"` // 1..65535; 0 asks the encoder to assign one
}

// ReportAck is a downlink report acknowledgement (msgType "cloudRsp").
// Request holds the uplink payload being acknowledged (base64 in JSON).
//
//	{"identifier":"0","msgType":"cloudRsp","request":"AQ8A","errcode":0,"hasMore":0}
type ReportAck struct {
	Identifier string `json:"identifier"`
	MsgType    string `json:"msgType"` // always "cloudRsp"
	Request    []byte `json:"request"`
	Errcode    int    `json:"errcode"`
	HasMore    int    `json:"hasMore"`
}

// Type returns MsgReport.
func (*Report) Type() string { return MsgReport }

// Type returns MsgResponse.
func (*Response) Type() string { return MsgResponse }

// Type returns MsgCommand.
func (*Command) Type() string { return MsgCommand }

// Type returns MsgReportAck.
func (*ReportAck) Type() string { return MsgReportAck }

func (*Report) message()    {}
func (*Response) message()  {}
func (*Command) message()   {}
func (*ReportAck) message() {}

// The MarshalJSON methods write the COD-1 shape with msgType filled in and
// every byte value U+007F…U+00FF of a string escaped as \u00XX (control
// characters below U+0020 are escaped by encoding/json already), so that a
// decoded string's non-printable bytes read as \u00XX (COD-4).

// MarshalJSON implements json.Marshaler.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	c := plain(*r)
	c.MsgType = MsgReport
	if c.Data == nil {
		c.Data = []ServiceData{}
	}
	return marshalEscaped(&c)
}

// MarshalJSON implements json.Marshaler.
func (r *Response) MarshalJSON() ([]byte, error) {
	type plain Response
	c := plain(*r)
	c.MsgType = MsgResponse
	if c.Body == nil {
		c.Body = map[string]any{}
	}
	return marshalEscaped(&c)
}

// MarshalJSON implements json.Marshaler.
func (c *Command) MarshalJSON() ([]byte, error) {
	type plain Command
	p := plain(*c)
	p.MsgType = MsgCommand
	if p.Paras == nil {
		p.Paras = map[string]any{}
	}
	return marshalEscaped(&p)
}

// MarshalJSON implements json.Marshaler.
func (a *ReportAck) MarshalJSON() ([]byte, error) {
	type plain ReportAck
	p := plain(*a)
	p.MsgType = MsgReportAck
	if p.Request == nil {
		p.Request = []byte{}
	}
	return marshalEscaped(&p)
}

func marshalEscaped(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return escapeLatin1(b), nil
}

// escapeLatin1 rewrites DEL and the runes U+0080…U+00FF as \u00XX. JSON's
// structure is ASCII, so such runes can only sit inside strings, where the
// escape means the same rune.
func escapeLatin1(b []byte) []byte {
	need := false
	for _, c := range b {
		if c >= 0x7f {
			need = true
			break
		}
	}
	if !need {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x7f {
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r <= 0xff {
			out = append(out, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

const hexDigits = "0123456789abcdef"

// ParseMessage reads one COD-1 message from JSON, choosing the Go type by its
// msgType. Numbers in serviceData, body and paras are kept as json.Number so
// that 64-bit integers survive. A missing msgType is an error.
func ParseMessage(data []byte) (Message, error) {
	var head struct {
		MsgType string `json:"msgType"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMessage, err)
	}
	var m Message
	switch head.MsgType {
	case MsgReport:
		m = new(Report)
	case MsgResponse:
		m = new(Response)
	case MsgCommand:
		m = new(Command)
	case MsgReportAck:
		m = new(ReportAck)
	default:
		return nil, fmt.Errorf("%w: msgType %q is not one of deviceReq, deviceRsp, cloudReq, cloudRsp", ErrMessage, head.MsgType)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMessage, head.MsgType, err)
	}
	return m, nil
}
