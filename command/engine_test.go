package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// harness runs an Engine on a MemStore inside a synctest bubble, with a
// fake Sender that records every send and a Listener that records every
// state change.
type harness struct {
	t  *testing.T
	e  *Engine
	st *MemStore

	mu      sync.Mutex
	sent    []Command
	events  []Command
	sendErr func(c Command) error // nil: every send succeeds
	reply   func(c Command)       // called in a new goroutine after each successful send
	logs    *logBuffer
}

type logBuffer struct {
	mu   sync.Mutex
	msgs []string
}

func (b *logBuffer) Enabled(context.Context, slog.Level) bool { return true }
func (b *logBuffer) Handle(_ context.Context, r slog.Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	sb.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&sb, " %s=%v", a.Key, a.Value); return true })
	b.msgs = append(b.msgs, sb.String())
	return nil
}
func (b *logBuffer) WithAttrs([]slog.Attr) slog.Handler { return b }
func (b *logBuffer) WithGroup(string) slog.Handler      { return b }
func (b *logBuffer) all() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.msgs, "\n")
}

func newHarness(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, st: NewMemStore(), logs: &logBuffer{}}
	var n atomic.Int64
	cfg.NewID = func() string { return fmt.Sprintf("c%d", n.Add(1)) }
	cfg.Logger = slog.New(h.logs)
	e, err := New(h.st, SenderFunc(h.send), ListenerFunc(h.listen), cfg)
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
	synctest.Wait() // Run has started
	return h
}

// rank orders states along the moves of CMD-1.
func rank(s Status) int {
	switch {
	case s.Final():
		return 3
	case s == Delivered:
		return 2
	case s == Sent:
		return 1
	}
	return 0
}

func (h *harness) send(ctx context.Context, c Command) error {
	h.mu.Lock()
	fail, reply := h.sendErr, h.reply
	h.mu.Unlock()
	if fail != nil {
		if err := fail(c); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.sent = append(h.sent, c)
	h.mu.Unlock()
	if reply != nil {
		go reply(c)
	}
	return nil
}

// listen checks that every change is stored before the Listener hears of
// it (CMD-9).
func (h *harness) listen(c Command) {
	stored, err := h.st.Get(context.Background(), c.ID)
	if err != nil || rank(stored.Status) < rank(c.Status) {
		h.t.Errorf("Listener told of %s %v before it was stored (store has %v, %v)", c.ID, c.Status, stored.Status, err)
	}
	h.mu.Lock()
	h.events = append(h.events, c)
	h.mu.Unlock()
}

func (h *harness) sentIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []string{}
	for _, c := range h.sent {
		out = append(out, c.ID)
	}
	return out
}

// history returns "id:STATUS" for every Listener event of one command.
func (h *harness) history(id string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.events {
		if c.ID == id {
			out = append(out, c.Status.String())
		}
	}
	return out
}

func (h *harness) get(id string) Command {
	h.t.Helper()
	c, err := h.e.Get(context.Background(), id)
	require.NoError(h.t, err, "Get(%s)", id)
	return c
}

func (h *harness) submit(r Request) Command {
	h.t.Helper()
	c, err := h.e.Submit(context.Background(), r)
	require.NoError(h.t, err, "Submit(%+v)", r)
	return c
}

func (h *harness) mode(dev string, m Mode) {
	h.t.Helper()
	require.NoError(h.t, h.e.SetMode(context.Background(), dev, m))
}

func (h *harness) wake(dev string) {
	h.t.Helper()
	require.NoError(h.t, h.e.DeviceWoke(context.Background(), dev))
	synctest.Wait()
}

func req(dev string) Request {
	return Request{DeviceID: dev, Command: Body{ServiceID: "Switch", Method: "SET", Paras: json.RawMessage(`{"on":1}`)}}
}

func (h *harness) status(id string) Status { return h.get(id).Status }

// TestExpiry48h: a cached command of a PSM device that never wakes expires
// 48 h after creation, not a second earlier (CMD-2, FAQ §4.7).
func TestExpiry48h(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		start := time.Now()
		c := h.submit(req("meter"))
		require.Equal(t, int64(172800), c.ExpireTime, "default expireTime")
		time.Sleep(48*time.Hour - time.Second)
		synctest.Wait()
		require.Equal(t, Pending, h.status(c.ID), "at 48 h - 1 s")
		time.Sleep(time.Second)
		synctest.Wait()
		got := h.get(c.ID)
		require.Equal(t, Expired, got.Status, "at 48 h")
		require.Equal(t, start.Add(48*time.Hour), got.ExecuteTime)
		require.Contains(t, got.Reason, "172800")
		require.Empty(t, h.sentIDs(), "nothing sent to a device that never woke")
		require.Equal(t, []string{"PENDING", "EXPIRED"}, h.history(c.ID))
	})
}

// TestTimeout300s: a DRX command goes out at once; without ACK it ends
// TIMEOUT 300 s after the send; DELIVERED without result too; the next
// command goes out after the timeout (CMD-3, CMD-4).
func TestTimeout300s(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{DefaultMode: Mode{Kind: DRX}})
		start := time.Now()
		a := h.submit(req("lamp"))
		b := h.submit(req("lamp"))
		synctest.Wait()
		require.Equal(t, []string{a.ID}, h.sentIDs(), "DRX: head sent at once, one at a time")
		require.Equal(t, start.Add(300*time.Second), h.get(a.ID).Deadline)

		time.Sleep(300*time.Second - time.Millisecond)
		synctest.Wait()
		require.Equal(t, Sent, h.status(a.ID))
		time.Sleep(time.Millisecond)
		synctest.Wait()
		require.Equal(t, Timeout, h.status(a.ID), "no ACK within 300 s")
		require.Equal(t, []string{a.ID, b.ID}, h.sentIDs(), "next command sent after the timeout")

		require.NoError(t, h.e.Acked(context.Background(), "lamp", b.ID))
		require.Equal(t, Delivered, h.status(b.ID))
		time.Sleep(300 * time.Second)
		synctest.Wait()
		require.Equal(t, Timeout, h.status(b.ID), "ACK but no result within 300 s")
		require.Equal(t, []string{"PENDING", "SENT", "DELIVERED", "TIMEOUT"}, h.history(b.ID))
	})
}

