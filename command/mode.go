package command

import (
	"fmt"
	"time"
)

// Kind is a device's power-saving mode (CMD-3, FAQ §3.26).
type Kind uint8

// The power-saving modes. The zero Kind is PSM, the default of a new
// application (§3.26).
const (
	// PSM: asleep except for a short time after each uplink; cached
	// commands go out only after the device sends something.
	PSM Kind = iota
	// DRX: reachable all the time; commands go out at once, queued per
	// device.
	DRX
	// EDRX: reachable in the paging time window of each eDRX cycle, and
	// for a short time after an uplink.
	EDRX
)

var kindNames = [...]string{PSM: "PSM", DRX: "DRX", EDRX: "eDRX"}

// String returns "PSM", "DRX" or "eDRX".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// MarshalText returns the name of k.
func (k Kind) MarshalText() ([]byte, error) {
	if int(k) >= len(kindNames) {
		return nil, fmt.Errorf("%w: kind %d", ErrBadMode, uint8(k))
	}
	return []byte(kindNames[k]), nil
}

// UnmarshalText parses "PSM", "DRX" or "eDRX" (case as written here, or
// all upper case).
func (k *Kind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "PSM":
		*k = PSM
	case "DRX":
		*k = DRX
	case "eDRX", "EDRX":
		*k = EDRX
	default:
		return fmt.Errorf("%w: kind %q; want PSM, DRX or eDRX", ErrBadMode, b)
	}
	return nil
}

// Defaults of a Mode's zero fields.
const (
	// DefaultActiveTime is the PSM active timer T3324 assumed when a Mode
	// gives none: how long a device stays reachable after an uplink.
	DefaultActiveTime = 20 * time.Second
	// DefaultCycle is the eDRX cycle assumed when a Mode gives none.
	DefaultCycle = 81920 * time.Millisecond
	// DefaultPagingWindow is the eDRX paging time window assumed when a Mode
	// gives none.
	DefaultPagingWindow = 10240 * time.Millisecond
	// DefaultTimeout is the time a PSM or DRX command may stay SENT or
	// DELIVERED before it ends TIMEOUT (CMD-3). eDRX uses 2 × cycle + 120 s.
	DefaultTimeout = 300 * time.Second
)

// Upper bounds of a Mode's timers: the largest T3324 (31 × 6 min) and eDRX
// cycle (10485.76 s) of 3GPP TS 24.008, and a timeout of 30 days. They keep
// the arithmetic of Window and Deadline far from overflow.
const (
	maxActiveTime = 186 * time.Minute
	maxCycle      = 10485760 * time.Millisecond
	maxTimeout    = 30 * 24 * time.Hour
)

// Mode is a device's power-saving mode with the device's own timers
// (CMD-3, CMD-10). The zero Mode is PSM with the default timers.
type Mode struct {
	Kind Kind `json:"mode"`
	// ActiveTime is the PSM active timer T3324: the device is reachable
	// for this long after each uplink (also used for eDRX devices right
	// after an uplink). 0 means DefaultActiveTime (20 s); at most 186 min.
	ActiveTime time.Duration `json:"activeTime,omitempty"`
	// Cycle is the eDRX cycle. 0 means DefaultCycle (81.92 s); at most
	// 10485.76 s.
	Cycle time.Duration `json:"cycle,omitempty"`
	// PagingWindow is the eDRX paging time window at the start of each
	// cycle. 0 means DefaultPagingWindow (10.24 s).
	PagingWindow time.Duration `json:"pagingWindow,omitempty"`
	// Timeout is how long a command may stay SENT or DELIVERED. 0 means
	// 300 s for PSM and DRX and 2 × Cycle + 120 s for eDRX; at most 30
	// days.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Follows is the caller's: the name of the default this mode was taken
	// from (the platform keeps the id of the device's application there),
	// "" when the mode was set for the device itself. The engine stores it
	// with the mode and never reads it.
	Follows string `json:"follows,omitempty"`
}

// inherit returns m with its zero timers taken from def: the active time
// and the eDRX timers always, the timeout only when def is of m's kind
// (an eDRX timeout depends on the cycle).
func (m Mode) inherit(def Mode) Mode {
	if m.ActiveTime == 0 {
		m.ActiveTime = def.ActiveTime
	}
	if m.Cycle == 0 {
		m.Cycle = def.Cycle
	}
	if m.PagingWindow == 0 {
		m.PagingWindow = def.PagingWindow
	}
	if m.Timeout == 0 && def.Kind == m.Kind {
		m.Timeout = def.Timeout
	}
	return m
}

