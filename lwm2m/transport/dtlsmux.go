package transport

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// dtlsMux demultiplexes the datagrams of the DTLS socket into one virtual
// packet connection per device for pion/dtls (it implements pion's
// PacketListener). It routes by DTLS Connection ID first (RFC 9146: a
// device behind a new address keeps its session) and by address
// otherwise. A record with a known Connection ID from a new address goes
// to its session with that source address, but the session moves to the
// address only when pion writes to it: pion adopts a peer's new address
// only after the record from there authenticated (RFC 9146 §6), so a
// forged record carrying a device's Connection ID moves nothing.
//
// ClientHellos never reach a connection directly: the gate (dtlsgate.go)
// answers them statelessly until one returns a valid cookie, which proves
// its sender's address. Only then does a connection exist, and a device
// that rebooted may start a new handshake from the address of its old
// session (unlike with pion's own listener): the old session, live or
// parked, is ended then, not before.
type dtlsMux struct {
	conn   *net.UDPConn
	cidLen int
	accept chan *vconn
	done   chan struct{}
	wg     sync.WaitGroup

	resume chan resumeItem
	look   *storeLookup // nil: records nobody knows are dropped (adopt.go)

	// The stateless side (dtlsgate.go). The reading goroutine reads in
	// batches (in) and checks cookies; the answering one sends the
	// HelloVerifyRequests (wbuf, out).
	jar     cookieJar
	in      *batchIO
	answers chan helloJob // nil: answered by the reading goroutine (tests)
	wbuf    []byte
	out     *batchIO                        // nil: one datagram at a time
	wr      func(b []byte, to *net.UDPAddr) // sends; nil means conn.WriteToUDP

	maxPending int // handshakes in flight at most (Config.MaxHandshakes)
	maxPerIP   int // of which from one source IP (IPv6: one /64) at most (Config.MaxHandshakesPerIP)
	stats      dtlsCounters
	agg        *logAgg

	mu           sync.Mutex
	byAddr       map[string]*vconn
	byCID        map[string]*vconn
	parked       map[*parkedConn]struct{}
	parkedByAddr map[string]*parkedConn
	parkedByCID  map[string]*parkedConn
	pending      int                  // virtual connections whose handshake is in flight
	pendingByIP  map[netip.Prefix]int // of which from each source IP (IPv6: /64)
	closed       bool
}

// dtlsReadBuffer is the receive buffer asked for the DTLS socket: bursts
// of a flood wait there rather than push a device's records out (Linux
// grants at most net.core.rmem_max).
const dtlsReadBuffer = 4 << 20

func newDTLSMux(conn *net.UDPConn, cidLen, maxPending, maxPerIP int, agg *logAgg) *dtlsMux {
	_ = conn.SetReadBuffer(dtlsReadBuffer) // best effort
	m := &dtlsMux{
		conn: conn, cidLen: cidLen, maxPending: maxPending, maxPerIP: maxPerIP, agg: agg,
		pendingByIP: make(map[netip.Prefix]int),
		accept:      make(chan *vconn, 128), done: make(chan struct{}),
		byAddr: make(map[string]*vconn), byCID: make(map[string]*vconn),
		resume: make(chan resumeItem, 1024),
		parked: make(map[*parkedConn]struct{}), parkedByAddr: make(map[string]*parkedConn),
		parkedByCID: make(map[string]*parkedConn),
	}
	m.in, m.out = newBatchIO(conn), newBatchIO(conn)
	m.answers = make(chan helloJob, answerQueue)
	m.wg.Add(2)
	go m.read()
	go m.answerHellos()
	return m
}

// DTLS record content types and the handshake type of a ClientHello.
const (
	ctHandshake   = 22
	ctAppData     = 23
	ctCID         = 25
	hsClientHello = 1
)

func (m *dtlsMux) read() {
	defer m.wg.Done()
	for {
		n, err := m.in.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-m.done:
				return
			default:
				continue
			}
		}
		now := time.Now()
		for i := range n {
			data, addr := m.in.datagram(i)
			switch {
			case len(data) == 0 || addr == nil:
			case isClientHelloRecord(data):
				m.hello(data, addr, now) // copies what it keeps
			default:
				m.route(append([]byte(nil), data...), addr)
			}
		}
	}
}

