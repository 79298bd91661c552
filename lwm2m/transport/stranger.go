package transport

import (
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Plain CoAP peers that have proved nothing (SEC-2). Anyone can send a
// datagram with any source address, so a plain CoAP peer gets a session
// counted toward MaxSessions only when its registration is accepted
// (install and update adopt it). Until then it is a stranger:
//
//   - pings, malformed messages, ACKs and Resets are answered (or ignored)
//     on the reading goroutine from the datagram alone, with nothing kept;
//   - a request or a notification is handled on a short-lived session
//     that is forgotten as soon as its datagrams are answered. At most
//     maxStrangers such sessions (and goroutines) exist at once; beyond
//     that datagrams are dropped, as a full socket buffer would drop them,
//     and the device retransmits.
//   - the one state kept between datagrams is a Block1 body being
//     received, capped at MaxMessageSize (a registered peer may send up to
//     maxBlock1Body); such a stranger is the first to make room when the
//     table is full, and is forgotten after IdleTimeout of silence.

// maxStrangers caps the plain CoAP peers without a registration that are
// being answered at once, or are sending a Block1 body.
const maxStrangers = 1024

// screenUDP answers what needs no session: a CoAP ping with a Reset, a
// malformed confirmable message with a Reset (RFC 7252 §4.2); a malformed
// non-confirmable message, an ACK or a Reset from a stranger is ignored (the
// server has no exchange with it). It reports whether the datagram needs a
// session (a request or a response).
func (s *Server) screenUDP(c *net.UDPConn, addr *net.UDPAddr, data []byte) bool {
	h, ok, err := checkFormat(data)
	if !ok || h.version != 1 {
		return false // nothing to answer (RFC 7252 §3: unknown versions are ignored)
	}
	if err == nil {
		_, err = decodeMsg(data)
	}
	switch {
	case err != nil:
		if h.typ == message.Confirmable && s.allowStrangerAnswer(addr) {
			_, _ = c.WriteToUDP(resetFor(h.mid), addr)
		}
		s.floods.note("malformed", "lwm2m: malformed CoAP message", "addr", addr.String(), "confirmable", h.typ == message.Confirmable, "err", err)
		return false
	case h.code == codes.Empty:
		if h.typ == message.Confirmable && s.allowStrangerAnswer(addr) {
			_, _ = c.WriteToUDP(resetFor(h.mid), addr) // CoAP ping (§4.3)
		}
		return false
	case h.typ == message.Acknowledgement || h.typ == message.Reset:
		return false
	}
	return true
}

// strangerLocked returns the stranger session of addr, creating one when
// there is room; nil means the datagram is dropped. s.mu is held.
func (s *Server) strangerLocked(c *net.UDPConn, addr *net.UDPAddr, key string, now time.Time) *session {
	if sess := s.strangers[key]; sess != nil {
		return sess
	}
	if len(s.strangers) >= maxStrangers && !s.evictStrangerLocked() {
		s.floods.note("strangers", "lwm2m: datagram from an unregistered peer dropped: too many being answered at once",
			"addr", key, "limit", maxStrangers)
		return nil
	}
	sess := s.newSession(false)
	sess.udp, sess.addr, sess.stranger, sess.lastSeen = c, addr, true, now
	s.strangers[key] = sess
	return sess
}

// evictStrangerLocked forgets one idle stranger (one sending a Block1
// body) to make room; map order is random, so a flood cannot choose who
// goes. s.mu is held.
func (s *Server) evictStrangerLocked() bool {
	tries := 0
	for k, sess := range s.strangers {
		sess.mu.Lock()
		idle := !sess.udpBusy
		sess.mu.Unlock()
		if idle {
			delete(s.strangers, k)
			sess.close()
			return true
		}
		if tries++; tries == 16 {
			break
		}
	}
	return false
}

// adoptLocked makes a stranger whose registration was accepted a peer
// with a session counted toward MaxSessions. s.mu is held.
func (s *Server) adoptLocked(sess *session) {
	if sess.secure {
		return
	}
	sess.mu.Lock()
	was := sess.stranger
	sess.stranger = false
	sess.mu.Unlock()
	if !was {
		return
	}
	key := sess.addr.String()
	if s.strangers[key] == sess {
		delete(s.strangers, key)
	}
	s.udpPeers[key] = sess
	sess.ex.setBlock1Max(maxBlock1Body)
}

// roomFor reports whether a registration of ep on sess fits under
// MaxSessions: a stranger would add a session, unless ep's current
// registration (whose session it replaces) is dropped for it.
func (s *Server) roomFor(sess *session, ep string) bool {
	sess.mu.Lock()
	stranger := sess.stranger
	sess.mu.Unlock()
	if !stranger {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.regs[ep] != nil || s.sessionCount() < s.cfg.MaxSessions
}

// sessionLimit is the answer to a registration beyond MaxSessions.
func sessionLimit() *message.Message {
	r := errResp(codes.ServiceUnavailable, "session limit reached")
	addUint(r, message.MaxAge, 60)
	return r
}

// doneWithUDP is called by a plain CoAP peer's goroutine when its queue is
// empty: it reports whether the goroutine may end (nothing arrived
// meanwhile) and forgets a stranger that keeps no Block1 body.
func (s *Server) doneWithUDP(sess *session) bool {
	sess.mu.Lock()
	if len(sess.udpQ) > 0 {
		sess.mu.Unlock()
		return false
	}
	if !sess.stranger {
		sess.udpBusy, sess.udpQ = false, nil
		sess.mu.Unlock()
		return true
	}
	sess.mu.Unlock()
	// a stranger: readUDP queues its datagrams under s.mu
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.mu.Lock()
	if len(sess.udpQ) > 0 {
		sess.mu.Unlock()
		return false
	}
	sess.udpBusy, sess.udpQ = false, nil
	stranger := sess.stranger
	sess.mu.Unlock()
	if stranger && !sess.ex.assembling() {
		key := sess.addr.String()
		if s.strangers[key] == sess {
			delete(s.strangers, key)
		}
		sess.close()
	}
	return true
}

// strangerCount returns how many strangers are held (tests).
func (s *Server) strangerCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.strangers)
}
