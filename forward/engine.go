package forward

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/doze-io/doze/internal/lifecycle"
	"github.com/doze-io/doze/push"
)

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver = push.Resolver

// Config holds the Engine's settings; the zero value gives the defaults.
type Config struct {
	// Delivery configures the delivery of the forwarding outbox, which is
	// a push.Engine of its own: KeepTime (10 min), Timeout (15 s),
	// RetrySchedule, FailureThreshold, ProbeInterval, EndpointConcurrency,
	// Workers, MaxQueued, Listener and Logger keep push's meaning and
	// defaults, per rule target instead of per callback URL. Node,
	// ClaimLease and ClaimBatch too, for several nodes sharing one Store:
	// with Node set the Store must be a push.Claimer (store/postgres's
	// Forward is), and each node delivers only the forwarding messages it
	// holds a lease on. Allow lists
	// the broker address prefixes the address guard would refuse but the
	// operator permits (loopback brokers, say). Transport, TLSConfig,
	// TLSClientConfig and Resolver are set by the Engine.
	Delivery push.Config
	// MaxRules bounds the rules of one application. 0 means 100.
	MaxRules int
	// RuleCache is how long the rules of an application, with their
	// conditions parsed, are reused for reports. Changes made through the
	// Engine show at once. 0 means 1 second; negative means no cache.
	RuleCache time.Duration
	// Resolver resolves broker host names when a rule is saved. nil means
	// net.DefaultResolver.
	Resolver Resolver
	// Logger receives rule changes and refusals. nil discards.
	Logger *slog.Logger
}

// Engine keeps rules, evaluates them on reports and delivers what they
// send to brokers from a durable outbox; webhook targets go through the
// application's push engine. Create it with New, deliver with Run, stop
// with Close.
type Engine struct {
	cfg    Config
	st     Store
	hooks  *push.Engine
	out    *push.Engine
	router *router
	guard  addrGuard

	nodeID uint32
	seq    atomic.Uint32

	changeMu sync.Mutex // orders rule changes, so MaxRules holds

	cacheMu  sync.Mutex
	cache    map[string]cachedRules
	cacheGen uint64

	fired, refused atomic.Uint64

	life lifecycle.Guard
}

type compiled struct {
	rule Rule
	cond Condition
}

type cachedRules struct {
	rules []compiled
	at    time.Time
}

// New returns an Engine over st whose webhook targets push through hooks.
// It starts nothing.
func New(st Store, hooks *push.Engine, cfg Config) (*Engine, error) {
	if st == nil || hooks == nil {
		return nil, errors.New("forward: New needs a Store and the push engine of webhooks")
	}
	if cfg.MaxRules == 0 {
		cfg.MaxRules = 100
	}
	if cfg.RuleCache == 0 {
		cfg.RuleCache = time.Second
	}
	if cfg.MaxRules < 0 {
		return nil, fmt.Errorf("forward: Config.MaxRules %d is negative", cfg.MaxRules)
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.Delivery.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	e := &Engine{cfg: cfg, st: st, hooks: hooks, guard: addrGuard{allow: cfg.Delivery.Allow}}
	e.router = &router{st: st, guard: e.guard, timeout: timeout, logger: cfg.Logger}
	dc := cfg.Delivery
	dc.Transport = e.router
	dc.TLSConfig, dc.TLSClientConfig, dc.Resolver = nil, nil, nil
	if dc.Logger == nil {
		dc.Logger = cfg.Logger
	}
	out, err := push.New(deliveryStore(st), dc)
	if err != nil {
		return nil, fmt.Errorf("forward: Config.Delivery: %w", err)
	}
	e.out = out
	var b [4]byte
	_, _ = rand.Read(b[:])
	e.nodeID = binary.BigEndian.Uint32(b[:])
	return e, nil
}

// Run loads the forwarding outbox and delivers until ctx ends or Close is
// called, then closes every broker connection and returns nil. A second
// Run returns an error wrapping ErrClosed ("Run called twice"); Run after
// Close returns ErrClosed.
func (e *Engine) Run(ctx context.Context) error {
	ctx, err := e.life.Start(ctx, "forward.Engine", ErrClosed)
	if err != nil {
		return err
	}
	defer e.life.Finish()
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				e.router.closeIdle(now.Add(-idleConn))
			}
		}
	})
	err = e.out.Run(ctx)
	wg.Wait()
	e.router.closeAll()
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	return nil
}

