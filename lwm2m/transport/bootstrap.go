package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/doze-io/doze/internal/lifecycle"
	"github.com/doze-io/doze/lwm2m"
	"github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// The bootstrap server (LWM-13; LwM2M 1.1 Core §6.1, Transport §8.2):
// a device that knows only its bootstrap server asks it for its LwM2M
// server account (POST /bs?ep=), and gets it written into its Security (0)
// and Server (1) objects.
//
// It has its own sockets, plain CoAP and DTLS, apart from the Server's,
// and keeps nothing for a peer that has proved nothing (SEC-1, SEC-2):
//
//   - over plain CoAP every datagram from an unknown address is answered
//     from itself alone. A Bootstrap-Request of an endpoint the
//     BootstrapStore does not know is refused with 4.03 Forbidden, one of
//     an endpoint that must use DTLS with 4.01 Unauthorized; only the
//     request of an endpoint configured for plain CoAP (SecurityNone)
//     opens a session.
//   - over DTLS the handshake is the proof: ClientHellos are answered
//     statelessly until one returns a valid cookie (the router of the
//     Server, dtlsmux.go), and the PSK identity is the endpoint name, its
//     key the bootstrap key of the endpoint's BootstrapInfo. A
//     Bootstrap-Request naming another endpoint than the identity, or an
//     endpoint configured for plain CoAP, is refused with 4.03.
//
// Sessions are capped (MaxSessions, 5.03 beyond), and each ends
// SessionTimeout after it began, bootstrapped or not, and as soon as its
// bootstrap has finished or failed. An endpoint has at most one session:
// a new accepted Bootstrap-Request for it ends the older one. Sessions
// over plain CoAP, whose requests anyone can forge, have their own
// smaller cap (MaxPlainSessions) so that they never take the share of
// DTLS devices (SEC-2).

// BootstrapInfo is what the bootstrap server knows of one device.
type BootstrapInfo struct {
	// Security is how the device reaches the bootstrap server:
	// SecurityPSK over DTLS with Key (the PSK identity is the endpoint
	// name), SecurityNone over plain CoAP.
	Security Security
	// Key is the device's bootstrap PSK (SecurityPSK).
	Key Key
	// Account is the LwM2M server account written to the device.
	Account ServerAccount
}

// BootstrapStore gives the bootstrap information of an endpoint (its name
// normalized with NormalizeEndpoint). It returns an error wrapping
// ErrNotFound for an endpoint it does not know, which the device sees as
// 4.03 Forbidden or a failed handshake. It is asked for every
// Bootstrap-Request and DTLS handshake: it must be fast and safe for
// concurrent use.
type BootstrapStore interface {
	BootstrapInfo(endpoint string) (BootstrapInfo, error)
}

// BootstrapReporter is an optional ability of a BootstrapStore: it is told
// how each device's bootstrap ended (err nil: the device accepted
// Bootstrap-Finish).
type BootstrapReporter interface {
	Bootstrapped(endpoint string, err error)
}

