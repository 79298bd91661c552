package command

import (
	"context"
	"time"
)

// The engine keeps a devState per device it used (engine.go). So that this
// does not grow with every device ever served, Run forgets the state of an
// idle device: one with no open command, no transmission, no pending wake
// or Listener call, not waiting for a worker, and not used for idleAfter.
// Everything it held comes back from the Store when the device is next
// used: the mode (Store.Mode), the last sequence number (Store.LastSeq),
// whether its queue is empty (Store.Front), and its last uplink time
// (Uplinks). The last transport failure is not kept: it only matters while
// a command is open. A Store without Uplinks keeps the devices heard from
// in memory.

// forgetEvery is how often Run looks for idle devices; idleAfter how long
// a device must have been unused to be forgotten.
const (
	forgetEvery = time.Minute
	idleAfter   = 10 * time.Minute
)

func (e *Engine) forgetIdle(ctx context.Context) {
	t := time.NewTicker(forgetEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.sweep(ctx, time.Now())
	}
}

// sweep forgets the devices idle at now. The last uplinks that the Store
// does not hold yet are written first, in one write, without holding the
// devices' locks; those devices are forgotten once it is done.
func (e *Engine) sweep(ctx context.Context, now time.Time) {
	ups, _ := e.st.(Uplinks)
	write := map[string]time.Time{}
	e.devices.Range(func(k, v any) bool {
		id, d := k.(string), v.(*devState)
		if !d.mu.tryLock() {
			return true // in use
		}
		switch {
		case !e.idle(id, d, now):
		case d.lastUplink.IsZero() || d.lastUplink.Equal(d.stored):
			e.forgetLocked(id, d)
		case ups != nil:
			write[id] = d.lastUplink
		}
		e.unlock(d)
		return ctx.Err() == nil
	})
	if len(write) == 0 || ctx.Err() != nil {
		return
	}
	if err := ups.PutUplinks(ctx, write); err != nil {
		if ctx.Err() == nil {
			e.log.Error("command: storing the last uplinks of idle devices", "devices", len(write), "err", err)
		}
		return
	}
	for id, t := range write {
		v, ok := e.devices.Load(id)
		if !ok {
			continue
		}
		d := v.(*devState) // the same as above: only sweep forgets
		if !d.mu.tryLock() {
			continue
		}
		if d.loaded {
			d.stored = t
		}
		if e.idle(id, d, now) && d.lastUplink.Equal(d.stored) {
			e.forgetLocked(id, d)
		}
		e.unlock(d)
	}
}

// idle reports whether the device may be forgotten at now, as far as
// its locked state tells.
func (e *Engine) idle(id string, d *devState, now time.Time) bool {
	return d.inflight == "" && (d.empty || !d.loaded) && now.Sub(d.used) >= idleAfter && e.sched.idle(id)
}

// forgetLocked removes the device's state from e.devices unless a wake or
// a Listener call is pending. d's lock is held; a goroutine waiting for it
// finds d gone and looks the device up again.
func (e *Engine) forgetLocked(id string, d *devState) bool {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.woke.After(d.lastUplink) {
		return false // a DeviceWoke not applied yet
	}
	d.nmu.Lock()
	busy := len(d.heard) > 0 || d.telling
	d.nmu.Unlock()
	if busy {
		return false
	}
	d.gone = true
	e.devices.CompareAndDelete(id, d)
	return true
}