// idleConn is how long a broker connection may stay unused before it is closed.
const idleConn = 5 * time.Minute

// Close stops Run and waits for it; it may come before Run and is
// idempotent.
func (e *Engine) Close() error {
	e.life.Stop()
	e.out.Close()
	e.router.closeAll()
	return nil
}

// Config returns the configuration the Engine was made with, defaults
// filled in (MaxRules, RuleCache, Resolver, Logger; Delivery as given).
func (e *Engine) Config() Config { return e.cfg }

// Stats returns the delivery counters of the forwarding outbox, one
// endpoint per rule target (rule://<ruleId>/<index>).
func (e *Engine) Stats() push.Stats { return e.out.Stats() }

// Fired returns how many times a rule matched a report since New.
func (e *Engine) Fired() uint64 { return e.fired.Load() }

// Refused returns how many reports' rule messages could not be built
// (subscriptions or rules unreadable) since New; each was logged.
func (e *Engine) Refused() uint64 { return e.refused.Load() }

// TargetState returns the delivery state of target i of rule id; ok is
// false when nothing was queued for it since New.
func (e *Engine) TargetState(id string, i int) (push.EndpointState, bool) {
	return e.out.Endpoint(targetURL(id, i))
}

// CreateRule checks r (fields, condition, broker addresses), gives it an
// id and stores it. r.AppID owns it.
func (e *Engine) CreateRule(ctx context.Context, r Rule) (Rule, error) {
	if err := e.check(ctx, &r); err != nil {
		return Rule{}, err
	}
	e.changeMu.Lock()
	defer e.changeMu.Unlock()
	have, err := e.st.Rules(ctx, r.AppID)
	if err != nil {
		return Rule{}, err
	}
	if len(have) >= e.cfg.MaxRules {
		return Rule{}, fmt.Errorf("%w: application %q has %d rules; at most %d are allowed", ErrTooManyRules, r.AppID, len(have), e.cfg.MaxRules)
	}
	now := time.Now().UTC()
	r.ID, r.Created, r.Updated = uuid.Must(uuid.NewV7()).String(), now, now
	if err := e.st.PutRule(ctx, r); err != nil {
		return Rule{}, err
	}
	e.forget()
	e.cfg.Logger.Info("forward: rule created", "app", r.AppID, "rule", r.ID, "name", r.Name, "targets", len(r.Targets))
	return r, nil
}

// UpdateRule replaces the rule r.ID of r.AppID with r (ErrNotFound when
// the application has no such rule). Messages still queued for its
// targets go out with the new settings (a fixed password lets them
// through); those of a target that is gone are dropped.
func (e *Engine) UpdateRule(ctx context.Context, r Rule) (Rule, error) {
	if err := e.check(ctx, &r); err != nil {
		return Rule{}, err
	}
	e.changeMu.Lock()
	defer e.changeMu.Unlock()
	old, err := e.Rule(ctx, r.AppID, r.ID)
	if err != nil {
		return Rule{}, err
	}
	r.Created, r.Updated = old.Created, time.Now().UTC()
	if err := e.st.PutRule(ctx, r); err != nil {
		return Rule{}, err
	}
	e.forget()
	e.cfg.Logger.Info("forward: rule changed", "app", r.AppID, "rule", r.ID)
	return r, nil
}

// Rule returns rule id of appID; a rule of another application is
// ErrNotFound, as is an unknown one.
func (e *Engine) Rule(ctx context.Context, appID, id string) (Rule, error) {
	if id == "" || len(id) > 64 {
		return Rule{}, ErrNotFound
	}
	r, err := e.st.Rule(ctx, id)
	if err != nil {
		return Rule{}, err
	}
	if r.AppID != appID {
		return Rule{}, ErrNotFound
	}
	return r, nil
}

