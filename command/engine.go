package command

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/doze-io/doze/internal/lease"
	"github.com/doze-io/doze/internal/lifecycle"
)

// Config tunes an Engine. The zero value is ready to use.
type Config struct {
	// DefaultMode is the mode of devices for which SetMode was never
	// called. The zero Mode is PSM with the default timers (FAQ §3.26).
	DefaultMode Mode
	// DefaultExpireTime is the expireTime, in seconds, of a request that
	// gives none. 0 means 172800 (48 h, FAQ §4.7).
	DefaultExpireTime int64
	// MaxExpireTime bounds a request's expireTime, in seconds. 0 means
	// 2592000 (30 days).
	MaxExpireTime int64
	// QueueLimit is how many open commands (PENDING, SENT, DELIVERED) a
	// device may have; Submit fails with ErrQueueFull beyond it (CMD-10).
	// 0 means 100.
	QueueLimit int
	// RetryInterval is how long a DRX or eDRX device's head command waits
	// after a transport failure before the next try (a PSM device waits for
	// its next uplink, or this long while still awake). 0 means 30 s.
	RetryInterval time.Duration
	// SendTimeout bounds one Sender.Send call. 0 means 60 s. A
	// Transmitter's send is bounded by the command's deadline instead.
	SendTimeout time.Duration
	// Transmissions is how many Transmitter sends may wait for their ACK
	// at once, one per device at most; a worker with a further one waits
	// for a slot. 0 means 1024.
	Transmissions int
	// Workers is how many goroutines Run uses to serve device queues. A
	// Transmitter's send runs on a goroutine of its own (see
	// Transmissions), so a worker waits for the store and the device only
	// with a plain Sender. 0 means 8.
	Workers int
	// Retention is how long ended commands are kept once they ended; Run
	// deletes older ones every hour when the Store implements Pruner.
	// 0 means for ever.
	Retention time.Duration
	// CheckCallback, when not nil, is called by Submit with the request's
	// appId and callbackUrl (already known to be a well-formed http(s)
	// URL). The platform uses it to compare host and port with the app's
	// subscriptions (CMD-6) and returns an error wrapping
	// ErrCallbackConflict when they differ; Submit wraps it in a
	// *FieldError for callbackUrl.
	CheckCallback func(appID, callbackURL string) error
	// Node names this engine among several that share one Store (a
	// platform node id, stable across restarts). When set, the Store must
	// implement Claimer, and the timers act only on the due commands this
	// engine claimed: a command that times out, expires, or whose retry or
	// retransmission is due is leased to one node (for ClaimLease) and
	// ended or tried by that node only; another node's service of the
	// device (an uplink there) leaves a command past its time to its
	// holder. The timers look for due commands at least every quarter
	// lease (other nodes' writes do not wake them), so a dead node's due
	// commands are taken by another node within about ClaimLease and a
	// quarter after they fell due. "" means one node: the timers act on every command.
	Node string
	// Sessions, when set, says which devices' sessions this engine's
	// node has (a cluster whose nodes share the Store, see Sessions).
	// The engine then sends and re-sends only to those; for the others
	// it hands the send to the node that has the session
	// (Sessions.Elsewhere) and an immediate command (expireTime 0) for
	// one of them fails as unreachable. nil means every session is here.
	Sessions Sessions
	// ClaimLease is how long a claim on a due command lasts. The engine
	// ends a claimed command only while at least half the lease is left,
	// so the write lands before the lease ends; claims are renewed on
	// every pass of the timers while the command is still due. 0 means 1
	// minute.
	ClaimLease time.Duration
	// NewID returns a new command or task id. nil means 32 random hex
	// digits.
	NewID func() string
	// Logger receives what the engine cannot return: unmatched responses,
	// send failures, store errors in timers. nil discards.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.DefaultExpireTime == 0 {
		c.DefaultExpireTime = 172800
	}
	if c.MaxExpireTime == 0 {
		c.MaxExpireTime = 2592000
	}
	if c.QueueLimit == 0 {
		c.QueueLimit = 100
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = 30 * time.Second
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 60 * time.Second
	}
	if c.Workers == 0 {
		c.Workers = 8
	}
	if c.Transmissions == 0 {
		c.Transmissions = 1024
	}
	if c.ClaimLease == 0 {
		c.ClaimLease = defaultClaimLease
	}
	if c.NewID == nil {
		c.NewID = randomID
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Engine runs the downlink commands of every device: it validates and
// stores new commands, sends each device's queue one command at a time when
// the device's power-saving mode lets it be reached, follows ACKs and
// results, and ends commands that expire or time out (docs/rules.md).
//
// Methods are safe for concurrent use. Nothing is sent and no timer runs
// until Run is called.
type Engine struct {
	st  Store
	snd Sender
	tr  Transmitter // snd, when it is one
	lis Listener
	cfg Config
	log *slog.Logger

	devices sync.Map // device id → *devState
	sched   sched
	kick    chan struct{}
	slots   chan struct{}  // Transmitter sends in flight (Config.Transmissions)
	flights sync.WaitGroup // their goroutines; Run waits for them

	claimer Claimer   // the Store, with Config.Node; else nil
	claims  lease.Set // the leases this engine took (Config.Node)

	life lifecycle.Guard // Run and Close (see the package doc)
}

// New returns an Engine on st that sends with s and tells l (which may be
// nil) of every state change. It starts nothing.
func New(st Store, s Sender, l Listener, cfg Config) (*Engine, error) {
	if st == nil || s == nil {
		return nil, errors.New("command: New needs a Store and a Sender")
	}
	if err := cfg.DefaultMode.Validate(); err != nil {
		return nil, fmt.Errorf("command: Config.DefaultMode: %w", err)
	}
	if cfg.QueueLimit < 0 || cfg.DefaultExpireTime < 0 || cfg.MaxExpireTime < 0 || cfg.Workers < 0 || cfg.Transmissions < 0 ||
		cfg.RetryInterval < 0 || cfg.SendTimeout < 0 || cfg.Retention < 0 {
		return nil, errors.New("command: Config has a negative setting")
	}
	claimer, err := cfg.checkClaim(st)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.DefaultExpireTime > cfg.MaxExpireTime {
		return nil, fmt.Errorf("command: Config.DefaultExpireTime %d exceeds MaxExpireTime %d", cfg.DefaultExpireTime, cfg.MaxExpireTime)
	}
	e := &Engine{st: st, snd: s, lis: l, cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1),
		slots: make(chan struct{}, cfg.Transmissions), claimer: claimer}
	e.tr, _ = s.(Transmitter)
	e.sched.init()
	return e, nil
}