// Validate reports a Mode whose fields make no sense (a negative timer, one
// above its bound, a paging window longer than the cycle), naming the
// field.
func (m Mode) Validate() error {
	if int(m.Kind) >= len(kindNames) {
		return &FieldError{Field: "mode", Value: m.Kind.String(), Rule: "PSM, DRX or eDRX", Err: ErrBadMode}
	}
	for _, f := range []struct {
		name   string
		d, max time.Duration
	}{{"activeTime", m.ActiveTime, maxActiveTime}, {"cycle", m.Cycle, maxCycle}, {"pagingWindow", m.PagingWindow, maxCycle}, {"timeout", m.Timeout, maxTimeout}} {
		if f.d < 0 || f.d > f.max {
			return &FieldError{Field: f.name, Value: f.d.String(), Rule: "0 (default) or a positive duration up to " + f.max.String(), Err: ErrBadMode}
		}
	}
	n := m.withDefaults()
	if n.PagingWindow > n.Cycle {
		return &FieldError{Field: "pagingWindow", Value: n.PagingWindow.String(), Rule: "no longer than the eDRX cycle " + n.Cycle.String(), Err: ErrBadMode}
	}
	return nil
}

func (m Mode) withDefaults() Mode {
	if m.ActiveTime == 0 {
		m.ActiveTime = DefaultActiveTime
	}
	if m.Cycle == 0 {
		m.Cycle = DefaultCycle
	}
	if m.PagingWindow == 0 {
		m.PagingWindow = DefaultPagingWindow
	}
	return m
}

// TimeoutAfterSend returns how long a command of a device in mode m may
// stay SENT or DELIVERED (CMD-3): Timeout when set, else 300 s for PSM and
// DRX and 2 × cycle + 120 s for eDRX.
func (m Mode) TimeoutAfterSend() time.Duration {
	if m.Timeout > 0 {
		return m.Timeout
	}
	if m.Kind == EDRX {
		return 2*m.withDefaults().Cycle + 120*time.Second
	}
	return DefaultTimeout
}

// Deadline returns when a command sent at sent ends TIMEOUT without an ACK
// or result.
func (m Mode) Deadline(sent time.Time) time.Time { return sent.Add(m.TimeoutAfterSend()) }

// Window returns the period in which a device in mode m, whose last uplink
// was at lastUplink (zero if unknown), can be reached: the one containing
// now, else the next one. ok is false when no window is known, which for
// PSM means "wait for the next uplink". end is zero for a window without
// end (DRX).
//
//   - PSM: [lastUplink, lastUplink + ActiveTime).
//   - DRX: [now, ∞).
//   - eDRX: [lastUplink, lastUplink + ActiveTime), then the paging windows
//     [lastUplink + k·Cycle, lastUplink + k·Cycle + PagingWindow) for
//     k = 1, 2, …; with no uplink known the engine cannot place the windows
//     and tries at once ([now, ∞)), as the network buffers downlink for
//     an eDRX device until its next paging window.
func (m Mode) Window(now, lastUplink time.Time) (start, end time.Time, ok bool) {
	m = m.withDefaults()
	switch m.Kind {
	case DRX:
		return now, time.Time{}, true
	case PSM:
		if lastUplink.IsZero() {
			return time.Time{}, time.Time{}, false
		}
		if end := lastUplink.Add(m.ActiveTime); now.Before(end) {
			return lastUplink, end, true
		}
		return time.Time{}, time.Time{}, false
	case EDRX:
		if lastUplink.IsZero() {
			return now, time.Time{}, true
		}
		if end := lastUplink.Add(m.ActiveTime); now.Before(end) {
			return lastUplink, end, true
		}
		k := int64(now.Sub(lastUplink) / m.Cycle)
		if k >= 1 {
			start := lastUplink.Add(time.Duration(k) * m.Cycle)
			if end := start.Add(m.PagingWindow); now.Before(end) {
				return start, end, true
			}
		}
		start := lastUplink.Add(time.Duration(k+1) * m.Cycle)
		return start, start.Add(m.PagingWindow), true
	}
	return time.Time{}, time.Time{}, false
}

// Reachable reports whether a device in mode m, last heard at lastUplink,
// can be reached at now.
func (m Mode) Reachable(now, lastUplink time.Time) bool {
	start, _, ok := m.Window(now, lastUplink)
	return ok && !now.Before(start)
}

// RetransmitGap returns how long after a send the engine waits for an ACK
// before retransmission number n+1, n being the retransmissions made so
// far: 10 s, 20 s, 40 s (the lower ends of FAQ §7.3's 10–15 s, 20–30 s and
// 40–60 s).
func RetransmitGap(n int) time.Duration {
	if n < 0 {
		n = 0
	}
	return RetransmitBase << min(n, 16)
}

// RetransmitBase is the gap before the first retransmission (FAQ §7.3) and
// the shortest time between a send and a re-send on wake-up (CMD-4).
const RetransmitBase = 10 * time.Second

// NextTry returns when a device in mode m, last heard at lastUplink, should
// next be tried for a command at its queue's head: now when it is reachable,
// the start of its next window (eDRX), or the zero time when only an uplink
// can open a window (PSM).
func (m Mode) NextTry(now, lastUplink time.Time) time.Time {
	start, _, ok := m.Window(now, lastUplink)
	switch {
	case !ok:
		return time.Time{}
	case start.After(now):
		return start
	}
	return now
}
