package ota

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doze-io/doze/internal/lease"
	"github.com/doze-io/doze/internal/lifecycle"
)

// Engine runs upgrade tasks: it decides per device, drives PCP and object 5
// and serves package blocks. It is safe for concurrent use. It follows the
// package's lifecycle (see the package doc).
type Engine struct {
	// life is Run and Close. A field, not embedded: embedding would add
	// Start, Finish and Closed to the Engine's methods, and its Stop would
	// clash with Engine.Stop.
	life lifecycle.Guard

	st    Store
	files Files
	ch    Channel
	cfg   Config
	log   *slog.Logger

	// loadMu and loaded make the load of unfinished tasks from the Store
	// happen once, by Run or by the first method that needs them.
	loadMu sync.Mutex
	loaded atomic.Bool

	createMu sync.Mutex // orders CreateTask, retries and Stop
	mu       sync.RWMutex
	tasks    map[string]*taskRun // unfinished, or a retry planned
	devices  map[string]*session // active sub-task of each device
	contents map[string]*Content
	fwQueue  []string
	fwQueued map[string]bool
	slots    int        // sub-tasks holding a download slot (MaxDownloads)
	queued   []*session // sub-tasks waiting for a slot, in order

	wake      chan struct{}
	fwSignal  chan struct{}
	claimer   Claimer   // the Store, with Config.Node; else nil
	claims    lease.Set // the leases this engine took (Config.Node)
	lastClaim time.Time // of the Run loop's last claim (Config.Node)

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

	// Claims (Config.Node).
	stored  time.Time // sub.Deadline as last written or loaded
	touched bool      // this engine wrote the sub-task or moved its step on since it was loaded
	checked time.Time // when the stored copy was last read back
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
// and ch (PCP frames). It validates cfg and does nothing else: no
// goroutine, no I/O. The unfinished tasks in st, so that a restarted engine
// carries on, are loaded by Run or by the first method that needs them,
// whichever comes first (see ready).
func New(st Store, files Files, ch Channel, cfg Config) (*Engine, error) {
	if st == nil || files == nil || ch == nil {
		return nil, fmt.Errorf("%w: New needs a Store, Files and a Channel", ErrInvalid)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	claimer, err := cfg.checkClaim(st)
	if err != nil {
		return nil, err
	}
	cfg.fill()
	e := &Engine{st: st, files: files, ch: ch, cfg: cfg, log: cfg.Logger, claimer: claimer,
		tasks: map[string]*taskRun{}, devices: map[string]*session{}, contents: map[string]*Content{},
		fwQueued: map[string]bool{}, wake: make(chan struct{}, 1), fwSignal: make(chan struct{}, 1)}
	e.nextWake.Store(math.MaxInt64)
	return e, nil
}

// ready loads the unfinished tasks from the Store under ctx unless that
// was done: every method that reads or changes tasks, sub-tasks or device
// sessions calls it first, so that methods called between New and Run see
// what a restarted engine carries on with. A failed load changes nothing
// and is tried again by the next call.
func (e *Engine) ready(ctx context.Context) error {
	if e.loaded.Load() {
		return nil
	}
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	if e.loaded.Load() {
		return nil
	}
	if err := e.load(ctx); err != nil {
		return err
	}
	e.loaded.Store(true)
	return nil
}

// readyOrLog is ready for the methods that return no error: a failed load
// is logged and they do nothing.
func (e *Engine) readyOrLog(ctx context.Context) bool {
	if err := e.ready(ctx); err != nil {
		e.log.Error("ota: load unfinished tasks", "err", err)
		return false
	}
	return true
}

// load reads the unfinished tasks and their active sub-tasks and adds them
// to the engine, all or nothing. loadMu is held.
func (e *Engine) load(ctx context.Context) error {
	tasks, err := e.st.Tasks(ctx)
	if err != nil {
		return fmt.Errorf("ota: load tasks: %w", err)
	}
	now := time.Now()
	runs := map[string]*taskRun{}
	devices := map[string]*session{}
	var slots int
	var queued []*session
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
				pending: s.State == SubWait && ready.After(now), savedBytes: s.Downloaded, stored: s.Deadline,
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
					slots++
				case StepQueued:
					queued = append(queued, ss)
				}
			}
			devices[s.DeviceID] = ss
		}
		runs[t.ID] = tr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	maps.Copy(e.tasks, runs)
	maps.Copy(e.devices, devices)
	e.slots += slots
	e.queued = append(e.queued, queued...)
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

// Close stops Run, waits until it has returned, and closes package
// contents. It is idempotent and may come before Run; CreateTask and Run
// fail with ErrClosed after it.
func (e *Engine) Close() error {
	e.life.Stop()
	e.closeContents()
	return nil
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
	s.stored, s.touched = s.sub.Deadline, true
	if err := e.st.PutSubTask(ctx, s.sub); err != nil {
		e.log.Error("ota: save sub-task", "subtask", s.sub.ID(), "err", err)
	}
}

func (e *Engine) stateEvent(s *session, state string, eff *effects) {
	eff.states = append(eff.states, StateEvent{Kind: s.sub.Kind, TaskID: s.sub.TaskID, DeviceID: s.sub.DeviceID,
		SubTaskID: s.sub.ID(), State: state, Time: time.Now()})
}

// session returns the active session of a device, or nil.
func (e *Engine) session(deviceID string) *session {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.devices[deviceID]
}
