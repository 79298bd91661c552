package main

import (
	"context"
	"net/http"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/registry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the platform's Prometheus metrics (/metrics). Counters are
// bumped where things happen; gauges that mirror state (devices by status,
// push queues, upgrade progress) are read from the packages at scrape time.
type metrics struct {
	reg          *prometheus.Registry
	uplinks      prometheus.Counter
	decodeErrors prometheus.Counter
	// uplinkFailures counts tries of an uplink whose effects could not
	// all be stored (SEC-6).
	uplinkFailures prometheus.Counter
	encodeErrors   prometheus.Counter
	// uplinksBusy counts uplinks not acknowledged because Config.MaxBacklog
	// uplinks were waiting for the pipeline.
	uplinksBusy  prometheus.Counter
	commandMoves *prometheus.CounterVec
	apiCalls     *prometheus.CounterVec
}

func newMetrics(p *Platform) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		uplinks: prometheus.NewCounter(prometheus.CounterOpts{Name: "doze_uplinks_total",
			Help: "Uplink payloads received from devices (data reports, command responses, PCP frames)."}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "doze_decode_errors_total",
			Help: "Uplink payloads the product's codec or model refused."}),
		uplinkFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "doze_uplink_failures_total",
			Help: "Tries of an uplink whose history, shadow or pushes could not all be stored; the uplink stays in the inbox and is tried again (SEC-6)."}),
		uplinksBusy: prometheus.NewCounter(prometheus.CounterOpts{Name: "doze_uplinks_not_acknowledged_total",
			Help: "Uplinks not acknowledged because maxBacklog acknowledged uplinks were waiting for processing; the device sends them again."}),
		encodeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "doze_encode_errors_total",
			Help: "Commands the product's codec could not encode."}),
		commandMoves: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "doze_command_transitions_total",
			Help: "Command state changes, by the state entered."}, []string{"state"}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "doze_api_calls_total",
			Help: "Northbound API calls by outcome (ok, error, unauthorized, forbidden, rate_limited, forwarded: served by the cluster node with the device's session)."}, []string{"outcome"}),
	}
	m.reg.MustRegister(m.uplinks, m.decodeErrors, m.uplinkFailures, m.encodeErrors, m.uplinksBusy, m.commandMoves, m.apiCalls, p.log.droppedMetric(),
		stateCollector{p}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	descDevices       = prometheus.NewDesc("doze_devices", "Registered devices by status.", []string{"status"}, nil)
	descPushDelivered = prometheus.NewDesc("doze_push_delivered_total", "Pushes delivered (2xx).", nil, nil)
	descUplinkBacklog = prometheus.NewDesc("doze_uplink_backlog", "Uplinks acknowledged to their devices and not yet taken by the pipeline.", nil, nil)
	descIngestHeld    = prometheus.NewDesc("doze_ingest_held_seconds_total", "Time the pipeline was held back so that devices sending faster than it takes their uplinks are acknowledged first (ackFirst).", nil, nil)
	descPushRetried   = prometheus.NewDesc("doze_push_retried_total", "Push tries that failed and were retried.", nil, nil)
	descPushDropped   = prometheus.NewDesc("doze_push_dropped_total", "Pushes dropped undelivered when their keep time ended.", nil, nil)
	descPushRejected  = prometheus.NewDesc("doze_push_rejected_total", "Pushes answered with a final 4xx/5xx.", nil, nil)
	descPushRefused   = prometheus.NewDesc("doze_push_refused_total", "Pushes the push engine could not accept (store error, full queue, engine closed); their uplinks stay in the inbox (SEC-6).", nil, nil)
	descPushQueued    = prometheus.NewDesc("doze_push_queued", "Pushes waiting or in flight, by endpoint state (valid, invalid); no URLs in labels (SEC-5).", []string{"state"}, nil)
	descUpgrade       = prometheus.NewDesc("doze_upgrade_progress_percent", "Share of an upgrade task's sub-tasks that ended.", []string{"operation", "kind", "status"}, nil)
	descSubTasks      = prometheus.NewDesc("doze_upgrade_subtasks", "Upgrade sub-tasks by state, over unfinished tasks.", []string{"state"}, nil)

	// The DTLS side of the LwM2M server (transport.Server.DTLSStats); no
	// device identifiers or addresses in labels.
	descDTLSCookies    = prometheus.NewDesc("doze_dtls_cookies_sent_total", "HelloVerifyRequests sent: ClientHellos without a valid cookie, answered statelessly.", nil, nil)
	descDTLSHellos     = prometheus.NewDesc("doze_dtls_hellos_unanswered_total", "ClientHellos not answered, by outcome: refused (malformed, not DTLS), dropped (valid cookie, handshake cap reached), shed (no valid cookie, router saturated).", []string{"outcome"}, nil)
	descDTLSHandshakes = prometheus.NewDesc("doze_dtls_handshakes_total", "DTLS handshakes completed, by kind: full (PSK key exchange) or resumed (abbreviated, by session ID).", []string{"kind"}, nil)
	descDTLSFailures   = prometheus.NewDesc("doze_dtls_handshake_failures_total", "DTLS handshakes that failed, by reason: bad_key, unknown_identity, timeout, other.", []string{"reason"}, nil)
	descDTLSInFlight   = prometheus.NewDesc("doze_dtls_handshakes_in_flight", "DTLS handshakes started and not ended.", nil, nil)
	descDTLSParked     = prometheus.NewDesc("doze_lwm2m_parked_sessions", "DTLS sessions of sleeping devices held parked (serialized, no goroutine).", nil, nil)
	descDTLSLookups    = prometheus.NewDesc("doze_dtls_store_lookups_total", "DTLS records no node-local state knew, by outcome: looked up in the shared store, or not (rate limit, recent miss).", []string{"outcome"}, nil)
	descDTLSMoved      = prometheus.NewDesc("doze_dtls_sessions_moved_total", "DTLS sessions continued here from the shared store without a handshake: adopted (another node had them), taken_back (parked here, used elsewhere since).", []string{"kind"}, nil)
)

