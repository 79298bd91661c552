package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doze-io/doze/internal/lifecycle"
	mochi "github.com/mochi-mqtt/server/v2"
)

// Config holds the server's settings. The zero value serves plain MQTT on
// :1883 and no TLS.
type Config struct {
	// Addr is the TCP address for plain MQTT; "" means ":1883"; "off"
	// disables it.
	Addr string
	// TLSAddr is the TCP address for MQTT over TLS; "" means ":8883";
	// "off" disables it. It is served only when TLS is set.
	TLSAddr string
	// TLS is the server's TLS configuration; nil serves no TLS.
	TLS *tls.Config
	// MaxPayload is the largest payload a device may publish, in bytes;
	// 0 means 64 KiB (MQT-4).
	MaxPayload int
	// MaxBatchPayload is the largest payload of a gateway's batch report
	// (KindSubDeviceReports), in bytes; 0 means DefaultMaxBatchPayload or
	// MaxPayload, whichever is larger. It is never below MaxPayload.
	MaxBatchPayload int
	// MaxRate is how many messages per second one connection may
	// publish; 0 means 300 (MQT-4, §2.11).
	MaxRate int
	// AuthTimeout bounds one Devices.Authenticate call; 0 means 5s.
	AuthTimeout time.Duration
	// ConnectTimeout is how long a new connection has to send its
	// CONNECT (and finish its TLS handshake); 0 means
	// DefaultConnectTimeout. After the CONNECT the keep-alive rules.
	ConnectTimeout time.Duration
	// MaxPendingConnects is how many connections, over every listener,
	// may be open without having completed their CONNECT; a new one
	// above it is closed at once. 0 means DefaultMaxPendingConnects.
	MaxPendingConnects int
	// DeviceAuthLimit and AddrAuthLimit are the budgets of failed
	// authentications of a device (by the username it connects with and
	// both its names) and of a source address (an IPv6 /64); a zero
	// value means DefaultDeviceAuthLimit, DefaultAddrAuthLimit.
	DeviceAuthLimit, AddrAuthLimit AuthLimit
	// Logger gets the server's records and the broker library's; nil
	// discards them.
	Logger *slog.Logger
}

// Defaults (MQT-1, MQT-4).
const (
	DefaultAddr       = ":1883"
	DefaultTLSAddr    = ":8883"
	DefaultMaxPayload = 64 << 10
	DefaultMaxRate    = 300
	// DefaultConnectTimeout and DefaultMaxPendingConnects bound the
	// connections that have not completed their CONNECT (package doc).
	// 30 s: a TLS handshake and a CONNECT take three to four round trips,
	// and a round trip over NB-IoT in deep coverage can take seconds.
	DefaultConnectTimeout     = 30 * time.Second
	DefaultMaxPendingConnects = 1024
)

// Stats counts the messages and connections the server refused.
type Stats struct {
	AuthFailures  uint64 // connections refused: bad credentials or client id
	NotAuthorized uint64 // publishes and subscriptions outside the device's topics
	RateLimited   uint64 // messages over MaxRate
	TooLarge      uint64 // messages over MaxPayload
	Retained      uint64 // messages with the retain flag
	Refused       uint64 // messages the Handler refused or could not keep

	ConnectTimeouts uint64 // connections closed for sending no CONNECT within Config.ConnectTimeout
	PendingRefused  uint64 // connections closed at once: Config.MaxPendingConnects were pending
	AuthLimited     uint64 // CONNECTs refused unchecked: the device or address failed too often
}

// Server is an MQTT broker for devices (MQT-1…MQT-4), built on
// github.com/mochi-mqtt/server, with Doze's authentication, topic rules
// and limits.
type Server struct {
	cfg  Config
	devs Devices
	h    Handler
	log  *slog.Logger
	b    *mochi.Server

	life lifecycle.Guard // Run and Close

	mu       sync.Mutex
	sessions map[*mochi.Client]*session
	conns    map[string]int     // deviceId → open connections
	byTopic  map[string]*waiter // downlinks being published
	// inflight holds the downlinks waiting for their PUBACK, by the
	// connection the PUBLISH was written to and its packet id. An entry
	// moves to the connection that resumes the session (the broker
	// re-sends the PUBLISH there with DUP); see hook.OnQosPublish.
	inflight map[*mochi.Client]map[uint16]*waiter
	// down is set, under mu, when the broker is shut down, so that a
	// downlink either is refused or has its waiter failed by shutdown.
	down     bool
	listened bool

	stats struct {
		auth, acl, rate, size, retain, refused atomic.Uint64
		connectTimeouts, pendingRefused        atomic.Uint64
		authLimited                            atomic.Uint64
	}
	limits   authLimits
	attempts map[*mochi.Client]*attempt // CONNECTs whose credentials are being checked, under mu
	pending  pendingSet                 // connections that have not completed their CONNECT
	// Log summaries (one line a minute at most for each).
	acceptErrors, pendingRefusals, connectTimeouts, connErrors summary
	authRefusals, authLimited                                  summary
	shutdownOnce                                               sync.Once
}

