package transport

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/stretchr/testify/require"
)

// bsStore is a BootstrapStore in memory that records how bootstraps ended.
type bsStore struct {
	mu    sync.Mutex
	infos map[string]BootstrapInfo
	ended map[string]error
	done  chan string
}

func newBSStore() *bsStore {
	return &bsStore{infos: map[string]BootstrapInfo{}, ended: map[string]error{}, done: make(chan string, 16)}
}

func (s *bsStore) set(ep string, info BootstrapInfo) {
	s.mu.Lock()
	s.infos[ep] = info
	s.mu.Unlock()
}

func (s *bsStore) BootstrapInfo(ep string) (BootstrapInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, ok := s.infos[ep]
	if !ok {
		return info, ErrNotFound
	}
	return info, nil
}

func (s *bsStore) Bootstrapped(ep string, err error) {
	s.mu.Lock()
	s.ended[ep] = err
	s.mu.Unlock()
	s.done <- ep
}

func (s *bsStore) wait(t *testing.T, ep string) error {
	t.Helper()
	select {
	case got := <-s.done:
		require.Equal(t, ep, got, "Bootstrapped reported another endpoint")
	case <-time.After(10 * time.Second):
		t.Fatalf("Bootstrapped(%q) was not called within 10s", ep)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended[ep]
}

func startBootstrap(t *testing.T, cfg BootstrapConfig, st BootstrapStore) *BootstrapServer {
	t.Helper()
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = "127.0.0.1:0"
	}
	if cfg.DTLSAddr == "" {
		cfg.DTLSAddr = "127.0.0.1:0"
	}
	b, err := NewBootstrapServer(cfg, st)
	require.NoError(t, err)
	require.NoError(t, b.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, b.Close(), "second Close")
	})
	return b
}

var bsKey = []byte("bootstrap-key-16")

// TestBootstrapThenRegisterDTLS is LWM-13's evidence: a client that
// knows only its bootstrap server and bootstrap key bootstraps over DTLS,
// is given its LwM2M server account (URI, PSK identity and key, lifetime,
// binding), and registers with that server over DTLS with that key.
func TestBootstrapThenRegisterDTLS(t *testing.T) {
	const ep = "868333030000001"
	keys := NewMemoryKeyStore()
	keys.Set(ep, testKey)
	srv, rec := startServer(t, Config{DisableUDP: true}, keys)
	st := newBSStore()
	want := ServerAccount{URI: "coaps://" + srv.DTLSAddr().String(), Security: SecurityPSK, Identity: ep, Key: testKey,
		ShortServerID: 123, Lifetime: 300 * time.Second, Binding: "UQ"}
	st.set(ep, BootstrapInfo{Security: SecurityPSK, Key: bsKey, Account: want})
	bs := startBootstrap(t, BootstrapConfig{}, st)

	c := newClient(t, ClientConfig{Server: bs.DTLSAddr().String(), Endpoint: "urn:imei:" + ep, Key: bsKey})
	require.NoError(t, c.Connect(ctxT(t)))
	accts, err := c.Bootstrap(ctxT(t))
	require.NoError(t, err, "Bootstrap over DTLS")
	require.NoError(t, st.wait(t, ep), "the bootstrap server's report")
	require.Equal(t, []ServerAccount{want}, accts, "the account the client was given")
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool { return bs.Sessions() == 0 }, 5*time.Second, 10*time.Millisecond, "the session ends after Bootstrap-Finish")

	cfg, err := accts[0].ClientConfig(ClientConfig{Endpoint: "urn:imei:" + ep})
	require.NoError(t, err)
	require.Equal(t, srv.DTLSAddr().String(), cfg.Server)
	d := newClient(t, cfg)
	require.NoError(t, d.Connect(ctxT(t)), "DTLS handshake with the PSK from the bootstrap")
	require.NoError(t, d.Register(ctxT(t)))
	rec.wait(t, EventRegistered, ep, 1)
	r, ok := srv.Registration(ep)
	require.True(t, ok, "registered on the server")
	require.True(t, r.Secure, "over DTLS")
	require.True(t, r.Queue, "binding UQ from the bootstrap")
	require.Equal(t, 300*time.Second, r.Lifetime, "lifetime from the bootstrap")
}