// stateCollector reads gauges from the packages when Prometheus scrapes.
type stateCollector struct{ p *Platform }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDevices, descUplinkBacklog, descIngestHeld, descPushDelivered, descPushRetried, descPushDropped,
		descPushRejected, descPushRefused, descPushQueued, descUpgrade, descSubTasks,
		descDTLSCookies, descDTLSHellos, descDTLSHandshakes, descDTLSFailures, descDTLSInFlight, descDTLSParked,
		descDTLSLookups, descDTLSMoved} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	p, ctx := c.p, context.Background()
	ch <- prometheus.MustNewConstMetric(descUplinkBacklog, prometheus.GaugeValue, float64(p.gate.backlog.Load()))
	ch <- prometheus.MustNewConstMetric(descIngestHeld, prometheus.CounterValue, (time.Duration(p.gate.heldTicks.Load()) * gateTick).Seconds())
	if p.reg != nil {
		for _, s := range []registry.Status{registry.StatusInactive, registry.StatusOnline, registry.StatusOffline, registry.StatusAbnormal} {
			_, n, err := p.reg.List(ctx, registry.Query{Status: s, PageSize: 1})
			if err == nil {
				ch <- prometheus.MustNewConstMetric(descDevices, prometheus.GaugeValue, float64(n), string(s))
			}
		}
	}
	if p.push != nil {
		st := p.push.Stats()
		ch <- prometheus.MustNewConstMetric(descPushDelivered, prometheus.CounterValue, float64(st.Delivered))
		ch <- prometheus.MustNewConstMetric(descPushRetried, prometheus.CounterValue, float64(st.Retried))
		ch <- prometheus.MustNewConstMetric(descPushDropped, prometheus.CounterValue, float64(st.Dropped))
		ch <- prometheus.MustNewConstMetric(descPushRejected, prometheus.CounterValue, float64(st.Rejected))
		ch <- prometheus.MustNewConstMetric(descPushRefused, prometheus.CounterValue, float64(st.Refused))
		queued := map[string]int{}
		for _, e := range p.push.Endpoints() {
			queued[e.State] += e.Queued
		}
		for state, n := range queued {
			ch <- prometheus.MustNewConstMetric(descPushQueued, prometheus.GaugeValue, float64(n), state)
		}
	}
	if p.lwm != nil {
		collectDTLS(ch, p.lwm.DTLSStats(), p.lwm.ParkedSessions())
	}
	if p.ota != nil {
		tasks, _ := p.ota.Tasks(ctx)
		subs := map[ota.SubState]int{}
		for _, t := range tasks {
			pr, err := p.ota.Progress(ctx, t.ID)
			if err != nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descUpgrade, prometheus.GaugeValue, float64(pr.Percent), t.ID, string(t.Kind), string(t.State))
			if t.State == ota.TaskWait || t.State == ota.TaskProcessing {
				for s, n := range pr.States {
					subs[s] += n
				}
			}
		}
		for _, s := range []ota.SubState{ota.SubWait, ota.SubProcessing, ota.SubFail, ota.SubSuccess, ota.SubStop} {
			ch <- prometheus.MustNewConstMetric(descSubTasks, prometheus.GaugeValue, float64(subs[s]), string(s))
		}
	}
}

func collectDTLS(ch chan<- prometheus.Metric, st transport.DTLSStats, parked int) {
	counter := func(d *prometheus.Desc, v uint64, label ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label...)
	}
	counter(descDTLSCookies, st.CookiesSent)
	counter(descDTLSHellos, st.HellosRefused, "refused")
	counter(descDTLSHellos, st.HellosDropped, "dropped")
	counter(descDTLSHellos, st.HellosShed, "shed")
	counter(descDTLSHandshakes, st.HandshakesFull, "full")
	counter(descDTLSHandshakes, st.HandshakesResumed, "resumed")
	counter(descDTLSFailures, st.FailedBadKey, "bad_key")
	counter(descDTLSFailures, st.FailedUnknownIdentity, "unknown_identity")
	counter(descDTLSFailures, st.FailedTimeout, "timeout")
	counter(descDTLSFailures, st.FailedOther, "other")
	ch <- prometheus.MustNewConstMetric(descDTLSInFlight, prometheus.GaugeValue, float64(st.HandshakesInFlight))
	ch <- prometheus.MustNewConstMetric(descDTLSParked, prometheus.GaugeValue, float64(parked))
	counter(descDTLSLookups, st.StoreLookups, "looked_up")
	counter(descDTLSLookups, st.StoreLookupsLimited, "limited")
	counter(descDTLSMoved, st.SessionsAdopted, "adopted")
	counter(descDTLSMoved, st.SessionsTakenBack, "taken_back")
}
