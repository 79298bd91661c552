package command

import (
	"context"
	"time"
)

// Store keeps commands, device modes and batch tasks durably (CMD-9). A
// write returns only when it is durable; the Engine stores every state
// change before it acts on it. Implementations must be safe for concurrent
// use. MemStore is the in-memory one; store.DB.Commands the bbolt one;
// commandtest.Run checks any implementation.
//
// Commands are keyed by DeviceID and Seq (a device's queue order) and found
// by ID; open commands (PENDING, SENT, DELIVERED) are indexed by
// Command.Due for the engine's timers.
//
// Commands returned share the bytes of Body.Paras and Result with the
// store: treat them as read-only.
type Store interface {
	// Write stores every command of w (inserting or replacing the record
	// with the same DeviceID and Seq) and applies w's task counts, all or
	// nothing. A command must have ID, DeviceID, Seq > 0 and a valid
	// Status.
	Write(ctx context.Context, w Write) error
	// Get returns the command with the given ID, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, id string) (Command, error)
	// LastSeq returns the highest Seq ever written for the device, 0 if
	// none.
	LastSeq(ctx context.Context, deviceID string) (uint64, error)
	// Queue returns the device's open commands in Seq order.
	Queue(ctx context.Context, deviceID string) ([]Command, error)
	// Front returns, in Seq order, the device's first n open commands
	// and every later open command whose Due() is not after t (a zero
	// Due() is never due; a zero t adds none): what the engine needs to
	// serve the device at t, without copying its whole queue as Queue
	// does. n < 0 counts as 0.
	Front(ctx context.Context, deviceID string, n int, t time.Time) ([]Command, error)
	// List returns up to limit commands of the device, any state, with
	// Seq > after, in Seq order.
	List(ctx context.Context, deviceID string, after uint64, limit int) ([]Command, error)
	// Due returns up to limit open commands whose Due() is not after t,
	// earliest first (ties in DeviceID, Seq order).
	Due(ctx context.Context, t time.Time, limit int) ([]Command, error)
	// NextDue returns the earliest Due() of all open commands that have
	// one, or the zero time.
	NextDue(ctx context.Context) (time.Time, error)
	// PutMode stores the device's power-saving mode.
	PutMode(ctx context.Context, deviceID string, m Mode) error
	// Mode returns the device's mode; ok is false when none was stored.
	Mode(ctx context.Context, deviceID string) (m Mode, ok bool, err error)
	// PutTask stores a batch task (creating or replacing it, counts
	// included).
	PutTask(ctx context.Context, t Task) error
	// Task returns the task with the given ID, or an error wrapping
	// ErrNotFound.
	Task(ctx context.Context, id string) (Task, error)
}

// Write is one atomic change to a Store.
type Write struct {
	Commands []Command
	// Counts each add one to a task's count for a final status (CMD-8).
	// A count for a task that does not exist is an error.
	Counts []Count
}

// Count is one command of a batch task reaching an end state.
type Count struct {
	TaskID string
	Status Status
}

// Pruner is an optional ability of a Store: deleting ended commands, so
// that history does not grow for ever. The Engine uses it when
// Config.Retention is set.
type Pruner interface {
	// Prune deletes up to limit ended commands whose ExecuteTime is
	// before t and returns how many it deleted. Open commands, LastSeq and
	// task counts are not affected.
	Prune(ctx context.Context, before time.Time, limit int) (int, error)
}

// Uplinks is an optional ability of a Store: keeping devices' last uplink
// times. The engine keeps a device's last uplink in memory while it uses
// the device; with Uplinks it also forgets an idle device that has been
// heard from, writing the time here first (many devices in one call), and
// reads it back when the device is next used, so that the device's PSM
// active time and eDRX paging windows are placed as before. Without it,
// only idle devices never heard from since the start are forgotten.
type Uplinks interface {
	// PutUplinks stores the last uplink time of each device in last,
	// replacing what was stored, all or nothing.
	PutUplinks(ctx context.Context, last map[string]time.Time) error
	// Uplink returns the device's stored last uplink time, or the zero
	// time.
	Uplink(ctx context.Context, deviceID string) (time.Time, error)
}
