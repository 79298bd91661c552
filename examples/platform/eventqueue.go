package main

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Acknowledge first, process after.
//
// A device's uplink is acknowledged once it is in the inbox (durable), and
// its processing (decode, check, history, shadow, pushes) costs several
// times what acknowledging it does. When many devices wake at once, the two
// compete for the same CPU, and every device would stay awake (radio on)
// until the pipeline had made room for its acknowledgement. So:
//
//   - Handing an event to its worker never waits for the worker
//     (eventQueue): the acknowledgement does not wait for the pipeline.
//   - While devices are acknowledged faster than the pipeline can take
//     their uplinks — the backlog grows, and more come than 5/4 of what
//     the pipeline was lately seen to take — the workers hold every event
//     back, each at most until it is Config.AckFirst old (2 s by default),
//     so that the CPU goes to acknowledging (ingestGate). Once held, the
//     pipeline takes nothing, so the hold lasts while uplinks keep coming
//     that fast, and ends quietTicks ticks (30 ms) after they stop or as
//     soon as they come slower. Without the hold the two settle where acknowledging is as
//     slow as the pipeline: the pipeline takes most of the CPU, and each
//     device waits for it. A load the pipeline has kept up with is not held
//     back, not even after a stall grew the backlog (before, such a hold
//     lasted as long as the load, and every uplink was processed AckFirst
//     late); a sustained overload ends with uplinks processed AckFirst late
//     at the pipeline's rate, and acknowledged at that rate.
//   - At most Config.MaxBacklog uplinks wait: beyond it an uplink is not
//     acknowledged (errBacklogFull), and the device sends it again.
//   - A device's wake-up event (one per message) is queued only when none
//     of its own waits (pendingWakes).
//
// Events of one device stay in order: a device always lands on the same
// worker, and a worker takes its queue in order.

// eventQueue is one event worker's queue, unbounded here (bounded by
// Config.MaxBacklog for uplinks in acceptUplink). Events are kept in blocks
// of queueBlock, so that a long queue (a wake storm held back by the gate)
// grows without copying what it holds.
type eventQueue struct {
	mu     sync.Mutex
	blocks [][]queuedEvent // each of capacity queueBlock; the first is read from head
	head   int
	n      int           // events waiting
	signal chan struct{} // one token: "the queue may be non-empty"
}

const queueBlock = 256

func newEventQueue() *eventQueue { return &eventQueue{signal: make(chan struct{}, 1)} }

