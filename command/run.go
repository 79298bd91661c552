package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// sched is the set of devices whose queue must be looked at, served by
// Run's workers. A device is never served by two workers at once; a device
// marked while being served is served again afterwards.
type sched struct {
	mu    sync.Mutex
	state map[string]uint8 // queued, busy, busy and marked again
	list  []string
	head  int
	sig   chan struct{}
}

const (
	queued uint8 = iota + 1
	busy
	busyAgain
)

func (s *sched) init() {
	s.state = map[string]uint8{}
	s.sig = make(chan struct{}, 1)
}

func (s *sched) mark(id string) {
	s.mu.Lock()
	switch s.state[id] {
	case 0:
		s.state[id] = queued
		s.list = append(s.list, id)
	case busy:
		s.state[id] = busyAgain
	}
	s.mu.Unlock()
	select {
	case s.sig <- struct{}{}:
	default:
	}
}

func (s *sched) pop() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.list) {
		return "", false
	}
	id := s.list[s.head]
	s.list[s.head] = ""
	s.head++
	if s.head == len(s.list) || s.head > 1024 && s.head*2 > len(s.list) {
		s.list = append(s.list[:0], s.list[s.head:]...)
		s.head = 0
	}
	s.state[id] = busy
	if s.head < len(s.list) {
		// More work: wake another worker.
		select {
		case s.sig <- struct{}{}:
		default:
		}
	}
	return id, true
}

// idle reports whether the device is neither queued nor being served.
func (s *sched) idle(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state[id] == 0
}

func (s *sched) done(id string) {
	s.mu.Lock()
	again := s.state[id] == busyAgain
	if again {
		s.state[id] = queued
		s.list = append(s.list, id)
	} else {
		delete(s.state, id)
	}
	s.mu.Unlock()
	if again {
		select {
		case s.sig <- struct{}{}:
		default:
		}
	}
}

// Run sends commands and runs the timers until ctx is cancelled or Close
// is called; it returns nil then. It starts Config.Workers goroutines that
// send, and waits for all of them before it returns. On start it picks up
// whatever the Store holds (CMD-9): due timers fire, heads waiting to be
// tried are tried. A second Run returns an error wrapping ErrClosed ("Run
// called twice"); Run after Close returns ErrClosed (see the package doc).
func (e *Engine) Run(ctx context.Context) error {
	ctx, err := e.life.Start(ctx, "command.Engine", ErrClosed)
	if err != nil {
		return err
	}
	defer e.life.Finish()

	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.work(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.forgetIdle(ctx)
	}()
	if p, ok := e.st.(Pruner); ok && e.cfg.Retention > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.prune(ctx, p)
		}()
	}
	e.timers(ctx)
	wg.Wait()
	e.flights.Wait()
	return nil
}

// pruneEvery is how often Run deletes commands older than
// Config.Retention; pruneBatch how many it deletes per Store call.
const (
	pruneEvery = time.Hour
	pruneBatch = 10000
)

func (e *Engine) prune(ctx context.Context, p Pruner) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		before := time.Now().Add(-e.cfg.Retention)
		for ctx.Err() == nil {
			n, err := p.Prune(ctx, before, pruneBatch)
			if err != nil {
				if ctx.Err() == nil {
					e.log.Error("command: pruning ended commands", "err", err)
				}
				break
			}
			if n < pruneBatch {
				break
			}
		}
	}
}

// Close stops Run (waiting for it to return) and makes every later call
// fail with ErrClosed. It may come before Run and is idempotent.
func (e *Engine) Close() error {
	e.life.Stop()
	return nil
}

func (e *Engine) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.sched.sig:
		}
		for ctx.Err() == nil {
			id, ok := e.sched.pop()
			if !ok {
				break
			}
			if err := e.service(ctx, id); err != nil && ctx.Err() == nil {
				e.log.Error("command: serving device queue", "device", id, "err", err)
			}
			e.sched.done(id)
		}
	}
}

// dueBatch is how many due commands the timer loop takes per pass.
const dueBatch = 512

