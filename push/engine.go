package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

	uuidMu  sync.Mutex
	uuidMS  uint64
	uuidSeq uint16

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

	runMu   sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
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

// ---- subscriptions (PSH-1, PSH-2) ----

// CheckURL checks raw against PSH-2 and the SSRF guard: the URL rules of
// ParseCallbackURL, then every address the host resolves to. It returns a
// *URLError naming the broken rule.
func (e *Engine) CheckURL(ctx context.Context, raw string) error {
	u, err := ParseCallbackURL(raw)
	if err != nil {
		return err
	}
	return e.guard.resolve(ctx, e.cfg.Resolver, u, raw)
}

// CheckCallback checks a command's callbackUrl (CMD-6): the rules of
// CheckURL, and the host and port of appID's subscriptions, if it has any
// (else *OriginError wrapping ErrOriginConflict; the platform answers 403).
func (e *Engine) CheckCallback(ctx context.Context, appID, raw string) error {
	if err := e.CheckURL(ctx, raw); err != nil {
		return err
	}
	u, _ := ParseCallbackURL(raw)
	return e.checkOrigin(ctx, appID, u, raw)
}

func (e *Engine) checkOrigin(ctx context.Context, appID string, u *url.URL, raw string) error {
	subs, err := e.store.Subscriptions(ctx, Filter{AppID: appID})
	if err != nil {
		return fmt.Errorf("push: reading subscriptions of %q: %w", appID, err)
	}
	got := origin(u)
	for _, s := range subs {
		su, err := ParseCallbackURL(s.CallbackURL)
		if err != nil {
			continue // stored before the rules tightened; do not let it block
		}
		if want := origin(su); want != got {
			return &OriginError{AppID: appID, URL: raw, Got: got, Want: want}
		}
	}
	return nil
}

// Subscribe stores s and returns it with its new ID and Created time
// (PSH-1). It refuses an unknown notify type (*NotifyTypeError), a URL that
// breaks PSH-2 (*URLError), a malformed secret (ErrSecret) and a URL whose
// host and port differ from the application's other subscriptions
// (*OriginError). Subscribing the same app, type and URL again returns the
// existing subscription (with the new secret), so pushes are not doubled.
func (e *Engine) Subscribe(ctx context.Context, s Subscription) (Subscription, error) {
	if !s.NotifyType.Valid() {
		return Subscription{}, &NotifyTypeError{NotifyType: string(s.NotifyType)}
	}
	if s.Secret != "" {
		if _, err := s.Secret.Key(); err != nil {
			return Subscription{}, err
		}
	}
	if err := e.CheckURL(ctx, s.CallbackURL); err != nil {
		return Subscription{}, err
	}
	u, _ := ParseCallbackURL(s.CallbackURL)
	e.subMu.Lock()
	defer e.subMu.Unlock()
	defer e.forgetSubscribers()
	if err := e.checkOrigin(ctx, s.AppID, u, s.CallbackURL); err != nil {
		return Subscription{}, err
	}
	same, err := e.store.Subscriptions(ctx, Filter{AppID: s.AppID, NotifyType: s.NotifyType, CallbackURL: s.CallbackURL})
	if err != nil {
		return Subscription{}, fmt.Errorf("push: reading subscriptions: %w", err)
	}
	if len(same) > 0 {
		old := same[0]
		if old.Secret != s.Secret {
			old.Secret = s.Secret
			if err := e.store.PutSubscription(ctx, old); err != nil {
				return Subscription{}, fmt.Errorf("push: storing subscription: %w", err)
			}
		}
		return old, nil
	}
	s.Created = time.Now().UTC()
	s.ID = e.newUUIDv7(s.Created)
	if err := e.store.PutSubscription(ctx, s); err != nil {
		return Subscription{}, fmt.Errorf("push: storing subscription: %w", err)
	}
	return s, nil
}

// Subscription returns the subscription with id, or ErrNotFound.
func (e *Engine) Subscription(ctx context.Context, id string) (Subscription, error) {
	return e.store.Subscription(ctx, id)
}

