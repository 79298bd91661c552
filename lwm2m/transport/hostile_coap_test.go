package transport

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/stretchr/testify/require"
)

// The hostile suite plays an attacker against the CoAP side of the server on
// loopback, with raw UDP sockets (issue 14: SEC-1, SEC-2, SEC-4; issue 20
// items 4 and 5). Every loop is bounded in count and time.

// policyMap is an EndpointPolicy a test can change.
type policyMap struct {
	mu sync.Mutex
	m  map[string]Security
}

func newPolicy(kv ...any) *policyMap {
	p := &policyMap{m: map[string]Security{}}
	for i := 0; i < len(kv); i += 2 {
		p.m[kv[i].(string)] = kv[i+1].(Security)
	}
	return p
}

func (p *policyMap) EndpointSecurity(ep string) Security {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[ep]
}

func (p *policyMap) set(ep string, s Security) {
	p.mu.Lock()
	p.m[ep] = s
	p.mu.Unlock()
}

// newRawPeerFrom is a raw peer bound to a local address such as
// "127.0.0.7:0": another source address on loopback.
func newRawPeerFrom(t *testing.T, local string, srv net.Addr) *rawPeer {
	t.Helper()
	la, err := net.ResolveUDPAddr("udp", local)
	require.NoError(t, err)
	c, err := net.DialUDP("udp", la, srv.(*net.UDPAddr))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &rawPeer{t: t, conn: c, mid: 100}
}

// silent asserts that the server sends nothing within d.
func (p *rawPeer) silent(d time.Duration, why string) {
	p.t.Helper()
	require.Empty(p.t, p.early, "%s: the server sent requests", why)
	buf := make([]byte, 2048)
	require.NoError(p.t, p.conn.SetReadDeadline(time.Now().Add(d)))
	n, err := p.conn.Read(buf)
	require.Error(p.t, err, "%s: got %d bytes %x", why, n, buf[:n])
}

