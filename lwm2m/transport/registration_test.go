package transport

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/stretchr/testify/require"
)

// rawPeer speaks CoAP to the server over a real UDP socket, byte by byte.
type rawPeer struct {
	t    *testing.T
	conn *net.UDPConn
	mid  uint16
	// early holds the server's requests that came while roundTrip waited
	// for its answer (datagrams may arrive in any order, RFC 7252 §4);
	// recv returns them first.
	early []message.Message
}

func newRawPeer(t *testing.T, srv net.Addr) *rawPeer {
	t.Helper()
	c, err := net.DialUDP("udp", nil, srv.(*net.UDPAddr))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &rawPeer{t: t, conn: c, mid: 100}
}

func (p *rawPeer) request(code codes.Code, path string, queries []string, cf lwm2m.Format, payload []byte) message.Message {
	p.mid++
	m := message.Message{Code: code, Type: message.Confirmable, MessageID: int32(p.mid), Token: []byte{byte(p.mid), 7}, Payload: payload}
	addPath(&m, message.URIPath, path)
	for _, q := range queries {
		addQuery(&m, q)
	}
	setContentFormat(&m, cf)
	return m
}

func (p *rawPeer) sendBytes(b []byte) {
	_, err := p.conn.Write(b)
	require.NoError(p.t, err)
}

func (p *rawPeer) send(m message.Message) []byte {
	b, err := encodeMsg(m)
	require.NoError(p.t, err)
	p.sendBytes(b)
	return b
}

