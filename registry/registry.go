package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/doze-io/doze/internal/lifecycle"
	"github.com/google/uuid"
)

// Config holds the registry's settings. The zero value is ready to use.
type Config struct {
	// DefaultTimeout is the binding timeout of a registration that gives
	// none (REG-2). 0 means 180s; a negative value means never.
	DefaultTimeout time.Duration
	// SilencePeriod is how long an NB-IoT device may send nothing before
	// it goes OFFLINE (REG-3, §3.6). 0 means 25h.
	SilencePeriod time.Duration
	// DisconnectGrace is how long after a connection-oriented device
	// disconnects it goes OFFLINE (REG-3, §3.6). 0 means 1m.
	DisconnectGrace time.Duration
	// Recheck is the longest Run sleeps before asking the Store for the
	// next deadline again, so that deadlines written by other processes
	// sharing the Store are acted on. 0 means 1m.
	Recheck time.Duration
	// Node names this registry among several that share one Store (a
	// platform node id, stable across restarts). When set, the Store must
	// implement Leaser, and only the node holding the sweep lease acts on
	// deadlines (see Leaser). "" means one node: Run sweeps always.
	Node string
	// SweepLease is how long the sweep lease lasts; its holder renews it
	// at every pass of Run (at least every Recheck), and another node
	// takes over within SweepLease plus Recheck after it dies. It must
	// exceed Recheck. 0 means 3×Recheck.
	SweepLease time.Duration
	// Listener is told about device events; nil means nobody is.
	Listener Listener
	// Logger gets debug and warning records; nil discards them.
	Logger *slog.Logger
}

// Default settings (REG-2, REG-3).
const (
	DefaultTimeout         = 180 * time.Second
	DefaultSilencePeriod   = 25 * time.Hour
	DefaultDisconnectGrace = time.Minute
	DefaultRecheck         = time.Minute
)

// sweepBatch is how many due devices Run handles per Store.Due call.
const sweepBatch = 256

// Registry is the device registry: registration, credentials, binding,
// status, groups and gateways (REG-1…REG-5) on top of a Store. It is safe
// for concurrent use; it holds no lock of its own (the Store makes each
// change atomic).
type Registry struct {
	st       Store
	products Products
	cfg      Config
	log      *slog.Logger

	leaser    Leaser        // nil unless Config.Node is set
	wake      chan struct{} // a write set a deadline earlier than Run's timer
	scheduled atomic.Int64  // Unix nanoseconds Run sleeps until; MaxInt64 when not running

	life lifecycle.Guard // Run and Close (see the package doc)
}