// TestEDRXWindows: an eDRX device is sent to in the paging window of its
// own cycle anchored on its last uplink, or at once while awake after an
// uplink; its timeout is 2 × cycle + 120 s (CMD-3, CMD-10).
func TestEDRXWindows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		m := Mode{Kind: EDRX, ActiveTime: 5 * time.Second, Cycle: 100 * time.Second, PagingWindow: 10 * time.Second}
		h.mode("gas", m)
		start := time.Now()
		h.wake("gas") // anchor at start

		time.Sleep(20 * time.Second)
		c := h.submit(req("gas"))
		synctest.Wait()
		require.Empty(t, h.sentIDs(), "asleep between windows")
		require.Equal(t, start.Add(100*time.Second), h.get(c.ID).NextTry, "next paging window")
		time.Sleep(80*time.Second - time.Millisecond)
		synctest.Wait()
		require.Empty(t, h.sentIDs(), "just before the window")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		require.Equal(t, []string{c.ID}, h.sentIDs(), "sent at the window's start")
		sent := h.get(c.ID)
		require.Equal(t, start.Add(100*time.Second), sent.PlatformIssuedTime)
		require.Equal(t, sent.PlatformIssuedTime.Add(320*time.Second), sent.Deadline, "2 × 100 s + 120 s")
		time.Sleep(320 * time.Second)
		synctest.Wait()
		require.Equal(t, Timeout, h.status(c.ID))

		// Awake right after an uplink: at once.
		h.wake("gas")
		d := h.submit(req("gas"))
		synctest.Wait()
		require.Equal(t, []string{c.ID, d.ID}, h.sentIDs(), "sent at once while awake after an uplink")
	})
}

// TestPSMHoldsUntilUplink: a PSM device's cached command waits, however
// long, until the device sends something (CMD-3, FAQ §7.1).
func TestPSMHoldsUntilUplink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		c := h.submit(req("meter"))
		time.Sleep(10 * time.Hour)
		synctest.Wait()
		require.Empty(t, h.sentIDs(), "PSM: nothing sent before an uplink")
		woke := time.Now()
		h.wake("meter")
		require.Equal(t, []string{c.ID}, h.sentIDs())
		require.Equal(t, woke, h.get(c.ID).PlatformIssuedTime, "sent at the wake-up, no delay")
	})
}

// deviceReplies makes the fake device ACK and answer every command after
// delay, echoing its mid.
func (h *harness) deviceReplies(delay time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reply = func(c Command) {
		time.Sleep(delay)
		if err := h.e.Acked(context.Background(), c.DeviceID, c.ID); err != nil {
			h.t.Errorf("Acked(%s): %v", c.ID, err)
		}
		if err := h.e.Responded(context.Background(), c.DeviceID, Response{Mid: c.Mid(), Body: json.RawMessage(`{"ok":1}`)}); err != nil {
			h.t.Errorf("Responded(%s): %v", c.ID, err)
		}
	}
}

// TestTenDrainedInOrder: ten cached commands go out one at a time, in
// creation order, on one wake-up of a PSM device that answers each
// (CMD-4, FAQ §7.2).
func TestTenDrainedInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		h.deviceReplies(time.Second)
		var want []string
		for range 10 {
			want = append(want, h.submit(req("meter")).ID)
		}
		synctest.Wait()
		require.Empty(t, h.sentIDs())
		h.wake("meter")
		for range 10 {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		require.Equal(t, want, h.sentIDs(), "sent once each, in creation order")
		var prev time.Time
		for _, id := range want {
			c := h.get(id)
			require.Equal(t, Successful, c.Status, id)
			require.Equal(t, 1, c.IssuedTimes, id)
			require.True(t, !c.PlatformIssuedTime.Before(prev), "%s sent after the previous one ended", id)
			prev = c.ExecuteTime
			require.Equal(t, []string{"PENDING", "SENT", "DELIVERED", "SUCCESSFUL"}, h.history(id))
		}
	})
}

// TestPSMActiveTimeEnds: what is left when the active timer T3324 runs out
// waits for the next uplink.
func TestPSMActiveTimeEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{DefaultMode: Mode{Kind: PSM, ActiveTime: 10 * time.Second}})
		h.deviceReplies(4 * time.Second)
		for range 5 {
			h.submit(req("meter"))
		}
		h.wake("meter")
		time.Sleep(time.Minute)
		synctest.Wait()
		// Sent at 0, 4 s and 8 s; the third ends at 12 s, after T3324.
		require.Len(t, h.sentIDs(), 3, "only what fits in the 10 s active time")
		h.wake("meter")
		time.Sleep(time.Minute)
		synctest.Wait()
		require.Len(t, h.sentIDs(), 5, "the rest on the next uplink")
	})
}

