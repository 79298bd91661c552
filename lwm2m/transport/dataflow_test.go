package transport

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/stretchr/testify/require"
)

// The data channel and Send of issue 15 item 5, tested with devices that
// behave as RFC 7252, RFC 7641 and OMA LwM2M say and no more: raw CoAP
// peers that answer only what the test tells them to.

// uplinkRecorder is a recorder that is an UplinkHandler: it counts the
// uplinks handed to HandleUplink, so that a test can tell they had the
// durable path.
type uplinkRecorder struct {
	*recorder
	mu      sync.Mutex
	durable int
	check   func(e Event) // called for each event before it is recorded; may be nil
}

func (u *uplinkRecorder) HandleEvent(e Event) {
	if u.check != nil {
		u.check(e)
	}
	u.recorder.HandleEvent(e)
}

func (u *uplinkRecorder) HandleUplink(e Event) error {
	u.mu.Lock()
	u.durable++
	u.mu.Unlock()
	u.recorder.HandleEvent(e)
	return nil
}

func (u *uplinkRecorder) durableCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.durable
}

// startPlain runs a plain CoAP server on loopback with h as its Handler
// and stops it when the test ends.
func startPlain(t *testing.T, cfg Config, h Handler) *Server {
	t.Helper()
	cfg.DisableDTLS = true
	cfg.UDPAddr = "127.0.0.1:0"
	if cfg.Policy == nil {
		cfg.Policy = plainOnly
	}
	s, err := New(cfg, nil, h)
	require.NoError(t, err)
	require.NoError(t, s.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return s
}

// register sends a Register with the object list links and returns the
// registration's location.
func (p *rawPeer) register(ep, links string) string {
	p.t.Helper()
	r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=" + ep, "lt=300", "lwm2m=1.1", "b=U"}, cfLink, []byte(links)))
	require.Equal(p.t, codes.Created, r.Code, "register: %s", r.Payload)
	return msgLocation(&r)
}

// expectObserve reads the server's next message and checks that it is the
// observe of path as RFC 7252 §5.10 and RFC 7641 §2 write it: a
// confirmable GET with Observe 0, a token, the path in Uri-Path options
// and no Uri-Host or Uri-Port (LWM-3).
func (p *rawPeer) expectObserve(path string) message.Message {
	p.t.Helper()
	m := p.recv()
	require.Equal(p.t, message.Confirmable, m.Type, "the observe is confirmable")
	require.Equal(p.t, codes.GET, m.Code, "the observe is a GET")
	obs, ok := observeOpt(&m)
	require.True(p.t, ok, "the GET carries Observe")
	require.Zero(p.t, obs, "Observe 0 registers (RFC 7641 §2)")
	require.Equal(p.t, path, msgPath(&m))
	require.NotEmpty(p.t, m.Token, "a token to match the notifications")
	require.False(p.t, m.Options.HasOption(message.URIHost), "no Uri-Host")
	require.False(p.t, m.Options.HasOption(message.URIPort), "no Uri-Port")
	return m
}

// answerObserve piggybacks a 2.05 Content with Observe seq on the ACK of
// the observe req (RFC 7641 §3.2).
func (p *rawPeer) answerObserve(req message.Message, seq uint32, cf lwm2m.Format, payload []byte) {
	p.t.Helper()
	a := message.Message{Code: codes.Content, Type: message.Acknowledgement, MessageID: req.MessageID, Token: req.Token, Payload: payload}
	addUint(&a, message.Observe, seq)
	setContentFormat(&a, cf)
	p.send(a)
}

// notify sends a non-confirmable notification on the observation req made.
func (p *rawPeer) notify(req message.Message, seq uint32, cf lwm2m.Format, payload []byte) {
	p.t.Helper()
	p.mid++
	n := message.Message{Code: codes.Content, Type: message.NonConfirmable, MessageID: int32(p.mid), Token: req.Token, Payload: payload}
	addUint(&n, message.Observe, seq)
	setContentFormat(&n, cf)
	p.send(n)
}

// uplinks returns the payloads of the endpoint's EventUplink events.
func uplinks(rec *recorder, ep string) []string {
	var out []string
	for _, e := range rec.all() {
		if e.Kind == EventUplink && e.Endpoint == ep {
			out = append(out, string(e.Payload))
		}
	}
	return out
}

// Issue 15 item 5: the value in the device's 2.05 answer to the server's
// observe of /19/0/0 after a Register is uplink data, handed to an
// UplinkHandler like a notification's; so are the instances of a TLV
// answer. An empty answer (no data yet) gives none.
func TestFirstObserveValueIsUplink(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cf      lwm2m.Format
		payload []byte
		want    []string
	}{
		{"opaque", lwm2m.FormatOpaque, []byte("first"), []string{"first"}},
		{"TLV, two instances", lwm2m.FormatTLV, []byte{0x88, 0x00, 0x08, 0x42, 0x00, 'a', 'b', 0x42, 0x01, 'c', 'd'}, []string{"ab", "cd"}},
		{"empty", lwm2m.FormatOpaque, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const ep = "868333030000501"
			h := &uplinkRecorder{recorder: newRecorder()}
			s := startPlain(t, Config{}, h)
			p := newRawPeer(t, s.UDPAddr())
			p.register(ep, "</1/0>,</3/0>,</19/0>,</19/1>")
			req := p.expectObserve("/19/0/0")
			p.answerObserve(req, 1, tc.cf, tc.payload)
			for i := range tc.want {
				rec := h.wait(t, EventUplink, ep, i+1)
				require.Equal(t, "/19/0/0", rec.Path)
			}
			p.notify(req, 2, lwm2m.FormatOpaque, []byte("second"))
			h.wait(t, EventUplink, ep, len(tc.want)+1)
			require.Equal(t, append(tc.want, "second"), uplinks(h.recorder, ep), "the answer's values, then the notification's")
			require.Equal(t, len(tc.want)+1, h.durableCount(), "every value went through HandleUplink")
		})
	}
}

