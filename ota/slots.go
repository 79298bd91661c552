package ota

import (
	"context"
	"time"
)

// takeSlot gives s a download slot, or queues it and returns false. s.mu
// is held.
func (e *Engine) takeSlot(s *session) bool {
	if e.cfg.MaxDownloads == 0 {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.slots < e.cfg.MaxDownloads {
		e.slots++
		s.slot = true
		return true
	}
	e.queued = append(e.queued, s)
	return false
}

// releaseSlot frees the slot of s and has the Run loop hand it on. s.mu is
// held.
func (e *Engine) releaseSlot(s *session) {
	e.mu.Lock()
	e.slots--
	more := len(e.queued) > 0
	e.mu.Unlock()
	s.slot = false
	if more {
		e.poke()
	}
}

// promote hands free download slots to queued sub-tasks, in order.
func (e *Engine) promote(ctx context.Context) {
	for {
		e.mu.Lock()
		if e.cfg.MaxDownloads == 0 || e.slots >= e.cfg.MaxDownloads || len(e.queued) == 0 {
			e.mu.Unlock()
			return
		}
		s := e.queued[0]
		e.queued = e.queued[1:]
		e.slots++ // reserved for s
		e.mu.Unlock()
		var eff effects
		s.mu.Lock()
		if !s.ended && s.sub.Step == StepQueued {
			s.slot = true
			e.setStep(s, StepNotify, time.Now())
			e.save(ctx, s)
			e.act(s, &eff)
		} else {
			e.mu.Lock()
			e.slots--
			e.mu.Unlock()
		}
		s.mu.Unlock()
		e.apply(ctx, &eff)
	}
}
