package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/mqtt"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store"
	"strings"
)

// Platform is the assembled platform: every Doze package wired together
// over one store, the bbolt file or a PostgreSQL database shared with other
// nodes (storage.go; docs/architecture.md "How data flows").
type Platform struct {
	cfg    Config
	logger *slog.Logger
	conns  *connLog // device connections, aggregated (logging.go)

	db       *storage
	auth     *Auth
	products *products
	reg      *registry.Registry
	cmds     *command.Engine
	ops      *command.Engine // queued LwM2M operations (api_lwm2m.go)
	push     *push.Engine
	fwd      *forward.Engine // rules: reports to webhooks and brokers (forward.go)
	ota      *ota.Engine
	files    ota.Dir // upgrade package contents
	lwm      *transport.Server
	mq       *mqtt.Server // MQTT devices (mqtt.go)
	// mqttRefusals limits the "refused" entries of MQTT connections in
	// the device log (mqtt.go).
	mqttRefusals refusalLog
	cluster      *cluster                   // routing between nodes over NATS; nil without -nats (cluster.go)
	calls        serviceCalls               // synchronous device calls waiting (api_service_call.go)
	bs           *transport.BootstrapServer // nil when off (api_bootstrap.go)
	log          *deviceLog
	metrics      *metrics
	// newSecrets are the app secrets created at this start, for the
	// banner; later starts do not print them.
	newSecrets map[string]string
	cancels    cancelTasks
	// callbacks: which app used which command callbackUrl (/doze/v1/endpoints).
	callbacks callbackOwners
	uploads   uploadSlots // uploads in progress (SEC-3)
	trust     appTrust    // each app's TLS settings for its HTTPS callbacks (APP-6)
	quota     quotas      // each app's device count against its maxDevices (APP-3)
	adminHash [32]byte    // SHA-256 of the administrator credential (APP-3)
	// newAdminToken is the administrator token created at this start, for
	// the banner; later starts do not print it.
	newAdminToken string
	appsMu        sync.Mutex // orders the administrator's app changes (APP-3)

	events  []*eventQueue // per-worker queues; a device always lands on the same one
	gate    ingestGate
	wakes   pendingWakes    // devices whose wake-up event waits in a queue
	stopCtx context.Context // ends when Run's context ends: queues stop taking events
	stop    context.CancelFunc
	bg      sync.WaitGroup // short-lived goroutines (report ACKs, an app's new default mode); Run waits for them
	bgMu    sync.Mutex     // guards bgDone against bg.Add racing bg.Wait
	bgDone  bool
	touched sync.Map   // deviceId → time of the last registry Touch
	bad     badCounts  // unusable uplinks in a row per device (ABNORMAL)
	retries retryQueue // uplinks waiting for another try (SEC-6)

	closeOnce  sync.Once
	listenOnce sync.Once
	listenErr  error
}

// eventWorkers is how many goroutines handle device events; events of one
// device go to one worker, so they are handled in order. Many workers let
// the store's group commit share one disk sync among many reports.
const eventWorkers = 64