// push appends e; it never waits.
func (q *eventQueue) push(e queuedEvent) {
	q.mu.Lock()
	k := len(q.blocks) - 1
	if k < 0 || len(q.blocks[k]) == queueBlock {
		q.blocks = append(q.blocks, make([]queuedEvent, 0, queueBlock))
		k++
	}
	q.blocks[k] = append(q.blocks[k], e)
	q.n++
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// pop returns the oldest event, waiting for one until ctx ends.
func (q *eventQueue) pop(ctx context.Context) (queuedEvent, bool) {
	for {
		q.mu.Lock()
		if q.n > 0 {
			b := q.blocks[0]
			e := b[q.head]
			b[q.head] = queuedEvent{}
			q.head++
			q.n--
			switch {
			case q.head == queueBlock: // the block is done
				q.blocks[0] = nil
				q.blocks, q.head = q.blocks[1:], 0
			case q.n == 0: // the only block, read to its end: start it again
				q.blocks[0], q.head = b[:0], 0
			}
			q.mu.Unlock()
			return e, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return queuedEvent{}, false
		case <-q.signal:
		}
	}
}

// len returns how many events wait.
func (q *eventQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

const (
	// gateTick is how often the gate looks at the arrivals and takes.
	gateTick = 10 * time.Millisecond
	// gateWindow is the number of ticks the gate judges over (100 ms).
	gateWindow = 10
	// backlogLow is the backlog below which nothing is held back.
	backlogLow = 32
	// quietTicks is how many ticks without an arrival end a hold (a
	// scheduling pause shorter than that does not).
	quietTicks = 3
	// growthHigh is how much the backlog must have grown over the window
	// (arrivals minus takes) for devices to count as acknowledged faster
	// than the pipeline takes their uplinks: 20 in 100 ms, 200/s.
	growthHigh = 20
	// overloadFactor: the gate holds while more than this many times
	// the uplinks the pipeline was seen to take over a window arrive.
	overloadFactor = 1.25
	// rateHalfLife: what the pipeline was seen to take is forgotten by
	// half in this time without new evidence (a rate seen while it took
	// cheap uplinks, or before the machine got busier, fades).
	rateHalfLife = 5 * time.Second
	// defaultAckFirst and defaultMaxBacklog are Config's defaults.
	defaultAckFirst   = 2 * time.Second
	defaultMaxBacklog = 200_000
)

// ingestGate counts the uplinks acknowledged and not yet taken by a worker
// and holds workers back while devices are being acknowledged faster than
// the pipeline can take their uplinks. Its Run looks every gateTick at the
// last gateWindow ticks: it starts holding when the backlog is above
// backlogLow, grew by more than growthHigh over the window and more than
// overloadFactor times what the pipeline was seen to take arrived, and
// lets go when no uplink arrived for quietTicks ticks or no more came than
// that (once held, the workers take nothing, so the backlog grows for as
// long as uplinks come). A load the pipeline has kept up with is never
// held.
type ingestGate struct {
	backlog   atomic.Int64
	arrived   atomic.Int64  // uplinks accepted since start
	took      atomic.Int64  // uplinks taken by workers since start
	heldTicks atomic.Int64  // gate ticks spent holding (doze_ingest_held_seconds_total)
	maxDefer  time.Duration // Config.AckFirst; ≤ 0: never hold
	limit     int64         // Config.MaxBacklog

	// seenRate is what Run last took the pipeline to take over a window
	// (kept for tests and debugging).
	seenRate atomic.Int64

	mu   sync.Mutex
	open chan struct{} // nil while open; closed when a hold ends
}

// errBacklogFull refuses an uplink beyond Config.MaxBacklog.
type errBacklogFull struct{ waiting, limit int64 }

func (e errBacklogFull) Error() string {
	return fmt.Sprintf("%d acknowledged uplinks wait for processing, the limit (maxBacklog) is %d: not acknowledged, the device sends it again", e.waiting, e.limit)
}

// admit reserves a place for one uplink, or refuses it beyond the limit.
func (g *ingestGate) admit() error {
	if n := g.backlog.Add(1); g.limit > 0 && n > g.limit {
		g.backlog.Add(-1)
		return errBacklogFull{waiting: n - 1, limit: g.limit}
	}
	return nil
}

// cancel gives back a place admit reserved for an uplink that was not kept.
func (g *ingestGate) cancel() { g.backlog.Add(-1) }

// accepted notes that an admitted uplink was acknowledged.
func (g *ingestGate) accepted() { g.arrived.Add(1) }

// taken notes that a worker took an uplink.
func (g *ingestGate) taken() {
	g.backlog.Add(-1)
	g.took.Add(1)
}

// held returns the channel a held worker waits on, or nil when open.
func (g *ingestGate) held() chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

// hold closes the gate (hold true) or opens it.
func (g *ingestGate) hold(hold bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case hold && g.open == nil:
		g.open = make(chan struct{})
	case !hold && g.open != nil:
		close(g.open)
		g.open = nil
	}
}

// Run judges the arrivals and takes every gateTick until ctx ends, and
// opens the gate on the way out.
//
// Holding pays while devices come faster than the pipeline takes their
// uplinks: then it keeps the CPU for acknowledging them. A load the
// pipeline can take, held because a stall (a slow disk sync, a pause)
// grew the backlog, would stay held for as long as it lasts — it never
// pauses — and every uplink would be processed AckFirst late. So the gate
// learns what the pipeline takes: the most uplinks it took over an open
// window in which it either always had a backlog above backlogLow (its
// rate) or never did (it kept up with what came), forgotten by half every
// rateHalfLife without new evidence. It holds only while more than
// overloadFactor times that arrive over the window, and lets go as soon as
// no more do.
func (g *ingestGate) Run(ctx context.Context) error {
	defer g.hold(false)
	if g.maxDefer <= 0 {
		return nil
	}
	t := time.NewTicker(gateTick)
	defer t.Stop()
	// Per tick, a ring over the window: arrivals, takes, whether the
	// backlog was above backlogLow and whether the gate was held.
	var arrivals, takes [gateWindow]int64
	var busy, heldAt [gateWindow]bool
	i, quiet := 0, 0
	rate, decay := 0.0, math.Exp2(-float64(gateTick)/float64(rateHalfLife))
	lastA, lastT := g.arrived.Load(), g.took.Load()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		a, tk := g.arrived.Load(), g.took.Load()
		k := i % gateWindow
		arrivals[k], takes[k] = a-lastA, tk-lastT
		busy[k], heldAt[k] = g.backlog.Load() > backlogLow, g.held() != nil
		if a == lastA {
			quiet++
		} else {
			quiet = 0
		}
		lastA, lastT = a, tk
		i++
		var in, out int64
		allBusy, noneBusy, open := true, true, i >= gateWindow
		for j := range gateWindow {
			in, out = in+arrivals[j], out+takes[j]
			allBusy, noneBusy, open = allBusy && busy[j], noneBusy && !busy[j], open && !heldAt[j]
		}
		rate *= decay
		if open && (allBusy || noneBusy) {
			rate = max(rate, float64(out))
		}
		g.seenRate.Store(int64(rate))
		overloaded := float64(in) > overloadFactor*rate
		held := g.held() != nil
		switch {
		case !held && quiet == 0 && g.backlog.Load() > backlogLow && in-out > growthHigh && overloaded:
			g.hold(true)
		case held && (quiet >= quietTicks || g.backlog.Load() <= backlogLow || !overloaded):
			// A held pipeline takes nothing, so the backlog only grows
			// while uplinks come: the hold ends when they stop, or when
			// no more come than the pipeline can take.
			g.hold(false)
			clear(arrivals[:])
			clear(takes[:])
		}
		if held || g.held() != nil {
			g.heldTicks.Add(1)
		}
	}
}

