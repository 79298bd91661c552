package postgres

import (
	"errors"
	"fmt"
)

// ErrSchemaName means Options.Schema is not a plain identifier.
var ErrSchemaName = errors.New("store/postgres: bad schema name")

// ErrSchemaNewer means the database was migrated by a newer build of this
// package: this build does not know its latest version and refuses to use
// it rather than misread it.
var ErrSchemaNewer = errors.New("store/postgres: database schema is newer than this build")

// ErrTooLarge means a value does not fit the column that stores it (a
// command Seq above 2^63-1, a push message id over 1024 bytes).
var ErrTooLarge = errors.New("store/postgres: value out of range")

// OpenError says which database could not be opened and why. DSN has
// any password removed.
type OpenError struct {
	DSN string
	Err error
}

// Error says the database and the cause: "store/postgres: open <dsn>: <cause>".
func (e *OpenError) Error() string { return fmt.Sprintf("store/postgres: open %s: %v", e.DSN, e.Err) }

// Unwrap returns the cause.
func (e *OpenError) Unwrap() error { return e.Err }

// MigrationError says which schema step failed; nothing of it was applied.
type MigrationError struct {
	Version int
	Name    string
	Err     error
}

// Error names the step and the server's complaint.
func (e *MigrationError) Error() string {
	return fmt.Sprintf("store/postgres: migration %d (%s): %v", e.Version, e.Name, e.Err)
}

// Unwrap returns the server's error.
func (e *MigrationError) Unwrap() error { return e.Err }
