package push

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Subscription subscribes one callback URL of an application to one notify
// type (PSH-1). Its JSON is the API's {subscriptionId, notifyType, callbackUrl}.
type Subscription struct {
	ID          string     `json:"subscriptionId"` // set by Engine.Subscribe
	AppID       string     `json:"-"`              // the owning application; "" is a valid app
	NotifyType  NotifyType `json:"notifyType"`
	CallbackURL string     `json:"callbackUrl"`
	Secret      Secret     `json:"-"` // signs pushes when not empty (PSH-7)
	Created     time.Time  `json:"-"` // set by Engine.Subscribe
}

// Filter selects subscriptions: those of AppID (of every application when
// AnyApp is set), of NotifyType and CallbackURL when those are not empty.
type Filter struct {
	AppID       string     // the application; "" is a valid application id
	AnyApp      bool       // ignore AppID (operator views)
	NotifyType  NotifyType // "" matches every type
	CallbackURL string     // "" matches every URL
}

// Match reports whether s passes f.
func (f Filter) Match(s Subscription) bool {
	return (f.AnyApp || s.AppID == f.AppID) &&
		(f.NotifyType == "" || s.NotifyType == f.NotifyType) &&
		(f.CallbackURL == "" || s.CallbackURL == f.CallbackURL)
}

// Message is one push in the outbox: a body bound for one URL.
type Message struct {
	ID             string     // the webhook-id header, the same on every try (PSH-5); sorts by creation
	URL            string     // the endpoint
	Body           []byte     // JSON
	Secret         Secret     // signs the push when not empty
	NotifyType     NotifyType // "" for a direct Send (command callback)
	SubscriptionID string     // "" for a direct Send
	Created        time.Time  // when it was accepted
	Expires        time.Time  // Created + keep time; dropped after (PSH-4)
	Attempts       int        // tries so far in this process (not stored)
	// AppID is the application the message is for, whose TLS trust
	// verifies an https URL (Config.TLSConfig). A Store need not keep it:
	// after a restart the engine finds it from the subscription, or for
	// a direct Send from the one application whose subscriptions share
	// the URL's host and port (CMD-6).
	AppID string
}

// Store keeps subscriptions and the durable outbox (PSH-6). Implementations
// are safe for concurrent use; the conformance suite push/pushtest checks
// them. An error means nothing was written.
type Store interface {
	// PutSubscription creates or replaces the subscription with s.ID.
	PutSubscription(ctx context.Context, s Subscription) error
	// Subscription returns the subscription with id, or ErrNotFound.
	Subscription(ctx context.Context, id string) (Subscription, error)
	// Subscriptions returns the subscriptions f matches, ordered by ID.
	Subscriptions(ctx context.Context, f Filter) ([]Subscription, error)
	// DeleteSubscriptions deletes the subscriptions with the given ids and
	// returns how many existed.
	DeleteSubscriptions(ctx context.Context, ids ...string) (int, error)

	// PutMessages stores msgs durably (all or none) before returning;
	// a message with the URL and ID of a stored one replaces it.
	PutMessages(ctx context.Context, msgs ...Message) error
	// DeleteMessages deletes the messages with the URL and ID of msgs;
	// unknown ones are ignored.
	DeleteMessages(ctx context.Context, msgs ...Message) error
	// Messages returns every stored message ordered by URL, then ID.
	// Attempts is zero in what it returns.
	Messages(ctx context.Context) ([]Message, error)
}

// MemoryStore is a Store in memory, for tests and for platforms that can
// afford to lose the outbox on restart. The zero value is ready to use.
type MemoryStore struct {
	mu   sync.Mutex
	subs map[string]Subscription
	msgs map[msgKey]Message
}

type msgKey struct{ url, id string }

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// PutSubscription implements Store.
func (m *MemoryStore) PutSubscription(_ context.Context, s Subscription) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.subs == nil {
		m.subs = make(map[string]Subscription)
	}
	m.subs[s.ID] = s
	return nil
}

// Subscription implements Store.
func (m *MemoryStore) Subscription(_ context.Context, id string) (Subscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.subs[id]
	if !ok {
		return Subscription{}, ErrNotFound
	}
	return s, nil
}

// Subscriptions implements Store.
func (m *MemoryStore) Subscriptions(_ context.Context, f Filter) ([]Subscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Subscription
	for _, s := range m.subs {
		if f.Match(s) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Subscription) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteSubscriptions implements Store.
func (m *MemoryStore) DeleteSubscriptions(_ context.Context, ids ...string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := m.subs[id]; ok {
			delete(m.subs, id)
			n++
		}
	}
	return n, nil
}

// PutMessages implements Store.
func (m *MemoryStore) PutMessages(_ context.Context, msgs ...Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.msgs == nil {
		m.msgs = make(map[msgKey]Message)
	}
	for _, msg := range msgs {
		msg.Attempts = 0
		msg.Body = slices.Clone(msg.Body)
		m.msgs[msgKey{msg.URL, msg.ID}] = msg
	}
	return nil
}

// DeleteMessages implements Store.
func (m *MemoryStore) DeleteMessages(_ context.Context, msgs ...Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range msgs {
		delete(m.msgs, msgKey{msg.URL, msg.ID})
	}
	return nil
}

// Messages implements Store.
func (m *MemoryStore) Messages(_ context.Context) ([]Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Message, 0, len(m.msgs))
	for _, msg := range m.msgs {
		out = append(out, msg)
	}
	slices.SortFunc(out, func(a, b Message) int {
		return cmp.Or(cmp.Compare(a.URL, b.URL), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}
