package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// maxLeaseName bounds a lease's name.
const maxLeaseName = 200

// AcquireLease takes or renews the lease called name for owner until
// now+lease and reports whether owner holds it: it does when nobody held
// it, when its holder's lease ended by now, or when owner held it already.
// Several nodes asking at once get one yes (one row, one upsert). It
// backs work that one node does at a time for all (the registry's
// deadline sweep, registry.Leaser).
func (db *DB) AcquireLease(ctx context.Context, name, owner string, now time.Time, lease time.Duration) (bool, error) {
	if err := checkClaim(owner, lease, 0); err != nil {
		return false, err
	}
	if name == "" || len(name) > maxLeaseName {
		return false, fmt.Errorf("store/postgres: lease name of %d bytes; want 1–%d", len(name), maxLeaseName)
	}
	var got string
	err := db.pool.QueryRow(ctx, `INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
		WHERE leases.until <= $4 OR leases.owner = excluded.owner
		RETURNING owner`, name, owner, clampNanos(now.Add(lease)), clampNanos(now)).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // another owner's lease lasts
	}
	if err != nil {
		return false, fmt.Errorf("store/postgres: lease %q: %w", name, err)
	}
	return got == owner, nil
}

// AcquireLease implements registry.Leaser (see DB.AcquireLease).
func (s *Registry) AcquireLease(ctx context.Context, name, owner string, now time.Time, lease time.Duration) (bool, error) {
	return s.db.AcquireLease(ctx, name, owner, now, lease)
}