// The same over DTLS with transport.Client, whose /19/0/0 holds a value when
// the server observes it.
func TestFirstObserveValueIsUplinkDTLS(t *testing.T) {
	const ep = "868333030000502"
	s, rec := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	c.Handle("/19/0/0", Resource{Read: func() (Content, error) {
		return Content{Format: lwm2m.FormatOpaque, Payload: []byte{0x01, 0x02}}, nil
	}})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	e := rec.wait(t, EventUplink, ep, 1)
	require.Equal(t, []byte{0x01, 0x02}, e.Payload)
	require.Equal(t, "/19/0/0", e.Path)
}

// Issue 15 item 5: an Update whose object list drops </19/0> forgets the
// observation; one that brings it back has /19/0/0 observed again, with
// the observation stored before the Updated event (a Handler that looks
// finds it and does not observe a second time), and the value of the
// answer is uplink data.
func TestObserveAgainWhenUpdateBringsDataBack(t *testing.T) {
	const ep = "868333030000503"
	store := NewMemoryObservationStore()
	observedAtUpdate := make(chan bool, 4)
	h := &uplinkRecorder{recorder: newRecorder()}
	h.check = func(e Event) {
		if e.Kind == EventUpdated {
			obs, err := store.Observations(ep)
			if err != nil {
				t.Errorf("listing observations in HandleEvent: %v", err)
			}
			observedAtUpdate <- len(obs) == 1 && obs[0].Path == "/19/0/0"
		}
	}
	s := startPlain(t, Config{Observations: store}, h)
	p := newRawPeer(t, s.UDPAddr())
	loc := p.register(ep, "</3/0>,</19/0>,</19/1>")
	p.answerObserve(p.expectObserve("/19/0/0"), 1, lwm2m.FormatOpaque, nil)
	waitFor(t, "the observation kept", func() bool { obs, _ := store.Observations(ep); return len(obs) == 1 })

	r := p.roundTrip(p.request(codes.POST, loc, nil, cfLink, []byte("</3/0>,</19/1>")))
	require.Equal(t, codes.Changed, r.Code)
	require.False(t, <-observedAtUpdate, "the dropped object's observation is forgotten")

	r = p.roundTrip(p.request(codes.POST, loc, nil, cfLink, []byte("</3/0>,</19/0>,</19/1>")))
	require.Equal(t, codes.Changed, r.Code)
	require.True(t, <-observedAtUpdate, "observed again, stored before the Updated event")
	p.answerObserve(p.expectObserve("/19/0/0"), 1, lwm2m.FormatOpaque, []byte("back"))
	require.Equal(t, "back", string(h.wait(t, EventUplink, ep, 1).Payload))

	// An Update without an object list changes nothing: no second observe.
	r = p.roundTrip(p.request(codes.POST, loc, []string{"lt=600"}, cfNone, nil))
	require.Equal(t, codes.Changed, r.Code)
	require.True(t, <-observedAtUpdate)
	p.silent(300*time.Millisecond, "no observe after an Update that keeps </19/0>")
}

