package forward

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/doze-io/doze/push"
)

// Store keeps rules and the forwarding outbox. Implementations are safe
// for concurrent use; forward/forwardtest checks them. An error means
// nothing was written.
type Store interface {
	// PutRule creates or replaces the rule with r.ID.
	PutRule(ctx context.Context, r Rule) error
	// Rule returns the rule with id, or ErrNotFound.
	Rule(ctx context.Context, id string) (Rule, error)
	// Rules returns the rules of appID, ordered by ID.
	Rules(ctx context.Context, appID string) ([]Rule, error)
	// DeleteRule deletes the rule with id; it reports whether it existed.
	DeleteRule(ctx context.Context, id string) (bool, error)

	// PutMessages, DeleteMessages and Messages keep the forwarding
	// outbox, with the meaning of push.Store's methods of those names.
	PutMessages(ctx context.Context, msgs ...push.Message) error
	DeleteMessages(ctx context.Context, msgs ...push.Message) error
	Messages(ctx context.Context) ([]push.Message, error)
}

// outbox is a Store seen as the push.Store of the delivery engine, which
// needs no subscriptions: forwarding messages name their rule target.
type outbox struct{ Store }

var errNoSubscriptions = errors.New("forward: the forwarding outbox keeps no subscriptions")

func (outbox) PutSubscription(context.Context, push.Subscription) error { return errNoSubscriptions }
func (outbox) Subscription(context.Context, string) (push.Subscription, error) {
	return push.Subscription{}, push.ErrNotFound
}
func (outbox) Subscriptions(context.Context, push.Filter) ([]push.Subscription, error) {
	return nil, nil
}
func (outbox) DeleteSubscriptions(context.Context, ...string) (int, error) { return 0, nil }

// claimingOutbox is the outbox of a Store that is also a push.Claimer
// (store/postgres's): the delivery engine sees the claim methods, so
// engines of several nodes given Config.Delivery.Node deliver each
// forwarding message from one node.
type claimingOutbox struct {
	outbox
	push.Claimer
}

// deliveryStore returns st as the delivery engine's push.Store: a
// push.Claimer too when st is one.
func deliveryStore(st Store) push.Store {
	if c, ok := st.(push.Claimer); ok {
		return claimingOutbox{outbox{st}, c}
	}
	return outbox{st}
}

// MemoryStore is a Store in memory, for tests. The zero value is ready.
type MemoryStore struct {
	mu    sync.Mutex
	rules map[string]Rule
	msgs  push.MemoryStore
}

var _ Store = (*MemoryStore)(nil)

// PutRule implements Store.
func (m *MemoryStore) PutRule(_ context.Context, r Rule) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rules == nil {
		m.rules = map[string]Rule{}
	}
	r.Targets = slices.Clone(r.Targets)
	m.rules[r.ID] = r
	return nil
}

// Rule implements Store.
func (m *MemoryStore) Rule(_ context.Context, id string) (Rule, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rules[id]
	if !ok {
		return Rule{}, ErrNotFound
	}
	r.Targets = slices.Clone(r.Targets)
	return r, nil
}

// Rules implements Store.
func (m *MemoryStore) Rules(_ context.Context, appID string) ([]Rule, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Rule
	for _, r := range m.rules {
		if r.AppID == appID {
			r.Targets = slices.Clone(r.Targets)
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Rule) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteRule implements Store.
func (m *MemoryStore) DeleteRule(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.rules[id]
	delete(m.rules, id)
	return ok, nil
}

// PutMessages implements Store.
func (m *MemoryStore) PutMessages(ctx context.Context, msgs ...push.Message) error {
	return m.msgs.PutMessages(ctx, msgs...)
}

// DeleteMessages implements Store.
func (m *MemoryStore) DeleteMessages(ctx context.Context, msgs ...push.Message) error {
	return m.msgs.DeleteMessages(ctx, msgs...)
}

// Messages implements Store.
func (m *MemoryStore) Messages(ctx context.Context) ([]push.Message, error) {
	return m.msgs.Messages(ctx)
}
