package transport

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/stretchr/testify/require"
)

// logLines is a slog.Handler that keeps every line as text, for tests
// that check what the server logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logLines) WithGroup(string) slog.Handler            { return l }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

// matching returns the lines that contain every one of subs.
func (l *logLines) matching(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, s := range l.lines {
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// testHello is a DTLS 1.2 ClientHello as a device would send it, offering
// TLS_PSK_WITH_AES_128_CCM_8 (RFC 6347 §4.2.1 and §4.3.2).
type testHello struct {
	recVersion [2]byte // record-layer version; {254,255} if zero
	recSeq     uint64
	msgSeq     uint16
	random     [32]byte
	cookie     []byte
}

func (h testHello) bytes() []byte {
	var body []byte
	body = append(body, dtlsMajor, dtls12)
	body = append(body, h.random[:]...)
	body = append(body, 0) // session_id
	body = append(body, byte(len(h.cookie)))
	body = append(body, h.cookie...)
	body = append(body, 0, 2, 0xC0, 0xA8) // cipher_suites
	body = append(body, 1, 0)             // compression_methods: null
	v := h.recVersion
	if v == [2]byte{} {
		v = [2]byte{dtlsMajor, dtls10}
	}
	b := []byte{ctHandshake, v[0], v[1], 0, 0}
	b = appendUint48(b, h.recSeq)
	b = binary.BigEndian.AppendUint16(b, uint16(handshakeHeaderLen+len(body)))
	b = append(b, hsClientHello)
	b = appendUint24(b, uint32(len(body)))
	b = binary.BigEndian.AppendUint16(b, h.msgSeq)
	b = appendUint24(b, 0)
	b = appendUint24(b, uint32(len(body)))
	return append(b, body...)
}

// helloVerify is a HelloVerifyRequest as a test reads it.
type helloVerify struct {
	recVersion [2]byte
	recSeq     uint64
	msgSeq     uint16
	version    [2]byte
	cookie     []byte
}

// parseHelloVerify reads a HelloVerifyRequest strictly by RFC 6347 §4.2.1
// and §4.3.2: one unfragmented record, epoch 0, a cookie of at most 255
// bytes (RFC 6347: cookie<0..2^8-1>).
func parseHelloVerify(t *testing.T, b []byte) helloVerify {
	t.Helper()
	require.GreaterOrEqual(t, len(b), recordHeaderLen+handshakeHeaderLen+3, "HelloVerifyRequest datagram too short: % x", b)
	require.Equal(t, byte(ctHandshake), b[0], "record content type")
	require.Equal(t, byte(dtlsMajor), b[1], "record version major")
	require.Equal(t, []byte{0, 0}, b[3:5], "epoch")
	rl := int(binary.BigEndian.Uint16(b[11:13]))
	require.Equal(t, len(b)-recordHeaderLen, rl, "one record filling the datagram")
	hs := b[recordHeaderLen:]
	require.Equal(t, byte(hsHelloVerifyRequest), hs[0], "handshake type")
	ml := int(uint24(hs[1:4]))
	require.Equal(t, rl-handshakeHeaderLen, ml, "handshake length")
	require.Equal(t, uint32(0), uint24(hs[6:9]), "fragment_offset")
	require.Equal(t, uint32(ml), uint24(hs[9:12]), "fragment_length")
	body := hs[handshakeHeaderLen:]
	require.Equal(t, int(body[2]), len(body)-3, "cookie length")
	return helloVerify{
		recVersion: [2]byte{b[1], b[2]}, recSeq: uint48(b[5:11]), msgSeq: binary.BigEndian.Uint16(hs[4:6]),
		version: [2]byte{body[0], body[1]}, cookie: append([]byte(nil), body[3:]...),
	}
}

// dtlsPeer is a UDP socket on a loopback address talking raw DTLS records.
type dtlsPeer struct {
	t    *testing.T
	conn *net.UDPConn
	srv  *net.UDPAddr
}

func newDTLSPeer(t *testing.T, ip string, srv net.Addr) *dtlsPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &dtlsPeer{t: t, conn: c, srv: srv.(*net.UDPAddr)}
}

func (p *dtlsPeer) send(b []byte) {
	_, err := p.conn.WriteToUDP(b, p.srv)
	require.NoError(p.t, err)
}

// recv returns the next datagram within d, or nil.
func (p *dtlsPeer) recv(d time.Duration) []byte {
	buf := make([]byte, 2048)
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	n, err := p.conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// verifiedHello does the cookie round and sends the second ClientHello,
// which starts a handshake on the server; it returns that hello.
func (p *dtlsPeer) verifiedHello(random byte) []byte {
	p.t.Helper()
	h := testHello{random: [32]byte{random}}
	p.send(h.bytes())
	b := p.recv(5 * time.Second)
	require.NotNil(p.t, b, "HelloVerifyRequest within 5s")
	hv := parseHelloVerify(p.t, b)
	h.cookie, h.msgSeq, h.recSeq = hv.cookie, 1, 1
	second := h.bytes()
	p.send(second)
	return second
}

// pionHandshake runs a pion client handshake with identity and key to
// addr over pc.
func pionHandshake(ctx context.Context, pc net.PacketConn, addr net.Addr, identity string, key []byte) (*dtls.Conn, error) {
	c, err := dtls.ClientWithOptions(pc, addr,
		dtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret))
	if err != nil {
		return nil, err
	}
	if err := c.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

func slogTo(h slog.Handler) *slog.Logger { return slog.New(h) }
