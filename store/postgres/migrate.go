package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migrations are the numbered schema steps, applied in order:
// NNNN_name.sql. A released file is never edited; a change is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock names the transaction-scoped advisory lock that Migrate
// holds, so that nodes starting at once apply each step once. The lock is
// per schema: nodes on one schema wait for each other, other schemas (the
// tests') do not.
const migrationLock = "doze/store/postgres migrate "

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads and orders the embedded steps; a file whose name
// does not start with a number, or two files with one number, is an error.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("store/postgres: migration %q: name must be NNNN_name.sql with NNNN > 0", base)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("store/postgres: migrations %q and %q share version %d", out[i-1].name, out[i].name, out[i].version)
		}
	}
	return out, nil
}

// Migrate applies the embedded migrations the database lacks, in one
// transaction under an advisory lock: several nodes starting at once
// apply each step exactly once, and a step that fails leaves the schema
// as it was. It creates the schema of Options.Schema when absent. A
// database migrated by a newer build (a version this build does not know)
// fails with ErrSchemaNewer.
func (db *DB) Migrate(ctx context.Context) error {
	steps, err := loadMigrations(migrations)
	if err != nil {
		return err
	}
	return db.migrate(ctx, steps)
}

func (db *DB) migrate(ctx context.Context, steps []migration) error {
	return db.tx(ctx, func(tx pgx.Tx) error {
		schema := db.schema
		if schema == "" {
			if err := tx.QueryRow(ctx, "SELECT coalesce(current_schema(), '')").Scan(&schema); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", migrationLock+schema); err != nil {
			return fmt.Errorf("store/postgres: migration lock: %w", err)
		}
		if db.schema != "" {
			// validSchema has checked the name: no quoting needed.
			if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+db.schema); err != nil {
				return fmt.Errorf("store/postgres: create schema %s: %w", db.schema, err)
			}
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`)
		if err != nil {
			return fmt.Errorf("store/postgres: schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
			return fmt.Errorf("store/postgres: reading schema_migrations: %w", err)
		}
		known := 0
		if len(steps) > 0 {
			known = steps[len(steps)-1].version
		}
		if current > known {
			return fmt.Errorf("%w: database at version %d, this build knows up to %d", ErrSchemaNewer, current, known)
		}
		for _, m := range steps {
			if m.version <= current {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return &MigrationError{Version: m.version, Name: m.name, Err: err}
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return &MigrationError{Version: m.version, Name: m.name, Err: err}
			}
		}
		return nil
	})
}

// Version returns the highest migration applied to the database.
func (db *DB) Version(ctx context.Context) (int, error) {
	var v int
	err := db.pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v)
	return v, err
}
