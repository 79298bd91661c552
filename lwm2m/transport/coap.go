package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// This file holds the small CoAP helpers of the exchange layer. Messages are
// encoded and decoded with go-coap's UDP coder; everything above the wire
// format (message ids, retransmission, deduplication, tokens) is ours.

// Content-Format shorthands of the exchange layer.
const (
	cfText   = lwm2m.FormatText
	cfLink   = lwm2m.FormatLink
	cfOpaque = lwm2m.FormatOpaque
	cfNone   = NoFormat
)

// NoFormat stands for "no Content-Format option" (Accept: the device
// chooses; a payload without a Content-Format).
const NoFormat lwm2m.Format = 0xffff

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

// reservedClass reports whether c is of a reserved class, 1, 6 or 7 (RFC
// 7252 §12.1).
func reservedClass(c codes.Code) bool { return c>>5 == 1 || c>>5 >= 6 }

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
func contentFormat(m *message.Message) lwm2m.Format {
	v, ok := optUint(m, message.ContentFormat)
	if !ok {
		return cfNone
	}
	return lwm2m.Format(v)
}

func setContentFormat(m *message.Message, cf lwm2m.Format) {
	if cf == cfNone {
		return
	}
	addUint(m, message.ContentFormat, uint32(cf))
}

// observeOpt returns the Observe option value and whether it is present.
func observeOpt(m *message.Message) (uint32, bool) { return optUint(m, message.Observe) }

func codeString(c codes.Code) string { return fmt.Sprintf("%d.%02d", c>>5, c&0x1f) }

// header is the fixed part of a CoAP message (RFC 7252 §3).
type header struct {
	version uint8
	typ     message.Type
	code    codes.Code
	mid     uint16
}

// formatError is a message format error (RFC 7252 §3): what is wrong and
// at which byte.
type formatError struct {
	at      int
	problem string
}

func (e *formatError) Error() string {
	return fmt.Sprintf("CoAP message format error at byte %d: %s", e.at, e.problem)
}

// checkFormat parses the header of datagram b and checks the whole message
// against the wire format of RFC 7252 §3 and §3.1: token length 0–8, no
// option delta or length nibble 15 outside the payload marker, no option
// running past the end, option numbers up to 65535, a payload marker
// followed by a payload, and an Empty message (0.00) of four bytes only
// (§4.1). ok is false when b is shorter than the 4-byte header; then
// nothing can be answered. The header is returned with a format error so
// that a confirmable message can be rejected with a Reset carrying its
// message ID (§4.2). The version is not checked here: a message of
// another version is silently ignored (§3), by the caller.
func checkFormat(b []byte) (h header, ok bool, err error) {
	if len(b) < 4 {
		return h, false, &formatError{at: len(b), problem: "shorter than the 4-byte header"}
	}
	h = header{version: b[0] >> 6, typ: message.Type(b[0] >> 4 & 3), code: codes.Code(b[1]), mid: binary.BigEndian.Uint16(b[2:4])}
	tkl := int(b[0] & 0x0f)
	if tkl > 8 {
		return h, true, &formatError{at: 0, problem: fmt.Sprintf("token length %d is reserved; 0–8 are allowed", tkl)}
	}
	if h.code == codes.Empty {
		if len(b) > 4 {
			return h, true, &formatError{at: 4, problem: fmt.Sprintf("an Empty message (0.00) has %d bytes after the message ID; it must have none", len(b)-4)}
		}
		return h, true, nil
	}
	i := 4 + tkl
	if i > len(b) {
		return h, true, &formatError{at: len(b), problem: fmt.Sprintf("token of %d bytes runs past the end", tkl)}
	}
	num := 0
	for i < len(b) {
		if b[i] == 0xff {
			if i+1 == len(b) {
				return h, true, &formatError{at: i, problem: "payload marker with no payload after it"}
			}
			return h, true, nil
		}
		at := i
		delta, length := int(b[i]>>4), int(b[i]&0x0f)
		i++
		var err error
		if delta, i, err = optionNibble(b, i, delta, at, "delta"); err != nil {
			return h, true, err
		}
		if length, i, err = optionNibble(b, i, length, at, "length"); err != nil {
			return h, true, err
		}
		num += delta
		if num > 0xffff {
			return h, true, &formatError{at: at, problem: fmt.Sprintf("option number %d is above 65535", num)}
		}
		if i+length > len(b) {
			return h, true, &formatError{at: at, problem: fmt.Sprintf("option %d of %d bytes runs past the end", num, length)}
		}
		i += length
	}
	return h, true, nil
}

// optionNibble decodes an option delta or length nibble and its extended
// bytes starting at b[i] (RFC 7252 §3.1).
func optionNibble(b []byte, i, v, at int, what string) (int, int, error) {
	switch v {
	case 13:
		if i >= len(b) {
			return 0, i, &formatError{at: at, problem: "option " + what + " runs past the end"}
		}
		return int(b[i]) + 13, i + 1, nil
	case 14:
		if i+1 >= len(b) {
			return 0, i, &formatError{at: at, problem: "option " + what + " runs past the end"}
		}
		return int(binary.BigEndian.Uint16(b[i:])) + 269, i + 2, nil
	case 15:
		return 0, i, &formatError{at: at, problem: "option " + what + " nibble 15 is reserved outside the payload marker"}
	}
	return v, i, nil
}

// resetFor returns the Reset that rejects a confirmable message with
// message ID mid (RFC 7252 §4.2).
func resetFor(mid uint16) []byte {
	return []byte{0x70, 0x00, byte(mid >> 8), byte(mid)} // version 1, RST, TKL 0, 0.00
}

// Critical options a request to this server may carry (RFC 7252 §5.4.1):
// the server acts on the Uri and Block options; Uri-Host and Uri-Port name
// this server; Accept is honoured where a format is chosen.
func knownCritical(id message.OptionID) bool {
	switch id {
	case message.URIHost, message.URIPort, message.URIPath, message.URIQuery, message.Accept, message.Block1, message.Block2:
		return true
	}
	return false
}

// badOption returns the answer to a request with an option this server does
// not act on but must not ignore, or nil: 5.05 Proxying Not Supported for
// Proxy-Uri and Proxy-Scheme (§5.7.2), 4.02 Bad Option for any other
// unrecognised critical (odd-numbered) option (§5.4.1).
func badOption(m *message.Message) *message.Message {
	for _, o := range m.Options {
		switch {
		case o.ID == message.ProxyURI || o.ID == message.ProxyScheme:
			return errResp(codes.ProxyingNotSupported, "option %d: this server is not a proxy", o.ID)
		case o.ID&1 == 1 && !knownCritical(o.ID):
			return errResp(codes.BadOption, "unrecognised critical option %d; this server understands Uri-Host, Uri-Port, Uri-Path, Uri-Query, Accept, Block1 and Block2", o.ID)
		case o.ID&1 == 1:
			// a critical option with a value of an illegal length is
			// treated like an unrecognised one (§5.4.3)
			if d, ok := message.CoapOptionDefs[o.ID]; ok && (uint32(len(o.Value)) < d.MinLen || uint32(len(o.Value)) > d.MaxLen) {
				return errResp(codes.BadOption, "option %d has %d bytes; %d–%d are allowed", o.ID, len(o.Value), d.MinLen, d.MaxLen)
			}
		}
	}
	return nil
}
