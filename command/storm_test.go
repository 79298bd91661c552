package command

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// slowStore holds every write of a command that hold picks until release
// is closed: a disk whose commits are full of other work, for those
// commands only.
type slowStore struct {
	*MemStore
	hold    func(c Command) bool
	release chan struct{}
	held    atomic.Int32
}

func (s *slowStore) Write(ctx context.Context, w Write) error {
	for _, c := range w.Commands {
		if s.hold(c) {
			s.held.Add(1)
			select {
			case <-s.release:
			case <-ctx.Done():
				return ctx.Err()
			}
			break
		}
	}
	return s.MemStore.Write(ctx, w)
}

// TestWakeNotHeldBySlowSends (issue 24): in a wake storm a woken device's
// head goes out at its wake-up while the sends of many other devices wait
// for the store. Workers hand a send to its transmission and move on; they
// did wait for each send's attempt to be stored, so eight slow sends held
// every worker and the woken PSM device's window passed.
func TestWakeNotHeldBySlowSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := &slowStore{MemStore: NewMemStore(), release: make(chan struct{}),
			hold: func(c Command) bool { return !c.SendAttempt.IsZero() && c.DeviceID != "meter" }} // send attempts
		rd := newRadio()
		var n atomic.Int64
		e, err := New(st, rd, nil, Config{NewID: func() string { return fmt.Sprintf("c%d", n.Add(1)) }})
		require.NoError(t, err)
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		defer func() { e.Close(); <-done }()
		defer func() {
			select {
			case <-st.release:
			default:
				close(st.release)
			}
		}()

		const slow = 64
		var slowIDs []string
		for i := range slow {
			dev := fmt.Sprintf("lamp%d", i)
			require.NoError(t, e.SetMode(ctx, dev, Mode{Kind: DRX}))
			c, err := e.Submit(ctx, req(dev))
			require.NoError(t, err)
			slowIDs = append(slowIDs, c.ID)
		}
		m, err := e.Submit(ctx, req("meter")) // PSM: waits for its uplink
		require.NoError(t, err)
		synctest.Wait()
		require.Positive(t, st.held.Load(), "the DRX devices' send attempts wait for the store")

		woke := time.Now()
		require.NoError(t, e.DeviceWoke(ctx, "meter"))
		synctest.Wait()
		at, ok := rd.leftAt(m.ID)
		require.True(t, ok, "the woken device's command went out while %d other sends wait for the store", slow)
		require.Equal(t, woke, at, "at its wake-up")
		got, err := e.Get(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, Sent, got.Status)
		require.Equal(t, int32(slow), st.held.Load(), "and every DRX device's attempt waits on its own, not in a worker")

		close(st.release)
		synctest.Wait()
		for _, id := range slowIDs {
			_, ok := rd.leftAt(id)
			require.True(t, ok, "%s went out once its attempt was stored", id)
		}
	})
}

// TestWakeDoesNotWaitForTheDevice (issue 24): DeviceWoke returns at once
// while another call holds the device (here a Submit whose write waits for
// the disk), so a transport can call it as the uplink arrives; the wake
// counts once the device is free.
func TestWakeDoesNotWaitForTheDevice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := &slowStore{MemStore: NewMemStore(), release: make(chan struct{}),
			hold: func(c Command) bool { return c.Status == Pending && c.SendAttempt.IsZero() && c.NextTry.IsZero() }} // the PSM Submit
		rd := newRadio()
		e, err := New(st, rd, nil, Config{NewID: func() string { return "c1" }})
		require.NoError(t, err)
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		defer func() { e.Close(); <-done }()
		defer func() {
			select {
			case <-st.release:
			default:
				close(st.release)
			}
		}()
		submitted := make(chan error, 1)
		go func() { _, err := e.Submit(ctx, req("meter")); submitted <- err }()
		synctest.Wait()
		require.Equal(t, int32(1), st.held.Load(), "Submit holds the device, waiting for its write")

		woke := make(chan error, 1)
		go func() { woke <- e.DeviceWoke(ctx, "meter") }()
		synctest.Wait()
		select {
		case err := <-woke:
			require.NoError(t, err)
		default:
			t.Fatal("DeviceWoke waits for the device's lock")
		}
		close(st.release)
		require.NoError(t, <-submitted)
		synctest.Wait()
		_, ok := rd.leftAt("c1")
		require.True(t, ok, "the wake counted: the command went out once Submit let go of the device")
	})
}