// New opens the data directory and builds the platform. It starts nothing;
// Run serves.
func New(cfg Config, logger *slog.Logger) (*Platform, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	db, err := openStorage(cfg)
	if err != nil {
		return nil, err
	}
	if db.shared {
		logger = logger.With("node", cfg.NodeID)
	}
	logger.Info("store opened", "store", db.kind, "at", db.where, "node", cfg.NodeID)
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = defaultMaxUpload
	}
	if cfg.MaxUploads <= 0 {
		cfg.MaxUploads = defaultMaxUploads
	}
	if cfg.AbnormalAfter <= 0 {
		cfg.AbnormalAfter = 3
	}
	p := &Platform{cfg: cfg, logger: logger, conns: newConnLog(logger), db: db, log: newDeviceLog(db.DeviceLog(cfg.DeviceLogSize), logger.With("part", "devicelog")),
		uploads: uploadSlots{max: cfg.MaxUploads, perApp: min(maxUploadsPerApp, cfg.MaxUploads)}}
	fail := func(err error) (*Platform, error) { db.Close(); return nil, err }

	apps, created, err := db.apps.Load(context.Background(), cfg.Demo)
	if err != nil {
		return fail(err)
	}
	p.auth = NewAuth(apps, time.Duration(cfg.TokenTTL), cfg.RateLimit)
	if p.adminHash, p.newAdminToken, err = loadAdmin(cfg); err != nil {
		return fail(err)
	}
	// Secrets are printed once, when created (SEC-5).
	p.newSecrets = map[string]string{}
	if created {
		for _, a := range apps {
			p.newSecrets[a.ID] = a.Secret
		}
	}
	if id := cfg.ResetSecret; id != "" {
		secret, ok := p.auth.ResetSecret(id)
		if !ok {
			return fail(fmt.Errorf("-reset-secret: no app %q in the apps of %s", id, db.where))
		}
		if err := p.saveApps(); err != nil {
			return fail(err)
		}
		p.newSecrets[id] = secret
	}
	p.metrics = newMetrics(p)

	p.products = newProducts(db.Products(), deviceCounter{reg: func() *registry.Registry { return p.reg }})
	if err := p.products.Reload(); err != nil {
		logger.Warn("some stored products could not be loaded", "err", err)
	}

	// On a shared store the node id claims work: one node sweeps
	// deadlines, each push goes out from the node that claimed it, each
	// due command and LwM2M operation is timed out by the node that
	// claimed it.
	node := p.claimNode()
	p.reg, err = registry.New(db.Registry(), p.products.catalog, registry.Config{
		Node:            node,
		SilencePeriod:   time.Duration(cfg.OfflineAfter),
		DisconnectGrace: time.Duration(cfg.DisconnectGrace),
		Listener:        registryListener{p},
		Logger:          logger.With("pkg", "registry"),
	})
	if err != nil {
		return fail(err)
	}

	allow, err := parseAllow(pushAllow(cfg))
	if err != nil {
		return fail(err)
	}
	p.push, err = push.New(db.Push(), push.Config{Node: node, Allow: allow, TLSConfig: p.tlsFor, Logger: logger.With("pkg", "push")})
	if err != nil {
		return fail(err)
	}
	if p.fwd, err = p.newForward(p.push.Config()); err != nil {
		return fail(err)
	}

	if p.cluster, err = newCluster(p); err != nil {
		return fail(err)
	}
	p.cmds, err = command.New(db.Commands(), commandSender{p}, desiredListener{commandListener{p}, p}, command.Config{
		DefaultMode: defaultMode(cfg),
		CheckCallback: func(appID, url string) error {
			err := p.push.CheckCallback(context.Background(), appID, url)
			if errors.Is(err, push.ErrOriginConflict) {
				return fmt.Errorf("%w: %v", command.ErrCallbackConflict, err)
			}
			return err
		},
		Node:     node,
		Sessions: p.cluster.sessions(),
		Logger:   logger.With("pkg", "command"),
	})
	if err != nil {
		return fail(err)
	}

	if p.ops, err = p.newOps(); err != nil {
		return fail(err)
	}

	if err := p.applyModes(context.Background()); err != nil {
		logger.Error("power-saving modes not applied at start", "err", err)
	}

	fwDir := filepath.Join(cfg.DataDir, "packages")
	if err := os.MkdirAll(fwDir, 0o700); err != nil {
		return fail(err)
	}
	p.files = ota.Dir(fwDir)
	p.ota, err = ota.New(db.OTA(), p.files, otaChannel{p}, ota.Config{
		Devices:     otaDevices{p},
		Object5:     packageURIs{object5{p}},
		Listener:    otaListener{p},
		FirmwareURI: firmwareBase(cfg),
		Node:        node,
		Logger:      logger.With("pkg", "ota"),
	})
	if err != nil {
		return fail(err)
	}

	lcfg := transport.Config{
		UDPAddr:        cfg.CoAPAddr,
		DisableUDP:     cfg.CoAPAddr == "off",
		DTLSAddr:       cfg.DTLSAddr,
		AwakeWindow:    time.Duration(cfg.QueueWindow),
		ParkSessions:   true, // sleeping devices cost no goroutines and little memory
		MaxMessageSize: cfg.MaxMessage + 64,
		MaxSessions:    cfg.MaxSessions,
		MaxSendSize:    cfg.MaxMessage, // a larger Send gets 4.13, not a 2.04 and a decode error (LWM-12)
		Files:          firmwareFiles{p},
		Observations:   db.Observations(),
		// DTLS sessions for resumption by ID (kept 24 h, pruned), and
		// registrations and parked sessions, survive restarts and crashes
		// (issue 20 item 9, LWM-14).
		Sessions:      db.DTLSSessions(store.DefaultSessionTTL),
		Registrations: db.Registrations(),
		// On PostgreSQL other nodes write them too: a device whose
		// records start arriving here continues its session (CLU-3).
		SharedRegistrations:   db.shared,
		StoreLookupsPerSource: cfg.MoveLookupsPerSource,
		Logger:                logger.With("pkg", "lwm2m"),
		// The registry's transport security of each endpoint (SEC-1):
		// plain CoAP serves only devices registered with security NONE.
		Policy: endpointPolicy{p},
		// Which paths of a Send are taken is eventHandler's FilterSend,
		// per device (LWM-12, send.go).
	}
	p.lwm, err = transport.New(lcfg, keyStore{p}, eventHandler{p})
	if err != nil {
		return fail(err)
	}
	if p.mq, err = p.newMQTT(); err != nil {
		return fail(err)
	}
	if p.bs, err = p.newBootstrap(); err != nil {
		return fail(err)
	}
	p.stopCtx, p.stop = context.WithCancel(context.Background())
	p.gate.maxDefer, p.gate.limit = time.Duration(cfg.AckFirst), int64(cfg.MaxBacklog)
	if cfg.AckFirst == 0 {
		p.gate.maxDefer = defaultAckFirst
	}
	if cfg.MaxBacklog == 0 {
		p.gate.limit = defaultMaxBacklog
	}
	p.events = make([]*eventQueue, eventWorkers)
	for i := range p.events {
		p.events[i] = newEventQueue()
	}
	if cfg.Demo {
		if err := p.installDemo(); err != nil {
			return fail(err)
		}
	}
	if err := p.migrateOwners(context.Background()); err != nil {
		return fail(fmt.Errorf("giving resources without an owner to the default app: %w", err))
	}
	if err := p.cluster.connect(); err != nil {
		return fail(err)
	}
	return p, nil
}

