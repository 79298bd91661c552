package push

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doze-io/doze/internal/lifecycle"
)

// Engine keeps subscriptions and delivers pushes from a durable outbox
// (PSH-1 … PSH-7). Create it with New, start delivery with Run, stop it with
// Close. Subscription methods work without Run; messages enqueued before Run
// wait in the Store until Run starts.
type Engine struct {
	cfg       Config
	store     Store
	guard     guard
	client    *http.Client
	transport *http.Transport // the engine's own, nil when Config.Transport replaced it

	nodeID uint32 // random, makes message ids unique across processes
	seq    atomic.Uint32

	subMu sync.Mutex // serializes Subscribe so the host:port rule holds

	tlsMu      sync.Mutex
	appClients map[string]appClient // application → its own TLS trust (Config.TLSConfig)

	cacheMu  sync.Mutex
	cache    map[Filter]cachedSubs // report subscribers (Config.SubscriptionCache)
	cacheGen uint64                // bumped by every subscription change

	// loadMu orders Enqueue (read side: store write + memory add) against
	// Run loading and unloading the outbox (write side), so that a message
	// is never in memory twice nor missing.
	loadMu sync.RWMutex

	mu      sync.Mutex
	loaded  bool
	eps     map[string]*endpoint
	ring    []*endpoint // endpoints with waiting messages, served round-robin
	rr      int
	deletes chan Message // to the deleter while Run runs
	wake    chan struct{}

	enqueued, delivered, retried, dropped, rejected, refused atomic.Uint64

	claim *claimState // nil unless Config.Node is set (claim.go)

	life lifecycle.Guard // Run and Close (see the package doc)
}

// New returns an Engine over st with cfg's settings. It starts nothing.
func New(st Store, cfg Config) (*Engine, error) {
	if st == nil {
		return nil, errors.New("push: New needs a Store")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := &Engine{
		cfg:    cfg,
		store:  st,
		guard:  guard{allow: slices.Clone(cfg.Allow)},
		nodeID: binary.BigEndian.Uint32(b[:]),
		eps:    make(map[string]*endpoint),
		wake:   make(chan struct{}, 1),
	}
	if cfg.Node != "" {
		c, ok := st.(Claimer)
		if !ok {
			return nil, fmt.Errorf("push: Config.Node %q is set, but the Store (%T) cannot claim messages (push.Claimer); leave Node empty for a Store of one node", cfg.Node, st)
		}
		e.claim = &claimState{claimer: c}
	}
	rt := cfg.Transport
	if rt == nil {
		e.transport = e.newTransport(cfg.TLSClientConfig)
		rt = e.transport
	}
	e.client = newClient(rt)
	return e, nil
}

// newTransport returns an HTTP transport whose dials pass the SSRF guard,
// with TLS settings tc.
func (e *Engine) newTransport(tc *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: e.cfg.Timeout, KeepAlive: 30 * time.Second, Control: e.guard.control}
	return &http.Transport{
		Proxy:               nil, // a proxy would hide the real address from the guard
		DialContext:         d.DialContext,
		ForceAttemptHTTP2:   true,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: e.cfg.Timeout,
		MaxIdleConns:        4 * e.cfg.Workers,
		MaxIdleConnsPerHost: e.cfg.EndpointConcurrency,
		IdleConnTimeout:     90 * time.Second,
	}
}

func newClient(rt http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: rt,
		// Redirects are not followed: a 3xx is a final answer, and
		// following one could lead past the guard's resolution check.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Config returns the engine's settings with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Endpoints returns the state of every URL a message was queued for since
// New, ordered by URL (PSH-4; GET /doze/v1/endpoints).
func (e *Engine) Endpoints() []EndpointState {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]EndpointState, 0, len(e.eps))
	for _, ep := range e.eps {
		out = append(out, ep.state())
	}
	slices.SortFunc(out, func(a, b EndpointState) int { return strings.Compare(a.CallbackURL, b.CallbackURL) })
	return out
}

// Endpoint returns the state of one URL; ok is false if no message was
// ever queued for it.
func (e *Engine) Endpoint(callbackURL string) (s EndpointState, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep := e.eps[callbackURL]
	if ep == nil {
		return EndpointState{}, false
	}
	return ep.state(), true
}

// Stats returns the engine's counters and, per URL, queue depth, lag and
// counters (PSH-7), for the platform to export as metrics.
func (e *Engine) Stats() Stats {
	now := time.Now()
	st := Stats{
		Enqueued:  e.enqueued.Load(),
		Delivered: e.delivered.Load(),
		Retried:   e.retried.Load(),
		Dropped:   e.dropped.Load(),
		Rejected:  e.rejected.Load(),
		Refused:   e.refused.Load(),
	}
	e.mu.Lock()
	for _, ep := range e.eps {
		es := EndpointStats{
			EndpointState: ep.state(),
			InFlight:      ep.inflight,
			Delivered:     ep.delivered,
			Retried:       ep.retried,
			Dropped:       ep.dropped,
			Rejected:      ep.rejected,
		}
		if len(ep.queue) > 0 {
			es.Lag = now.Sub(ep.queue[0].Created)
		}
		st.Queued += es.Queued
		st.Endpoints = append(st.Endpoints, es)
	}
	e.mu.Unlock()
	slices.SortFunc(st.Endpoints, func(a, b EndpointStats) int { return strings.Compare(a.CallbackURL, b.CallbackURL) })
	return st
}