// BootstrapConfig configures a BootstrapServer. The zero value serves on
// the conventional ports with the NB-IoT retransmission profile.
type BootstrapConfig struct {
	UDPAddr     string // plain CoAP listen address; "" means ":5783"
	DTLSAddr    string // CoAP over DTLS listen address; "" means ":5784"
	DisableUDP  bool   // true switches plain CoAP off
	DisableDTLS bool   // true switches DTLS off

	// CipherSuites the DTLS listener offers; nil means both suites of LWM-1.
	CipherSuites []CipherSuite
	// HandshakeTimeout bounds one DTLS handshake; 0 means 30s.
	HandshakeTimeout time.Duration
	// MaxHandshakes caps DTLS handshakes in flight; 0 means 256.
	MaxHandshakes int
	// MaxHandshakesPerIP caps the DTLS handshakes in flight from one
	// source IP (IPv6: one /64), as Config.MaxHandshakesPerIP; 0 means 32.
	MaxHandshakesPerIP int
	// MaxSessions caps the devices being bootstrapped at once; a
	// Bootstrap-Request beyond it gets 5.03 Service Unavailable with
	// Max-Age 60. 0 means 1024.
	MaxSessions int
	// MaxPlainSessions caps the sessions opened over plain CoAP, which
	// count toward MaxSessions too: a plain Bootstrap-Request beyond it
	// gets 5.03 with Max-Age 60, and the rest of MaxSessions stays for
	// DTLS devices. 0 means a quarter of MaxSessions (at least 1); more
	// than MaxSessions means MaxSessions.
	MaxPlainSessions int
	// SessionTimeout ends a session this long after it began, whether its
	// bootstrap finished or not; 0 means 5 minutes (enough for each of
	// the six requests to be retransmitted with the NB-IoT profile).
	SessionTimeout time.Duration
	// MaxMessageSize is the largest datagram read; 0 means 1152.
	MaxMessageSize int
	// StrangerAnswerRate caps the answers per second, all together, to
	// plain CoAP senders without a bootstrap session (SEC-2: their address
	// may be forged); beyond it answers are dropped and counted
	// (BootstrapServer.StrangerAnswersDropped). 0 means 1000.
	StrangerAnswerRate float64
	// Transmission is the retransmission profile of the bootstrap
	// requests; the zero value is the NB-IoT profile (10 s, 1.5, 3).
	Transmission Transmission
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

func (c BootstrapConfig) withDefaults() (BootstrapConfig, error) {
	if c.UDPAddr == "" {
		c.UDPAddr = ":5783"
	}
	if c.DTLSAddr == "" {
		c.DTLSAddr = ":5784"
	}
	if c.DisableUDP && c.DisableDTLS {
		return c, &ConfigError{Field: "DisableUDP/DisableDTLS", Problem: "both transports are switched off; keep at least one"}
	}
	for _, a := range []struct {
		field, addr string
		off         bool
	}{{"UDPAddr", c.UDPAddr, c.DisableUDP}, {"DTLSAddr", c.DTLSAddr, c.DisableDTLS}} {
		if _, err := net.ResolveUDPAddr("udp", a.addr); err != nil && !a.off {
			return c, &ConfigError{Field: a.field, Problem: "not a host:port (" + err.Error() + ")"}
		}
	}
	if len(c.CipherSuites) == 0 {
		c.CipherSuites = []CipherSuite{TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CBC_SHA256}
	}
	for _, cs := range c.CipherSuites {
		if cs != TLS_PSK_WITH_AES_128_CCM_8 && cs != TLS_PSK_WITH_AES_128_CBC_SHA256 {
			return c, &ConfigError{Field: "CipherSuites", Problem: "only TLS_PSK_WITH_AES_128_CCM_8 (0xC0A8) and TLS_PSK_WITH_AES_128_CBC_SHA256 (0x00AE) are allowed"}
		}
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 30 * time.Second
	}
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = 256
	}
	if c.MaxHandshakesPerIP <= 0 {
		c.MaxHandshakesPerIP = 32
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 1024
	}
	if c.MaxPlainSessions <= 0 {
		c.MaxPlainSessions = max(1, c.MaxSessions/4)
	}
	c.MaxPlainSessions = min(c.MaxPlainSessions, c.MaxSessions)
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 5 * time.Minute
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 1152
	}
	if c.StrangerAnswerRate <= 0 {
		c.StrangerAnswerRate = 1000
	}
	if c.MaxMessageSize < 64 {
		return c, &ConfigError{Field: "MaxMessageSize", Problem: "at least 64 bytes"}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// BootstrapServer is an LwM2M bootstrap server. It follows the package's
// lifecycle (see the package doc): NewBootstrapServer starts nothing, Run
// binds the sockets (unless Listen did) and serves until its context ends
// or Close is called. All methods are safe for concurrent use.
type BootstrapServer struct {
	cfg   BootstrapConfig
	store BootstrapStore
	log   *slog.Logger

	mu       sync.Mutex
	udp      *net.UDPConn
	mux      *dtlsMux
	dtlsOpts []dtls.Option         // the pion options every DTLS connection shares
	peers    map[string]*bsSession // plain CoAP: remote address →
	byEP     map[string]*bsSession // endpoint → its session (one per endpoint)
	sessions map[*bsSession]struct{}
	listened bool
	answers  *answerGate // answers to senders without a session (reflect.go)

	g         lifecycle.Guard
	done      chan struct{} // closed by shutdown: the server is closed
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// NewBootstrapServer returns a BootstrapServer that takes each device's
// bootstrap information from st. It starts nothing and binds nothing.
func NewBootstrapServer(cfg BootstrapConfig, st BootstrapStore) (*BootstrapServer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, &ConfigError{Field: "store", Problem: "a BootstrapStore is required"}
	}
	return &BootstrapServer{cfg: cfg, store: st, log: cfg.Logger,
		peers: make(map[string]*bsSession), byEP: make(map[string]*bsSession), sessions: make(map[*bsSession]struct{}), done: make(chan struct{}),
		answers: newAnswerGate(cfg.StrangerAnswerRate)}, nil
}

// Listen binds the sockets of the configuration; Run calls it when it has
// not been called. Call it first to learn the bound addresses when a port
// is 0. After Close it returns ErrClosed.
func (b *BootstrapServer) Listen() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.done:
		return ErrClosed
	default:
	}
	if b.g.Closed() {
		return ErrClosed
	}
	if b.listened {
		return nil
	}
	if !b.cfg.DisableUDP {
		a, _ := net.ResolveUDPAddr("udp", b.cfg.UDPAddr)
		c, err := net.ListenUDP("udp", a)
		if err != nil {
			return fmt.Errorf("lwm2m: bootstrap: listening for CoAP on %s: %w", b.cfg.UDPAddr, err)
		}
		b.udp = c
	}
	if !b.cfg.DisableDTLS {
		fail := func(err error) error {
			if b.udp != nil {
				_ = b.udp.Close()
				b.udp = nil
			}
			return err
		}
		if errPionLayout != nil {
			return fail(errPionLayout)
		}
		a, _ := net.ResolveUDPAddr("udp", b.cfg.DTLSAddr)
		uc, err := net.ListenUDP("udp", a)
		if err != nil {
			return fail(fmt.Errorf("lwm2m: bootstrap: listening for DTLS on %s: %w", b.cfg.DTLSAddr, err))
		}
		// no Connection ID: a bootstrap lasts seconds, not a sleep
		b.mux = newDTLSMux(uc, 0, b.cfg.MaxHandshakes, b.cfg.MaxHandshakesPerIP, newLogAgg(b.log, logAggInterval))
		b.dtlsOpts = append([]dtls.Option{dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret)},
			suiteOptions(b.cfg.CipherSuites)...)
	}
	b.listened = true
	return nil
}