// Issue 15 item 5, LWM-10: a device that moves to a new address before it
// answered the first observe (its next Update comes from another port) is
// asked again on its new address; it answers there and its data flows.
func TestObserveFollowsMoveBeforeAnswer(t *testing.T) {
	const ep = "868333030000504"
	h := &uplinkRecorder{recorder: newRecorder()}
	s := startPlain(t, Config{}, h)
	old := newRawPeer(t, s.UDPAddr())
	loc := old.register(ep, "</3/0>,</19/0>,</19/1>")
	lost := old.expectObserve("/19/0/0") // never answered: the NAT binding is gone

	moved := newRawPeer(t, s.UDPAddr())
	r := moved.roundTrip(moved.request(codes.POST, loc, nil, cfNone, nil))
	require.Equal(t, codes.Changed, r.Code, "%s", r.Payload)
	req := moved.expectObserve("/19/0/0")
	require.NotEqual(t, lost.Token, req.Token, "a new observation")
	moved.answerObserve(req, 1, lwm2m.FormatOpaque, []byte("after the move"))
	require.Equal(t, "after the move", string(h.wait(t, EventUplink, ep, 1).Payload))
	moved.notify(req, 2, lwm2m.FormatOpaque, []byte("data flows"))
	require.Equal(t, "data flows", string(h.wait(t, EventUplink, ep, 2).Payload))
	reg, _ := s.Registration(ep)
	require.Equal(t, moved.conn.LocalAddr().String(), reg.Addr.String())

	// The lost observe's token no longer maps to anything: a late answer
	// of it from the old address, piggybacked or as a notification, is
	// not data. A CoAP ping after them from the same socket: its Reset
	// says they were handled (RFC 7252 §4.3).
	old.answerObserve(lost, 1, lwm2m.FormatOpaque, []byte("late"))
	old.notify(lost, 2, lwm2m.FormatOpaque, []byte("late notification"))
	old.mid++
	old.send(message.Message{Type: message.Confirmable, Code: codes.Empty, MessageID: int32(old.mid)})
	for {
		m := old.recv()
		if m.Type == message.Reset && m.MessageID == int32(old.mid) {
			break
		}
	}
	require.Equal(t, []string{"after the move", "data flows"}, uplinks(h.recorder, ep), "the late answers are not data")
	require.Equal(t, 2, h.durableCount())
	obs, err := s.cfg.Observations.Observations(ep)
	require.NoError(t, err)
	require.Len(t, obs, 1)
	require.Equal(t, tokenKey(req.Token), obs[0].Token)
}

// Issue 15 item 5: an observe the device never answers (the retransmission
// gives up) is sent again at the device's next message, here a Send.
func TestObserveRetriedAtNextMessage(t *testing.T) {
	const ep = "868333030000505"
	h := &uplinkRecorder{recorder: newRecorder()}
	s := startPlain(t, Config{Transmission: Transmission{AckTimeout: 50 * time.Millisecond, MaxRetransmit: -1}}, h)
	p := newRawPeer(t, s.UDPAddr())
	p.register(ep, "</3/0>,</19/0>,</19/1>")
	p.expectObserve("/19/0/0") // not answered
	waitFor(t, "the observe to give up", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.regs[ep] != nil && s.regs[ep].data == dataLost
	})
	r := p.roundTrip(p.request(codes.POST, "/dp", nil, cfOpaque, []byte("sent")))
	require.Equal(t, codes.Changed, r.Code)
	req := p.expectObserve("/19/0/0")
	p.answerObserve(req, 1, lwm2m.FormatOpaque, []byte("observed"))
	h.wait(t, EventUplink, ep, 2)
	require.Equal(t, []string{"sent", "observed"}, uplinks(h.recorder, ep))
}

