package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/doze-io/doze/internal/lifecycle"
	"github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Server is an LwM2M/TUP server for sleeping devices over CoAP (UDP) and
// CoAP over DTLS 1.2 with PSK. It follows the package's lifecycle (see the
// package doc): New starts nothing, Run binds the sockets (unless Listen
// did) and serves until its context ends or Close is called. All methods
// are safe for concurrent use.
type Server struct {
	cfg  Config
	keys KeyStore
	h    Handler
	log  *slog.Logger

	mu        sync.Mutex
	regs      map[string]*registration // normalized endpoint →
	byID      map[string]*registration // registration id →
	udpPeers  map[string]*session      // remote address → registered plain CoAP peer
	strangers map[string]*session      // remote address → plain CoAP peer without a registration (stranger.go)
	floods    *floodLog
	answers   *answerGate // answers to strangers (reflect.go)
	dl        *downloadGate
	dtlsSess  map[*session]struct{}
	trans     map[string]Transmission // per-device overrides
	forms     downlinkTable           // downlink forms forced and learned per endpoint (downlink.go)
	udp       *net.UDPConn
	dtlsLn    net.Listener
	mux       *dtlsMux
	dtlsOpts  []dtls.Option // the pion options every DTLS connection shares
	listened  bool

	g         lifecycle.Guard
	done      chan struct{} // closed by shutdown: the server is closed
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New returns a Server that authenticates DTLS devices with keys and reports
// events to h (nil discards them). It starts nothing and binds nothing.
func New(cfg Config, keys KeyStore, h Handler) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if keys == nil && !cfg.DisableDTLS {
		return nil, &ConfigError{Field: "keys", Problem: "a KeyStore is required when DTLS is on"}
	}
	if h == nil {
		h = HandlerFunc(func(Event) {})
	}
	return &Server{
		cfg:       cfg,
		keys:      keys,
		h:         h,
		log:       cfg.Logger,
		regs:      make(map[string]*registration),
		byID:      make(map[string]*registration),
		udpPeers:  make(map[string]*session),
		strangers: make(map[string]*session),
		floods:    newFloodLog(cfg.Logger, floodInterval),
		answers:   newAnswerGate(cfg.StrangerAnswerRate),
		dl:        newDownloadGate(cfg.StrangerDownloadRatePerIP, cfg.StrangerDownloadRate),
		dtlsSess:  make(map[*session]struct{}),
		trans:     make(map[string]Transmission),
		forms:     downlinkTable{forced: make(map[string]DownlinkForm), learned: make(map[string]DownlinkForm)},
		done:      make(chan struct{}),
	}, nil
}

// Listen binds the UDP and DTLS sockets of the configuration. Run calls it
// when it has not been called; call it first to learn the bound addresses
// (UDPAddr, DTLSAddr) when a port is 0. The DTLS socket's datagram router
// (one goroutine, see dtlsmux.go) starts here; Close stops it. With
// Config.Registrations, Listen restores the stored registrations and
// parked DTLS sessions (persist.go). After Close it returns ErrClosed.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	if s.g.Closed() {
		return ErrClosed
	}
	if s.listened {
		return nil
	}
	if !s.cfg.DisableUDP {
		a, _ := net.ResolveUDPAddr("udp", s.cfg.UDPAddr)
		c, err := net.ListenUDP("udp", a)
		if err != nil {
			return fmt.Errorf("lwm2m: listening for CoAP on %s: %w", s.cfg.UDPAddr, err)
		}
		s.udp = c
	}
	if !s.cfg.DisableDTLS {
		a, _ := net.ResolveUDPAddr("udp", s.cfg.DTLSAddr)
		// PSK is set per connection (connConfig); pion's cookie round is
		// played by the router after its stateless one (pionhello.go).
		opts := []dtls.Option{
			dtls.WithPSK(func([]byte) ([]byte, error) { return nil, ErrUnknownIdentity }),
			dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		}
		opts = append(opts, suiteOptions(s.cfg.CipherSuites)...)
		if s.cfg.Sessions != nil {
			opts = append(opts, dtls.WithSessionStore(pionSessions{s.cfg.Sessions}))
		}
		if s.cfg.ConnectionIDLength > 0 {
			opts = append(opts, dtls.WithConnectionIDGenerator(dtls.RandomCIDGenerator(s.cfg.ConnectionIDLength)))
		}
		uc, err := net.ListenUDP("udp", a)
		if err != nil {
			if s.udp != nil {
				_ = s.udp.Close()
				s.udp = nil
			}
			return fmt.Errorf("lwm2m: listening for DTLS on %s: %w", s.cfg.DTLSAddr, err)
		}
		if errPionLayout != nil {
			_ = uc.Close()
			if s.udp != nil {
				_ = s.udp.Close()
				s.udp = nil
			}
			return errPionLayout
		}
		mux := newDTLSMux(uc, max(s.cfg.ConnectionIDLength, 0), s.cfg.MaxHandshakes, s.cfg.MaxHandshakesPerIP, newLogAgg(s.log, logAggInterval))
		if s.cfg.SharedRegistrations {
			mux.mu.Lock()
			mux.look = newStoreLookup(s.cfg.StoreLookupsPerSource, s.cfg.StoreLookupsPerSecond) // adopt.go
			mux.mu.Unlock()
		}
		s.mux, s.dtlsOpts = mux, opts
		ln, err := dtls.NewListenerWithOptions(mux, serverOptions(opts)...)
		if err != nil {
			_ = mux.Close()
			if s.udp != nil {
				_ = s.udp.Close()
				s.udp = nil
			}
			return fmt.Errorf("lwm2m: listening for DTLS on %s: %w", s.cfg.DTLSAddr, err)
		}
		s.dtlsLn = ln
	}
	if err := s.restoreLocked(time.Now()); err != nil {
		s.closeSocketsLocked()
		return err
	}
	s.listened = true
	return nil
}