func (p *rawPeer) recvBytes() []byte {
	p.t.Helper()
	buf := make([]byte, 8192)
	require.NoError(p.t, p.conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, err := p.conn.Read(buf)
	require.NoError(p.t, err, "waiting for the server's answer")
	return buf[:n]
}

func (p *rawPeer) recv() message.Message {
	p.t.Helper()
	if len(p.early) > 0 {
		m := p.early[0]
		p.early = p.early[1:]
		return m
	}
	m, err := decodeMsg(p.recvBytes())
	require.NoError(p.t, err)
	return m
}

// roundTrip sends a CON request and returns the piggybacked answer.
func (p *rawPeer) roundTrip(m message.Message) message.Message {
	p.t.Helper()
	p.send(m)
	for range 8 {
		r, err := decodeMsg(p.recvBytes())
		require.NoError(p.t, err)
		if r.Type == message.Confirmable || r.Type == message.NonConfirmable {
			// A request of the server's that overtook the answer.
			p.early = append(p.early, r)
			continue
		}
		require.Equal(p.t, message.Acknowledgement, r.Type)
		require.Equal(p.t, m.MessageID, r.MessageID)
		return r
	}
	p.t.Fatalf("no answer to message %d among the server's datagrams: %v", m.MessageID, p.early)
	return message.Message{}
}

// plainOnly is a policy that lets every endpoint use plain CoAP.
var plainOnly = EndpointPolicyFunc(func(string) Security { return SecurityNone })

// plainServer is a plain CoAP server whose policy lets every endpoint
// register (SEC-1 refuses them all without one).
func plainServer(t *testing.T, cfg Config) (*Server, *recorder) {
	cfg.DisableDTLS = true
	if cfg.Policy == nil {
		cfg.Policy = plainOnly
	}
	return startServer(t, cfg, nil)
}

// LWM-3: the registration interface over plain CoAP, byte by byte: register
// → 2.01 with a location, update → 2.04, de-register → 2.02; a version the
// server does not serve → 4.12; both queue-mode spellings.
func TestRegistrationInterface(t *testing.T) {
	s, rec := plainServer(t, Config{})
	p := newRawPeer(t, s.UDPAddr())
	body := []byte("</1/0>,</3/0>,</19/1>") // no /19/0: the server would observe it

	r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=urn:imei:868333030000001", "lt=300", "lwm2m=1.2", "b=U"}, cfLink, body))
	require.Equal(t, codes.PreconditionFailed, r.Code, "lwm2m=1.2 → 4.12: %s", r.Payload)

	r = p.roundTrip(p.request(codes.POST, "/rd", []string{"lt=300"}, cfLink, body))
	require.Equal(t, codes.BadRequest, r.Code)
	require.Contains(t, string(r.Payload), "ep=")

	r = p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=x", "lt=soon"}, cfLink, append(body, ",</4/0>,</5/0>,</6/0>"...))) // large enough for the whole diagnostic (SEC-2)
	require.Equal(t, codes.BadRequest, r.Code)
	require.Contains(t, string(r.Payload), "lt=<seconds>")

	r = p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=x"}, cfLink, []byte("</3/0>,garbage")))
	require.Equal(t, codes.BadRequest, r.Code, "malformed link format")

	r = p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=urn:imei:868333030000001", "lt=300", "lwm2m=1.0", "b=UQ"}, cfLink, body))
	require.Equal(t, codes.Created, r.Code, "%s", r.Payload)
	loc := msgLocation(&r)
	require.True(t, strings.HasPrefix(loc, "/rd/"), "location %q", loc)
	reg, ok := s.Registration("868333030000001")
	require.True(t, ok)
	require.Equal(t, "1.0", reg.Version)
	require.True(t, reg.Queue, "b=UQ")
	require.Equal(t, 300*time.Second, reg.Lifetime)
	require.True(t, reg.Objects.Has(lwm2m.MustPath("/19/1")))
	require.Equal(t, loc, reg.Location())

	r = p.roundTrip(p.request(codes.POST, loc, []string{"lt=600", "b=U"}, cfNone, nil))
	require.Equal(t, codes.Changed, r.Code)
	reg, _ = s.Registration("868333030000001")
	require.Equal(t, 600*time.Second, reg.Lifetime)
	require.False(t, reg.Queue)
	rec.wait(t, EventUpdated, "868333030000001", 1)

	r = p.roundTrip(p.request(codes.POST, "/rd/nope", nil, cfNone, nil))
	require.Equal(t, codes.NotFound, r.Code)

	r = p.roundTrip(p.request(codes.DELETE, loc, nil, cfNone, nil))
	require.Equal(t, codes.Deleted, r.Code)
	e := rec.wait(t, EventDeregistered, "868333030000001", 1)
	require.Equal(t, ReasonDeregistered, e.Reason)
	_, ok = s.Registration("868333030000001")
	require.False(t, ok)

	// LwM2M 1.1 queue mode is the Q parameter.
	p2 := newRawPeer(t, s.UDPAddr())
	r = p2.roundTrip(p2.request(codes.POST, "/rd", []string{"ep=dev2", "lwm2m=1.1", "b=U", "Q"}, cfLink, body))
	require.Equal(t, codes.Created, r.Code)
	reg, _ = s.Registration("dev2")
	require.True(t, reg.Queue, "Q parameter")
	require.Equal(t, 86400*time.Second, reg.Lifetime, "default lifetime")
}

func msgLocation(m *message.Message) string {
	var b strings.Builder
	for _, o := range m.Options {
		if o.ID == message.LocationPath {
			b.WriteByte('/')
			b.Write(o.Value)
		}
	}
	return b.String()
}

// LWM-3: a registration of a few hundred bytes in one datagram is accepted
// without block-wise transfer; LWM-9/limits: a datagram above
// MaxMessageSize gets 4.13 with Size1.
func TestMessageSizeLimits(t *testing.T) {
	s, _ := plainServer(t, Config{MaxMessageSize: 1024})
	p := newRawPeer(t, s.UDPAddr())
	var links []string
	for i := range 40 {
		links = append(links, "</3303/"+strconv.Itoa(i)+">")
	}
	body := []byte(strings.Join(links, ","))
	require.Greater(t, len(body), 400)
	r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=big", "lt=60"}, cfLink, body))
	require.Equal(t, codes.Created, r.Code, "%s", r.Payload)

	huge := make([]byte, 1500)
	r = p.roundTrip(p.request(codes.POST, "/dp", nil, cfOpaque, huge))
	require.Equal(t, codes.RequestEntityTooLarge, r.Code)
	size, ok := optUint(&r, message.Size1)
	require.True(t, ok)
	require.Equal(t, uint32(1024), size)
}

// LWM-4, byte by byte: POST /t/r?ep=<IMEI> is answered 2.04 Changed, and
// the server's GET of /t/d with Observe=0 follows.
func TestTUPRegistrationBytes(t *testing.T) {
	s, rec := plainServer(t, Config{})
	p := newRawPeer(t, s.UDPAddr())
	r := p.roundTrip(p.request(codes.POST, "/t/r", []string{"ep=868333030000060"}, cfNone, nil))
	require.Equal(t, codes.Changed, r.Code, "%s", r.Payload)
	obs := p.recv()
	require.Equal(t, codes.GET, obs.Code)
	require.Equal(t, "/t/d", msgPath(&obs))
	v, ok := optUint(&obs, message.Observe)
	require.True(t, ok)
	require.Equal(t, uint32(0), v)
	e := rec.wait(t, EventRegistered, "868333030000060", 1)
	require.True(t, e.Registration.TUP)
}

// Limits: with the default settings the maximum message size is 4 KB: a
// datagram of 4096 bytes is handled, one of 4097 bytes gets 4.13 Request
// Entity Too Large with Size1 4096.
func TestDefaultMessageSizeLimit(t *testing.T) {
	s, _ := plainServer(t, Config{})
	p := newRawPeer(t, s.UDPAddr())
	sized := func(total int) message.Message {
		m := p.request(codes.POST, "/dp", nil, cfOpaque, []byte{0})
		b, err := encodeMsg(m)
		require.NoError(t, err)
		m.Payload = make([]byte, total-len(b)+1)
		b, err = encodeMsg(m)
		require.NoError(t, err)
		require.Len(t, b, total)
		return m
	}
	r := p.roundTrip(sized(4096))
	require.Equal(t, codes.Forbidden, r.Code, "4096 bytes are handled (a Send before registering: 4.03): %s", r.Payload)
	r = p.roundTrip(sized(4097))
	require.Equal(t, codes.RequestEntityTooLarge, r.Code)
	size, ok := optUint(&r, message.Size1)
	require.True(t, ok)
	require.Equal(t, uint32(4096), size)
}

// LWM-9: a duplicate CON request (same message id) is answered from the
// cache with the same bytes and processed once.
func TestDuplicateAnsweredFromCache(t *testing.T) {
	s, rec := plainServer(t, Config{})
	p := newRawPeer(t, s.UDPAddr())
	r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=dup", "lt=60"}, cfLink, []byte("</19/0>")))
	require.Equal(t, codes.Created, r.Code)
	// the server now observes /19/0/0: answer its GET
	obs := p.recv()
	require.Equal(t, codes.GET, obs.Code)
	require.Equal(t, "/19/0/0", msgPath(&obs))
	require.False(t, obs.Options.HasOption(message.URIHost), "LWM-3: no Uri-Host in requests to devices")
	require.False(t, obs.Options.HasOption(message.URIPort), "LWM-3: no Uri-Port in requests to devices")
	ack := message.Message{Type: message.Acknowledgement, MessageID: obs.MessageID, Code: codes.Content, Token: obs.Token}
	addUint(&ack, message.Observe, 1)
	p.send(ack)

	send := p.request(codes.POST, "/dp", nil, cfOpaque, []byte("once"))
	first := p.send(send)
	a1 := p.recvBytes()
	p.sendBytes(first) // the same datagram again (a retransmission)
	a2 := p.recvBytes()
	require.Equal(t, a1, a2, "the duplicate gets the cached answer")
	rec.wait(t, EventUplink, "dup", 1)
	time.Sleep(50 * time.Millisecond) // the duplicate's answer came back: it was handled by now
	require.Equal(t, 1, rec.count(EventUplink, "dup"), "processed once")

	// A duplicate CON notification is acknowledged again and processed once.
	n := message.Message{Type: message.Confirmable, MessageID: 999, Code: codes.Content, Token: obs.Token, Payload: []byte("n1")}
	addUint(&n, message.Observe, 2)
	setContentFormat(&n, cfOpaque)
	nb := p.send(n)
	ack1 := p.recvBytes()
	p.sendBytes(nb)
	ack2 := p.recvBytes()
	require.Equal(t, ack1, ack2)
	rec.wait(t, EventUplink, "dup", 2)
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, 2, rec.count(EventUplink, "dup"))
}

