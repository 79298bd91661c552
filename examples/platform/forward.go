package main

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store"
)

// newForward builds the rules engine (issue 23 item 5): rules and the
// forwarding outbox live in the platform's store (the bbolt file, or
// PostgreSQL's tables); webhook targets push ruleEvent through the
// platform's push engine; broker addresses pass the same guard and
// allow-list as callbacks (-push-allow). On a shared store the node claims
// forwarding messages as its push engine claims pushes (cfg.Node, the
// node id): each goes out from one node, a dead node's after its leases end.
func (p *Platform) newForward(cfg push.Config) (*forward.Engine, error) {
	e, err := forward.New(p.db.Forward(), p.push, forward.Config{
		Delivery: push.Config{Node: cfg.Node, Allow: cfg.Allow, Logger: p.logger.With("pkg", "forward")},
		Logger:   p.logger.With("pkg", "forward"),
	})
	if err == nil && p.metrics != nil {
		p.metrics.reg.MustRegister(forwardMetrics{e})
	}
	return e, err
}

// forwardMetrics exports the forwarding counters at scrape time; no rule
// ids or URLs in labels (SEC-5).
type forwardMetrics struct{ e *forward.Engine }

var (
	descFwdFired     = prometheus.NewDesc("doze_forward_rules_fired_total", "Times a forwarding rule matched a report.", nil, nil)
	descFwdEnqueued  = prometheus.NewDesc("doze_forward_enqueued_total", "Forwarding messages to brokers accepted into the outbox.", nil, nil)
	descFwdDelivered = prometheus.NewDesc("doze_forward_delivered_total", "Forwarding messages a broker took.", nil, nil)
	descFwdRetried   = prometheus.NewDesc("doze_forward_retried_total", "Forwarding tries that failed and were retried.", nil, nil)
	descFwdDropped   = prometheus.NewDesc("doze_forward_dropped_total", "Forwarding messages dropped when their keep time ended.", nil, nil)
	descFwdRejected  = prometheus.NewDesc("doze_forward_rejected_total", "Forwarding messages dropped as final (rule or target deleted, address refused).", nil, nil)
	descFwdRefused   = prometheus.NewDesc("doze_forward_refused_total", "Forwarding messages or reports the rules engine could not accept; their uplinks stay in the inbox (SEC-6).", nil, nil)
	descFwdQueued    = prometheus.NewDesc("doze_forward_queued", "Forwarding messages waiting or in flight.", nil, nil)
)

func (forwardMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFwdFired, descFwdEnqueued, descFwdDelivered, descFwdRetried, descFwdDropped, descFwdRejected, descFwdRefused, descFwdQueued} {
		ch <- d
	}
}

func (m forwardMetrics) Collect(ch chan<- prometheus.Metric) {
	st := m.e.Stats()
	for _, c := range []struct {
		d *prometheus.Desc
		v uint64
	}{{descFwdFired, m.e.Fired()}, {descFwdEnqueued, st.Enqueued}, {descFwdDelivered, st.Delivered}, {descFwdRetried, st.Retried},
		{descFwdDropped, st.Dropped}, {descFwdRejected, st.Rejected}, {descFwdRefused, st.Refused + m.e.Refused()}} {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, float64(c.v))
	}
	ch <- prometheus.MustNewConstMetric(descFwdQueued, prometheus.GaugeValue, float64(st.Queued))
}

// ruleEvent is the report as each app's rules see it.
func ruleEvent(app string, d registry.Device, rep push.Report) forward.Event {
	return forward.Event{AppID: app, DeviceID: d.ID, GatewayID: rep.GatewayID, ManufacturerID: d.Info.ManufacturerID,
		Model: d.Info.Model, DeviceType: d.Info.DeviceType, Services: rep.Services}
}

// admitUplink stores u with what the device owner's rules make of the
// report (APP-3): the ruleEvent pushes join the report's pushes, the
// broker messages go to the forwarding outbox, all in u's one transaction,
// and both engines queue theirs only when it committed. An error leaves
// the uplink in its inbox.
func (p *Platform) admitUplink(ctx context.Context, d registry.Device, rep push.Report, u store.Uplink) error {
	for _, app := range p.deviceApps(d) {
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

// forwardReport applies the device owner's rules to a report when the outbox is
// not in the platform's file (separate writes; see forward.Engine.Forward).
func (p *Platform) forwardReport(ctx context.Context, d registry.Device, rep push.Report) error {
	for _, app := range p.deviceApps(d) {
		if err := p.fwd.Forward(ctx, ruleEvent(app, d, rep)); err != nil {
			return fmt.Errorf("rules of app %s: %w", app, err)
		}
	}
	return nil
}

// closeForward closes the forwarding engine, if New got as far as making it.
func (p *Platform) closeForward() error {
	if p.fwd == nil {
		return nil
	}
	return p.fwd.Close()
}
