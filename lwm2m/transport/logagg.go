package transport

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logAgg keeps floods out of the log (SEC-2): the first event of a kind is
// logged at once, with its details; the next ones within the interval are
// only counted, and one line per interval reports how many there were and
// the details of the last. A kind is the message; the set of messages is
// fixed in the code, so the map stays small.
type logAgg struct {
	log   *slog.Logger
	every time.Duration

	mu    sync.Mutex
	kinds map[string]*aggKind
}

type aggKind struct {
	level slog.Level
	next  time.Time // no line before this
	count int       // events not logged yet
	last  []any     // their last details
}

// logAggInterval is the interval of the DTLS side's aggregated lines.
const logAggInterval = 10 * time.Second

func newLogAgg(l *slog.Logger, every time.Duration) *logAgg {
	return &logAgg{log: l, every: every, kinds: make(map[string]*aggKind)}
}

func (a *logAgg) warn(now time.Time, msg string, attrs ...any) {
	a.add(now, slog.LevelWarn, msg, attrs)
}
func (a *logAgg) info(now time.Time, msg string, attrs ...any) {
	a.add(now, slog.LevelInfo, msg, attrs)
}

func (a *logAgg) add(now time.Time, level slog.Level, msg string, attrs []any) {
	a.mu.Lock()
	k := a.kinds[msg]
	if k == nil {
		k = &aggKind{level: level}
		a.kinds[msg] = k
	}
	if now.Before(k.next) {
		k.count++
		k.last = attrs
		a.mu.Unlock()
		return
	}
	k.next = now.Add(a.every)
	a.mu.Unlock()
	a.log.Log(context.Background(), level, msg, attrs...)
}

// flush logs, for each kind whose interval has passed, the events counted
// since its last line.
func (a *logAgg) flush(now time.Time) {
	type line struct {
		level slog.Level
		msg   string
		attrs []any
	}
	var out []line
	a.mu.Lock()
	for msg, k := range a.kinds {
		if k.count == 0 || now.Before(k.next) {
			continue
		}
		attrs := append([]any{"count", k.count, "interval", a.every.String(), "last"}, slog.GroupValue(argsToAttrs(k.last)...))
		out = append(out, line{k.level, msg, attrs})
		k.count, k.last, k.next = 0, nil, now.Add(a.every)
	}
	a.mu.Unlock()
	for _, l := range out {
		a.log.Log(context.Background(), l.level, l.msg+" (aggregated)", l.attrs...)
	}
}

func argsToAttrs(args []any) []slog.Attr {
	var out []slog.Attr
	for i := 0; i+1 < len(args); i += 2 {
		k, _ := args[i].(string)
		out = append(out, slog.Any(k, args[i+1]))
	}
	return out
}