// TestResendUntilAck: a command the device never ACKs stays at the head and
// goes out again at each wake-up (CMD-4, FAQ §3.24), but not on an uplink
// within 10 s of the send.
func TestResendUntilAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		c := h.submit(req("meter"))
		next := h.submit(req("meter"))
		h.wake("meter")
		time.Sleep(5 * time.Second)
		h.wake("meter")
		require.Equal(t, []string{c.ID}, h.sentIDs(), "no re-send 5 s after a send")
		time.Sleep(55 * time.Second)
		h.wake("meter")
		require.Equal(t, []string{c.ID, c.ID}, h.sentIDs(), "re-sent at the next wake-up")
		got := h.get(c.ID)
		require.Equal(t, 2, got.IssuedTimes)
		require.Equal(t, time.Now(), got.PlatformIssuedTime)
		require.Equal(t, time.Now().Add(300*time.Second), got.Deadline, "timeout counted from the re-send")
		require.NoError(t, h.e.Acked(context.Background(), "meter", c.ID))
		require.NoError(t, h.e.Responded(context.Background(), "meter", Response{}))
		synctest.Wait()
		require.Equal(t, Successful, h.status(c.ID))
		require.Equal(t, []string{c.ID, c.ID, next.ID}, h.sentIDs(), "then the next command, in the same wake window")
		require.Equal(t, []string{"PENDING", "SENT", "SENT", "DELIVERED", "SUCCESSFUL"}, h.history(c.ID))
	})
}

// TestRetransmit: maxRetransmit retransmissions 10 s, 30 s and 70 s after
// the send while no ACK comes (FAQ §7.3), then TIMEOUT.
func TestRetransmit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{DefaultMode: Mode{Kind: DRX}})
		r := req("lamp")
		r.MaxRetransmit = iptr(2)
		c := h.submit(r)
		start := time.Now()
		var times []time.Duration
		for range 400 {
			synctest.Wait()
			h.mu.Lock()
			n := len(h.sent)
			h.mu.Unlock()
			if n > len(times) {
				times = append(times, time.Since(start))
			}
			time.Sleep(time.Second)
		}
		require.Equal(t, []time.Duration{0, 10 * time.Second, 30 * time.Second}, times, "send + 2 retransmissions")
		got := h.get(c.ID)
		require.Equal(t, Timeout, got.Status)
		require.Equal(t, 3, got.IssuedTimes)
		require.Equal(t, start.Add(300*time.Second), got.ExecuteTime, "timeout counted from the first send")
	})
}

// TestEncodeFailure: an encode error makes the command FAILED with the
// codec's reason, and the next command goes out (CMD-1, FAQ §7.1).
func TestEncodeFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{DefaultMode: Mode{Kind: DRX}})
		h.sendErr = func(c Command) error {
			if c.ID == "c1" {
				return fmt.Errorf("%w: service Switch has no command SET", ErrEncode)
			}
			return nil
		}
		a := h.submit(req("lamp"))
		b := h.submit(req("lamp"))
		synctest.Wait()
		got := h.get(a.ID)
		require.Equal(t, Failed, got.Status)
		require.Contains(t, got.Reason, "no command SET")
		require.Equal(t, 0, got.IssuedTimes)
		require.Equal(t, []string{b.ID}, h.sentIDs())
		require.JSONEq(t, `{"reason":"command: encode failed: service Switch has no command SET"}`, string(got.Notification().Result.ResultDetail))
	})
}

// TestDeviceRefusal: a device that refuses a command for good (a CoAP
// 4.xx answer to every form, issue 20.1) makes it FAILED with the device's
// code in the result, at once and without retries; the next command goes
// out. A transport failure of the next one keeps it PENDING (CMD-4).
func TestDeviceRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{DefaultMode: Mode{Kind: DRX}, RetryInterval: 30 * time.Second})
		var tries atomic.Int32
		h.sendErr = func(c Command) error {
			switch c.ID {
			case "c1":
				tries.Add(1)
				return &RefusedError{Code: "4.00", Err: errors.New(`lwm2m: write /19/1/0 on "dev": peer answered 4.00`)}
			case "c2":
				return errors.New("lwm2m: no answer after the last retransmission")
			}
			return nil
		}
		a := h.submit(req("lamp"))
		b := h.submit(req("lamp"))
		synctest.Wait()
		got := h.get(a.ID)
		require.Equal(t, Failed, got.Status, "a refused command ends FAILED")
		require.Equal(t, 0, got.IssuedTimes)
		require.Contains(t, got.Reason, "4.00")
		require.JSONEq(t, `{"code":"4.00","reason":"lwm2m: write /19/1/0 on \"dev\": peer answered 4.00"}`,
			string(got.Notification().Result.ResultDetail))
		require.Equal(t, Pending, h.get(b.ID).Status, "a transport failure leaves the next command PENDING")

		time.Sleep(2 * time.Minute)
		synctest.Wait()
		require.EqualValues(t, 1, tries.Load(), "a refused command is not sent again")
		require.Equal(t, Failed, h.get(a.ID).Status)
	})
}

