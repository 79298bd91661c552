package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/doze-io/doze/push"
	"github.com/jackc/pgx/v5"
)

// Push is the push.Store on PostgreSQL: subscriptions in
// "push_subscriptions" (indexed by application and notify type), the
// outbox in "push_messages" keyed by the SHA-256 of the URL and the
// message id (a URL may be longer than an index entry allows).
type Push struct{ db *DB }

var _ push.Store = (*Push)(nil)

// Push returns the push Store kept in db.
func (db *DB) Push() *Push { return &Push{db: db} }

// maxMessageID bounds a message id (the engine's are 36 bytes), as the
// bbolt store does.
const maxMessageID = 1024

// PutSubscription implements push.Store.
func (p *Push) PutSubscription(ctx context.Context, s push.Subscription) error {
	if s.ID == "" {
		return errors.New("store/postgres: push subscription without an ID")
	}
	_, err := p.db.pool.Exec(ctx, `INSERT INTO push_subscriptions (id, app_id, notify_type, callback_url, secret, created)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET app_id = excluded.app_id, notify_type = excluded.notify_type,
			callback_url = excluded.callback_url, secret = excluded.secret, created = excluded.created`,
		s.ID, s.AppID, string(s.NotifyType), s.CallbackURL, string(s.Secret), nanos(s.Created))
	if err != nil {
		return fmt.Errorf("store/postgres: push subscription %q: %w", s.ID, err)
	}
	return nil
}

const subColumns = "id, app_id, notify_type, callback_url, secret, created"

func scanSub(r pgx.Row) (push.Subscription, error) {
	var s push.Subscription
	var nt, secret string
	var created *int64
	err := r.Scan(&s.ID, &s.AppID, &nt, &s.CallbackURL, &secret, &created)
	s.NotifyType, s.Secret, s.Created = push.NotifyType(nt), push.Secret(secret), fromNanos(created)
	return s, err
}

// Subscription implements push.Store.
func (p *Push) Subscription(ctx context.Context, id string) (push.Subscription, error) {
	s, err := scanSub(p.db.pool.QueryRow(ctx, "SELECT "+subColumns+" FROM push_subscriptions WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return push.Subscription{}, push.ErrNotFound
	}
	return s, err
}

// Subscriptions implements push.Store.
func (p *Push) Subscriptions(ctx context.Context, f push.Filter) ([]push.Subscription, error) {
	rows, err := p.db.pool.Query(ctx, "SELECT "+subColumns+` FROM push_subscriptions
		WHERE ($1 OR app_id = $2) AND ($3 = '' OR notify_type = $3) AND ($4 = '' OR callback_url = $4)
		ORDER BY id`, f.AnyApp, f.AppID, string(f.NotifyType), f.CallbackURL)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (push.Subscription, error) { return scanSub(r) })
}

// DeleteSubscriptions implements push.Store.
func (p *Push) DeleteSubscriptions(ctx context.Context, ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := p.db.pool.Exec(ctx, "DELETE FROM push_subscriptions WHERE id = ANY($1)", ids)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// PutMessages implements push.Store: one transaction for all of msgs.
func (p *Push) PutMessages(ctx context.Context, msgs ...push.Message) error {
	return pushOutbox.put(ctx, p.db, msgs)
}

// DeleteMessages implements push.Store.
func (p *Push) DeleteMessages(ctx context.Context, msgs ...push.Message) error {
	return pushOutbox.delete(ctx, p.db, msgs)
}

// Messages implements push.Store.
func (p *Push) Messages(ctx context.Context) ([]push.Message, error) {
	return pushOutbox.messages(ctx, p.db)
}