// Rules returns the rules of appID ordered by id (which is creation order).
func (e *Engine) Rules(ctx context.Context, appID string) ([]Rule, error) {
	return e.st.Rules(ctx, appID)
}

// DeleteRule deletes rule id of appID. Messages still queued for its
// targets are dropped when their turn comes (counted and logged).
func (e *Engine) DeleteRule(ctx context.Context, appID, id string) error {
	e.changeMu.Lock()
	defer e.changeMu.Unlock()
	if _, err := e.Rule(ctx, appID, id); err != nil {
		return err
	}
	if _, err := e.st.DeleteRule(ctx, id); err != nil {
		return err
	}
	e.forget()
	e.cfg.Logger.Info("forward: rule deleted", "app", appID, "rule", id)
	return nil
}

// check checks r's fields and resolves its brokers' hosts through the
// address guard.
func (e *Engine) check(ctx context.Context, r *Rule) error {
	if _, err := r.Check(); err != nil {
		return err
	}
	for i := range r.Targets {
		t := &r.Targets[i]
		if t.Type == Webhook {
			continue
		}
		field := fmt.Sprintf("targets[%d].url", i)
		u, err := t.brokerURL(fmt.Sprintf("targets[%d]", i))
		if err != nil {
			return err
		}
		if err := e.guard.resolve(ctx, e.cfg.Resolver, u); err != nil {
			fe := &FieldError{Field: field, Msg: err.Error()}
			if errors.Is(err, push.ErrAddressDenied) {
				fe.Err = push.ErrAddressDenied
			}
			return fe
		}
	}
	return nil
}

func (e *Engine) forget() {
	e.cacheMu.Lock()
	e.cacheGen++
	e.cache = nil
	e.cacheMu.Unlock()
}

// maxCachedApps bounds the rule cache.
const maxCachedApps = 4096

// compiledRules returns appID's enabled rules with parsed conditions.
func (e *Engine) compiledRules(ctx context.Context, appID string) ([]compiled, error) {
	now := time.Now()
	e.cacheMu.Lock()
	c, ok := e.cache[appID]
	gen := e.cacheGen
	e.cacheMu.Unlock()
	if ok && e.cfg.RuleCache > 0 && now.Sub(c.at) < e.cfg.RuleCache {
		return c.rules, nil
	}
	rules, err := e.st.Rules(ctx, appID)
	if err != nil {
		return nil, err
	}
	var out []compiled
	for _, r := range rules {
		if !r.Enabled {
			continue
		}
		cond, err := ParseCondition(r.Condition)
		if err != nil {
			// Stored rules were checked; one that no longer parses (a
			// damaged file) is skipped loudly rather than matching all.
			e.cfg.Logger.Error("forward: stored rule has a condition that does not parse; skipped", "rule", r.ID, "err", err)
			continue
		}
		out = append(out, compiled{rule: r, cond: cond})
	}
	if e.cfg.RuleCache > 0 {
		e.cacheMu.Lock()
		if e.cacheGen == gen {
			if e.cache == nil || len(e.cache) >= maxCachedApps {
				e.cache = map[string]cachedRules{}
			}
			e.cache[appID] = cachedRules{rules: out, at: now}
		}
		e.cacheMu.Unlock()
	}
	return out, nil
}

