package transport

import (
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/stretchr/testify/require"
)

// LWM-10: with a DTLS Connection ID the session survives a NAT rebinding:
// the device sends from a new port without a new handshake, the update is
// accepted and the registration moves to the new address.
func TestConnectionIDRebinding(t *testing.T) {
	const ep = "868333030000003"
	s, rec := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	c.Handle("/3/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: []byte("ok")}, nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	before := c.LocalAddr().String()
	reg, _ := s.Registration(ep)
	require.Equal(t, before, reg.Addr.String())

	require.NoError(t, c.Rebind())
	after := c.LocalAddr().String()
	require.NotEqual(t, before, after)
	require.NoError(t, c.Update(ctxT(t)), "update over the same DTLS session from a new port")
	rec.wait(t, EventUpdated, ep, 1)
	reg, _ = s.Registration(ep)
	require.Equal(t, after, reg.Addr.String(), "the registration moved to the new address")
	got, err := s.Read(ctxT(t), ep, "/3/0/0", cfNone)
	require.NoError(t, err, "server reaches the device at its new address")
	require.Equal(t, "ok", string(got.Payload))
	s.mu.Lock()
	n := len(s.dtlsSess)
	s.mu.Unlock()
	require.Equal(t, 1, n, "no second DTLS session: no new handshake")
}

// LWM-10: without a Connection ID, a device that comes back with a new
// handshake from a new address moves its registration with an update.
func TestUpdateFromNewSessionMovesRegistration(t *testing.T) {
	const ep = "868333030000004"
	s, rec := startServer(t, Config{}, keys(ep))
	c1 := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey, NoConnectionID: true})
	require.NoError(t, c1.Connect(ctxT(t)))
	require.NoError(t, c1.Register(ctxT(t)))
	loc := c1.Location()

	c2 := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey, NoConnectionID: true})
	c2.Handle("/3/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: []byte("c2")}, nil }})
	require.NoError(t, c2.Connect(ctxT(t)))
	c2.mu.Lock()
	c2.location = loc // the device remembers its location across the new handshake
	c2.mu.Unlock()
	require.NoError(t, c2.Update(ctxT(t)))
	rec.wait(t, EventUpdated, ep, 1)
	reg, _ := s.Registration(ep)
	require.Equal(t, c2.LocalAddr().String(), reg.Addr.String())
	got, err := s.Read(ctxT(t), ep, "/3/0/0", cfNone)
	require.NoError(t, err)
	require.Equal(t, "c2", string(got.Payload), "requests go to the new session")
}

// LWM-1: a device with another PSK identity may not update or de-register
// someone else's registration.
func TestUpdateByOtherIdentityForbidden(t *testing.T) {
	const ep = "868333030000006"
	s, _ := startServer(t, Config{}, keys(ep, "intruder"))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	bad := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "intruder", Key: testKey})
	require.NoError(t, bad.Connect(ctxT(t)))
	bad.mu.Lock()
	bad.location = c.Location()
	bad.mu.Unlock()
	var re *ResponseError
	require.ErrorAs(t, bad.Update(ctxT(t)), &re)
	require.Equal(t, CodeForbidden, re.Code)
	require.ErrorAs(t, bad.Deregister(ctxT(t)), &re)
	require.Equal(t, CodeForbidden, re.Code)
	_, ok := s.Registration(ep)
	require.True(t, ok)
}