// Subscriptions lists the subscriptions f matches, ordered by ID (which is
// creation order).
func (e *Engine) Subscriptions(ctx context.Context, f Filter) ([]Subscription, error) {
	return e.store.Subscriptions(ctx, f)
}

// Unsubscribe deletes the subscription with id, or returns ErrNotFound.
func (e *Engine) Unsubscribe(ctx context.Context, id string) error {
	defer e.forgetSubscribers()
	n, err := e.store.DeleteSubscriptions(ctx, id)
	if err != nil {
		return fmt.Errorf("push: deleting subscription %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return nil
}

// UnsubscribeAll deletes every subscription f matches (bulk delete by
// notify type and/or callback URL, §5.10) and returns how many it deleted.
func (e *Engine) UnsubscribeAll(ctx context.Context, f Filter) (int, error) {
	e.subMu.Lock()
	defer e.subMu.Unlock()
	defer e.forgetSubscribers()
	subs, err := e.store.Subscriptions(ctx, f)
	if err != nil {
		return 0, fmt.Errorf("push: reading subscriptions: %w", err)
	}
	ids := make([]string, len(subs))
	for i, s := range subs {
		ids[i] = s.ID
	}
	n, err := e.store.DeleteSubscriptions(ctx, ids...)
	if err != nil {
		return 0, fmt.Errorf("push: deleting %d subscriptions: %w", len(ids), err)
	}
	return n, nil
}

// ---- publishing ----

// Publish enqueues n for every subscription of appID to n's notify type and
// returns how many messages it enqueued (0 when nobody subscribes). For a
// device report use PublishReport, which splits deviceDataChanged.
func (e *Engine) Publish(ctx context.Context, appID string, n Notification) (int, error) {
	body, err := n.MarshalJSON()
	if err != nil {
		return 0, e.refuse(1, appID, n.NotifyType(), fmt.Errorf("push: encoding %s: %w", n.NotifyType(), err))
	}
	subs, err := e.store.Subscriptions(ctx, Filter{AppID: appID, NotifyType: n.NotifyType()})
	if err != nil {
		return 0, e.refuse(1, appID, n.NotifyType(), fmt.Errorf("push: reading subscriptions: %w", err))
	}
	now := time.Now()
	msgs := make([]Message, 0, len(subs))
	for _, s := range subs {
		msgs = append(msgs, e.newMessage(now, s.CallbackURL, body, s.Secret, s.NotifyType, s.ID, s.AppID))
	}
	return len(msgs), e.enqueue(ctx, msgs)
}

// PublishReport enqueues one device report (PSH-3, FAQ §5.13, §5.16): one
// deviceDataChanged push per service to each deviceDataChanged subscriber,
// and one deviceDatasChanged push with every service to each
// deviceDatasChanged subscriber; a subscriber of both gets both. It
// returns how many messages it enqueued; all are stored in one write.
func (e *Engine) PublishReport(ctx context.Context, appID string, r Report) (int, error) {
	msgs, err := e.ReportMessages(ctx, appID, r)
	if err != nil {
		return 0, err
	}
	return len(msgs), e.enqueue(ctx, msgs)
}

// ReportMessages returns the messages PublishReport would enqueue for r,
// without storing or queueing them: a caller that writes them to the
// Store in a transaction of its own (with the rest of what a report
// causes) hands them to Admit. Each body is encoded once and shared by
// every subscriber it goes to.
func (e *Engine) ReportMessages(ctx context.Context, appID string, r Report) ([]Message, error) {
	one, err := e.subscribers(ctx, Filter{AppID: appID, NotifyType: DeviceDataChanged})
	if err != nil {
		return nil, e.refuse(1, appID, DeviceDataChanged, fmt.Errorf("push: reading subscriptions: %w", err))
	}
	all, err := e.subscribers(ctx, Filter{AppID: appID, NotifyType: DeviceDatasChanged})
	if err != nil {
		return nil, e.refuse(1, appID, DeviceDatasChanged, fmt.Errorf("push: reading subscriptions: %w", err))
	}
	now := time.Now()
	var msgs []Message
	if len(one) > 0 {
		for _, b := range r.DataChanged() {
			body, err := b.MarshalJSON()
			if err != nil {
				return nil, e.refuse(len(one), appID, DeviceDataChanged,
					fmt.Errorf("push: encoding deviceDataChanged of service %q: %w", b.Service.ServiceID, err))
			}
			for _, s := range one {
				msgs = append(msgs, e.newMessage(now, s.CallbackURL, body, s.Secret, s.NotifyType, s.ID, s.AppID))
			}
		}
	}
	if len(all) > 0 {
		body, err := r.DatasChanged().MarshalJSON()
		if err != nil {
			return nil, e.refuse(len(all), appID, DeviceDatasChanged, fmt.Errorf("push: encoding deviceDatasChanged: %w", err))
		}
		for _, s := range all {
			msgs = append(msgs, e.newMessage(now, s.CallbackURL, body, s.Secret, s.NotifyType, s.ID, s.AppID))
		}
	}
	return msgs, nil
}

// Admit queues msgs, which write stores in the engine's Store: the caller
// writes them there in a transaction of its own, with the other effects of
// what caused them, so that all are kept or none (one commit instead of
// one per effect). Admit calls write exactly once, even for no messages,
// unless the engine is closed or a URL's queue is full; then, or when write
// fails, it counts and logs the messages as refused and returns why, and
// nothing is queued. The messages should come from ReportMessages (or be
// built alike, with ids unique to this engine).
func (e *Engine) Admit(ctx context.Context, msgs []Message, write func() error) error {
	return e.admit(ctx, msgs, write)
}

// Store returns the Store the engine keeps its subscriptions and outbox in.
func (e *Engine) Store() Store { return e.store }

type cachedSubs struct {
	subs []Subscription
	at   time.Time
}

// subscribers returns the subscriptions f matches, from the cache when
// they were looked up less than Config.SubscriptionCache ago. The result
// is shared: callers must not change it.
func (e *Engine) subscribers(ctx context.Context, f Filter) ([]Subscription, error) {
	ttl := e.cfg.SubscriptionCache
	if ttl < 0 {
		return e.store.Subscriptions(ctx, f)
	}
	now := time.Now()
	e.cacheMu.Lock()
	c, ok := e.cache[f]
	gen := e.cacheGen
	e.cacheMu.Unlock()
	if ok && now.Sub(c.at) < ttl {
		return c.subs, nil
	}
	subs, err := e.store.Subscriptions(ctx, f)
	if err != nil {
		return nil, err
	}
	e.cacheMu.Lock()
	if e.cacheGen == gen { // no change since the read began
		if e.cache == nil || len(e.cache) >= maxCachedFilters {
			e.cache = make(map[Filter]cachedSubs)
		}
		e.cache[f] = cachedSubs{subs: subs, at: now}
	}
	e.cacheMu.Unlock()
	return subs, nil
}

// maxCachedFilters bounds the subscriber cache: two entries per
// application that reports are published to.
const maxCachedFilters = 4096

// forgetSubscribers empties the subscriber cache after a change.
func (e *Engine) forgetSubscribers() {
	e.cacheMu.Lock()
	e.cacheGen++
	e.cache = nil
	e.cacheMu.Unlock()
}

// Send enqueues body for callbackURL without a subscription: the command
// callback of CMD-6 (see CommandResult). It checks the URL against PSH-2
// (an IP-literal host also against the SSRF guard; a name is checked at
// dial time), signs with secret when it is not empty, and returns the
// message's id (its webhook-id).
func (e *Engine) Send(ctx context.Context, callbackURL string, body []byte, secret Secret) (string, error) {
	return e.SendFor(ctx, "", callbackURL, body, secret)
}

// SendFor is Send for a message of application appID, whose TLS trust
// (Config.TLSConfig) verifies an https callbackURL (APP-6).
func (e *Engine) SendFor(ctx context.Context, appID, callbackURL string, body []byte, secret Secret) (string, error) {
	u, err := ParseCallbackURL(callbackURL)
	if err != nil {
		return "", err
	}
	if err := e.guard.resolve(ctx, nil, u, callbackURL); err != nil {
		return "", err
	}
	if secret != "" {
		if _, err := secret.Key(); err != nil {
			return "", err
		}
	}
	m := e.newMessage(time.Now(), callbackURL, slices.Clone(body), secret, "", "", appID)
	if err := e.enqueue(ctx, []Message{m}); err != nil {
		return "", err
	}
	return m.ID, nil
}

func (e *Engine) newMessage(now time.Time, dest string, body []byte, secret Secret, t NotifyType, subID, appID string) Message {
	return Message{
		AppID:          appID,
		ID:             e.newMessageID(now),
		URL:            dest,
		Body:           body,
		Secret:         secret,
		NotifyType:     t,
		SubscriptionID: subID,
		Created:        now,
		Expires:        now.Add(e.cfg.KeepTime),
	}
}

// newMessageID returns "msg_" and 32 hex digits: creation time in ns, the
// node's random id, a sequence number; ids sort by creation.
func (e *Engine) newMessageID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:], uint64(now.UnixNano()))
	binary.BigEndian.PutUint32(b[8:], e.nodeID)
	binary.BigEndian.PutUint32(b[12:], e.seq.Add(1))
	return "msg_" + hex.EncodeToString(b[:])
}