// TestTransmissionEndsWithTheWindow (issue 24): a transmission to a PSM
// device that does not ACK ends when the device's active time does, not at
// the command's 300 s deadline, so that in a wake storm the devices that
// went back to sleep do not hold every transmission slot. The command stays
// SENT (it left) and goes again at the next wake-up (CMD-4).
func TestTransmissionEndsWithTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rd := newRadioHarness(t, Config{Transmissions: 1})
		a := h.submit(req("a"))
		b := h.submit(req("b"))
		start := time.Now()
		h.wake("a") // a takes the one slot and never ACKs
		_, ok := rd.leftAt(a.ID)
		require.True(t, ok)
		time.Sleep(25 * time.Second) // a's 20 s active time is over
		h.wake("b")
		at, ok := rd.leftAt(b.ID)
		require.True(t, ok, "b's command went out at its wake-up: a's transmission ended with a's window")
		require.Equal(t, start.Add(25*time.Second), at)
		require.Equal(t, Sent, h.status(a.ID), "a's command left: SENT until its deadline or the next wake-up")
	})
}

// devices counts the devices whose state the engine keeps in memory.
func (e *Engine) countDevices() int {
	n := 0
	e.devices.Range(func(any, any) bool { n++; return true })
	return n
}

func (e *Engine) remembers(id string) bool {
	_, ok := e.devices.Load(id)
	return ok
}

// TestIdleDevicesForgotten (issue 24): the engine forgets the in-memory
// state of devices with nothing open once they were idle for idleAfter,
// and a forgotten device comes back from the Store as it was: its mode,
// its sequence numbers, its last uplink (the anchor of its eDRX paging
// windows, the start of its PSM active time). A device with a command
// waiting is kept.
func TestIdleDevicesForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		h := newHarness(t, Config{})
		h.deviceReplies(time.Second)
		m := Mode{Kind: EDRX, ActiveTime: 5 * time.Second, Cycle: 100 * time.Second, PagingWindow: 10 * time.Second}
		h.mode("gas", m)
		anchor := time.Now()
		h.wake("gas")
		g1 := h.submit(req("gas")) // awake: sent at once, answered
		h.wake("meter")            // PSM, heard from, nothing queued
		waiting := h.submit(req("water"))
		for range 100 { // devices touched once, deleted since: nothing queued
			_, err := h.e.CancelDevice(ctx, fmt.Sprintf("gone%d", time.Now().UnixNano()+int64(h.e.countDevices())))
			require.NoError(t, err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		require.Equal(t, Successful, h.status(g1.ID))
		require.Equal(t, 103, h.e.countDevices())

		time.Sleep(idleAfter + forgetEvery)
		synctest.Wait()
		require.Equal(t, 1, h.e.countDevices(), "only the device with a command waiting is kept")
		require.True(t, h.e.remembers("water"))
		up, err := h.st.Uplink(ctx, "gas")
		require.NoError(t, err)
		require.True(t, anchor.Equal(up), "the eDRX anchor was stored before the device was forgotten: %v, want %v", up, anchor)

		// gas comes back: its mode, its next Seq, and its paging windows
		// anchored on the uplink before it was forgotten.
		eff, err := h.e.Effective(ctx, "gas")
		require.NoError(t, err)
		require.Equal(t, m, eff)
		g2 := h.submit(req("gas"))
		require.Equal(t, g1.Seq+1, g2.Seq)
		now := time.Now()
		k := now.Sub(anchor)/m.Cycle + 1
		require.True(t, anchor.Add(k*m.Cycle).Equal(g2.NextTry), "next paging window from the anchor: %v, want %v", g2.NextTry, anchor.Add(k*m.Cycle))
		synctest.Wait()
		require.Equal(t, Pending, h.status(g2.ID), "asleep between windows")
		time.Sleep(time.Until(g2.NextTry))
		synctest.Wait()
		require.Equal(t, []string{g1.ID, g2.ID}, h.sentIDs(), "sent at the window's start")
		time.Sleep(2 * time.Second) // the device answered

		// meter comes back with its last uplink: an immediate command
		// fails naming it, as it did before it was forgotten.
		r := req("meter")
		r.ExpireTime = i64(0)
		c, err := h.e.Submit(ctx, r)
		require.ErrorIs(t, err, ErrUnreachable)
		require.Contains(t, c.Reason, "last uplink at")

		require.Equal(t, Pending, h.status(waiting.ID))
	})
}