// A device that refuses the observe (4.05) is not asked again at each
// message.
func TestObserveRefusedIsNotRepeated(t *testing.T) {
	const ep = "868333030000506"
	s := startPlain(t, Config{}, newRecorder())
	p := newRawPeer(t, s.UDPAddr())
	p.register(ep, "</3/0>,</19/0>")
	req := p.expectObserve("/19/0/0")
	p.send(message.Message{Code: codes.MethodNotAllowed, Type: message.Acknowledgement, MessageID: req.MessageID, Token: req.Token})
	waitFor(t, "the refusal noted", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.regs[ep].data == dataRefused
	})
	r := p.roundTrip(p.request(codes.POST, "/dp", nil, cfOpaque, []byte("x")))
	require.Equal(t, codes.Changed, r.Code)
	p.silent(300*time.Millisecond, "no second observe")
}

// sendRecords encodes records as a Send body.
func sendRecords(t *testing.T, f lwm2m.Format, recs ...lwm2m.Record) []byte {
	t.Helper()
	b, err := lwm2m.Encode(f, lwm2m.RootPath, recs)
	require.NoError(t, err)
	return b
}

// sendCase is a Send body and the answer it gets from a server with
// MaxSendSize 200 and the default SendPaths.
type sendCase struct {
	name    string
	cf      lwm2m.Format
	payload []byte
	code    codes.Code
	says    string
}

// sendRefusals are Sends the server cannot use (LWM-12); TestSendRefusals
// and FuzzParseSend share them.
func sendRefusals() []sendCase {
	temp, err := lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.RootPath, []lwm2m.Record{{Path: lwm2m.MustPath("/3303/0/5700"), Value: lwm2m.FloatValue(21.5)}})
	if err != nil {
		panic(err)
	}
	return []sendCase{
		{"too large", lwm2m.FormatOpaque, bytes.Repeat([]byte{1}, 201), codes.RequestEntityTooLarge, "at most 200 bytes"},
		{"too large SenML", lwm2m.FormatSenMLJSON, []byte(`[{"n":"/19/0/0/0","vd":"` + strings.Repeat("A", 200) + `"}]`), codes.RequestEntityTooLarge, "a body of 227 bytes"},
		{"empty", lwm2m.FormatSenMLJSON, nil, codes.BadRequest, "empty"},
		{"empty opaque", lwm2m.FormatOpaque, nil, codes.BadRequest, "empty"},
		{"malformed SenML JSON", lwm2m.FormatSenMLJSON, []byte(`[{"n":"/19/0/0/0","vd":`), codes.BadRequest, "malformed"},
		{"malformed SenML CBOR", lwm2m.FormatSenMLCBOR, []byte{0x81, 0xa2, 0x00}, codes.BadRequest, "malformed"},
		{"SenML with a bad path", lwm2m.FormatSenMLJSON, []byte(`[{"n":"/nineteen","v":1}]`), codes.BadRequest, "malformed"},
		{"no records", lwm2m.FormatSenMLJSON, []byte(`[]`), codes.BadRequest, "no record"},
		{"TLV", lwm2m.FormatTLV, []byte{0xc1, 0x00, 0x01}, codes.UnsupportedMediaType, "SenML JSON (110)"},
		{"link format", lwm2m.FormatLink, []byte("</19/0>"), codes.UnsupportedMediaType, "cannot carry a Send"},
		{"LwM2M 1.0 JSON", lwm2m.FormatJSON, []byte(`{"bn":"/","e":[{"n":"19/0/0","sv":"x"}]}`), codes.UnsupportedMediaType, "11543"},
		{"CBOR (60)", lwm2m.Format(60), []byte{0x01}, codes.UnsupportedMediaType, "content format 60"},
		{"no usable path", lwm2m.FormatSenMLJSON, temp, codes.NotFound, "carries /3303/0/5700; this server takes /19/0/0, /5/0/3, /5/0/5"},
	}
}

