package push

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

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
	s.ID = newID()
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