// newUUIDv7 returns a time-ordered UUID (RFC 9562 version 7) whose 12-bit
// rand_a field counts within a millisecond (method 1 of RFC 9562 §6.2), so
// ids made by one engine sort in creation order.
func (e *Engine) newUUIDv7(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[8:])
	e.uuidMu.Lock()
	ms := uint64(now.UnixMilli())
	if ms <= e.uuidMS {
		ms = e.uuidMS
		e.uuidSeq++
		if e.uuidSeq > 0xfff {
			ms++
			e.uuidSeq = 0
		}
	} else {
		e.uuidSeq = 0
	}
	e.uuidMS = ms
	seq := e.uuidSeq
	e.uuidMu.Unlock()
	b[6], b[7] = byte(seq>>8), byte(seq)
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// refuse counts n pushes the engine could not accept and logs why; it
// returns err for the caller, who still holds what it wanted pushed (an
// uplink in its inbox) and may try again (SEC-6). n < 1 counts one.
func (e *Engine) refuse(n int, appID string, t NotifyType, err error) error {
	e.refused.Add(uint64(max(n, 1)))
	e.cfg.Logger.Error("push: not accepted", "app", appID, "notifyType", string(t), "messages", n, "err", err)
	return err
}

// refuseAll is refuse for a batch of messages, named by their first.
func (e *Engine) refuseAll(msgs []Message, err error) error {
	m := msgs[0]
	e.refused.Add(uint64(len(msgs)))
	e.cfg.Logger.Error("push: not accepted", "notifyType", string(m.NotifyType), "subscription", m.SubscriptionID,
		"url", m.URL, "messages", len(msgs), "err", err)
	return err
}