// LWM-12, issue 15 item 5: a Send the server cannot use is answered with
// an error code and a diagnostic, never 2.04, and reported as
// EventRefused; nothing of it is delivered.
func TestSendRefusals(t *testing.T) {
	const ep = "868333030000507"
	for _, tc := range sendRefusals() {
		t.Run(tc.name, func(t *testing.T) {
			h := &uplinkRecorder{recorder: newRecorder()}
			s := startPlain(t, Config{MaxSendSize: 200}, h)
			p := newRawPeer(t, s.UDPAddr())
			p.register(ep, "</3/0>") // no object 19: no observe to answer
			r := p.roundTrip(p.request(codes.POST, "/dp", nil, tc.cf, tc.payload))
			require.Equal(t, tc.code, r.Code, "Send %s: got %s %s", tc.name, codeString(r.Code), r.Payload)
			require.Contains(t, string(r.Payload), tc.says)
			require.True(t, strings.HasPrefix(string(r.Payload), "send: "), "the diagnostic names the operation: %s", r.Payload)
			if tc.code == codes.RequestEntityTooLarge {
				size, ok := optUint(&r, message.Size1)
				require.True(t, ok, "4.13 carries Size1 (RFC 7959 §2.9.3)")
				require.Equal(t, uint32(200), size)
			}
			e := h.wait(t, EventRefused, ep, 1)
			require.Equal(t, Code(tc.code), e.Code)
			require.Equal(t, string(r.Payload), e.Message, "the event says what the device was told")
			require.Equal(t, "/dp", e.Path)
			require.Equal(t, tc.cf, e.ContentFormat)
			require.Zero(t, h.count(EventUplink, ep))
			require.Zero(t, h.count(EventNotification, ep))
			require.Zero(t, h.durableCount())
			require.Equal(t, "refused", EventRefused.String())
		})
	}
}

// FuzzParseSend: parseSend never panics; a refusal is one of 4.00, 4.04,
// 4.13, 4.15 with a "send: " diagnostic that fits a datagram; an accepted
// Send delivers something, and its notification payload decodes again to
// records under SendPaths only.
func FuzzParseSend(f *testing.F) {
	for _, tc := range sendRefusals() {
		f.Add(uint16(tc.cf), tc.payload)
	}
	mixed, err := lwm2m.Encode(lwm2m.FormatSenMLCBOR, lwm2m.RootPath, []lwm2m.Record{
		{Path: lwm2m.MustPath("/19/0/0/0"), Value: lwm2m.OpaqueValue([]byte{1})},
		{Path: lwm2m.MustPath("/5/0/3"), Value: lwm2m.IntValue(2)},
		{Path: lwm2m.MustPath("/3/0/0"), Value: lwm2m.StringValue("x")},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint16(lwm2m.FormatSenMLCBOR), mixed)
	f.Add(uint16(lwm2m.FormatOpaque), []byte("data"))
	s, err := New(Config{DisableDTLS: true, MaxSendSize: 200}, nil, newRecorder())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cf uint16, body []byte) {
		d, refusal := s.parseSend("dev", Content{Format: lwm2m.Format(cf), Payload: body})
		if refusal != nil {
			switch refusal.Code {
			case codes.BadRequest, codes.NotFound, codes.RequestEntityTooLarge, codes.UnsupportedMediaType:
			default:
				t.Fatalf("Send (%d, % x) refused with %s", cf, body, codeString(refusal.Code))
			}
			if !strings.HasPrefix(string(refusal.Payload), "send: ") || len(refusal.Payload) > 1024 {
				t.Fatalf("diagnostic %q", refusal.Payload)
			}
			return
		}
		if len(d.data) == 0 && d.other == nil {
			t.Fatalf("Send (%d, % x) accepted with nothing to deliver", cf, body)
		}
		if d.other == nil {
			return
		}
		recs, err := lwm2m.Decode(lwm2m.Format(cf), lwm2m.RootPath, d.other, s.cfg.Model)
		if err != nil {
			t.Fatalf("the notification payload % x does not decode: %v", d.other, err)
		}
		for _, r := range recs {
			if !s.sendPathUsed(r.Path) && !dataPath.Contains(r.Path) {
				t.Fatalf("the notification carries %s", r.Path)
			}
		}
	})
}

// A Send of more than MaxSendSize in Block1 blocks is refused once the
// body is whole, with 4.13 and Size1.
func TestSendTooLargeInBlocks(t *testing.T) {
	const ep = "868333030000508"
	s, rec := startServer(t, Config{MaxSendSize: 1500}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey, Objects: "</3/0>"})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	err := c.Send(ctxT(t), Content{Format: lwm2m.FormatOpaque, Payload: bytes.Repeat([]byte{7}, 2000)})
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	require.Equal(t, CodeRequestEntityTooLarge, re.Code, "%v", err)
	require.Contains(t, re.Message, "at most 1500 bytes")
	require.Equal(t, CodeRequestEntityTooLarge, rec.wait(t, EventRefused, ep, 1).Code)
	require.NoError(t, c.Send(ctxT(t), Content{Format: lwm2m.FormatOpaque, Payload: bytes.Repeat([]byte{7}, 1500)}), "at the limit")
	require.Len(t, rec.wait(t, EventUplink, ep, 1).Payload, 1500)
}

