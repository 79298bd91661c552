package transport

import (
	"log/slog"
	"sync"
	"time"
)

// floodInterval is how often an aggregated log line is written at most
// for each kind of event a peer can cause once per datagram.
const floodInterval = time.Minute

// floodLog aggregates the log lines that any peer can cause once per
// datagram (refused registrations, malformed messages, dropped datagrams):
// the first of each kind in an interval is logged with its details, the
// others are only counted, and one line with the count follows when the
// interval has passed (SEC-2). A flood of a million datagrams writes two
// lines a minute, not a million. Kinds are the package's own constants,
// so the table stays small.
type floodLog struct {
	log      *slog.Logger
	interval time.Duration

	mu    sync.Mutex
	kinds map[string]*floodKind
}

type floodKind struct {
	msg   string
	start time.Time
	more  int // events after the first in this interval
}

func newFloodLog(l *slog.Logger, interval time.Duration) *floodLog {
	return &floodLog{log: l, interval: interval, kinds: make(map[string]*floodKind)}
}

// note records one event of kind at now: logged at Info with args when it
// is the first of its interval, counted otherwise.
func (f *floodLog) note(kind, msg string, args ...any) { f.noteAt(time.Now(), kind, msg, args...) }

func (f *floodLog) noteAt(now time.Time, kind, msg string, args ...any) {
	f.mu.Lock()
	k := f.kinds[kind]
	if k != nil && now.Sub(k.start) < f.interval {
		k.more++
		f.mu.Unlock()
		return
	}
	var prev floodKind
	if k != nil {
		prev = *k
	}
	f.kinds[kind] = &floodKind{msg: msg, start: now}
	f.mu.Unlock()
	f.summary(prev)
	f.log.Info(msg, args...)
}

// flush writes the count of every kind whose interval has passed at now.
func (f *floodLog) flush(now time.Time) {
	var done []floodKind
	f.mu.Lock()
	for name, k := range f.kinds {
		if now.Sub(k.start) >= f.interval {
			done = append(done, *k)
			delete(f.kinds, name)
		}
	}
	f.mu.Unlock()
	for _, k := range done {
		f.summary(k)
	}
}

func (f *floodLog) summary(k floodKind) {
	if k.more > 0 {
		f.log.Warn(k.msg+": more of the same, not logged one by one", "count", k.more, "since", k.start, "interval", f.interval)
	}
}