// closeSocketsLocked undoes a Listen that failed after binding.
func (s *Server) closeSocketsLocked() {
	if s.dtlsLn != nil {
		_ = s.dtlsLn.Close()
		s.dtlsLn, s.mux = nil, nil
	}
	if s.udp != nil {
		_ = s.udp.Close()
		s.udp = nil
	}
}

// UDPAddr returns the bound plain CoAP address, or nil before Listen or when
// plain CoAP is off.
func (s *Server) UDPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return nil
	}
	return s.udp.LocalAddr()
}

// DTLSAddr returns the bound DTLS address, or nil before Listen or when DTLS
// is off.
func (s *Server) DTLSAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dtlsLn == nil {
		return nil
	}
	return s.dtlsLn.Addr()
}

// Run binds the sockets (unless Listen did) and serves devices until ctx
// ends or Close is called, then closes the server and returns nil after
// every goroutine it started has stopped. A second Run returns an error
// wrapping ErrClosed; Run after Close returns ErrClosed.
func (s *Server) Run(ctx context.Context) error {
	ctx, err := s.g.Start(ctx, "transport.Server", ErrClosed)
	if err != nil {
		return err
	}
	defer s.g.Finish()
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	udp, ln := s.udp, s.dtlsLn
	s.mu.Unlock()
	if udp != nil {
		s.wg.Add(2)
		go s.readUDP(udp)
		go s.sweepUDP()
	}
	if ln != nil {
		s.wg.Add(2)
		go s.acceptDTLS(ctx)
		go s.resumeLoop()
		if s.mux.look != nil {
			s.wg.Add(lookupWorkers)
			for range lookupWorkers {
				go s.lookupLoop()
			}
		}
	}
	<-ctx.Done()
	s.shutdown()
	return nil
}

// Close stops the server: listeners and sessions are closed, timers
// stopped, waiting requests fail with ErrClosed. It is idempotent, may come
// before Run, and returns after Run and every goroutine the server started
// have.
func (s *Server) Close() error {
	s.g.Stop()
	s.shutdown()
	return nil
}

// shutdown closes what the server holds, once, and waits for its
// goroutines.
func (s *Server) shutdown() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.mu.Lock()
		if s.udp != nil {
			_ = s.udp.Close()
		}
		if s.dtlsLn != nil {
			_ = s.dtlsLn.Close()
		}
		for sess := range s.dtlsSess {
			sess.close()
		}
		for _, sess := range s.udpPeers {
			sess.close()
		}
		for _, sess := range s.strangers {
			sess.close()
		}
		for _, r := range s.regs {
			if r.timer != nil {
				r.timer.Stop()
			}
		}
		s.mu.Unlock()
	})
	s.wg.Wait()
}