type session struct {
	dev   Device
	limit bucket
}

type inflightKey struct {
	cl *mochi.Client
	id uint16
}

// waiter is one downlink waiting for its PUBACK.
type waiter struct {
	topic     string
	published chan struct{} // closed when the broker has it (byTopic no longer names it)
	done      chan error    // gets one value
	once      sync.Once
	keys      []inflightKey // where it is in Server.inflight
}

func (w *waiter) finish(err error) { w.once.Do(func() { w.done <- err }) }

// New returns a server that authenticates clients with devs and hands
// their messages to h. It checks cfg and opens nothing: call Run (or
// Listen first, to open the ports before serving).
func New(devs Devices, h Handler, cfg Config) (*Server, error) {
	if devs == nil || h == nil {
		return nil, errors.New("mqtt: New: nil Devices or Handler")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.TLSAddr == "" {
		cfg.TLSAddr = DefaultTLSAddr
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.MaxBatchPayload == 0 {
		cfg.MaxBatchPayload = max(DefaultMaxBatchPayload, cfg.MaxPayload)
	}
	if cfg.MaxRate == 0 {
		cfg.MaxRate = DefaultMaxRate
	}
	if cfg.AuthTimeout == 0 {
		cfg.AuthTimeout = 5 * time.Second
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.MaxPendingConnects == 0 {
		cfg.MaxPendingConnects = DefaultMaxPendingConnects
	}
	if cfg.DeviceAuthLimit == (AuthLimit{}) {
		cfg.DeviceAuthLimit = DefaultDeviceAuthLimit
	}
	if cfg.AddrAuthLimit == (AuthLimit{}) {
		cfg.AddrAuthLimit = DefaultAddrAuthLimit
	}
	for _, l := range []AuthLimit{cfg.DeviceAuthLimit, cfg.AddrAuthLimit} {
		if l.Burst < 1 || l.Every <= 0 {
			return nil, fmt.Errorf("mqtt: Config.DeviceAuthLimit or AddrAuthLimit %+v: Burst must be at least 1 and Every positive", l)
		}
	}
	if cfg.MaxPayload < 0 || cfg.MaxRate < 0 || cfg.AuthTimeout < 0 || cfg.ConnectTimeout < 0 || cfg.MaxPendingConnects < 0 {
		return nil, fmt.Errorf("mqtt: Config.MaxPayload %d, MaxRate %d, AuthTimeout %v, ConnectTimeout %v, MaxPendingConnects %d: must not be negative",
			cfg.MaxPayload, cfg.MaxRate, cfg.AuthTimeout, cfg.ConnectTimeout, cfg.MaxPendingConnects)
	}
	if cfg.MaxBatchPayload < cfg.MaxPayload {
		return nil, fmt.Errorf("mqtt: Config.MaxBatchPayload %d: must be at least MaxPayload (%d), or 0", cfg.MaxBatchPayload, cfg.MaxPayload)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumQos = 1                                                      // QoS 0 and 1 (MQT-4)
	caps.RetainAvailable = 0                                                 // retained messages refused (MQT-4)
	caps.SharedSubAvailable = 0                                              // a device shares its topics with nobody
	caps.MaximumPacketSize = uint32(cfg.MaxBatchPayload + 2*MaxIDLen + 1024) // payload, topic and properties; MaxPayload is checked per topic
	caps.MaximumSessionExpiryInterval = 24 * 3600
	caps.ReceiveMaximum = 64
	s := &Server{
		cfg: cfg, devs: devs, h: h, log: log,
		sessions: map[*mochi.Client]*session{},
		conns:    map[string]int{},
		byTopic:  map[string]*waiter{},
		inflight: map[*mochi.Client]map[uint16]*waiter{},
	}
	s.pending.max = cfg.MaxPendingConnects
	s.attempts = map[*mochi.Client]*attempt{}
	s.limits.dev = authBuckets{r: cfg.DeviceAuthLimit, max: maxAuthBuckets}
	s.limits.addr = authBuckets{r: cfg.AddrAuthLimit, max: maxAuthBuckets, parallel: addrParallel}
	s.b = mochi.New(&mochi.Options{Capabilities: caps, InlineClient: true, Logger: log.With("lib", "mochi"),
		SysTopicResendInterval: 3600})
	if err := s.b.AddHook(&hook{s: s}, nil); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	return s, nil
}

// Listen opens the listeners. One that cannot be opened is reported as a
// *ListenError (several are joined) and left out; the others stay open,
// so the caller may go on without it.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return ErrClosed
	}
	if s.listened {
		return nil
	}
	s.listened = true
	var errs []error
	add := func(id, addr string, tc *tls.Config) {
		if addr == "off" {
			return
		}
		l := &listener{s: s, id: id, addr: addr, tls: tc}
		if err := s.b.AddListener(l); err != nil {
			errs = append(errs, &ListenError{Listener: id, Addr: addr, Err: err})
		}
	}
	add("tcp", s.cfg.Addr, nil)
	if s.cfg.TLS != nil {
		add("tls", s.cfg.TLSAddr, s.cfg.TLS)
	}
	return errors.Join(errs...)
}

// Addr returns the address the listener id ("tcp" or "tls") is bound to,
// or "" when it is not open.
func (s *Server) Addr(id string) string {
	l, ok := s.b.Listeners.Get(id)
	if !ok {
		return ""
	}
	return l.Address()
}

// Run serves until ctx ends or Close is called, then shuts the broker
// down (see Close) and returns nil. It calls Listen if nobody did, and
// fails only if no listener is open. Run and Close follow the lifecycle
// of the package doc: a second Run returns an error wrapping ErrClosed
// ("Run called twice"), Run after Close returns ErrClosed.
func (s *Server) Run(ctx context.Context) error {
	ctx, err := s.life.Start(ctx, "mqtt.Server", ErrClosed)
	if err != nil {
		return err
	}
	defer s.life.Finish()
	defer s.shutdown()
	if err := s.Listen(); err != nil && s.b.Listeners.Len() == 0 {
		return err
	}
	if err := s.b.Serve(); err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	<-ctx.Done()
	return nil
}

// Close stops the broker: listeners and connections close, downlinks
// waiting for a PUBACK fail with ErrClosed. It is idempotent, may come
// before Run, and returns after Run has returned and the connections'
// goroutines have ended.
func (s *Server) Close() error {
	s.life.Stop()
	s.shutdown()
	return nil
}

// shutdown closes the broker once; a concurrent caller waits until it is
// closed.
func (s *Server) shutdown() {
	s.shutdownOnce.Do(func() {
		s.mu.Lock()
		s.down = true
		s.mu.Unlock()
		s.b.Close() // waits for every client's goroutine
		for _, m := range []*summary{&s.acceptErrors, &s.pendingRefusals, &s.connectTimeouts, &s.connErrors, &s.authRefusals, &s.authLimited} {
			m.flush(s)
		}
		s.mu.Lock()
		for _, ws := range s.inflight {
			for _, w := range ws {
				w.finish(ErrClosed)
			}
		}
		for _, w := range s.byTopic {
			w.finish(ErrClosed)
		}
		s.mu.Unlock()
	})
}

// Stats returns the refusal counters.
func (s *Server) Stats() Stats {
	return Stats{AuthFailures: s.stats.auth.Load(), NotAuthorized: s.stats.acl.Load(), RateLimited: s.stats.rate.Load(),
		TooLarge: s.stats.size.Load(), Retained: s.stats.retain.Load(), Refused: s.stats.refused.Load(),
		ConnectTimeouts: s.stats.connectTimeouts.Load(), PendingRefused: s.stats.pendingRefused.Load(),
		AuthLimited: s.stats.authLimited.Load()}
}

// Command publishes a command to the device on its command topic with
// request_id requestID, at QoS 1, and returns once the device acknowledged
// it (PUBACK): a nil error means DELIVERED. A device subscribed at QoS 0
// gets it at most once and Command returns when it was handed to the
// connection. Without a subscribed connection it fails with
// ErrNotSubscribed and sends nothing; so it does when the broker wrote it
// to no connection of a QoS 1 subscriber (a connection the broker lost
// track of, which it then closes: see unreached).
func (s *Server) Command(ctx context.Context, deviceID, requestID string, payload []byte) error {
	if err := checkID(requestID); err != nil {
		return fmt.Errorf("mqtt: request id %w", err)
	}
	return s.publish(ctx, CommandTopic(deviceID, requestID), payload)
}

// Event publishes a gateway's events/down message (an answer to its
// events, MQT-5), as Command does.
func (s *Server) Event(ctx context.Context, deviceID string, payload []byte) error {
	return s.publish(ctx, EventsDownTopic(deviceID), payload)
}

// Send publishes a binary downlink (a codec's encoding) on the device's
// messages/down topic, as Command does.
func (s *Server) Send(ctx context.Context, deviceID string, payload []byte) error {
	return s.publish(ctx, MessagesDownTopic(deviceID), payload)
}

func (s *Server) publish(ctx context.Context, topic string, payload []byte) error {
	subs := s.b.Topics.Subscribers(topic)
	if len(subs.Subscriptions) == 0 {
		return ErrNotSubscribed
	}
	w := &waiter{topic: topic, done: make(chan error, 1), published: make(chan struct{})}
	s.mu.Lock()
	for {
		if s.down {
			s.mu.Unlock()
			return ErrClosed
		}
		other, busy := s.byTopic[topic]
		if !busy {
			break
		}
		// Another message on this topic is being handed to the broker
		// (not waiting for its PUBACK yet): the packet ids it gets must
		// be told from this one's, so wait until it has them.
		s.mu.Unlock()
		select {
		case <-other.published:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
	s.byTopic[topic] = w
	s.mu.Unlock()

	err := s.b.Publish(topic, payload, false, 1)

	s.mu.Lock()
	delete(s.byTopic, topic)
	close(w.published)
	sent := len(w.keys)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("mqtt: publishing on %s: %w", topic, err)
	}
	if sent == 0 {
		// Every subscription was QoS 0: nothing will be acknowledged,
		// the hand-off is all there is. A QoS 1 subscription that got
		// no PUBLISH was not written to: not delivered.
		return s.unreached(topic, subs)
	}
	defer s.forget(w)
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unreached returns nil when every subscription to topic is QoS 0, and an
// error wrapping ErrNotSubscribed when one of QoS 1 or 2 got nothing. The
// broker writes only to the clients it knows by id, and the clean-up of a
// connection that closed cleanly removes its client id after the
// disconnect hook ran: a connection with the same client id opened in
// between stays open and subscribed, but the broker no longer knows it
// and writes it nothing. Such a connection is closed — the device
// connects again and is known — and the downlink waits for it.
func (s *Server) unreached(topic string, subs *mochi.Subscribers) error {
	var missed []string
	for id, sub := range subs.Subscriptions {
		if sub.Qos == 0 {
			continue
		}
		missed = append(missed, id)
		known, _ := s.b.Clients.Get(id)
		var lost []*mochi.Client
		s.mu.Lock()
		for cl := range s.sessions {
			if cl.ID == id && cl != known {
				lost = append(lost, cl)
			}
		}
		s.mu.Unlock()
		for _, cl := range lost {
			s.log.Warn("mqtt: closing a connection the broker no longer knows (its client id was cleaned up with an earlier connection); the device connects again",
				"client", id, "remote", addrOf(cl))
			cl.Stop(errUnknownToBroker)
		}
	}
	if len(missed) == 0 {
		return nil
	}
	slices.Sort(missed)
	return fmt.Errorf("%w: the broker wrote %s to no connection of client %s", ErrNotSubscribed, topic, strings.Join(missed, ", "))
}

// errUnknownToBroker closes a connection the broker lost track of.
var errUnknownToBroker = errors.New("mqtt: connection unknown to the broker")

// forget removes w's in-flight entries.
func (s *Server) forget(w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range w.keys {
		s.unmap(k, w)
	}
}

// track records, under mu, that w's PUBLISH went to cl with packet id id.
func (s *Server) track(cl *mochi.Client, id uint16, w *waiter) {
	ws := s.inflight[cl]
	if ws == nil {
		ws = map[uint16]*waiter{}
		s.inflight[cl] = ws
	}
	ws[id] = w
	w.keys = append(w.keys, inflightKey{cl, id})
}

// unmap removes k from inflight, under mu, if it maps to w (any waiter
// when w is nil), and returns the waiter it mapped to.
func (s *Server) unmap(k inflightKey, w *waiter) *waiter {
	ws := s.inflight[k.cl]
	got, ok := ws[k.id]
	if !ok || w != nil && got != w {
		return nil
	}
	delete(ws, k.id)
	if len(ws) == 0 {
		delete(s.inflight, k.cl)
	}
	return got
}

// failInflight fails, under mu, the downlinks in flight on cl with err;
// with other set, those of the connections with cl's client id other
// than cl.
func (s *Server) failInflight(cl *mochi.Client, other bool, err error) {
	for c, ws := range s.inflight {
		if other && (c == cl || c.ID != cl.ID) || !other && c != cl {
			continue
		}
		for id, w := range ws {
			s.unmap(inflightKey{c, id}, w)
			if other && slices.ContainsFunc(w.keys, func(k inflightKey) bool { return k.cl == cl }) {
				continue // re-sent on cl too (a takeover during the first send)
			}
			w.finish(err)
		}
	}
}

// Connected reports whether the device has an open connection.
func (s *Server) Connected(deviceID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[deviceID] > 0
}

// addrOf is the remote address of a client, for logs.
func addrOf(cl *mochi.Client) string {
	if cl.Net.Conn == nil {
		return ""
	}
	if a, ok := cl.Net.Conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.String()
	}
	return cl.Net.Remote
}