// Run serves devices and applications until ctx ends, then stops everything
// and waits for it.
func (p *Platform) Run(ctx context.Context, httpServe func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	if err := p.Listen(); err != nil {
		return err
	}
	run("registry", p.reg.Run)
	run("push", p.push.Run)
	if p.fwd != nil {
		run("forward", p.fwd.Run)
	}
	run("command", p.cmds.Run)
	run("lwm2mops", p.ops.Run)
	run("ota", p.ota.Run)
	p.replayInbox(ctx)
	run("lwm2m", p.lwm.Run)
	run("mqtt", p.runMQTT)
	run("bootstrap", p.runBootstrap)
	run("history", p.pruneHistory)
	run("devicelog", p.log.Run)
	run("retries", p.runRetries)
	run("connlog", p.conns.Run)
	run("ingest gate", p.gate.Run)
	run("apps", p.runAppSync)
	for _, ch := range p.events {
		run("events", func(ctx context.Context) error { return p.handleEvents(ctx, ch) })
	}
	if httpServe != nil {
		run("http", httpServe)
	}
	<-ctx.Done()
	p.logger.Info("shutting down", "cause", context.Cause(ctx))
	// The lwm2m server waits for its goroutines on the way out, and they
	// may be handing an event to a worker that has already returned.
	p.stop()
	wg.Wait()
	p.bgMu.Lock()
	p.bgDone = true
	p.bgMu.Unlock()
	p.bg.Wait()
	close(errc)
	return <-errc
}

// Listen opens the device sockets (CoAP and DTLS), so their addresses are
// known before Run; Run calls it when nobody did.
func (p *Platform) Listen() error {
	p.listenOnce.Do(func() { p.listenErr = errors.Join(p.lwm.Listen(), p.listenMQTT(), p.listenBootstrap()) })
	return p.listenErr
}

// Close releases everything New opened. Call it after Run returned.
func (p *Platform) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.stop()
		p.cluster.close()
		p.log.Flush() // entries added after Run returned
		err = errors.Join(p.lwm.Close(), p.mq.Close(), p.closeBootstrap(), p.ota.Close(), p.cmds.Close(), p.ops.Close(), p.closeForward(), p.push.Close(), p.reg.Close(), p.db.Close())
	})
	return err
}

