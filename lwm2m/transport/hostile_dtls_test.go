package transport

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The hostile suite of the DTLS port (SEC-2, SEC-4): real sockets on
// loopback, bounded in count and time.

func (s *Server) vconns() int {
	s.mux.mu.Lock()
	defer s.mux.mu.Unlock()
	return len(s.mux.byAddr)
}

// SEC-2, RFC 6347 §4.2.1: a ClientHello without a valid cookie gets a
// HelloVerifyRequest with the hello's record number and nothing is kept;
// a cookie is valid only for the address and the hello it answered; the
// second hello with it starts a handshake whose ServerHello has
// message_seq 1 (§4.2.2).
func TestDTLSStatelessCookie(t *testing.T) {
	s, _ := startServer(t, Config{DisableUDP: true}, keys("dev1"))
	p := newDTLSPeer(t, "127.0.0.1", s.DTLSAddr())
	h := testHello{recSeq: 5, random: [32]byte{1, 2, 3}}
	p.send(h.bytes())
	hv := parseHelloVerify(t, p.recv(5*time.Second))
	require.Equal(t, uint64(5), hv.recSeq, "RFC 6347 §4.2.1: the HelloVerifyRequest repeats the ClientHello's record number")
	require.Equal(t, uint16(0), hv.msgSeq, "message_seq of the HelloVerifyRequest")
	require.Equal(t, [2]byte{254, 255}, hv.version, "server_version DTLS 1.0 (RFC 6347 §4.2.1)")
	require.Len(t, hv.cookie, cookieLen)
	require.Zero(t, s.vconns(), "nothing kept for a hello without a cookie")

	// The cookie does not open a connection with another hello, from
	// another address, or altered.
	other := h
	other.random[0] = 9
	other.cookie, other.msgSeq, other.recSeq = hv.cookie, 1, 6
	p.send(other.bytes())
	require.NotNil(t, p.recv(5*time.Second), "another hello with the cookie gets a new HelloVerifyRequest")
	p2 := newDTLSPeer(t, "127.0.0.2", s.DTLSAddr())
	stolen := h
	stolen.cookie, stolen.msgSeq, stolen.recSeq = hv.cookie, 1, 6
	p2.send(stolen.bytes())
	require.NotNil(t, p2.recv(5*time.Second), "the cookie from another address gets a new HelloVerifyRequest")
	bad := stolen
	bad.cookie = append([]byte(nil), hv.cookie...)
	bad.cookie[0] ^= 1
	p.send(bad.bytes())
	require.NotNil(t, p.recv(5*time.Second), "an altered cookie gets a new HelloVerifyRequest")
	require.Zero(t, s.vconns(), "no connection for a cookie that does not match")
	st := s.DTLSStats()
	require.Equal(t, uint64(4), st.CookiesSent)
	require.Zero(t, st.HandshakesStarted)

	// The right one: pion's ServerHello, message_seq 1.
	p.send(stolen.bytes())
	b := p.recv(5 * time.Second)
	require.NotNil(t, b, "the server's flight after the second ClientHello")
	require.Equal(t, byte(ctHandshake), b[0])
	require.Equal(t, byte(2), b[recordHeaderLen], "a ServerHello, not another HelloVerifyRequest: % x", b)
	require.Equal(t, uint16(1), binary.BigEndian.Uint16(b[recordHeaderLen+4:]), "RFC 6347 §4.2.2: ServerHello message_seq 1 after a HelloVerifyRequest")
	require.Equal(t, 1, s.vconns())
	require.Equal(t, uint64(1), s.DTLSStats().HandshakesStarted)
}

// Issue 20.3, RFC 6347 §4.1: a ClientHello with record version {254,0}
// (mbedTLS 2.x) is answered, and the handshake completes. The device is a
// pion client behind a proxy that rewrites the record version of every
// ClientHello it sends.
func TestDTLSRecordVersion254x(t *testing.T) {
	s, rec := startServer(t, Config{DisableUDP: true}, keys("dev1"))
	p := newDTLSPeer(t, "127.0.0.1", s.DTLSAddr())
	p.send(testHello{recVersion: [2]byte{254, 0}}.bytes())
	parseHelloVerify(t, p.recv(5*time.Second))

	px := newVersionProxy(t, s.DTLSAddr().(*net.UDPAddr))
	c := newClient(t, ClientConfig{Server: px.addr().String(), Endpoint: "dev1", Key: testKey})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	rec.wait(t, EventRegistered, "dev1", 1)
	require.GreaterOrEqual(t, px.rewritten.Load(), int32(2), "both ClientHellos went out as {254,0}")
	require.GreaterOrEqual(t, px.verifies.Load(), int32(1), "the {254,0} hello was answered with a HelloVerifyRequest")

	// The network duplicates the second hello after the handshake: the
	// session is not taken for a restarted device's.
	px.replayHello()
	require.NoError(t, c.Update(ctxT(t)), "the session goes on after a duplicated ClientHello")
	require.Equal(t, uint64(1), s.DTLSStats().HandshakesStarted)
}