// TestTransportFailure: a transport error keeps the command at the head;
// a DRX device is retried after RetryInterval, a PSM device at its next
// uplink (CMD-4).
func TestTransportFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{RetryInterval: 30 * time.Second})
		h.mode("lamp", Mode{Kind: DRX})
		var fails atomic.Int32
		fails.Store(2)
		h.sendErr = func(c Command) error {
			if fails.Add(-1) >= 0 {
				return errors.New("no route to device")
			}
			return nil
		}
		start := time.Now()
		a := h.submit(req("lamp"))
		synctest.Wait()
		require.Equal(t, Pending, h.status(a.ID))
		require.Equal(t, start.Add(30*time.Second), h.get(a.ID).NextTry)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		require.Equal(t, Pending, h.status(a.ID), "second try failed too")
		time.Sleep(30 * time.Second)
		synctest.Wait()
		got := h.get(a.ID)
		require.Equal(t, Sent, got.Status, "third try")
		require.Equal(t, start.Add(60*time.Second), got.PlatformIssuedTime)
		require.Equal(t, 1, got.IssuedTimes)

		fails.Store(1)
		p := h.submit(req("meter"))
		h.wake("meter")
		require.Equal(t, Pending, h.status(p.ID))
		time.Sleep(time.Hour)
		synctest.Wait()
		require.Equal(t, Pending, h.status(p.ID), "PSM: waits for the next uplink")
		h.wake("meter")
		require.Equal(t, Sent, h.status(p.ID))
	})
}

// TestImmediate: expireTime 0 goes out now or fails at once with the reason
// (CMD-2, FAQ §7.2).
func TestImmediate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		ctx := context.Background()
		r := req("meter")
		r.ExpireTime = i64(0)
		c, err := h.e.Submit(ctx, r)
		require.ErrorIs(t, err, ErrUnreachable, "PSM device that never sent uplink")
		require.Equal(t, Failed, c.Status)
		require.Contains(t, c.Reason, "PSM mode and no uplink seen yet")
		require.Equal(t, Failed, h.status(c.ID), "stored FAILED")
		require.Equal(t, []string{"FAILED"}, h.history(c.ID))

		h.wake("meter")
		c = h.submit(r)
		synctest.Wait()
		require.Equal(t, Sent, h.status(c.ID), "right after an uplink")

		c2, err := h.e.Submit(ctx, r)
		require.ErrorIs(t, err, ErrUnreachable)
		require.Contains(t, c2.Reason, "1 earlier commands open")

		time.Sleep(time.Hour)
		c3, err := h.e.Submit(ctx, r)
		require.ErrorIs(t, err, ErrUnreachable)
		require.Contains(t, c3.Reason, "last uplink at")

		h.mode("lamp", Mode{Kind: DRX})
		h.sendErr = func(Command) error { return errors.New("connection refused") }
		r.DeviceID = "lamp"
		c4 := h.submit(r)
		synctest.Wait()
		got := h.get(c4.ID)
		require.Equal(t, Failed, got.Status, "transport failure of an immediate command")
		require.Contains(t, got.Reason, "connection refused")
	})
}

// TestCancel: one PENDING command, or all of a device; a command that left
// is refused with its state (CMD-7).
func TestCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		ctx := context.Background()
		a := h.submit(req("meter"))
		b := h.submit(req("meter"))
		c := h.submit(req("meter"))
		d := h.submit(req("meter"))
		got, err := h.e.Cancel(ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, Canceled, got.Status)
		require.Equal(t, []string{"PENDING", "CANCELED"}, h.history(b.ID))

		h.wake("meter")
		_, err = h.e.Cancel(ctx, a.ID)
		var se *StateError
		require.ErrorAs(t, err, &se)
		require.ErrorIs(t, err, ErrNotPending)
		require.Equal(t, Sent, se.Status, "refusal carries the current state")
		_, err = h.e.Cancel(ctx, b.ID)
		require.ErrorAs(t, err, &se)
		require.Equal(t, Canceled, se.Status)

		all, err := h.e.CancelDevice(ctx, "meter")
		require.NoError(t, err)
		require.Equal(t, []string{c.ID, d.ID}, []string{all[0].ID, all[1].ID})
		require.Len(t, all, 2, "only PENDING ones")
		require.Equal(t, Sent, h.status(a.ID), "a SENT command is left alone")

		_, err = h.e.Cancel(ctx, "nope")
		require.ErrorIs(t, err, ErrNotFound)
	})
}

// TestQueueLimit: Config.QueueLimit open commands per device, then
// ErrQueueFull (CMD-10).
func TestQueueLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{QueueLimit: 3})
		ctx := context.Background()
		a := h.submit(req("meter"))
		h.submit(req("meter"))
		h.submit(req("meter"))
		_, err := h.e.Submit(ctx, req("meter"))
		var qe *QueueFullError
		require.ErrorAs(t, err, &qe)
		require.ErrorIs(t, err, ErrQueueFull)
		require.Equal(t, QueueFullError{DeviceID: "meter", Limit: 3}, *qe)
		h.submit(req("other")) // other devices are not affected
		_, err = h.e.Cancel(ctx, a.ID)
		require.NoError(t, err)
		h.submit(req("meter"))

		h2 := newHarness(t, Config{})
		for range 100 {
			h2.submit(req("m"))
		}
		_, err = h2.e.Submit(ctx, req("m"))
		require.ErrorIs(t, err, ErrQueueFull, "default limit 100")
	})
}

// TestSupersede: a newer command with the same key replaces the older
// PENDING one (CMD-10).
func TestSupersede(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{QueueLimit: 2})
		r := req("meter")
		r.SupersedeKey = "valve"
		a := h.submit(r)
		other := h.submit(req("meter"))
		b := h.submit(r) // queue limit 2 is not hit: a is replaced
		got := h.get(a.ID)
		require.Equal(t, Canceled, got.Status)
		require.Contains(t, got.Reason, "superseded")
		require.Equal(t, Pending, h.status(other.ID))
		require.Equal(t, Pending, h.status(b.ID))

		h.wake("meter") // b is not the head; other is sent
		require.Equal(t, []string{other.ID}, h.sentIDs())
		require.NoError(t, h.e.Responded(context.Background(), "meter", Response{}))
		synctest.Wait()
		require.Equal(t, []string{other.ID, b.ID}, h.sentIDs())
		c := h.submit(r)
		require.Equal(t, Sent, h.status(b.ID), "a SENT command is not superseded")
		require.Equal(t, Pending, h.status(c.ID))
	})
}

