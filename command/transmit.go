package command

import (
	"context"
	"errors"
	"sync"
	"time"
)

// A send through a Transmitter, in three steps, each under the device's
// lock and each one stored move at most:
//
//	service     startTransmit (the worker moves on to the next device)
//	attempt     PENDING head stored with SendAttempt, on the transmission's
//	            goroutine (CMD-9); then Transmit
//	onLeft      the first transmission left: PENDING → SENT (a re-send:
//	            SENT → SENT), with the mode's deadline
//	finish      Transmit returned: ACKed → DELIVERED; refused → DELIVERED
//	            → FAILED; no ACK → nothing (TIMEOUT at the deadline, or a
//	            re-send at the next wake-up, CMD-4)
//
// Between the steps the device's lock is free: a response, a cancel or a
// new command is not held up by a device that keeps its ACK.

// flight is one Transmit in progress.
type flight struct {
	c      Command // as prepared: Retransmits set for a re-send
	resend bool    // a SENT command sent again (CMD-4, maxRetransmit)
	woke   bool    // a re-send on wake-up: the timeout counts from it

	mu   sync.Mutex
	left bool // onLeft ran
	done bool // Transmit returned: a late left is ignored
}

// startTransmit sends c through the Transmitter on a goroutine that Run
// waits for; a first send (not resend) stores its attempt there first. d's
// lock is held and a slot of e.slots is taken; the slot is given back when
// Transmit returns.
func (e *Engine) startTransmit(ctx context.Context, d *devState, c Command, resend, woke bool) {
	d.inflight = c.ID
	f := &flight{c: c, resend: resend, woke: woke}
	now := time.Now()
	deadline := d.mode.Deadline(now)
	if resend && !woke && !c.Deadline.IsZero() {
		deadline = c.Deadline // a retransmission does not move the timeout
	}
	// A device that sleeps again cannot ACK: the transmission ends with
	// its window (PSM active time, eDRX paging window), so that it does
	// not hold its slot until the deadline; the command stays PENDING
	// (never left) or SENT (no ACK) as after any transport failure.
	if _, end, ok := d.mode.Window(now, d.lastUplink); ok && !end.IsZero() && end.Before(deadline) {
		deadline = end
	}
	e.flights.Add(1)
	go func() {
		defer e.flights.Done()
		defer func() { <-e.slots }()
		if !resend && !e.attempt(ctx, f) {
			return
		}
		tctx, cancel := context.WithDeadline(ctx, deadline)
		err := e.tr.Transmit(tctx, f.c, func() { e.onLeft(ctx, f) })
		cancel()
		f.mu.Lock()
		f.done = true
		left := f.left
		f.mu.Unlock()
		e.finish(context.WithoutCancel(ctx), f, left, err)
	}()
}

// attempt stores a first send's attempt before Transmit (CMD-9), under the
// device's lock, and reports whether to transmit: not when the command
// left PENDING meanwhile (cancelled) or the write failed. Not transmitting,
// it ends the flight.
func (e *Engine) attempt(ctx context.Context, f *flight) bool {
	id := f.c.DeviceID
	d, err := e.device(context.WithoutCancel(ctx), id)
	if err != nil {
		e.log.Error("command: storing a send attempt", "device", id, "command", f.c.ID, "err", err)
		return false // not reached with a store that reads (d is loaded while in flight)
	}
	defer e.release(d)
	c, err := e.st.Get(ctx, f.c.ID)
	if err == nil && c.Status == Pending {
		now := time.Now()
		c.SendAttempt, c.NextTry = now, now
		if err = e.commitAll(ctx, d, []Command{c}, 0); err == nil {
			f.c = c
			return true
		}
	}
	d.inflight = ""
	if err != nil {
		// As a failed write in service: the timers look again.
		if ctx.Err() == nil {
			e.log.Error("command: storing a send attempt", "device", id, "command", f.c.ID, "err", err)
		}
		return false
	}
	e.sched.mark(id) // ended meanwhile: the next command may go
	return false
}

// onLeft stores that the command left: the transport's first
// transmission went out.
func (e *Engine) onLeft(ctx context.Context, f *flight) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.left || f.done {
		return
	}
	f.left = true
	ctx = context.WithoutCancel(ctx) // stored even while the engine closes
	d, err := e.device(ctx, f.c.DeviceID)
	if err != nil {
		e.log.Error("command: recording a send", "device", f.c.DeviceID, "command", f.c.ID, "err", err)
		return
	}
	defer e.release(d)
	if err := e.leftLocked(ctx, d, f, time.Now()); err != nil {
		e.log.Error("command: recording a send", "device", f.c.DeviceID, "command", f.c.ID, "err", err)
	}
}