// SEC-1: a device registered over DTLS with its PSK cannot be taken over
// with plain CoAP: Register, TUP register, Update and De-register of its
// registration over plain CoAP get 4.01 Unauthorized, and the DTLS
// registration and its session are untouched. An endpoint the policy does
// not know gets 4.03 on both transports; a DTLS identity the policy puts on
// plain CoAP gets 4.03 over DTLS.
func TestHostileTakeoverOverPlainCoAP(t *testing.T) {
	const ep, plainEP, strangerEP = "868333030000101", "868333030000102", "868333030000103"
	pol := newPolicy(ep, SecurityPSK, plainEP, SecurityNone)
	s, rec := startServer(t, Config{Policy: pol}, keys(ep, plainEP, strangerEP))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "urn:imei:" + ep, Key: testKey})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	before, ok := s.Registration(ep)
	require.True(t, ok)
	require.True(t, before.Secure)

	p := newRawPeer(t, s.UDPAddr())
	for _, tc := range []struct {
		name string
		m    message.Message
	}{
		{"register", p.request(codes.POST, "/rd", []string{"ep=urn:imei:" + ep, "lt=300"}, cfLink, []byte("</19/0>"))},
		{"register, bare IMEI", p.request(codes.POST, "/rd", []string{"ep=" + ep}, cfLink, nil)},
		{"TUP register", p.request(codes.POST, "/t/r", []string{"ep=" + ep}, cfNone, nil)},
		{"update", p.request(codes.POST, before.Location(), []string{"lt=60"}, cfNone, nil)},
		{"de-register", p.request(codes.DELETE, before.Location(), nil, cfNone, nil)},
	} {
		r := p.roundTrip(tc.m)
		require.Equal(t, codes.Unauthorized, r.Code, "%s over plain CoAP: %s", tc.name, r.Payload)
		// the diagnostic to a peer without a session is cut to the size
		// of its request (SEC-2, TestStrangerAnswerNoLargerThanRequest)
	}
	r := p.roundTrip(p.request(codes.POST, "/dp", nil, cfOpaque, []byte("forged")))
	require.Equal(t, codes.Forbidden, r.Code, "a Send from a peer that has no registration")

	after, ok := s.Registration(ep)
	require.True(t, ok)
	require.Equal(t, before.ID, after.ID, "the DTLS registration is untouched")
	require.True(t, after.Secure)
	require.Equal(t, before.Addr.String(), after.Addr.String())
	require.Zero(t, rec.count(EventDeregistered, ep))
	require.Zero(t, rec.count(EventUplink, ep))
	require.Equal(t, 1, s.sessions(), "the DTLS session only")
	require.True(t, s.liveConn(ep))

	// Even with a policy that now allows plain CoAP, a plain Register does
	// not move a registration made over DTLS.
	pol.set(ep, SecurityNone)
	r = p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=" + ep}, cfLink, []byte("</1/0>,</3/0>,</4/0>,</5/0>,</6/0>,</7/0>,</19/1>")))
	require.Equal(t, codes.Unauthorized, r.Code, "%s", r.Payload)
	require.Contains(t, string(r.Payload), "registered over DTLS", "a request large enough gets the whole diagnostic (SEC-2)")
	after, _ = s.Registration(ep)
	require.Equal(t, before.ID, after.ID)
	pol.set(ep, SecurityPSK)

	// unknown endpoint over plain CoAP → 4.03
	r = p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=" + strangerEP}, cfLink, []byte("</1/0>,</3/0>,</4/0>,</5/0>,</6/0>,</7/0>,</19/1>")))
	require.Equal(t, codes.Forbidden, r.Code, "%s", r.Payload)
	require.Contains(t, string(r.Payload), "not a device of this server")

	// over DTLS: a key alone is not enough when the policy says otherwise
	for _, id := range []string{plainEP, strangerEP} {
		d := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: id, Key: testKey})
		require.NoError(t, d.Connect(ctxT(t)))
		err := d.Register(ctxT(t))
		var re *ResponseError
		require.ErrorAs(t, err, &re, "DTLS register of %s", id)
		require.Equal(t, CodeForbidden, re.Code, "%s", re.Message)
		_, ok := s.Registration(id)
		require.False(t, ok)
	}
}