// TestResponded: matched by mid or by being the only outstanding command;
// errcode ≠ 0 is FAILED; a result before the ACK implies it; an unmatched
// mid is logged and dropped (CMD-5).
func TestResponded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		ctx := context.Background()
		a := h.submit(req("meter"))
		h.wake("meter")
		require.NoError(t, h.e.Responded(ctx, "meter", Response{Mid: a.Mid() + 7, Body: json.RawMessage(`{"x":1}`)}))
		require.Equal(t, Sent, h.status(a.ID), "unmatched mid changes nothing")
		require.Contains(t, h.logs.all(), "matches no outstanding command")
		require.Contains(t, h.logs.all(), fmt.Sprintf("mid=%d", a.Mid()+7))

		require.NoError(t, h.e.Responded(ctx, "meter", Response{Mid: a.Mid(), ErrCode: 2, Body: json.RawMessage(`{"errcode":2}`)}))
		got := h.get(a.ID)
		require.Equal(t, Failed, got.Status)
		require.Equal(t, 2, got.ErrCode)
		require.Equal(t, []string{"PENDING", "SENT", "DELIVERED", "FAILED"}, h.history(a.ID), "result before ACK implies DELIVERED")
		require.JSONEq(t, `{"deviceId":"meter","commandId":"`+a.ID+`","result":{"resultCode":"FAILED","resultDetail":{"errcode":2}}}`,
			mustJSON(t, got.Notification()))

		b := h.submit(req("meter"))
		synctest.Wait()
		require.NoError(t, h.e.Acked(ctx, "meter", b.ID))
		require.NoError(t, h.e.Acked(ctx, "meter", b.ID), "duplicate ACK is harmless")
		require.NoError(t, h.e.Responded(ctx, "meter", Response{Body: json.RawMessage(`{"ok":true}`)}))
		got = h.get(b.ID)
		require.Equal(t, Successful, got.Status, "no mid: the only outstanding command")
		require.JSONEq(t, `{"ok":true}`, string(got.Result))

		require.NoError(t, h.e.Responded(ctx, "meter", Response{}))
		require.Contains(t, h.logs.all(), "candidates=0", "nothing outstanding: dropped")
		err := h.e.Acked(ctx, "other", b.ID)
		require.ErrorIs(t, err, ErrNotFound, "ACK from the wrong device")
	})
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// TestBatch: one command to a device list; counts and progress per mille,
// kept by the store (CMD-8).
func TestBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{DefaultMode: Mode{Kind: DRX}})
		ctx := context.Background()
		h.mode("sleeper", Mode{Kind: PSM})
		h.mu.Lock()
		h.reply = func(c Command) {
			switch c.DeviceID {
			case "ok1", "ok2":
				h.e.Responded(ctx, c.DeviceID, Response{Mid: c.Mid()})
			case "bad":
				h.e.Responded(ctx, c.DeviceID, Response{Mid: c.Mid(), ErrCode: 1})
			}
		}
		h.mu.Unlock()
		tmpl := req("")
		tmpl.ExpireTime = i64(600)
		_, err := h.e.SubmitBatch(ctx, BatchRequest{Name: "x", DeviceIDs: []string{"a"}, Command: Request{Command: tmpl.Command, ExpireTime: i64(0)}})
		require.ErrorIs(t, err, ErrInvalid, "batch commands are cached: expireTime 0 refused")

		task, err := h.e.SubmitBatch(ctx, BatchRequest{Name: "night", DeviceIDs: []string{"ok1", "ok2", "bad", "mute", "sleeper", "ok1", "bad\x00id"}, Command: tmpl})
		require.NoError(t, err)
		require.Equal(t, 6, task.Total, "duplicates counted once")
		synctest.Wait()
		task, err = h.e.Task(ctx, task.ID)
		require.NoError(t, err)
		require.Equal(t, 2, task.Successful)
		require.Equal(t, 2, task.Failed)
		require.Equal(t, 666, task.Progress())
		require.Equal(t, "Running", task.State())
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		task, err = h.e.Task(ctx, task.ID)
		require.NoError(t, err)
		require.Equal(t, 1, task.Timeout, "mute never answered")
		require.Equal(t, 1, task.Expired, "sleeper never woke within 600 s")
		require.Equal(t, 1000, task.Progress())
		require.Equal(t, "Complete", task.State())
		require.JSONEq(t, `{"taskId":"`+task.ID+`","taskName":"night","appId":"","status":"Complete","progress":1000,
			"totalCnt":6,"successCnt":2,"failCnt":2,"timeoutCnt":1,"expiredCnt":1,"cancelCnt":0,"completeCnt":6,
			"successRate":333,"createTime":"20000101T000000Z"}`, mustJSON(t, task))
	})
}