func (m *dtlsMux) route(data []byte, addr *net.UDPAddr) {
	if isClientHelloRecord(data) {
		m.hello(data, addr, time.Now())
		return
	}
	key := addr.String()
	m.mu.Lock()
	var v *vconn
	var cid string
	if data[0] == ctCID && m.cidLen > 0 && len(data) >= 13+m.cidLen {
		cid = string(data[11 : 11+m.cidLen])
		v = m.byCID[cid] // from a new address too: pion decides whether it moves (vconn.WriteTo)
	}
	if v == nil {
		v = m.byAddr[key]
		if v != nil && cid != "" && v.cid == "" {
			v.cid = cid
			m.byCID[cid] = v
		}
	}
	if v == nil && !m.closed {
		var p *parkedConn
		if cid != "" {
			p = m.parkedByCID[cid]
		}
		if p == nil {
			p = m.parkedByAddr[key]
		}
		if p != nil && len(m.resume) == cap(m.resume) {
			// Every resume slot is taken (a wake storm): drop this
			// datagram, not the session; the device retransmits and finds
			// its session still parked.
			m.mu.Unlock()
			return
		}
		if p != nil {
			m.unparkLocked(p)
			// at its last authenticated address; pion moves it when this
			// record, from wherever it came, authenticates
			v = m.newVconnLocked(p.addr, p.addrKey)
			v.cid, v.sawData = p.cid, true
			if v.cid != "" {
				m.byCID[v.cid] = v
			}
			select {
			case m.resume <- resumeItem{v: v, p: p}:
			default:
				v.closeLocked()
				m.mu.Unlock()
				return
			}
		}
	}
	if v == nil {
		if m.look != nil && !m.closed {
			m.lookupLocked(data, cid, key, addr, time.Now())
		}
		m.mu.Unlock()
		return // only a ClientHello with a valid cookie opens a connection
	}
	if data[0] == ctAppData || data[0] == ctCID {
		v.sawData = true
	}
	if v.hs != nil {
		normalizeRecordVersions(data)
	}
	m.mu.Unlock()
	select {
	case v.in <- datagram{data, addr}:
	default: // the session is not reading: drop, as a full socket would
	}
}

// datagram is one datagram for a session, with its source address.
type datagram struct {
	b    []byte
	from *net.UDPAddr
}

// move makes a the address of v, where pion writes to now (it has
// authenticated a record from there).
func (m *dtlsMux) move(v *vconn, a *net.UDPAddr) {
	key := a.String()
	m.mu.Lock()
	if v.closed || v.addrKey == key {
		m.mu.Unlock()
		return
	}
	if m.byAddr[v.addrKey] == v {
		delete(m.byAddr, v.addrKey)
	}
	if old := m.byAddr[key]; old != nil && old != v {
		old.closeLocked() // a session that lived at that address before
	}
	v.setAddr(a, key)
	m.byAddr[key] = v
	m.mu.Unlock()
}

func (m *dtlsMux) newVconnLocked(addr *net.UDPAddr, key string) *vconn {
	v := &vconn{mux: m, in: make(chan datagram, 32), done: make(chan struct{}), rd: newDeadline()}
	v.setAddr(addr, key)
	m.byAddr[key] = v
	return v
}

// find returns the live virtual connection of addr.
func (m *dtlsMux) find(addr net.Addr) *vconn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byAddr[addr.String()]
}

func (m *dtlsMux) silence(v *vconn) {
	m.mu.Lock()
	v.silent = true
	m.mu.Unlock()
}

func (m *dtlsMux) unsilence(v *vconn) {
	m.mu.Lock()
	v.silent = false
	m.mu.Unlock()
}

// park records p under v's Connection ID and address and ends v. Records
// that reached v but were not read yet resume the session at once.
func (m *dtlsMux) park(v *vconn, p *parkedConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p.cid, p.addrKey = v.cid, v.addrKey
	addr := v.remote()
	p.addr = addr
	v.closeLocked()
	var pending []datagram
	for len(v.in) > 0 {
		pending = append(pending, <-v.in)
	}
	if len(pending) > 0 && !m.closed {
		nv := m.newVconnLocked(addr, p.addrKey)
		nv.cid, nv.sawData = p.cid, true
		if nv.cid != "" {
			m.byCID[nv.cid] = nv
		}
		for _, b := range pending {
			nv.in <- b
		}
		select {
		case m.resume <- resumeItem{v: nv, p: p}:
			return
		default:
			nv.closeLocked()
		}
	}
	m.parked[p] = struct{}{}
	m.parkedByAddr[p.addrKey] = p
	if p.cid != "" {
		m.parkedByCID[p.cid] = p
	}
}

// forget drops a parked session that ended.
func (m *dtlsMux) forget(p *parkedConn) {
	m.mu.Lock()
	m.unparkLocked(p)
	m.mu.Unlock()
}

func (m *dtlsMux) unparkLocked(p *parkedConn) {
	delete(m.parked, p)
	if m.parkedByAddr[p.addrKey] == p {
		delete(m.parkedByAddr, p.addrKey)
	}
	if p.cid != "" && m.parkedByCID[p.cid] == p {
		delete(m.parkedByCID, p.cid)
	}
}

