package main

// Device status moves the platform makes besides the registry's own
// (REG-3): OFFLINE when an LwM2M registration ends, ABNORMAL while a
// device sends only what cannot be used.

import (
	"context"
	"fmt"
	"sync"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/registry"
)

// registrationEnded applies the connection rule of REG-3 to an LwM2M
// registration: a device that de-registers, or whose lifetime passes
// without an Update, has left, and goes OFFLINE disconnectGrace (1 min)
// later unless it registers again meanwhile (a reboot's De-register then
// Register does not flap). The registry makes the move and subscribers
// get deviceInfoChanged. A registration replaced by a new one, or ended
// because the device was deleted, changes nothing here.
func (p *Platform) registrationEnded(ctx context.Context, d registry.Device, why transport.Reason) {
	if why == transport.ReasonRemoved {
		p.bad.reset(d.ID) // deleted
	}
	if why != transport.ReasonDeregistered && why != transport.ReasonExpired {
		return
	}
	if _, err := p.reg.Disconnect(ctx, d.ID); err != nil {
		p.logger.Warn("recording the end of a registration", "device", d.ID, "reason", why, "err", err)
	}
}

// unusable counts an uplink of d that could not be used at all (over the
// size limit, no codec, undecodable, or no service fitting the product
// model). After abnormalAfter (3) of them in a row the device is ABNORMAL:
// it is talking, but not in a way the platform understands (a firmware
// that does not match its product, a wrong codec). The count lives in
// memory; the status is stored.
func (p *Platform) unusable(ctx context.Context, d registry.Device) {
	count := p.bad.add(d.ID)
	if count < p.cfg.AbnormalAfter || d.Status == registry.StatusAbnormal {
		return
	}
	if _, err := p.reg.MarkAbnormal(ctx, d.ID); err != nil {
		p.logger.Warn("marking a device ABNORMAL", "device", d.ID, "err", err)
		return
	}
	p.log.Add(d.ID, "status", fmt.Sprintf("ABNORMAL: its last %d uplinks could not be used", count))
}

// usable records an uplink of d that was used (a report stored, a command
// response): the count of unusable ones starts again, and an ABNORMAL
// device is ABNORMAL no longer (the registry makes it ONLINE).
func (p *Platform) usable(ctx context.Context, d registry.Device) {
	p.bad.reset(d.ID)
	if d.Status != registry.StatusAbnormal {
		return
	}
	if _, err := p.reg.ClearAbnormal(ctx, d.ID); err != nil {
		p.logger.Warn("clearing ABNORMAL", "device", d.ID, "err", err)
		return
	}
	p.log.Add(d.ID, "status", "ABNORMAL cleared: an uplink could be used again")
}

// badCounts counts each device's unusable uplinks in a row. A device is
// in it only while its last uplink was unusable; deleting it (its
// registration removed) takes it out.
type badCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (b *badCounts) add(deviceID string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n == nil {
		b.n = map[string]int{}
	}
	b.n[deviceID]++
	return b.n[deviceID]
}

func (b *badCounts) reset(deviceID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.n, deviceID)
}
