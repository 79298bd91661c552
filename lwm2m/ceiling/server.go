package ceiling

import (
	"fmt"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	coapudp "github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Config configures a bare Server. The zero value serves plain CoAP on
// 127.0.0.1 on a free port.
type Config struct {
	// Addr is the UDP address to listen on; "" means 127.0.0.1:0.
	Addr string
	// PSK, when set, makes the server speak DTLS: it returns the key of a
	// PSK identity (an error refuses the handshake). nil serves plain CoAP.
	PSK func(identity []byte) ([]byte, error)
	// Idle is how long a connection may stay silent before the server
	// closes it; 0 means 1 hour. go-coap's own default (16 s) would close
	// the devices that registered first while a large run registers the
	// others, and the benchmarks compare sessions kept for sleeping
	// devices.
	Idle time.Duration
	// Tick is how often go-coap checks its connections (idle ones,
	// expired exchanges); 0 means 4 s, go-coap's own period.
	Tick time.Duration
	// Errors gets go-coap's errors; nil discards them.
	Errors func(error)
}

// Server is a bare go-coap server that only acknowledges (see the package
// doc). It is safe for concurrent use.
type Server struct {
	addr  string
	stop  func()
	close sync.Once
}

// Start listens on cfg.Addr and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Idle == 0 {
		cfg.Idle = time.Hour
	}
	if cfg.Tick == 0 {
		cfg.Tick = 4 * time.Second
	}
	if cfg.Idle < 0 || cfg.Tick < 0 {
		return nil, fmt.Errorf("ceiling: Config.Idle %v, Tick %v: must not be negative", cfg.Idle, cfg.Tick)
	}
	if cfg.Errors == nil {
		cfg.Errors = func(error) {}
	}
	r := mux.NewRouter()
	_ = r.Handle("/rd", mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
		_ = w.SetResponse(codes.Created, message.TextPlain, nil)
	}))
	_ = r.Handle("/dp", mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	}))
	idle := options.WithInactivityMonitor(cfg.Idle, func(cc *udpclient.Conn) { _ = cc.Close() })
	// go-coap's default periodic runner sleeps between ticks in a
	// goroutine that outlives Stop by up to a tick, and its default error
	// handler prints to stdout: the runner stops with the server, and the
	// errors go to cfg.Errors.
	runnerStop := make(chan struct{})
	var runners sync.WaitGroup
	periodic := options.WithPeriodicRunner(func(f func(now time.Time) bool) {
		runners.Add(1)
		go func() {
			defer runners.Done()
			t := time.NewTicker(cfg.Tick)
			defer t.Stop()
			for f(time.Now()) {
				select {
				case <-runnerStop:
					return
				case <-t.C:
				}
			}
		}()
	})
	errs := options.WithErrors(cfg.Errors)
	stopRunners := func() { close(runnerStop); runners.Wait() }
	done := make(chan struct{})
	if cfg.PSK != nil {
		l, err := coapnet.NewDTLSListener("udp", cfg.Addr, coapnet.NewDTLSServerOptions(
			piondtls.WithPSK(cfg.PSK),
			piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
			piondtls.WithExtendedMasterSecret(piondtls.RequestExtendedMasterSecret),
			piondtls.WithConnectionIDGenerator(piondtls.RandomCIDGenerator(8))))
		if err != nil {
			return nil, fmt.Errorf("ceiling: bare go-coap DTLS listener: %w", err)
		}
		s := coapdtls.NewServer(options.WithMux(r), idle, periodic, errs)
		go func() { _ = s.Serve(l); close(done) }()
		return &Server{addr: l.Addr().String(), stop: func() { s.Stop(); <-done; stopRunners() }}, nil
	}
	l, err := coapnet.NewListenUDP("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ceiling: bare go-coap UDP listener: %w", err)
	}
	s := coapudp.NewServer(options.WithMux(r), idle, periodic, errs)
	go func() { _ = s.Serve(l); close(done) }()
	return &Server{addr: l.LocalAddr().String(), stop: func() { s.Stop(); <-done; stopRunners() }}, nil
}

// Addr is the address the server listens on, host:port.
func (s *Server) Addr() string { return s.addr }

// Close stops the server and waits for its goroutines. It is idempotent.
func (s *Server) Close() error {
	s.close.Do(s.stop)
	return nil
}
