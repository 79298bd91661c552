package command

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// radio is a Transmitter that plays a confirmable CoAP exchange: the
// message leaves at once (left), and the exchange ends when the test
// answers for the device (ack) or, for a device that never ACKs, when the
// engine's deadline ends the context.
type radio struct {
	mu      sync.Mutex
	left    map[string]time.Time // command id → when it left (first time)
	answers map[string]chan error
}

func newRadio() *radio {
	return &radio{left: map[string]time.Time{}, answers: map[string]chan error{}}
}

func (r *radio) Send(context.Context, Command) error {
	return errors.New("radio: the engine must use Transmit")
}

func (r *radio) answer(id string) chan error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.answers[id] == nil {
		r.answers[id] = make(chan error, 1)
	}
	return r.answers[id]
}

func (r *radio) Transmit(ctx context.Context, c Command, left func()) error {
	r.mu.Lock()
	if _, ok := r.left[c.ID]; !ok {
		r.left[c.ID] = time.Now()
	}
	r.mu.Unlock()
	left()
	select {
	case err := <-r.answer(c.ID):
		return err
	case <-ctx.Done():
		return fmt.Errorf("radio: no ACK: %w", ctx.Err())
	}
}

func (r *radio) leftAt(id string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.left[id]
	return t, ok
}

// ack lets the device's ACK (with err, its answer) come back.
func (r *radio) ack(id string, err error) { r.answer(id) <- err; synctest.Wait() }

// newRadioHarness is newHarness with a radio as the transport.
func newRadioHarness(t *testing.T, cfg Config) (*harness, *radio) {
	h := &harness{t: t, st: NewMemStore(), logs: &logBuffer{}}
	rd := newRadio()
	n := 0
	var nmu sync.Mutex
	cfg.NewID = func() string { nmu.Lock(); defer nmu.Unlock(); n++; return fmt.Sprintf("c%d", n) }
	e, err := New(h.st, rd, ListenerFunc(h.listen), cfg)
	require.NoError(t, err)
	h.e = e
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.Run(context.Background()); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		require.NoError(t, e.Close())
		<-done
	})
	synctest.Wait()
	return h, rd
}

// CMD-1 with a transport that tells "left" and "ACKed": SENT is stored and
// heard as soon as the command left, while the device holds its ACK; the
// device's lock is free meanwhile (another command can be submitted, a
// Listener can call the engine); the ACK is one stored move to DELIVERED.
func TestTransmitSentWhileACKHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rd := newRadioHarness(t, Config{})
		h.mode("lamp", Mode{Kind: DRX})
		c := h.submit(req("lamp"))
		synctest.Wait()
		require.Equal(t, Sent, h.status(c.ID), "status while the device holds its ACK")
		require.Equal(t, []string{"PENDING", "SENT"}, h.history(c.ID))
		// The device's lock is free: a second command is taken while the
		// first waits for its ACK, and waits its turn (CMD-4).
		c2 := h.submit(req("lamp"))
		synctest.Wait()
		require.Equal(t, Pending, h.status(c2.ID))

		rd.ack(c.ID, nil)
		require.Equal(t, Delivered, h.status(c.ID))
		require.Equal(t, []string{"PENDING", "SENT", "DELIVERED"}, h.history(c.ID))
		require.NoError(t, h.e.Responded(context.Background(), "lamp", Response{Mid: c.Mid()}))
		synctest.Wait()
		require.Equal(t, Successful, h.status(c.ID))
		require.Equal(t, Sent, h.status(c2.ID), "the next command goes out once the first ended")
	})
}

// A device that answers before the transport reports its ACK: the
// response implies the ACK (SENT → DELIVERED → SUCCESSFUL), and the late
// ACK changes nothing.
func TestTransmitResponseBeforeACK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rd := newRadioHarness(t, Config{})
		h.mode("lamp", Mode{Kind: DRX})
		c := h.submit(req("lamp"))
		synctest.Wait()
		require.NoError(t, h.e.Responded(context.Background(), "lamp", Response{Mid: c.Mid()}))
		rd.ack(c.ID, nil)
		require.Equal(t, []string{"PENDING", "SENT", "DELIVERED", "SUCCESSFUL"}, h.history(c.ID))
	})
}

