package transport

import (
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Answers to senders without a session (SEC-2). A UDP source address can
// be forged, so an answer to a peer that has proved nothing may land on a
// victim: a small request drawing a large answer would make the server an
// amplifier. Two rules hold for every answer to such a sender (a plain
// CoAP peer that is not registered, any sender on the bootstrap server's
// plain CoAP port that has no bootstrap session):
//
//   - an error answer is never larger than the datagram that caused it:
//     the code and token stay, the diagnostic payload is cut to fit, and
//     dropped with the options if need be (fitAnswer);
//   - all such answers together pass one token bucket (StrangerAnswerRate
//     per second, default 1,000); beyond it they are dropped and counted
//     (StrangerAnswersDropped), as a full socket buffer would drop them, and
//     a real device retransmits.
//
// Registered devices and DTLS sessions keep full diagnostics.

// fitAnswer cuts an error answer (4.xx, 5.xx) so that its encoding is at
// most n bytes: the payload first (at a UTF-8 boundary), then, if that is
// not enough, the payload and every option. The code, type, message ID
// and token stay; the token is the request's, so the answer then fits any
// request. A success answer is left whole: to a sender without a session
// it is a 2.31 Continue (smaller than the block it answers) or a block of
// a file download (the unguessable name is the credential).
func fitAnswer(r *message.Message, n int) {
	if r.Code < codes.BadRequest {
		return
	}
	b, err := encodeMsg(*r)
	if err != nil || len(b) <= n {
		return
	}
	excess := len(b) - n
	if excess < len(r.Payload) {
		keep := len(r.Payload) - excess
		for keep > 0 && !utf8.RuneStart(r.Payload[keep]) {
			keep--
		}
		r.Payload = r.Payload[:keep]
		if b, err = encodeMsg(*r); err == nil && len(b) <= n {
			return
		}
	}
	r.Payload = nil
	if b, err = encodeMsg(*r); err == nil && len(b) <= n {
		return
	}
	r.Options = nil
}

// fitBytes is fitAnswer for an encoded answer; it returns nil when the
// answer cannot be decoded.
func fitBytes(b []byte, n int) []byte {
	if len(b) <= n || len(b) < 2 || codes.Code(b[1]) < codes.BadRequest {
		return b
	}
	m, err := decodeMsg(b)
	if err != nil {
		return nil
	}
	fitAnswer(&m, n)
	out, err := encodeMsg(m)
	if err != nil || len(out) > n {
		return nil
	}
	return out
}

// answerGate is the token bucket shared by all answers to senders without
// a session.
type answerGate struct {
	rate  float64
	burst int
	now   func() time.Time // time.Now; tests may replace it

	mu      sync.Mutex
	b       bucket
	dropped atomic.Uint64
}

func newAnswerGate(rate float64) *answerGate {
	return &answerGate{rate: rate, burst: max(1, int(rate)), now: time.Now}
}

// allow takes a token for one answer; false means the answer is dropped
// (and counted).
func (g *answerGate) allow() bool {
	g.mu.Lock()
	ok, _ := g.b.allow(g.now(), g.rate, g.burst)
	g.mu.Unlock()
	if !ok {
		g.dropped.Add(1)
	}
	return ok
}
