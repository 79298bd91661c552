package transport

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net"
	"sync"
	"time"
)

// Stateless cookies (RFC 6347 §4.2.1, SEC-2). The router answers a
// ClientHello without a valid cookie with a HelloVerifyRequest whose cookie
// is
//
//	HMAC-SHA256(secret, client IP, client port, client_version, random,
//	            session_id, cipher_suites, compression_methods)[:16]
//
// and keeps nothing. The fields are those RFC 6347 says a client must
// repeat in its second ClientHello, so a cookie is valid only for the
// address it was sent to and the hello it answered. The secret is replaced
// every cookieRotation; a cookie made with the previous secret is still
// accepted, so a cookie lives between one and two rotations.

const (
	cookieLen      = 16 // fits every stack we know (tinydtls keeps 16)
	cookieRotation = 2 * time.Minute
)

// cookieJar makes and checks cookies, for the router's reading and
// answering goroutines.
type cookieJar struct {
	mu        sync.Mutex
	cur, prev hash.Hash
	hasPrev   bool
	rotateAt  time.Time
	sum       [sha256.Size]byte
	buf       []byte
}

// rotate replaces the secret when its time has come; j.mu is held.
func (j *cookieJar) rotate(now time.Time) {
	if j.cur != nil && now.Before(j.rotateAt) {
		return
	}
	var secret [32]byte
	_, _ = rand.Read(secret[:]) // never fails (crypto/rand)
	j.prev, j.hasPrev = j.cur, j.cur != nil
	j.cur = hmac.New(sha256.New, secret[:])
	j.rotateAt = now.Add(cookieRotation)
}

// make returns the cookie for h from addr, valid from now. It is valid
// until the next call.
func (j *cookieJar) make(now time.Time, addr *net.UDPAddr, h *clientHello) []byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rotate(now)
	var c [cookieLen]byte
	copy(c[:], j.mac(j.cur, addr, h))
	return c[:]
}

// valid reports whether h carries a cookie this jar made for addr and the
// same hello, with the current or the previous secret.
func (j *cookieJar) valid(now time.Time, addr *net.UDPAddr, h *clientHello) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rotate(now)
	if len(h.cookie) != cookieLen {
		return false
	}
	if hmac.Equal(h.cookie, j.mac(j.cur, addr, h)) {
		return true
	}
	return j.hasPrev && hmac.Equal(h.cookie, j.mac(j.prev, addr, h))
}

func (j *cookieJar) mac(m hash.Hash, addr *net.UDPAddr, h *clientHello) []byte {
	b := j.buf[:0]
	b = append(b, addr.IP.To16()...)
	b = binary.BigEndian.AppendUint16(b, uint16(addr.Port))
	b = append(b, h.version[:]...)
	b = append(b, h.random...)
	b = append(b, byte(len(h.sessionID)))
	b = append(b, h.sessionID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.suites)))
	b = append(b, h.suites...)
	b = append(b, byte(len(h.comp)))
	b = append(b, h.comp...)
	j.buf = b
	m.Reset()
	m.Write(b)
	return m.Sum(j.sum[:0])[:cookieLen]
}
