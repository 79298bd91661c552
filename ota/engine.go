package ota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doze-io/doze/ota/pcp"
)

// Config tunes an Engine. The zero value works for software upgrades with
// every device taken as online.
type Config struct {
	// Devices looks devices up for the online check of the "now" policy
	// and the product check. nil means every device exists, is online
	// and matches every package.
	Devices Devices
	// Object5 performs LwM2M object 5 operations. nil means firmware
	// tasks are refused.
	Object5 Object5
	// Listener hears state changes and results. nil means none.
	Listener Listener
	// Logger logs what the engine cannot return. nil discards.
	Logger *slog.Logger
	// FirmwareURI is the base of the Package URI written to /5/0/1; the
	// package id is appended (e.g. "coaps://dm.example.com:5684/fw/").
	// Required for firmware tasks. The lwm2m server serves it with
	// Engine.Block2.
	FirmwareURI string
	// OnlineTimeout bounds the wait for a device to come online under
	// the device_online policy. 0 means 24h. (Window tasks wait until
	// their window ends.)
	OnlineTimeout time.Duration
	// VersionTimeout bounds the wait for a version (PCP 19, /3/0/3),
	// also the check after a firmware update. 0 means 30m.
	VersionTimeout time.Duration
	// DownloadTimeout bounds the time without download progress (a
	// block request or the download result). 0 means 1h.
	DownloadTimeout time.Duration
	// ResultTimeout bounds the wait for the upgrade result after
	// execute. 0 means 30m.
	ResultTimeout time.Duration
	// RetryInterval is the wait before an automatic retry when the task's
	// policy gives none. 0 means 10m.
	RetryInterval time.Duration
	// CallTimeout bounds each Object5 call. 0 means 1m.
	CallTimeout time.Duration
	// Workers is the number of goroutines making Object5 calls. 0 means 4.
	Workers int
	// MaxDownloads caps the sub-tasks downloading at once (the notify and
	// download steps, software and firmware together); the others wait in
	// StepQueued, first come first served, with no deadline. 0 means no
	// limit (OTA-8).
	MaxDownloads int
}

func (c *Config) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.OnlineTimeout, 24*time.Hour)
	def(&c.VersionTimeout, 30*time.Minute)
	def(&c.DownloadTimeout, time.Hour)
	def(&c.ResultTimeout, 30*time.Minute)
	def(&c.RetryInterval, 10*time.Minute)
	def(&c.CallTimeout, time.Minute)
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"OnlineTimeout", c.OnlineTimeout}, {"VersionTimeout", c.VersionTimeout}, {"DownloadTimeout", c.DownloadTimeout},
		{"ResultTimeout", c.ResultTimeout}, {"RetryInterval", c.RetryInterval}, {"CallTimeout", c.CallTimeout}} {
		if d.v < 0 {
			return fieldErr("Config."+d.name, "%s, must not be negative", d.v)
		}
	}
	if c.Workers < 0 {
		return fieldErr("Config.Workers", "%d, must not be negative", c.Workers)
	}
	if c.MaxDownloads < 0 {
		return fieldErr("Config.MaxDownloads", "%d, must not be negative", c.MaxDownloads)
	}
	return nil
}

// tickEvery is the shortest time between two timer ticks of Run.
const tickEvery = time.Second

// Engine runs upgrade tasks: it decides per device, drives PCP and object 5
// and serves package blocks. It is safe for concurrent use.
type Engine struct {
	st    Store
	files Files
	ch    Channel
	cfg   Config
	log   *slog.Logger

	createMu sync.Mutex // orders CreateTask, retries and Stop
	mu       sync.RWMutex
	closed   bool
	tasks    map[string]*taskRun // unfinished, or a retry planned
	devices  map[string]*session // active sub-task of each device
	contents map[string]*Content
	fwQueue  []string
	fwQueued map[string]bool
	slots    int        // sub-tasks holding a download slot (MaxDownloads)
	queued   []*session // sub-tasks waiting for a slot, in order
	cancel   context.CancelFunc
	runDone  chan struct{}

	wake     chan struct{}
	fwSignal chan struct{}
	// nextWake is the UnixNano of the Run loop's next planned tick; a
	// deadline set earlier than it wakes the loop.
	nextWake atomic.Int64
}

type taskRun struct {
	Task
	counts    map[SubState]int
	retryable int  // failed sub-tasks an automatic retry would take
	stopping  bool // Stop was called: no automatic retry
}

// countKey is the key of counts for a sub-task state: wait and processing
// are counted together under SubWait as "active".
func countKey(s SubState) SubState {
	if s == SubProcessing {
		return SubWait
	}
	return s
}

// session is the live state of one active sub-task.
type session struct {
	mu      sync.Mutex
	sub     SubTask
	policy  Policy
	content *Content
	readyAt time.Time // not started before
	ended   bool

	// PCP block tracking (OTA-7).
	served      []uint64
	distinct    int
	resent      int
	resentBytes int64
	first, last time.Time
	saved       int  // distinct at the last store write
	loaded      bool // loaded from the store, not yet looked at by Run
	pending     bool // waits for readyAt, then the tick starts it
	slot        bool // holds a download slot (MaxDownloads)

	// Object 5 (firmware).
	armed      bool  // the Package URI is being written: reports are about this attempt
	observed   bool  // /5/0/3 and /5/0/5 are observed on the device's current registration
	resync     bool  // the device registered anew: observe and read /5/0/3, /5/0/5 first
	savedBytes int64 // sub.Downloaded at the last store write
}

// effects are what a state change asks for once locks are released.
type effects struct {
	deviceID string
	frames   [][]byte
	states   []StateEvent
	results  []ResultEvent
	versions []string // versions the device reported
	kind     Kind     // of those versions
	fwJob    bool
}

// send queues a frame.
func (eff *effects) send(f []byte) { eff.frames = append(eff.frames, f) }

