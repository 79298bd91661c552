package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/doze-io/doze/internal/source"
	"github.com/pion/dtls/v3"
)

// The router's gate (SEC-2): no state before proof. Every ClientHello is
// handled here, on the router's goroutine, before anything exists for its
// sender:
//
//   - a hello that is not DTLS, is fragmented or malformed is refused:
//     counted and logged (aggregated), nothing sent;
//   - a hello without a valid cookie gets a HelloVerifyRequest with a
//     stateless cookie (cookie.go) and nothing is kept;
//   - a hello with a valid cookie proves its sender's address: it starts a
//     handshake — a virtual connection and a pion server — unless
//     MaxHandshakes are in flight, when it is dropped and counted (the
//     device retransmits it); sessions that exist are never touched for
//     it, except the one at the same address, which the device restarted.
//
// A handshake in flight is ended by its deadline (handshakeTimeout), a
// fatal alert, or its completion; then it no longer counts.

// handshake is a handshake in flight on a virtual connection.
type handshake struct {
	cookie []byte     // the router's cookie the device sent back
	second []byte     // the device's ClientHello, for pion after its own cookie round; nil after
	pion   *dtls.Conn // set before pion starts
	abort  context.CancelFunc

	src      netip.Prefix // the source IP (IPv6: its /64), for MaxHandshakesPerIP
	seq0     uint64       // highest record number pion wrote in epoch 0
	identity string       // PSK identity the device sent
	unknown  bool         // not in the KeyStore
	keyed    bool         // the PSK was looked up
	full     bool         // pion sent ServerHelloDone: a full handshake, not a resumed session
	failed   failReason
}

// failReason says why a handshake ended without a session.
type failReason int

const (
	failNone            failReason = iota
	failBadKey                     // the device's Finished did not decrypt with its key
	failUnknownIdentity            // no key for the identity
	failTimeout                    // not finished before its deadline
	failAlert                      // a fatal alert (from either side)
	failClosed                     // the server closed, or the device restarted the handshake
)

func (r failReason) String() string {
	switch r {
	case failBadKey:
		return "bad key (the device's Finished did not decrypt with the identity's PSK)"
	case failUnknownIdentity:
		return "unknown identity"
	case failTimeout:
		return "timeout"
	case failAlert:
		return "fatal alert"
	case failClosed:
		return "closed"
	}
	return "none"
}

// kind is r in a word or two, for log messages.
func (r failReason) kind() string {
	switch r {
	case failBadKey:
		return "bad key"
	case failUnknownIdentity:
		return "unknown identity"
	case failTimeout:
		return "timeout"
	case failClosed:
		return "closed"
	}
	return "fatal alert"
}

// alertDecryptError is sent for a wrong key and for an unknown identity
// alike (RFC 4279 §2): nobody learns from the answer which identities
// exist; the log says which it was.
const alertDecryptError = 51