func (e *Engine) isClosed() bool { return e.life.Closed() }

// openDevice is device for the public methods: ErrClosed after Close.
func (e *Engine) openDevice(ctx context.Context, id string) (*devState, error) {
	if e.isClosed() {
		return nil, ErrClosed
	}
	return e.device(ctx, id)
}

// commit stores moved (commands that changed state) and updated (commands
// whose timers changed) in one write, raising the counts of batch tasks,
// and queues each move for the Listener, which hears it once the device's
// lock is released (release). Nothing is queued when the write fails.
// d's lock is held.
func (e *Engine) commit(ctx context.Context, d *devState, moved, updated []Command) error {
	switch {
	case len(updated) == 0:
		return e.commitAll(ctx, d, moved, len(moved))
	case len(moved) == 0:
		return e.commitAll(ctx, d, updated, 0)
	}
	return e.commitAll(ctx, d, append(slices.Clip(moved), updated...), len(moved)) // a copy: moved is the caller's
}

// commitAll is commit of cs[:nMoved] (moved) and cs[nMoved:] (updated),
// for callers that build the one slice themselves.
func (e *Engine) commitAll(ctx context.Context, d *devState, cs []Command, nMoved int) error {
	if len(cs) == 0 {
		return nil
	}
	moved := cs[:nMoved]
	w := Write{Commands: cs}
	for _, c := range moved {
		if c.TaskID != "" && c.Status.Final() {
			w.Counts = append(w.Counts, Count{TaskID: c.TaskID, Status: c.Status})
		}
	}
	if err := e.st.Write(ctx, w); err != nil {
		return fmt.Errorf("command: storing %d commands: %w", len(w.Commands), err)
	}
	for _, c := range cs {
		if c.Status.Open() {
			d.empty = false
		}
	}
	if e.lis != nil && nMoved > 0 {
		d.nmu.Lock()
		d.heard = append(d.heard, moved...)
		d.nmu.Unlock()
	}
	select {
	case e.kick <- struct{}{}:
	default:
	}
	return nil
}

