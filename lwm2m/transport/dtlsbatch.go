package transport

import (
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The router reads the DTLS socket many datagrams per system call
// (recvmmsg) and sends its HelloVerifyRequests the same way (sendmmsg), so
// that a ClientHello flood costs it less than it costs the sender: the
// socket's queue stays short, and a device's records wait behind few
// others. golang.org/x/net does one datagram per call where the system has
// no batches.

const (
	batchLen     = 16
	batchBufSize = 16<<10 + 1024 // a DTLS record of 2^14 bytes and its headers
	hvrMaxLen    = recordHeaderLen + handshakeHeaderLen + 3 + maxCookieLen
)

// batchConn reads and writes batches of datagrams.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// batchIO is the router's batches: what it read, and the HelloVerifyRequests
// waiting to be sent.
type batchIO struct {
	conn   batchConn
	writes bool // batch writes: an IPv4 socket (x/net writes IPv4 peers of a dual-stack socket as AF_INET)
	in     []ipv4.Message
	out    []ipv4.Message
	outBuf []byte
}

func newBatchIO(c *net.UDPConn) *batchIO {
	b := &batchIO{in: make([]ipv4.Message, batchLen), out: make([]ipv4.Message, 0, batchLen),
		outBuf: make([]byte, batchLen*hvrMaxLen)}
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		b.conn, b.writes = ipv4.NewPacketConn(c), true
	} else {
		b.conn = ipv6.NewPacketConn(c)
	}
	for i := range b.in {
		b.in[i].Buffers = [][]byte{make([]byte, batchBufSize)}
	}
	return b
}

// read fills b.in and returns how many datagrams it holds.
func (b *batchIO) read() (int, error) { return b.conn.ReadBatch(b.in, 0) }

// datagram returns the i-th datagram read and its sender.
func (b *batchIO) datagram(i int) ([]byte, *net.UDPAddr) {
	a, _ := b.in[i].Addr.(*net.UDPAddr)
	return b.in[i].Buffers[0][:b.in[i].N], a
}

// queue adds a HelloVerifyRequest to the next batch; it reports false
// when batches are not written here (the caller sends it).
func (b *batchIO) queue(hvr []byte, to *net.UDPAddr) bool {
	if b == nil || !b.writes || len(hvr) > hvrMaxLen {
		return false
	}
	if len(b.out) == cap(b.out) {
		b.flush()
	}
	i := len(b.out)
	buf := b.outBuf[i*hvrMaxLen : i*hvrMaxLen+len(hvr)]
	copy(buf, hvr)
	b.out = append(b.out, ipv4.Message{Buffers: [][]byte{buf}, Addr: to})
	return true
}

// flush sends the queued HelloVerifyRequests. A datagram the system
// refuses is dropped, as a full socket buffer would drop it.
func (b *batchIO) flush() {
	if b == nil {
		return
	}
	for ms := b.out; len(ms) > 0; {
		n, err := b.conn.WriteBatch(ms, 0)
		if err != nil {
			n = max(n, 1)
		}
		ms = ms[n:]
	}
	clear(b.out)
	b.out = b.out[:0]
}
