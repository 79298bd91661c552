package command

import (
	"context"
	"sync"
	"time"
)

// devState is what the engine keeps in memory per device; everything else
// is in the Store. An idle device's devState is forgotten (forget.go) and
// loaded again from the Store when the device is next used.
type devState struct {
	id         string
	mu         chanMutex
	gone       bool // forgotten: no longer in Engine.devices; look the device up again
	loaded     bool
	mode       Mode
	lastSeq    uint64
	lastUplink time.Time // zero until the first DeviceWoke of this process (or the stored one, see Uplinks)
	lastFail   time.Time // last transport failure of a first send
	inflight   string    // the command a Transmitter is sending, "" for none
	empty      bool      // the device has no open command (known at load, kept by every write)
	stored     time.Time // the last uplink as the Store holds it (Uplinks), zero for none
	used       time.Time // when the device was last locked

	wmu  sync.Mutex // guards woke, want and, with mu, gone
	woke time.Time  // the latest DeviceWoke, applied to lastUplink under mu
	want bool       // a worker found the device locked: mark it at unlock

	nmu     sync.Mutex // guards heard and telling, not the device
	heard   []Command  // moves stored but not yet told to the Listener
	telling bool       // a goroutine is telling the Listener
}

// entry returns the device's state, created (not loaded) when absent.
func (e *Engine) entry(id string) *devState {
	v, ok := e.devices.Load(id)
	if !ok {
		v, _ = e.devices.LoadOrStore(id, &devState{id: id, mu: make(chanMutex, 1)})
	}
	return v.(*devState)
}

// device returns the device's state, locked and loaded from the store, with
// the latest DeviceWoke applied.
func (e *Engine) device(ctx context.Context, id string) (*devState, error) {
	d, _, err := e.lockDevice(ctx, id, true)
	return d, err
}

// lockDevice is device; when wait is false it does not wait for a device
// that another goroutine holds, returning nil and false, and that
// goroutine marks the device for the workers when it unlocks (unlock).
func (e *Engine) lockDevice(ctx context.Context, id string, wait bool) (*devState, bool, error) {
	for {
		d := e.entry(id)
		if wait {
			d.mu.lock()
		} else if !d.mu.tryLock() {
			d.wmu.Lock()
			d.want = true
			d.wmu.Unlock()
			if !d.mu.tryLock() {
				return nil, false, nil // the holder sees want after it unlocked
			}
		}
		if d.gone {
			e.unlock(d) // forgotten while we waited: the map has its successor
			continue
		}
		if !d.loaded {
			if err := e.load(ctx, id, d); err != nil {
				e.unlock(d)
				return nil, true, err
			}
		}
		d.wmu.Lock()
		if d.woke.After(d.lastUplink) {
			d.lastUplink = d.woke
		}
		d.wmu.Unlock()
		d.used = time.Now()
		return d, true, nil
	}
}

// unlock unlocks the device and, when a worker found it locked meanwhile
// (lockDevice without wait), marks it for the workers again.
func (e *Engine) unlock(d *devState) {
	d.mu.unlock()
	d.wmu.Lock()
	want := d.want
	d.want = false
	d.wmu.Unlock()
	if want {
		e.sched.mark(d.id)
	}
}

// load reads what the engine keeps of the device from the store. d's lock
// is held.
func (e *Engine) load(ctx context.Context, id string, d *devState) error {
	m, ok, err := e.st.Mode(ctx, id)
	if err != nil {
		return err
	}
	if d.lastSeq, err = e.st.LastSeq(ctx, id); err != nil {
		return err
	}
	front, err := e.st.Front(ctx, id, 1, time.Time{})
	if err != nil {
		return err
	}
	if u, ok := e.st.(Uplinks); ok {
		if d.stored, err = u.Uplink(ctx, id); err != nil {
			return err
		}
		if d.stored.After(d.lastUplink) {
			d.lastUplink = d.stored
		}
	}
	if !ok {
		m = e.cfg.DefaultMode
	}
	d.mode, d.empty, d.loaded = m.inherit(e.cfg.DefaultMode), len(front) == 0, true
	return nil
}

// release unlocks the device and then tells the Listener of the moves
// committed under the lock, in the order they were stored. One goroutine at
// a time tells a device's moves; one that finds another telling leaves its
// moves to it, so the order holds across goroutines.
func (e *Engine) release(d *devState) {
	e.unlock(d)
	if e.lis == nil {
		return
	}
	d.nmu.Lock()
	if d.telling {
		d.nmu.Unlock()
		return
	}
	d.telling = true
	for len(d.heard) > 0 {
		batch := d.heard
		d.heard = nil
		d.nmu.Unlock()
		for _, c := range batch {
			e.lis.CommandChanged(c)
		}
		d.nmu.Lock()
	}
	d.telling = false
	d.nmu.Unlock()
}

// chanMutex is a mutex made of a channel. A goroutine waiting for it is
// durably blocked in the sense of testing/synctest, so a device's lock may
// be held across a Store write that waits on a timer (bbolt's Batch) while
// tests run in a bubble.
type chanMutex chan struct{}

func (m chanMutex) lock()   { m <- struct{}{} }
func (m chanMutex) unlock() { <-m }

// tryLock locks m if it is free and reports whether it did.
func (m chanMutex) tryLock() bool {
	select {
	case m <- struct{}{}:
		return true
	default:
		return false
	}
}