// versionProxy relays one client to the server, rewriting the record
// version of the client's ClientHellos to {254,0}.
type versionProxy struct {
	front, back         *net.UDPConn
	rewritten, verifies atomic.Int32
	lastHello           atomic.Pointer[[]byte]
}

// replayHello sends the client's last ClientHello to the server again.
func (px *versionProxy) replayHello() {
	if b := px.lastHello.Load(); b != nil {
		_, _ = px.back.Write(*b)
	}
}

func newVersionProxy(t *testing.T, srv *net.UDPAddr) *versionProxy {
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	back, err := net.DialUDP("udp", nil, srv)
	require.NoError(t, err)
	px := &versionProxy{front: front, back: back}
	var wg sync.WaitGroup
	var client atomic.Pointer[net.UDPAddr]
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, a, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(a)
			if isClientHelloRecord(buf[:n]) {
				buf[1], buf[2] = 254, 0
				px.rewritten.Add(1)
				b := append([]byte(nil), buf[:n]...)
				px.lastHello.Store(&b)
			}
			_, _ = back.Write(buf[:n])
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			if n > recordHeaderLen && buf[0] == ctHandshake && buf[recordHeaderLen] == hsHelloVerifyRequest {
				px.verifies.Add(1)
			}
			if a := client.Load(); a != nil {
				_, _ = front.WriteToUDP(buf[:n], a)
			}
		}
	}()
	t.Cleanup(func() { _ = front.Close(); _ = back.Close(); wg.Wait() })
	return px
}

func (px *versionProxy) addr() net.Addr { return px.front.LocalAddr() }

// SEC-4, RFC 4279 §2: a wrong PSK and an unknown identity end the
// handshake at once with a fatal decrypt_error alert — the same for both,
// so nobody learns which identities exist — and the log names the identity
// and the reason.
func TestDTLSWrongKeyAlert(t *testing.T) {
	logs := &logLines{}
	s, _ := startServer(t, Config{DisableUDP: true, Logger: slog.New(logs)}, keys("dev1"))
	for _, tc := range []struct {
		identity string
		key      []byte
		reason   string
	}{
		{"dev1", []byte("wrong-key-123456"), "bad key"},
		{"nobody", testKey, "unknown identity"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			defer pc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			c, err := pionHandshake(ctx, pc, s.DTLSAddr(), tc.identity, tc.key)
			if c != nil {
				_ = c.Close()
			}
			require.Error(t, err, "handshake as %q with a wrong key", tc.identity)
			require.Contains(t, err.Error(), "DecryptError", "the device gets a fatal decrypt_error alert")
			require.Less(t, time.Since(start), 5*time.Second, "the alert comes at once, not after the handshake timeout")
			require.Eventually(t, func() bool {
				return len(logs.matching("DTLS handshake failed", "identity="+tc.identity, "reason="+tc.reason)) == 1
			}, 5*time.Second, 10*time.Millisecond, "log lines: %v", logs.matching("DTLS"))
		})
	}
	st := s.DTLSStats()
	require.Equal(t, uint64(1), st.FailedBadKey)
	require.Equal(t, uint64(1), st.FailedUnknownIdentity)
	require.Zero(t, st.HandshakesInFlight)

	// The control: the same handshake with dev1's key succeeds.
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer pc.Close()
	c, err := pionHandshake(ctxT(t), pc, s.DTLSAddr(), "dev1", testKey)
	require.NoError(t, err, "the handshake with dev1's key")
	_ = c.Close()
}

