package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doze-io/doze/internal/apitime"
	"github.com/doze-io/doze/store"
	"github.com/prometheus/client_golang/prometheus"
)

// logEntry is one event in a device's log as the API shows it
// (APP-2: decode failures are recorded where the application can read
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
//
// Memory is bounded in total, whatever the number of devices: the queue
// holds at most maxPending entries (of at most store.MaxLogMessage bytes
// each); when the store falls behind, the oldest queued entries are
// dropped for the newest (the newest say most about a device's present),
// counted in doze_devicelog_dropped_total and logged at the next flush.
// On disk each device keeps its last deviceLogSize entries: the file
// holds at most devices × deviceLogSize entries (issue 24: at 100,000
// devices and the default 200, up to 20 million entries, ≈3.4 GB at
// ≈170 B each; set deviceLogSize lower for a large fleet).
type deviceLog struct {
	st     deviceLogStore
	logger *slog.Logger

	mu      sync.Mutex
	pending []store.LogEntry
	dropped int           // entries dropped since the last flush, where they are logged
	total   atomic.Uint64 // entries ever dropped (doze_devicelog_dropped_total)

	flushMu sync.Mutex    // one flush at a time; Recent and Forget wait for it
	kick    chan struct{} // flushAt entries wait
}

const (
	flushEvery = time.Second
	flushAt    = 256
	// maxPending bounds the queue when the store cannot keep up: the
	// oldest entries are dropped, counted and logged.
	maxPending = 16 * flushAt
)

func newDeviceLog(st deviceLogStore, logger *slog.Logger) *deviceLog {
	return &deviceLog{st: st, logger: logger, kick: make(chan struct{}, 1)}
}

// Add queues one entry of a device's log.
func (l *deviceLog) Add(deviceID, kind, msg string) {
	l.mu.Lock()
	if len(l.pending) >= maxPending {
		// A block at a time, so that a queue kept full costs a copy
		// per flushAt entries, not per entry.
		l.dropOldestLocked(len(l.pending) - maxPending + flushAt)
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
			l.dropOldestLocked(over)
		}
		l.mu.Unlock()
	}
}

// dropOldestLocked drops the n oldest queued entries and counts them.
// l.mu is held.
func (l *deviceLog) dropOldestLocked(n int) {
	k := copy(l.pending, l.pending[n:])
	clear(l.pending[k:])
	l.pending = l.pending[:k]
	l.dropped += n
	l.total.Add(uint64(n))
}

// Dropped returns how many entries were ever dropped from the full queue.
func (l *deviceLog) Dropped() uint64 { return l.total.Load() }

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

// apiTime is t in the API's time format (apitime), "" for the zero time.
func apiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return apitime.Format(t)
}

// droppedMetric is doze_devicelog_dropped_total, read from l at scrape time.
func (l *deviceLog) droppedMetric() prometheus.CounterFunc {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "doze_devicelog_dropped_total",
		Help: "Device log entries dropped, oldest first, because the store fell behind and the in-memory queue was full."},
		func() float64 { return float64(l.Dropped()) })
}