// enqueue stores msgs (one write) and, while Run runs, queues them. When
// it cannot, it counts and logs them as refused and returns why.
func (e *Engine) enqueue(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	return e.admit(ctx, msgs, func() error { return e.store.PutMessages(ctx, msgs...) })
}

// admit runs write, which stores msgs, and then queues them while Run
// runs. The store write and the queueing happen under loadMu, so that Run
// loading the outbox never sees a message twice nor misses one.
func (e *Engine) admit(ctx context.Context, msgs []Message, write func() error) error {
	refuse := func(err error) error {
		if len(msgs) == 0 {
			return err
		}
		return e.refuseAll(msgs, err)
	}
	e.runMu.Lock()
	closed := e.closed
	e.runMu.Unlock()
	if closed {
		return refuse(ErrClosed)
	}
	e.loadMu.RLock()
	defer e.loadMu.RUnlock()
	e.mu.Lock()
	loaded := e.loaded
	if loaded && len(msgs) > 0 {
		count := make(map[string]int)
		for _, m := range msgs {
			count[m.URL]++
		}
		for u, n := range count {
			if ep := e.eps[u]; ep != nil && len(ep.queue)+ep.inflight+n > e.cfg.MaxQueued {
				e.mu.Unlock()
				return refuse(&QueueFullError{URL: u, Limit: e.cfg.MaxQueued})
			}
		}
	}
	e.mu.Unlock()
	if err := write(); err != nil {
		return refuse(fmt.Errorf("push: storing %d messages: %w", len(msgs), err))
	}
	if len(msgs) == 0 {
		return nil
	}
	e.enqueued.Add(uint64(len(msgs)))
	if !loaded {
		return nil
	}
	e.mu.Lock()
	for i := range msgs {
		m := msgs[i]
		e.add(&m)
	}
	e.mu.Unlock()
	e.wakeup()
	return nil
}

