package transport

import (
	"encoding/binary"
	"fmt"
)

// The DTLS 1.2 wire format the router reads before any connection exists
// (RFC 6347 §4.1, §4.2.2): it parses ClientHellos to answer them with a
// HelloVerifyRequest, and looks at the headers of the records pion writes.

// Record and handshake header sizes, content and handshake types, alerts.
const (
	recordHeaderLen    = 13 // type, version, epoch, sequence_number(6), length
	handshakeHeaderLen = 12 // type, length(3), message_seq, fragment_offset(3), fragment_length(3)

	ctChangeCipherSpec = 20
	ctAlert            = 21

	hsHelloVerifyRequest = 3
	hsServerHelloDone    = 14

	alertFatal         = 2
	alertBadRecordMAC  = 20
	alertInternalError = 80

	dtlsMajor = 254 // every DTLS version: 1.0 is {254,255}, 1.2 {254,253}
	dtls10    = 255
	dtls12    = 253

	maxCookieLen = 32 // RFC 6347: opaque cookie<0..2^8-1>; ours are 16 bytes
)

// clientHello is a ClientHello as the router sees it: where its fields are
// in the datagram, and the fields the cookie covers.
type clientHello struct {
	recVersion [2]byte
	recSeq     uint64 // record sequence number (48 bits)
	msgSeq     uint16 // handshake message_seq
	recEnd     int    // end of the ClientHello's record in the datagram
	cookieAt   int    // offset of the cookie's length byte
	version    [2]byte
	random     []byte
	sessionID  []byte
	cookie     []byte
	suites     []byte // cipher_suites, without the length
	comp       []byte // compression_methods, without the length
}

// helloError says why a datagram that starts like a ClientHello is not one
// the router can answer.
type helloError struct {
	reason string
}

func (e *helloError) Error() string { return "lwm2m: DTLS ClientHello refused: " + e.reason }

func helloErr(format string, args ...any) error {
	return &helloError{reason: fmt.Sprintf(format, args...)}
}

// isClientHelloRecord reports whether b starts with a plaintext handshake
// record (epoch 0) carrying a ClientHello.
func isClientHelloRecord(b []byte) bool {
	return len(b) > recordHeaderLen && b[0] == ctHandshake && b[3] == 0 && b[4] == 0 &&
		b[recordHeaderLen] == hsClientHello
}

// parseClientHello reads the ClientHello in the first record of b. The
// record-layer version may be any {254,x} (RFC 6347 §4.1 allows any value
// in the record of an initial ClientHello; mbedTLS 2.x sends {254,0}); the
// ClientHello must be in one fragment.
func parseClientHello(b []byte) (clientHello, error) {
	var h clientHello
	if !isClientHelloRecord(b) {
		return h, helloErr("not a ClientHello record")
	}
	if b[1] != dtlsMajor {
		return h, helloErr("record version %d.%d is not DTLS (254.x)", b[1], b[2])
	}
	h.recVersion = [2]byte{b[1], b[2]}
	h.recSeq = uint48(b[5:11])
	rlen := int(binary.BigEndian.Uint16(b[11:13]))
	h.recEnd = recordHeaderLen + rlen
	if h.recEnd > len(b) {
		return h, helloErr("record length %d exceeds the datagram (%d bytes after the header)", rlen, len(b)-recordHeaderLen)
	}
	if rlen < handshakeHeaderLen {
		return h, helloErr("record of %d bytes is shorter than a handshake header (12)", rlen)
	}
	hs := b[recordHeaderLen:h.recEnd]
	mlen := int(uint24(hs[1:4]))
	h.msgSeq = binary.BigEndian.Uint16(hs[4:6])
	foff, flen := int(uint24(hs[6:9])), int(uint24(hs[9:12]))
	if foff != 0 || flen != mlen {
		return h, helloErr("fragmented ClientHello (offset %d, %d of %d bytes); send it in one record", foff, flen, mlen)
	}
	if handshakeHeaderLen+mlen != len(hs) {
		return h, helloErr("ClientHello length %d does not match its record (%d bytes)", mlen, len(hs)-handshakeHeaderLen)
	}
	body := hs[handshakeHeaderLen:]
	at := recordHeaderLen + handshakeHeaderLen // offset of body in b
	p := 0
	need := func(n int, what string) error {
		if p+n > len(body) {
			return helloErr("ClientHello ends inside %s (offset %d)", what, at+p)
		}
		return nil
	}
	if err := need(2+32+1, "client_version/random"); err != nil {
		return h, err
	}
	h.version = [2]byte{body[0], body[1]}
	h.random = body[2:34]
	p = 34
	n := int(body[p])
	p++
	if n > 32 {
		return h, helloErr("session_id of %d bytes (at most 32)", n)
	}
	if err := need(n+1, "session_id"); err != nil {
		return h, err
	}
	h.sessionID = body[p : p+n]
	p += n
	h.cookieAt = at + p
	n = int(body[p])
	p++
	if err := need(n, "cookie"); err != nil {
		return h, err
	}
	h.cookie = body[p : p+n]
	p += n
	if err := need(2, "cipher_suites"); err != nil {
		return h, err
	}
	n = int(binary.BigEndian.Uint16(body[p:]))
	p += 2
	if n < 2 || n%2 != 0 {
		return h, helloErr("cipher_suites of %d bytes (an even number, at least 2)", n)
	}
	if err := need(n+1, "cipher_suites"); err != nil {
		return h, err
	}
	h.suites = body[p : p+n]
	p += n
	n = int(body[p])
	p++
	if n < 1 {
		return h, helloErr("no compression_methods (at least null)")
	}
	if err := need(n, "compression_methods"); err != nil {
		return h, err
	}
	h.comp = body[p : p+n]
	return h, nil
}

