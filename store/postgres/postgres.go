package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configures Open. The zero value (or nil) is ready to use.
type Options struct {
	// Schema is the PostgreSQL schema that holds the tables; Open creates
	// it when absent and sets it as every connection's search_path. ""
	// means the DSN's search_path when it names one schema
	// (postgres://…?search_path=doze_eu), else the server's default
	// search_path (normally "public").
	Schema string
	// MaxConns bounds the pool. 0 means pgxpool's default (the larger of
	// 4 and the number of CPUs).
	MaxConns int32
}

// DB is one pool of connections to a PostgreSQL database holding the data
// of every Doze package. It is safe for concurrent use; the typed stores
// (Registry, Commands, …) are views on it.
type DB struct {
	pool   *pgxpool.Pool
	schema string
	once   sync.Once
}

// Open connects to the database at dsn (a postgres:// URL or a key=value
// string, as pgx reads them) and brings its schema up to date (Migrate).
// Open checks that the server answers: a DSN that does not parse, or a
// server that cannot be reached, fails with an *OpenError.
func Open(ctx context.Context, dsn string, opts *Options) (*DB, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, &OpenError{DSN: redactDSN(dsn), Err: err}
	}
	if sp := cfg.ConnConfig.RuntimeParams["search_path"]; o.Schema == "" && validSchema(sp) {
		// A DSN naming one schema (?search_path=name) is Options.Schema:
		// Open creates it when absent.
		o.Schema = sp
	}
	if o.Schema != "" {
		if !validSchema(o.Schema) {
			return nil, &OpenError{DSN: redactDSN(dsn), Err: fmt.Errorf("%w: %q; allowed: 1-63 of a-z, 0-9, _ starting with a letter or _", ErrSchemaName, o.Schema)}
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = o.Schema
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, &OpenError{DSN: redactDSN(dsn), Err: err}
	}
	db := &DB{pool: pool, schema: o.Schema}
	if err := db.Migrate(ctx); err != nil {
		pool.Close()
		return nil, &OpenError{DSN: redactDSN(dsn), Err: err}
	}
	return db, nil
}

// validSchema accepts the identifiers Open may put in a search_path and a
// CREATE SCHEMA without quoting.
func validSchema(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// redactDSN hides a password in a DSN for error messages.
func redactDSN(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// Close closes every connection of the pool, waiting for those in use to
// be returned. It is safe to call more than once.
func (db *DB) Close() error {
	if db == nil || db.pool == nil {
		return nil
	}
	db.once.Do(db.pool.Close)
	return nil
}

// Pool returns the pgx pool, for operators' tools and tests.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Schema returns the schema Open was given ("" for the default).
func (db *DB) Schema() string { return db.schema }

// tx runs fn in a transaction (READ COMMITTED, the server's default),
// committing when fn returns nil. A transaction the server aborts as a
// deadlock victim or a serialization failure is run again, up to
// txAttempts times in all, so fn must have no effects outside tx. Other
// errors (a unique or foreign key violation) are returned as they are.
func (db *DB) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for range txAttempts {
		err = pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{}, fn)
		if code, _ := pgCode(err); code != codeDeadlock && code != codeSerialization {
			return err
		}
	}
	return err
}

// txAttempts bounds the runs of one transaction that the server aborts
// for a deadlock or a serialization failure.
const txAttempts = 5

// nanos returns t as Unix nanoseconds for a nullable bigint column: nil for
// the zero time, clamped to the int64 range.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return clampNanos(t)
}

var (
	maxTime = time.Unix(0, 1<<63-1)
	minTime = time.Unix(0, -1<<63)
)

func clampNanos(t time.Time) int64 {
	switch {
	case t.After(maxTime):
		return 1<<63 - 1
	case t.Before(minTime):
		return -1 << 63
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos: a NULL column is the zero time. It
// returns local time, as time.Unix does (and the bbolt store).
func fromNanos(p *int64) time.Time {
	if p == nil {
		return time.Time{}
	}
	return time.Unix(0, *p)
}

// pgCode returns the SQLSTATE and constraint of a server error, or "".
func pgCode(err error) (code, constraint string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.ConstraintName
	}
	return "", ""
}

// SQLSTATEs this package branches on.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeSerialization       = "40001"
	codeDeadlock            = "40P01"
)