// background returns a context that ends when the server closes.
func (s *Server) background() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// async runs f on a goroutine the server owns, with a context that ends at
// Close.
func (s *Server) async(f func(ctx context.Context)) {
	select {
	case <-s.done:
		return
	default:
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := s.background()
		defer cancel()
		f(ctx)
	}()
}

func (s *Server) emit(e Event) { s.h.HandleEvent(e) }

// emitUplink hands an EventUplink, or an EventNotification the server
// acknowledges, to the handler before the device's message is answered;
// an UplinkHandler's error means no answer.
func (s *Server) emitUplink(e Event) error {
	u, ok := s.h.(UplinkHandler)
	if !ok {
		s.h.HandleEvent(e)
		return nil
	}
	err := u.HandleUplink(e)
	if err != nil {
		s.log.Warn("lwm2m: uplink refused by the handler, not acknowledged; the device will send it again",
			"endpoint", e.Endpoint, "path", e.Path, "err", err)
	}
	return err
}

func (s *Server) sessionCount() int { return len(s.udpPeers) + len(s.dtlsSess) }

// session is one device's transport: a DTLS connection or a plain CoAP
// peer address.
type session struct {
	srv      *Server
	ex       *exchange
	secure   bool
	identity string // normalized PSK identity (DTLS)
	udp      *net.UDPConn
	memTx    func([]byte) error // tests: an in-memory transport
	overCap  bool

	mu       sync.Mutex
	conn     net.Conn // DTLS; nil while parked
	vc       *vconn   // the router's view of conn; nil while parked or without the router
	parked   bool     // DTLS state serialized, no goroutine (see park)
	pc       *parkedConn
	addr     net.Addr
	endpoint string // endpoint registered over this session
	lastSeen time.Time
	lim      bucket
	closed   bool
	udpQ     [][]byte // plain CoAP: datagrams waiting for the peer's goroutine
	udpBusy  bool     // plain CoAP: the peer's goroutine is running
	stranger bool     // plain CoAP: no accepted registration yet, not counted (stranger.go)
}

// udpQueueMax bounds the datagrams waiting for one plain-CoAP peer; more
// are dropped, as a full socket buffer would (the peer retransmits).
const udpQueueMax = 64

// deliverUDP hands a plain-CoAP datagram to its peer's goroutine, started
// when there is work and ended when there is none: one peer's datagrams
// are handled in order, and a slow handler (an UplinkHandler's synced
// write) holds up that peer only, not the socket's other peers.
func (s *Server) deliverUDP(sess *session, data []byte) {
	sess.mu.Lock()
	if len(sess.udpQ) >= udpQueueMax {
		sess.mu.Unlock()
		return
	}
	sess.udpQ = append(sess.udpQ, data)
	if sess.udpBusy {
		sess.mu.Unlock()
		return
	}
	sess.udpBusy = true
	sess.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			sess.mu.Lock()
			if len(sess.udpQ) == 0 {
				sess.mu.Unlock()
				if s.doneWithUDP(sess) {
					return
				}
				continue
			}
			d := sess.udpQ[0]
			sess.udpQ = sess.udpQ[1:]
			sess.mu.Unlock()
			sess.ex.receive(d)
		}
	}()
}