// leftLocked is onLeft with d's lock held.
func (e *Engine) leftLocked(ctx context.Context, d *devState, f *flight, now time.Time) error {
	c, err := e.st.Get(ctx, f.c.ID)
	if err != nil {
		return err
	}
	switch {
	case !f.resend && c.Status == Pending:
		c.SendAttempt = time.Time{}
		c.Retransmits = 0
		c.Deadline = d.mode.Deadline(now)
	case f.resend && c.Status == Sent:
		c.Retransmits = f.c.Retransmits
		if f.woke {
			c.Deadline = d.mode.Deadline(now)
		}
	default:
		return nil // ended meanwhile (cancelled before it left, timed out)
	}
	if err := c.Move(Sent, now); err != nil {
		return err
	}
	c.NextTry = e.retransmitAt(c, now)
	return e.commit(ctx, d, []Command{c}, nil)
}

// finish stores the outcome of a Transmit.
func (e *Engine) finish(ctx context.Context, f *flight, left bool, terr error) {
	id := f.c.DeviceID
	d, err := e.device(ctx, id)
	if err != nil {
		e.log.Error("command: recording a send's outcome", "device", id, "command", f.c.ID, "err", err)
		return
	}
	defer e.release(d)
	d.inflight = ""
	defer e.sched.mark(id)
	now := time.Now()
	if !left && terr == nil {
		// Left and ACKed in one: both moves.
		if err := e.leftLocked(ctx, d, f, now); err != nil {
			e.log.Error("command: recording a send", "device", id, "command", f.c.ID, "err", err)
			return
		}
		left = true
	}
	c, err := e.st.Get(ctx, f.c.ID)
	if err != nil {
		e.log.Error("command: recording a send's outcome", "device", id, "command", f.c.ID, "err", err)
		return
	}
	switch {
	case !left && !f.resend:
		if c.Status == Pending {
			_, err = e.notSent(ctx, d, c, terr, now)
		}
	case !left:
		e.log.Info("command: re-send failed; waiting for the timeout or the next wake-up", "device", id, "command", c.ID, "err", terr)
		if c.Status == Sent {
			c.Retransmits = f.c.Retransmits
			c.NextTry = e.retransmitAt(c, now)
			err = e.commit(ctx, d, nil, []Command{c})
		}
	case terr == nil:
		if c.Status == Sent {
			err = e.ackLocked(ctx, d, c, now)
		}
	case errors.Is(terr, ErrRefused):
		err = e.refusedLocked(ctx, d, c, terr, now)
	default:
		// No ACK after every retransmission: the command stays SENT; its
		// deadline ends it TIMEOUT unless a wake-up re-sends it (CMD-4).
		e.log.Info("command: no ACK; the command stays SENT", "device", id, "command", c.ID, "status", c.Status, "err", terr)
	}
	if err != nil {
		e.log.Error("command: recording a send's outcome", "device", id, "command", f.c.ID, "err", err)
	}
}

// ackLocked stores SENT → DELIVERED. d's lock is held.
func (e *Engine) ackLocked(ctx context.Context, d *devState, c Command, now time.Time) error {
	if err := c.Move(Delivered, now); err != nil {
		return err
	}
	c.NextTry = time.Time{}
	return e.commit(ctx, d, []Command{c}, nil)
}

// refusedLocked stores a refusal that came as the device's answer to a
// command that left: the answer carries the ACK, so SENT → DELIVERED →
// FAILED, and the next command is tried now, all in one write.
func (e *Engine) refusedLocked(ctx context.Context, d *devState, c Command, terr error, now time.Time) error {
	cs := make([]Command, 0, 3)
	if c.Status == Sent {
		if err := c.Move(Delivered, now); err != nil {
			return err
		}
		cs = append(cs, c)
	}
	if c.Status != Delivered {
		return nil // ended meanwhile
	}
	c.Reason = terr.Error()
	if re, ok := errors.AsType[*RefusedError](terr); ok {
		c.Result = refusal(re)
	}
	if err := c.Move(Failed, now); err != nil {
		return err
	}
	c.NextTry = time.Time{}
	cs = append(cs, c)
	n := len(cs)
	next, err := e.withNext(ctx, c, now)
	if err != nil {
		return err
	}
	return e.commitAll(ctx, d, append(cs, next[1:]...), n)
}
