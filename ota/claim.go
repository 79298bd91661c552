package ota

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Claimer is an optional ability of a Store that several engines (one per
// platform node) share: an engine given a node id (Config.Node) acts on a
// due upgrade step — a step or online wait whose deadline passed, an
// automatic retry — only while it holds a lease on it, so that two
// engines never both time out one sub-task or both retry one task. A
// node that dies loses its leases when they end and its due work goes to
// the others. store/postgres's OTA store implements it (leases written on
// the sub-task rows, taken with FOR UPDATE SKIP LOCKED, and one lease row
// per task).
//
// A lease of owner ends at a time the owner set (now+lease, by its own
// clock); another owner may take the work only after that.
type Claimer interface {
	// ClaimSubTasks leases to owner until now+lease at most limit
	// sub-tasks that have not ended, whose Deadline (as stored) is not
	// after now and that no other owner holds a lease on (free ones,
	// those whose lease ended, and owner's own, whose lease it renews),
	// and returns them (as stored) earliest Deadline first.
	ClaimSubTasks(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]SubTask, error)
	// ClaimTask leases the task-level work of task taskID (its
	// automatic retry) to owner until now+lease and reports whether
	// owner holds the lease: it does when nobody held it, when the
	// holder's lease ended by now, or when owner held it already.
	ClaimTask(ctx context.Context, owner, taskID string, now time.Time, lease time.Duration) (bool, error)
}

// maxNode bounds Config.Node.
const maxNode = 200

// defaultClaimLease is Config.ClaimLease's default.
const defaultClaimLease = time.Minute

// claimBatch is how many due sub-tasks a tick claims at most.
const claimBatch = 512

func (c *Config) checkClaim(st Store) (Claimer, error) {
	switch {
	case c.Node == "":
		return nil, nil
	case len(c.Node) > maxNode || strings.IndexByte(c.Node, 0) >= 0:
		return nil, fieldErr("Config.Node", "%q: want 1–%d bytes, no NUL", c.Node, maxNode)
	case c.ClaimLease < 0:
		return nil, fieldErr("Config.ClaimLease", "%v, must not be negative", c.ClaimLease)
	}
	cl, ok := st.(Claimer)
	if !ok {
		return nil, fmt.Errorf("%w: ota: Config.Node %q is set but the Store (%T) does not implement ota.Claimer: "+
			"engines sharing a store need one that claims due upgrade steps per node", ErrInvalid, c.Node, st)
	}
	return cl, nil
}

// mine reports whether this engine may act on the due sub-task id at now:
// always without Config.Node, else only while it holds a lease on it with
// at least half of it left.
func (e *Engine) mine(id string, now time.Time) bool {
	return e.claimer == nil || e.claims.Holds(id, now, e.cfg.ClaimLease/2)
}

// claimDue claims the due sub-tasks (Config.Node) and returns those this
// engine holds now, by sub-task id.
func (e *Engine) claimDue(ctx context.Context, now time.Time) map[string]SubTask {
	e.claims.Drop(now)
	e.lastClaim = now
	subs, err := e.claimer.ClaimSubTasks(ctx, e.cfg.Node, now, e.cfg.ClaimLease, claimBatch)
	if err != nil {
		e.log.Error("ota: claiming due sub-tasks", "node", e.cfg.Node, "err", err)
		return nil
	}
	ids := make([]string, len(subs))
	for i := range subs {
		ids[i] = subs[i].ID()
	}
	e.claims.Add(ids, now, e.cfg.ClaimLease)
	out := make(map[string]SubTask, len(subs))
	for _, s := range subs {
		out[s.ID()] = s
	}
	return out
}

// follow makes the stored copy c of a sub-task (newer than this engine's,
// or this engine never moved it on) the one s holds. s.mu is held.
func (e *Engine) follow(s *session, c SubTask) {
	if s.slot && c.Step != StepNotify && c.Step != StepDownload {
		e.releaseSlot(s)
	}
	s.sub = c
	s.stored, s.touched = c.Deadline, false
}

