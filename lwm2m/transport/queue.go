package transport

import (
	"math"
	"time"
)

// Awake reports whether a request to the device may go out at now (LWM-8):
// devices not in queue mode always may; queue-mode devices only until
// AwakeUntil.
func (r Registration) Awake(now time.Time) bool {
	return !r.Queue || !now.After(r.AwakeUntil)
}

// bucket is a token bucket for the per-session request rate.
type bucket struct {
	tokens float64
	last   time.Time
}

// allow takes one token at now, refilling rate tokens per second up to
// burst. When none is left it returns false and how long until one is.
func (b *bucket) allow(now time.Time, rate float64, burst int) (bool, time.Duration) {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+d.Seconds()*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}
