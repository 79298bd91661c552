// Package ceiling is the measuring baseline of Doze's MQTT load runs: a
// bare mochi-mqtt broker with no hook but one that allows every client
// and every topic. It is not a product server (that is mqtt.Server, with
// Doze's authentication, topic rules and limits): it is what the broker
// library does alone on the same machine, the ceiling the simulator's MQTT
// load mode (examples/device -mqtt … -load) compares the platform against.
//
// Start starts a Broker at once, as net/http/httptest does; Close stops it
// and waits for its clients' goroutines, and may be called more than once.
package ceiling

import (
	"fmt"
	"log/slog"
	"net"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Config configures a bare Broker. The zero value listens on 127.0.0.1 on
// a free port and discards the library's logs.
type Config struct {
	// Addr is the TCP address to listen on; "" means 127.0.0.1:0.
	Addr string
	// Logger gets the broker library's records; nil discards them.
	Logger *slog.Logger
}

// Broker is a bare mochi-mqtt broker (see the package doc).
type Broker struct {
	b     *mochi.Server
	addr  string
	close sync.Once
}

// Start listens on cfg.Addr and serves plain MQTT until Close.
func Start(cfg Config) (*Broker, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ceiling: bare broker: %w", err)
	}
	b := mochi.New(&mochi.Options{Logger: cfg.Logger})
	if err := b.AddHook(new(allowAll), nil); err != nil {
		l.Close()
		return nil, fmt.Errorf("ceiling: bare broker: %w", err)
	}
	if err := b.AddListener(listeners.NewNet("tcp", l)); err != nil {
		l.Close()
		return nil, fmt.Errorf("ceiling: bare broker listener: %w", err)
	}
	if err := b.Serve(); err != nil {
		b.Close()
		return nil, fmt.Errorf("ceiling: bare broker: %w", err)
	}
	return &Broker{b: b, addr: l.Addr().String()}, nil
}

// Addr is the address the broker listens on, host:port.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker: its listener and every connection close. It is
// idempotent.
func (b *Broker) Close() error {
	b.close.Do(func() { _ = b.b.Close() })
	return nil
}

// allowAll lets every client connect and use every topic: the bare
// broker has no rules of its own.
type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool              { return true }