func (s *Server) newSession(secure bool) *session {
	sess := &session{srv: s, secure: secure}
	sess.ex = newExchange(sess.write, s.cfg.MaxMessageSize)
	sess.ex.handle = sess.handle
	sess.ex.onNotify = sess.notification
	sess.ex.onDuplicate = func(now time.Time) { s.stillAwake(sess, now) }
	sess.ex.setTransmission(s.cfg.Transmission)
	sess.ex.onMalformed = func(err error) {
		s.floods.note("malformed", "lwm2m: malformed CoAP message", "addr", addrString(sess.remoteAddr()), "err", err)
	}
	if !secure {
		sess.ex.setBlock1Max(s.cfg.MaxMessageSize) // until its registration is accepted (adoptLocked)
		sess.ex.small = sess.isStranger
	}
	return sess
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func (sess *session) write(b []byte) error {
	if sess.memTx != nil {
		return sess.memTx(b)
	}
	sess.mu.Lock()
	conn, parked, a := sess.conn, sess.parked, sess.addr
	sess.mu.Unlock()
	if sess.secure {
		if conn == nil || parked {
			return ErrSleeping // parked: the device is asleep
		}
		_, err := conn.Write(b)
		return err
	}
	if sess.isStranger() && !sess.srv.allowStrangerAnswer(a) {
		return nil // dropped and counted (reflect.go)
	}
	_, err := sess.udp.WriteTo(b, a)
	return err
}

// isStranger reports whether sess is a plain CoAP peer without an
// accepted registration (stranger.go).
func (sess *session) isStranger() bool {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.stranger
}

// allowStrangerAnswer takes a token of the bucket shared by all answers to
// strangers; a refusal is counted and logged in aggregate (reflect.go).
func (s *Server) allowStrangerAnswer(a net.Addr) bool {
	if s.answers.allow() {
		return true
	}
	s.floods.note("answers", "lwm2m: answer to an unregistered peer dropped: StrangerAnswerRate reached",
		"addr", addrString(a), "rate", s.cfg.StrangerAnswerRate)
	return false
}

// StrangerAnswersDropped counts the answers to plain CoAP senders without
// a registration that were dropped because StrangerAnswerRate was reached.
func (s *Server) StrangerAnswersDropped() uint64 { return s.answers.dropped.Load() }

func (sess *session) remoteAddr() net.Addr {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.conn != nil {
		// pion follows the peer to a new address once a record with its
		// Connection ID from there authenticated (RFC 9146 §6); the router
		// moves vc when pion first writes there, after this.
		return sess.conn.RemoteAddr()
	}
	if sess.vc != nil {
		return sess.vc.remote()
	}
	return sess.addr
}

func (sess *session) isClosed() bool {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.closed
}

func (sess *session) close() {
	sess.mu.Lock()
	if sess.closed {
		sess.mu.Unlock()
		return
	}
	sess.closed = true
	conn, pc := sess.conn, sess.pc
	sess.mu.Unlock()
	sess.ex.close()
	if conn != nil {
		_ = conn.Close()
	}
	if pc != nil && sess.srv.mux != nil {
		sess.srv.mux.forget(pc) // a parked session that ended (expired, replaced)
	}
}

func (s *Server) readUDP(c *net.UDPConn) {
	defer s.wg.Done()
	buf := make([]byte, s.cfg.MaxMessageSize+1024)
	for {
		n, addr, err := c.ReadFromUDP(buf)
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		data := append([]byte(nil), buf[:n]...)
		key := addr.String()
		now := time.Now()
		s.mu.Lock()
		sess := s.udpPeers[key]
		if sess != nil {
			sess.lastSeen = now
			s.mu.Unlock()
			s.deliverUDP(sess, data)
			continue
		}
		s.mu.Unlock()
		// A stranger (SEC-2): answered statelessly when possible, else on
		// a short-lived session that is not counted (stranger.go).
		if !s.screenUDP(c, addr, data) {
			continue
		}
		s.mu.Lock()
		if sess = s.udpPeers[key]; sess == nil {
			sess = s.strangerLocked(c, addr, key, now)
		}
		if sess != nil {
			sess.lastSeen = now
			s.deliverUDP(sess, data) // under s.mu: see doneWithUDP
		}
		s.mu.Unlock()
	}
}

// sweepUDP forgets plain CoAP peers without a registration (strangers
// holding a Block1 body) that were silent for IdleTimeout, and writes the
// aggregated log lines of floods.
func (s *Server) sweepUDP() {
	defer s.wg.Done()
	t := time.NewTicker(min(s.cfg.IdleTimeout/2, floodInterval))
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.floods.flush(now)
			var gone []*session
			s.mu.Lock()
			for k, sess := range s.strangers {
				sess.mu.Lock()
				idle := !sess.udpBusy && now.Sub(sess.lastSeen) > s.cfg.IdleTimeout
				sess.mu.Unlock()
				if idle {
					delete(s.strangers, k)
					gone = append(gone, sess)
				}
			}
			for k, sess := range s.udpPeers {
				sess.mu.Lock()
				idle := sess.endpoint == "" && now.Sub(sess.lastSeen) > s.cfg.IdleTimeout
				sess.mu.Unlock()
				if idle {
					delete(s.udpPeers, k)
					gone = append(gone, sess)
				}
			}
			s.mu.Unlock()
			for _, sess := range gone {
				sess.close()
			}
		}
	}
}