// TestBootstrapPlain bootstraps a device configured for plain CoAP, and it
// registers over plain CoAP with the NoSec account it was given.
func TestBootstrapPlain(t *testing.T) {
	const ep = "868333030000002"
	pol := EndpointPolicyFunc(func(e string) Security {
		if e == ep {
			return SecurityNone
		}
		return SecurityUnknown
	})
	srv, rec := startServer(t, Config{DisableDTLS: true, Policy: pol}, nil)
	st := newBSStore()
	st.set(ep, BootstrapInfo{Security: SecurityNone, Account: ServerAccount{URI: "coap://" + srv.UDPAddr().String(), Security: SecurityNone}})
	bs := startBootstrap(t, BootstrapConfig{DisableDTLS: true}, st)

	c := newClient(t, ClientConfig{Server: bs.UDPAddr().String(), Endpoint: ep, Version: "1.0"})
	require.NoError(t, c.Connect(ctxT(t)))
	accts, err := c.Bootstrap(ctxT(t))
	require.NoError(t, err)
	require.NoError(t, st.wait(t, ep))
	require.Len(t, accts, 1)
	require.Equal(t, SecurityNone, accts[0].Security)
	require.Equal(t, 86400*time.Second, accts[0].Lifetime, "lifetime defaults to 86400 s")
	cfg, err := accts[0].ClientConfig(ClientConfig{Endpoint: ep})
	require.NoError(t, err)
	require.Nil(t, cfg.Key)
	d := newClient(t, cfg)
	require.NoError(t, d.Connect(ctxT(t)))
	require.NoError(t, d.Register(ctxT(t)))
	rec.wait(t, EventRegistered, ep, 1)
}

// udpPeer is a plain CoAP device played by hand.
type udpPeer struct {
	t    *testing.T
	c    *net.UDPConn
	to   net.Addr
	next uint16
}

func newUDPPeer(t *testing.T, to net.Addr) *udpPeer {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &udpPeer{t: t, c: c, to: to, next: 100}
}

func (p *udpPeer) send(m message.Message) {
	p.t.Helper()
	if m.MessageID == 0 {
		p.next++
		m.MessageID = int32(p.next)
	}
	b, err := encodeMsg(m)
	require.NoError(p.t, err)
	_, err = p.c.WriteTo(b, p.to)
	require.NoError(p.t, err)
}

func (p *udpPeer) recv() message.Message {
	p.t.Helper()
	buf := make([]byte, 2048)
	_ = p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := p.c.ReadFrom(buf)
	require.NoError(p.t, err, "no answer within 5s")
	m, err := decodeMsg(buf[:n])
	require.NoError(p.t, err)
	return m
}

func bsRequest(code codes.Code, path string, queries ...string) message.Message {
	m := newRequest(code, path)
	for _, q := range queries {
		addQuery(m, q)
	}
	m.Type = message.Confirmable
	m.Token = []byte{1, 2, 3, 4}
	return *m
}

// TestBootstrapRefusesOverPlainCoAP: every refusal over plain CoAP is a
// clear code with a diagnostic, answered in the ACK, and leaves no session
// behind (SEC-1, SEC-2).
func TestBootstrapRefusesOverPlainCoAP(t *testing.T) {
	st := newBSStore()
	st.set("psk-device", BootstrapInfo{Security: SecurityPSK, Key: bsKey, Account: ServerAccount{URI: "coaps://127.0.0.1:5684", Security: SecurityPSK, Identity: "psk-device", Key: testKey}})
	st.set("bad-config", BootstrapInfo{Security: SecurityNone, Account: ServerAccount{URI: "coaps://127.0.0.1:5684", Security: SecurityNone}})
	bs := startBootstrap(t, BootstrapConfig{DisableDTLS: true}, st)
	p := newUDPPeer(t, bs.UDPAddr())
	for _, tc := range []struct {
		name string
		req  message.Message
		want codes.Code
	}{
		{"unknown endpoint", bsRequest(codes.POST, "/bs", "ep=stranger"), codes.Forbidden},
		{"PSK endpoint over plain CoAP", bsRequest(codes.POST, "/bs", "ep=psk-device"), codes.Unauthorized},
		{"unusable configuration", bsRequest(codes.POST, "/bs", "ep=bad-config"), codes.InternalServerError},
		{"no endpoint name", bsRequest(codes.POST, "/bs"), codes.BadRequest},
		{"GET /bs", bsRequest(codes.GET, "/bs", "ep=stranger"), codes.MethodNotAllowed},
		{"registration on the bootstrap server", bsRequest(codes.POST, "/rd", "ep=stranger"), codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.send(tc.req)
			r := p.recv()
			require.Equal(t, message.Acknowledgement, r.Type, "a piggybacked answer")
			require.Equal(t, tc.req.Token, r.Token)
			require.Equal(t, tc.want, r.Code, "answer %s: %s", codeString(r.Code), r.Payload)
			require.NotEmpty(t, r.Payload, "a diagnostic payload")
			require.Zero(t, bs.Sessions(), "nothing kept for a refused peer")
		})
	}
	p.send(message.Message{Type: message.Confirmable, Code: codes.Empty, MessageID: 0x1234})
	r := p.recv()
	require.Equal(t, message.Reset, r.Type, "a CoAP ping gets a Reset")
	require.EqualValues(t, 0x1234, r.MessageID)
	// A confirmable response with no exchange of ours is rejected (RFC
	// 7252 §4.2), and nothing is kept for the peer.
	p.send(message.Message{Type: message.Confirmable, Code: codes.Content, MessageID: 0x4321, Token: []byte{9}})
	r = p.recv()
	require.Equal(t, message.Reset, r.Type, "a confirmable response from a stranger gets a Reset")
	require.EqualValues(t, 0x4321, r.MessageID)
	require.Zero(t, bs.Sessions())
}

