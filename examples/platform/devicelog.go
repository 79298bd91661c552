package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/doze-io/doze/store"
)

// logEntry is one event in a device's log as the API shows it (SPEC
// APP-2: decode failures are recorded where the application can read
// them).
type logEntry struct {
	Time    string `json:"time"`
	Kind    string `json:"kind"` // registered, uplink, decode_error, encode_error, command, upgrade, …
	Message string `json:"message"`
}

// deviceLog keeps the last entries of each device in the store
// (store.DeviceLog, bounded per device), so the log survives a restart.
// Add only queues an entry in memory: the uplink path pays no disk sync
// for its log lines. Run writes what is queued once a second (flushEvery)
// or as soon as flushAt entries wait, many entries in one commit; it
// writes the rest when it stops, and Close writes what came after. A crash
// loses at most the last second of log lines, never data.
type deviceLog struct {
	st     *store.DeviceLog
	logger *slog.Logger

	mu      sync.Mutex
	pending []store.LogEntry
	dropped int // entries dropped because the queue was full; logged at the next flush

	flushMu sync.Mutex    // one flush at a time; Recent and Forget wait for it
	kick    chan struct{} // flushAt entries wait
}

const (
	flushEvery = time.Second
	flushAt    = 256
	// maxPending bounds the queue when the store cannot be written: newer
	// entries are dropped, counted and logged.
	maxPending = 16 * flushAt
)

func newDeviceLog(st *store.DeviceLog, logger *slog.Logger) *deviceLog {
	return &deviceLog{st: st, logger: logger, kick: make(chan struct{}, 1)}
}

// Add queues one entry of a device's log.
func (l *deviceLog) Add(deviceID, kind, msg string) {
	l.mu.Lock()
	if len(l.pending) >= maxPending {
		l.dropped++
		l.mu.Unlock()
		return
	}
	l.pending = append(l.pending, store.LogEntry{DeviceID: deviceID, Time: time.Now(), Kind: kind, Message: msg})
	n := len(l.pending)
	l.mu.Unlock()
	if n >= flushAt {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// Run writes queued entries until ctx ends, then writes the rest.
func (l *deviceLog) Run(ctx context.Context) error {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.Flush()
			return nil
		case <-t.C:
		case <-l.kick:
		}
		l.Flush()
	}
}

// Flush writes the queued entries in one commit. Entries that cannot be
// written go back to the front of the queue for the next try.
func (l *deviceLog) Flush() {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	batch, dropped := l.pending, l.dropped
	l.pending, l.dropped = nil, 0
	l.mu.Unlock()
	if dropped > 0 {
		l.logger.Error("device log entries dropped: the store could not keep up", "dropped", dropped)
	}
	if len(batch) == 0 {
		return
	}
	if err := l.st.Append(context.Background(), batch...); err != nil {
		l.logger.Error("writing the device log", "entries", len(batch), "err", err)
		l.mu.Lock()
		l.pending = append(batch, l.pending...)
		if over := len(l.pending) - maxPending; over > 0 {
			l.pending = l.pending[:maxPending]
			l.dropped += over
		}
		l.mu.Unlock()
	}
}

// Recent returns up to limit entries of the device, newest first: those
// still queued, then the stored ones.
func (l *deviceLog) Recent(deviceID string, limit int) []logEntry {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	out := make([]logEntry, 0, min(limit, 64))
	l.mu.Lock()
	for i := len(l.pending) - 1; i >= 0 && len(out) < limit; i-- {
		if e := l.pending[i]; e.DeviceID == deviceID {
			out = append(out, logEntry{Time: apiTime(e.Time), Kind: e.Kind, Message: e.Message})
		}
	}
	l.mu.Unlock()
	if len(out) == limit {
		return out
	}
	stored, err := l.st.Recent(deviceID, limit-len(out))
	if err != nil {
		l.logger.Error("reading the device log", "device", deviceID, "err", err)
	}
	for _, e := range stored {
		out = append(out, logEntry{Time: apiTime(e.Time), Kind: e.Kind, Message: e.Message})
	}
	return out
}

// Forget deletes a device's log, queued and stored.
func (l *deviceLog) Forget(deviceID string) {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	kept := l.pending[:0]
	for _, e := range l.pending {
		if e.DeviceID != deviceID {
			kept = append(kept, e)
		}
	}
	clear(l.pending[len(kept):])
	l.pending = kept
	l.mu.Unlock()
	if err := l.st.Delete(deviceID); err != nil {
		l.logger.Error("deleting the log of a deleted device", "device", deviceID, "err", err)
	}
}

// timeLayout is the API's time format, yyyyMMdd'T'HHmmss'Z'.
const timeLayout = "20060102T150405Z"

func apiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}