// acceptDTLS starts a pion server on each virtual connection the router
// opens for a ClientHello with a valid cookie (pion's listener is used for
// its address and Close only), and logs the aggregated DTLS lines.
func (s *Server) acceptDTLS(ctx context.Context) {
	defer s.wg.Done()
	s.wg.Add(1)
	go s.flushDTLSLog()
	for {
		select {
		case v := <-s.mux.accept:
			s.wg.Add(1)
			go s.serveDTLS(ctx, v)
		case <-s.mux.done:
			return
		case <-s.done:
			return
		}
	}
}

// serveDTLS runs the handshake on v, bounded by the handshake timeout and
// by ctx (Run's), then serves the session.
func (s *Server) serveDTLS(ctx context.Context, v *vconn) {
	defer s.wg.Done()
	dc, err := dtls.ServerWithOptions(v, v.remote(), s.connOptions(v)...)
	if err != nil {
		s.mux.handshakeEnded(v, s.mux.attach(v, nil, nil))
		_ = v.Close()
		s.log.Warn("lwm2m: starting a DTLS handshake", "err", err)
		return
	}
	var c net.Conn = dc
	sess := s.newSession(true)
	sess.conn = c
	sess.vc = v
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		s.mux.handshakeEnded(v, s.mux.attach(v, nil, nil))
		_ = c.Close()
		return
	default:
	}
	sess.overCap = s.sessionCount() >= s.cfg.MaxSessions
	s.dtlsSess[sess] = struct{}{}
	s.mu.Unlock()

	// the others in flight: this handshake counts already
	hctx, hcancel := context.WithTimeout(ctx, handshakeTimeout(s.cfg.HandshakeTimeout, s.mux.inFlight()-1, s.cfg.MaxHandshakes))
	hs := s.mux.attach(v, dc, hcancel)
	err = dc.HandshakeContext(hctx)
	timedOut := errors.Is(hctx.Err(), context.DeadlineExceeded)
	hcancel()
	identity, full, failed := s.mux.handshakeEnded(v, hs)
	if err != nil {
		if failed == failNone && timedOut {
			failed = failTimeout
		}
		s.handshakeFailed(identity, failed, c.RemoteAddr(), err)
		s.endSession(sess)
		return
	}
	if full {
		s.mux.stats.full.Add(1)
	} else {
		s.mux.stats.abbreviated.Add(1)
	}
	st, _ := dc.ConnectionState()
	sess.identity = NormalizeEndpoint(string(st.IdentityHint))
	if !s.serveConn(sess, dc) {
		s.endSession(sess)
	}
}

func (s *Server) endSession(sess *session) {
	s.mu.Lock()
	delete(s.dtlsSess, sess)
	s.mu.Unlock()
	sess.close()
}

// overCapGrace is how long a DTLS session over Config.MaxSessions is kept
// after its first request was refused with 5.03: longer than the first
// retransmission of a device with LWM-9's timing (10–15 s), so a lost
// 5.03 is answered again.
const overCapGrace = 20 * time.Second

