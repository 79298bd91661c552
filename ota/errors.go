package ota

import (
	"errors"
	"fmt"
)

// ErrNotFound means a package, task or sub-task does not exist.
var ErrNotFound = errors.New("ota: not found")

// ErrInvalid means an argument broke a rule; the wrapping error says which
// field, what was wrong and what is allowed.
var ErrInvalid = errors.New("ota: invalid argument")

// ErrPackageInUse means a package cannot be deleted because an unfinished
// task uses it.
var ErrPackageInUse = errors.New("ota: package is used by an unfinished task")

// ErrTaskFinished means a task that already ended was asked to stop.
var ErrTaskFinished = errors.New("ota: task already finished")

// ErrNothingToRetry means Retry found no failed sub-task, or the task has
// not ended yet.
var ErrNothingToRetry = errors.New("ota: nothing to retry")

// ErrClosed means the engine was closed: Run and CreateTask after Close
// return it, and a second Run returns an error wrapping it.
var ErrClosed = errors.New("ota: engine closed")

// ErrNoBlock means a block number is outside the package.
var ErrNoBlock = errors.New("ota: no such block")

// FieldError says which field of a package, task or policy is wrong.
type FieldError struct {
	Field   string // e.g. "blockSize"
	Message string // what was wrong and what is allowed
	Err     error  // ErrInvalid
}

// Error returns the field and the reason, prefixed "ota:".
func (e *FieldError) Error() string { return fmt.Sprintf("ota: %s: %s", e.Field, e.Message) }

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...), Err: ErrInvalid}
}