// add queues m on its endpoint. e.mu is held.
func (e *Engine) add(m *Message) {
	ep := e.eps[m.URL]
	if ep == nil {
		ep = &endpoint{url: m.URL}
		e.eps[m.URL] = ep
	}
	ep.insert(m)
	if !ep.inRing {
		ep.inRing = true
		e.ring = append(e.ring, ep)
	}
}

func (e *Engine) wakeup() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// ---- delivery (PSH-4, PSH-5, PSH-6) ----

type job struct {
	ep  *endpoint
	msg *Message
}

type drop struct {
	msg Message
	err error
}

// Run loads the outbox from the Store and delivers until ctx ends or Close
// is called; then it stops every try in flight (the messages stay in the
// Store) and returns nil. It returns ErrClosed if the engine was closed or
// Run was called before.
func (e *Engine) Run(ctx context.Context) error {
	e.runMu.Lock()
	if e.closed || e.started {
		e.runMu.Unlock()
		return ErrClosed
	}
	e.started = true
	ctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	e.done = make(chan struct{})
	e.runMu.Unlock()
	defer close(e.done)
	defer cancel()

	deletes := make(chan Message, 4096)
	e.loadMu.Lock()
	msgs, err := e.store.Messages(ctx)
	if err != nil {
		e.loadMu.Unlock()
		return fmt.Errorf("push: loading the outbox: %w", err)
	}
	e.mu.Lock()
	for i := range msgs {
		e.add(&msgs[i])
	}
	e.loaded = true
	e.deletes = deletes
	e.mu.Unlock()
	e.loadMu.Unlock()
	if len(msgs) > 0 {
		e.cfg.Logger.Info("push: outbox loaded", "messages", len(msgs))
	}

	var delWG, wg sync.WaitGroup
	delWG.Go(func() { e.deleter(deletes) })
	work := make(chan job)
	for range e.cfg.Workers {
		wg.Go(func() {
			for j := range work {
				e.finish(ctx, j, e.try(ctx, j.msg))
			}
		})
	}
	e.dispatch(ctx, work)
	close(work)
	wg.Wait()

	e.loadMu.Lock()
	e.mu.Lock()
	e.loaded = false
	e.deletes = nil
	for _, ep := range e.eps {
		ep.queue, ep.inRing = nil, false
	}
	e.ring, e.rr = nil, 0
	e.mu.Unlock()
	e.loadMu.Unlock()
	close(deletes)
	delWG.Wait()
	if e.transport != nil {
		e.transport.CloseIdleConnections()
	}
	e.tlsMu.Lock()
	for _, c := range e.appClients {
		c.transport.CloseIdleConnections()
	}
	e.tlsMu.Unlock()
	return nil
}