// TestBootstrapRefusesOverDTLS: the PSK identity is the endpoint name, and
// only the key of a device configured for DTLS opens a session.
func TestBootstrapRefusesOverDTLS(t *testing.T) {
	st := newBSStore()
	acct := ServerAccount{URI: "coaps://127.0.0.1:5684", Security: SecurityPSK, Identity: "a", Key: testKey}
	st.set("a", BootstrapInfo{Security: SecurityPSK, Key: bsKey, Account: acct})
	st.set("b", BootstrapInfo{Security: SecurityPSK, Key: []byte("another-key-0123"), Account: acct})
	st.set("plain", BootstrapInfo{Security: SecurityNone, Key: bsKey, Account: ServerAccount{URI: "coap://127.0.0.1:5683", Security: SecurityNone}})
	bs := startBootstrap(t, BootstrapConfig{DisableUDP: true, HandshakeTimeout: 3 * time.Second}, st)

	t.Run("another endpoint than the identity", func(t *testing.T) {
		c := newClient(t, ClientConfig{Server: bs.DTLSAddr().String(), Endpoint: "b", Identity: "a", Key: bsKey})
		require.NoError(t, c.Connect(ctxT(t)))
		_, err := c.Bootstrap(ctxT(t))
		var re *ResponseError
		require.ErrorAs(t, err, &re)
		require.Equal(t, CodeForbidden, re.Code, "%v", err)
	})
	for _, tc := range []struct{ name, ep string }{{"wrong key", "b"}, {"unknown identity", "nobody"}, {"plain-only device over DTLS", "plain"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, ClientConfig{Server: bs.DTLSAddr().String(), Endpoint: tc.ep, Key: bsKey, HandshakeTimeout: 3 * time.Second})
			err := c.Connect(ctxT(t))
			require.Error(t, err, "handshake refused")
			// the same alert for all three: nobody learns which endpoints exist
			require.Contains(t, err.Error(), "Alert Fatal: DecryptError")
		})
	}
	t.Run("the right key", func(t *testing.T) { // the control of "wrong key"
		c := newClient(t, ClientConfig{Server: bs.DTLSAddr().String(), Endpoint: "b", Key: []byte("another-key-0123"), HandshakeTimeout: 3 * time.Second})
		require.NoError(t, c.Connect(ctxT(t)))
		require.NoError(t, c.Close())
	})
	require.Eventually(t, func() bool { return bs.Sessions() == 0 }, 5*time.Second, 10*time.Millisecond)
}