// SEC-1, SEC-2: without a Policy, plain CoAP refuses every registration
// (4.01: use DTLS), and the refused peers leave nothing behind: no
// registration, no session, no stranger, no event, no observation, and
// the heap does not grow with their number.
func TestHostileUnknownEndpointKeepsNothing(t *testing.T) {
	s, rec := startServer(t, Config{DisableDTLS: true}, nil)
	one := newRawPeer(t, s.UDPAddr())
	r := one.roundTrip(one.request(codes.POST, "/rd", []string{"ep=868333030000110"}, cfLink, []byte("</19/0>")))
	require.Equal(t, codes.Unauthorized, r.Code, "nil Policy: plain CoAP serves nobody: %s", r.Payload)

	s2, rec2 := startServer(t, Config{DisableDTLS: true, Policy: newPolicy("known", SecurityNone)}, nil)
	peers := make([]*rawPeer, 200)
	for i := range peers {
		peers[i] = newRawPeer(t, s2.UDPAddr())
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap()
	for round := range 5 {
		for i, p := range peers {
			r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=86833303" + string(rune('a'+round)) + strings.Repeat("9", i%7)}, cfLink, []byte("</19/0>,</3/0>")))
			require.Equal(t, codes.Forbidden, r.Code, "%s", r.Payload)
		}
	}
	waitFor(t, "strangers to be forgotten", func() bool { return s2.strangerCount() == 0 })
	require.Zero(t, s2.sessions(), "1,000 refused registrations from 200 peers hold no session")
	require.Empty(t, rec.all())
	require.Empty(t, rec2.all(), "no event for a refused registration")
	grown := int64(heap()) - int64(base)
	t.Logf("heap after 1,000 refused registrations from 200 peers: %+d bytes", grown)
	require.Less(t, grown, int64(512<<10), "heap grew by %d bytes for refused peers", grown)
	obs, err := s2.cfg.Observations.Observations("86833303a")
	require.NoError(t, err)
	require.Empty(t, obs)
}

// SEC-2: 100,000 spoofed 4-byte pings (and some requests) from 200 source
// addresses on 127.0.0.0/8 do not exhaust the sessions: a legitimate device
// registers during the flood (2.01) and after it, and the only session
// counted is the device's. MaxSessions is 50, below the number of flooding
// sources, so a flood that created sessions would lock the device out.
func TestHostileSpoofedPingFlood(t *testing.T) {
	s, _ := startServer(t, Config{DisableDTLS: true, MaxSessions: 50, Policy: newPolicy("legit", SecurityNone, "late", SecurityNone)}, nil)
	srv := s.UDPAddr().(*net.UDPAddr)
	var conns []*net.UDPConn
	for i := range 200 {
		la := &net.UDPAddr{IP: net.IPv4(127, 0, byte(1+i/250), byte(2+i%250))}
		c, err := net.ListenUDP("udp", la)
		require.NoError(t, err)
		require.NoError(t, c.SetReadBuffer(4096)) // the RSTs we get back are dropped
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	const total = 100_000
	var sent atomic.Int64
	stop := time.Now().Add(8 * time.Second)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ping := []byte{0x40, 0x00, 0, 0} // CON, 0.00
			get := []byte{0x40, 0x01, 0, 0, 0xb1, 'x'}
			for i := w; sent.Load() < total && time.Now().Before(stop); i += 4 {
				c := conns[i%len(conns)]
				d := ping
				if i%10 == 0 {
					d = get
				}
				d[2], d[3] = byte(i>>8), byte(i)
				if _, err := c.WriteToUDP(d, srv); err == nil {
					sent.Add(1)
				}
			}
		}()
	}
	register := func(ep string) {
		p := newRawPeer(t, s.UDPAddr())
		m := p.request(codes.POST, "/rd", []string{"ep=" + ep, "lt=300"}, cfLink, nil)
		deadline := time.Now().Add(10 * time.Second)
		for {
			p.send(m) // the same message id: a retransmission
			buf := make([]byte, 2048)
			require.NoError(t, p.conn.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
			n, err := p.conn.Read(buf)
			if err == nil {
				r, err := decodeMsg(buf[:n])
				require.NoError(t, err)
				require.Equal(t, codes.Created, r.Code, "%s during the flood: %s", ep, r.Payload)
				return
			}
			require.True(t, time.Now().Before(deadline), "%s got no answer within 10 s", ep)
		}
	}
	time.Sleep(50 * time.Millisecond) // the flood is on
	register("legit")
	wg.Wait()
	t.Logf("%d spoofed datagrams sent from %d sources", sent.Load(), len(conns))
	require.Greater(t, sent.Load(), int64(10_000), "the flood must be a flood")
	register("late")
	require.Equal(t, 2, s.sessions(), "the two registered devices hold the only sessions")
	waitFor(t, "strangers to be forgotten", func() bool { return s.strangerCount() == 0 })
}

// SEC-2: a peer without a registration may not buffer a Block1 body larger
// than the maximum message size: past it → 4.13 with Size1 and nothing is
// held; announced with Size1 → 4.13 at the first block. A registered peer
// may send more.
func TestHostileBlock1FromStranger(t *testing.T) {
	s, rec := plainServer(t, Config{MaxMessageSize: 2048})
	p := newRawPeer(t, s.UDPAddr())
	block := bytes.Repeat([]byte{7}, 512)
	send := func(p *rawPeer, num uint32, more bool, size1 uint32) message.Message {
		m := p.request(codes.POST, "/dp", nil, cfOpaque, block)
		addUint(&m, message.Block1, blockOpt{num: num, more: more, szx: 5}.value())
		if size1 > 0 {
			addUint(&m, message.Size1, size1)
		}
		return p.roundTrip(m)
	}
	for num := range uint32(4) { // 4 × 512 = 2048: still within
		r := send(p, num, true, 0)
		require.Equal(t, codes.Continue, r.Code, "block %d: %s", num, r.Payload)
	}
	require.Equal(t, 1, s.strangerCount(), "a Block1 body in progress is the stranger's one state")
	require.Zero(t, s.sessions())
	r := send(p, 4, true, 0)
	require.Equal(t, codes.RequestEntityTooLarge, r.Code, "%s", r.Payload)
	size, ok := optUint(&r, message.Size1)
	require.True(t, ok)
	require.Equal(t, uint32(2048), size)
	waitFor(t, "the stranger to be forgotten", func() bool { return s.strangerCount() == 0 })

	r = send(p, 0, true, 1<<20)
	require.Equal(t, codes.RequestEntityTooLarge, r.Code, "Size1 announces 1 MiB: refused at block 0")
	waitFor(t, "the stranger to be forgotten", func() bool { return s.strangerCount() == 0 })

	// registered: the body may be larger than a message
	r = p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=b1big"}, cfLink, nil))
	require.Equal(t, codes.Created, r.Code)
	for num := range uint32(6) {
		r = send(p, num, num < 5, 0)
		want := codes.Continue
		if num == 5 {
			want = codes.Changed
		}
		require.Equal(t, want, r.Code, "registered, block %d: %s", num, r.Payload)
	}
	e := rec.wait(t, EventUplink, "b1big", 1)
	require.Len(t, e.Payload, 6*512)
}

// SEC-2: a lifetime above MaxLifetime is refused with 4.00 naming the
// limit, on Register and on Update; the limit itself is accepted.
func TestHostileLifetimeBound(t *testing.T) {
	s, _ := plainServer(t, Config{})
	p := newRawPeer(t, s.UDPAddr())
	// a body large enough for the whole diagnostic (SEC-2)
	r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=lt", "lt=4294967295"}, cfLink, []byte("</1/0>,</3/0>,</4/0>,</5/0>,</6/0>,</7/0>,</19/1>")))
	require.Equal(t, codes.BadRequest, r.Code)
	require.Contains(t, string(r.Payload), "at most lt=259200")
	_, ok := s.Registration("lt")
	require.False(t, ok)
	r = p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=lt", "lt=259201"}, cfLink, nil))
	require.Equal(t, codes.BadRequest, r.Code)
	r = p.roundTrip(p.request(codes.POST, "/t/r", []string{"ep=lt", "lt=259201"}, cfNone, nil))
	require.Equal(t, codes.BadRequest, r.Code, "TUP")
	r = p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=lt", "lt=259200"}, cfLink, nil))
	require.Equal(t, codes.Created, r.Code, "%s", r.Payload)
	loc := msgLocation(&r)
	r = p.roundTrip(p.request(codes.POST, loc, []string{"lt=300000"}, cfNone, nil))
	require.Equal(t, codes.BadRequest, r.Code)
	reg, _ := s.Registration("lt")
	require.Equal(t, 259200*time.Second, reg.Lifetime, "the refused update changed nothing")

	s2, _ := plainServer(t, Config{MaxLifetime: time.Hour})
	p2 := newRawPeer(t, s2.UDPAddr())
	r = p2.roundTrip(p2.request(codes.POST, "/rd", []string{"ep=lt", "lt=3601"}, cfLink, []byte("</1/0>,</3/0>,</4/0>,</5/0>,</6/0>,</7/0>,</19/1>")))
	require.Equal(t, codes.BadRequest, r.Code)
	require.Contains(t, string(r.Payload), "at most lt=3600")

	_, err := New(Config{DisableDTLS: true, MaxLifetime: time.Hour, DefaultLifetime: 2 * time.Hour}, nil, nil)
	require.ErrorContains(t, err, "DefaultLifetime", "a default above the maximum is a configuration error")
}

// malformedForms are CoAP message format errors (RFC 7252 §3, §3.1, §4.1)
// as the first two bytes after the message ID decide them; byte 0 is
// filled in with the type.
var malformedForms = []struct {
	name string
	b    []byte // without the 4-byte header's first byte's type bits
}{
	{"TKL 9", []byte{0x49, 0x01, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	{"TKL 15", []byte{0x4f, 0x01, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
	{"token past the end", []byte{0x44, 0x01, 0, 0, 1, 2}},
	{"option delta 15", []byte{0x40, 0x01, 0, 0, 0xf1, 'x'}},
	{"option length 15", []byte{0x40, 0x01, 0, 0, 0xbf, 'x'}},
	{"payload marker, no payload", []byte{0x40, 0x02, 0, 0, 0xb2, 'r', 'd', 0xff}},
	{"option value truncated", []byte{0x40, 0x01, 0, 0, 0xb5, 'a', 'b'}},
	{"extended delta truncated", []byte{0x40, 0x01, 0, 0, 0xd0}},
	{"extended length truncated", []byte{0x40, 0x01, 0, 0, 0xbe, 0x01}},
	{"Empty message with a token", []byte{0x41, 0x00, 0, 0, 9}},
	{"Empty message with bytes", []byte{0x40, 0x00, 0, 0, 0xff, 1}},
}

func withType(b []byte, typ message.Type, mid uint16) []byte {
	b = append([]byte(nil), b...)
	b[0] = b[0]&0xcf | byte(typ)<<4
	b[2], b[3] = byte(mid>>8), byte(mid)
	return b
}

// SEC-4: each malformed confirmable message gets a Reset with its message
// ID (RFC 7252 §4.2), from a stranger and from a registered peer alike; the
// same forms non-confirmable are silently ignored (§4.3); a message of
// another version is ignored (§3).
func TestHostileMalformedConfirmable(t *testing.T) {
	s, _ := plainServer(t, Config{})
	stranger := newRawPeer(t, s.UDPAddr())
	registered := newRawPeer(t, s.UDPAddr())
	r := registered.roundTrip(registered.request(codes.POST, "/rd", []string{"ep=fmt"}, cfLink, nil))
	require.Equal(t, codes.Created, r.Code)
	for _, p := range []*rawPeer{stranger, registered} {
		for i, tc := range malformedForms {
			mid := uint16(0x5000 + i)
			p.sendBytes(withType(tc.b, message.Confirmable, mid))
			rst := p.recv()
			require.Equal(t, message.Reset, rst.Type, tc.name)
			require.Equal(t, int32(mid), rst.MessageID, tc.name)
			require.Equal(t, codes.Empty, rst.Code, tc.name)
			require.Empty(t, rst.Token, tc.name)
		}
		for i, tc := range malformedForms {
			p.sendBytes(withType(tc.b, message.NonConfirmable, uint16(0x6000+i)))
		}
		p.sendBytes([]byte{0x80, 0x01, 0, 1}) // version 2
		p.sendBytes([]byte{0x40, 0x01})       // shorter than a header
		p.silent(300*time.Millisecond, "malformed NON messages and other versions are ignored")
	}
	require.Equal(t, 1, s.sessions())
}

// SEC-4: an unrecognised critical option in a confirmable request gets
// 4.02 Bad Option (RFC 7252 §5.4.1), as does a critical option of an
// illegal length (§5.4.3); in a non-confirmable request it is ignored; an
// unknown elective option is ignored; a proxy option gets 5.05 (§5.7.2).
func TestHostileCriticalOption(t *testing.T) {
	s, _ := plainServer(t, Config{})
	p := newRawPeer(t, s.UDPAddr())
	reg := func(opt message.Option, typ message.Type) message.Message {
		m := p.request(codes.POST, "/rd", []string{"ep=crit"}, cfLink, nil)
		m.Type = typ
		m.Options = m.Options.Add(opt)
		return m
	}
	for _, opt := range []message.Option{
		{ID: 9, Value: []byte{1}},                     // OSCORE: not served
		{ID: 2049, Value: []byte{1}},                  // an unassigned critical number
		{ID: message.IfMatch},                         // conditional requests: not served
		{ID: message.IfNoneMatch},                     // idem
		{ID: message.URIPort, Value: []byte{1, 2, 3}}, // 0–2 bytes allowed
	} {
		r := p.roundTrip(reg(opt, message.Confirmable))
		require.Equal(t, codes.BadOption, r.Code, "option %d: %s", opt.ID, r.Payload)
		_, ok := s.Registration("crit")
		require.False(t, ok, "option %d: nothing registered", opt.ID)
	}
	p.send(reg(message.Option{ID: 9, Value: []byte{1}}, message.NonConfirmable))
	p.silent(300*time.Millisecond, "a NON request with an unrecognised critical option is ignored")
	_, ok := s.Registration("crit")
	require.False(t, ok)

	r := p.roundTrip(reg(message.Option{ID: message.ProxyURI, Value: []byte("coap://x/")}, message.Confirmable))
	require.Equal(t, codes.ProxyingNotSupported, r.Code)

	r = p.roundTrip(reg(message.Option{ID: 2048, Value: []byte{1}}, message.Confirmable))
	require.Equal(t, codes.Created, r.Code, "an unknown elective option is ignored: %s", r.Payload)
}

// SEC-4: a method a resource of the server does not allow gets 4.05
// Method Not Allowed (RFC 7252 §5.9.2.6); a resource the server does not
// have (bootstrap /bs among them) gets 4.04.
func TestHostileWrongMethod(t *testing.T) {
	s, _ := plainServer(t, Config{Files: files{"pkg": {Data: bytes.NewReader([]byte("x")), Size: 1}}})
	p := newRawPeer(t, s.UDPAddr())
	r := p.roundTrip(p.request(codes.POST, "/rd", []string{"ep=meth"}, cfLink, nil))
	require.Equal(t, codes.Created, r.Code)
	loc := msgLocation(&r)
	for _, tc := range []struct {
		code codes.Code
		path string
		want codes.Code
	}{
		{codes.GET, "/rd", codes.MethodNotAllowed},
		{codes.PUT, "/rd", codes.MethodNotAllowed},
		{codes.DELETE, "/rd", codes.MethodNotAllowed},
		{codes.GET, loc, codes.MethodNotAllowed},
		{codes.PUT, loc, codes.MethodNotAllowed},
		{codes.GET, "/rd/nope", codes.MethodNotAllowed},
		{codes.GET, "/dp", codes.MethodNotAllowed},
		{codes.PUT, "/dp", codes.MethodNotAllowed},
		{codes.GET, "/t/r", codes.MethodNotAllowed},
		{codes.POST, "/fw/pkg", codes.MethodNotAllowed},
		{codes.DELETE, "/fw/pkg", codes.MethodNotAllowed},
		{codes.Code(5), "/rd", codes.MethodNotAllowed}, // FETCH
		{codes.Code(7), "/dp", codes.MethodNotAllowed}, // iPATCH
		{codes.POST, "/bs", codes.NotFound},
		{codes.GET, "/bs", codes.NotFound},
		{codes.GET, "/nothing", codes.NotFound},
	} {
		r := p.roundTrip(p.request(tc.code, tc.path, nil, cfNone, nil))
		require.Equal(t, tc.want, r.Code, "%s %s: %s", codeString(tc.code), tc.path, r.Payload)
	}
	_, ok := s.Registration("meth")
	require.True(t, ok, "none of it touched the registration")
}

// Issue 20.4: a device downloads firmware from a second socket it did not
// register on; the unguessable name is the credential. A wrong name gets
// 4.04, and a source that keeps asking for wrong names is slowed (4.29
// with Max-Age) while other sources are not; no session is kept for a
// download; at most maxDownloaders strangers download at once.
func TestHostileSecondSocketDownload(t *testing.T) {
	const name = "3f9c2a7b1e8d4c60a5b7e9f1d2c3b4a5"
	data := bytes.Repeat([]byte("firmware"), 400) // 3,200 bytes: 7 blocks of 512
	s, _ := plainServer(t, Config{Files: files{name: {Data: bytes.NewReader(data), Size: int64(len(data)), ETag: []byte{9}}},
		StrangerDownloadRatePerIP: 1 << 20}) // all these sources are 127.0.0.1; the budgets: TestStrangerDownloadBudget
	dev := newRawPeer(t, s.UDPAddr())
	r := dev.roundTrip(dev.request(codes.POST, "/rd", []string{"ep=fw"}, cfLink, nil))
	require.Equal(t, codes.Created, r.Code)

	dl := newRawPeer(t, s.UDPAddr()) // the second socket
	var got []byte
	for num := uint32(0); ; num++ {
		m := dl.request(codes.GET, "/fw/"+name, nil, cfNone, nil)
		addUint(&m, message.Block2, blockOpt{num: num, szx: 5}.value())
		r := dl.roundTrip(m)
		require.Equal(t, codes.Content, r.Code, "block %d: %s", num, r.Payload)
		got = append(got, r.Payload...)
		v, _ := optUint(&r, message.Block2)
		if b, _ := parseBlock(v); !b.more {
			break
		}
	}
	require.Equal(t, data, got)
	require.Equal(t, 1, s.sessions(), "the download kept no session")
	waitFor(t, "strangers to be forgotten", func() bool { return s.strangerCount() == 0 })

	prober := newRawPeerFrom(t, "127.0.0.9:0", s.UDPAddr())
	for i := range failBurst {
		r := prober.roundTrip(prober.request(codes.GET, "/fw/"+strings.Repeat("0", i+1), nil, cfNone, nil))
		require.Equal(t, codes.NotFound, r.Code, "wrong name %d", i)
	}
	r = prober.roundTrip(prober.request(codes.GET, "/fw/guess", nil, cfNone, nil))
	require.Equal(t, codes.TooManyRequests, r.Code, "%s", r.Payload)
	age, ok := optUint(&r, message.MaxAge)
	require.True(t, ok)
	require.GreaterOrEqual(t, age, uint32(1))
	r = prober.roundTrip(prober.request(codes.GET, "/fw/"+name, nil, cfNone, nil))
	require.Equal(t, codes.TooManyRequests, r.Code, "the slowed source waits even for a right name")
	r = dl.roundTrip(dl.request(codes.GET, "/fw/"+name, nil, cfNone, nil))
	require.Equal(t, codes.Content, r.Code, "another source is not slowed")

	// concurrent downloads by strangers are capped (dl is one, in progress)
	for i := range maxDownloaders - 1 {
		p := newRawPeer(t, s.UDPAddr())
		r := p.roundTrip(p.request(codes.GET, "/fw/"+name, nil, cfNone, nil)) // block 0 of 7: in progress
		require.Equal(t, codes.Content, r.Code, "downloader %d", i)
	}
	extra := newRawPeer(t, s.UDPAddr())
	r = extra.roundTrip(extra.request(codes.GET, "/fw/"+name, nil, cfNone, nil))
	require.Equal(t, codes.ServiceUnavailable, r.Code, "%s", r.Payload)
	r = dev.roundTrip(dev.request(codes.GET, "/fw/"+name, nil, cfNone, nil))
	require.Equal(t, codes.Content, r.Code, "a registered device is not capped")
	require.Equal(t, 1, s.sessions())
}

// Issue 20.5: when a DTLS device's registration expires its session is
// kept: the device's next Register on the same session (no new handshake)
// is accepted.
func TestHostileExpiryThenRegisterOnSameSession(t *testing.T) {
	const ep = "868333030000120"
	s, rec := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey, Lifetime: time.Second})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	e := rec.wait(t, EventDeregistered, ep, 1)
	require.Equal(t, ReasonExpired, e.Reason)
	require.Equal(t, 1, s.sessions(), "the session outlives its registration")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Register(ctx), "Register on the same DTLS session after expiry")
	rec.wait(t, EventRegistered, ep, 2)
	require.True(t, s.liveConn(ep))
	require.Equal(t, 1, s.sessions(), "no second session: no new handshake")
	require.NoError(t, c.Send(ctx, Content{Format: cfOpaque, Payload: []byte{1}}), "the session serves the new registration")
}
