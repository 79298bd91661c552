package mqtt

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// listener is the broker's TCP (or TLS) listener. It is the broker
// library's own TCP listener with two bounds on the connections that have
// not completed their CONNECT yet (pending: from accept until the broker
// first writes to the connection, its CONNACK, or the connection closes):
// each must send its CONNECT within Config.ConnectTimeout, and at most
// Config.MaxPendingConnects of them, over every listener, are held; the
// next one is closed at once. A failed Accept (out of file descriptors)
// is retried after a pause instead of stopping the listener.
type listener struct {
	s    *Server
	id   string
	addr string
	tls  *tls.Config
	ln   net.Listener
	end  atomic.Bool
	once sync.Once
}

var _ listeners.Listener = (*listener)(nil)

func (l *listener) ID() string       { return l.id }
func (l *listener) Protocol() string { return "tcp" }

func (l *listener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *listener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	l.ln = ln
	return err
}

// Serve accepts connections until Close. establish runs the broker's part
// (read the CONNECT, authenticate, serve) on the connection's goroutine.
func (l *listener) Serve(establish listeners.EstablishFn) {
	var pause time.Duration
	for {
		conn, err := l.ln.Accept()
		if l.end.Load() {
			if conn != nil {
				conn.Close()
			}
			return
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or another passing failure: wait
			// (5 ms doubling to 1 s, as net/http does) and go on.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			l.s.acceptErrors.note(l.s, "mqtt: accept failed; retrying", "listener", l.id, "err", err)
			time.Sleep(pause)
			continue
		}
		pause = 0
		pc := &pendingConn{Conn: conn, l: l}
		if !l.s.pending.admit(pc) {
			conn.Close()
			l.s.stats.pendingRefused.Add(1)
			l.s.pendingRefusals.note(l.s, "mqtt: connections closed at once: too many connections have not sent their CONNECT yet",
				"listener", l.id, "maxPendingConnects", l.s.cfg.MaxPendingConnects)
			continue
		}
		// The broker sets the keep-alive deadline (none for keep-alive 0)
		// once it has read the CONNECT; this one bounds what comes before,
		// the TLS handshake included.
		conn.SetDeadline(time.Now().Add(l.s.cfg.ConnectTimeout))
		if l.tls != nil {
			pc.Conn = tls.Server(conn, l.tls)
		}
		go func() {
			err := establish(l.id, pc)
			pc.Close()
			if err == nil {
				return
			}
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() && pc.wasPending() {
				l.s.stats.connectTimeouts.Add(1)
				l.s.connectTimeouts.note(l.s, "mqtt: connections closed: no CONNECT within the connect timeout",
					"listener", l.id, "connectTimeout", l.s.cfg.ConnectTimeout)
				return
			}
			l.s.connErrors.note(l.s, "mqtt: connections ended with an error", "listener", l.id, "last", err)
		}()
	}
}

// Close stops accepting, closes the connections that are still pending
// (the broker closes the others with closeClients) and the socket.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.once.Do(func() {
		l.end.Store(true)
		closeClients(l.id)
		if l.ln != nil {
			l.ln.Close()
		}
		l.s.pending.closeAll(l)
	})
}

// pendingConn is an accepted connection; it is pending until its first
// write or its close.
type pendingConn struct {
	net.Conn
	l    *listener
	once sync.Once
	done atomic.Bool // no longer pending because the broker wrote to it
}

func (c *pendingConn) Write(b []byte) (int, error) {
	c.settle(true)
	return c.Conn.Write(b)
}

func (c *pendingConn) Close() error {
	c.settle(false)
	return c.Conn.Close()
}

func (c *pendingConn) settle(wrote bool) {
	c.once.Do(func() {
		c.done.Store(wrote)
		c.l.s.pending.release(c)
	})
}

// wasPending reports whether the connection ended before the broker wrote
// to it.
func (c *pendingConn) wasPending() bool { return !c.done.Load() }

// pendingSet is the set of pending connections of every listener, at most
// max of them.
type pendingSet struct {
	mu    sync.Mutex
	max   int
	conns map[*pendingConn]struct{}
}

func (p *pendingSet) admit(c *pendingConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) >= p.max {
		return false
	}
	if p.conns == nil {
		p.conns = map[*pendingConn]struct{}{}
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *pendingSet) release(c *pendingConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *pendingSet) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// closeAll closes l's pending connections.
func (p *pendingSet) closeAll(l *listener) {
	p.mu.Lock()
	var cs []*pendingConn
	for c := range p.conns {
		if c.l == l {
			cs = append(cs, c)
		}
	}
	p.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// summaryEvery is how often at most a summary line of one kind of refusal
// is logged.
const summaryEvery = time.Minute

// summary aggregates one kind of event for the log: the first is logged
// at once, the next ones as a count at most once every summaryEvery (at
// the next event after it, or at shutdown). The Stats counters have every
// one.
type summary struct {
	mu    sync.Mutex
	n     int
	next  time.Time
	msg   string
	attrs []any
}

// note counts one event; when a summary is due it logs msg with the count
// of events since the last one and attrs.
func (m *summary) note(s *Server, msg string, attrs ...any) {
	now := time.Now()
	m.mu.Lock()
	m.n++
	m.msg, m.attrs = msg, attrs
	if now.Before(m.next) {
		m.mu.Unlock()
		return
	}
	n := m.n
	m.n, m.next = 0, now.Add(summaryEvery)
	m.mu.Unlock()
	s.log.Warn(msg, append([]any{"count", n, "per", summaryEvery.String()}, attrs...)...)
}

// flush logs what is counted and not logged yet.
func (m *summary) flush(s *Server) {
	m.mu.Lock()
	n, msg, attrs := m.n, m.msg, m.attrs
	m.n = 0
	m.mu.Unlock()
	if n > 0 {
		s.log.Warn(msg, append([]any{"count", n, "per", summaryEvery.String()}, attrs...)...)
	}
}