// Close stops Run and waits for it to return. Later Publish, PublishReport
// and Send calls fail with ErrClosed. It is safe to call more than once.
func (e *Engine) Close() error {
	e.runMu.Lock()
	e.closed = true
	cancel, done := e.cancel, e.done
	e.runMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// dispatch hands due messages to the workers, one endpoint after another
// (round-robin), until ctx ends.
func (e *Engine) dispatch(ctx context.Context, work chan<- job) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		now := time.Now()
		e.mu.Lock()
		j, next, drops := e.pick(now)
		e.mu.Unlock()
		e.report(drops, nil)
		if j.msg != nil {
			select {
			case work <- j:
				continue
			case <-ctx.Done():
				e.mu.Lock()
				j.ep.inflight--
				e.add(j.msg)
				e.mu.Unlock()
				return
			}
		}
		var tc <-chan time.Time
		if !next.IsZero() {
			timer.Reset(next.Sub(now))
			tc = timer.C
		}
		select {
		case <-e.wake:
		case <-tc:
		case <-ctx.Done():
			return
		}
		timer.Stop()
	}
}

// pick drops expired messages and returns the next message to try, going
// round the ring from where the last pick stopped; when none is ready it
// returns the earliest time one may be. e.mu is held.
func (e *Engine) pick(now time.Time) (j job, next time.Time, drops []drop) {
	n := len(e.ring)
	if n == 0 {
		return job{}, time.Time{}, nil
	}
	start := e.rr % n
	chosen := -1
	empty := false
	for k := range n {
		i := (start + k) % n
		ep := e.ring[i]
		for len(ep.queue) > 0 && !ep.queue[0].Expires.After(now) {
			drops = append(drops, e.expire(ep, ep.pop()))
		}
		if len(ep.queue) == 0 {
			empty = true
			continue
		}
		next = earliest(next, ep.queue[0].Expires)
		t, ready := ep.readyAt(now, &e.cfg)
		if ready {
			chosen = i
			break
		}
		next = earliest(next, t)
	}
	if chosen >= 0 {
		ep := e.ring[chosen]
		j = job{ep: ep, msg: ep.pop()}
		ep.inflight++
		if ep.invalid {
			// One probe per interval; the try's outcome sets the next.
			ep.probeAt = now.Add(e.cfg.ProbeInterval)
		}
		e.rr = chosen + 1
	}
	if empty {
		kept := e.ring[:0]
		rr := 0
		for i, ep := range e.ring {
			if i == chosen {
				// Next turn: the endpoint after the chosen one, which is
				// at len(kept) if the chosen one is dropped here.
				rr = len(kept)
				if len(ep.queue) > 0 {
					rr++
				}
			}
			if len(ep.queue) == 0 {
				ep.inRing = false
				continue
			}
			kept = append(kept, ep)
		}
		clear(e.ring[len(kept):])
		e.ring = kept
		if chosen >= 0 {
			e.rr = rr
		} else {
			e.rr = 0
		}
	}
	return j, next, drops
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// expire counts m as dropped by keep time. e.mu is held.
func (e *Engine) expire(ep *endpoint, m *Message) drop {
	e.dropped.Add(1)
	ep.dropped++
	last := ep.lastError
	if last == "" {
		last = "none"
	}
	return drop{msg: *m, err: fmt.Errorf("%w (kept %v, %d tries; last error: %s)", ErrExpired, e.cfg.KeepTime, m.Attempts, last)}
}

// try makes one POST of m (PSH-4): nil on 2xx, a *StatusError otherwise,
// or the transport's error (timeout, connection failure, guard refusal).
func (e *Engine) try(ctx context.Context, m *Message) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "doze-push/1")
	req.Header.Set(HeaderID, m.ID)
	if m.Secret != "" {
		now := time.Now()
		sig, err := Sign(m.Secret, m.ID, now, m.Body)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrRejected, err)
		}
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(HeaderSignature, sig)
	}
	client, app := e.clientFor(ctx, m)
	resp, err := client.Do(req)
	if cv, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return &CertificateError{URL: m.URL, AppID: app, Err: cv}
	}
	if err != nil {
		return err
	}
	_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c <= 299:
		if rerr != nil {
			// The answer did not arrive whole within the timeout.
			return rerr
		}
		return nil
	case Retryable(c):
		return &StatusError{URL: m.URL, Code: c}
	default:
		return &StatusError{URL: m.URL, Code: c, Err: ErrRejected}
	}
}