// Limits: the per-session request rate answers 4.29 with Max-Age; the
// session cap answers 5.03.
func TestRateAndSessionLimits(t *testing.T) {
	s, _ := plainServer(t, Config{RequestRate: 0.001, RequestBurst: 2, MaxSessions: 1})
	p := newRawPeer(t, s.UDPAddr())
	for range 2 {
		r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=rate", "lt=60"}, cfLink, nil))
		require.Equal(t, codes.Created, r.Code)
	}
	r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=rate", "lt=60"}, cfLink, nil))
	require.Equal(t, codes.TooManyRequests, r.Code)
	age, ok := optUint(&r, message.MaxAge)
	require.True(t, ok)
	require.Greater(t, age, uint32(0))

	p2 := newRawPeer(t, s.UDPAddr())
	r = p2.roundTrip(p2.request(codes.POST, "/rd", []string{"ep=other", "lt=60"}, cfLink, nil))
	require.Equal(t, codes.ServiceUnavailable, r.Code, "second session over MaxSessions=1")
	_, ok = s.Registration("other")
	require.False(t, ok)
}

// Garbage, truncated and unknown messages never crash the server or leave
// a goroutine behind; unknown paths get 4.04.
func TestGarbageAndUnknownPaths(t *testing.T) {
	s, _ := plainServer(t, Config{})
	p := newRawPeer(t, s.UDPAddr())
	p.sendBytes([]byte{0xff, 0x00})
	p.sendBytes([]byte{0x40})
	p.sendBytes(nil)
	r := p.roundTrip(p.request(codes.GET, "/nothing/here", nil, cfNone, nil))
	require.Equal(t, codes.NotFound, r.Code)
	r = p.roundTrip(p.request(codes.POST, "/dp", nil, cfOpaque, []byte("x")))
	require.Equal(t, codes.Forbidden, r.Code, "Send before registering")
	// CoAP ping → Reset
	p.send(message.Message{Type: message.Confirmable, MessageID: 4242, Code: codes.Empty})
	rst := p.recv()
	require.Equal(t, message.Reset, rst.Type)
	require.Equal(t, int32(4242), rst.MessageID)
}