// TestCallbackCheck: the platform's host/port check is applied and its
// error kept (CMD-6, FAQ §4.5).
func TestCallbackCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var gotApp, gotURL string
		h := newHarness(t, Config{CheckCallback: func(app, u string) error {
			gotApp, gotURL = app, u
			if !strings.HasPrefix(u, "https://app.example:8443/") {
				return fmt.Errorf("%w: subscriptions use app.example:8443", ErrCallbackConflict)
			}
			return nil
		}})
		r := req("meter")
		r.AppID, r.CallbackURL = "app1", "https://evil.example/cb"
		_, err := h.e.Submit(context.Background(), r)
		require.ErrorIs(t, err, ErrCallbackConflict)
		var fe *FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "callbackUrl", fe.Field)
		require.Equal(t, "app1", gotApp)
		require.Equal(t, r.CallbackURL, gotURL)
		r.CallbackURL = "https://app.example:8443/cmd"
		h.submit(r)
	})
}

// TestCloseAndErrors: Close is idempotent and everything after it fails
// with ErrClosed; New refuses nonsense.
func TestCloseAndErrors(t *testing.T) {
	ctx := context.Background()
	synctest.Test(t, func(t *testing.T) {
		e, err := New(NewMemStore(), SenderFunc(func(context.Context, Command) error { return nil }), nil, Config{})
		require.NoError(t, err)
		done := make(chan error)
		go func() { done <- e.Run(ctx) }()
		synctest.Wait() // Run is running and idle
		require.NoError(t, e.Close())
		require.NoError(t, <-done)
		require.NoError(t, e.Close())
		_, err = e.Submit(ctx, req("x"))
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorIs(t, e.DeviceWoke(ctx, "x"), ErrClosed)
		require.ErrorIs(t, e.Run(ctx), ErrClosed)
	})

	_, err := New(nil, nil, nil, Config{})
	require.Error(t, err)
	_, err = New(NewMemStore(), SenderFunc(nil), nil, Config{QueueLimit: -1})
	require.Error(t, err)
	_, err = New(NewMemStore(), SenderFunc(nil), nil, Config{DefaultMode: Mode{Kind: 9}})
	require.ErrorIs(t, err, ErrBadMode)
	e2, _ := New(NewMemStore(), SenderFunc(nil), nil, Config{})
	require.ErrorIs(t, e2.SetMode(ctx, "d", Mode{ActiveTime: -1}), ErrBadMode)
}

// TestRunTwice: a second Run returns at once with an error wrapping
// ErrClosed that says "Run called twice"; the first Run goes on until
// Close, which may come again. Close before Run makes Run return ErrClosed.
func TestRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, err := New(NewMemStore(), SenderFunc(func(context.Context, Command) error { return nil }), nil, Config{})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- e.Run(t.Context()) }()
		synctest.Wait()
		err = e.Run(t.Context())
		require.ErrorIs(t, err, ErrClosed)
		require.EqualError(t, err, "command: engine closed: command.Engine: Run called twice")
		select {
		case err := <-done:
			t.Fatalf("the first Run returned %v", err)
		default:
		}
		require.NoError(t, e.Close())
		require.NoError(t, <-done)
		require.NoError(t, e.Close())
		require.Equal(t, ErrClosed, e.Run(t.Context()))

		early, err := New(NewMemStore(), SenderFunc(nil), nil, Config{})
		require.NoError(t, err)
		require.NoError(t, early.Close())
		require.Equal(t, ErrClosed, early.Run(t.Context()))
	})
}

// TestRetransmitOnlyWhileAwake: a PSM device is retransmitted to only
// within its active time; the skipped retransmissions wait for the next
// wake-up's re-send (CMD-4).
func TestRetransmitOnlyWhileAwake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		r := req("meter")
		r.MaxRetransmit = iptr(3)
		c := h.submit(r)
		h.wake("meter")
		time.Sleep(time.Minute)
		synctest.Wait()
		require.Equal(t, []string{c.ID, c.ID}, h.sentIDs(), "send at 0 s, retransmission at 10 s; 30 s and 70 s fall after T3324 (20 s)")
		got := h.get(c.ID)
		require.Equal(t, 2, got.IssuedTimes)
		require.True(t, got.NextTry.IsZero(), "no retransmission pending while asleep")
		h.wake("meter")
		require.Equal(t, []string{c.ID, c.ID, c.ID}, h.sentIDs(), "re-sent at the next wake-up")
	})
}

// TestRetention: with Config.Retention set, Run deletes commands that
// ended longer ago, hourly; open and recent ones stay.
func TestRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{Retention: 24 * time.Hour, DefaultMode: Mode{Kind: DRX}})
		ctx := context.Background()
		old := h.submit(req("lamp"))
		synctest.Wait()
		_, err := h.e.Cancel(ctx, old.ID)
		require.ErrorIs(t, err, ErrNotPending, "DRX: already sent")
		synctest.Wait()
		require.NoError(t, h.e.Responded(ctx, "lamp", Response{}))
		require.Equal(t, Successful, h.status(old.ID))
		time.Sleep(24*time.Hour + 30*time.Minute)
		h.mode("meter", Mode{Kind: PSM})
		recent := h.submit(req("meter")) // PSM: stays PENDING
		time.Sleep(time.Hour)
		synctest.Wait()
		_, err = h.e.Get(ctx, old.ID)
		require.ErrorIs(t, err, ErrNotFound, "ended 25 h ago: pruned")
		require.Equal(t, Pending, h.status(recent.ID))
		next := h.submit(req("lamp"))
		require.Equal(t, old.Seq+1, next.Seq, "sequence numbers are never reused")
	})
}