// Retryable reports whether an HTTP status means "try again later":
// 501, 502, 503, 504 (FAQ §5.15). Other non-2xx answers are final.
func Retryable(code int) bool { return code >= 501 && code <= 504 }

// final reports whether err ends the message's life without retry.
func final(err error) bool {
	return errors.Is(err, ErrRejected) || errors.Is(err, ErrAddressDenied)
}

// finish applies a try's outcome.
func (e *Engine) finish(ctx context.Context, j job, err error) {
	now := time.Now()
	ep, m := j.ep, j.msg
	var (
		drops   []drop
		changed *EndpointState
	)
	e.mu.Lock()
	ep.inflight--
	switch {
	case err == nil:
		m.Attempts++
		e.delivered.Add(1)
		ep.delivered++
		ep.lastSuccess = now
		if ep.answered() {
			s := ep.state()
			changed = &s
		}
	case final(err):
		// Checked before stopping: an answer that came in as Run stops
		// still ends the message.
		m.Attempts++
		e.rejected.Add(1)
		ep.rejected++
		ep.lastError = err.Error()
		var se *StatusError
		if errors.As(err, &se) && ep.answered() { // it answered, so it is reachable
			s := ep.state()
			changed = &s
		}
		drops = append(drops, drop{msg: *m, err: err})
	case ctx.Err() != nil:
		// Stopping: not a failure; the message stays in the Store.
		e.add(m)
	default:
		m.Attempts++
		e.retried.Add(1)
		ep.retried++
		ep.lastError = err.Error()
		if ep.failed(now, &e.cfg) {
			s := ep.state()
			changed = &s
		}
		e.add(m) // if its keep time is over, the next pick drops it
	}
	deletes := e.deletes
	e.mu.Unlock()
	if err == nil && deletes != nil {
		deletes <- *m
	}
	e.wakeup()
	if err == nil {
		if l, ok := e.cfg.Listener.(DeliveryListener); ok {
			l.Delivered(*m)
		}
	}
	e.report(drops, changed)
}

// report deletes dropped messages from the Store, logs them and tells the
// Listener; it also reports endpoint state changes.
func (e *Engine) report(drops []drop, changed *EndpointState) {
	if changed != nil {
		e.cfg.Logger.Warn("push: endpoint state changed", "url", changed.CallbackURL, "state", changed.State,
			"failures", changed.Failures, "lastError", changed.LastError)
		if l, ok := e.cfg.Listener.(EndpointListener); ok {
			l.EndpointChanged(*changed)
		}
	}
	if len(drops) == 0 {
		return
	}
	e.mu.Lock()
	deletes := e.deletes
	e.mu.Unlock()
	for _, d := range drops {
		if deletes != nil {
			deletes <- d.msg
		}
		e.cfg.Logger.Warn("push: message dropped", "id", d.msg.ID, "url", d.msg.URL,
			"notifyType", string(d.msg.NotifyType), "tries", d.msg.Attempts, "err", d.err)
		if e.cfg.Listener != nil {
			e.cfg.Listener.Dropped(d.msg, d.err)
		}
	}
}

// deleter removes finished messages from the Store in batches. Deletion is
// not waited for: a crash before it only means a repeat delivery, which
// receivers drop by webhook-id (PSH-5).
func (e *Engine) deleter(ch <-chan Message) {
	batch := make([]Message, 0, 1024)
	for m := range ch {
		batch = append(batch[:0], m)
	more:
		for len(batch) < cap(batch) {
			select {
			case m, ok := <-ch:
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		if err := e.store.DeleteMessages(context.Background(), batch...); err != nil {
			// Nothing is lost: they stay in the outbox and go out
			// again after a restart, under the same webhook-id.
			e.cfg.Logger.Error("push: deleting finished messages from the outbox; they will be sent again after a restart",
				"count", len(batch), "err", err)
		}
	}
}

// ---- state ----

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