// TestBootstrapSessionCap: beyond MaxSessions a Bootstrap-Request gets
// 5.03 with Max-Age, and the session that holds the slot ends at
// SessionTimeout even though its device never answers.
func TestBootstrapSessionCap(t *testing.T) {
	st := newBSStore()
	for _, ep := range []string{"one", "two"} {
		st.set(ep, BootstrapInfo{Security: SecurityNone, Account: ServerAccount{URI: "coap://127.0.0.1:5683", Security: SecurityNone}})
	}
	bs := startBootstrap(t, BootstrapConfig{DisableDTLS: true, MaxSessions: 1, SessionTimeout: 500 * time.Millisecond}, st)
	one := newUDPPeer(t, bs.UDPAddr())
	one.send(bsRequest(codes.POST, "/bs", "ep=one"))
	require.Equal(t, codes.Changed, one.recv().Code)
	del := one.recv() // the server's first request; never answered
	require.Equal(t, codes.DELETE, del.Code)
	require.Equal(t, 1, bs.Sessions())

	two := newUDPPeer(t, bs.UDPAddr())
	two.send(bsRequest(codes.POST, "/bs", "ep=two"))
	r := two.recv()
	require.Equal(t, codes.ServiceUnavailable, r.Code, "%s", r.Payload)
	age, ok := optUint(&r, message.MaxAge)
	require.True(t, ok && age > 0, "Max-Age tells when to try again")

	require.Error(t, st.wait(t, "one"), "the unanswered bootstrap fails")
	require.Eventually(t, func() bool { return bs.Sessions() == 0 }, 5*time.Second, 10*time.Millisecond)
	two.send(bsRequest(codes.POST, "/bs", "ep=two"))
	require.Equal(t, codes.Changed, two.recv().Code, "the slot is free again")
}

// TestBootstrapServerSequence plays the device by hand and checks the
// bootstrap server's requests against LwM2M 1.1 Core §6.1.7: Delete /0
// and /1, Discover /0, Write of a Security instance the device does not
// use and of /1/0 in the format the device prefers (pct), then Finish.
func TestBootstrapServerSequence(t *testing.T) {
	st := newBSStore()
	acct := ServerAccount{URI: "coaps://203.0.113.5:5684", Security: SecurityPSK, Identity: "dev", Key: testKey, ShortServerID: 7, Lifetime: time.Hour, Binding: "U"}
	st.set("dev", BootstrapInfo{Security: SecurityNone, Account: acct})
	bs := startBootstrap(t, BootstrapConfig{DisableDTLS: true}, st)
	p := newUDPPeer(t, bs.UDPAddr())
	p.send(bsRequest(codes.POST, "/bs", "ep=dev", "pct=110"))
	require.Equal(t, codes.Changed, p.recv().Code)
	answer := func(req message.Message, code codes.Code, payload string) {
		r := message.Message{Type: message.Acknowledgement, MessageID: req.MessageID, Token: req.Token, Code: code, Payload: []byte(payload)}
		if payload != "" {
			setContentFormat(&r, cfLink)
		}
		p.send(r)
	}
	var got []string
	var writes = map[string][]lwm2m.Record{}
	for range 6 {
		req := p.recv()
		require.Equal(t, message.Confirmable, req.Type)
		got = append(got, methodName(req.Code)+" "+msgPath(&req))
		switch req.Code {
		case codes.DELETE:
			answer(req, codes.Deleted, "")
		case codes.GET:
			require.True(t, acceptsLink(&req), "Bootstrap-Discover asks for link format")
			answer(req, codes.Content, `lwm2m="1.1",</0/0>;uri="coap://bs",</0/1>;uri="coap://other"`)
		case codes.PUT:
			require.Equal(t, lwm2m.FormatSenMLJSON, contentFormat(&req), "the preferred content format")
			path := lwm2m.MustPath(msgPath(&req))
			recs, err := lwm2m.Decode(lwm2m.FormatSenMLJSON, path, req.Payload, lwm2m.NewBuiltinObjects())
			require.NoError(t, err)
			writes[path.String()] = recs
			answer(req, codes.Changed, "")
		case codes.POST:
			answer(req, codes.Changed, "")
		}
	}
	require.Equal(t, []string{"DELETE /0", "DELETE /1", "GET /0", "PUT /0/2", "PUT /1/0", "POST /bs"}, got)
	require.NoError(t, st.wait(t, "dev"))
	vals := map[string]string{}
	for _, recs := range writes {
		for _, r := range recs {
			vals[r.Path.String()] = r.Value.String()
		}
	}
	require.Equal(t, acct.URI, vals["/0/2/0"])
	require.Equal(t, "0", vals["/0/2/1"], "Bootstrap-Server false (text form 0)")
	require.Equal(t, "0", vals["/0/2/2"], "Security Mode PSK")
	require.Equal(t, "7", vals["/0/2/10"])
	require.Equal(t, "7", vals["/1/0/0"])
	require.Equal(t, "3600", vals["/1/0/1"])
	require.Equal(t, "U", vals["/1/0/7"])
}