// hello handles a datagram that starts with a ClientHello record.
func (m *dtlsMux) hello(data []byte, addr *net.UDPAddr, now time.Time) {
	h, err := parseClientHello(data)
	if err != nil {
		m.stats.hellosRefused.Add(1)
		m.agg.warn(now, "lwm2m: DTLS ClientHello refused", "reason", err.(*helloError).reason, "addr", addr)
		return
	}
	if len(h.cookie) == 0 || !m.jar.valid(now, addr, &h) {
		if m.answers == nil { // not running: answer here
			m.answer(h, addr, now)
			return
		}
		select {
		case m.answers <- helloJob{append([]byte(nil), data[:h.recEnd]...), addr}:
		default:
			m.stats.hellosShed.Add(1)
			m.agg.warn(now, "lwm2m: DTLS ClientHello not answered: the router is overloaded", "queue", cap(m.answers), "addr", addr)
		}
		return
	}
	// Our cookies answer message_seq 0, so the hello that returns one is
	// message 1 (RFC 6347 §4.2.2), and it follows the first hello in
	// record numbers (§4.1).
	if h.msgSeq != 1 || h.recSeq == 0 {
		m.stats.hellosRefused.Add(1)
		m.agg.warn(now, "lwm2m: DTLS ClientHello refused",
			"reason", "a cookie in a ClientHello with message_seq other than 1 or record number 0; restart the handshake", "addr", addr)
		return
	}
	normalizeRecordVersions(data)
	key := addr.String()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if v := m.byAddr[key]; v != nil {
		if bytes.Equal(v.random[:], h.random) {
			// the same hello again: a retransmission for pion while
			// the handshake is in flight, a duplicate after it
			if v.hs != nil && v.hs.second == nil {
				select {
				case v.in <- datagram{append([]byte(nil), data...), addr}:
				default:
				}
			}
			return
		}
		v.closeLocked() // a new handshake from this proven address: the device restarted
	}
	if p := m.parkedByAddr[key]; p != nil {
		m.unparkLocked(p) // the device restarted: its parked session is stale
	}
	if m.pending >= m.maxPending {
		m.stats.hellosDropped.Add(1)
		m.agg.warn(now, "lwm2m: DTLS ClientHello dropped: MaxHandshakes handshakes in flight",
			"limit", m.maxPending, "addr", addr)
		return
	}
	src := sourcePrefix(addr)
	if m.maxPerIP > 0 && m.pendingByIP[src] >= m.maxPerIP {
		m.stats.hellosDroppedPerIP.Add(1)
		m.agg.warn(now, "lwm2m: DTLS ClientHello dropped: MaxHandshakesPerIP handshakes in flight from its IP",
			"limit", m.maxPerIP, "source", src, "addr", addr)
		return
	}
	v := m.newVconnLocked(addr, key)
	hs := &handshake{second: append([]byte(nil), data...), cookie: append([]byte(nil), h.cookie...), src: src}
	copy(v.random[:], h.random)
	v.hs = hs
	m.pending++
	m.pendingByIP[src]++
	v.in <- datagram{appendInitialHello(nil, data, h, h.recSeq-1), addr} // before anything can close v
	select {
	case m.accept <- v:
		m.stats.started.Add(1)
	default: // the server is not accepting fast enough: as if the cap were hit
		v.closeLocked()
		m.stats.hellosDropped.Add(1)
	}
}

// helloJob is a ClientHello to answer with a HelloVerifyRequest.
type helloJob struct {
	b    []byte
	addr *net.UDPAddr
}

// answerQueue bounds the hellos waiting for a HelloVerifyRequest. The
// reading goroutine hands them to the answering one and goes on reading:
// under a flood beyond what the router can answer, hellos without a valid
// cookie are shed here (counted), and the records of devices — their
// second hello, their handshake, their data — are never queued behind
// them.
const answerQueue = 4096

// answerHellos sends the HelloVerifyRequests, in batches.
func (m *dtlsMux) answerHellos() {
	defer m.wg.Done()
	for {
		select {
		case j := <-m.answers:
			if h, err := parseClientHello(j.b); err == nil {
				m.answer(h, j.addr, time.Now())
			}
			if len(m.answers) == 0 {
				m.out.flush()
			}
		case <-m.done:
			return
		}
	}
}

// answer sends h a HelloVerifyRequest with its cookie.
func (m *dtlsMux) answer(h clientHello, addr *net.UDPAddr, now time.Time) {
	m.wbuf = appendHelloVerifyRequest(m.wbuf[:0], h.recSeq, h.msgSeq, m.jar.make(now, addr, &h))
	if m.wr != nil || !m.out.queue(m.wbuf, addr) {
		m.send(m.wbuf, addr)
	}
	m.stats.cookiesSent.Add(1)
}

// send writes b to addr from the DTLS socket.
func (m *dtlsMux) send(b []byte, addr *net.UDPAddr) {
	if m.wr != nil {
		m.wr(b, addr)
		return
	}
	_, _ = m.conn.WriteToUDP(b, addr)
}

// attach records pion's connection and the handshake's cancel function
// before pion starts; it returns the handshake, or nil when v has none.
func (m *dtlsMux) attach(v *vconn, c *dtls.Conn, abort context.CancelFunc) *handshake {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v.hs != nil {
		v.hs.pion, v.hs.abort = c, abort
	}
	return v.hs
}

// pionVerified is pion's HelloVerifyRequest on v (see pionhello.go): pion
// is told the device's cookie and gets the device's ClientHello.
func (m *dtlsMux) pionVerified(v *vconn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs := v.hs
	if hs == nil || hs.second == nil || hs.pion == nil {
		return // pion retransmitting its HelloVerifyRequest
	}
	setPionCookie(hs.pion, hs.cookie)
	select {
	case v.in <- datagram{hs.second, v.remote()}:
	default:
	}
	hs.second = nil
}