// TestSupersedeHeadPromotesNext: when the superseded command was the head
// of an eDRX device's queue waiting for its paging window, the command
// behind it becomes the head and goes out in that window (CMD-10, CMD-4);
// it must not wait for an uplink or expire.
func TestSupersedeHeadPromotesNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		h.mode("gas", Mode{Kind: EDRX, ActiveTime: 5 * time.Second, Cycle: 100 * time.Second, PagingWindow: 10 * time.Second})
		start := time.Now()
		h.wake("gas")
		time.Sleep(20 * time.Second)
		keyed := req("gas")
		keyed.SupersedeKey = "valve"
		a := h.submit(keyed)
		b := h.submit(req("gas"))
		c := h.submit(keyed) // cancels a, the head; b is the head now
		synctest.Wait()
		require.Equal(t, Canceled, h.status(a.ID))
		require.Equal(t, start.Add(100*time.Second), h.get(b.ID).NextTry, "the new head waits for the next paging window")
		time.Sleep(80 * time.Second)
		synctest.Wait()
		require.Equal(t, []string{b.ID}, h.sentIDs(), "sent in the paging window")
		require.Equal(t, Pending, h.status(c.ID), "behind b")
	})
}

// brokenStore refuses every write once broken is set: what the engine sees
// when the process dies, or the disk fails, right after a Send.
type brokenStore struct {
	Store
	broken atomic.Bool
}

func (b *brokenStore) Write(ctx context.Context, w Write) error {
	if b.broken.Load() {
		return errors.New("disk gone")
	}
	return b.Store.Write(ctx, w)
}

// TestSendAttemptSurvivesCrash (CMD-9, CMD-4): the attempt is stored before
// Sender.Send; when the outcome never reaches the store, the next engine
// on that store takes the command as SENT at the attempt's time. It does
// not send it again at start (only a wake-up re-sends, CMD-4), and it
// times out 300 s after the attempt.
func TestSendAttemptSurvivesCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mem := NewMemStore()
		st := &brokenStore{Store: mem}
		var sends atomic.Int32
		snd := SenderFunc(func(context.Context, Command) error {
			sends.Add(1)
			st.broken.Store(true) // the process "dies" right after the send
			return nil
		})
		cfg := Config{DefaultMode: Mode{Kind: DRX}, NewID: func() string { return "c1" }}
		e1, err := New(st, snd, nil, cfg)
		require.NoError(t, err)
		go e1.Run(ctx)
		start := time.Now()
		_, err = e1.Submit(ctx, req("lamp"))
		require.NoError(t, err)
		synctest.Wait()
		require.NoError(t, e1.Close())
		require.Equal(t, int32(1), sends.Load())
		got, err := mem.Get(ctx, "c1")
		require.NoError(t, err)
		require.Equal(t, Pending, got.Status, "the outcome was never stored")
		require.Equal(t, start, got.SendAttempt, "the attempt was")

		time.Sleep(time.Minute) // down for a while
		var mu sync.Mutex
		var heard []string
		e2, err := New(mem, snd, ListenerFunc(func(c Command) {
			mu.Lock()
			defer mu.Unlock()
			heard = append(heard, c.Status.String())
		}), cfg)
		require.NoError(t, err)
		done := make(chan struct{})
		go func() { defer close(done); e2.Run(ctx) }()
		defer func() { e2.Close(); <-done }()
		synctest.Wait()
		got, err = e2.Get(ctx, "c1")
		require.NoError(t, err)
		require.Equal(t, Sent, got.Status, "taken as SENT after the restart")
		require.Equal(t, start, got.PlatformIssuedTime)
		require.Equal(t, 1, got.IssuedTimes)
		require.True(t, got.SendAttempt.IsZero())
		require.Equal(t, int32(1), sends.Load(), "not sent again at start")
		mu.Lock()
		require.Equal(t, []string{"SENT"}, heard)
		mu.Unlock()

		time.Sleep(time.Until(start.Add(300 * time.Second)))
		synctest.Wait()
		require.Equal(t, Timeout, e2.mustStatus(t, "c1"), "timeout counted from the attempt")
	})
}

func (e *Engine) mustStatus(t *testing.T, id string) Status {
	t.Helper()
	c, err := e.Get(context.Background(), id)
	require.NoError(t, err)
	return c.Status
}

// TestResendStopsAtExpiry: an unACKed command is re-sent at wake-ups only
// until creationTime + expireTime (CMD-4: "until the device ACKs it or it
// expires", FAQ §3.24); then it waits for its timeout.
func TestResendStopsAtExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		start := time.Now()
		r := req("meter")
		r.ExpireTime = i64(60)
		c := h.submit(r)
		h.wake("meter") // sent at 0 s
		time.Sleep(30 * time.Second)
		h.wake("meter") // re-sent at 30 s, before expiry at 60 s
		require.Equal(t, []string{c.ID, c.ID}, h.sentIDs())
		time.Sleep(60 * time.Second)
		h.wake("meter") // 90 s: expired, not re-sent
		require.Equal(t, []string{c.ID, c.ID}, h.sentIDs(), "no re-send after expireTime")
		time.Sleep(time.Until(start.Add(330 * time.Second)))
		synctest.Wait()
		got := h.get(c.ID)
		require.Equal(t, Timeout, got.Status, "times out 300 s after the last re-send")
		require.Equal(t, start.Add(330*time.Second), got.ExecuteTime)
	})
}