// serveConn reads the session's DTLS connection until it ends (false) or
// the session is parked (true).
func (s *Server) serveConn(sess *session, dc *dtls.Conn) (parked bool) {
	buf := make([]byte, s.cfg.MaxMessageSize+1024)
	var overCapUntil time.Time // a session over MaxSessions ends then
	for {
		// A session without a registration ends after IdleTimeout; a
		// sleeping queue-mode device's session is parked.
		sess.mu.Lock()
		ep := sess.endpoint
		sess.mu.Unlock()
		var sleepAt time.Time
		if ep != "" && s.cfg.ParkSessions {
			if r, ok := s.Registration(ep); ok && r.Queue {
				sleepAt = r.AwakeUntil
			}
		}
		switch {
		case !overCapUntil.IsZero():
			_ = dc.SetReadDeadline(overCapUntil)
		case ep == "":
			_ = dc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		case !sleepAt.IsZero():
			// just resumed, the device's record is on its way: a second
			// at least before parking again
			_ = dc.SetReadDeadline(later(sleepAt.Add(time.Millisecond), time.Now().Add(time.Second)))
		default:
			_ = dc.SetReadDeadline(time.Time{})
		}
		n, err := dc.Read(buf)
		if err != nil {
			if isTimeout(err) && ep != "" && !sleepAt.IsZero() {
				if r, ok := s.Registration(ep); ok && !r.Awake(time.Now()) && s.park(sess, dc) {
					return true
				}
				continue
			}
			if sess.isClosed() || errors.Is(err, net.ErrClosed) || isEOF(err) || isTimeout(err) {
				return false
			}
			select {
			case <-s.done:
				return false
			default:
			}
			// a record larger than the buffer, or a transient error
			s.log.Debug("lwm2m: DTLS read", "identity", sess.identity, "err", err)
			continue
		}
		sess.ex.receive(append([]byte(nil), buf[:n]...))
		if sess.overCap && overCapUntil.IsZero() {
			// Refused with 5.03, but kept for overCapGrace: if that answer
			// is lost, the device's retransmission gets it again from the
			// exchange's duplicate cache instead of reaching no session.
			overCapUntil = time.Now().Add(overCapGrace)
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isEOF(err error) bool {
	return err != nil && (err.Error() == "EOF" || errors.Is(err, net.ErrClosed))
}

// handle answers one request from the device (called by the exchange on the
// session's reading goroutine).
func (sess *session) handle(m *message.Message) (*message.Message, func()) {
	s := sess.srv
	now := time.Now()
	if sess.overCap {
		r := &message.Message{Code: codes.ServiceUnavailable, Payload: []byte("session limit reached")}
		addUint(r, message.MaxAge, 60)
		return r, nil
	}
	path := msgPath(m)
	_, download := isFilePath(s.cfg.FilesPath, path)
	download = download && m.Code == codes.GET && s.cfg.Files != nil
	sess.mu.Lock()
	ok, wait := true, time.Duration(0)
	if !download { // block-wise downloads are many small requests by design
		ok, wait = sess.lim.allow(now, s.cfg.RequestRate, s.cfg.RequestBurst)
	}
	sess.mu.Unlock()
	if !ok {
		r := &message.Message{Code: codes.TooManyRequests}
		addUint(r, message.MaxAge, uint32(wait/time.Second)+1)
		return r, nil
	}
	switch {
	case m.Code == codes.POST && path == "/rd":
		return s.register(sess, m, now)
	case m.Code == codes.POST && len(path) > 4 && path[:4] == "/rd/":
		return s.update(sess, m, path[4:], now)
	case m.Code == codes.DELETE && len(path) > 4 && path[:4] == "/rd/":
		return s.deregister(sess, path[4:], now)
	case m.Code == codes.POST && path == "/t/r":
		return s.registerTUP(sess, m, now)
	case m.Code == codes.POST && path == "/dp":
		return s.send(sess, m, now)
	case m.Code == codes.GET && s.cfg.Files != nil:
		if name, ok := isFilePath(s.cfg.FilesPath, path); ok {
			return s.serveFile(sess, m, name), nil
		}
	}
	return s.notServed(m, path), nil
}

// notServed answers a request no case of handle took: 4.05 Method Not
// Allowed for a resource this server has (RFC 7252 §5.9.2.6), 4.04 for
// any other.
func (s *Server) notServed(m *message.Message, path string) *message.Message {
	var allowed string
	_, file := isFilePath(s.cfg.FilesPath, path)
	switch {
	case path == "/rd", path == "/t/r", path == "/dp":
		allowed = "POST"
	case strings.HasPrefix(path, "/rd/"):
		allowed = "POST (update) and DELETE (de-register)"
	case file && s.cfg.Files != nil:
		allowed = "GET"
	default:
		return errResp(codes.NotFound, "no such resource %s; this server serves /rd, /t/r and /dp (no bootstrap: /bs is not served)", path)
	}
	return errResp(codes.MethodNotAllowed, "%s %s: method not allowed; %s takes %s", methodName(m.Code), path, path, allowed)
}

func methodName(c codes.Code) string {
	switch c {
	case codes.GET:
		return "GET"
	case codes.POST:
		return "POST"
	case codes.PUT:
		return "PUT"
	case codes.DELETE:
		return "DELETE"
	}
	return codeString(c)
}

func errResp(c codes.Code, format string, args ...any) *message.Message {
	return &message.Message{Code: c, Payload: fmt.Appendf(nil, format, args...)}
}
