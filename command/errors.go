package command

import (
	"errors"
	"fmt"
)

// ErrInvalid means a Request (or BatchRequest) broke a rule of CMD-2; the
// *FieldError wrapping it names the field and the rule.
var ErrInvalid = errors.New("command: invalid request")

// ErrCallbackConflict is what a Config.CheckCallback function returns
// (wrapped) when a callbackUrl's host and port differ from those of the
// application's subscriptions (CMD-6, FAQ §4.5); the API answers 403
// "callback address conflict".
var ErrCallbackConflict = errors.New("command: callback address conflict")

// ErrQueueFull means the device already has Config.QueueLimit open commands
// (CMD-10). The *QueueFullError wrapping it names the device and the limit.
var ErrQueueFull = errors.New("command: device queue full")

// ErrNotFound means no command (or task) has the given id.
var ErrNotFound = errors.New("command: not found")

// ErrNotPending means a command cannot be cancelled because it already left
// PENDING (CMD-7); the *StateError wrapping it carries the current state.
var ErrNotPending = errors.New("command: command is no longer pending")

// ErrBadMove means a state change not in the table of CMD-1 was attempted.
var ErrBadMove = errors.New("command: move not allowed")

// ErrBadStatus means a status name is not one of CMD-1's.
var ErrBadStatus = errors.New("command: unknown status")

// ErrBadMode means a power-saving Mode is malformed.
var ErrBadMode = errors.New("command: bad power-saving mode")

// ErrBadJSON means a command's JSON could not be read.
var ErrBadJSON = errors.New("command: bad command JSON")

// ErrUnreachable means an immediate command (expireTime 0) could not be
// delivered because the device cannot be reached now (CMD-2, FAQ §7.2). The
// command is stored FAILED with the reason.
var ErrUnreachable = errors.New("command: device not reachable for an immediate command")

// ErrEncode is what a Sender wraps when the codec could not encode the
// command: the command becomes FAILED. Any other Sender error is a
// transport failure and the command stays at the head of the queue (CMD-4).
var ErrEncode = errors.New("command: encode failed")

// ErrRefused is what a Sender wraps (through a *RefusedError) when the
// device refused the command in a way that sending it again cannot change,
// such as a CoAP 4.xx answer to every form the transport tried: the
// command becomes FAILED with the device's code, not retried.
var ErrRefused = errors.New("command: device refused the command")

// RefusedError is a device's lasting refusal of a command, returned by a
// Sender. The Engine stores the command FAILED, its Reason the error and
// its Result {"code":Code,"reason":…}, pushed as resultDetail.
type RefusedError struct {
	Code string // the device's answer as its protocol spells it, e.g. "4.00"
	Err  error  // the transport's error, which says what was refused and where
}

// Error returns the message, prefixed with the package name.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("%v with %s: %v", ErrRefused, e.Code, e.Err)
}

// Unwrap returns ErrRefused and the transport's error, for errors.Is and
// errors.As.
func (e *RefusedError) Unwrap() []error { return []error{ErrRefused, e.Err} }

// ErrClosed means the Engine was used after Close, or Run was called twice.
var ErrClosed = errors.New("command: engine closed")

// FieldError says which field of a request or record is wrong, what it
// held, and what is allowed.
type FieldError struct {
	Field string // API name of the field: "expireTime", "command.paras", …
	Value string // the offending value, shortened
	Rule  string // what is allowed
	Err   error  // ErrInvalid, ErrBadMode or ErrBadJSON
}

// Error says what was wrong, where, and what is allowed.
func (e *FieldError) Error() string {
	return fmt.Sprintf("%v: %s = %s: must be %s", e.Err, e.Field, e.Value, e.Rule)
}

// Unwrap returns the sentinel the error wraps, for errors.Is.
func (e *FieldError) Unwrap() error { return e.Err }

// MoveError is a refused state change (CMD-1).
type MoveError struct {
	ID       string
	From, To Status
}

// Error returns the message, prefixed with the package name.
func (e *MoveError) Error() string {
	return fmt.Sprintf("%v: command %s: %v → %v (allowed from %v: %v)", ErrBadMove, e.ID, e.From, e.To, e.From, moves[e.From])
}

// Unwrap returns the sentinel the error wraps, for errors.Is.
func (e *MoveError) Unwrap() error { return ErrBadMove }

// StateError is an operation refused because of the command's current
// state, which it carries (the API answers 409 with it).
type StateError struct {
	ID     string
	Status Status
	Err    error // ErrNotPending
}

// Error returns the message, prefixed with the package name.
func (e *StateError) Error() string {
	return fmt.Sprintf("%v: command %s is %v", e.Err, e.ID, e.Status)
}

// Unwrap returns the sentinel the error wraps, for errors.Is.
func (e *StateError) Unwrap() error { return e.Err }

// QueueFullError names the device whose queue is full and the limit.
type QueueFullError struct {
	DeviceID string
	Limit    int
}

// Error returns the message, prefixed with the package name.
func (e *QueueFullError) Error() string {
	return fmt.Sprintf("%v: device %s already has %d open commands (Config.QueueLimit)", ErrQueueFull, e.DeviceID, e.Limit)
}

// Unwrap returns the sentinel the error wraps, for errors.Is.
func (e *QueueFullError) Unwrap() error { return ErrQueueFull }

// NotFoundError names the command or task that was not found.
type NotFoundError struct {
	What string // "command" or "task"
	ID   string
}

// Error returns the message, prefixed with the package name.
func (e *NotFoundError) Error() string { return fmt.Sprintf("%v: %s %q", ErrNotFound, e.What, e.ID) }

// Unwrap returns the sentinel the error wraps, for errors.Is.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// ErrBadRecord means a Store was asked to write a command or count that
// breaks its rules (no ID, Seq 0, invalid status, count for an unknown
// task or a non-final status).
var ErrBadRecord = errors.New("command: bad record")

// CheckRecord returns an error wrapping ErrBadRecord when c cannot be
// stored; Store implementations call it in Write.
func CheckRecord(c *Command) error {
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: command without ID (device %q, seq %d)", ErrBadRecord, c.DeviceID, c.Seq)
	case c.DeviceID == "":
		return fmt.Errorf("%w: command %s without DeviceID", ErrBadRecord, c.ID)
	case c.Seq == 0:
		return fmt.Errorf("%w: command %s with Seq 0", ErrBadRecord, c.ID)
	case !c.Status.Valid():
		return fmt.Errorf("%w: command %s with status %v", ErrBadRecord, c.ID, c.Status)
	}
	return nil
}

// CheckCount returns an error wrapping ErrBadRecord when n is not a count
// of an end state.
func CheckCount(n Count) error {
	if n.TaskID == "" || !n.Status.Final() {
		return fmt.Errorf("%w: task count %q for status %v (want a task id and an end state)", ErrBadRecord, n.TaskID, n.Status)
	}
	return nil
}