// LWM-8: a queue-mode device that sends a request again (its answer came
// late) stays awake for a window from the copy, not only from the first:
// it counts its awake time from what it last sent. The duplicate is still
// answered from the cache and processed once.
func TestDuplicateExtendsAwakeWindow(t *testing.T) {
	const window = time.Minute
	s, rec := plainServer(t, Config{AwakeWindow: window})
	p := newRawPeer(t, s.UDPAddr())
	r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=dupq", "lt=60", "b=UQ"}, cfLink, []byte("</3/0>")))
	require.Equal(t, codes.Created, r.Code)
	loc := msgLocation(&r)
	rec.wait(t, EventRegistered, "dupq", 1)

	first := p.send(p.request(codes.POST, loc, nil, cfNone, nil)) // an Update
	a1 := p.recvBytes()
	rec.wait(t, EventUpdated, "dupq", 1)
	reg, ok := s.Registration("dupq")
	require.True(t, ok)
	firstUntil := reg.AwakeUntil

	// The server took the first copy before it answered: a copy sent
	// after the answer arrived comes later than it.
	resent := time.Now()
	p.sendBytes(first)
	require.Equal(t, a1, p.recvBytes(), "the copy gets the cached answer")
	reg, _ = s.Registration("dupq")
	require.False(t, reg.AwakeUntil.Before(resent.Add(window)), "the window runs from the copy: until %v, the copy sent at %v", reg.AwakeUntil, resent)
	require.True(t, reg.AwakeUntil.After(firstUntil))
	time.Sleep(50 * time.Millisecond) // the copy's answer came back: it was handled by now
	require.Equal(t, 1, rec.count(EventUpdated, "dupq"), "processed once")
}