// Accept implements pion's PacketListener.
func (m *dtlsMux) Accept() (net.PacketConn, net.Addr, error) {
	select {
	case v := <-m.accept:
		return v, v.remote(), nil
	case <-m.done:
		return nil, nil, net.ErrClosed
	}
}

// Close implements pion's PacketListener: it closes the socket and every
// virtual connection and waits for the reading goroutine.
func (m *dtlsMux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	for _, v := range m.byAddr {
		v.closeLocked()
	}
	m.mu.Unlock()
	err := m.conn.Close()
	m.wg.Wait()
	return err
}

// Addr implements pion's PacketListener.
func (m *dtlsMux) Addr() net.Addr { return m.conn.LocalAddr() }

// vconn is one device's view of the DTLS socket.
type vconn struct {
	mux     *dtlsMux
	in      chan datagram
	done    chan struct{}
	rd      *deadline
	addrKey string // guarded by mux.mu
	cid     string // guarded by mux.mu
	sawData bool   // guarded by mux.mu
	silent  bool   // guarded by mux.mu: parking, writes are dropped
	closed  bool   // guarded by mux.mu

	hs     *handshake // guarded by mux.mu: the handshake in flight, nil after it
	random [32]byte   // the ClientHello random of v's handshake: a retransmission has the same

	amu  sync.Mutex
	addr *net.UDPAddr
}

func (v *vconn) setAddr(a *net.UDPAddr, key string) {
	v.addrKey = key
	v.amu.Lock()
	v.addr = a
	v.amu.Unlock()
}

func (v *vconn) remote() *net.UDPAddr {
	v.amu.Lock()
	defer v.amu.Unlock()
	return v.addr
}

func (v *vconn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case d := <-v.in:
		return copy(p, d.b), d.from, nil
	case <-v.done:
		return 0, nil, net.ErrClosed
	case <-v.rd.Done():
		return 0, nil, os.ErrDeadlineExceeded
	}
}

// WriteTo writes to the device. pion writes to the address of the latest
// authenticated record; when that is a new one, v moves there.
func (v *vconn) WriteTo(p []byte, to net.Addr) (int, error) {
	if len(p) > recordHeaderLen && p[0] == ctHandshake && p[3] == 0 && p[4] == 0 && p[recordHeaderLen] == hsHelloVerifyRequest {
		v.mux.pionVerified(v) // pion's own cookie round, played by the router
		return len(p), nil
	}
	if a, ok := to.(*net.UDPAddr); ok && a != nil {
		if cur := v.remote(); cur == nil || a.Port != cur.Port || !a.IP.Equal(cur.IP) {
			v.mux.move(v, a)
		}
	}
	v.mux.mu.Lock()
	silent, closed := v.silent, v.closed
	if v.hs != nil {
		v.hs.wrote(p)
	}
	v.mux.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	if silent {
		return len(p), nil
	}
	return v.mux.conn.WriteTo(p, v.remote())
}

// closeLocked ends v; mux.mu is held.
func (v *vconn) closeLocked() {
	if v.closed {
		return
	}
	v.closed = true
	close(v.done)
	v.mux.endHandshakeLocked(v)
	if v.mux.byAddr[v.addrKey] == v {
		delete(v.mux.byAddr, v.addrKey)
	}
	if v.cid != "" && v.mux.byCID[v.cid] == v {
		delete(v.mux.byCID, v.cid)
	}
}

func (v *vconn) Close() error {
	v.mux.mu.Lock()
	v.closeLocked()
	v.mux.mu.Unlock()
	v.rd.stop()
	return nil
}

func (v *vconn) LocalAddr() net.Addr                { return v.mux.conn.LocalAddr() }
func (v *vconn) SetDeadline(t time.Time) error      { v.rd.set(t); return nil }
func (v *vconn) SetReadDeadline(t time.Time) error  { v.rd.set(t); return nil }
func (v *vconn) SetWriteDeadline(t time.Time) error { return nil }

// deadline is a read deadline as a channel that closes when it passes.
type deadline struct {
	mu    sync.Mutex
	ch    chan struct{}
	timer *time.Timer
}

func newDeadline() *deadline { return &deadline{ch: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	select {
	case <-d.ch:
		d.ch = make(chan struct{}) // re-arm after a deadline that passed
	default:
	}
	if t.IsZero() {
		return
	}
	ch := d.ch
	if dur := time.Until(t); dur <= 0 {
		close(ch)
	} else {
		d.timer = time.AfterFunc(dur, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			select {
			case <-ch:
			default:
				close(ch)
			}
		})
	}
}

func (d *deadline) stop() {
	d.mu.Lock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.mu.Unlock()
}

func (d *deadline) Done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}
