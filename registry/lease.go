package registry

import (
	"context"
	"time"
)

// Leaser is an optional ability of a Store that several registries (one
// per platform node) share: a named lease, held by one owner at a time.
// With Config.Node set, Run sweeps deadlines (binding timeouts, devices
// going OFFLINE) only while it holds the lease SweepLeaseName, taken or
// renewed at every pass; the other nodes ask again every Recheck and one
// of them takes over when the holder's lease ends. store/postgres's
// registry store implements it (a row of the "leases" table).
//
// Each device is settled in one Store transaction (Update locks the row),
// so even two sweepers at once would not both turn a device OFFLINE or
// tell the Listener twice; the lease spares the other nodes the work (a
// Due scan and a locked read-and-write per due device, per node).
type Leaser interface {
	// AcquireLease takes or renews the lease called name for owner until
	// now+lease, and reports whether owner holds it: yes when nobody
	// held it, when its holder's lease ended by now, or when owner held
	// it already.
	AcquireLease(ctx context.Context, name, owner string, now time.Time, lease time.Duration) (bool, error)
}

// SweepLeaseName names the lease of the deadline sweep (Leaser).
const SweepLeaseName = "registry.sweep"

// sweeper reports whether this registry sweeps now: always without
// Config.Node, else while it holds the sweep lease.
func (r *Registry) sweeper(ctx context.Context, now time.Time) bool {
	if r.leaser == nil {
		return true
	}
	ok, err := r.leaser.AcquireLease(ctx, SweepLeaseName, r.cfg.Node, now, r.cfg.SweepLease)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("registry: taking the sweep lease; not sweeping until it is held", "node", r.cfg.Node, "err", err)
		}
		return false
	}
	return ok
}
