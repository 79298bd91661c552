package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Mode is a device's NB-IoT power-saving mode.
type Mode int

// The power modes of an NB-IoT device.
const (
	// PSM (power saving mode): after each uplink the device stays
	// reachable for Power.ActiveTime (the T3324 active timer), then sleeps
	// until its next uplink; downlink requests meanwhile go unanswered.
	PSM Mode = iota
	// DRX: the device is always reachable.
	DRX
	// EDRX: the device is reachable in a paging window at the start of
	// every eDRX cycle, and for Power.ActiveTime after each uplink.
	EDRX
)

// String returns "psm", "drx" or "edrx".
func (m Mode) String() string {
	switch m {
	case PSM:
		return "psm"
	case DRX:
		return "drx"
	case EDRX:
		return "edrx"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// ParseMode reads "psm", "drx" or "edrx" (any case).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "psm":
		return PSM, nil
	case "drx":
		return DRX, nil
	case "edrx":
		return EDRX, nil
	}
	return 0, &ConfigError{Field: "Mode", Value: s, Problem: "allowed: psm, drx, edrx"}
}

// Power is a device's power-saving behaviour. The zero value is PSM with a
// 30 s active time.
type Power struct {
	Mode Mode
	// ActiveTime is how long the device stays reachable after an uplink
	// (PSM and eDRX); 0 means 30s.
	ActiveTime time.Duration
	// Cycle is the eDRX cycle; 0 means 20.48s.
	Cycle time.Duration
	// PagingWindow is how long the device listens at the start of each
	// eDRX cycle; 0 means 2.56s.
	PagingWindow time.Duration
}

func (p Power) withDefaults() Power {
	if p.ActiveTime <= 0 {
		p.ActiveTime = 30 * time.Second
	}
	if p.Cycle <= 0 {
		p.Cycle = 20480 * time.Millisecond
	}
	if p.PagingWindow <= 0 {
		p.PagingWindow = 2560 * time.Millisecond
	}
	if p.PagingWindow > p.Cycle {
		p.PagingWindow = p.Cycle
	}
	return p
}

// Reachable reports whether the device answers downlink requests at now,
// given when its eDRX cycles started (anchor) and its last uplink
// (lastUplink; zero for none).
func (p Power) Reachable(anchor, lastUplink, now time.Time) bool {
	p = p.withDefaults()
	if p.Mode == DRX {
		return true
	}
	if !lastUplink.IsZero() && !now.Before(lastUplink) && now.Before(lastUplink.Add(p.ActiveTime)) {
		return true
	}
	if p.Mode == EDRX && !now.Before(anchor) {
		return now.Sub(anchor)%p.Cycle < p.PagingWindow
	}
	return false
}

// NextChange returns the first instant after now at which Reachable
// changes its answer, or the zero time when it never will (DRX, or PSM
// asleep until its next uplink).
func (p Power) NextChange(anchor, lastUplink, now time.Time) time.Time {
	p = p.withDefaults()
	if p.Mode == DRX {
		return time.Time{}
	}
	// Reachable is constant between these boundaries and right-continuous
	// at them, so the first boundary with another answer is the change.
	var bs []time.Time
	horizon := now
	if !lastUplink.IsZero() {
		bs = append(bs, lastUplink, lastUplink.Add(p.ActiveTime))
		if end := lastUplink.Add(p.ActiveTime); end.After(horizon) {
			horizon = end
		}
	}
	if p.Mode == EDRX {
		start := anchor
		if now.After(anchor) {
			start = now.Add(-now.Sub(anchor) % p.Cycle)
		}
		for t := start; !t.After(horizon.Add(2 * p.Cycle)); t = t.Add(p.Cycle) {
			bs = append(bs, t, t.Add(p.PagingWindow))
		}
	}
	slices.SortFunc(bs, func(a, b time.Time) int { return a.Compare(b) })
	was := p.Reachable(anchor, lastUplink, now)
	for _, b := range bs {
		if b.After(now) && p.Reachable(anchor, lastUplink, b) != was {
			return b
		}
	}
	return time.Time{}
}
