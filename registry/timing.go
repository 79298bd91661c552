package registry

import "time"

// Timing rules as arithmetic on time.Time (REG-2, REG-3). The registry
// stores the result in Device.Deadline; Run acts on it.

// MaxTimeout is the largest binding timeout: 2147483647 seconds (REG-2).
const MaxTimeout = 2147483647 * time.Second

// ExpiresAt returns when a registration made at created with binding
// timeout expires if its device has not bound by then, or the zero time
// for timeout 0 (never, REG-2).
func ExpiresAt(created time.Time, timeout time.Duration) time.Time {
	if timeout <= 0 {
		return time.Time{}
	}
	return created.Add(timeout)
}

// OfflineAt returns when d goes OFFLINE if nothing more is heard from it,
// or the zero time if it will not (REG-3): only an ONLINE device goes
// OFFLINE; a connection-oriented device holding its connection open stays
// ONLINE; one that disconnected goes OFFLINE grace after the disconnect;
// any other (NB-IoT) device goes OFFLINE silence after it was last seen.
func OfflineAt(d *Device, silence, grace time.Duration) time.Time {
	switch {
	case d.Status != StatusOnline, d.Connected:
		return time.Time{}
	case !d.DisconnectedAt.IsZero() && !d.DisconnectedAt.Before(d.LastSeen):
		return d.DisconnectedAt.Add(grace)
	default:
		return d.LastSeen.Add(silence)
	}
}

// NextDeadline returns the next moment d needs the registry's attention:
// its binding expiry while unbound, else when it goes OFFLINE, else zero.
func NextDeadline(d *Device, silence, grace time.Duration) time.Time {
	if !d.Bound {
		return ExpiresAt(d.CreatedAt, d.Timeout)
	}
	return OfflineAt(d, silence, grace)
}

// expired reports whether unbound d's registration has expired at now.
func expired(d *Device, now time.Time) bool {
	if d.Bound {
		return false
	}
	at := ExpiresAt(d.CreatedAt, d.Timeout)
	return !at.IsZero() && !now.Before(at)
}
