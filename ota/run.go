package ota

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"
)

// Run loads the unfinished tasks from the Store (unless a method did),
// then drives deadlines, windows and retries and makes Object5 calls. It
// blocks until ctx ends or Close is called and returns nil then, or the
// error of the load. A second Run returns an error wrapping ErrClosed;
// Run after Close returns ErrClosed (see the package doc).
func (e *Engine) Run(ctx context.Context) error {
	ctx, err := e.life.Start(ctx, "ota.Engine", ErrClosed)
	if err != nil {
		return err
	}
	defer e.life.Finish()
	if err := e.ready(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while loading
		}
		return err
	}

	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Go(func() { e.fwWorker(ctx) })
	}
	defer wg.Wait()
	e.kickLoaded(ctx)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-e.wake:
		}
		// Deadlines set during the tick must wake the loop again.
		e.nextWake.Store(math.MaxInt64)
		now := time.Now()
		next := e.tick(ctx, now)
		if !next.IsZero() {
			// A tick looks at every active sub-task; with many
			// downloads moving their deadlines on, at most one a
			// second (a deadline may then pass up to 1s late).
			next = later(next, now.Add(tickEvery))
		}
		timer.Stop()
		if next.IsZero() {
			e.nextWake.Store(math.MaxInt64)
		} else {
			e.nextWake.Store(next.UnixNano())
			timer.Reset(time.Until(next))
		}
	}
}

// kickLoaded starts the waiting sub-tasks loaded from the store whose
// start time passed (a restart between creation and start), and sends the
// pending request of loaded processing sub-tasks whose device is online.
func (e *Engine) kickLoaded(ctx context.Context) {
	e.mu.Lock()
	var sessions []*session
	for _, s := range e.devices {
		if s.loaded {
			sessions = append(sessions, s)
		}
	}
	e.mu.Unlock()
	now := time.Now()
	for _, s := range sessions {
		var eff effects
		s.mu.Lock()
		s.loaded = false
		switch {
		case s.ended:
		case s.sub.State == SubWait && !now.Before(s.readyAt):
			s.mu.Unlock()
			e.kick(ctx, []*session{s})
			continue
		case s.sub.State == SubProcessing && e.online(ctx, s.sub.DeviceID):
			e.act(s, &eff)
		}
		s.mu.Unlock()
		e.apply(ctx, &eff)
	}
}

// due wakes the Run loop when t comes before its next planned tick.
func (e *Engine) due(t time.Time) {
	if t.UnixNano() < e.nextWake.Load() {
		e.poke()
	}
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// tick handles what is due at now and returns when it should run next
// (zero when nothing is planned).
func (e *Engine) tick(ctx context.Context, now time.Time) time.Time {
	var next time.Time
	soon := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	e.promote(ctx)
	e.mu.Lock()
	var retry, activate []string
	for id, t := range e.tasks {
		switch {
		case !t.RetryAt.IsZero() && !now.Before(t.RetryAt):
			retry = append(retry, id)
		case !t.RetryAt.IsZero():
			soon(t.RetryAt)
		case t.State == TaskWait && !now.Before(t.Policy.StartAt(t.Created)):
			activate = append(activate, id)
		case t.State == TaskWait:
			soon(t.Policy.StartAt(t.Created))
		}
	}
	sessions := make([]*session, 0, len(e.devices))
	for _, s := range e.devices {
		sessions = append(sessions, s)
	}
	e.mu.Unlock()

	for _, id := range activate {
		if err := e.activate(ctx, id); err != nil {
			e.log.Error("ota: start task", "task", id, "err", err)
		}
	}
	quarter := e.cfg.ClaimLease / 4
	for _, id := range retry {
		if e.claimer != nil && !e.claimRetry(ctx, id, now) {
			soon(now.Add(quarter)) // another node's, or gone
			continue
		}
		if err := e.retry(ctx, id, false); err != nil && !errors.Is(err, ErrNothingToRetry) {
			e.log.Error("ota: automatic retry", "task", id, "err", err)
		}
	}
	// With Config.Node, a due step is acted on only under a lease: claim
	// when a step of this engine's is due, and at least every quarter
	// lease for the due steps of other (dead) nodes.
	var claimed map[string]SubTask
	if e.claimer != nil {
		if !now.Before(e.lastClaim.Add(quarter)) || slices.ContainsFunc(sessions, func(s *session) bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return !s.ended && s.due(now)
		}) {
			claimed = e.claimDue(ctx, now)
		}
		soon(e.lastClaim.Add(quarter))
	}
	var opened []*session
	for _, s := range sessions {
		var eff effects
		s.mu.Lock()
		id := s.sub.ID()
		c, ok := claimed[id]
		delete(claimed, id) // an ended one is not adopted either
		if !s.ended {
			// Waiting sub-tasks start on CreateTask, retries,
			// DeviceOnline and HandleFrame; the tick only starts
			// those whose start time (a window) just came.
			if s.pending && !now.Before(s.readyAt) {
				s.pending = false
				opened = append(opened, s)
			}
			if ok && (c.Updated.After(s.sub.Updated) || !s.touched) {
				// Another node moved the step on since this copy was
				// made, or this engine never did: the stored copy,
				// due, rules.
				e.follow(s, c)
			}
			switch {
			case s.due(now) && e.mine(id, now):
				e.finish(ctx, s, SubFail, s.sub.Step.reason(), &eff)
			case s.due(now):
				// Config.Node: another node holds it, or the stored
				// copy is not due: read it back now and then.
				if !now.Before(s.checked.Add(quarter)) {
					s.checked = now
					e.reconcile(ctx, s, now)
				}
			case ok:
				// Due as stored but not here: this engine moved the
				// step on since its last write. Write it.
				e.save(ctx, s)
			case e.claimer != nil && s.touched && s.sub.Deadline.After(s.stored) && !now.Before(s.stored.Add(-e.cfg.ClaimLease/2)):
				// Keep the stored deadline ahead of the claims.
				e.save(ctx, s)
			}
			if !s.ended {
				if s.due(now) {
					soon(now.Add(quarter))
				} else {
					soon(s.sub.Deadline)
				}
				if s.sub.State == SubWait && now.Before(s.readyAt) {
					soon(s.readyAt)
				}
				if e.claimer != nil && s.touched && s.sub.Deadline.After(s.stored) {
					soon(s.stored.Add(-e.cfg.ClaimLease / 2))
				}
			}
		}
		s.mu.Unlock()
		e.apply(ctx, &eff)
	}
	// Claimed steps this engine holds no copy of: a dead node's, or of
	// a task created on another node.
	for _, c := range claimed {
		e.adopt(ctx, c, now)
	}
	e.kick(ctx, opened)
	return next
}

// due reports whether the step deadline of s passed by now. s.mu is held.
func (s *session) due(now time.Time) bool {
	return !s.sub.Deadline.IsZero() && !now.Before(s.sub.Deadline)
}
