package main

import (
	"context"
	"fmt"

	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store"
)

// newForward builds the rules engine (issue 23 item 5): rules and the
// forwarding outbox live in the platform's file; webhook targets push
// ruleEvent through the platform's push engine; broker addresses pass the
// same guard and allow-list as callbacks (-push-allow).
func (p *Platform) newForward(cfg push.Config) (*forward.Engine, error) {
	return forward.New(p.db.Forward(), p.push, forward.Config{
		Delivery: push.Config{Allow: cfg.Allow, Logger: p.logger.With("pkg", "forward")},
		Logger:   p.logger.With("pkg", "forward"),
	})
}

// ruleEvent is the report as each app's rules see it.
func ruleEvent(app string, d registry.Device, rep push.Report) forward.Event {
	return forward.Event{AppID: app, DeviceID: d.ID, GatewayID: rep.GatewayID, ManufacturerID: d.Info.ManufacturerID,
		Model: d.Info.Model, DeviceType: d.Info.DeviceType, Services: rep.Services}
}

// admitUplink stores u with what every app's rules make of the report: the
// ruleEvent pushes join the report's pushes, the broker messages go to the
// forwarding outbox, all in u's one transaction, and both engines queue
// theirs only when it committed. An error leaves the uplink in its inbox.
func (p *Platform) admitUplink(ctx context.Context, d registry.Device, rep push.Report, u store.Uplink) error {
	for _, app := range p.apps() {
		hooks, out, err := p.fwd.Messages(ctx, ruleEvent(app, d, rep))
		if err != nil {
			return fmt.Errorf("rules of app %s: %w", app, err)
		}
		u.Messages = append(u.Messages, hooks...)
		u.Forward = append(u.Forward, out...)
	}
	return p.push.Admit(ctx, u.Messages, func() error {
		return p.fwd.Admit(ctx, u.Forward, func() error { return p.db.SaveUplink(u) })
	})
}

// forwardReport applies every app's rules to a report when the outbox is
// not in the platform's file (separate writes; see forward.Engine.Forward).
func (p *Platform) forwardReport(ctx context.Context, d registry.Device, rep push.Report) error {
	for _, app := range p.apps() {
		if err := p.fwd.Forward(ctx, ruleEvent(app, d, rep)); err != nil {
			return fmt.Errorf("rules of app %s: %w", app, err)
		}
	}
	return nil
}