// TestCloseDuringSend (CMD-9): a Send cut short by Close is a transport
// failure whose outcome is still stored, so the command stays an untried
// PENDING head after a restart, not a possibly-sent one; a Send that
// succeeded as Close came is stored SENT.
func TestCloseDuringSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := NewMemStore()
		cfg := Config{DefaultMode: Mode{Kind: DRX}}
		var n atomic.Int32
		cfg.NewID = func() string { return fmt.Sprintf("c%d", n.Add(1)) }
		e, err := New(st, SenderFunc(func(ctx context.Context, c Command) error {
			<-ctx.Done() // the device never answers the transport
			if c.DeviceID == "ok" {
				return nil // it left just as Close came
			}
			return ctx.Err()
		}), nil, cfg)
		require.NoError(t, err)
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		a, err := e.Submit(ctx, req("lamp"))
		require.NoError(t, err)
		b, err := e.Submit(ctx, req("ok"))
		require.NoError(t, err)
		synctest.Wait() // both Sends are blocked
		require.NoError(t, e.Close())
		<-done
		got, err := st.Get(ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, Pending, got.Status)
		require.True(t, got.SendAttempt.IsZero(), "the failed attempt's outcome is stored")
		require.False(t, got.NextTry.IsZero(), "and its next try")
		got, err = st.Get(ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, Sent, got.Status, "the successful send's outcome is stored")
	})
}

// TestEncodeFailuresInARow: on one wake-up, the head fails to encode, then
// the next, then the next; each is FAILED and the fourth goes out, in
// order (CMD-1, CMD-4). The engine reads only the front of the queue
// (Store.Front), so it must read again after each failure.
func TestEncodeFailuresInARow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		var tried []string
		h.sendErr = func(c Command) error {
			tried = append(tried, c.ID)
			if c.ID != "c4" {
				return fmt.Errorf("%w: no codec for %s", ErrEncode, c.ID)
			}
			return nil
		}
		var ids []string
		for range 5 {
			ids = append(ids, h.submit(req("meter")).ID)
		}
		h.wake("meter")
		require.Equal(t, []string{"c1", "c2", "c3", "c4"}, tried, "one pass tries the queue in order")
		for _, id := range ids[:3] {
			got := h.get(id)
			require.Equal(t, Failed, got.Status, id)
			require.Contains(t, got.Reason, "no codec for "+id)
		}
		require.Equal(t, Sent, h.status(ids[3]), "the first command that encodes goes out")
		require.Equal(t, Pending, h.status(ids[4]), "and the next waits for it (CMD-4)")
	})
}

// TestExpiryBehindTheHead: a command deep in the queue expires on time
// while the head is outstanding, and the head is left alone (CMD-2,
// CMD-4). The engine reads only the head, the next command and the due
// ones, so this checks that the due ones are read.
func TestExpiryBehindTheHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{DefaultMode: Mode{Kind: DRX}})
		start := time.Now()
		a := h.submit(req("lamp")) // sent at once, never ACKed
		b := h.submit(req("lamp"))
		r := req("lamp")
		r.ExpireTime = i64(60)
		c := h.submit(r) // third in the queue, expires at 60 s
		d := h.submit(req("lamp"))
		synctest.Wait()
		require.Equal(t, Sent, h.status(a.ID))
		time.Sleep(60*time.Second - time.Millisecond)
		synctest.Wait()
		require.Equal(t, Pending, h.status(c.ID), "at 60 s - 1 ms")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		got := h.get(c.ID)
		require.Equal(t, Expired, got.Status, "at 60 s, behind a SENT head")
		require.Equal(t, start.Add(60*time.Second), got.ExecuteTime)
		require.Equal(t, Sent, h.status(a.ID), "the head is untouched")
		require.Equal(t, Pending, h.status(b.ID))
		require.Equal(t, Pending, h.status(d.ID))
		require.Equal(t, []string{a.ID}, h.sentIDs())
		require.NoError(t, h.e.Responded(context.Background(), "lamp", Response{Mid: a.Mid()}))
		synctest.Wait()
		require.Equal(t, []string{a.ID, b.ID}, h.sentIDs(), "the queue moves on past the expired command")
		require.NoError(t, h.e.Responded(context.Background(), "lamp", Response{Mid: b.Mid()}))
		synctest.Wait()
		require.Equal(t, []string{a.ID, b.ID, d.ID}, h.sentIDs())
	})
}

// queueCounter is a MemStore that counts full-queue reads.
type queueCounter struct {
	*MemStore
	n atomic.Int32
}

func (q *queueCounter) Queue(ctx context.Context, deviceID string) ([]Command, error) {
	q.n.Add(1)
	return q.MemStore.Queue(ctx, deviceID)
}

// TestDrainReadsOnlyTheFront: draining ten commands on one wake-up
// (CMD-4) reads the device's queue through Store.Front only, never the
// whole queue with Queue: with 10 commands of a million pending, copying
// the queue at every step was most of the wake-to-send time (issue 7).
func TestDrainReadsOnlyTheFront(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := &queueCounter{MemStore: NewMemStore()}
		sent := make(chan Command, 16)
		e, err := New(st, SenderFunc(func(_ context.Context, c Command) error { sent <- c; return nil }), nil, Config{})
		require.NoError(t, err)
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		defer func() { e.Close(); <-done }()
		var want []string
		for range 10 {
			c, err := e.Submit(ctx, req("meter"))
			require.NoError(t, err)
			want = append(want, c.ID)
		}
		st.n.Store(0) // Submit reads the queue to count it and to supersede
		require.NoError(t, e.DeviceWoke(ctx, "meter"))
		var got []string
		for range 10 {
			synctest.Wait()
			c := <-sent
			got = append(got, c.ID)
			require.NoError(t, e.Acked(ctx, "meter", c.ID))
			require.NoError(t, e.Responded(ctx, "meter", Response{Mid: c.Mid()}))
		}
		require.Equal(t, want, got, "all ten, in order")
		require.Zero(t, st.n.Load(), "Queue calls while draining")
	})
}