// SEC-2: at most MaxHandshakes handshakes are in flight; a hello with a
// valid cookie beyond them is dropped and counted, sessions that exist go
// on, and slots of peers that never finish free up at their deadline.
func TestDTLSHandshakeCap(t *testing.T) {
	s, rec := startServer(t, Config{DisableUDP: true, MaxHandshakes: 2, HandshakeTimeout: 2 * time.Second}, keys("dev1", "dev2"))
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "dev1", Key: testKey})
	require.NoError(t, c.Connect(ctxT(t)))
	require.NoError(t, c.Register(ctxT(t)))
	rec.wait(t, EventRegistered, "dev1", 1)

	for i, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		p := newDTLSPeer(t, ip, s.DTLSAddr())
		p.verifiedHello(byte(i + 1))
		require.NotNil(t, p.recv(5*time.Second), "a ServerHello for the stalled peer %s", ip)
	}
	require.Equal(t, 2, s.DTLSStats().HandshakesInFlight)
	third := newDTLSPeer(t, "127.0.0.4", s.DTLSAddr())
	third.verifiedHello(3)
	require.Nil(t, third.recv(300*time.Millisecond), "no answer beyond MaxHandshakes")
	require.Equal(t, uint64(1), s.DTLSStats().HellosDropped)

	require.NoError(t, c.Update(ctxT(t)), "the existing session goes on")
	require.Eventually(t, func() bool { return s.DTLSStats().HandshakesInFlight == 0 }, 5*time.Second, 20*time.Millisecond,
		"stalled handshakes end at their deadline")
	require.Equal(t, uint64(2), s.DTLSStats().FailedTimeout)
	c2 := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "dev2", Key: testKey})
	require.NoError(t, c2.Connect(ctxT(t)), "a new handshake once slots are free")
}

// SEC-2: a flood of ClientHellos from 20,000 source addresses, some
// malformed, holds no connection and no goroutine, logs one line per
// interval, and a device registers during it within 10 s; goroutines and
// heap are back to their baseline after it.
func TestDTLSHelloFlood(t *testing.T) {
	logs := &logLines{}
	s, rec := startServer(t, Config{DisableUDP: true, Logger: slog.New(logs)}, keys("dev1"))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0, g0 := ms.HeapAlloc, runtime.NumGoroutine()

	const sources = 20000
	stop := make(chan struct{})
	var sent atomic.Int64
	var maxConns, maxG atomic.Int64
	var wg, mon sync.WaitGroup
	wg.Add(1)
	mon.Add(1)
	go func() {
		defer wg.Done()
		floodHellos(s.DTLSAddr().(*net.UDPAddr), sources, stop, &sent)
	}()
	go func() {
		defer mon.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			maxConns.Store(max(maxConns.Load(), int64(s.vconns())))
			maxG.Store(max(maxG.Load(), int64(runtime.NumGoroutine())))
		}
	}()
	for sent.Load() < sources/10 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "dev1", Key: testKey})
	err := c.Connect(ctx)
	if err == nil {
		err = c.Register(ctx)
	}
	cancel()
	took := time.Since(start)
	midFlood := sent.Load() < sources
	wg.Wait() // the flood is bounded in count
	close(stop)
	mon.Wait()
	require.NoError(t, err, "a device registers during the flood")
	rec.wait(t, EventRegistered, "dev1", 1)
	t.Logf("registered in %v during a flood of %d ClientHellos (mid-flood: %v)", took, sent.Load(), midFlood)
	require.LessOrEqual(t, maxConns.Load(), int64(1), "no connection but the device's")
	require.Less(t, maxG.Load(), int64(g0+40), "goroutines stay bounded (baseline %d)", g0)

	st := s.DTLSStats()
	require.Greater(t, st.CookiesSent, uint64(sources/4), "the flood was answered statelessly")
	require.Greater(t, st.HellosRefused, uint64(0))
	require.Equal(t, uint64(1), st.HandshakesStarted, "only the device started a handshake")
	require.LessOrEqual(t, len(logs.matching("ClientHello refused")), 2, "refusals aggregated: %v", logs.matching("refused"))

	_ = c.Close()
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= g0+2 }, 10*time.Second, 20*time.Millisecond,
		"goroutines back to the baseline %d", g0)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	require.Less(t, int64(ms.HeapAlloc)-int64(heap0), int64(8<<20), "heap back near its baseline")
}