// Submit validates r (CMD-2), stores the new command PENDING at the tail of
// its device's queue and returns it. A PENDING command of the device with
// the same SupersedeKey is CANCELED in the same write (CMD-10). Submit fails
// with ErrQueueFull when the device already has Config.QueueLimit open
// commands.
//
// An immediate command (expireTime 0) that cannot go out now, because the
// device is not reachable in its mode or has earlier commands open, is
// stored FAILED with the reason and returned together with an error
// wrapping ErrUnreachable.
func (e *Engine) Submit(ctx context.Context, r Request) (Command, error) {
	return e.submit(ctx, r, "")
}

func (e *Engine) submit(ctx context.Context, r Request, taskID string) (Command, error) {
	if e.isClosed() {
		return Command{}, ErrClosed
	}
	if err := r.validate(e.cfg.MaxExpireTime); err != nil {
		return Command{}, err
	}
	if r.CallbackURL != "" && e.cfg.CheckCallback != nil {
		if err := e.cfg.CheckCallback(r.AppID, r.CallbackURL); err != nil {
			return Command{}, &FieldError{Field: "callbackUrl", Value: short(r.CallbackURL), Rule: "acceptable to the platform", Err: err}
		}
	}
	expire := e.cfg.DefaultExpireTime
	if r.ExpireTime != nil {
		expire = *r.ExpireTime
	}
	maxRe := 0
	if r.MaxRetransmit != nil {
		maxRe = *r.MaxRetransmit
	}
	d, err := e.device(ctx, r.DeviceID)
	if err != nil {
		return Command{}, err
	}
	defer e.release(d)
	q, err := e.st.Queue(ctx, r.DeviceID)
	if err != nil {
		return Command{}, err
	}
	now := time.Now()
	var superseded []Command
	open := 0
	for _, c := range q {
		if r.SupersedeKey != "" && c.Key == r.SupersedeKey && c.Status == Pending {
			c.Reason = "superseded by a newer command with the same key"
			if err := c.Move(Canceled, now); err != nil {
				return Command{}, err
			}
			superseded = append(superseded, c)
			continue
		}
		open++
	}
	if open >= e.cfg.QueueLimit {
		return Command{}, &QueueFullError{DeviceID: r.DeviceID, Limit: e.cfg.QueueLimit}
	}
	c := Command{
		ID: e.cfg.NewID(), AppID: r.AppID, DeviceID: r.DeviceID, Body: r.Command,
		CallbackURL: r.CallbackURL, ExpireTime: expire, MaxRetransmit: maxRe, Status: Pending,
		CreationTime: now, Seq: d.lastSeq + 1, Key: r.SupersedeKey, TaskID: taskID,
	}
	var failErr error
	if expire == 0 {
		switch {
		case open > 0:
			c.Reason = fmt.Sprintf("device %s has %d earlier commands open; an immediate command cannot wait (CMD-2)", r.DeviceID, open)
		case !d.mode.Reachable(now, d.lastUplink):
			c.Reason = unreachableReason(d.mode, d.lastUplink)
		case !e.here(r.DeviceID):
			c.Reason = "device not reachable: its session is not on this node"
		}
		if c.Reason != "" {
			if err := c.Move(Failed, now); err != nil {
				return Command{}, err
			}
			failErr = fmt.Errorf("%w: %s", ErrUnreachable, c.Reason)
		}
	}
	if c.Status == Pending && open == 0 {
		c.NextTry = d.mode.NextTry(now, d.lastUplink)
	}
	var updated []Command
	if len(superseded) > 0 && open > 0 {
		// A superseded head hands its place to the next command, which
		// must be tried in the device's next window (CMD-10, CMD-4).
		gone := make([]string, len(superseded))
		for i, s := range superseded {
			gone[i] = s.ID
		}
		if updated, err = e.promote(ctx, d, r.DeviceID, now, gone...); err != nil {
			return Command{}, err
		}
	}
	if err := e.commit(ctx, d, append(superseded, c), updated); err != nil {
		return Command{}, err
	}
	d.lastSeq = c.Seq
	if open == 0 && !c.Status.Open() {
		d.empty = true // an immediate command FAILED, the superseded CANCELED
	}
	if len(updated) > 0 || c.Status == Pending && !c.NextTry.IsZero() && !c.NextTry.After(now) {
		e.sched.mark(c.DeviceID)
	}
	if c.Status == Pending && !e.here(r.DeviceID) {
		// Queued through a node without the device's session: the node
		// that has it decides when it goes out, by the device's power
		// mode and last uplink as it knows them.
		e.cfg.Sessions.Elsewhere(r.DeviceID)
	}
	return c, failErr
}

