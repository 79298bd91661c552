package push

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"
)

// Endpoint states (PSH-4, FAQ §5.15).
const (
	StateValid   = "valid"
	StateInvalid = "invalid"
)

// EndpointState is what the platform shows about one callback URL
// (GET /doze/v1/endpoints): its JSON is
// {callbackUrl, state, failures, queued, lastError, lastSuccess}.
type EndpointState struct {
	CallbackURL string    // the URL
	State       string    // StateValid or StateInvalid
	Failures    int       // consecutive failed tries (reset by an answer)
	Queued      int       // messages waiting or in flight
	LastError   string    // the last try's error, "" if none yet
	LastSuccess time.Time // the last 2xx answer; zero if none
}

// MarshalJSON encodes s with lastSuccess as yyyyMMdd'T'HHmmss'Z' or null.
func (s EndpointState) MarshalJSON() ([]byte, error) {
	var last *string
	if !s.LastSuccess.IsZero() {
		t := FormatTime(s.LastSuccess)
		last = &t
	}
	return json.Marshal(struct {
		CallbackURL string  `json:"callbackUrl"`
		State       string  `json:"state"`
		Failures    int     `json:"failures"`
		Queued      int     `json:"queued"`
		LastError   string  `json:"lastError"`
		LastSuccess *string `json:"lastSuccess"`
	}{s.CallbackURL, s.State, s.Failures, s.Queued, s.LastError, last})
}

// EndpointStats adds counters and lag to an EndpointState, for metrics.
type EndpointStats struct {
	EndpointState
	InFlight  int           // tries in flight now
	Lag       time.Duration // age of the oldest waiting message; 0 when none
	Delivered uint64        // 2xx answers
	Retried   uint64        // failed tries that will be (or would have been) retried
	Dropped   uint64        // messages dropped when the keep time ended
	Rejected  uint64        // messages given a final non-2xx answer (or refused by the guard)
}

// Stats is a snapshot of the engine's counters (Engine.Stats), for metrics.
type Stats struct {
	Enqueued  uint64 // messages accepted since New
	Delivered uint64
	Retried   uint64
	Dropped   uint64 // messages whose keep time ended undelivered
	Rejected  uint64
	// Refused counts pushes Publish, PublishReport and Send could not
	// accept although their input was valid: the Store failed, the
	// endpoint's queue was full, the engine was closed, or the
	// subscriptions could not be read (one per notification then). The
	// caller got the error and each refusal was logged with its reason
	// (SEC-6).
	Refused   uint64
	Queued    int // messages waiting or in flight, over all URLs
	Endpoints []EndpointStats
}

// endpoint is the engine's state for one URL. All fields are guarded by Engine.mu.
type endpoint struct {
	url      string
	queue    []*Message // waiting, ordered by (Expires, ID)
	inflight int
	inRing   bool

	invalid     bool
	failures    int         // consecutive failed tries
	failTimes   []time.Time // times of the last FailureThreshold failures, oldest first
	retryAt     time.Time   // a valid but failing URL waits until then
	probeAt     time.Time   // an invalid URL is probed at this time
	lastError   string
	lastSuccess time.Time

	delivered, retried, dropped, rejected uint64
}

func cmpMsg(a, b *Message) int {
	return cmp.Or(a.Expires.Compare(b.Expires), cmp.Compare(a.ID, b.ID))
}

// insert puts m into the queue at its place (usually the end).
func (ep *endpoint) insert(m *Message) {
	n := len(ep.queue)
	if n == 0 || cmpMsg(ep.queue[n-1], m) <= 0 {
		ep.queue = append(ep.queue, m)
		return
	}
	i, _ := slices.BinarySearchFunc(ep.queue, m, cmpMsg)
	ep.queue = slices.Insert(ep.queue, i, m)
}

// pop removes and returns the head of the queue.
func (ep *endpoint) pop() *Message {
	m := ep.queue[0]
	ep.queue[0] = nil
	ep.queue = ep.queue[1:]
	if len(ep.queue) == 0 {
		ep.queue = nil
	}
	return m
}

// readyAt says whether the endpoint may start a try at now, and if not,
// when it may (zero: when a try in flight ends).
func (ep *endpoint) readyAt(now time.Time, cfg *Config) (time.Time, bool) {
	limit := cfg.EndpointConcurrency
	if ep.invalid || ep.failures > 0 || ep.lastSuccess.IsZero() {
		// Failing, invalid, or not yet known to answer: one try at a
		// time, so a URL that hangs holds one worker, not
		// EndpointConcurrency of them, until it answers.
		limit = 1
	}
	if ep.inflight >= limit {
		return time.Time{}, false
	}
	at := ep.retryAt
	if ep.invalid {
		at = ep.probeAt
	}
	if now.Before(at) {
		return at, false
	}
	return time.Time{}, true
}

// failed records a failed try at now and says whether the URL must now
// turn invalid: FailureThreshold failures within KeepTime (PSH-4).
func (ep *endpoint) failed(now time.Time, cfg *Config) (turnInvalid bool) {
	ep.failures++
	ep.failTimes = append(ep.failTimes, now)
	if len(ep.failTimes) > cfg.FailureThreshold {
		ep.failTimes = slices.Delete(ep.failTimes, 0, len(ep.failTimes)-cfg.FailureThreshold)
	}
	if ep.invalid {
		ep.probeAt = now.Add(cfg.ProbeInterval)
		return false
	}
	if TooManyFailures(ep.failTimes, now, cfg.FailureThreshold, cfg.KeepTime) {
		ep.invalid = true
		ep.probeAt = now.Add(cfg.ProbeInterval)
		return true
	}
	ep.retryAt = now.Add(cfg.Backoff(ep.failures))
	return false
}

// answered records an answer (2xx or final) at now and says whether the URL
// was invalid and is valid again.
func (ep *endpoint) answered() (turnValid bool) {
	turnValid = ep.invalid
	ep.invalid = false
	ep.failures = 0
	ep.failTimes = ep.failTimes[:0]
	ep.retryAt = time.Time{}
	ep.probeAt = time.Time{}
	return turnValid
}

// TooManyFailures reports whether the failure times (oldest first) hold at
// least threshold failures within keep of now: the rule that marks a URL
// invalid (PSH-4, FAQ §5.15).
func TooManyFailures(times []time.Time, now time.Time, threshold int, keep time.Duration) bool {
	if threshold <= 0 || len(times) < threshold {
		return false
	}
	return now.Sub(times[len(times)-threshold]) <= keep
}

func (ep *endpoint) state() EndpointState {
	s := EndpointState{
		CallbackURL: ep.url,
		State:       StateValid,
		Failures:    ep.failures,
		Queued:      len(ep.queue) + ep.inflight,
		LastError:   ep.lastError,
		LastSuccess: ep.lastSuccess,
	}
	if ep.invalid {
		s.State = StateInvalid
	}
	return s
}