// LWM-9: observations survive a server restart through the
// ObservationStore: a notification on the old token reaching a new server
// is understood as uplink data of the right device.
func TestObservationsSurviveRestart(t *testing.T) {
	store := NewMemoryObservationStore()
	const ep = "868333030000005"
	ks := keys(ep)
	s1, _ := startServer(t, Config{Observations: store}, ks)
	c := newClient(t, ClientConfig{Server: s1.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	c.Handle("/19/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfOpaque}, nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	waitFor(t, "observe of /19/0/0", func() bool { return c.Observed("/19/0/0") })
	// The device records the observer before its answer reaches the server;
	// closing the server before that answer fails the observe, which then
	// forgets its token. Wait for the server's side of the exchange.
	waitFor(t, "the server's observe to complete", func() bool { return s1.callsInFlight(ep) == 0 })
	obs, err := store.Observations(ep)
	require.NoError(t, err)
	require.Len(t, obs, 1)
	addr := s1.DTLSAddr().String()
	require.NoError(t, s1.Close())

	// A new server on the same port with the same store.
	// (no plain CoAP socket: its ephemeral port could be the one just freed)
	s2, rec2 := startServer(t, Config{Observations: store, DTLSAddr: addr, DisableUDP: true}, ks)
	// The device notices the lost session and reconnects (new handshake),
	// keeping its observer list.
	c.mu.Lock()
	observers := c.observers
	c.mu.Unlock()
	require.NoError(t, c.Close())
	c2 := newClient(t, ClientConfig{Server: s2.DTLSAddr().String(), Endpoint: ep, Key: testKey,
		ConfirmableNotifications: true, Transmission: Transmission{AckTimeout: time.Second}})
	require.NoError(t, c2.Connect(ctxT(t)))
	c2.mu.Lock()
	c2.observers = observers
	c2.mu.Unlock()
	require.NoError(t, c2.Notify(ctxT(t), "/19/0/0", Content{Format: cfOpaque, Payload: []byte("after restart")}))
	e := rec2.wait(t, EventUplink, ep, 1)
	require.Equal(t, "after restart", string(e.Payload))
	require.Equal(t, "/19/0/0", e.Path)
}

// callsInFlight returns how many requests of the server to ep await an
// answer.
func (s *Server) callsInFlight(ep string) int {
	var sess *session
	s.mu.Lock()
	if r := s.regs[NormalizeEndpoint(ep)]; r != nil {
		sess = r.sess
	}
	s.mu.Unlock()
	if sess == nil {
		return 0
	}
	sess.ex.mu.Lock()
	defer sess.ex.mu.Unlock()
	return len(sess.ex.calls)
}

func (s *Server) sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionCount()
}

// Limits: DTLS sessions without a registration end after IdleTimeout (a
// plain CoAP peer without one holds no session at all), so that silent
// peers cannot pile up; a registered session
// outlives it; a de-registration ends the device's session.
//
// IdleTimeout is 1 s: long enough for a loaded CI machine to get from a
// handshake to the next request, short enough to wait for. No sleeps: a
// registered session is shown to outlive IdleTimeout by an unregistered one
// that started after it ending first.
func TestIdleAndDeregisteredSessionsEnd(t *testing.T) {
	s, _ := startServer(t, Config{IdleTimeout: time.Second}, keys("idle", "dev", "late"))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "idle", Key: testKey})
	require.NoError(t, c.Connect(ctxT(t)))
	p := newRawPeer(t, s.UDPAddr())
	r := p.roundTrip(p.request(codes.GET, "/x", nil, cfNone, nil))
	require.Equal(t, codes.NotFound, r.Code)
	require.Equal(t, 1, s.sessions(), "the DTLS session; the unregistered plain CoAP peer holds none (SEC-2)")
	waitFor(t, "idle sessions to end", func() bool { return s.sessions() == 0 })

	d := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "dev", Key: testKey})
	d.Handle("/3/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: []byte("up")}, nil }})
	require.NoError(t, d.Connect(ctxT(t)))
	require.NoError(t, d.Register(ctxT(t)))
	late := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "late", Key: testKey})
	require.NoError(t, late.Connect(ctxT(t)))
	require.Equal(t, 2, s.sessions())
	waitFor(t, "one session to end", func() bool { return s.sessions() == 1 })
	got, err := s.Read(ctxT(t), "dev", "/3/0/0", cfNone)
	require.NoError(t, err, "the registered session, older than the one that ended, is still up")
	require.Equal(t, "up", string(got.Payload))
	require.NoError(t, d.Deregister(ctxT(t)))
	waitFor(t, "the de-registered session to end", func() bool { return s.sessions() == 0 })
}