// UDPAddr returns the bound plain CoAP address, or nil.
func (b *BootstrapServer) UDPAddr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.udp == nil {
		return nil
	}
	return b.udp.LocalAddr()
}

// DTLSAddr returns the bound DTLS address, or nil.
func (b *BootstrapServer) DTLSAddr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mux == nil {
		return nil
	}
	return b.mux.Addr()
}

// Sessions returns the number of devices being bootstrapped.
func (b *BootstrapServer) Sessions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

// Run binds the sockets (unless Listen did) and serves devices until ctx
// ends or Close is called, then closes the server and returns nil after
// every goroutine it started has stopped. A second Run returns an error
// wrapping ErrClosed; Run after Close returns ErrClosed.
func (b *BootstrapServer) Run(ctx context.Context) error {
	ctx, err := b.g.Start(ctx, "transport.BootstrapServer", ErrClosed)
	if err != nil {
		return err
	}
	defer b.g.Finish()
	if err := b.Listen(); err != nil {
		return err
	}
	b.mu.Lock()
	udp, mux := b.udp, b.mux
	b.mu.Unlock()
	if udp != nil {
		b.wg.Add(1)
		go b.readUDP(ctx, udp)
	}
	if mux != nil {
		b.wg.Add(1)
		go b.acceptDTLS(ctx, mux)
	}
	<-ctx.Done()
	b.shutdown()
	return nil
}