func unreachableReason(m Mode, lastUplink time.Time) string {
	if lastUplink.IsZero() {
		return fmt.Sprintf("device not reachable: %v mode and no uplink seen yet", m.Kind)
	}
	return fmt.Sprintf("device not reachable: %v mode, last uplink at %s", m.Kind, lastUplink.UTC().Format(time.RFC3339))
}

// DeviceWoke tells the engine that the device sent an uplink (registration,
// update, report) and is reachable now: the head of its queue goes out, or
// goes out again if it was sent and never ACKed (CMD-4). For eDRX devices
// the uplink anchors the paging windows (CMD-3).
//
// DeviceWoke does no I/O and does not wait for the device's lock (a send
// or a store write of the device may hold it): it notes the time and hands
// the device to Run's workers, so a transport may call it as soon as the
// uplink arrives, before the uplink itself is processed. It fails only
// with ErrClosed.
func (e *Engine) DeviceWoke(_ context.Context, deviceID string) error {
	if e.isClosed() {
		return ErrClosed
	}
	now := time.Now()
	for {
		d := e.entry(deviceID)
		d.wmu.Lock()
		if d.gone {
			d.wmu.Unlock()
			continue
		}
		if now.After(d.woke) {
			d.woke = now
		}
		d.wmu.Unlock()
		break
	}
	e.sched.mark(deviceID)
	return nil
}

// Kick has Run's workers look at the device's queue now: another node
// that shares the Store queued or changed a command of a device whose
// session is on this node (Config.Sessions), or the device's session
// arrived here. Unlike DeviceWoke it does not count as an uplink: the
// device's power mode and last uplink decide whether the head goes out.
// It does no I/O and fails only with ErrClosed.
func (e *Engine) Kick(deviceID string) error {
	if e.isClosed() {
		return ErrClosed
	}
	e.sched.mark(deviceID)
	return nil
}

// here reports whether the device's session is on this node.
func (e *Engine) here(deviceID string) bool {
	return e.cfg.Sessions == nil || e.cfg.Sessions.Here(deviceID)
}