// TestClientBootstrapStrict checks the client's side of the bootstrap
// against LwM2M 1.1 Core §6.1.7 with requests played by hand.
func TestClientBootstrapStrict(t *testing.T) {
	c, err := NewClient(ClientConfig{Server: "127.0.0.1:5783", Endpoint: "dev"})
	require.NoError(t, err)
	bsInst := lwm2m.MustPath("/0/0")
	st := &bootstrapState{objs: map[lwm2m.Path]map[uint16]lwm2m.Value{bsInst: {0: lwm2m.StringValue("coap://bs"), 1: lwm2m.BoolValue(true)}},
		bsInst: bsInst, finished: make(chan []ServerAccount, 1)}
	do := func(code codes.Code, path string, f lwm2m.Format, payload []byte) *message.Message {
		m := newRequest(code, path)
		if f != NoFormat {
			setContentFormat(m, f)
		}
		m.Payload = payload
		r, after := c.handleBootstrap(st, m)
		if after != nil {
			after()
		}
		return r
	}
	tlv := func(p string, recs ...lwm2m.Record) []byte {
		b, err := lwm2m.AppendTLV(nil, lwm2m.MustPath(p), recs)
		require.NoError(t, err)
		return b
	}
	rec := func(p string, v lwm2m.Value) lwm2m.Record { return lwm2m.Record{Path: lwm2m.MustPath(p), Value: v} }

	require.Equal(t, codes.NotAcceptable, do(codes.POST, "/bs", NoFormat, nil).Code, "Finish without a server account")
	require.Equal(t, codes.BadRequest, do(codes.DELETE, "/0/0", NoFormat, nil).Code, "the Bootstrap-Server Account cannot be deleted")
	require.Equal(t, codes.MethodNotAllowed, do(codes.GET, "/3/0", NoFormat, nil).Code, "a Read during bootstrap")
	require.Equal(t, codes.MethodNotAllowed, do(codes.PUT, "/3/0/1", lwm2m.FormatText, []byte("x")).Code, "a write outside objects 0 and 1")
	require.Equal(t, codes.BadRequest, do(codes.PUT, "/1/0/1", lwm2m.FormatText, []byte("soon")).Code, "a Lifetime that is not an integer")

	sec := tlv("/0/1", rec("/0/1/0", lwm2m.StringValue("coaps://srv:5684")), rec("/0/1/1", lwm2m.BoolValue(false)), rec("/0/1/2", lwm2m.IntValue(0)),
		rec("/0/1/3", lwm2m.OpaqueValue([]byte("dev"))), rec("/0/1/4", lwm2m.OpaqueValue(nil)), rec("/0/1/5", lwm2m.OpaqueValue(testKey)), rec("/0/1/10", lwm2m.IntValue(9)))
	require.Equal(t, codes.Changed, do(codes.PUT, "/0/1", lwm2m.FormatTLV, sec).Code)
	r := do(codes.POST, "/bs", NoFormat, nil)
	require.Equal(t, codes.NotAcceptable, r.Code, "no Server instance with Short Server ID 9")
	require.Contains(t, string(r.Payload), "Short Server ID 9")

	require.Equal(t, codes.Changed, do(codes.PUT, "/1/0", lwm2m.FormatTLV, tlv("/1/0", rec("/1/0/0", lwm2m.IntValue(9)), rec("/1/0/1", lwm2m.IntValue(60)), rec("/1/0/7", lwm2m.StringValue("U")))).Code)
	r = do(codes.POST, "/bs", NoFormat, nil)
	require.Equal(t, codes.NotAcceptable, r.Code, "the Server instance lacks resource 6")
	require.Contains(t, string(r.Payload), "mandatory resource 6")
	require.Equal(t, codes.Changed, do(codes.PUT, "/1/0/6", lwm2m.FormatText, []byte("1")).Code)

	disc := do(codes.GET, "/", NoFormat, nil)
	require.Equal(t, codes.MethodNotAllowed, disc.Code, "a GET without Accept link-format is a Read")
	m := newRequest(codes.GET, "/0")
	addUint(m, message.Accept, uint32(cfLink))
	disc, _ = c.handleBootstrap(st, m)
	require.Equal(t, codes.Content, disc.Code)
	require.Equal(t, `lwm2m="1.1",</0/0>;uri="coap://bs",</0/1>;uri="coaps://srv:5684"`, string(disc.Payload))

	require.Equal(t, codes.Changed, do(codes.POST, "/bs", NoFormat, nil).Code)
	accts := <-st.finished
	require.Equal(t, []ServerAccount{{URI: "coaps://srv:5684", Security: SecurityPSK, Identity: "dev", Key: testKey, ShortServerID: 9, Lifetime: time.Minute, Binding: "U"}}, accts)

	require.Equal(t, codes.Deleted, do(codes.DELETE, "/", NoFormat, nil).Code)
	require.Equal(t, []lwm2m.Path{bsInst}, keysOf(st.objs), "Delete / keeps only the Bootstrap-Server Account")
}

