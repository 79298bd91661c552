package store

import (
	"errors"
	"fmt"
)

// ErrNotDB means the file exists but is not a bbolt file (or is damaged
// beyond what bbolt can open).
var ErrNotDB = errors.New("store: not a bbolt database file")

// ErrLocked means another process holds the file open for writing.
var ErrLocked = errors.New("store: file is locked by another process")

// ErrClosed means the DB was used after Close (it wraps bbolt's "database
// not open").
var ErrClosed = errors.New("store: database is closed")

// OpenError says which file could not be opened and why.
type OpenError struct {
	Path string
	Err  error
}

// Error says the file and the cause: "store: open <path>: <cause>".
func (e *OpenError) Error() string { return fmt.Sprintf("store: open %s: %v", e.Path, e.Err) }

// Unwrap returns the cause (ErrNotDB, ErrLocked, or an fs error).
func (e *OpenError) Unwrap() error { return e.Err }
