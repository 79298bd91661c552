package mqtt

import (
	"time"

	"golang.org/x/time/rate"
)

// bucket is a connection's message budget (MQT-4): a token bucket of rate
// tokens per second holding at most rate tokens, so a connection may send
// rate messages in any one second, and a burst of rate after a quiet
// second. It is golang.org/x/time/rate's Limiter, made on the first take;
// the zero bucket is full. A connection's packets are read by one
// goroutine, so take is not called concurrently.
type bucket struct{ lim *rate.Limiter }

// take reports whether a message at now is within rate, and spends a
// token if it is. rate is the same on every call.
func (b *bucket) take(now time.Time, perSecond int) bool {
	if b.lim == nil {
		b.lim = rate.NewLimiter(rate.Limit(perSecond), perSecond)
	}
	return b.lim.AllowN(now, 1)
}