// Close stops the server: sockets and sessions are closed. It is
// idempotent, may come before Run, and returns after Run and every
// goroutine the server started have.
func (b *BootstrapServer) Close() error {
	b.g.Stop()
	b.shutdown()
	return nil
}

// shutdown closes what the server holds, once, and waits for its
// goroutines.
func (b *BootstrapServer) shutdown() {
	b.closeOnce.Do(func() {
		close(b.done)
		b.mu.Lock()
		if b.udp != nil {
			_ = b.udp.Close()
		}
		var ss []*bsSession
		for s := range b.sessions {
			ss = append(ss, s)
		}
		mux := b.mux
		b.mu.Unlock()
		for _, s := range ss {
			s.end()
		}
		if mux != nil {
			_ = mux.Close()
		}
	})
	b.wg.Wait()
}

// bsSession is one device being bootstrapped, on a DTLS connection or a
// plain CoAP address.
type bsSession struct {
	srv      *BootstrapServer
	ex       *exchange
	secure   bool
	identity string // normalized PSK identity (DTLS)
	endpoint string // plain CoAP: the endpoint whose request opened it
	key      string // plain CoAP: the peer's address
	conn     net.Conn
	// ctx is the session's lifetime: it ends at SessionTimeout, when Run's
	// context ends, or at end. It is kept because two goroutines started
	// in different places share it: the one reading the session and the
	// one running the bootstrap steps (start).
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	started bool // Bootstrap-Request accepted
	ended   bool
}

// newSessionLocked makes a counted session that lives at most until ctx
// (Run's) ends, or returns nil when MaxSessions are open. b.mu is held.
func (b *BootstrapServer) newSessionLocked(ctx context.Context, secure bool, tx func([]byte) error) *bsSession {
	if len(b.sessions) >= b.cfg.MaxSessions {
		return nil
	}
	s := &bsSession{srv: b, secure: secure}
	s.ctx, s.cancel = context.WithTimeout(ctx, b.cfg.SessionTimeout)
	s.ex = newExchange(tx, b.cfg.MaxMessageSize)
	s.ex.setTransmission(b.cfg.Transmission)
	s.ex.setBlock1Max(b.cfg.MaxMessageSize)
	s.ex.handle = s.handle
	b.sessions[s] = struct{}{}
	// the session's deadline, or the end of Run, ends it
	context.AfterFunc(s.ctx, s.end)
	return s
}

// end closes the session and forgets it; it may be called more than once.
func (s *bsSession) end() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	s.mu.Unlock()
	b := s.srv
	b.mu.Lock()
	delete(b.sessions, s)
	if s.key != "" && b.peers[s.key] == s {
		delete(b.peers, s.key)
	}
	if s.endpoint != "" && b.byEP[s.endpoint] == s {
		delete(b.byEP, s.endpoint)
	}
	b.mu.Unlock()
	s.cancel()
	s.ex.close()
	if s.conn != nil {
		_ = s.conn.Close()
	}
}

// handle answers a request of the device: only the Bootstrap-Request.
func (s *bsSession) handle(m *message.Message) (*message.Message, func()) {
	path := msgPath(m)
	if path != "/bs" {
		return errResp(codes.NotFound, "no such resource %s; this bootstrap server serves POST /bs?ep=", path), nil
	}
	if m.Code != codes.POST {
		return errResp(codes.MethodNotAllowed, "%s /bs: method not allowed; /bs takes POST", methodName(m.Code)), nil
	}
	ep, info, refusal := s.srv.admit(m, s.secure, s.identity)
	if refusal != nil {
		return refusal, nil
	}
	if !s.secure && ep != s.endpoint {
		return errResp(codes.Forbidden, "bootstrap-request: this address is bootstrapping %q", s.endpoint), nil
	}
	s.mu.Lock()
	again := s.started
	s.started = true
	s.mu.Unlock()
	if again {
		// a new Bootstrap-Request while one runs: acknowledged, not restarted
		return &message.Message{Code: codes.Changed}, nil
	}
	if s.secure {
		s.srv.claim(s, ep)
	}
	f := bootstrapFormat(m)
	return &message.Message{Code: codes.Changed}, func() { s.srv.start(s, ep, info.Account, f) }
}