// timers marks the devices of due commands for the workers and sleeps until
// the next due time or until a write kicks it.
func (e *Engine) timers(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		due, err := e.due(ctx, now)
		if err != nil && ctx.Err() == nil {
			e.log.Error("command: reading due commands", "err", err)
		}
		for _, c := range due {
			e.sched.mark(c.DeviceID)
		}
		next, err := e.st.NextDue(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Error("command: reading next due time", "err", err)
		}
		var wait time.Duration
		switch {
		case next.IsZero():
			wait = time.Hour
		case next.After(now):
			wait = next.Sub(now)
		default:
			// Still due: the devices are being served. Wait for their
			// writes (kick), or retry in a second if a write failed.
			wait = time.Second
		}
		if e.claimer != nil && wait > e.cfg.ClaimLease/4 {
			// Other nodes write commands (and die holding leases)
			// without kicking this loop: look every quarter lease.
			wait = e.cfg.ClaimLease / 4
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-t.C:
		}
	}
}

// service brings one device's queue up to date at the present time: ends
// what expired or timed out, then sends the head when the device's mode
// allows, or re-sends it (CMD-4), or sets when to look again. It returns
// after the first send: the next command waits for this one to end.
//
// A device that another goroutine holds (a transmission storing its move, a
// response) is not waited for: the holder hands it back to the workers.
func (e *Engine) service(ctx context.Context, id string) error {
	d, ok, err := e.lockDevice(ctx, id, false)
	if err != nil || !ok {
		return err
	}
	defer e.release(d)
	now := time.Now()
	// The head and any command due now: every command that this pass
	// could end is due (overdue), so the whole queue is read only when one
	// of them must be ended.
	q, err := e.st.Front(ctx, id, 1, now)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(q, func(c Command) bool { return overdue(c, now) }) {
		if q, err = e.st.Queue(ctx, id); err != nil {
			return err
		}
	}

	// End what is past its time.
	var moved []Command
	open := q[:0]
	for _, c := range q {
		if overdue(c, now) && !e.mine(&c, now) {
			// Claimed by another node (Config.Node), or not yet by
			// this one: its holder ends it.
			open = append(open, c)
			continue
		}
		if c.Status == Pending && !c.SendAttempt.IsZero() && c.ID != d.inflight {
			// An earlier send's outcome was never stored: the command
			// may have left, so it is SENT from then on; a re-send waits
			// for a wake-up as CMD-4 allows (CMD-9).
			if err := c.Move(Sent, c.SendAttempt); err != nil {
				return err
			}
			c.Deadline = d.mode.Deadline(c.SendAttempt)
			c.Retransmits = 0
			c.NextTry = e.retransmitAt(c, c.SendAttempt)
			c.SendAttempt = time.Time{}
			moved = append(moved, c)
		}
		switch {
		case c.Status == Pending && c.ExpireTime > 0 && !now.Before(c.ExpireAt()):
			c.Reason = fmt.Sprintf("not sent within expireTime %d s", c.ExpireTime)
			if err := c.Move(Expired, now); err != nil {
				return err
			}
			moved = append(moved, c)
		case (c.Status == Sent || c.Status == Delivered) && !c.Deadline.IsZero() && !now.Before(c.Deadline):
			c.Reason = fmt.Sprintf("no ACK or result within %v of the last send (%v mode)", d.mode.TimeoutAfterSend(), d.mode.Kind)
			if err := c.Move(Timeout, now); err != nil {
				return err
			}
			moved = append(moved, c)
		default:
			open = append(open, c)
		}
	}
	if len(moved) > 0 {
		// The new head, if PENDING, is stored with its next try in the
		// same write, so that a restart keeps the queue moving (CMD-9).
		var updated []Command
		if len(open) > 0 && open[0].Status == Pending && open[0].NextTry.IsZero() {
			if nt := d.mode.NextTry(now, d.lastUplink); !nt.IsZero() {
				open[0].NextTry = nt
				updated = append(updated, open[0])
			}
		}
		if err := e.commit(ctx, d, moved, updated); err != nil {
			return err
		}
	}
	if len(open) == 0 {
		d.empty = true // the whole queue was read (q is the head and more) and nothing is left open
	}

	for len(open) > 0 && d.inflight == "" {
		head := open[0]
		if overdue(head, now) && !e.mine(&head, now) {
			return nil // another node's to end (Config.Node)
		}
		if head.Status != Delivered && !e.here(id) {
			// The device's session is on another node: that node sends
			// (Config.Sessions).
			e.cfg.Sessions.Elsewhere(id)
			return nil
		}
		switch head.Status {
		case Delivered:
			return nil
		case Sent:
			return e.resend(ctx, d, head, now)
		}
		// PENDING head. After a transport failure it waits for its
		// NextTry (zero: the next uplink) unless the device has woken
		// since.
		if !d.lastFail.IsZero() && !d.lastUplink.After(d.lastFail) &&
			(head.NextTry.IsZero() || head.NextTry.After(now)) {
			return nil
		}
		if !d.mode.Reachable(now, d.lastUplink) {
			if head.ExpireTime == 0 {
				head.Reason = unreachableReason(d.mode, d.lastUplink)
				if err := head.Move(Failed, now); err != nil {
					return err
				}
				if err := e.commit(ctx, d, []Command{head}, nil); err != nil {
					return err
				}
				if open, err = e.st.Front(ctx, id, 1, now); err != nil {
					return err
				}
				continue
			}
			nt := d.mode.NextTry(now, d.lastUplink)
			if nt.Equal(head.NextTry) {
				return nil
			}
			head.NextTry = nt
			open[0] = head
			return e.commitAll(ctx, d, open[:1], 0)
		}
		if e.tr != nil {
			// The transmission's goroutine stores the attempt and sends:
			// the worker does not wait for the store or the device.
			select {
			case e.slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			e.startTransmit(ctx, d, head, false, false)
			return nil
		}
		// Store the attempt before sending, so that a crash during the
		// send leaves a trace (CMD-9); its outcome is stored below.
		head.SendAttempt, head.NextTry = now, now
		open[0] = head // open[:1] is the write's slice: no allocation
		if err := e.commitAll(ctx, d, open[:1], 0); err != nil {
			return err
		}
		err := e.send(ctx, head)
		head.SendAttempt = time.Time{}
		// The outcome is stored even when Close cut the send short.
		wctx := context.WithoutCancel(ctx)
		if err == nil {
			if err := head.Move(Sent, now); err != nil {
				return err
			}
			head.Deadline = d.mode.Deadline(now)
			head.Retransmits = 0
			head.NextTry = e.retransmitAt(head, now)
			open[0] = head
			return e.commitAll(wctx, d, open[:1], 1)
		}
		again, err := e.notSent(wctx, d, head, err, now)
		if err != nil || !again || ctx.Err() != nil {
			return err
		}
		if open, err = e.st.Front(ctx, id, 1, now); err != nil {
			return err
		}
	}
	if len(open) == 0 && d.inflight == "" {
		d.empty = true
	}
	return nil
}

// notSent stores the outcome of a first send that failed before the
// command left: FAILED for an encode error, a lasting refusal or an
// immediate command (with the next command tried now, in the same write),
// else the command stays PENDING and is tried again later. again reports
// whether the queue moved on. d's lock is held.
func (e *Engine) notSent(ctx context.Context, d *devState, head Command, err error, now time.Time) (again bool, _ error) {
	head.SendAttempt = time.Time{}
	if !errors.Is(err, ErrEncode) && !errors.Is(err, ErrRefused) && head.ExpireTime != 0 {
		e.log.Info("command: send failed; command stays at the head (CMD-4)", "device", head.DeviceID, "command", head.ID, "err", err)
		d.lastFail = now
		head.NextTry = e.retryAt(d, now)
		return false, e.commit(ctx, d, nil, []Command{head})
	}
	head.Reason = err.Error()
	if re, ok := errors.AsType[*RefusedError](err); ok {
		head.Result = refusal(re)
	}
	if err := head.Move(Failed, now); err != nil {
		return false, err
	}
	cs, err := e.withNext(ctx, head, now)
	if err != nil {
		return false, err
	}
	return true, e.commitAll(ctx, d, cs, 1)
}

// withNext returns ended, the device's head that just ended, followed by
// the next command with NextTry set to now, so that it is tried at once
// and the two are stored in one write.
func (e *Engine) withNext(ctx context.Context, ended Command, now time.Time) ([]Command, error) {
	next, err := e.st.Front(ctx, ended.DeviceID, 2, time.Time{})
	if err != nil {
		return nil, err
	}
	cs := []Command{ended}
	if len(next) > 1 && next[0].ID == ended.ID && next[1].Status == Pending {
		n := next[1]
		n.NextTry = now
		cs = append(cs, n)
	}
	return cs, nil
}

// overdue reports whether service, at now, ends c or takes it as SENT
// (an attempt whose outcome was never stored). Such a command is always
// due: Due() is not after now.
func overdue(c Command, now time.Time) bool {
	switch c.Status {
	case Pending:
		return !c.SendAttempt.IsZero() || c.ExpireTime > 0 && !now.Before(c.ExpireAt())
	case Sent, Delivered:
		return !c.Deadline.IsZero() && !now.Before(c.Deadline)
	}
	return false
}

func (e *Engine) send(ctx context.Context, c Command) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.SendTimeout)
	defer cancel()
	return e.snd.Send(ctx, c)
}

