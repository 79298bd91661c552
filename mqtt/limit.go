package mqtt

import "time"

// bucket is a token bucket of rate tokens per second holding at most
// rate tokens: a connection may send rate messages in any one second,
// and a burst of rate after a quiet second (MQT-4). The zero bucket is
// full. It is not safe for concurrent use: a connection's packets are
// read by one goroutine.
type bucket struct {
	tokens float64
	last   time.Time
}

// take reports whether a message at now is within rate, and spends a
// token if it is.
func (b *bucket) take(now time.Time, rate int) bool {
	r := float64(rate)
	if b.last.IsZero() {
		b.tokens = r
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(r, b.tokens+d.Seconds()*r)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