// SetMode stores the device's power-saving mode and timers (CMD-3, CMD-11)
// as given; zero timers take those of Config.DefaultMode. They apply from
// the next decision on: a device set to DRX gets its cached head at once,
// an eDRX one in its next paging window. Setting the mode the device
// already has stores nothing.
func (e *Engine) SetMode(ctx context.Context, deviceID string, m Mode) error {
	if err := m.Validate(); err != nil {
		return err
	}
	eff := m.inherit(e.cfg.DefaultMode)
	if err := eff.Validate(); err != nil {
		return fmt.Errorf("%w (with the default timers of Config.DefaultMode)", err)
	}
	d, err := e.openDevice(ctx, deviceID)
	if err != nil {
		return err
	}
	defer e.release(d)
	if stored, ok, err := e.st.Mode(ctx, deviceID); err != nil {
		return err
	} else if ok && stored == m {
		return nil
	}
	if err := e.st.PutMode(ctx, deviceID, m); err != nil {
		return err
	}
	d.mode = eff
	d.lastFail = time.Time{} // a failure in the old mode does not hold the head back in the new one
	e.sched.mark(deviceID)
	return nil
}

// Mode returns the device's power-saving mode as stored by SetMode, and
// whether one was; without one it returns Config.DefaultMode and false.
func (e *Engine) Mode(ctx context.Context, deviceID string) (Mode, bool, error) {
	if e.isClosed() {
		return Mode{}, false, ErrClosed
	}
	m, ok, err := e.st.Mode(ctx, deviceID)
	if err != nil || !ok {
		return e.cfg.DefaultMode, false, err
	}
	return m, true, nil
}

// Effective returns the mode that applies to the device: its own, with
// zero timers taken from Config.DefaultMode (see SetMode).
func (e *Engine) Effective(ctx context.Context, deviceID string) (Mode, error) {
	d, err := e.device(ctx, deviceID)
	if err != nil {
		return Mode{}, err
	}
	defer e.release(d)
	return d.mode, nil
}

// Get returns the command with the given id.
func (e *Engine) Get(ctx context.Context, id string) (Command, error) { return e.st.Get(ctx, id) }

// List returns up to limit commands of the device with Seq > after, oldest
// first, in every state.
func (e *Engine) List(ctx context.Context, deviceID string, after uint64, limit int) ([]Command, error) {
	return e.st.List(ctx, deviceID, after, limit)
}

// lockCommand finds the command, locks its device, and re-reads the
// command under the lock.
func (e *Engine) lockCommand(ctx context.Context, id string) (*devState, Command, error) {
	c, err := e.st.Get(ctx, id)
	if err != nil {
		return nil, Command{}, err
	}
	d, err := e.device(ctx, c.DeviceID)
	if err != nil {
		return nil, Command{}, err
	}
	if c, err = e.st.Get(ctx, id); err != nil {
		e.unlock(d)
		return nil, Command{}, err
	}
	return d, c, nil
}

// Cancel cancels one PENDING command (CMD-7). A command that already left
// PENDING is refused with a *StateError wrapping ErrNotPending that carries
// its current state.
func (e *Engine) Cancel(ctx context.Context, id string) (Command, error) {
	if e.isClosed() {
		return Command{}, ErrClosed
	}
	d, c, err := e.lockCommand(ctx, id)
	if err != nil {
		return Command{}, err
	}
	defer e.release(d)
	if c.Status != Pending {
		return c, &StateError{ID: id, Status: c.Status, Err: ErrNotPending}
	}
	now := time.Now()
	c.Reason = "cancelled by the application"
	if err := c.Move(Canceled, now); err != nil {
		return Command{}, err
	}
	moved := []Command{c}
	updated, err := e.promote(ctx, d, c.DeviceID, now, c.ID)
	if err != nil {
		return Command{}, err
	}
	if err := e.commit(ctx, d, moved, updated); err != nil {
		return Command{}, err
	}
	e.sched.mark(c.DeviceID)
	return c, nil
}

