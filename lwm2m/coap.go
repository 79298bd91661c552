package lwm2m

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// This file holds the small CoAP helpers of the exchange layer. Messages are
// encoded and decoded with go-coap's UDP coder; everything above the wire
// format (message ids, retransmission, deduplication, tokens) is ours.

// Content-Format shorthands of the exchange layer.
const (
	cfText   = FormatText
	cfLink   = FormatLink
	cfOpaque = FormatOpaque
	cfNone   = NoFormat
)

// NoFormat stands for "no Content-Format option" (Accept: the device
// chooses; a payload without a Content-Format).
const NoFormat Format = 0xffff

// Code is a CoAP response code such as 2.05 Content (codes.Content).
type Code = codes.Code

func decodeMsg(b []byte) (message.Message, error) {
	m := message.Message{Options: make(message.Options, 0, 16)}
	_, err := coder.DefaultCoder.Decode(b, &m)
	if errors.Is(err, message.ErrOptionsTooSmall) {
		m.Options = make(message.Options, 0, len(b))
		_, err = coder.DefaultCoder.Decode(b, &m)
	}
	return m, err
}

func encodeMsg(m message.Message) ([]byte, error) {
	n, err := coder.DefaultCoder.Size(m)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	n, err = coder.DefaultCoder.Encode(m, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func isRequest(c codes.Code) bool  { return c >= codes.GET && c < 32 }
func isResponse(c codes.Code) bool { return c >= 64 }

// msgPath joins the Uri-Path options to "/a/b/c" ("/" when there are none).
func msgPath(m *message.Message) string {
	var b strings.Builder
	for _, o := range m.Options {
		if o.ID == message.URIPath {
			b.WriteByte('/')
			b.Write(o.Value)
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// msgQueries returns the Uri-Query options.
func msgQueries(m *message.Message) []string {
	var q []string
	for _, o := range m.Options {
		if o.ID == message.URIQuery {
			q = append(q, string(o.Value))
		}
	}
	return q
}

func optUint(m *message.Message, id message.OptionID) (uint32, bool) {
	for _, o := range m.Options {
		if o.ID == id {
			if len(o.Value) > 4 {
				return 0, false
			}
			var v uint32
			for _, b := range o.Value {
				v = v<<8 | uint32(b)
			}
			return v, true
		}
	}
	return 0, false
}

func encUint(v uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	i := 0
	for i < 4 && b[i] == 0 {
		i++
	}
	return append([]byte(nil), b[i:]...)
}

func addUint(m *message.Message, id message.OptionID, v uint32) {
	m.Options = m.Options.Add(message.Option{ID: id, Value: encUint(v)})
}

func addPath(m *message.Message, id message.OptionID, path string) {
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		if seg == "" {
			continue
		}
		m.Options = m.Options.Add(message.Option{ID: id, Value: []byte(seg)})
	}
}

func addQuery(m *message.Message, q string) {
	m.Options = m.Options.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
}

// contentFormat returns the Content-Format of m, or cfNone.
func contentFormat(m *message.Message) Format {
	v, ok := optUint(m, message.ContentFormat)
	if !ok {
		return cfNone
	}
	return Format(v)
}

func setContentFormat(m *message.Message, cf Format) {
	if cf == cfNone {
		return
	}
	addUint(m, message.ContentFormat, uint32(cf))
}

// observeOpt returns the Observe option value and whether it is present.
func observeOpt(m *message.Message) (uint32, bool) { return optUint(m, message.Observe) }

func codeString(c codes.Code) string { return fmt.Sprintf("%d.%02d", c>>5, c&0x1f) }