// appendHelloVerifyRequest appends the router's answer to a ClientHello
// without a valid cookie (RFC 6347 §4.2.1): version DTLS 1.0, the record
// sequence number of the ClientHello, and its message_seq.
func appendHelloVerifyRequest(dst []byte, recSeq uint64, msgSeq uint16, cookie []byte) []byte {
	bodyLen := 3 + len(cookie)
	dst = append(dst, ctHandshake, dtlsMajor, dtls10, 0, 0)
	dst = appendUint48(dst, recSeq)
	dst = binary.BigEndian.AppendUint16(dst, uint16(handshakeHeaderLen+bodyLen))
	dst = append(dst, hsHelloVerifyRequest)
	dst = appendUint24(dst, uint32(bodyLen))
	dst = binary.BigEndian.AppendUint16(dst, msgSeq)
	dst = appendUint24(dst, 0)
	dst = appendUint24(dst, uint32(bodyLen))
	dst = append(dst, dtlsMajor, dtls10, byte(len(cookie)))
	return append(dst, cookie...)
}

// appendInitialHello appends the ClientHello of h's datagram b as it was
// before the HelloVerifyRequest: without the cookie, message_seq 0, in a
// record numbered recSeq. pion's server sees it first (see pionhello.go).
func appendInitialHello(dst, b []byte, h clientHello, recSeq uint64) []byte {
	cl := len(h.cookie)
	mlen := int(uint24(b[recordHeaderLen+1:])) - cl
	dst = append(dst, ctHandshake, dtlsMajor, dtls10, 0, 0)
	dst = appendUint48(dst, recSeq)
	dst = binary.BigEndian.AppendUint16(dst, uint16(handshakeHeaderLen+mlen))
	dst = append(dst, hsClientHello)
	dst = appendUint24(dst, uint32(mlen))
	dst = append(dst, 0, 0)
	dst = appendUint24(dst, 0)
	dst = appendUint24(dst, uint32(mlen))
	dst = append(dst, b[recordHeaderLen+handshakeHeaderLen:h.cookieAt]...)
	dst = append(dst, 0)
	return append(dst, b[h.cookieAt+1+cl:h.recEnd]...)
}

// normalizeRecordVersions rewrites, in place, the record-layer version of
// every plaintext handshake record in b whose version is a DTLS version
// pion does not take ({254,x} other than 1.0 and 1.2) to DTLS 1.0. The
// record version is not part of the handshake transcript.
func normalizeRecordVersions(b []byte) (changed bool) {
	for len(b) >= recordHeaderLen {
		if b[0] == ctHandshake && b[3] == 0 && b[4] == 0 && b[1] == dtlsMajor && b[2] != dtls10 && b[2] != dtls12 {
			b[2] = dtls10
			changed = true
		}
		if b[0] == ctCID {
			return changed // its length field is elsewhere; never a plaintext handshake
		}
		n := recordHeaderLen + int(binary.BigEndian.Uint16(b[11:13]))
		if n > len(b) {
			return changed
		}
		b = b[n:]
	}
	return changed
}

// recordSeq returns the epoch and sequence number of the record b starts
// with.
func recordSeq(b []byte) (epoch uint16, seq uint64) {
	return binary.BigEndian.Uint16(b[3:5]), uint48(b[5:11])
}

// appendAlert appends a plaintext fatal alert record (epoch 0).
func appendAlert(dst []byte, recSeq uint64, desc byte) []byte {
	dst = append(dst, ctAlert, dtlsMajor, dtls12, 0, 0)
	dst = appendUint48(dst, recSeq)
	return append(dst, 0, 2, alertFatal, desc)
}

func uint24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

func uint48(b []byte) uint64 {
	return uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
}

func appendUint24(dst []byte, v uint32) []byte { return append(dst, byte(v>>16), byte(v>>8), byte(v)) }

func appendUint48(dst []byte, v uint64) []byte {
	return append(dst, byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
