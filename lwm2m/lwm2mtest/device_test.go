package lwm2mtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"sync/atomic"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// The conformance device's own parsers never panic, the TLV it writes
// reads back, a SenML JSON pack it takes gives one value per record, and
// an Opaque value written as base64url in vd (RFC 8428 §4.3) reads back.
func FuzzDeviceParsers(f *testing.F) {
	f.Add(multipleTLV(0, []byte{0xCA, 0xFE}))
	f.Add([]byte(`[{"bn":"/19/1/0/","n":"0","vd":"yv4"}]`))
	f.Add([]byte{0x88, 0x00, 0x03, 0x41, 0x00, 0x01})
	f.Add([]byte{0xC1, 0x00, 0x01})
	f.Add(clientHello)
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = isClientHello(b)
		_, _ = parseMultipleTLV(b, 0)
		if vals, err := parseSenMLJSON(b); err == nil {
			var recs []json.RawMessage
			if err := json.Unmarshal(b, &recs); err != nil || len(vals) != len(recs) {
				t.Fatalf("parseSenMLJSON(%q) = %d values from %d records (%v)", b, len(vals), len(recs), err)
			}
		}
		pack := `[{"bn":"/19/1/0/","n":"0","vd":"` + base64.RawURLEncoding.EncodeToString(b) + `"},{"n":"1","vd":""}]`
		if got, err := parseSenMLJSON([]byte(pack)); err != nil || len(got) != 2 || !bytes.Equal(got[0], b) || len(got[1]) != 0 {
			t.Fatalf("parseSenMLJSON(%s) = %x, %v; want [%x, empty]", pack, got, err, b)
		}
		if len(b) <= 0xffff-4 {
			got, err := parseMultipleTLV(multipleTLV(0, b), 0)
			if err != nil || len(got) != 1 || !bytes.Equal(got[0], b) {
				t.Fatalf("parseMultipleTLV(multipleTLV(%x)) = %x, %v", b, got, err)
			}
		}
	})
}

func TestParseMultipleTLV(t *testing.T) {
	// Two instances (8-bit lengths), as OMA's TLV example for /3/0/6.
	got, err := parseMultipleTLV([]byte{0x86, 0x00, 0x41, 0x00, 0x01, 0x41, 0x01, 0x05}, 0)
	if err != nil || len(got) != 2 || got[0][0] != 1 || got[1][0] != 5 {
		t.Fatalf("parseMultipleTLV = %x, %v; want [01 05]", got, err)
	}
	for _, bad := range [][]byte{
		{0xC1, 0x00, 0x01},                   // a single resource, not Multiple
		{0x83, 0x01, 0x41, 0x00, 0x01},       // Multiple resource 1, not 0
		{0x86, 0x00, 0xC1, 0x00, 0x01, 0x00}, // holds a resource
		{0x86, 0x00, 0x41},                   // truncated
	} {
		if _, err := parseMultipleTLV(bad, 0); err == nil {
			t.Errorf("parseMultipleTLV(%x) took it; want an error", bad)
		}
	}
}

// clientHello is the start of a DTLS 1.2 ClientHello datagram: record
// header (handshake, {254,253}, epoch 0, sequence 0, length), then the
// handshake header (client_hello).
var clientHello = []byte{22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// sentTo records what a PacketConn was asked to write.
type sentTo struct {
	net.PacketConn
	got [][]byte
}

func (s *sentTo) WriteTo(p []byte, _ net.Addr) (int, error) {
	s.got = append(s.got, append([]byte(nil), p...))
	return len(p), nil
}

// The Dialer's socket sends ClientHello records (epoch 0, handshake type
// 1) with the record version {254,0}, as mbedTLS 2.x does, and leaves
// every other record, and the caller's buffer, as they were.
func TestHelloV0(t *testing.T) {
	var n atomic.Int64
	s := &sentTo{}
	h := &helloV0{PacketConn: s, n: &n}
	hello := append([]byte(nil), clientHello...)
	other := append([]byte(nil), clientHello...)
	other[13] = 16 // client_key_exchange
	epoch1 := append([]byte(nil), clientHello...)
	epoch1[4] = 1 // an encrypted record
	for _, b := range [][]byte{hello, other, epoch1} {
		if _, err := h.WriteTo(b, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.got[0][:3]; !bytes.Equal(got, []byte{22, 0xFE, 0x00}) {
		t.Errorf("ClientHello record sent as %x, want 16 fe 00", got)
	}
	if !bytes.Equal(hello, clientHello) {
		t.Errorf("the caller's buffer changed: %x", hello)
	}
	if !bytes.Equal(s.got[1], other) || !bytes.Equal(s.got[2], epoch1) {
		t.Errorf("other records changed: %x, %x", s.got[1], s.got[2])
	}
	if n.Load() != 1 {
		t.Errorf("hellos counted %d, want 1", n.Load())
	}
}

// GET /19/0/0 is answered in TLV: with no Accept or Accept TLV (11542)
// 2.05 Content in TLV, with Accept naming another format 4.06 Not
// Acceptable (RFC 7252 §5.10.4), and an observe refused so is not taken.
func TestDataGetAccept(t *testing.T) {
	d := &Device{obs: map[string]*observer{}}
	for _, tc := range []struct {
		accept int // -1: no Accept option
		want   codes.Code
	}{
		{-1, codes.Content},
		{int(message.AppLwm2mTLV), codes.Content},
		{int(message.TextPlain), codes.NotAcceptable},
		{int(message.AppOctets), codes.NotAcceptable},
		{int(message.AppSenmlJSON), codes.NotAcceptable},
	} {
		m := &message.Message{Code: codes.GET, Token: []byte{1}}
		m.Options, _, _ = m.Options.SetPath(make([]byte, 32), "/19/0/0")
		m.Options, _, _ = m.Options.SetObserve(make([]byte, 4), 0)
		if tc.accept >= 0 {
			m.Options, _, _ = m.Options.SetUint32(make([]byte, 4), message.Accept, uint32(tc.accept))
		}
		d.obs = map[string]*observer{}
		resp, _ := d.answer(m)
		if resp.Code != tc.want {
			t.Errorf("GET /19/0/0 Accept %d: %s (%s), want %s", tc.accept, codeText(resp.Code), resp.Payload, codeText(tc.want))
			continue
		}
		cf, err := resp.Options.ContentFormat()
		switch {
		case tc.want == codes.Content && (err != nil || cf != message.AppLwm2mTLV):
			t.Errorf("GET /19/0/0 Accept %d: Content-Format %d (%v), want TLV (11542)", tc.accept, cf, err)
		case tc.want == codes.Content && !d.Observed("/19/0/0"):
			t.Errorf("GET /19/0/0 Accept %d: the observe was not taken", tc.accept)
		case tc.want == codes.NotAcceptable && d.Observed("/19/0/0"):
			t.Errorf("GET /19/0/0 Accept %d: a refused observe was taken", tc.accept)
		}
	}
}
