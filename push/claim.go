package push

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Claimer is an optional ability of a Store that several engines (one per
// platform node) share: each engine delivers only the messages it holds a
// lease on, so that while the nodes live no message is delivered by two of
// them, and a node that dies loses its leases when they end and its
// messages go to the others. An engine uses it when Config.Node is set.
// store/postgres's push store implements it (leases written on the rows,
// taken with FOR UPDATE SKIP LOCKED).
//
// A lease of owner on a message ends at a time the owner set (now+lease,
// by its own clock); another owner may take the message only after that.
type Claimer interface {
	// ClaimMessages leases to owner until now+lease at most limit stored
	// messages that no other owner holds a lease on (free ones, those
	// whose lease ended, and owner's own), and returns them ordered by
	// URL, then ID. Others' messages are preferred to owner's own, so
	// that an owner that holds many still takes over a dead one's.
	ClaimMessages(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Message, error)
	// ClaimMessagesOf does the same for the stored ones among msgs (by
	// URL and ID) and returns those it leased to owner, elements of msgs.
	ClaimMessagesOf(ctx context.Context, owner string, now time.Time, lease time.Duration, msgs []Message) ([]Message, error)
	// RenewMessages extends every lease owner holds to now+lease and
	// returns how many; a message another owner took is left alone.
	RenewMessages(ctx context.Context, owner string, now time.Time, lease time.Duration) (int, error)
}

// maxNode bounds Config.Node.
const maxNode = 200

// maxClaimBatches bounds the ClaimMessages calls of one claim round.
const maxClaimBatches = 16

func (c Config) checkClaim() error {
	switch {
	case c.Node == "":
		return nil
	case len(c.Node) > maxNode || strings.IndexByte(c.Node, 0) >= 0:
		return fmt.Errorf("push: Config.Node %q: want 1–%d bytes, no NUL", c.Node, maxNode)
	case c.ClaimLease < 0 || c.ClaimBatch < 0:
		return fmt.Errorf("push: Config.ClaimLease and ClaimBatch must not be negative")
	case c.ClaimLease <= 2*c.Timeout:
		return fmt.Errorf("push: Config.ClaimLease %v must be more than twice Config.Timeout %v, so a try ends well inside the lease it started under",
			c.ClaimLease, c.Timeout)
	}
	return nil
}

// claimState is the engine's side of claiming (Config.Node set).
type claimState struct {
	claimer Claimer
	// mu orders claim rounds, Admit's claims and the deleter's deletes,
	// so that a message is never added to memory twice (a claim round
	// seeing a message Admit is about to add, or one the deleter is about
	// to delete).
	mu sync.Mutex
	// Guarded by Engine.mu:
	held     map[msgKey]struct{} // queued, in flight, or waiting to be deleted
	leaseEnd time.Time           // every held lease lasts at least until then
}

// claimInterval is how often claims are renewed and new work claimed.
func (e *Engine) claimInterval() time.Duration { return e.cfg.ClaimLease / 4 }

// mayStart reports whether a try may start at now: in claim mode only if
// it ends (Config.Timeout) before the engine's leases may. e.mu is held.
func (e *Engine) mayStart(now time.Time) bool {
	return e.claim == nil || now.Add(e.cfg.Timeout).Before(e.claim.leaseEnd)
}

// claimLoop renews the engine's leases and claims new work every
// claimInterval until ctx ends.
func (e *Engine) claimLoop(ctx context.Context) {
	t := time.NewTicker(e.claimInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := e.claimRound(ctx); err != nil {
			if ctx.Err() == nil {
				e.cfg.Logger.Error("push: claiming the outbox; tries stop when the leases end", "node", e.cfg.Node, "err", err)
			}
		} else if n > 0 {
			e.cfg.Logger.Info("push: messages claimed", "node", e.cfg.Node, "messages", n)
		}
	}
}

// claimRound renews the engine's leases, then claims messages nobody else
// holds and queues those it did not hold yet; it returns how many.
func (e *Engine) claimRound(ctx context.Context) (int, error) {
	c := e.claim
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	if _, err := c.claimer.RenewMessages(ctx, e.cfg.Node, start, e.cfg.ClaimLease); err != nil {
		return 0, fmt.Errorf("push: renewing leases: %w", err)
	}
	e.mu.Lock()
	if !e.loaded {
		e.mu.Unlock()
		return 0, nil
	}
	if !c.leaseEnd.IsZero() && !start.Before(c.leaseEnd) {
		// The leases may have ended, and another node may have taken
		// some: forget what waits here, and take back below what is
		// still ours. (No try is in flight: none starts that could run
		// past the leases' end.)
		forgot := 0
		for _, ep := range e.eps {
			for _, m := range ep.queue {
				delete(c.held, msgKey{m.URL, m.ID})
			}
			forgot += len(ep.queue)
			ep.queue, ep.inRing = nil, false
		}
		e.ring, e.rr = nil, 0
		e.cfg.Logger.Warn("push: leases lapsed; waiting messages forgotten and claimed again", "node", e.cfg.Node, "messages", forgot)
	}
	c.leaseEnd = start.Add(e.cfg.ClaimLease)
	e.mu.Unlock()
	added := 0
	for range maxClaimBatches {
		msgs, err := c.claimer.ClaimMessages(ctx, e.cfg.Node, start, e.cfg.ClaimLease, e.cfg.ClaimBatch)
		if err != nil {
			return added, fmt.Errorf("push: claiming messages: %w", err)
		}
		n := e.hold(msgs)
		added += n
		if len(msgs) < e.cfg.ClaimBatch || n == 0 {
			break
		}
	}
	e.wakeup() // tries may start again under the renewed leases
	return added, nil
}

// hold queues those of msgs the engine does not hold yet and returns how
// many. claim.mu is held.
func (e *Engine) hold(msgs []Message) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.loaded {
		return 0
	}
	n := 0
	for i := range msgs {
		k := msgKey{msgs[i].URL, msgs[i].ID}
		if _, ok := e.claim.held[k]; ok {
			continue
		}
		e.claim.held[k] = struct{}{}
		m := msgs[i]
		m.Attempts = 0
		e.add(&m)
		n++
	}
	return n
}

// unhold forgets msgs once they are deleted from the Store. claim.mu is held.
func (e *Engine) unhold(msgs []Message) {
	e.mu.Lock()
	for _, m := range msgs {
		delete(e.claim.held, msgKey{m.URL, m.ID})
	}
	e.mu.Unlock()
}

// claimStored leases msgs, just stored, to this node and queues those it
// got (another node's claim round may have been quicker). When the claim
// fails they stay stored, for the next claim round of some node.
func (e *Engine) claimStored(ctx context.Context, msgs []Message) {
	c := e.claim
	c.mu.Lock()
	defer c.mu.Unlock()
	got, err := c.claimer.ClaimMessagesOf(ctx, e.cfg.Node, time.Now(), e.cfg.ClaimLease, msgs)
	if err != nil {
		e.cfg.Logger.Warn("push: claiming stored messages; the next claim round takes them", "node", e.cfg.Node,
			"messages", len(msgs), "err", err)
		return
	}
	if e.hold(got) > 0 {
		e.wakeup()
	}
}

// startable reports whether j's try may start now. When the leases may
// end before the try would (the job waited for a worker too long), the
// engine lets go of the message: the next claim round takes it back if it
// is still this node's.
func (e *Engine) startable(j job) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mayStart(time.Now()) {
		return true
	}
	j.ep.inflight--
	delete(e.claim.held, msgKey{j.msg.URL, j.msg.ID})
	return false
}
