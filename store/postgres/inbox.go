package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/doze-io/doze/store"
	"github.com/jackc/pgx/v5"
)

// Inbox keeps device uplinks between their acknowledgement and their
// processing, as store.Inbox does: a row of "inbox" per uplink, numbered by
// an identity column. With several nodes, Pending returns every node's
// entries; a node recovering after a crash should process the entries it
// put (the platform keeps the endpoint in each entry).
type Inbox struct{ db *DB }

// Inbox returns the uplink inbox of db.
func (db *DB) Inbox() *Inbox { return &Inbox{db: db} }

// Put stores e durably (committed) and returns its sequence number.
func (in *Inbox) Put(ctx context.Context, e store.InboxEntry) (uint64, error) {
	v, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	var seq int64
	if err := in.db.pool.QueryRow(ctx, "INSERT INTO inbox (rec) VALUES ($1) RETURNING seq", v).Scan(&seq); err != nil {
		return 0, fmt.Errorf("store/postgres: inbox: keeping an uplink of %s: %w", e.Endpoint, err)
	}
	return uint64(seq), nil
}

// Delete removes processed entries; unknown sequence numbers are ignored.
func (in *Inbox) Delete(ctx context.Context, seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(seqs))
	for _, s := range seqs {
		if s <= 1<<63-1 {
			ids = append(ids, int64(s))
		}
	}
	_, err := in.db.pool.Exec(ctx, "DELETE FROM inbox WHERE seq = ANY($1)", ids)
	return err
}

// Pending returns every entry not deleted yet, oldest first.
func (in *Inbox) Pending(ctx context.Context) ([]store.InboxEntry, error) {
	rows, err := in.db.pool.Query(ctx, "SELECT seq, rec FROM inbox ORDER BY seq")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.InboxEntry, error) {
		var seq int64
		var b []byte
		var e store.InboxEntry
		if err := r.Scan(&seq, &b); err != nil {
			return e, err
		}
		if err := json.Unmarshal(b, &e); err != nil {
			return e, fmt.Errorf("store/postgres: inbox: entry %d: %w", seq, err)
		}
		e.Seq = uint64(seq)
		return e, nil
	})
}