// reconcile reads back the stored copy of s, whose step is due here but
// not claimed by this engine (Config.Node): one another node ended is
// forgotten without an event (that node told the Listener), one another
// node moved on is followed. s.mu is held.
func (e *Engine) reconcile(ctx context.Context, s *session, now time.Time) {
	c, err := e.st.SubTask(ctx, s.sub.TaskID, s.sub.DeviceID)
	if err != nil {
		e.log.Error("ota: read back sub-task", "subtask", s.sub.ID(), "err", err)
		return
	}
	switch {
	case c.State.Final():
		if s.slot {
			e.releaseSlot(s)
		}
		s.sub = c
		s.ended = true
		e.subEndedElsewhere(ctx, s, now)
	case c.Updated.After(s.sub.Updated):
		e.follow(s, c)
	}
}

// adopt times out a sub-task this engine claimed (Config.Node) but holds
// no copy of: its node died, or it belongs to a task created on another
// node. The stored copy is due, so the step timed out.
func (e *Engine) adopt(ctx context.Context, c SubTask, now time.Time) {
	if !e.mine(c.ID(), now) {
		return
	}
	e.mu.Lock()
	_, known := e.tasks[c.TaskID]
	live := e.devices[c.DeviceID]
	e.mu.Unlock()
	if live != nil {
		live.mu.Lock()
		same := live.sub.ID() == c.ID()
		live.mu.Unlock()
		if same {
			return // created since the tick looked: the next tick has it
		}
	}
	// The claim is a snapshot: a sub-task ended or moved on since (by a
	// node serving the device) is not timed out from it.
	if cur, err := e.st.SubTask(ctx, c.TaskID, c.DeviceID); err != nil || cur.State.Final() || !cur.Updated.Equal(c.Updated) {
		if err != nil {
			e.log.Error("ota: read back a claimed sub-task", "subtask", c.ID(), "err", err)
		}
		return
	}
	if !known {
		if err := e.loadTask(ctx, c.TaskID); err != nil {
			e.log.Error("ota: load task of a claimed sub-task", "subtask", c.ID(), "err", err)
			return
		}
	}
	s := &session{sub: c, stored: c.Deadline}
	var eff effects
	s.mu.Lock()
	e.finish(ctx, s, SubFail, c.Step.reason(), &eff)
	s.mu.Unlock()
	e.apply(ctx, &eff)
}

// loadTask adds a task this engine did not know (created on another node
// since it loaded) with its sub-task counts as stored, so that the
// sub-tasks it adopts settle it. A task that ended is not added.
func (e *Engine) loadTask(ctx context.Context, id string) error {
	t, err := e.st.Task(ctx, id)
	if err != nil {
		return err
	}
	if t.State.Final() && t.RetryAt.IsZero() {
		return nil
	}
	subs, err := e.st.SubTasks(ctx, id)
	if err != nil {
		return err
	}
	tr := &taskRun{Task: t, counts: map[SubState]int{}}
	for _, s := range subs {
		tr.counts[countKey(s.State)]++
		if s.State == SubFail && !permanent(s.Reason) {
			tr.retryable++
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tasks[id] == nil {
		e.tasks[id] = tr
	}
	return nil
}

// claimRetry reports whether this engine (Config.Node) makes the due
// automatic retry of task id: it must hold the task's lease, and the
// stored task must still wait for that retry. A task another node retried
// or stopped meanwhile is forgotten here.
func (e *Engine) claimRetry(ctx context.Context, id string, now time.Time) bool {
	e.mu.Lock()
	tr := e.tasks[id]
	var attempt int
	if tr != nil {
		attempt = tr.Attempt
	}
	e.mu.Unlock()
	if tr == nil {
		return false
	}
	ok, err := e.claimer.ClaimTask(ctx, e.cfg.Node, id, now, e.cfg.ClaimLease)
	if err != nil {
		e.log.Error("ota: claiming a task's retry", "task", id, "err", err)
		return false
	}
	st, err := e.st.Task(ctx, id)
	if err != nil {
		e.log.Error("ota: read back task", "task", id, "err", err)
		return false
	}
	if st.State != TaskFailed || st.RetryAt.IsZero() || st.Attempt != attempt {
		e.mu.Lock()
		if e.tasks[id] == tr {
			delete(e.tasks, id)
		}
		e.mu.Unlock()
		return false
	}
	return ok
}