func keysOf(m map[lwm2m.Path]map[uint16]lwm2m.Value) []lwm2m.Path {
	var out []lwm2m.Path
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestServerAccountClientConfig(t *testing.T) {
	base := ClientConfig{Endpoint: "dev", Identity: "old", Key: []byte("old")}
	for _, tc := range []struct {
		a       ServerAccount
		server  string
		key     bool
		queue   bool
		wantErr string
	}{
		{a: ServerAccount{URI: "coaps://h", Security: SecurityPSK, Identity: "dev", Key: testKey, Binding: "UQ"}, server: "h:5684", key: true, queue: true},
		{a: ServerAccount{URI: "coap://h:1", Security: SecurityNone}, server: "h:1"},
		{a: ServerAccount{URI: "coap://h", Security: SecurityPSK, Identity: "dev", Key: testKey}, wantErr: "coaps://"},
		{a: ServerAccount{URI: "coaps://h", Security: SecurityPSK}, wantErr: "identity and a key"},
		{a: ServerAccount{URI: "h:5684", Security: SecurityNone}, wantErr: "want coaps://host:port"},
		{a: ServerAccount{URI: "coap://h", Security: SecurityNone, Binding: "X"}, wantErr: "binding"},
	} {
		cfg, err := tc.a.ClientConfig(base)
		if tc.wantErr != "" {
			require.ErrorContains(t, err, tc.wantErr, "%+v", tc.a)
			continue
		}
		require.NoError(t, err, "%+v", tc.a)
		require.Equal(t, tc.server, cfg.Server)
		require.Equal(t, tc.key, cfg.Key != nil)
		require.Equal(t, tc.queue, cfg.Queue)
	}
}

func TestBootstrapConfigErrors(t *testing.T) {
	_, err := NewBootstrapServer(BootstrapConfig{DisableUDP: true, DisableDTLS: true}, newBSStore())
	require.ErrorIs(t, err, ErrConfig)
	_, err = NewBootstrapServer(BootstrapConfig{}, nil)
	require.ErrorIs(t, err, ErrConfig)
	_, err = NewBootstrapServer(BootstrapConfig{UDPAddr: "nowhere"}, newBSStore())
	require.ErrorIs(t, err, ErrConfig)
}

// FuzzBootstrapWrite feeds Bootstrap-Writes of any content to the client:
// it never panics, and a write it takes leaves only typed values of
// objects 0 and 1.
func FuzzBootstrapWrite(f *testing.F) {
	good, _ := lwm2m.AppendTLV(nil, lwm2m.MustPath("/0/1"), securityRecords(lwm2m.MustPath("/0/1"), ServerAccount{URI: "coaps://h", Security: SecurityPSK, Identity: "d", Key: testKey, ShortServerID: 1}))
	f.Add("/0/1", uint16(lwm2m.FormatTLV), good)
	f.Add("/1/0/1", uint16(lwm2m.FormatText), []byte("60"))
	f.Add("/1", uint16(lwm2m.FormatSenMLJSON), []byte(`[{"bn":"/1/0/","n":"0","v":1}]`))
	f.Add("/0/0/3", uint16(lwm2m.FormatOpaque), []byte{0xff})
	reg := lwm2m.NewBuiltinObjects()
	f.Fuzz(func(t *testing.T, path string, format uint16, payload []byte) {
		p, err := lwm2m.ParsePath(path)
		if err != nil || p.Len() == 0 || p.ID(0) > 1 {
			return
		}
		st := &bootstrapState{objs: map[lwm2m.Path]map[uint16]lwm2m.Value{}, finished: make(chan []ServerAccount, 1)}
		r := st.write(p, lwm2m.Format(format), payload, reg)
		if r.Code != codes.Changed {
			require.Empty(t, st.objs, "a refused write changes nothing")
			return
		}
		for inst, vals := range st.objs {
			for id, v := range vals {
				d, ok := reg.Resource(inst.ID(0), id)
				require.True(t, ok)
				require.Equal(t, d.Type, v.Type(), "%s/%d", inst, id)
			}
		}
		_, _ = st.accounts(reg)
		_ = freeInstance(payload, 0)
	})
}