// Messages returns what ev.AppID's rules make of a report, storing
// nothing: hooks are ruleEvent pushes to the application's subscribers,
// for the push engine's outbox (push.Engine.Admit), and out are messages
// for the forwarding outbox (Engine.Admit). A caller stores both with the
// rest of the report in one transaction. A rule fires once per report when
// at least one service matches its condition; its body carries the
// matching services.
func (e *Engine) Messages(ctx context.Context, ev Event) (hooks, out []push.Message, err error) {
	rules, err := e.compiledRules(ctx, ev.AppID)
	if err != nil {
		return nil, nil, e.refuse(ev, fmt.Errorf("forward: reading the rules of application %q: %w", ev.AppID, err))
	}
	if len(rules) == 0 {
		return nil, nil, nil
	}
	data := make([]map[string]any, len(ev.Services))
	decoded := make([]bool, len(ev.Services))
	var (
		subs     []push.Subscription
		subsRead bool
		now      = time.Now()
	)
	for _, cr := range rules {
		var matched []push.ServiceData
		for i := range ev.Services {
			s := subject{ev: &ev, svc: &ev.Services[i]}
			if cr.cond.usesData() {
				if !decoded[i] {
					data[i], decoded[i] = decodeData(ev.Services[i].Data), true
				}
				s.data = data[i]
			}
			if cr.cond.match(&s) {
				matched = append(matched, ev.Services[i])
			}
		}
		if len(matched) == 0 {
			continue
		}
		e.fired.Add(1)
		body, err := EventBody{RuleID: cr.rule.ID, RuleName: cr.rule.Name, DeviceID: ev.DeviceID, GatewayID: ev.GatewayID,
			ManufacturerID: ev.ManufacturerID, Model: ev.Model, DeviceType: ev.DeviceType, Services: matched}.MarshalJSON()
		if err != nil {
			return nil, nil, e.refuse(ev, fmt.Errorf("forward: encoding the ruleEvent of rule %s: %w", cr.rule.ID, err))
		}
		for i, t := range cr.rule.Targets {
			if t.Type != Webhook {
				out = append(out, push.Message{ID: e.newID(now), URL: targetURL(cr.rule.ID, i), Body: body,
					NotifyType: push.RuleEvent, Created: now, Expires: now.Add(e.out.Config().KeepTime), AppID: ev.AppID})
				continue
			}
			if !subsRead {
				subs, err = e.hooks.Store().Subscriptions(ctx, push.Filter{AppID: ev.AppID, NotifyType: push.RuleEvent})
				if err != nil {
					return nil, nil, e.refuse(ev, fmt.Errorf("forward: reading the ruleEvent subscriptions: %w", err))
				}
				subsRead = true
			}
			for _, s := range subs {
				hooks = append(hooks, push.Message{ID: e.newID(now), URL: s.CallbackURL, Body: body, Secret: s.Secret,
					NotifyType: push.RuleEvent, SubscriptionID: s.ID, Created: now,
					Expires: now.Add(e.hooks.Config().KeepTime), AppID: ev.AppID})
			}
		}
	}
	return hooks, out, nil
}

func (e *Engine) refuse(ev Event, err error) error {
	e.refused.Add(1)
	e.cfg.Logger.Error("forward: rules not applied to a report; the caller keeps it", "app", ev.AppID, "device", ev.DeviceID, "err", err)
	return err
}

// Admit queues out, which write stores in the forwarding outbox (in the
// caller's transaction, with the report), as push.Engine.Admit does.
func (e *Engine) Admit(ctx context.Context, out []push.Message, write func() error) error {
	return e.out.Admit(ctx, out, write)
}

// Forward applies ev.AppID's rules to a report and stores what they send
// in two writes, the webhooks' outbox first: for callers that cannot put
// the messages in one transaction with the report. A failure after the
// first write repeats the webhooks when the caller tries again.
func (e *Engine) Forward(ctx context.Context, ev Event) error {
	hooks, out, err := e.Messages(ctx, ev)
	if err != nil {
		return err
	}
	if len(hooks) > 0 {
		if err := e.hooks.Admit(ctx, hooks, func() error { return e.hooks.Store().PutMessages(ctx, hooks...) }); err != nil {
			return err
		}
	}
	if len(out) == 0 {
		return nil
	}
	return e.out.Admit(ctx, out, func() error { return e.st.PutMessages(ctx, out...) })
}

// newID returns "rule_" and 32 hex digits: creation time in ns, the
// node's random id and a sequence number, so ids sort by creation and
// never meet the push engine's own.
func (e *Engine) newID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:], uint64(now.UnixNano()))
	binary.BigEndian.PutUint32(b[8:], e.nodeID)
	binary.BigEndian.PutUint32(b[12:], e.seq.Add(1))
	return "rule_" + hex.EncodeToString(b[:])
}