// Issue 15 item 5: a Send mixing /19/0/0 data with the firmware State and
// Update Result delivers both: the data as EventUplink, then the object 5
// values as one EventNotification on /dp whose payload holds them and
// nothing else. A value of an unused path in the same Send is left out;
// the Send is still 2.04.
func TestSendMixedDataAndFirmware(t *testing.T) {
	const ep = "868333030000509"
	for _, f := range []lwm2m.Format{lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR} {
		t.Run(f.String(), func(t *testing.T) {
			h := &uplinkRecorder{recorder: newRecorder()}
			s := startPlain(t, Config{}, h)
			p := newRawPeer(t, s.UDPAddr())
			p.register(ep, "</3/0>,</5/0>")
			body := sendRecords(t, f,
				lwm2m.Record{Path: lwm2m.MustPath("/19/0/0/0"), Value: lwm2m.OpaqueValue([]byte{0xCA, 0xFE})},
				lwm2m.Record{Path: lwm2m.MustPath("/5/0/3"), Value: lwm2m.IntValue(2)},
				lwm2m.Record{Path: lwm2m.MustPath("/5/0/5"), Value: lwm2m.IntValue(1)},
				lwm2m.Record{Path: lwm2m.MustPath("/3303/0/5700"), Value: lwm2m.FloatValue(21.5)},
			)
			r := p.roundTrip(p.request(codes.POST, "/dp", nil, f, body))
			require.Equal(t, codes.Changed, r.Code, "%s", r.Payload)
			u := h.wait(t, EventUplink, ep, 1)
			require.Equal(t, []byte{0xCA, 0xFE}, u.Payload)
			require.Equal(t, "/19/0/0", u.Path)
			n := h.wait(t, EventNotification, ep, 1)
			require.Equal(t, "/dp", n.Path)
			require.Equal(t, f, n.ContentFormat)
			recs, err := lwm2m.Decode(n.ContentFormat, lwm2m.RootPath, n.Payload, nil)
			require.NoError(t, err)
			got := map[string]int64{}
			for _, rec := range recs {
				v, err := rec.Value.As(lwm2m.TypeInteger)
				require.NoError(t, err, "%s", rec.Path)
				got[rec.Path.String()], _ = v.Int()
			}
			require.Equal(t, map[string]int64{"/5/0/3": 2, "/5/0/5": 1}, got)
			var kinds []EventKind
			for _, e := range h.all() {
				if e.Kind == EventUplink || e.Kind == EventNotification {
					kinds = append(kinds, e.Kind)
				}
			}
			require.Equal(t, []EventKind{EventUplink, EventNotification}, kinds, "the data first, then the firmware values")
			require.Zero(t, h.count(EventRefused, ep))
		})
	}
}

// Config.SendPaths widens what a Send may carry; RootPath takes all.
func TestSendPathsConfigured(t *testing.T) {
	const ep = "868333030000510"
	h := &uplinkRecorder{recorder: newRecorder()}
	s := startPlain(t, Config{SendPaths: []lwm2m.Path{lwm2m.MustPath("/3303")}}, h)
	p := newRawPeer(t, s.UDPAddr())
	p.register(ep, "</3303/0>")
	temp := sendRecords(t, lwm2m.FormatSenMLJSON, lwm2m.Record{Path: lwm2m.MustPath("/3303/0/5700"), Value: lwm2m.FloatValue(21.5)})
	r := p.roundTrip(p.request(codes.POST, "/dp", nil, lwm2m.FormatSenMLJSON, temp))
	require.Equal(t, codes.Changed, r.Code, "%s", r.Payload)
	require.Equal(t, temp, h.wait(t, EventNotification, ep, 1).Payload, "every record used: the body as sent")
	fw := sendRecords(t, lwm2m.FormatSenMLJSON, lwm2m.Record{Path: lwm2m.MustPath("/5/0/3"), Value: lwm2m.IntValue(1)})
	r = p.roundTrip(p.request(codes.POST, "/dp", nil, lwm2m.FormatSenMLJSON, fw))
	require.Equal(t, codes.NotFound, r.Code, "/5 is not in these SendPaths: %s", r.Payload)
	require.Contains(t, string(r.Payload), "this server takes /19/0/0, /3303")
}
