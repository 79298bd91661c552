package postgres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doze-io/doze/push"
	"github.com/jackc/pgx/v5"
)

// outboxTable is an outbox of push.Messages kept in one table: the push
// engine's ("push_messages") or the forwarding engine's
// ("forward_messages"). Both tables have one layout (migrations 0001 and
// 0009), so one set of statements, built once per table, serves both:
// storing, deleting, loading, and claiming among nodes (MessageClaimer).
type outboxTable struct {
	upsert, del, list, claim, claimOf, renew string
}

var (
	pushOutbox    = newOutboxTable("push_messages")
	forwardOutbox = newOutboxTable("forward_messages")
)

const messageColumns = "url, id, body, secret, notify_type, subscription_id, created, expires"

func newOutboxTable(table string) *outboxTable {
	return &outboxTable{
		upsert: `INSERT INTO ` + table + ` (url_hash, id, url, body, secret, notify_type, subscription_id, created, expires)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (url_hash, id) DO UPDATE SET url = excluded.url, body = excluded.body, secret = excluded.secret,
				notify_type = excluded.notify_type, subscription_id = excluded.subscription_id,
				created = excluded.created, expires = excluded.expires`,
		del: `DELETE FROM ` + table + ` m USING unnest($1::bytea[], $2::text[]) AS d(h, id)
			WHERE m.url_hash = d.h AND m.id = d.id`,
		list: "SELECT " + messageColumns + " FROM " + table + " ORDER BY url, id",
		// Rows of other owners (free, or whose lease ended) come before
		// the caller's own, so a node holding more than limit messages
		// still takes over a dead node's.
		claim: claimSQL(table, "url_hash, id", "true", "(claim_owner IS NOT DISTINCT FROM $2), url, id", messageColumns),
		claimOf: `UPDATE ` + table + ` m SET claim_owner = $3, claim_until = $4
			FROM unnest($1::bytea[], $2::text[]) AS d(h, id)
			WHERE m.url_hash = d.h AND m.id = d.id
				AND (m.claim_until IS NULL OR m.claim_until <= $5 OR m.claim_owner = $3)
			RETURNING m.url, m.id`,
		renew: "UPDATE " + table + " SET claim_until = $2 WHERE claim_owner = $1",
	}
}

func checkMessageID(m *push.Message) error {
	if m.ID == "" || len(m.ID) > maxMessageID {
		return fmt.Errorf("%w: push message id of %d bytes; allowed 1–%d", ErrTooLarge, len(m.ID), maxMessageID)
	}
	return nil
}

func urlHash(url string) []byte { h := sha256.Sum256([]byte(url)); return h[:] }

// queue queues the upserts of msgs on b.
func (o *outboxTable) queue(b *pgx.Batch, msgs []push.Message) error {
	for i := range msgs {
		m := &msgs[i]
		if err := checkMessageID(m); err != nil {
			return err
		}
		body := m.Body
		if body == nil {
			body = []byte{}
		}
		b.Queue(o.upsert, urlHash(m.URL), m.ID, m.URL, body, string(m.Secret), string(m.NotifyType), m.SubscriptionID,
			m.Created.UnixNano(), m.Expires.UnixNano())
	}
	return nil
}

// put stores msgs in one transaction.
func (o *outboxTable) put(ctx context.Context, db *DB, msgs []push.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	if err := o.queue(batch, msgs); err != nil {
		return err
	}
	return db.tx(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, batch).Close() })
}

// keys returns the key columns of those of msgs that may be stored.
func keys(msgs []push.Message) (hashes [][]byte, ids []string) {
	hashes = make([][]byte, 0, len(msgs))
	ids = make([]string, 0, len(msgs))
	for i := range msgs {
		if checkMessageID(&msgs[i]) != nil {
			continue // never stored
		}
		hashes = append(hashes, urlHash(msgs[i].URL))
		ids = append(ids, msgs[i].ID)
	}
	return hashes, ids
}

// delete deletes msgs (by URL and id); absent ones are ignored.
func (o *outboxTable) delete(ctx context.Context, db *DB, msgs []push.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	hashes, ids := keys(msgs)
	return db.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, o.del, hashes, ids)
		return err
	})
}

func scanMessage(r pgx.Row) (push.Message, error) {
	var m push.Message
	var secret, nt string
	var created, expires int64
	err := r.Scan(&m.URL, &m.ID, &m.Body, &secret, &nt, &m.SubscriptionID, &created, &expires)
	m.Secret, m.NotifyType = push.Secret(secret), push.NotifyType(nt)
	m.Created, m.Expires = fromNanos(&created), fromNanos(&expires)
	return m, err
}

func collectMessages(rows pgx.Rows, err error) ([]push.Message, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (push.Message, error) { return scanMessage(r) })
}

// messages returns every stored message, ordered by URL, then id.
func (o *outboxTable) messages(ctx context.Context, db *DB) ([]push.Message, error) {
	return collectMessages(db.pool.Query(ctx, o.list))
}

// claimMessages is MessageClaimer.ClaimMessages on the table.
func (o *outboxTable) claimMessages(ctx context.Context, db *DB, owner string, now time.Time, lease time.Duration, limit int) ([]push.Message, error) {
	if err := checkClaim(owner, lease, limit); err != nil || limit == 0 {
		return nil, err
	}
	out, err := collectMessages(db.pool.Query(ctx, o.claim, clampNanos(now), owner, clampNanos(now.Add(lease)), limit))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b push.Message) int { return cmp.Or(strings.Compare(a.URL, b.URL), strings.Compare(a.ID, b.ID)) })
	return out, nil
}

// claimMessagesOf is MessageClaimer.ClaimMessagesOf on the table.
func (o *outboxTable) claimMessagesOf(ctx context.Context, db *DB, owner string, now time.Time, lease time.Duration, msgs []push.Message) ([]push.Message, error) {
	if err := checkClaim(owner, lease, len(msgs)); err != nil || len(msgs) == 0 {
		return nil, err
	}
	hashes, ids := keys(msgs)
	rows, err := db.pool.Query(ctx, o.claimOf, hashes, ids, owner, clampNanos(now.Add(lease)), clampNanos(now))
	if err != nil {
		return nil, err
	}
	type key struct{ url, id string }
	got := map[key]bool{}
	var k key
	if _, err := pgx.ForEachRow(rows, []any{&k.url, &k.id}, func() error { got[k] = true; return nil }); err != nil {
		return nil, err
	}
	out := make([]push.Message, 0, len(got))
	for _, m := range msgs {
		if got[key{m.URL, m.ID}] {
			out = append(out, m)
		}
	}
	return out, nil
}

// renewMessages is MessageClaimer.RenewMessages on the table.
func (o *outboxTable) renewMessages(ctx context.Context, db *DB, owner string, now time.Time, lease time.Duration) (int, error) {
	if err := checkClaim(owner, lease, 0); err != nil {
		return 0, err
	}
	tag, err := db.pool.Exec(ctx, o.renew, owner, clampNanos(now.Add(lease)))
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
