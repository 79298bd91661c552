package lwm2mtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/pion/dtls/v3"
)

// Dialer opens a Device's sockets: every call is a new UDP socket, so a
// new source port, as a module that rebooted or opened a socket of its
// own for a download. coaps gets a DTLS-PSK session (pion's client) whose
// initial ClientHellos carry the record version {254,0}, as mbedTLS 2.x
// sends with its default minimum version (RFC 6347 §4.1 lets the record
// of an initial ClientHello carry any {254,x}).
type Dialer struct {
	Identity string // PSK identity, the endpoint name
	PSK      []byte
	// CipherSuites offered; nil means TLS_PSK_WITH_AES_128_CCM_8, the
	// suite LwM2M names for PSK.
	CipherSuites []dtls.CipherSuiteID

	hellos   atomic.Int64
	sessions atomic.Int64

	mu    sync.Mutex
	ports map[int]bool // local ports of the sockets dialled so far
}

// fresh opens a socket with open on a local port none of the Dialer's
// sockets had: the kernel may hand out a port just closed when ports are
// scarce, and a device after a reboot must come from a new one.
func (d *Dialer) fresh(open func() (*net.UDPConn, error)) (*net.UDPConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ports == nil {
		d.ports = map[int]bool{}
	}
	var held []*net.UDPConn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 16 {
		c, err := open()
		if err != nil {
			return nil, err
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		if !d.ports[port] {
			d.ports[port] = true
			return c, nil
		}
		held = append(held, c) // kept open until a new port comes
	}
	return nil, errors.New("lwm2mtest: no new local port after 16 sockets")
}

// Hellos returns how many ClientHello records the Dialer's sessions sent
// with the record version {254,0}.
func (d *Dialer) Hellos() int { return int(d.hellos.Load()) }

// Sessions returns how many DTLS sessions the Dialer established.
func (d *Dialer) Sessions() int { return int(d.sessions.Load()) }

// Dial connects to hostport: plain UDP for scheme "coap", DTLS-PSK with a
// finished handshake for "coaps". Closing the connection cuts it as a
// power loss does: the socket goes first, so no close_notify leaves.
func (d *Dialer) Dial(ctx context.Context, scheme, hostport string) (net.Conn, error) {
	ra, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return nil, fmt.Errorf("lwm2mtest: dial %s://%s: %w", scheme, hostport, err)
	}
	switch scheme {
	case "coap":
		return d.fresh(func() (*net.UDPConn, error) { return net.DialUDP("udp", nil, ra) })
	case "coaps":
	default:
		return nil, fmt.Errorf("lwm2mtest: dial %s://%s: scheme %q, want coap or coaps", scheme, hostport, scheme)
	}
	pc, err := d.fresh(func() (*net.UDPConn, error) { return net.ListenUDP("udp", &net.UDPAddr{IP: ra.IP}) })
	if err != nil {
		return nil, fmt.Errorf("lwm2mtest: dial %s: %w", hostport, err)
	}
	suites := d.CipherSuites
	if len(suites) == 0 {
		suites = []dtls.CipherSuiteID{dtls.TLS_PSK_WITH_AES_128_CCM_8}
	}
	psk := d.PSK
	dc, err := dtls.ClientWithOptions(&helloV0{PacketConn: pc, n: &d.hellos}, ra,
		dtls.WithPSK(func([]byte) ([]byte, error) { return psk, nil }),
		dtls.WithPSKIdentityHint([]byte(d.Identity)),
		dtls.WithCipherSuites(suites...))
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("lwm2mtest: dtls client %s: %w", hostport, err)
	}
	if err := dc.HandshakeContext(ctx); err != nil {
		pc.Close()
		dc.Close()
		return nil, fmt.Errorf("lwm2mtest: DTLS handshake with %s: %w", hostport, err)
	}
	d.sessions.Add(1)
	return &powerConn{Conn: dc, pc: pc}, nil
}

// powerConn is a DTLS session whose Close drops the socket first: a
// device losing power sends no close_notify.
type powerConn struct {
	net.Conn
	pc net.PacketConn
}

func (c *powerConn) Close() error {
	c.pc.Close()
	return c.Conn.Close()
}

// helloV0 rewrites the record version of every ClientHello record the
// client sends in epoch 0 (the initial hello and the one returning the
// cookie) to {254,0}, as mbedTLS 2.x does.
type helloV0 struct {
	net.PacketConn
	n *atomic.Int64
}

func (h *helloV0) WriteTo(p []byte, addr net.Addr) (int, error) {
	if isClientHello(p) {
		q := append([]byte(nil), p...)
		q[1], q[2] = 0xFE, 0x00
		h.n.Add(1)
		p = q
	}
	return h.PacketConn.WriteTo(p, addr)
}

// isClientHello reports whether datagram b starts with a plaintext DTLS
// handshake record (content type 22, epoch 0) holding a ClientHello
// (handshake type 1): 13 bytes of record header, then the handshake's.
func isClientHello(b []byte) bool {
	return len(b) > 13 && b[0] == 22 && b[3] == 0 && b[4] == 0 && b[13] == 1
}
