package transport

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var memPort atomic.Int32

// memLink joins a Server session and a Client through channels instead of
// sockets, so that tests of waiting code run inside synctest bubbles.
type memLink struct {
	sess *session
	cli  *Client
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	toCli   []time.Time // when the server transmitted
	dropCli bool        // lose everything the server sends
}

func newMemLink(t *testing.T, s *Server, cfg ClientConfig) *memLink {
	t.Helper()
	l := &memLink{done: make(chan struct{})}
	toSrv, toCli := make(chan []byte, 256), make(chan []byte, 256)
	l.sess = s.newSession(false)
	l.sess.addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 30000 + int(memPort.Add(1))}
	l.sess.memTx = func(b []byte) error {
		l.mu.Lock()
		l.toCli = append(l.toCli, time.Now())
		drop := l.dropCli
		l.mu.Unlock()
		if drop {
			return nil
		}
		select {
		case toCli <- append([]byte(nil), b...):
		case <-l.done:
		}
		return nil
	}
	s.mu.Lock()
	s.udpPeers[l.sess.addr.String()] = l.sess
	s.mu.Unlock()
	if cfg.Server == "" {
		cfg.Server = "mem:0"
	}
	c, err := NewClient(cfg)
	require.NoError(t, err)
	c.attach(func(b []byte) error {
		select {
		case toSrv <- append([]byte(nil), b...):
		case <-l.done:
		}
		return nil
	})
	l.cli = c
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case b := <-toSrv:
				l.sess.ex.receive(b)
			case <-l.done:
				return
			}
		}
	}()
	go func() {
		defer l.wg.Done()
		for {
			select {
			case b := <-toCli:
				c.ex.receive(b)
			case <-l.done:
				return
			}
		}
	}()
	return l
}

func (l *memLink) close() {
	close(l.done)
	l.wg.Wait()
	l.cli.ex.close()
}

func (l *memLink) sends() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.toCli...)
}

func (l *memLink) setDrop(v bool) {
	l.mu.Lock()
	l.dropCli = v
	l.toCli = nil
	l.mu.Unlock()
}

// newMemServer is a Server that is never Run: tests attach memLinks.
func newMemServer(t *testing.T, cfg Config) (*Server, *recorder) {
	t.Helper()
	cfg.DisableDTLS = true
	if cfg.Policy == nil {
		cfg.Policy = plainOnly
	}
	rec := newRecorder()
	s, err := New(cfg, nil, rec)
	require.NoError(t, err)
	return s, rec
}
