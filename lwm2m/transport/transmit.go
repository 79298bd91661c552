package transport

import (
	"math/rand/v2"
	"time"
)

// Transmission is the retransmission profile of confirmable messages sent to
// one peer (LWM-9). The first wait is AckTimeout times a random factor
// between 1 and RandomFactor; every later wait doubles; after MaxRetransmit
// retransmissions the sender waits once more (twice the last wait) and then
// gives up. The zero value is the NB-IoT profile of LWM-9: waits of
// 10–15 s, 20–30 s, 40–60 s, and giving up 80–120 s after the last try.
//
// go-coap's own retransmission is not used: it is driven by a periodic
// 4-second check (go-coap issue 656), so its waits are rounded to that tick.
// Here every wait is its own timer.
type Transmission struct {
	AckTimeout    time.Duration // 0 means 10s (ACK_TIMEOUT)
	RandomFactor  float64       // 0 means 1.5 (ACK_RANDOM_FACTOR); values below 1 mean 1
	MaxRetransmit int           // 0 means 3 (MAX_RETRANSMIT); negative means no retransmission
}

func (t Transmission) withDefaults() Transmission {
	if t.AckTimeout <= 0 {
		t.AckTimeout = 10 * time.Second
	}
	if t.RandomFactor == 0 {
		t.RandomFactor = 1.5
	}
	if t.RandomFactor < 1 {
		t.RandomFactor = 1
	}
	switch {
	case t.MaxRetransmit == 0:
		t.MaxRetransmit = 3
	case t.MaxRetransmit < 0:
		t.MaxRetransmit = 0
	}
	return t
}

// Schedule returns the waits of one confirmable exchange for the random draw
// r in [0, 1): element i is how long the sender waits after try i (the first
// send is try 0) before it retransmits, and the last element is how long it
// waits after the last try before it gives up. With the zero Transmission and
// r = 0 that is [10s 20s 40s 80s]; with r close to 1, [15s 30s 60s 120s].
func (t Transmission) Schedule(r float64) []time.Duration {
	t = t.withDefaults()
	if r < 0 {
		r = 0
	}
	if r >= 1 {
		r = 0.999999
	}
	first := time.Duration(float64(t.AckTimeout) * (1 + r*(t.RandomFactor-1)))
	out := make([]time.Duration, t.MaxRetransmit+1)
	for i := range out {
		out[i] = first << i
	}
	return out
}

// Deadline returns when an exchange first sent at sent with draw r gives up.
func (t Transmission) Deadline(sent time.Time, r float64) time.Time {
	for _, d := range t.Schedule(r) {
		sent = sent.Add(d)
	}
	return sent
}

func randFloat() float64 { return rand.Float64() }
