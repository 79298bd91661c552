package transport

import (
	"net"

	"github.com/pion/dtls/v3"
)

// Session parking: a queue-mode device that has gone to sleep does not need
// a live DTLS connection (a pion/dtls connection holds about 40 KB and 4
// goroutines). Its connection state is serialized (pion's State
// MarshalBinary: keys, epochs, sequence numbers, Connection IDs), the
// connection is closed without a close_notify, and the router keeps the
// state under the device's Connection ID and address. The device's next
// record (from any address when it uses a Connection ID) resumes the
// connection from the state (dtls.ResumeWithOptions) without a handshake, and the
// session — registration, observations, exchange state — carries on.
// Nothing is ever sent on a parked session: requests to a sleeping device
// fail with ErrSleeping before they reach it, and requests still waiting
// for the device's answer when its session parks end with ErrSleeping then.

// parkedConn is a parked session as the router keeps it.
type parkedConn struct {
	sess    *session
	state   []byte
	cid     string
	addrKey string
	addr    *net.UDPAddr // the last authenticated address
}

// resumeItem asks the server to resume a parked session on v.
type resumeItem struct {
	v *vconn
	p *parkedConn
}

// park serializes dc's state and ends its goroutine; it reports false when
// the session cannot be parked (then it keeps running).
func (s *Server) park(sess *session, dc *dtls.Conn) bool {
	m := s.mux
	if m == nil {
		return false
	}
	v := m.find(dc.RemoteAddr())
	if v == nil {
		return false
	}
	m.silence(v) // from here on nothing the connection writes leaves
	st, ok := dc.ConnectionState()
	if !ok {
		m.unsilence(v)
		return false
	}
	b, err := st.MarshalBinary()
	if err != nil {
		m.unsilence(v)
		return false
	}
	pc := &parkedConn{sess: sess, state: b}
	// Written before the router knows it as parked, so that the state a
	// resume writes (resumeParked) always comes after this one (LWM-14).
	sess.mu.Lock()
	ep := sess.endpoint
	sess.mu.Unlock()
	if err := s.saveParked(ep, m.cidOf(v), dc.RemoteAddr(), b); err != nil {
		s.log.Warn("lwm2m: storing a parked DTLS session; it will not survive a restart", "endpoint", ep, "err", err)
	}
	sess.mu.Lock()
	if sess.closed {
		sess.mu.Unlock()
		m.unsilence(v)
		return false
	}
	sess.parked = true
	sess.addr = dc.RemoteAddr()
	sess.conn, sess.vc = nil, nil
	sess.pc = pc
	sess.mu.Unlock()
	m.park(v, pc)
	// What still waits for the device's answer gets ErrSleeping now rather
	// than at its next retransmission: the device is asleep.
	sess.ex.failPending(ErrSleeping)
	if sess.isClosed() { // ended while parking: nothing to resume
		m.forget(pc)
		s.endSession(sess)
	}
	_ = dc.Close() // its close_notify is dropped: the device keeps its session
	return true
}

// resumeLoop resumes parked sessions the router hands over, each on its
// own goroutine (resumeParked may wait for a durable write).
func (s *Server) resumeLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case it := <-s.mux.resume:
			s.wg.Add(1)
			go s.resumeParked(it)
		}
	}
}

// resumeParked resumes the parked session of it. With
// Config.Registrations, the state is stored first with its write sequence
// numbers reserved (reserveState): a crash while the device is awake then
// leaves a state the next server can resume from without reusing one.
func (s *Server) resumeParked(it resumeItem) {
	defer s.wg.Done()
	var st dtls.State
	if err := st.UnmarshalBinary(it.p.state); err != nil {
		s.log.Warn("lwm2m: resuming a parked session", "err", err)
		_ = it.v.Close()
		return
	}
	sess := it.p.sess
	sess.mu.Lock()
	ep := sess.endpoint
	sess.mu.Unlock()
	if s.takeBack(it, ep) {
		return // another server used the session since: taken over from the store (adopt.go)
	}
	if s.cfg.Registrations != nil {
		ahead, err := reserveState(it.p.state, seqReserve)
		if err == nil {
			err = s.saveParked(ep, it.p.cid, it.p.addr, ahead)
		}
		if err != nil {
			// Not resumed rather than resumed from a state a crash
			// could make the server reuse; the device handshakes again.
			s.log.Warn("lwm2m: storing a resumed DTLS session; not resumed", "endpoint", ep, "err", err)
			_ = it.v.Close()
			return
		}
	}
	conn, err := dtls.ResumeWithOptions(&st, it.v, it.v.remote(), s.dtlsOpts...)
	if err != nil {
		s.log.Warn("lwm2m: resuming a parked session", "err", err)
		_ = it.v.Close()
		return
	}
	s.log.Debug("lwm2m: resumed a parked session", "identity", sess.identity, "addr", it.v.remote())
	sess.mu.Lock()
	closed := sess.closed
	sess.conn, sess.vc = conn, it.v
	sess.parked = false
	sess.pc = nil
	sess.mu.Unlock()
	if closed {
		_ = conn.Close()
		return
	}
	if !s.serveConn(sess, conn) {
		s.endSession(sess)
	}
}

// ParkedSessions returns how many sessions are parked.
func (s *Server) ParkedSessions() int {
	if s.mux == nil {
		return 0
	}
	s.mux.mu.Lock()
	defer s.mux.mu.Unlock()
	return len(s.mux.parked)
}

// cidOf returns the Connection ID the router knows v by ("" without).
func (m *dtlsMux) cidOf(v *vconn) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return v.cid
}

// restore records a parked session read back from a RegistrationStore.
func (m *dtlsMux) restore(p *parkedConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parked[p] = struct{}{}
	m.parkedByAddr[p.addrKey] = p
	if p.cid != "" {
		m.parkedByCID[p.cid] = p
	}
}