// slowRadio is a radio whose sending goroutine is slow to tell that the
// message left: the device already has it (and may answer) before left
// runs, as when that goroutine waits for the CPU or the device's lock.
type slowRadio struct {
	*radio
	sent    chan string   // the command id, once its message is out
	release chan struct{} // closed to let left run
}

func (r *slowRadio) Transmit(ctx context.Context, c Command, left func()) error {
	return r.radio.Transmit(ctx, c, func() {
		r.sent <- c.ID
		<-r.release
		left()
	})
}

// A device that answers before the sender recorded that the command left
// (the sending goroutine was slow after the write): the answer names the
// command's mid, so PENDING → SENT → DELIVERED → SUCCESSFUL in one write,
// and the late "left" and ACK change nothing. Without this the answer
// matched no outstanding command and was dropped (CMD-5), leaving the
// command DELIVERED until it timed out.
func TestTransmitResponseBeforeLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &harness{t: t, st: NewMemStore(), logs: &logBuffer{}}
		rd := &slowRadio{radio: newRadio(), sent: make(chan string, 1), release: make(chan struct{})}
		n := 0
		e, err := New(h.st, rd, ListenerFunc(h.listen), Config{NewID: func() string { n++; return fmt.Sprintf("c%d", n) }})
		require.NoError(t, err)
		h.e = e
		done := make(chan struct{})
		go func() { defer close(done); _ = e.Run(context.Background()) }()
		t.Cleanup(func() { require.NoError(t, e.Close()); <-done })
		synctest.Wait()
		h.mode("lamp", Mode{Kind: DRX})
		c := h.submit(req("lamp"))
		require.Equal(t, c.ID, <-rd.sent, "the message is out")
		require.Equal(t, Pending, h.status(c.ID), "not yet recorded as left")

		require.NoError(t, e.Responded(context.Background(), "lamp", Response{Mid: c.Mid()}))
		require.Equal(t, Successful, h.status(c.ID), "the answer names the command")
		require.Equal(t, []string{"PENDING", "SENT", "DELIVERED", "SUCCESSFUL"}, h.history(c.ID))

		close(rd.release)
		synctest.Wait()
		rd.ack(c.ID, nil)
		require.Equal(t, Successful, h.status(c.ID))
		require.Equal(t, []string{"PENDING", "SENT", "DELIVERED", "SUCCESSFUL"}, h.history(c.ID), "the late left and ACK move nothing")

		// A response without a mid never matches a command whose send is
		// not recorded: it could be the answer to an earlier command.
		rd.release = make(chan struct{})
		c2 := h.submit(req("lamp"))
		require.Equal(t, c2.ID, <-rd.sent)
		require.NoError(t, e.Responded(context.Background(), "lamp", Response{}))
		require.Equal(t, Pending, h.status(c2.ID))
		close(rd.release)
		synctest.Wait()
		require.Equal(t, Sent, h.status(c2.ID))
	})
}

// A device that never ACKs: the command is SENT from the moment it left
// and ends TIMEOUT exactly at its mode's deadline (CMD-3): 300 s for PSM
// and DRX, 2 × cycle + 120 s for eDRX.
func TestTransmitNoACKTimeout(t *testing.T) {
	for _, tt := range []struct {
		mode Mode
		want time.Duration
	}{
		{Mode{Kind: PSM}, 300 * time.Second},
		{Mode{Kind: DRX}, 300 * time.Second},
		{Mode{Kind: EDRX, Cycle: 81920 * time.Millisecond}, 2*81920*time.Millisecond + 120*time.Second},
		{Mode{Kind: EDRX, Cycle: 655360 * time.Millisecond}, 2*655360*time.Millisecond + 120*time.Second},
	} {
		t.Run(fmt.Sprintf("%v %v", tt.mode.Kind, tt.mode.Cycle), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, rd := newRadioHarness(t, Config{})
				h.mode("dev", tt.mode)
				h.wake("dev") // anchors PSM's and eDRX's window: the head goes now
				c := h.submit(req("dev"))
				synctest.Wait()
				sent, ok := rd.leftAt(c.ID)
				require.True(t, ok, "the command left")
				require.Equal(t, Sent, h.status(c.ID))
				time.Sleep(time.Until(sent.Add(tt.want)) - time.Nanosecond)
				synctest.Wait()
				require.Equal(t, Sent, h.status(c.ID), "1 ns before the deadline")
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				got := h.get(c.ID)
				require.Equal(t, Timeout, got.Status, "at the deadline %v after the send", tt.want)
				require.Equal(t, sent.Add(tt.want), got.ExecuteTime)
				require.Equal(t, []string{"PENDING", "SENT", "TIMEOUT"}, h.history(c.ID))
			})
		})
	}
}