// claim makes s the session of ep, ending the older session of ep if
// there is one: an endpoint has one session at a time (SEC-2).
func (b *BootstrapServer) claim(s *bsSession, ep string) {
	b.mu.Lock()
	old := b.byEP[ep]
	s.endpoint = ep
	b.byEP[ep] = s
	b.mu.Unlock()
	if old != nil && old != s {
		old.end()
	}
}

// admit checks a Bootstrap-Request before anything is kept for it (SEC-1):
// it returns the normalized endpoint and its information, or the answer
// refusing it. identity is the session's PSK identity over DTLS.
func (b *BootstrapServer) admit(m *message.Message, secure bool, identity string) (string, BootstrapInfo, *message.Message) {
	var ep string
	for _, q := range msgQueries(m) {
		if v, ok := cutQuery(q, "ep"); ok {
			ep = v
		}
	}
	if ep == "" {
		return "", BootstrapInfo{}, errResp(codes.BadRequest, "bootstrap-request: the endpoint name is missing; send POST /bs?ep=<endpoint>")
	}
	ep = NormalizeEndpoint(ep)
	if secure && ep != identity {
		return ep, BootstrapInfo{}, errResp(codes.Forbidden, "bootstrap-request: endpoint %q does not match the PSK identity %q", ep, identity)
	}
	info, err := b.store.BootstrapInfo(ep)
	switch {
	case errors.Is(err, ErrNotFound):
		return ep, info, errResp(codes.Forbidden, "bootstrap-request: endpoint %q has no bootstrap configuration", ep)
	case err != nil:
		b.log.Warn("lwm2m: bootstrap store failed", "endpoint", ep, "err", err)
		r := errResp(codes.ServiceUnavailable, "bootstrap-request: the bootstrap configuration cannot be read now")
		addUint(r, message.MaxAge, 60)
		return ep, info, r
	case !secure && info.Security == SecurityPSK:
		return ep, info, errResp(codes.Unauthorized, "bootstrap-request: endpoint %q must connect over DTLS with its bootstrap key", ep)
	case secure && info.Security != SecurityPSK, !secure && info.Security != SecurityNone:
		return ep, info, errResp(codes.Forbidden, "bootstrap-request: endpoint %q may not bootstrap over this transport", ep)
	}
	if err := info.Account.check(); err != nil {
		b.log.Warn("lwm2m: bootstrap configuration unusable", "endpoint", ep, "err", err)
		return ep, info, errResp(codes.InternalServerError, "bootstrap-request: the bootstrap configuration of %q is unusable: %v", ep, err)
	}
	return ep, info, nil
}

func cutQuery(q, name string) (string, bool) {
	if len(q) > len(name) && q[:len(name)] == name && q[len(name)] == '=' {
		return q[len(name)+1:], true
	}
	return "", false
}

// start runs the bootstrap of the session's device on a goroutine the
// server owns; the session ends with it.
func (b *BootstrapServer) start(s *bsSession, ep string, a ServerAccount, f lwm2m.Format) {
	select {
	case <-b.done:
		return
	default:
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer s.end()
		err := bootstrapSteps(s.ctx, s.ex, a.withDefaults(), f)
		if err != nil {
			b.log.Info("lwm2m: bootstrap failed", "endpoint", ep, "err", err)
		} else {
			b.log.Info("lwm2m: device bootstrapped", "endpoint", ep, "server", a.URI)
		}
		if r, ok := b.store.(BootstrapReporter); ok {
			r.Bootstrapped(ep, err)
		}
	}()
}

