package transport

import (
	"time"

	"golang.org/x/time/rate"
)

// Awake reports whether a request to the device may go out at now (LWM-8):
// devices not in queue mode always may; queue-mode devices only until
// AwakeUntil.
func (r Registration) Awake(now time.Time) bool {
	return !r.Queue || !now.After(r.AwakeUntil)
}

// bucket is a token bucket (golang.org/x/time/rate) made on first use, so
// an idle or parked session holds one nil pointer rather than a limiter.
type bucket struct{ l *rate.Limiter }

// allow takes one token at now from a bucket refilled with rate tokens per
// second up to burst. When none is left it takes nothing and returns false
// and how long until one is.
func (b *bucket) allow(now time.Time, r float64, burst int) (bool, time.Duration) {
	if b.l == nil {
		b.l = rate.NewLimiter(rate.Limit(r), burst)
	}
	res := b.l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// wait reports, without taking a token, how long until the bucket has one
// at now (0: it has one now).
func (b *bucket) wait(now time.Time) time.Duration {
	if b.l == nil {
		return 0
	}
	t := b.l.TokensAt(now)
	if t >= 1 {
		return 0
	}
	return time.Duration((1 - t) / float64(b.l.Limit()) * float64(time.Second))
}

// full reports whether the bucket holds burst tokens again at now.
func (b *bucket) full(now time.Time) bool {
	return b.l == nil || b.l.TokensAt(now) >= float64(b.l.Burst())
}