// pruneHistory deletes history older than the retention period (STO-2)
// once an hour.
func (p *Platform) pruneHistory(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if _, err := p.db.History().Prune(time.Now().Add(-time.Duration(p.cfg.HistoryKeep))); err != nil {
			p.logger.Error("pruning history", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// queuedEvent is a device event on its way to a worker; inbox is its
// sequence number in the store's inbox (0 for events not kept there). An
// uplink tried again carries its effects done so far, its failed tries and
// when it is due.
type queuedEvent struct {
	e     transport.Event
	inbox uint64
	fx    *effects
	tries int
	due   time.Time
	at    time.Time // when it was accepted
	gated bool      // counted in the ingest gate's backlog until a worker takes it
}

// enqueueEvent hands a device event to its worker; lwm2m's HandleEvent
// must return quickly. Once Run is stopping, events are dropped (logged):
// the workers are gone and blocking would stall the lwm2m server's Close.
// An uplink dropped so is still in the inbox and is processed at the next
// start.
//
// A wake-up reaches the command engine here, at once, rather than behind
// the uplinks queued for the same worker: in a wake storm those take longer
// than the device stays awake. DeviceWoke does no I/O and never waits for
// the engine.
func (p *Platform) enqueueEvent(e transport.Event, inbox uint64) {
	if e.Kind == transport.EventWoke {
		if !p.wakes.first(e.Endpoint) {
			return // the device's wake-up waiting in its worker's queue stands for this one
		}
		if id, err := p.reg.IDByNodeID(context.Background(), e.Endpoint); err == nil {
			p.cluster.heard(id)
			if err := p.cmds.DeviceWoke(context.Background(), id); err != nil {
				p.logger.Warn("command wake-up", "device", id, "err", err)
			}
		} // an unknown endpoint is logged when its event is handled
	}
	p.enqueue(queuedEvent{e: e, inbox: inbox})
}

func (p *Platform) enqueue(q queuedEvent) {
	h := fnv.New32a()
	h.Write([]byte(q.e.Endpoint))
	if p.stopCtx.Err() != nil {
		if q.gated {
			p.gate.taken()
		}
		p.logger.Info("device event dropped: the platform is stopping", "endpoint", q.e.Endpoint, "event", q.e.Kind, "inbox", q.inbox)
		return
	}
	if q.at.IsZero() {
		q.at = time.Now()
	}
	p.events[h.Sum32()%eventWorkers].push(q)
}

// acceptUplink keeps an uplink in the store's inbox, synced, before the
// lwm2m server acknowledges it to the device (transport.UplinkHandler), then
// hands it to its worker, which deletes it from the inbox once it has been
// decoded, stored and pushed. An error leaves the device's message
// unacknowledged, so the device sends it again.
//
// The worker's queue takes it without waiting (see eventqueue.go); beyond
// Config.MaxBacklog waiting uplinks it is not acknowledged.
func (p *Platform) acceptUplink(e transport.Event) error {
	if err := p.gate.admit(); err != nil {
		p.metrics.uplinksBusy.Inc()
		p.conns.note(time.Now(), "uplink not acknowledged: the pipeline is behind", "endpoint", e.Endpoint, "err", err)
		return err
	}
	seq, err := p.db.Inbox().Put(context.Background(), store.InboxEntry{Endpoint: e.Endpoint, Path: inboxPath(e),
		Payload: e.Payload, ContentFormat: e.ContentFormat, Time: e.Time, Node: p.cfg.NodeID})
	if err != nil {
		p.gate.cancel()
		p.logger.Error("uplink not kept, not acknowledged", "endpoint", e.Endpoint, "err", err)
		return err
	}
	p.gate.accepted()
	p.enqueue(queuedEvent{e: e, inbox: seq, at: time.Now(), gated: true})
	return nil
}

// notificationMark marks the inbox path of an EventNotification (a Send's
// values, an observed resource's notification); other entries are
// EventUplink. No LwM2M path starts with it.
const notificationMark = "notification:"

// inboxPath is the path e is kept under in the inbox.
func inboxPath(e transport.Event) string {
	if e.Kind == transport.EventNotification {
		return notificationMark + e.Path
	}
	return e.Path
}

// inboxKind returns the kind and path of the event an inbox path keeps.
func inboxKind(path string) (transport.EventKind, string) {
	if p, ok := strings.CutPrefix(path, notificationMark); ok {
		return transport.EventNotification, p
	}
	return transport.EventUplink, path
}

// replayInbox processes the uplinks that were acknowledged to their
// devices but not processed before the platform stopped (a crash, events
// dropped while stopping, effects that could not be stored), oldest
// first, before devices are served. One whose effects still cannot all be
// stored stays in the inbox and is tried again later (SEC-6).
func (p *Platform) replayInbox(ctx context.Context) {
	in := p.db.Inbox()
	pending, err := in.Pending(ctx)
	if err != nil {
		p.logger.Error("reading the uplink inbox", "err", err)
		return
	}
	if p.db.shared {
		// Other nodes' entries are theirs to process (CLU-3 will let a
		// node take over those of a node that died).
		pending = slices.DeleteFunc(pending, func(u store.InboxEntry) bool { return u.Node != p.cfg.NodeID })
	}
	var done []uint64
	for i, u := range pending {
		kind, path := inboxKind(u.Path)
		q := queuedEvent{e: transport.Event{Kind: kind, Endpoint: u.Endpoint, Time: u.Time,
			Path: path, Payload: u.Payload, ContentFormat: u.ContentFormat}, inbox: u.Seq, fx: &effects{inbox: u.Seq}}
		if err := p.process(ctx, q.e, q.fx); err != nil {
			p.failed(q, err)
		} else if !q.fx.consumed {
			done = append(done, u.Seq)
		}
		if len(done) > 0 && (len(done) == 64 || i == len(pending)-1) { // one disk sync for many
			if err := in.Delete(ctx, done...); err != nil {
				p.logger.Error("deleting replayed uplinks from the inbox", "err", err)
			}
			done = done[:0]
		}
	}
	if len(pending) > 0 {
		p.logger.Info("acknowledged uplinks processed after a restart", "count", len(pending))
	}
}

// background runs f on its own goroutine with a context that ends when
// Run stops; Run waits for it before returning.
func (p *Platform) background(f func(ctx context.Context)) {
	p.bgMu.Lock()
	done := p.bgDone
	if !done {
		p.bg.Add(1)
	}
	p.bgMu.Unlock()
	if done {
		// Run has returned: do it here; the context has ended.
		f(p.stopCtx)
		return
	}
	go func() {
		defer p.bg.Done()
		f(p.stopCtx)
	}()
}

// handleEvents is one event worker. A report leaves the inbox in the
// transaction that stores its effects (saveUplink); other processed
// uplinks (responses, PCP frames, refused data) leave it in batches (when
// the queue is empty or 64 are done). One whose effects could not all be
// stored stays there and is held for another try (SEC-6).
func (p *Platform) handleEvents(ctx context.Context, ch *eventQueue) error {
	var done []uint64
	flush := func() {
		if err := p.db.Inbox().Delete(context.Background(), done...); err != nil {
			p.logger.Error("deleting processed uplinks from the inbox", "err", err)
		}
		done = done[:0]
	}
	for {
		q, ok := ch.pop(ctx)
		if !ok {
			flush()
			return nil
		}
		// While the gate holds, every event waits (a registration or a
		// wake-up costs the pipeline store reads too); only uplinks
		// count in the backlog.
		p.gate.wait(ctx, q.at)
		if q.e.Kind == transport.EventWoke {
			p.wakes.taken(q.e.Endpoint) // a wake-up from now on is queued again
		}
		if q.gated {
			p.gate.taken()
			q.gated = false
		}
		if q.fx == nil {
			q.fx = &effects{inbox: q.inbox}
		}
		if err := p.process(ctx, q.e, q.fx); err != nil {
			p.failed(q, err)
		} else if q.inbox != 0 && !q.fx.consumed {
			done = append(done, q.inbox)
		}
		if len(done) > 0 && (ch.len() == 0 || len(done) >= 64) {
			flush()
		}
	}
}

// publish sends n to the subscribers of apps: a device's notifications go
// to its owner only (deviceApps, APP-3).
func (p *Platform) publish(apps []string, n push.Notification) {
	for _, app := range apps {
		if _, err := p.push.Publish(context.Background(), app, n); err != nil {
			p.logger.Error("publishing notification", "type", n.NotifyType(), "err", err)
		}
	}
}

// saveApps stores the apps as they are now (apps.json, or the shared
// store's table).
func (p *Platform) saveApps() error {
	return p.db.apps.Save(context.Background(), p.auth.Apps())
}

// claimNode is the node id under which this node claims work in a shared
// (PostgreSQL) store, or "" for a store of its own.
func (p *Platform) claimNode() string {
	if p.db.shared {
		return p.cfg.NodeID
	}
	return ""
}