// readUDP reads the plain CoAP socket. A datagram of a peer with a session
// goes to it; any other is answered from itself (stateless), and only an
// admitted Bootstrap-Request opens a session.
func (b *BootstrapServer) readUDP(ctx context.Context, c *net.UDPConn) {
	defer b.wg.Done()
	buf := make([]byte, b.cfg.MaxMessageSize+1)
	for {
		n, addr, err := c.ReadFromUDP(buf)
		if err != nil {
			select {
			case <-b.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n > b.cfg.MaxMessageSize {
			continue // larger than any bootstrap message: dropped
		}
		data := append([]byte(nil), buf[:n]...)
		key := addr.String()
		b.mu.Lock()
		s := b.peers[key]
		b.mu.Unlock()
		if s == nil {
			s = b.stranger(ctx, c, addr, data)
		}
		if s != nil {
			s.ex.receive(data)
		}
	}
}

// stranger answers a datagram from an address without a session, keeping
// nothing, unless it is an admitted Bootstrap-Request: then it returns the
// new session, which the datagram is given to.
func (b *BootstrapServer) stranger(ctx context.Context, c *net.UDPConn, addr *net.UDPAddr, data []byte) *bsSession {
	h, ok, err := checkFormat(data)
	if !ok || h.version != 1 {
		return nil
	}
	var m message.Message
	if err == nil {
		m, err = decodeMsg(data)
	}
	switch {
	case err != nil, h.code == codes.Empty:
		if h.typ == message.Confirmable && b.answers.allow() {
			_, _ = c.WriteToUDP(resetFor(h.mid), addr) // malformed, or a CoAP ping
		}
		return nil
	case h.typ == message.Acknowledgement || h.typ == message.Reset:
		return nil
	case !isRequest(m.Code):
		// A response (or a reserved code) with no exchange to belong to:
		// a confirmable one is rejected (RFC 7252 §4.2), others ignored.
		if h.typ == message.Confirmable && b.answers.allow() {
			_, _ = c.WriteToUDP(resetFor(h.mid), addr)
		}
		return nil
	}
	reply := func(r *message.Message) {
		r.Token = m.Token
		r.MessageID = m.MessageID
		r.Type = message.Acknowledgement
		if m.Type != message.Confirmable {
			r.Type = message.NonConfirmable
			var mid [2]byte
			_, _ = rand.Read(mid[:])
			r.MessageID = int32(mid[0])<<8 | int32(mid[1])
		}
		// no larger than the request, and within StrangerAnswerRate (SEC-2)
		fitAnswer(r, len(data))
		if !b.answers.allow() {
			return
		}
		if out, err := encodeMsg(*r); err == nil {
			_, _ = c.WriteToUDP(out, addr)
		}
	}
	path := msgPath(&m)
	switch {
	case path != "/bs":
		reply(errResp(codes.NotFound, "no such resource %s; this bootstrap server serves POST /bs?ep=", path))
		return nil
	case m.Code != codes.POST:
		reply(errResp(codes.MethodNotAllowed, "%s /bs: method not allowed; /bs takes POST", methodName(m.Code)))
		return nil
	}
	ep, _, refusal := b.admit(&m, false, "")
	if refusal != nil {
		reply(refusal)
		return nil
	}
	key := addr.String()
	b.mu.Lock()
	if s := b.peers[key]; s != nil {
		b.mu.Unlock()
		return s
	}
	old := b.byEP[ep]
	b.mu.Unlock()
	if old != nil {
		// one session per endpoint (SEC-2): the newer request wins, so a
		// device that lost its session (a new address behind a NAT) is not
		// locked out, and a forged request holds at most this one session
		old.end()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var s *bsSession
	if len(b.peers) < b.cfg.MaxPlainSessions {
		s = b.newSessionLocked(ctx, false, func(p []byte) error { _, err := c.WriteToUDP(p, addr); return err })
	}
	if s == nil {
		r := errResp(codes.ServiceUnavailable, "bootstrap-request: %d devices are being bootstrapped; try again later", len(b.sessions))
		addUint(r, message.MaxAge, 60)
		reply(r)
		return nil
	}
	s.endpoint, s.key = ep, key
	b.peers[key] = s
	b.byEP[ep] = s
	return s
}

// StrangerAnswersDropped counts the answers to plain CoAP senders without
// a bootstrap session that were dropped because StrangerAnswerRate was
// reached.
func (b *BootstrapServer) StrangerAnswersDropped() uint64 { return b.answers.dropped.Load() }

// acceptDTLS starts a handshake on each virtual connection the router
// opens for a ClientHello with a valid cookie.
func (b *BootstrapServer) acceptDTLS(ctx context.Context, mux *dtlsMux) {
	defer b.wg.Done()
	for {
		select {
		case v := <-mux.accept:
			b.wg.Add(1)
			go b.serveDTLS(ctx, mux, v)
		case <-mux.done:
			return
		case <-b.done:
			return
		}
	}
}

// serveDTLS runs the handshake on v (the device proves its bootstrap key)
// and then reads the session until it ends. ctx is Run's: its end stops
// the handshake.
func (b *BootstrapServer) serveDTLS(ctx context.Context, mux *dtlsMux, v *vconn) {
	defer b.wg.Done()
	psk := func(id []byte) ([]byte, error) {
		identity := NormalizeEndpoint(string(id))
		info, err := b.store.BootstrapInfo(identity)
		if err != nil && !errors.Is(err, ErrNotFound) {
			b.log.Warn("lwm2m: bootstrap store failed during a DTLS handshake", "identity", identity, "err", err)
			return nil, err
		}
		if err != nil || info.Security != SecurityPSK || len(info.Key) == 0 {
			// as if the key were wrong (RFC 4279 §2): the same alert either way
			mux.keyLookup(v, identity, true)
			return randomKey(), nil
		}
		mux.keyLookup(v, identity, false)
		return info.Key, nil
	}
	dc, err := dtls.ServerWithOptions(v, v.remote(),
		serverOptions(b.dtlsOpts, dtls.WithPSK(psk), dtls.WithLoggerFactory(connLoggers{v}))...)
	if err != nil {
		mux.handshakeEnded(v, mux.attach(v, nil, nil))
		_ = v.Close()
		return
	}
	hctx, hcancel := context.WithTimeout(ctx, handshakeTimeout(b.cfg.HandshakeTimeout, mux.inFlight()-1, b.cfg.MaxHandshakes))
	hs := mux.attach(v, dc, hcancel)
	err = dc.HandshakeContext(hctx)
	hcancel()
	identity, _, failed := mux.handshakeEnded(v, hs)
	if err != nil {
		mux.agg.info(time.Now(), "lwm2m: bootstrap DTLS handshake failed: "+failed.kind(),
			"identity", identity, "reason", failed.String(), "addr", v.remote(), "err", err)
		_ = dc.Close()
		return
	}
	b.mu.Lock()
	select {
	case <-b.done:
		b.mu.Unlock()
		_ = dc.Close()
		return
	default:
	}
	s := b.newSessionLocked(ctx, true, func(p []byte) error { _, err := dc.Write(p); return err })
	b.mu.Unlock()
	if s == nil {
		b.refuseOverCap(dc)
		return
	}
	st, _ := dc.ConnectionState()
	s.identity = NormalizeEndpoint(string(st.IdentityHint))
	s.conn = dc
	defer s.end()
	buf := make([]byte, b.cfg.MaxMessageSize+64)
	dl, _ := s.ctx.Deadline()
	_ = dc.SetReadDeadline(dl)
	for {
		n, err := dc.Read(buf)
		if err != nil {
			if isTimeout(err) || isEOF(err) || errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			continue
		}
		s.ex.receive(append([]byte(nil), buf[:n]...))
	}
}

// refuseOverCap answers the first request on a DTLS connection beyond
// MaxSessions with 5.03 Service Unavailable and Max-Age 60, then closes
// it.
func (b *BootstrapServer) refuseOverCap(dc *dtls.Conn) {
	r := errResp(codes.ServiceUnavailable, "bootstrap-request: %d devices are being bootstrapped; try again later", b.cfg.MaxSessions)
	addUint(r, message.MaxAge, 60)
	ex := newExchange(func(p []byte) error { _, err := dc.Write(p); return err }, b.cfg.MaxMessageSize)
	ex.handle = func(*message.Message) (*message.Message, func()) { return r, nil }
	buf := make([]byte, b.cfg.MaxMessageSize+64)
	_ = dc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := dc.Read(buf); err == nil {
		ex.receive(buf[:n])
	}
	ex.close()
	_ = dc.Close()
}