// LWM-10: a device that restarts without closing its session (no
// close_notify) and handshakes again from the same address gets a new
// session and registers; the old session ends.
func TestRehandshakeFromSameAddressAfterCrash(t *testing.T) {
	const ep = "868333030000040"
	s, rec := startServer(t, Config{HandshakeTimeout: 5e9}, keys(ep))
	c1 := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	require.NoError(t, c1.Connect(ctxT(t)))
	require.NoError(t, c1.Register(ctxT(t)))
	local := c1.LocalAddr().String()
	c1.pc.markClosed() // crash: the socket goes away without close_notify
	_ = c1.pc.Close()
	c1.ex.close()
	c2 := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey, LocalAddr: local, HandshakeTimeout: 8e9})
	require.NoError(t, c2.Connect(ctxT(t)), "new handshake from the same address")
	require.NoError(t, c2.Register(ctxT(t)))
	e := rec.wait(t, EventDeregistered, ep, 1)
	require.Equal(t, ReasonReplaced, e.Reason)
	rec.wait(t, EventRegistered, ep, 2)
	waitFor(t, "the old session to end", func() bool { return s.sessions() == 1 })
}

// LWM-10, RFC 9146 §6: a datagram that carries a device's Connection ID
// but does not authenticate (anyone can copy a Connection ID off the air)
// moves nothing: the server keeps reaching the device at its address.
func TestForgedConnectionIDRecordDoesNotMoveSession(t *testing.T) {
	const ep = "868333030000007"
	s, _ := startServer(t, Config{}, keys(ep))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: ep, Key: testKey})
	c.Handle("/3/0/0", Resource{Read: func() (Content, error) { return Content{Format: cfText, Payload: []byte("ok")}, nil }})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	addr := c.LocalAddr().String()

	s.mux.mu.Lock()
	var cid string
	for k, v := range s.mux.byCID {
		if v.addrKey == addr {
			cid = k
		}
	}
	s.mux.mu.Unlock()
	require.NotEmpty(t, cid, "the device's records carry the server's Connection ID")

	// A forged record: content type tls12_cid, epoch 1, a high sequence
	// number, the device's Connection ID, 24 bytes that do not decrypt.
	forged := []byte{ctCID, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0xFF, 0xFF}
	forged = append(forged, cid...)
	forged = append(forged, 0, 24)
	forged = append(forged, make([]byte, 24)...)
	attacker, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer attacker.Close()
	for range 3 {
		_, err = attacker.WriteTo(forged, s.DTLSAddr())
		require.NoError(t, err)
	}
	// A barrier: the router reads the socket in order, so once a
	// ClientHello sent after the forged records is answered (with a
	// HelloVerifyRequest), the router has routed them.
	probe, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer probe.Close()
	hello := []byte{ctHandshake, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 54, // record header
		hsClientHello, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 42, // handshake header
		0xFE, 0xFD} // client_version
	hello = append(hello, make([]byte, 32)...)          // random
	hello = append(hello, 0, 0, 0, 2, 0xC0, 0xA8, 1, 0) // session_id, cookie, cipher suites, compression
	_, err = probe.WriteTo(hello, s.DTLSAddr())
	require.NoError(t, err)
	_ = probe.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := probe.ReadFrom(make([]byte, 2048))
	require.NoError(t, err, "the probe's ClientHello is answered")
	require.Positive(t, n)

	s.SetTransmission(ep, Transmission{AckTimeout: time.Second, RandomFactor: 1, MaxRetransmit: 1})
	got, err := s.Read(ctxT(t), ep, "/3/0/0", cfNone)
	require.NoError(t, err, "the server still reaches the device at its own address")
	require.Equal(t, "ok", string(got.Payload))
	reg, _ := s.Registration(ep)
	require.Equal(t, addr, reg.Addr.String())
	_ = attacker.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	n, _, _ = attacker.ReadFrom(make([]byte, 2048))
	require.Zero(t, n, "nothing is sent to the forger's address")
}
