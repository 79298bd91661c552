package postgres

import (
	"context"
	"crypto/sha256"
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

func checkMessageID(m *push.Message) error {
	if m.ID == "" || len(m.ID) > maxMessageID {
		return fmt.Errorf("%w: push message id of %d bytes; allowed 1–%d", ErrTooLarge, len(m.ID), maxMessageID)
	}
	return nil
}

func urlHash(url string) []byte { h := sha256.Sum256([]byte(url)); return h[:] }

// PutMessages implements push.Store: one transaction for all of msgs.
func (p *Push) PutMessages(ctx context.Context, msgs ...push.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	if err := queueMessages(batch, msgs); err != nil {
		return err
	}
	return p.db.tx(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, batch).Close() })
}

// queueMessages queues the upserts of msgs on b.
func queueMessages(b *pgx.Batch, msgs []push.Message) error {
	for i := range msgs {
		m := &msgs[i]
		if err := checkMessageID(m); err != nil {
			return err
		}
		body := m.Body
		if body == nil {
			body = []byte{}
		}
		b.Queue(`INSERT INTO push_messages (url_hash, id, url, body, secret, notify_type, subscription_id, created, expires)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (url_hash, id) DO UPDATE SET url = excluded.url, body = excluded.body, secret = excluded.secret,
				notify_type = excluded.notify_type, subscription_id = excluded.subscription_id,
				created = excluded.created, expires = excluded.expires`,
			urlHash(m.URL), m.ID, m.URL, body, string(m.Secret), string(m.NotifyType), m.SubscriptionID,
			m.Created.UnixNano(), m.Expires.UnixNano())
	}
	return nil
}

// DeleteMessages implements push.Store.
func (p *Push) DeleteMessages(ctx context.Context, msgs ...push.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	hashes := make([][]byte, 0, len(msgs))
	ids := make([]string, 0, len(msgs))
	for i := range msgs {
		if checkMessageID(&msgs[i]) != nil {
			continue // never stored
		}
		hashes = append(hashes, urlHash(msgs[i].URL))
		ids = append(ids, msgs[i].ID)
	}
	return p.db.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM push_messages m USING unnest($1::bytea[], $2::text[]) AS d(h, id)
			WHERE m.url_hash = d.h AND m.id = d.id`, hashes, ids)
		return err
	})
}

const messageColumns = "url, id, body, secret, notify_type, subscription_id, created, expires"

func scanMessage(r pgx.Row) (push.Message, error) {
	var m push.Message
	var secret, nt string
	var created, expires int64
	err := r.Scan(&m.URL, &m.ID, &m.Body, &secret, &nt, &m.SubscriptionID, &created, &expires)
	m.Secret, m.NotifyType = push.Secret(secret), push.NotifyType(nt)
	m.Created, m.Expires = fromNanos(&created), fromNanos(&expires)
	return m, err
}

// Messages implements push.Store.
func (p *Push) Messages(ctx context.Context) ([]push.Message, error) {
	rows, err := p.db.pool.Query(ctx, "SELECT "+messageColumns+" FROM push_messages ORDER BY url, id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (push.Message, error) { return scanMessage(r) })
}
