package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Apps keeps the platform's applications, one row of "platform_apps" per
// app id; the record is the platform's own (JSON, secret included) and
// opaque here. The bbolt platform keeps them in a file instead
// (<dataDir>/apps.json); in PostgreSQL every node reads the same apps.
type Apps struct{ db *DB }

// Apps returns the applications view of db.
func (db *DB) Apps() *Apps { return &Apps{db: db} }

// MaxAppRecord bounds one app's record in bytes.
const MaxAppRecord = 1 << 20

// Put stores (or replaces) the record of app id.
func (a *Apps) Put(ctx context.Context, id string, rec []byte) error {
	if err := checkApp(id, rec); err != nil {
		return err
	}
	_, err := a.db.pool.Exec(ctx, `INSERT INTO platform_apps (id, rec) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET rec = excluded.rec`, id, rec)
	return err
}

// PutFirst stores the record of app id only when no app is stored yet
// (the demo app of a first start) and reports whether it did. Nodes that
// start together on an empty database store one app between them: the
// table is locked for the check and the insert.
func (a *Apps) PutFirst(ctx context.Context, id string, rec []byte) (bool, error) {
	if err := checkApp(id, rec); err != nil {
		return false, err
	}
	var put bool
	err := a.db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE platform_apps IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO platform_apps (id, rec)
			SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM platform_apps)`, id, rec)
		put = err == nil && tag.RowsAffected() == 1
		return err
	})
	return put, err
}

// Delete removes app id; an absent app is not an error.
func (a *Apps) Delete(ctx context.Context, id string) error {
	_, err := a.db.pool.Exec(ctx, "DELETE FROM platform_apps WHERE id = $1", id)
	return err
}

// All returns the record of every app by id.
func (a *Apps) All(ctx context.Context) (map[string][]byte, error) {
	rows, err := a.db.pool.Query(ctx, "SELECT id, rec FROM platform_apps")
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	var id string
	var rec []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &rec}, func() error {
		out[id] = rec
		return nil
	})
	return out, err
}

func checkApp(id string, rec []byte) error {
	switch {
	case id == "" || len(id) > 256 || !utf8.ValidString(id) || strings.ContainsRune(id, 0):
		return fmt.Errorf("%w: app id %q: want 1-256 bytes of UTF-8 without NUL", ErrTooLarge, id)
	case len(rec) > MaxAppRecord:
		return fmt.Errorf("%w: app %s record of %d bytes; allowed up to %d", ErrTooLarge, id, len(rec), MaxAppRecord)
	case len(rec) == 0:
		return errors.New("store/postgres: app " + id + ": empty record")
	}
	return nil
}
