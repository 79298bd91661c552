package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/store/internal/records"
	"github.com/jackc/pgx/v5"
)

// Forward is the forward.Store on PostgreSQL: rules in "forward_rules"
// (one row each, indexed by application), the forwarding outbox in
// "forward_messages", a table of the push outbox's layout kept by the same
// statements (outboxTable). It is a MessageClaimer (push.Claimer) too, so
// forwarding engines of several nodes (forward.Config.Delivery.Node)
// deliver each message from one node. DB.SaveUplink writes a report's
// forwarding messages (store.Uplink.Forward) in the report's transaction.
type Forward struct{ db *DB }

var (
	_ forward.Store  = (*Forward)(nil)
	_ MessageClaimer = (*Forward)(nil)
	_ push.Claimer   = (*Forward)(nil)
)

// Forward returns the forward Store kept in db.
func (db *DB) Forward() *Forward { return &Forward{db: db} }

// maxRuleID and maxRuleAppID bound a rule id and an application id, as the bbolt store
// does (the engine's rule ids are 36 bytes).
const (
	maxRuleID    = 256
	maxRuleAppID = 1024
)

// keyText reports whether s fits a text key column: 1–max bytes of UTF-8
// without NUL.
func keyText(s string, max int) bool {
	return s != "" && len(s) <= max && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// PutRule implements forward.Store.
func (f *Forward) PutRule(ctx context.Context, r forward.Rule) error {
	switch {
	case !keyText(r.ID, maxRuleID):
		return fmt.Errorf("%w: forwarding rule id %q: want 1–%d bytes of UTF-8 without NUL", ErrTooLarge, r.ID, maxRuleID)
	case r.AppID != "" && !keyText(r.AppID, maxRuleAppID):
		return fmt.Errorf("%w: forwarding rule %s: app id %q: want up to %d bytes of UTF-8 without NUL", ErrTooLarge, r.ID, r.AppID, maxRuleAppID)
	}
	rec, err := records.EncodeRule(r)
	if err != nil {
		return fmt.Errorf("store/postgres: forwarding rule %s: %w", r.ID, err)
	}
	_, err = f.db.pool.Exec(ctx, `INSERT INTO forward_rules (id, app_id, rec) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET app_id = excluded.app_id, rec = excluded.rec`, r.ID, r.AppID, rec)
	if err != nil {
		return fmt.Errorf("store/postgres: forwarding rule %s: %w", r.ID, err)
	}
	return nil
}

func decodeRule(id string, rec []byte) (forward.Rule, error) {
	r, err := records.DecodeRule(rec)
	if err != nil {
		return forward.Rule{}, fmt.Errorf("store/postgres: damaged forwarding rule %q: %w", id, err)
	}
	return r, nil
}

// Rule implements forward.Store.
func (f *Forward) Rule(ctx context.Context, id string) (forward.Rule, error) {
	if !keyText(id, maxRuleID) {
		return forward.Rule{}, forward.ErrNotFound // never stored
	}
	var rec []byte
	err := f.db.pool.QueryRow(ctx, "SELECT rec FROM forward_rules WHERE id = $1", id).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return forward.Rule{}, forward.ErrNotFound
	}
	if err != nil {
		return forward.Rule{}, err
	}
	return decodeRule(id, rec)
}

// Rules implements forward.Store: the application's rows of the index
// (app_id, id), ordered by id.
func (f *Forward) Rules(ctx context.Context, appID string) ([]forward.Rule, error) {
	if appID != "" && !keyText(appID, maxRuleAppID) {
		return nil, nil // never stored
	}
	rows, err := f.db.pool.Query(ctx, "SELECT id, rec FROM forward_rules WHERE app_id = $1 ORDER BY id", appID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (forward.Rule, error) {
		var id string
		var rec []byte
		if err := r.Scan(&id, &rec); err != nil {
			return forward.Rule{}, err
		}
		return decodeRule(id, rec)
	})
}

// DeleteRule implements forward.Store.
func (f *Forward) DeleteRule(ctx context.Context, id string) (bool, error) {
	if !keyText(id, maxRuleID) {
		return false, nil // never stored
	}
	tag, err := f.db.pool.Exec(ctx, "DELETE FROM forward_rules WHERE id = $1", id)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() > 0, nil
}

// PutMessages implements forward.Store: one transaction for all of msgs.
func (f *Forward) PutMessages(ctx context.Context, msgs ...push.Message) error {
	return forwardOutbox.put(ctx, f.db, msgs)
}

// DeleteMessages implements forward.Store.
func (f *Forward) DeleteMessages(ctx context.Context, msgs ...push.Message) error {
	return forwardOutbox.delete(ctx, f.db, msgs)
}

// Messages implements forward.Store.
func (f *Forward) Messages(ctx context.Context) ([]push.Message, error) {
	return forwardOutbox.messages(ctx, f.db)
}

// ClaimMessages implements MessageClaimer on the forwarding outbox.
func (f *Forward) ClaimMessages(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]push.Message, error) {
	return forwardOutbox.claimMessages(ctx, f.db, owner, now, lease, limit)
}

// ClaimMessagesOf implements MessageClaimer on the forwarding outbox.
func (f *Forward) ClaimMessagesOf(ctx context.Context, owner string, now time.Time, lease time.Duration, msgs []push.Message) ([]push.Message, error) {
	return forwardOutbox.claimMessagesOf(ctx, f.db, owner, now, lease, msgs)
}

// RenewMessages implements MessageClaimer on the forwarding outbox.
func (f *Forward) RenewMessages(ctx context.Context, owner string, now time.Time, lease time.Duration) (int, error) {
	return forwardOutbox.renewMessages(ctx, f.db, owner, now, lease)
}
