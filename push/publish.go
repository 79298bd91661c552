package push

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

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
// callback of CMD-6, whose body is the encoded command.Notification. It
// checks the URL against PSH-2 (an IP-literal host also against the SSRF
// guard; a name is checked at dial time), signs with secret when it is not
// empty, and returns the message's id (its webhook-id).
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

// newID returns a subscription id: a UUIDv7 (RFC 9562), time-ordered and,
// within this process, strictly increasing even within a millisecond
// (google/uuid counts sub-millisecond steps), so ids sort by creation.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

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
	if e.life.Closed() {
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
	if e.claim != nil {
		e.claimStored(ctx, msgs)
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