// CancelDevice cancels every PENDING command of the device in one write
// (CMD-7) and returns them; SENT and DELIVERED commands are left alone.
func (e *Engine) CancelDevice(ctx context.Context, deviceID string) ([]Command, error) {
	d, err := e.openDevice(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	defer e.release(d)
	q, err := e.st.Queue(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var moved []Command
	for _, c := range q {
		if c.Status != Pending {
			continue
		}
		c.Reason = "cancelled by the application"
		if err := c.Move(Canceled, now); err != nil {
			return nil, err
		}
		moved = append(moved, c)
	}
	if err := e.commit(ctx, d, moved, nil); err != nil {
		return nil, err
	}
	if len(moved) == len(q) {
		d.empty = true
	}
	return moved, nil
}

// promote returns the device's next head, with NextTry set so that it is
// tried, when the commands in gone (ids) leave the queue; nil when there is
// none or it needs no change. Storing it in the same write as the move
// keeps the queue moving across a restart (CMD-9).
func (e *Engine) promote(ctx context.Context, d *devState, deviceID string, now time.Time, gone ...string) ([]Command, error) {
	// Every command in gone is open, so the first one that stays is among
	// the first len(gone)+1.
	q, err := e.st.Front(ctx, deviceID, len(gone)+1, time.Time{})
	if err != nil {
		return nil, err
	}
	if c, ok := promoteFrom(d, q, now, gone...); ok {
		return []Command{c}, nil
	}
	return nil, nil
}

// promoteFrom is promote on q, the device's first len(gone)+1 open
// commands or more: the next head and true, or false.
func promoteFrom(d *devState, q []Command, now time.Time, gone ...string) (Command, bool) {
next:
	for _, c := range q {
		for _, g := range gone {
			if c.ID == g {
				continue next
			}
		}
		if c.Status != Pending {
			return Command{}, false
		}
		nt := d.mode.NextTry(now, d.lastUplink)
		if nt.Equal(c.NextTry) {
			return Command{}, false
		}
		c.NextTry = nt
		return c, true
	}
	return Command{}, false
}

// Acked records the device's ACK of a SENT command: SENT → DELIVERED. An ACK
// for a command already DELIVERED or beyond is ignored when it is a
// duplicate (DELIVERED, SUCCESSFUL, FAILED) and refused with a *MoveError
// otherwise.
func (e *Engine) Acked(ctx context.Context, deviceID, commandID string) error {
	if e.isClosed() {
		return ErrClosed
	}
	d, c, err := e.lockCommand(ctx, commandID)
	if err != nil {
		return err
	}
	defer e.release(d)
	if c.DeviceID != deviceID {
		return &NotFoundError{What: "command", ID: commandID + " of device " + deviceID}
	}
	if c.Status == Delivered || c.Status == Successful || c.Status == Failed {
		return nil
	}
	if err := c.Move(Delivered, time.Now()); err != nil {
		return err
	}
	c.NextTry = time.Time{}
	return e.commit(ctx, d, []Command{c}, nil)
}

// Response is a device's answer to a command, decoded by its codec (CMD-5).
type Response struct {
	// Mid is the message id the device echoed, 1..65535; 0 when the codec
	// gave none, and then the response belongs to the device's only
	// outstanding (SENT or DELIVERED) command.
	Mid int
	// ErrCode is the device's error code: 0 means success, anything else
	// FAILED. A codec that finds an error code in the body sets it.
	ErrCode int
	// Body is the decoded response (a JSON object), kept as the command's
	// Result and pushed as resultDetail; nil for none.
	Body json.RawMessage
}

// Responded records the device's response: the matching outstanding command
// becomes SUCCESSFUL, or FAILED when ErrCode ≠ 0 (a SENT command is first
// marked DELIVERED, the response implying the ACK; a PENDING one whose
// send was attempted, answered by its mid before the send was recorded, is
// first marked SENT), and the next command of the queue may go out. A response that matches no outstanding command
// is logged and dropped (CMD-5); Responded then returns nil.
func (e *Engine) Responded(ctx context.Context, deviceID string, r Response) error {
	d, err := e.openDevice(ctx, deviceID)
	if err != nil {
		return err
	}
	defer e.release(d)
	// Delivery is serial (CMD-4): only the head of the queue is ever
	// outstanding, so a response can match only the head; the next
	// command is read too, for promoteFrom.
	q, err := e.st.Front(ctx, deviceID, 2, time.Time{})
	if err != nil {
		return err
	}
	match, n := 0, 0
	for i := range q {
		switch {
		case q[i].Status == Sent || q[i].Status == Delivered:
			if r.Mid == 0 || q[i].Mid() == r.Mid {
				match = i
				n++
			}
		case q[i].Status == Pending && !q[i].SendAttempt.IsZero() && r.Mid != 0 && q[i].Mid() == r.Mid:
			// Sent, but not yet stored as SENT: the device answered
			// before the sender recorded that the message left (its
			// goroutine was slow to get the device's lock). The answer,
			// naming the command's mid, proves it left and arrived.
			match = i
			n++
		}
	}
	if n != 1 {
		e.log.Warn("command: response matches no outstanding command; dropped (CMD-5)",
			"device", deviceID, "mid", r.Mid, "errcode", r.ErrCode, "candidates", n)
		return nil
	}
	c := q[match]
	now := time.Now()
	cs := make([]Command, 0, 4) // the moves, then the next head: one write
	if c.Status == Pending {
		if err := c.Move(Sent, now); err != nil {
			return err
		}
		c.SendAttempt = time.Time{}
		cs = append(cs, c)
	}
	if c.Status == Sent {
		if err := c.Move(Delivered, now); err != nil {
			return err
		}
		cs = append(cs, c)
	}
	to := Successful
	if r.ErrCode != 0 {
		to = Failed
		c.Reason = fmt.Sprintf("device reported errcode %d", r.ErrCode)
	}
	c.ErrCode, c.Result = r.ErrCode, r.Body
	if err := c.Move(to, now); err != nil {
		return err
	}
	cs = append(cs, c)
	nMoved := len(cs)
	if next, ok := promoteFrom(d, q, now, c.ID); ok {
		cs = append(cs, next)
	}
	if err := e.commitAll(ctx, d, cs, nMoved); err != nil {
		return err
	}
	e.sched.mark(deviceID)
	return nil
}

// SubmitBatch creates a batch task (CMD-8): one command, r.Command, for each
// device of r.DeviceIDs (duplicates counted once). Every command of a batch
// is cached, so an expireTime of 0 is refused. A device whose command
// cannot be created (bad id, full queue) counts as failed at once. The task
// is returned as stored after every command was created.
func (e *Engine) SubmitBatch(ctx context.Context, r BatchRequest) (Task, error) {
	if e.isClosed() {
		return Task{}, ErrClosed
	}
	tmpl := r.Command
	if tmpl.ExpireTime != nil && *tmpl.ExpireTime == 0 {
		return Task{}, invalid("command.expireTime", "0", "greater than 0: batch commands are cached (FAQ §7.6)")
	}
	if err := checkID("taskName", r.Name, false); err != nil {
		return Task{}, err
	}
	probe := tmpl
	probe.DeviceID = "probe"
	if err := probe.validate(e.cfg.MaxExpireTime); err != nil {
		return Task{}, err
	}
	if len(r.DeviceIDs) == 0 {
		return Task{}, invalid("deviceList", "[]", "a non-empty list of device ids")
	}
	seen := make(map[string]bool, len(r.DeviceIDs))
	ids := make([]string, 0, len(r.DeviceIDs))
	for _, id := range r.DeviceIDs {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	t := Task{ID: e.cfg.NewID(), Name: r.Name, AppID: tmpl.AppID, Total: len(ids), CreationTime: time.Now()}
	if err := e.st.PutTask(ctx, t); err != nil {
		return Task{}, err
	}
	for _, id := range ids {
		req := tmpl
		req.DeviceID = id
		if _, err := e.submit(ctx, req, t.ID); err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return Task{}, err
			}
			e.log.Info("command: batch command not created", "task", t.ID, "device", id, "err", err)
			if err := e.st.Write(ctx, Write{Counts: []Count{{TaskID: t.ID, Status: Failed}}}); err != nil {
				return Task{}, err
			}
		}
	}
	return e.st.Task(ctx, t.ID)
}

// Task returns a batch task with its counts.
func (e *Engine) Task(ctx context.Context, id string) (Task, error) { return e.st.Task(ctx, id) }