// When cached commands go out in each mode (CMD-3): DRX at once, PSM only
// after an uplink, eDRX in the next paging window.
func TestTransmitModes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rd := newRadioHarness(t, Config{})
		start := time.Now()

		h.mode("drx", Mode{Kind: DRX})
		d := h.submit(req("drx"))
		synctest.Wait()
		at, ok := rd.leftAt(d.ID)
		require.True(t, ok, "DRX: the cached command goes out without an uplink")
		require.Equal(t, start, at, "DRX: at once")

		h.mode("psm", Mode{Kind: PSM})
		p := h.submit(req("psm"))
		time.Sleep(time.Hour)
		synctest.Wait()
		_, ok = rd.leftAt(p.ID)
		require.False(t, ok, "PSM: nothing goes out in an hour without an uplink")
		h.wake("psm")
		at, ok = rd.leftAt(p.ID)
		require.True(t, ok, "PSM: the uplink lets it out")
		require.Equal(t, start.Add(time.Hour), at)

		h.mode("edrx", Mode{Kind: EDRX, ActiveTime: time.Second, Cycle: 20 * time.Second, PagingWindow: 5 * time.Second})
		h.wake("edrx") // anchors the paging windows at now + k × 20 s
		anchor := time.Now()
		time.Sleep(3 * time.Second) // past the 1 s active time
		e := h.submit(req("edrx"))
		synctest.Wait()
		_, ok = rd.leftAt(e.ID)
		require.False(t, ok, "eDRX: not between paging windows")
		time.Sleep(17*time.Second - time.Nanosecond)
		synctest.Wait()
		_, ok = rd.leftAt(e.ID)
		require.False(t, ok, "eDRX: not 1 ns before the paging window")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		at, ok = rd.leftAt(e.ID)
		require.True(t, ok, "eDRX: in the next paging window")
		require.Equal(t, anchor.Add(20*time.Second), at)
	})
}

// A device that answers 4.xx to a command that left: its answer carries
// the ACK, so DELIVERED → FAILED with the code, and the next command goes.
func TestTransmitRefusedAfterLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rd := newRadioHarness(t, Config{})
		h.mode("lamp", Mode{Kind: DRX})
		c := h.submit(req("lamp"))
		c2 := h.submit(req("lamp"))
		synctest.Wait()
		rd.ack(c.ID, &RefusedError{Code: "4.00", Err: errors.New("bad request")})
		got := h.get(c.ID)
		require.Equal(t, Failed, got.Status)
		require.JSONEq(t, `{"code":"4.00","reason":"bad request"}`, string(got.Result))
		require.Equal(t, []string{"PENDING", "SENT", "DELIVERED", "FAILED"}, h.history(c.ID))
		require.Equal(t, Sent, h.status(c2.ID), "the next command went out")
	})
}

// The Listener runs after the device's lock is released: one that calls
// the engine for the same device does not deadlock (synctest would report
// every goroutine blocked).
func TestListenerOutsideLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var e *Engine
		var heard []Status
		var mu sync.Mutex
		lis := ListenerFunc(func(c Command) {
			_, err := e.Effective(context.Background(), c.DeviceID) // takes the device's lock
			require.NoError(t, err)
			mu.Lock()
			heard = append(heard, c.Status)
			mu.Unlock()
		})
		rd := newRadio()
		var err error
		e, err = New(NewMemStore(), rd, lis, Config{DefaultMode: Mode{Kind: DRX}})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = e.Run(ctx) }()
		c, err := e.Submit(context.Background(), req("lamp"))
		require.NoError(t, err)
		synctest.Wait()
		rd.ack(c.ID, nil)
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, []Status{Pending, Sent, Delivered}, heard)
	})
}
