// Package brokertest is what the tests that talk to the machine's real
// message brokers share: their addresses, a check that skips a test when a
// broker does not answer (and fails it under CI=true, where .ci/run has
// started them), unique subject/topic names, and a TCP proxy that plays a
// broker that is down until the test starts it.
package brokertest

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// The brokers of the machine (.ci/run starts them when they are stopped).
const (
	NATS = "127.0.0.1:4222"
	MQTT = "127.0.0.1:1883"
	AMQP = "127.0.0.1:5672"
)

// Need skips t when nothing answers on addr, or fails it under CI=true.
func Need(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s does not answer on %s under CI: %v", name, addr, err)
	}
	t.Skipf("%s does not answer on %s: %v", name, addr, err)
}

// Name returns prefix followed by 12 random hex digits, so tests sharing a
// broker never read each other's messages.
func Name(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Proxy forwards TCP connections from a free loopback port (Addr) to a
// broker once started; before, nothing listens there: a broker that is down.
type Proxy struct {
	Addr string
	to   string
	ln   net.Listener
	wg   sync.WaitGroup
}

// NewProxy reserves a port for a proxy to to; it is stopped at t's end.
func NewProxy(t testing.TB, to string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), to: to}
	ln.Close() // down until Start
	t.Cleanup(p.Stop)
	return p
}

// Start brings the broker "up": connections to Addr reach it.
func (p *Proxy) Start(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", p.to)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(b, c); b.Close() }()
			go func() { io.Copy(c, b); c.Close() }()
		}
	})
}

// Stop closes the listener (connections already made go on).
func (p *Proxy) Stop() {
	if p.ln != nil {
		p.ln.Close()
		p.wg.Wait()
	}
}