// New returns a Registry over st that checks products against products.
// It starts nothing: call Run to act on binding timeouts and silence.
func New(st Store, products Products, cfg Config) (*Registry, error) {
	if st == nil {
		return nil, errors.New("registry: New: nil Store")
	}
	if products == nil {
		return nil, errors.New("registry: New: nil Products")
	}
	if cfg.DefaultTimeout == 0 {
		cfg.DefaultTimeout = DefaultTimeout
	}
	if cfg.DefaultTimeout < 0 {
		cfg.DefaultTimeout = 0
	}
	if cfg.DefaultTimeout > MaxTimeout {
		return nil, fmt.Errorf("registry: Config.DefaultTimeout %v: %w: at most %v", cfg.DefaultTimeout, ErrInvalid, MaxTimeout)
	}
	if cfg.SilencePeriod == 0 {
		cfg.SilencePeriod = DefaultSilencePeriod
	}
	if cfg.DisconnectGrace == 0 {
		cfg.DisconnectGrace = DefaultDisconnectGrace
	}
	if cfg.Recheck == 0 {
		cfg.Recheck = DefaultRecheck
	}
	for name, v := range map[string]time.Duration{"SilencePeriod": cfg.SilencePeriod, "DisconnectGrace": cfg.DisconnectGrace, "Recheck": cfg.Recheck} {
		if v < 0 {
			return nil, fmt.Errorf("registry: Config.%s %v: %w: must not be negative", name, v, ErrInvalid)
		}
	}
	if cfg.SweepLease == 0 {
		cfg.SweepLease = 3 * cfg.Recheck
	}
	var leaser Leaser
	if cfg.Node != "" {
		var ok bool
		if leaser, ok = st.(Leaser); !ok {
			return nil, fmt.Errorf("registry: Config.Node %q is set, but the Store (%T) cannot hold leases (registry.Leaser): %w; leave Node empty for a Store of one node", cfg.Node, st, ErrInvalid)
		}
		if cfg.SweepLease <= cfg.Recheck {
			return nil, fmt.Errorf("registry: Config.SweepLease %v: %w: must exceed Config.Recheck %v, so its holder renews it in time", cfg.SweepLease, ErrInvalid, cfg.Recheck)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		st: st, products: products, cfg: cfg, log: log, leaser: leaser,
		wake: make(chan struct{}, 1),
	}
	r.scheduled.Store(maxNanos)
	return r, nil
}

const maxNanos = 1<<63 - 1

// Config returns the settings in use, defaults filled in.
func (r *Registry) Config() Config { return r.cfg }

func (r *Registry) check(ctx context.Context) error {
	if r.life.Closed() {
		return ErrClosed
	}
	return ctx.Err()
}

func (r *Registry) emit(e Event) {
	if r.cfg.Listener != nil {
		r.cfg.Listener.DeviceChanged(e)
	}
}

// deadline recomputes d.Deadline and wakes Run if it is earlier than
// Run's timer.
func (r *Registry) deadline(d *Device) {
	d.Deadline = NextDeadline(d, r.cfg.SilencePeriod, r.cfg.DisconnectGrace)
}

func (r *Registry) poke(d *Device) {
	if !d.Deadline.IsZero() && d.Deadline.UnixNano() < r.scheduled.Load() {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// newID returns a device or group id: a UUIDv7 (RFC 9562), time-ordered
// and, within this process, strictly increasing even within a millisecond
// (google/uuid counts sub-millisecond steps), so ids sort by creation.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// Close stops Run (if it runs) and waits for it to return. Every later
// call fails with ErrClosed. Close may come before Run and is idempotent.
func (r *Registry) Close() error {
	r.life.Stop()
	return nil
}

// Run acts on deadlines until ctx is done or Close is called: it deletes
// registrations whose binding timeout passed (EventExpired, REG-2) and
// turns silent or disconnected devices OFFLINE (REG-3). It sleeps until the
// earliest Device.Deadline in the Store, at most Config.Recheck. Run
// returns nil when stopped. A second Run returns an error wrapping ErrClosed
// ("Run called twice"); Run after Close returns ErrClosed (see the package
// doc).
func (r *Registry) Run(ctx context.Context) error {
	ctx, err := r.life.Start(ctx, "registry.Registry", ErrClosed)
	if err != nil {
		return err
	}
	defer r.life.Finish()
	defer r.scheduled.Store(maxNanos)

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		// While sweeping, every write with a deadline pokes: one written
		// after sweep read the next deadline must not be slept past.
		r.scheduled.Store(maxNanos)
		now := time.Now()
		var next time.Time
		if r.sweeper(ctx, now) {
			next = r.sweep(ctx, now)
		}
		sleep := r.cfg.Recheck
		if !next.IsZero() {
			sleep = min(sleep, next.Sub(now))
		}
		r.scheduled.Store(now.Add(sleep).UnixNano())
		timer.Reset(max(sleep, 0))
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// sweep settles every device due at now and returns the next deadline
// (zero if none).
func (r *Registry) sweep(ctx context.Context, now time.Time) time.Time {
	for ctx.Err() == nil {
		due, err := r.st.Due(ctx, now, sweepBatch)
		if ctx.Err() != nil {
			break // stopped: what is left is settled after a restart
		}
		if err != nil {
			r.log.Warn("registry: reading due devices", "err", err)
			return now.Add(time.Second)
		}
		failed := 0
		for _, d := range due {
			if err := r.settle(ctx, d.ID, now); err != nil && !errors.Is(err, ErrNotFound) && ctx.Err() == nil {
				failed++
				r.log.Warn("registry: settling device", "deviceId", d.ID, "err", err)
			}
		}
		if failed > 0 {
			return now.Add(time.Second) // retry soon rather than spin
		}
		if len(due) < sweepBatch {
			break
		}
	}
	next, err := r.st.Due(ctx, maxTime, 1)
	if err != nil || len(next) == 0 {
		return time.Time{}
	}
	return next[0].Deadline
}

var maxTime = time.Unix(1<<62, 0)

var errExpire = errors.New("registry: expire")

// settle acts on one device whose deadline passed.
func (r *Registry) settle(ctx context.Context, id string, now time.Time) error {
	var from Status
	d, err := r.st.Update(ctx, id, func(d *Device) error {
		from = d.Status
		if expired(d, now) {
			return errExpire
		}
		if at := OfflineAt(d, r.cfg.SilencePeriod, r.cfg.DisconnectGrace); !at.IsZero() && !now.Before(at) {
			d.Status = StatusOffline
		}
		r.deadline(d)
		return nil
	})
	if errors.Is(err, errExpire) {
		err := r.remove(ctx, id, EventExpired, func(d Device) error {
			if !expired(&d, now) {
				return errNotDue // bound in the meantime
			}
			return nil
		})
		if errors.Is(err, errNotDue) {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if d.Status != from {
		r.log.Debug("registry: status changed", "deviceId", id, "from", from, "to", d.Status)
	}
	r.statusEvent(d, from)
	return nil
}

var errNotDue = errors.New("registry: not due")