// New returns an engine over st (durable state), files (package contents)
// and ch (PCP frames). It loads unfinished tasks from st so that a
// restarted engine carries on; it starts no goroutine.
func New(st Store, files Files, ch Channel, cfg Config) (*Engine, error) {
	if st == nil || files == nil || ch == nil {
		return nil, fmt.Errorf("%w: New needs a Store, Files and a Channel", ErrInvalid)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	e := &Engine{st: st, files: files, ch: ch, cfg: cfg, log: cfg.Logger,
		tasks: map[string]*taskRun{}, devices: map[string]*session{}, contents: map[string]*Content{},
		fwQueued: map[string]bool{}, wake: make(chan struct{}, 1), fwSignal: make(chan struct{}, 1)}
	e.nextWake.Store(math.MaxInt64)
	if err := e.load(context.Background()); err != nil {
		e.closeContents()
		return nil, err
	}
	return e, nil
}

func (e *Engine) load(ctx context.Context) error {
	tasks, err := e.st.Tasks(ctx)
	if err != nil {
		return fmt.Errorf("ota: load tasks: %w", err)
	}
	now := time.Now()
	for _, t := range tasks {
		if t.State.Final() && t.RetryAt.IsZero() {
			continue
		}
		subs, err := e.st.SubTasks(ctx, t.ID)
		if err != nil {
			return fmt.Errorf("ota: load sub-tasks of task %s: %w", t.ID, err)
		}
		c, err := e.content(ctx, t.PackageID)
		if err != nil {
			return fmt.Errorf("ota: load task %s: %w", t.ID, err)
		}
		tr := &taskRun{Task: t, counts: map[SubState]int{}}
		for _, s := range subs {
			tr.counts[countKey(s.State)]++
			if s.State == SubFail && !permanent(s.Reason) {
				tr.retryable++
			}
			if s.State.Final() {
				continue
			}
			ready := t.Policy.StartAt(t.Created)
			ss := &session{sub: s, policy: t.Policy, content: c, readyAt: ready, saved: s.Blocks, loaded: true,
				pending: s.State == SubWait && ready.After(now), savedBytes: s.Downloaded,
				observed: s.Step != StepNotify, armed: s.Step != StepNotify}
			if s.Step == StepDownload || s.Step == StepNotify {
				// Progress in memory was lost: give the device a
				// full download deadline from now.
				ss.sub.Deadline = later(s.Deadline, now.Add(e.cfg.DownloadTimeout))
			}
			if e.cfg.MaxDownloads > 0 {
				switch s.Step {
				case StepNotify, StepDownload:
					ss.slot = true
					e.slots++
				case StepQueued:
					e.queued = append(e.queued, ss)
				}
			}
			e.devices[s.DeviceID] = ss
		}
		e.tasks[t.ID] = tr
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// content returns the cached content of a package, opening it when needed.
func (e *Engine) content(ctx context.Context, id string) (*Content, error) {
	e.mu.Lock()
	c := e.contents[id]
	e.mu.Unlock()
	if c != nil {
		return c, nil
	}
	p, err := e.st.Package(ctx, id)
	if err != nil {
		return nil, err
	}
	r, err := e.files.Open(id)
	if err != nil {
		return nil, fmt.Errorf("ota: open content of package %s: %w", id, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.contents[id]; c != nil {
		closeReader(r)
		return c, nil
	}
	c = &Content{Package: p, R: r}
	e.contents[id] = c
	return c, nil
}

func closeReader(r io.ReaderAt) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

func (e *Engine) closeContents() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, c := range e.contents {
		closeReader(c.R)
		delete(e.contents, id)
	}
}

// Run drives deadlines, windows and retries, and makes Object5 calls. It
// blocks until ctx ends or Close is called, and returns nil then.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if e.runDone != nil {
		e.mu.Unlock()
		return fmt.Errorf("%w: Run called twice", ErrInvalid)
	}
	ctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	done := make(chan struct{})
	e.runDone = done
	e.mu.Unlock()
	defer close(done)
	defer cancel()

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

// Close stops Run (waiting for it) and closes package contents. It is
// safe to call more than once.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	cancel, done := e.cancel, e.runDone
	e.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	e.closeContents()
	return nil
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
	for _, id := range retry {
		if err := e.retry(ctx, id, false); err != nil && !errors.Is(err, ErrNothingToRetry) {
			e.log.Error("ota: automatic retry", "task", id, "err", err)
		}
	}
	var opened []*session
	for _, s := range sessions {
		var eff effects
		s.mu.Lock()
		if !s.ended {
			// Waiting sub-tasks start on CreateTask, retries,
			// DeviceOnline and HandleFrame; the tick only starts
			// those whose start time (a window) just came.
			if s.pending && !now.Before(s.readyAt) {
				s.pending = false
				opened = append(opened, s)
			}
			if !s.sub.Deadline.IsZero() && !now.Before(s.sub.Deadline) {
				e.finish(ctx, s, SubFail, s.sub.Step.reason(), &eff)
			}
			if !s.ended {
				soon(s.sub.Deadline)
				if s.sub.State == SubWait && now.Before(s.readyAt) {
					soon(s.readyAt)
				}
			}
		}
		s.mu.Unlock()
		e.apply(ctx, &eff)
	}
	e.kick(ctx, opened)
	return next
}

func (e *Engine) online(ctx context.Context, deviceID string) bool {
	if e.cfg.Devices == nil {
		return true
	}
	d, ok := e.cfg.Devices.Device(ctx, deviceID)
	return ok && d.Online
}

// apply carries out effects outside every lock.
func (e *Engine) apply(ctx context.Context, eff *effects) {
	for _, f := range eff.frames {
		if err := e.ch.SendFrame(ctx, eff.deviceID, f); err != nil {
			e.log.Info("ota: send PCP frame", "device", eff.deviceID, "code", f[3], "err", err)
		}
	}
	if eff.fwJob {
		e.enqueueFw(eff.deviceID)
	}
	if vl, ok := e.cfg.Listener.(VersionListener); ok {
		for _, v := range eff.versions {
			vl.VersionReported(eff.kind, eff.deviceID, v)
		}
	}
	if l := e.cfg.Listener; l != nil {
		for _, ev := range eff.states {
			l.UpgradeStateChanged(ev)
		}
		for _, ev := range eff.results {
			l.UpgradeResult(ev)
		}
	}
}

func (e *Engine) save(ctx context.Context, s *session) {
	s.sub.Updated = time.Now()
	s.sub.Blocks = max(s.sub.Blocks, s.distinct)
	s.saved = s.sub.Blocks
	if err := e.st.PutSubTask(ctx, s.sub); err != nil {
		e.log.Error("ota: save sub-task", "subtask", s.sub.ID(), "err", err)
	}
}

func (e *Engine) stateEvent(s *session, state string, eff *effects) {
	eff.states = append(eff.states, StateEvent{Kind: s.sub.Kind, TaskID: s.sub.TaskID, DeviceID: s.sub.DeviceID,
		SubTaskID: s.sub.ID(), State: state, Time: time.Now()})
}

// start begins a waiting sub-task whose device is online. s.mu is held.
func (e *Engine) start(ctx context.Context, s *session, eff *effects) {
	eff.deviceID = s.sub.DeviceID
	p := &s.content.Package
	if e.cfg.Devices != nil {
		d, ok := e.cfg.Devices.Device(ctx, s.sub.DeviceID)
		if !ok || !matches(p, d) {
			e.finish(ctx, s, SubFail, ReasonNoProtocolService, eff)
			return
		}
	}
	if p.Kind == Firmware && (e.cfg.Object5 == nil || e.cfg.FirmwareURI == "") {
		e.finish(ctx, s, SubFail, ReasonNoProtocolService, eff)
		return
	}
	now := time.Now()
	s.sub.State = SubProcessing
	s.sub.Started = now
	e.setStep(s, StepQuery, now)
	e.save(ctx, s)
	e.act(s, eff)
}

func matches(p *Package, d Device) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	return eq(p.DeviceType, d.DeviceType) && eq(p.Manufacturer, d.Manufacturer) && eq(p.Model, d.Model) && eq(p.Protocol, d.Protocol)
}

// setStep moves s to step with the step's server-side deadline.
func (e *Engine) setStep(s *session, step Step, now time.Time) {
	s.sub.Step = step
	if s.slot && step != StepNotify && step != StepDownload {
		e.releaseSlot(s)
	}
	switch step {
	case StepQuery, StepCheck:
		s.sub.Deadline = now.Add(e.cfg.VersionTimeout)
	case StepNotify, StepDownload:
		s.sub.Deadline = now.Add(e.cfg.DownloadTimeout)
	case StepExecute, StepResult:
		s.sub.Deadline = now.Add(e.cfg.ResultTimeout)
	}
	e.due(s.sub.Deadline)
}

// act (re)sends what the current step waits an answer for. Called when a
// step begins and whenever the device is awake again (a frame may have
// been lost while it slept).
func (e *Engine) act(s *session, eff *effects) {
	eff.deviceID = s.sub.DeviceID
	if s.sub.Kind == Firmware {
		switch s.sub.Step {
		case StepQuery, StepNotify, StepExecute, StepCheck:
			eff.fwJob = true
		}
		if s.resync {
			eff.fwJob = true
		}
		return
	}
	p := &s.content.Package
	switch s.sub.Step {
	case StepQuery:
		eff.send(pcp.Encode(pcp.QueryVersion{}))
	case StepNotify:
		eff.send(pcp.Encode(pcp.Notify{Version: p.Version, BlockSize: uint16(p.blockSize()),
			BlockCount: uint16(p.Blocks()), CheckCode: p.CheckCode}))
	case StepExecute:
		eff.send(pcp.Encode(pcp.Execute{}))
	}
}

// finish ends s. s.mu is held.
func (e *Engine) finish(ctx context.Context, s *session, state SubState, reason string, eff *effects) {
	now := time.Now()
	s.sub.State = state
	s.sub.Reason = reason
	s.sub.Deadline = time.Time{}
	if s.slot {
		e.releaseSlot(s)
	}
	e.save(ctx, s)
	s.ended = true
	eff.deviceID = s.sub.DeviceID
	if state != SubStop {
		r := ResultEvent{Kind: s.sub.Kind, TaskID: s.sub.TaskID, DeviceID: s.sub.DeviceID, SubTaskID: s.sub.ID(),
			SourceVersion: s.sub.SourceVersion, TargetVersion: s.sub.TargetVersion, CurVersion: s.sub.CurrentVersion,
			Result: ResultSuccess, Reason: reason, Time: now}
		if state == SubFail {
			r.Result = ResultFail
		}
		eff.results = append(eff.results, r)
	}
	e.subEnded(ctx, s, now)
}

// subEnded updates the task of a sub-task that just ended.
func (e *Engine) subEnded(ctx context.Context, s *session, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.devices[s.sub.DeviceID] == s {
		delete(e.devices, s.sub.DeviceID)
	}
	t := e.tasks[s.sub.TaskID]
	if t == nil {
		return
	}
	t.counts[SubWait]-- // counts keep wait and processing together under SubWait
	t.counts[s.sub.State]++
	if s.sub.State == SubFail && !permanent(s.sub.Reason) {
		t.retryable++
	}
	e.settle(ctx, t, now)
}

// settle sets the state of t once no sub-task is active. e.mu is held.
func (e *Engine) settle(ctx context.Context, t *taskRun, now time.Time) {
	if t.counts[SubWait] > 0 || t.State.Final() {
		return
	}
	switch {
	case t.counts[SubFail] > 0:
		t.State = TaskFailed
	case t.counts[SubStop] > 0:
		t.State = TaskStop
	default:
		t.State = TaskSuccess
	}
	t.Updated = now
	t.RetryAt = time.Time{}
	if t.State == TaskFailed && !t.stopping && t.retryable > 0 && t.Attempt < t.Policy.RetryTimes {
		t.RetryAt = t.Policy.RetryAt(now, t.Attempt+1, e.cfg.RetryInterval)
		e.poke()
	} else {
		delete(e.tasks, t.ID)
	}
	if err := e.st.PutTask(ctx, t.Task, nil); err != nil {
		e.log.Error("ota: save task", "task", t.ID, "err", err)
	}
}

// newID returns 16 random hex digits.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AddPackage records a package whose content is already in Files under
// p.ID. It reads the content once to set Size, Digest and CheckCode; p.Size
// must be set unless the content's reader knows its size (Size() or
// Stat()). An id already used fails with ErrInvalid.
func (e *Engine) AddPackage(ctx context.Context, p Package) (Package, error) {
	if p.ID == "" {
		p.ID = newID()
	}
	if err := p.Validate(); err != nil {
		return Package{}, err
	}
	if _, err := e.st.Package(ctx, p.ID); err == nil {
		return Package{}, fieldErr("fileId", "%q is already used by another package", p.ID)
	} else if !errors.Is(err, ErrNotFound) {
		return Package{}, err
	}
	r, err := e.files.Open(p.ID)
	if err != nil {
		return Package{}, err
	}
	defer closeReader(r)
	if n := sizeOf(r); p.Size == 0 {
		p.Size = n
	} else if n > 0 && n != p.Size {
		return Package{}, fieldErr("size", "%d, but the content of package %s has %d bytes", p.Size, p.ID, n)
	}
	if p.Size <= 0 {
		return Package{}, fieldErr("size", "package %s is empty or its size is unknown; set Package.Size", p.ID)
	}
	if err := p.Validate(); err != nil {
		return Package{}, err
	}
	if p.Digest, p.CheckCode, err = Summarize(r, p.Size); err != nil {
		return Package{}, err
	}
	if p.BlockSize == 0 {
		p.BlockSize = DefaultBlockSize
	}
	if p.Created.IsZero() {
		p.Created = time.Now()
	}
	if err := e.st.PutPackage(ctx, p); err != nil {
		return Package{}, err
	}
	return p, nil
}

func sizeOf(r io.ReaderAt) int64 {
	switch v := r.(type) {
	case interface{ Size() int64 }:
		return v.Size()
	case interface{ Stat() (os.FileInfo, error) }:
		if fi, err := v.Stat(); err == nil {
			return fi.Size()
		}
	}
	return 0
}

// Package returns a package.
func (e *Engine) Package(ctx context.Context, id string) (Package, error) {
	return e.st.Package(ctx, id)
}

// Packages returns every package.
func (e *Engine) Packages(ctx context.Context) ([]Package, error) { return e.st.Packages(ctx) }

// DeletePackage removes a package's record; ErrPackageInUse while an
// unfinished task uses it. The caller removes the content from Files.
func (e *Engine) DeletePackage(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.tasks {
		if t.PackageID == id {
			return fmt.Errorf("%w: package %s, task %s", ErrPackageInUse, id, t.ID)
		}
	}
	if err := e.st.DeletePackage(ctx, id); err != nil {
		return err
	}
	if c := e.contents[id]; c != nil {
		closeReader(c.R)
		delete(e.contents, id)
	}
	return nil
}

// Content returns a package with its bytes, for serving blocks.
func (e *Engine) Content(ctx context.Context, pkgID string) (*Content, error) {
	return e.content(ctx, pkgID)
}

// Block2 serves block num (size exponent szx) of a package's content as
// CoAP Block2 with ETag and Size2 (SPEC OTA-7). The lwm2m server mounts it
// at Config.FirmwareURI through an adapter.
func (e *Engine) Block2(ctx context.Context, pkgID string, num uint32, szx int) (data []byte, more bool, etag []byte, size2 int64, err error) {
	c, err := e.content(ctx, pkgID)
	if err != nil {
		return nil, false, nil, 0, err
	}
	return c.Block2(num, szx)
}

// TaskSpec describes a task to create.
type TaskSpec struct {
	ID        string   // "" means generated
	PackageID string   // the package to install
	Devices   []string // target devices; groups are resolved by the caller
	Policy    Policy
}

// CreateTask creates a task with one sub-task per device (SPEC OTA-2). A
// device with another unfinished upgrade gets a sub-task failed with
// ReasonTaskConflict. Sub-tasks start at once under the "now" policy.
func (e *Engine) CreateTask(ctx context.Context, spec TaskSpec) (Task, error) {
	if spec.ID == "" {
		spec.ID = newID()
	}
	if len(spec.Devices) == 0 {
		return Task{}, fieldErr("targets", "no device; a task needs at least one")
	}
	// A zero byte separates task and device ids in store keys (task id,
	// 0x00, device id); an id holding one would mix two tasks' sub-tasks.
	if strings.IndexByte(spec.ID, 0) >= 0 {
		return Task{}, fieldErr("operationId", "%q holds a zero byte, which ids may not", spec.ID)
	}
	for i, d := range spec.Devices {
		if d == "" {
			return Task{}, fieldErr(fmt.Sprintf("targets.devices[%d]", i), "empty device id")
		}
		if strings.IndexByte(d, 0) >= 0 {
			return Task{}, fieldErr(fmt.Sprintf("targets.devices[%d]", i), "%q holds a zero byte, which ids may not", d)
		}
	}
	p, err := e.st.Package(ctx, spec.PackageID)
	if err != nil {
		return Task{}, &FieldError{Field: "fileId", Message: err.Error(), Err: err}
	}
	if err := spec.Policy.Validate(p.Kind); err != nil {
		return Task{}, err
	}
	if p.Kind == Firmware && (e.cfg.Object5 == nil || e.cfg.FirmwareURI == "") {
		return Task{}, fieldErr("fileId", "package %s is firmware but the engine has no Object5 or FirmwareURI", p.ID)
	}
	c, err := e.content(ctx, p.ID)
	if err != nil {
		return Task{}, err
	}
	if spec.Policy.Execute == "" {
		spec.Policy.Execute = Now
	}
	now := time.Now()
	devs := slices.Clone(spec.Devices)
	slices.Sort(devs)
	devs = slices.Compact(devs)
	t := Task{ID: spec.ID, Kind: p.Kind, PackageID: p.ID, Devices: devs, Policy: spec.Policy, State: TaskProcessing, Created: now, Updated: now}
	readyAt := t.Policy.StartAt(now)
	if readyAt.After(now) {
		t.State = TaskWait
	}
	tr := &taskRun{Task: t, counts: map[SubState]int{}}
	subs := make([]SubTask, len(devs))
	var sessions []*session
	// createMu orders task creation and retries, so that the conflict
	// check and the sessions it leads to are one step; e.mu is held only
	// for map reads and updates, never across the store write.
	e.createMu.Lock()
	defer e.createMu.Unlock()
	e.mu.RLock()
	closed := e.closed
	_, used := e.tasks[t.ID]
	for i, d := range devs {
		s := SubTask{TaskID: t.ID, DeviceID: d, Kind: p.Kind, State: SubWait, Step: StepOnline, TargetVersion: p.Version, Updated: now}
		if p.Kind == Firmware {
			s.Size = p.Size
		}
		if _, busy := e.devices[d]; busy {
			s.State, s.Step, s.Reason = SubFail, "", ReasonTaskConflict
			tr.counts[SubFail]++
		} else {
			s.Deadline = t.Policy.OnlineDeadline(readyAt, e.cfg.OnlineTimeout)
			tr.counts[SubWait]++
			sessions = append(sessions, &session{sub: s, policy: t.Policy, content: c, readyAt: readyAt, pending: readyAt.After(now)})
		}
		subs[i] = s
	}
	e.mu.RUnlock()
	if closed {
		return Task{}, ErrClosed
	}
	if _, err := e.st.Task(ctx, t.ID); used || err == nil {
		return Task{}, fieldErr("operationId", "%q is already used", t.ID)
	}
	if err := e.st.PutTask(ctx, t, subs); err != nil {
		return Task{}, err
	}
	e.mu.Lock()
	e.tasks[t.ID] = tr
	for _, s := range sessions {
		e.devices[s.sub.DeviceID] = s
	}
	e.settle(ctx, tr, now) // every device in conflict
	t = tr.Task
	e.mu.Unlock()
	var results []ResultEvent
	for _, s := range subs {
		if s.State == SubFail {
			results = append(results, ResultEvent{Kind: s.Kind, TaskID: s.TaskID, DeviceID: s.DeviceID, SubTaskID: s.ID(),
				TargetVersion: s.TargetVersion, Result: ResultFail, Reason: s.Reason, Time: now})
		}
	}
	e.apply(ctx, &effects{results: results})
	if !readyAt.After(now) {
		e.kick(ctx, sessions)
	}
	e.poke()
	return t, nil
}

// kick starts the waiting sessions whose device is online; under the "now"
// policy the others fail with ReasonNotOnline.
func (e *Engine) kick(ctx context.Context, sessions []*session) {
	for _, s := range sessions {
		var eff effects
		s.mu.Lock()
		if !s.ended && s.sub.State == SubWait {
			switch {
			case e.online(ctx, s.sub.DeviceID):
				e.start(ctx, s, &eff)
			case s.policy.Execute == Now:
				e.finish(ctx, s, SubFail, ReasonNotOnline, &eff)
			}
		}
		s.mu.Unlock()
		e.apply(ctx, &eff)
	}
}

// activate starts a window task whose window opened.
func (e *Engine) activate(ctx context.Context, id string) error {
	e.mu.Lock()
	t := e.tasks[id]
	if t == nil || t.State != TaskWait {
		e.mu.Unlock()
		return nil
	}
	t.State = TaskProcessing
	t.Updated = time.Now()
	err := e.st.PutTask(ctx, t.Task, nil)
	var sessions []*session
	for _, s := range e.devices {
		if s.sub.TaskID == id {
			sessions = append(sessions, s)
		}
	}
	e.mu.Unlock()
	e.kick(ctx, sessions)
	return err
}

// Task returns a task.
func (e *Engine) Task(ctx context.Context, id string) (Task, error) {
	e.mu.Lock()
	if t := e.tasks[id]; t != nil {
		defer e.mu.Unlock()
		return cloneTask(t.Task), nil
	}
	e.mu.Unlock()
	return e.st.Task(ctx, id)
}

// Tasks returns every task.
func (e *Engine) Tasks(ctx context.Context) ([]Task, error) { return e.st.Tasks(ctx) }

// SubTasks returns the sub-tasks of a task, with live progress (Blocks) for
// those in progress.
func (e *Engine) SubTasks(ctx context.Context, taskID string) ([]SubTask, error) {
	subs, err := e.st.SubTasks(ctx, taskID)
	if err != nil {
		return nil, err
	}
	for i := range subs {
		e.mu.Lock()
		s := e.devices[subs[i].DeviceID]
		e.mu.Unlock()
		if s == nil {
			continue
		}
		s.mu.Lock()
		if s.sub.TaskID == taskID && !s.ended {
			subs[i] = s.sub
			subs[i].Blocks = max(s.sub.Blocks, s.distinct)
		}
		s.mu.Unlock()
	}
	return subs, nil
}

// Upgrading reports whether the device has an upgrade in progress; its
// other commands should wait (SPEC OTA-5, FAQ §10.9).
func (e *Engine) Upgrading(deviceID string) bool {
	e.mu.Lock()
	s := e.devices[deviceID]
	e.mu.Unlock()
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.ended && s.sub.State == SubProcessing
}

// Stop stops a task: its waiting and processing sub-tasks end in stop.
func (e *Engine) Stop(ctx context.Context, taskID string) (Task, error) {
	e.createMu.Lock()
	defer e.createMu.Unlock()
	e.mu.Lock()
	t := e.tasks[taskID]
	if t == nil {
		e.mu.Unlock()
		if _, err := e.st.Task(ctx, taskID); err != nil {
			return Task{}, err
		}
		return Task{}, fmt.Errorf("%w: task %s", ErrTaskFinished, taskID)
	}
	var sessions []*session
	for _, s := range e.devices {
		if s.sub.TaskID == taskID {
			sessions = append(sessions, s)
		}
	}
	if t.State.Final() { // failed, waiting for an automatic retry
		t.RetryAt = time.Time{}
		t.State = TaskStop
		t.Updated = time.Now()
		delete(e.tasks, taskID)
		err := e.st.PutTask(ctx, t.Task, nil)
		e.mu.Unlock()
		return t.Task, err
	}
	t.stopping = true // no automatic retry after a stop
	e.mu.Unlock()
	for _, s := range sessions {
		var eff effects
		s.mu.Lock()
		if !s.ended {
			e.finish(ctx, s, SubStop, ReasonStopped, &eff)
		}
		s.mu.Unlock()
		e.apply(ctx, &eff)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t.State == TaskFailed || t.State == TaskSuccess {
		// Sub-tasks that ended earlier decide success or failure;
		// a stop request makes the task stopped.
		t.State = TaskStop
		if err := e.st.PutTask(ctx, t.Task, nil); err != nil {
			return Task{}, err
		}
	}
	return cloneTask(t.Task), nil
}

// Retry retries the failed sub-tasks of a failed task; devices that
// succeeded are not touched (SPEC OTA-4).
func (e *Engine) Retry(ctx context.Context, taskID string) (Task, error) {
	if err := e.retry(ctx, taskID, true); err != nil {
		return Task{}, err
	}
	return e.Task(ctx, taskID)
}

func (e *Engine) retry(ctx context.Context, taskID string, manual bool) error {
	e.createMu.Lock()
	defer e.createMu.Unlock()
	t, err := e.Task(ctx, taskID)
	if err != nil {
		return err
	}
	if t.State != TaskFailed {
		return fmt.Errorf("%w: task %s is %s, only a failed task is retried", ErrNothingToRetry, taskID, t.State)
	}
	subs, err := e.st.SubTasks(ctx, taskID)
	if err != nil {
		return err
	}
	c, err := e.content(ctx, t.PackageID)
	if err != nil {
		return err
	}
	now := time.Now()
	readyAt := t.Policy.StartAt(now)
	var changed []SubTask
	var sessions, conflicts []*session
	e.mu.RLock()
	for _, s := range subs {
		if s.State != SubFail || (!manual && permanent(s.Reason)) {
			continue
		}
		s.State, s.Step, s.Reason, s.Attempt, s.Updated = SubWait, StepOnline, "", s.Attempt+1, now
		s.Deadline = t.Policy.OnlineDeadline(readyAt, e.cfg.OnlineTimeout)
		if t.Policy.Execute == Window && !now.Before(t.Policy.End) {
			s.Deadline = now // the window is over: fails at once
		}
		ss := &session{sub: s, policy: t.Policy, content: c, readyAt: readyAt, pending: readyAt.After(now)}
		if _, busy := e.devices[s.DeviceID]; busy {
			conflicts = append(conflicts, ss)
		} else {
			sessions = append(sessions, ss)
		}
		changed = append(changed, s)
	}
	e.mu.RUnlock()

	next := t
	next.RetryAt = time.Time{}
	if len(changed) > 0 {
		next.Attempt++
		next.State = TaskProcessing
		next.Updated = now
	}
	if err := e.st.PutTask(ctx, next, changed); err != nil {
		return err
	}
	e.mu.Lock()
	tr := e.tasks[taskID]
	if tr == nil {
		tr = &taskRun{counts: map[SubState]int{}}
		for _, s := range subs {
			tr.counts[countKey(s.State)]++
		}
	}
	tr.Task = next
	if len(changed) == 0 {
		delete(e.tasks, taskID)
		e.mu.Unlock()
		return fmt.Errorf("%w: task %s has no failed sub-task to retry", ErrNothingToRetry, taskID)
	}
	tr.retryable = 0
	tr.counts[SubFail] -= len(changed)
	tr.counts[SubWait] += len(changed)
	e.tasks[taskID] = tr
	for _, s := range sessions {
		e.devices[s.sub.DeviceID] = s
	}
	e.mu.Unlock()
	for _, s := range conflicts {
		var eff effects
		s.mu.Lock()
		e.finish(ctx, s, SubFail, ReasonTaskConflict, &eff)
		s.mu.Unlock()
		e.apply(ctx, &eff)
	}
	if !readyAt.After(now) {
		e.kick(ctx, sessions)
	}
	e.poke()
	return nil
}

// QueryVersion asks a device its software version with PCP 19, outside any
// task (for a product that enables the upgrade capability while the
// version is unknown, SPEC OTA-5). The answer reaches a VersionListener.
func (e *Engine) QueryVersion(ctx context.Context, deviceID string) error {
	return e.ch.SendFrame(ctx, deviceID, pcp.Encode(pcp.QueryVersion{}))
}

// session returns the active session of a device, or nil.
func (e *Engine) session(deviceID string) *session {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.devices[deviceID]
}

// DeviceOnline tells the engine the device is awake (it registered,
// updated its registration or sent data). Waiting sub-tasks start; a step
// waiting for an answer sends its request again, since a frame sent while
// the device slept may be lost (notify when the device is awake, SPEC
// OTA-6).
func (e *Engine) DeviceOnline(ctx context.Context, deviceID string) {
	s := e.session(deviceID)
	if s == nil {
		return
	}
	var eff effects
	s.mu.Lock()
	if !s.ended {
		switch {
		case s.sub.State == SubWait && !time.Now().Before(s.readyAt):
			e.start(ctx, s, &eff)
		case s.sub.State == SubProcessing:
			e.act(s, &eff)
		}
	}
	s.mu.Unlock()
	e.apply(ctx, &eff)
}

// Served says which blocks a device was served in its current download
// (SPEC OTA-7).
type Served struct {
	TaskID      string
	Blocks      int      // blocks in the package
	Distinct    int      // different blocks served
	Resent      int      // blocks served more than once
	ResentBytes int64    // bytes of those repeats
	Bitmap      []uint64 // bit n set when block n was served
	First, Last time.Time
}

// Served returns the block tracking of the device's active software
// upgrade, or false when it has none.
func (e *Engine) Served(deviceID string) (Served, bool) {
	s := e.session(deviceID)
	if s == nil {
		return Served{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.sub.Kind != Software {
		return Served{}, false
	}
	return Served{TaskID: s.sub.TaskID, Blocks: s.content.Blocks(), Distinct: s.distinct, Resent: s.resent,
		ResentBytes: s.resentBytes, Bitmap: slices.Clone(s.served), First: s.first, Last: s.last}, true
}

// HandleFrame takes a PCP frame the device sent (SPEC OTA-6) and answers it
// through the Channel. A frame that does not decode returns an error and
// gets no answer.
func (e *Engine) HandleFrame(ctx context.Context, deviceID string, frame []byte) error {
	f, err := pcp.ParseFrame(frame)
	if err != nil {
		return fmt.Errorf("ota: device %s: %w", deviceID, err)
	}
	if f.Code == pcp.CodeBlock && len(f.Data) == pcp.VersionLen+2 {
		if done, err := e.fastBlock(ctx, deviceID, f.Data); done {
			return err
		}
	}
	m, err := f.Message(pcp.Uplink)
	if err != nil {
		return fmt.Errorf("ota: device %s: %w", deviceID, err)
	}
	eff := effects{deviceID: deviceID, kind: Software}
	switch m := m.(type) {
	case pcp.QueryVersionAnswer:
		if m.Result == pcp.ResultOK {
			eff.versions = append(eff.versions, m.Version)
		}
	case pcp.UpgradeResult:
		eff.versions = append(eff.versions, m.Version)
	}
	if s := e.session(deviceID); s != nil {
		s.mu.Lock()
		if !s.ended && s.sub.Kind == Software {
			if s.sub.State == SubWait && !time.Now().Before(s.readyAt) {
				e.start(ctx, s, &eff) // the device is awake
			}
			if !s.ended && s.sub.State == SubProcessing {
				e.pcpMessage(ctx, s, m, &eff)
				s.mu.Unlock()
				e.apply(ctx, &eff)
				return nil
			}
		}
		s.mu.Unlock()
	}
	// No upgrade in progress for this device (none, firmware, ended or
	// not started yet): refuse requests, ignore answers.
	switch m := m.(type) {
	case pcp.BlockRequest:
		eff.send(pcp.AppendBlockAnswer(nil, pcp.ResultNoSuchTask, m.Block, nil))
	case pcp.DownloadResult:
		eff.send(pcp.Encode(pcp.DownloadResultAnswer{Result: pcp.ResultNoSuchTask}))
	case pcp.UpgradeResult:
		eff.send(pcp.Encode(pcp.UpgradeResultAnswer{Result: pcp.ResultNoSuchTask}))
	}
	e.apply(ctx, &eff)
	return nil
}

// pcpMessage advances a software sub-task with message m. s.mu is held.
func (e *Engine) pcpMessage(ctx context.Context, s *session, m pcp.Message, eff *effects) {
	now := time.Now()
	p := &s.content.Package
	switch m := m.(type) {
	case pcp.QueryVersionAnswer:
		if s.sub.Step != StepQuery {
			return
		}
		switch m.Result {
		case pcp.ResultOK:
			e.versionKnown(ctx, s, m.Version, now, eff)
		case pcp.ResultBusy, pcp.ResultLowBattery:
			// Asked again when the device next wakes, as for notify
			// and execute; VersionTimeout still bounds the step.
		default:
			e.finish(ctx, s, SubFail, ResultReason(m.Result), eff)
		}
	case pcp.NotifyAnswer:
		if s.sub.Step == StepNotify {
			e.requestAnswered(ctx, s, m.Result, StepDownload, StateDownloading, now, eff)
		}
	case pcp.BlockRequest:
		e.blockRequest(ctx, s, []byte(m.Version), m.Block, now, eff)
	case pcp.DownloadResult:
		eff.send(pcp.Encode(pcp.DownloadResultAnswer{Result: pcp.ResultOK}))
		if s.sub.Step != StepNotify && s.sub.Step != StepDownload {
			return // a repeat
		}
		if m.Result != pcp.ResultOK {
			e.finish(ctx, s, SubFail, ResultReason(m.Result), eff)
			return
		}
		e.stateEvent(s, StateDownloaded, eff)
		e.setStep(s, StepExecute, now)
		e.save(ctx, s)
		e.act(s, eff)
	case pcp.ExecuteAnswer:
		if s.sub.Step == StepExecute {
			e.requestAnswered(ctx, s, m.Result, StepResult, StateUpdating, now, eff)
		}
	case pcp.UpgradeResult:
		eff.send(pcp.Encode(pcp.UpgradeResultAnswer{Result: pcp.ResultOK}))
		if s.sub.Step != StepExecute && s.sub.Step != StepResult {
			return
		}
		s.sub.CurrentVersion = m.Version
		switch {
		case m.Result != pcp.ResultOK:
			e.finish(ctx, s, SubFail, ResultReason(m.Result), eff)
		case m.Version != p.Version:
			e.finish(ctx, s, SubFail, ReasonUpdateFailed, eff)
		default:
			e.finish(ctx, s, SubSuccess, "", eff)
		}
	}
}

// requestAnswered takes the device's answer r to a notify or execute: ok
// moves s to step next and reports state; busy and low battery leave s
// where it is, to ask again when the device next wakes; anything else
// fails s with the reason of r. s.mu is held.
func (e *Engine) requestAnswered(ctx context.Context, s *session, r pcp.Result, next Step, state string, now time.Time, eff *effects) {
	switch r {
	case pcp.ResultOK:
		e.setStep(s, next, now)
		e.save(ctx, s)
		e.stateEvent(s, state, eff)
	case pcp.ResultBusy, pcp.ResultLowBattery:
	default:
		e.finish(ctx, s, SubFail, ResultReason(r), eff)
	}
}

// blockRequest serves block n of the package to s (PCP 21), any valid
// block at any time (OTA-7). ver is the version field without its padding.
// s.mu is held.
func (e *Engine) blockRequest(ctx context.Context, s *session, ver []byte, n uint16, now time.Time, eff *effects) {
	p := &s.content.Package
	if string(ver) != p.Version {
		eff.send(pcp.AppendBlockAnswer(nil, pcp.ResultNoSuchTask, n, nil))
		return
	}
	if int(n) >= p.Blocks() {
		eff.send(pcp.AppendBlockAnswer(nil, pcp.ResultNoSuchBlock, n, nil))
		return
	}
	frame, err := e.block(s, int(n), now)
	if err != nil {
		e.log.Error("ota: read block", "package", p.ID, "block", n, "err", err)
		eff.send(pcp.AppendBlockAnswer(nil, pcp.ResultInternalError, n, nil))
		return
	}
	if s.sub.Step == StepNotify {
		// The notify answer was lost; the request says the device is
		// downloading.
		s.sub.Step = StepDownload
		e.stateEvent(s, StateDownloading, eff)
		e.save(ctx, s)
	}
	if s.sub.Step == StepDownload {
		s.sub.Deadline = now.Add(e.cfg.DownloadTimeout)
		if step := max(1, p.Blocks()/10); s.distinct-s.saved >= step {
			e.save(ctx, s)
		}
	}
	eff.send(frame)
}

// fastBlock serves a block request without building a Message (the hot
// path of a download). It returns false when the device has no upgrade in
// progress, for HandleFrame's general path to answer.
func (e *Engine) fastBlock(ctx context.Context, deviceID string, data []byte) (bool, error) {
	ver, n, err := pcp.ParseBlockRequest(data)
	if err != nil {
		return true, fmt.Errorf("ota: device %s: %w", deviceID, err)
	}
	s := e.session(deviceID)
	if s == nil {
		return false, nil
	}
	eff := effects{deviceID: deviceID}
	s.mu.Lock()
	if s.ended || s.sub.Kind != Software || s.sub.State != SubProcessing {
		s.mu.Unlock()
		return false, nil
	}
	e.blockRequest(ctx, s, ver, n, time.Now(), &eff)
	s.mu.Unlock()
	e.apply(ctx, &eff)
	return true, nil
}

// versionKnown applies the same-version and source-version rules (SPEC
// OTA-1, OTA-2) and moves on to the download. s.mu is held.
func (e *Engine) versionKnown(ctx context.Context, s *session, v string, now time.Time, eff *effects) {
	p := &s.content.Package
	s.sub.SourceVersion, s.sub.CurrentVersion = v, v
	switch {
	case v == p.Version:
		e.finish(ctx, s, SubFail, ReasonSameVersion, eff)
	case !p.Accepts(v):
		e.finish(ctx, s, SubFail, ReasonSourceVersion, eff)
	case !e.takeSlot(s):
		s.sub.Step, s.sub.Deadline = StepQueued, time.Time{}
		e.save(ctx, s)
	default:
		e.setStep(s, StepNotify, now)
		e.save(ctx, s)
		e.act(s, eff)
	}
}

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

// block reads block n into a new answer frame and records it as served.
func (e *Engine) block(s *session, n int, now time.Time) ([]byte, error) {
	c := s.content
	bs := c.blockSize()
	frame := make([]byte, pcp.BlockDataOffset, pcp.BlockDataOffset+bs)
	data, err := c.readBlock(frame[pcp.BlockDataOffset:], n, bs)
	if err != nil {
		return nil, err
	}
	// data already sits where AppendBlockAnswer copies it: the copy is
	// a no-op move and the block is read once, straight into the frame.
	frame = pcp.AppendBlockAnswer(frame[:0], pcp.ResultOK, uint16(n), data)
	if s.served == nil {
		s.served = make([]uint64, (c.Blocks()+63)/64)
		s.first = now
	}
	w, bit := n/64, uint64(1)<<(n%64)
	if s.served[w]&bit != 0 {
		s.resent++
		s.resentBytes += int64(len(data))
	} else {
		s.served[w] |= bit
		s.distinct++
	}
	s.last = now
	return frame, nil
}

// Progress returns the progress of a task over its sub-tasks, with live
// download progress.
func (e *Engine) Progress(ctx context.Context, taskID string) (TaskProgress, error) {
	t, err := e.Task(ctx, taskID)
	if err != nil {
		return TaskProgress{}, err
	}
	subs, err := e.SubTasks(ctx, taskID)
	if err != nil {
		return TaskProgress{}, err
	}
	blocks := 0
	if t.Kind == Software {
		if p, err := e.st.Package(ctx, t.PackageID); err == nil {
			blocks = p.Blocks()
		}
	}
	tp := TaskProgress{Total: len(subs), States: map[SubState]int{}}
	ended, dl := 0, 0
	for _, s := range subs {
		tp.States[s.State]++
		if s.State.Final() {
			ended++
		}
		dl += s.Progress(blocks)
	}
	if len(subs) > 0 {
		tp.Percent = ended * 100 / len(subs)
		if blocks > 0 || t.Kind == Firmware {
			tp.Download = dl / len(subs)
		}
	}
	return tp, nil
}
