package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Owners records which application owns each resource that is not a
// device (a device's owner is its app_id): groups, products, upgrade
// packages and tasks (APP-3), in the table resource_owners; and the
// one-time migrations of the platform that have run, in
// platform_migrations. It is store.Owners on PostgreSQL.
type Owners struct{ db *DB }

// Owners returns the resource-ownership view of db.
func (db *DB) Owners() *Owners { return &Owners{db: db} }

// MaxOwnerKey bounds a kind, id or appId in bytes.
const MaxOwnerKey = 1024

func checkOwnerKeys(kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		what, s := kv[i], kv[i+1]
		if s == "" || len(s) > MaxOwnerKey || strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("store/postgres: owners: %s %q must be 1 to %d bytes without NUL", what, s, MaxOwnerKey)
		}
	}
	return nil
}

// Claim makes appID the owner of kind/id unless it has one, and returns
// the owner it has after the call.
func (o *Owners) Claim(ctx context.Context, kind, id, appID string) (string, error) {
	if err := checkOwnerKeys("kind", kind, "id", id, "appId", appID); err != nil {
		return "", err
	}
	if _, err := o.db.pool.Exec(ctx, `INSERT INTO resource_owners (kind, id, app_id) VALUES ($1, $2, $3)
		ON CONFLICT (kind, id) DO NOTHING`, kind, id, appID); err != nil {
		return "", err
	}
	return o.Owner(ctx, kind, id)
}

// Set makes appID the owner of kind/id, replacing any owner it had.
func (o *Owners) Set(ctx context.Context, kind, id, appID string) error {
	if err := checkOwnerKeys("kind", kind, "id", id, "appId", appID); err != nil {
		return err
	}
	_, err := o.db.pool.Exec(ctx, `INSERT INTO resource_owners (kind, id, app_id) VALUES ($1, $2, $3)
		ON CONFLICT (kind, id) DO UPDATE SET app_id = excluded.app_id`, kind, id, appID)
	return err
}

// Owner returns the owner of kind/id, "" when it has none.
func (o *Owners) Owner(ctx context.Context, kind, id string) (string, error) {
	var owner string
	err := o.db.pool.QueryRow(ctx, "SELECT app_id FROM resource_owners WHERE kind = $1 AND id = $2", kind, id).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return owner, err
}

// Delete forgets the owner of kind/id; nothing happens when it has none.
func (o *Owners) Delete(ctx context.Context, kind, id string) error {
	_, err := o.db.pool.Exec(ctx, "DELETE FROM resource_owners WHERE kind = $1 AND id = $2", kind, id)
	return err
}

// IDs returns the ids of appID's resources of kind, in byte order.
func (o *Owners) IDs(ctx context.Context, appID, kind string) ([]string, error) {
	rows, err := o.db.pool.Query(ctx, "SELECT id FROM resource_owners WHERE app_id = $1 AND kind = $2 ORDER BY id", appID, kind)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Done reports whether the one-time migration name has run.
func (o *Owners) Done(ctx context.Context, name string) (bool, error) {
	var done bool
	err := o.db.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM platform_migrations WHERE name = $1)", name).Scan(&done)
	return done, err
}

// MarkDone records that the one-time migration name has run.
func (o *Owners) MarkDone(ctx context.Context, name string) error {
	_, err := o.db.pool.Exec(ctx, "INSERT INTO platform_migrations (name) VALUES ($1) ON CONFLICT DO NOTHING", name)
	return err
}