// wait holds a worker about to process an uplink accepted at accepted
// while the gate is held, at most until the uplink is maxDefer old or ctx
// ends.
func (g *ingestGate) wait(ctx context.Context, accepted time.Time) {
	open := g.held()
	if open == nil {
		return
	}
	left := g.maxDefer - time.Since(accepted)
	if left <= 0 {
		return
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-open:
	case <-t.C:
	case <-ctx.Done():
	}
}

// pendingWakes holds the endpoints whose wake-up event (transport.EventWoke,
// raised by every message of a device) waits in a worker's queue. While one
// waits, another adds nothing: the command engine has heard of the wake-up
// (enqueueEvent), and the waiting one's processing (desired values, queued
// LwM2M operations, upgrades) reads the state as it is when it runs. So a
// device sending several messages while its wake-up waits — a storm held
// back by the gate, or an Update and a notification in one awake window —
// costs one lookup, one command-engine wake-up and one event, not one per
// message.
type pendingWakes struct {
	mu sync.Mutex
	m  map[string]struct{}
}

// first reports whether no wake-up of endpoint waits, and notes one.
func (w *pendingWakes) first(endpoint string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.m[endpoint]; ok {
		return false
	}
	if w.m == nil {
		w.m = map[string]struct{}{}
	}
	w.m[endpoint] = struct{}{}
	return true
}

// taken notes that a worker took endpoint's wake-up.
func (w *pendingWakes) taken(endpoint string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, endpoint)
}
