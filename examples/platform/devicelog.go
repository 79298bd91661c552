package main

import (
	"sync"
	"time"
)

// logEntry is one event in a device's log (SPEC APP-2: decode failures are
// recorded where the application can read them).
type logEntry struct {
	Time    string `json:"time"`
	Kind    string `json:"kind"` // registered, uplink, decode_error, encode_error, command, upgrade, …
	Message string `json:"message"`
}

// deviceLog keeps the most recent events of each device in memory. It is a
// diagnostic aid, not a record: it is bounded per device and forgotten on
// restart (our choice; history and commands are the durable records).
type deviceLog struct {
	mu   sync.Mutex
	max  int
	logs map[string][]logEntry
}

func newDeviceLog(max int) *deviceLog { return &deviceLog{max: max, logs: map[string][]logEntry{}} }

func (l *deviceLog) Add(deviceID, kind, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := append(l.logs[deviceID], logEntry{Time: time.Now().UTC().Format(timeLayout), Kind: kind, Message: msg})
	if len(e) > l.max {
		e = append(e[:0:0], e[len(e)-l.max:]...)
	}
	l.logs[deviceID] = e
}

// Recent returns up to limit entries, newest first.
func (l *deviceLog) Recent(deviceID string, limit int) []logEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.logs[deviceID]
	out := make([]logEntry, 0, min(limit, len(e)))
	for i := len(e) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, e[i])
	}
	return out
}

func (l *deviceLog) Forget(deviceID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.logs, deviceID)
}

// timeLayout is the API's time format, yyyyMMdd'T'HHmmss'Z'.
const timeLayout = "20060102T150405Z"

func apiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}