// retryAt is when a head whose send failed in transport is tried again.
func (e *Engine) retryAt(d *devState, now time.Time) time.Time {
	at := now.Add(e.cfg.RetryInterval)
	return d.mode.NextTry(at, d.lastUplink)
}

// retransmitAt is when a SENT command that made c.Retransmits
// retransmissions is retransmitted next, or zero when none is left.
func (e *Engine) retransmitAt(c Command, sent time.Time) time.Time {
	if c.Retransmits >= c.MaxRetransmit {
		return time.Time{}
	}
	return sent.Add(RetransmitGap(c.Retransmits))
}

// resend handles a SENT head: re-send on wake-up (CMD-4) or retransmit
// (maxRetransmit), else set when to look again.
func (e *Engine) resend(ctx context.Context, d *devState, c Command, now time.Time) error {
	reachable := d.mode.Reachable(now, d.lastUplink)
	woke := !d.lastUplink.IsZero() && d.lastUplink.Sub(c.PlatformIssuedTime) >= RetransmitBase &&
		now.Before(c.ExpireAt())
	retransmit := !c.NextTry.IsZero() && !now.Before(c.NextTry) && c.Retransmits < c.MaxRetransmit
	if !reachable || !(woke || retransmit) {
		switch {
		case retransmit:
			// Not reachable: skip this retransmission; the next
			// wake-up re-sends.
			c.Retransmits++
			c.NextTry = time.Time{}
			return e.commit(ctx, d, nil, []Command{c})
		case !c.NextTry.IsZero() && !now.Before(c.NextTry):
			c.NextTry = time.Time{}
			return e.commit(ctx, d, nil, []Command{c})
		}
		return nil
	}
	if woke {
		c.Retransmits = 0
	} else {
		c.Retransmits++
	}
	if e.tr != nil {
		select {
		case e.slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		e.startTransmit(ctx, d, c, true, woke)
		return nil
	}
	err := e.send(ctx, c)
	ctx = context.WithoutCancel(ctx) // the outcome is stored even when Close cut the send short
	if err != nil {
		e.log.Info("command: re-send failed; waiting for the timeout or the next wake-up", "device", c.DeviceID, "command", c.ID, "err", err)
		c.NextTry = e.retransmitAt(c, now)
		return e.commit(ctx, d, nil, []Command{c})
	}
	if err := c.Move(Sent, now); err != nil {
		return err
	}
	if woke {
		c.Deadline = d.mode.Deadline(now)
	}
	c.NextTry = e.retransmitAt(c, now)
	return e.commit(ctx, d, []Command{c}, nil)
}

// refusal is the Result of a command the device refused: its code and the
// reason, {"code":"4.00","reason":"…"}.
func refusal(e *RefusedError) json.RawMessage {
	b, _ := json.Marshal(struct {
		Code   string `json:"code"`
		Reason string `json:"reason"`
	}{e.Code, e.Err.Error()})
	return b
}