// floodHellos sends one ClientHello from each of n source addresses
// (127.1.x.y, a new socket each), until stop; every tenth is malformed
// (record version 3.3, TLS).
func floodHellos(srv *net.UDPAddr, n int, stop <-chan struct{}, sent *atomic.Int64) {
	floodHellosFrom(srv, 0, n, stop, sent)
}

// floodHellosFrom sends the hellos of sources first to first+n-1.
func floodHellosFrom(srv *net.UDPAddr, first, n int, stop <-chan struct{}, sent *atomic.Int64) {
	for i := first; i < first+n; i++ {
		select {
		case <-stop:
			return
		default:
		}
		ip := net.IPv4(127, 1+byte(i>>16), byte(i>>8), byte(i))
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
		if err != nil {
			continue
		}
		h := testHello{random: [32]byte{byte(i), byte(i >> 8)}}
		if i%10 == 0 {
			h.recVersion = [2]byte{3, 3}
		}
		_, _ = c.WriteToUDP(h.bytes(), srv)
		_ = c.Close()
		sent.Add(1)
	}
}

// The handshake deadline is shorter once half the slots are taken.
func TestHandshakeTimeout(t *testing.T) {
	for _, tc := range []struct {
		base           time.Duration
		pending, limit int
		want           time.Duration
	}{
		{30 * time.Second, 0, 1024, 30 * time.Second},
		{30 * time.Second, 511, 1024, 30 * time.Second},
		{30 * time.Second, 512, 1024, 7500 * time.Millisecond},
		{2 * time.Second, 1, 2, time.Second},
		{30 * time.Second, 1, 1, 7500 * time.Millisecond},
	} {
		require.Equal(t, tc.want, handshakeTimeout(tc.base, tc.pending, tc.limit), "handshakeTimeout(%v, %d, %d)", tc.base, tc.pending, tc.limit)
	}
}

// Only pion's plaintext HelloVerifyRequest is kept from the device: an
// encrypted record (epoch 1) whose first ciphertext byte happens to be 3
// (a CBC IV) goes out.
func TestVconnKeepsOnlyPionsHelloVerify(t *testing.T) {
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	m := newDTLSMux(uc, 0, 4, 0, newLogAgg(slog.New(slog.DiscardHandler), time.Second))
	defer m.Close()
	peer := newDTLSPeer(t, "127.0.0.1", uc.LocalAddr())
	m.mu.Lock()
	v := m.newVconnLocked(peer.conn.LocalAddr().(*net.UDPAddr), peer.conn.LocalAddr().String())
	m.mu.Unlock()

	hvr := appendHelloVerifyRequest(nil, 0, 0, make([]byte, cookieLen))
	_, err = v.WriteTo(hvr, nil)
	require.NoError(t, err)
	require.Nil(t, peer.recv(200*time.Millisecond), "pion's HelloVerifyRequest stays in the router")

	enc := append([]byte(nil), hvr...)
	enc[4] = 1 // epoch 1: ciphertext that starts with 3
	_, err = v.WriteTo(enc, nil)
	require.NoError(t, err)
	require.Equal(t, enc, peer.recv(5*time.Second), "an encrypted record goes out")
}

// The router reads IPv6 and dual-stack sockets in batches too: a device
// registers over IPv4 to a wildcard listener and over ::1.
func TestDTLSDualStack(t *testing.T) {
	for _, tc := range []struct{ listen, dial string }{{":0", "127.0.0.1"}, {"[::1]:0", "::1"}} {
		t.Run(tc.listen, func(t *testing.T) {
			probe, err := net.ListenPacket("udp6", "[::1]:0")
			if err != nil {
				t.Skip("no IPv6 loopback here; the dual-stack test needs ::1")
			}
			_ = probe.Close()
			s, rec := startServer(t, Config{DisableUDP: true, DTLSAddr: tc.listen}, keys("dev1"))
			_, port, _ := net.SplitHostPort(s.DTLSAddr().String())
			c := newClient(t, ClientConfig{Server: net.JoinHostPort(tc.dial, port), Endpoint: "dev1", Key: testKey})
			require.NoError(t, c.Connect(ctxT(t)))
			require.NoError(t, c.Register(ctxT(t)))
			rec.wait(t, EventRegistered, "dev1", 1)
			require.GreaterOrEqual(t, s.DTLSStats().CookiesSent, uint64(1))
		})
	}
}