// keyLookup records the PSK identity a device sent on v.
func (m *dtlsMux) keyLookup(v *vconn, identity string, unknown bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v.hs != nil {
		v.hs.identity, v.hs.unknown, v.hs.keyed = identity, unknown, true
	}
}

// decryptFailed is a record of the device on v that pion could not
// decrypt. During a PSK handshake that is the device's Finished under
// another key: the router ends the handshake with a fatal decrypt_error
// alert (pion would drop it silently and retransmit until its deadline).
// Records after the handshake that fail are dropped, as RFC 6347 §4.1.2.7
// asks.
func (m *dtlsMux) decryptFailed(v *vconn) {
	m.mu.Lock()
	hs := v.hs
	if hs == nil || !hs.keyed || hs.failed != failNone {
		m.mu.Unlock()
		return
	}
	hs.failed = failBadKey
	if hs.unknown {
		hs.failed = failUnknownIdentity
	}
	alert := appendAlert(nil, hs.seq0+1, alertDecryptError)
	hs.seq0++
	abort, addr := hs.abort, v.remote()
	m.mu.Unlock()
	m.send(alert, addr)
	if abort != nil {
		abort()
	}
}

// endHandshakeLocked ends v's handshake in flight, if any; mux.mu is held.
func (m *dtlsMux) endHandshakeLocked(v *vconn) {
	if v.hs != nil {
		if n := m.pendingByIP[v.hs.src] - 1; n > 0 {
			m.pendingByIP[v.hs.src] = n
		} else {
			delete(m.pendingByIP, v.hs.src)
		}
		v.hs = nil
		m.pending--
	}
}

// sourcePrefix is what MaxHandshakesPerIP and the download budgets count
// by: the source's IPv4 address, or the /64 of its IPv6 address (one
// subscriber's prefix).
func sourcePrefix(a net.Addr) netip.Prefix { return source.Of(a) }

// handshakeEnded ends hs, v's handshake, if it is still in flight, and
// returns what it learned.
func (m *dtlsMux) handshakeEnded(v *vconn, hs *handshake) (identity string, full bool, failed failReason) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if hs == nil {
		return "", false, failClosed
	}
	if v.hs == hs {
		m.endHandshakeLocked(v)
	}
	return hs.identity, hs.full, hs.failed
}

// inFlight returns the number of handshakes in flight.
func (m *dtlsMux) inFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pending
}

// wrote notes the records pion writes during the handshake.
func (hs *handshake) wrote(p []byte) {
	for len(p) >= recordHeaderLen && p[0] != ctCID {
		epoch, seq := recordSeq(p)
		if epoch == 0 && seq > hs.seq0 {
			hs.seq0 = seq
		}
		if epoch == 0 && p[0] == ctHandshake && len(p) > recordHeaderLen && p[recordHeaderLen] == hsServerHelloDone {
			hs.full = true
		}
		p = p[min(len(p), recordHeaderLen+int(binary.BigEndian.Uint16(p[11:13]))):]
	}
}

// handshakeTimeout is the deadline of a handshake that starts with
// pending others in flight out of limit: the configured one, and a quarter
// of it (at least a second) once half the slots are taken, so that peers
// that do not finish free their slot sooner under load.
func handshakeTimeout(base time.Duration, pending, limit int) time.Duration {
	if 2*pending >= limit {
		return max(base/4, time.Second)
	}
	return base
}

// dtlsCounters are the router's and handshakes' counters (DTLSStats).
type dtlsCounters struct {
	cookiesSent, hellosRefused, hellosDropped, hellosShed atomic.Uint64
	hellosDroppedPerIP                                    atomic.Uint64
	started, full, abbreviated                            atomic.Uint64
	failedBadKey, failedUnknown, failedTimeout            atomic.Uint64
	failedOther                                           atomic.Uint64
	lookups, lookupsLimited, adopted, takenBack           atomic.Uint64 // adopt.go
}

// randomKey is a key nobody holds, for identities the KeyStore does not
// know.
func randomKey() []byte {
	k := make([]byte, 16)
	_, _ = rand.Read(k)
	return k
}
