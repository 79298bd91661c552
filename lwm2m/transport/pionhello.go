package transport

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/pion/dtls/v3"
	"github.com/pion/logging"
)

// How pion's server is started after the router's stateless cookie
// exchange.
//
// RFC 6347 §4.2.2 numbers handshake messages from 0 on each side. After a
// HelloVerifyRequest the client's second ClientHello has message_seq 1, and
// it expects the ServerHello to have message_seq 1; both are in the
// handshake transcript the Finished messages authenticate, so they cannot
// be rewritten on the way. pion v3.1.15 with InsecureSkipVerifyHello only
// takes a ClientHello with message_seq 0 (flight0Parse pulls from sequence
// 0) and answers with ServerHello message_seq 0: pion's own client waits
// for message_seq 1 forever, OpenSSL drops it as a retransmission. So pion
// runs with its cookie round on, and the router plays that round for it on
// the virtual connection, after the device proved its address:
//
//  1. the router hands pion the device's ClientHello as it was before the
//     HelloVerifyRequest (no cookie, message_seq 0, record number one below
//     the second hello's);
//  2. pion answers with its own HelloVerifyRequest (message_seq 0), which
//     the router drops, and sets pion's expected cookie to the one the
//     device already has (setPionCookie);
//  3. the router hands pion the device's second ClientHello as received.
//
// pion then checks the cookie and that the two hellos agree (RFC 6347
// §4.2.1), puts the second hello in the transcript, and sends ServerHello
// with message_seq 1 — what pion, OpenSSL and GnuTLS clients expect. pion
// offers no API for step 2: the expected cookie is an unexported field, set
// here through its offset. pionCookieOffset checks the field's presence and
// type; Listen refuses to start when a pion upgrade moved it, and the
// handshake tests fail, rather than the server silently losing the
// stateless exchange. The upstream fix would be for InsecureSkipVerifyHello
// to continue from the ClientHello's message_seq, as OpenSSL's
// DTLSv1_listen does.

// pionCookieOffset is the offset of state.cookie in a dtls.Conn, or an
// error when this pion version has no such []byte field.
var pionCookieOffset, errPionLayout = func() (uintptr, error) {
	st, ok := reflect.TypeFor[dtls.Conn]().FieldByName("state")
	if !ok || st.Type != reflect.TypeFor[dtls.State]() {
		return 0, fmt.Errorf("lwm2m: pion/dtls Conn has no state field of type State; the stateless cookie exchange needs pion/dtls v3.1.x")
	}
	ck, ok := st.Type.FieldByName("cookie")
	if !ok || ck.Type != reflect.TypeFor[[]byte]() {
		return 0, fmt.Errorf("lwm2m: pion/dtls State has no cookie field of type []byte; the stateless cookie exchange needs pion/dtls v3.1.x")
	}
	return st.Offset + ck.Offset, nil
}()

// setPionCookie makes cookie the one pion's server expects in the next
// ClientHello. It is called from the write of pion's HelloVerifyRequest,
// on pion's handshake goroutine, before the second ClientHello is handed
// to pion: pion reads the field only when that hello arrives.
func setPionCookie(c *dtls.Conn, cookie []byte) {
	*(*[]byte)(unsafe.Add(unsafe.Pointer(c), pionCookieOffset)) = append([]byte(nil), cookie...)
}

// connLoggers gives each pion connection a logger that reports the one
// diagnostic the router acts on: a record of the device that failed to
// decrypt during the handshake, which with PSK means the device's key is
// not the one we hold (pion itself drops such records silently and
// retransmits until the handshake times out).
type connLoggers struct{ v *vconn }

func (f connLoggers) NewLogger(string) logging.LeveledLogger { return connLogger(f) }

type connLogger struct{ v *vconn }

// pionDecryptFailed is the format of pion's log line for a record that
// failed to decrypt (conn.go, handleIncomingPacket).
const pionDecryptFailed = "%s: decrypt failed: %s"

func (l connLogger) Debugf(format string, _ ...any) {
	if format == pionDecryptFailed {
		l.v.mux.decryptFailed(l.v)
	}
}

func (connLogger) Trace(string)          {}
func (connLogger) Tracef(string, ...any) {}
func (connLogger) Debug(string)          {}
func (connLogger) Info(string)           {}
func (connLogger) Infof(string, ...any)  {}
func (connLogger) Warn(string)           {}
func (connLogger) Warnf(string, ...any)  {}
func (connLogger) Error(string)          {}
func (connLogger) Errorf(string, ...any) {}
