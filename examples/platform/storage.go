package main

// Where the platform keeps its data: the bbolt file in the data directory
// (the default) or a PostgreSQL database (-store postgres://…), shared by
// several platform nodes. Both stores implement every Store interface of
// the domain packages and the platform's own views below; storage holds
// them as interfaces, so every package is built the same way over either.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store"
	"github.com/doze-io/doze/store/postgres"
)

// The platform's own views of a store (store.DB and postgres.DB have the
// same method sets; store/storetest holds their conformance suites).
type (
	historyStore interface {
		Append(recs ...store.HistoryRecord) error
		Query(q store.HistoryQuery) ([]store.HistoryRecord, int, error)
		Prune(cutoff time.Time) (int, error)
		DeleteDevice(deviceID string) error
	}
	shadowStore interface {
		Get(deviceID string) ([]store.ServiceShadow, error)
		Desired(deviceID string) ([]store.ServiceShadow, error)
		Desire(deviceID, serviceID string, data map[string]any, at time.Time) error
		ClearDesired(deviceID, serviceID string) error
		Delete(deviceID string) error
	}
	productStore interface {
		Put(f store.ProductFiles) error
		Delete(manufacturerID, model string) error
		All() ([]store.ProductFiles, error)
	}
	inboxStore interface {
		Put(ctx context.Context, e store.InboxEntry) (uint64, error)
		Delete(ctx context.Context, seqs ...uint64) error
		Pending(ctx context.Context) ([]store.InboxEntry, error)
	}
	deviceLogStore interface {
		Append(ctx context.Context, entries ...store.LogEntry) error
		Recent(deviceID string, limit int) ([]store.LogEntry, error)
		Delete(deviceID string) error
	}
	bootstrapConfigs interface {
		Get(nodeID string) (store.BootstrapConfig, error)
		Put(c store.BootstrapConfig) error
		Delete(nodeID string) error
	}
	// ownerStore records the owning application of the resources that
	// are not devices, and one-time migration markers (APP-3,
	// store.Owners).
	ownerStore interface {
		Claim(ctx context.Context, kind, id, appID string) (string, error)
		Set(ctx context.Context, kind, id, appID string) error
		Owner(ctx context.Context, kind, id string) (string, error)
		Delete(ctx context.Context, kind, id string) error
		IDs(ctx context.Context, appID, kind string) ([]string, error)
		Done(ctx context.Context, name string) (bool, error)
		MarkDone(ctx context.Context, name string) error
	}
	// uplinkSaver stores a report, or everything an uplink causes, in one
	// transaction (store.DB.SaveUplink).
	uplinkSaver interface {
		SaveReport(deviceID string, hist []store.HistoryRecord, reported map[string]map[string]any, at time.Time) error
		SaveUplink(u store.Uplink) error
	}
)

// storage is one open store: every Store the packages take and the
// platform's views, each made once. Its methods have the names of the
// store.DB methods they stand for.
type storage struct {
	kind   string    // "bbolt" or "postgres"
	where  string    // the file, or the database without password, for logs
	shared bool      // several nodes may use it at once (PostgreSQL)
	bolt   *store.DB // the bbolt file; nil on PostgreSQL

	registry      registry.Store
	commands      command.Store
	lwm2mOps      command.Store
	push          push.Store
	ota           ota.Store
	observations  transport.ObservationStore
	registrations transport.RegistrationStore
	dtlsSessions  func(ttl time.Duration) transport.SessionStore
	history       historyStore
	shadow        shadowStore
	products      productStore
	inbox         inboxStore
	deviceLog     func(max int) deviceLogStore
	bootstrap     bootstrapConfigs
	uplinks       uplinkSaver
	apps          appStore
	owners        ownerStore
	forward       forward.Store
	close         func() error
}

func (s *storage) Registry() registry.Store                   { return s.registry }
func (s *storage) Commands() command.Store                    { return s.commands }
func (s *storage) LwM2MOps() command.Store                    { return s.lwm2mOps }
func (s *storage) Push() push.Store                           { return s.push }
func (s *storage) OTA() ota.Store                             { return s.ota }
func (s *storage) Observations() transport.ObservationStore   { return s.observations }
func (s *storage) Registrations() transport.RegistrationStore { return s.registrations }
func (s *storage) DTLSSessions(ttl time.Duration) transport.SessionStore {
	return s.dtlsSessions(ttl)
}
func (s *storage) History() historyStore            { return s.history }
func (s *storage) Shadow() shadowStore              { return s.shadow }
func (s *storage) Products() productStore           { return s.products }
func (s *storage) Inbox() inboxStore                { return s.inbox }
func (s *storage) DeviceLog(max int) deviceLogStore { return s.deviceLog(max) }
func (s *storage) Bootstrap() bootstrapConfigs      { return s.bootstrap }
func (s *storage) Owners() ownerStore               { return s.owners }
func (s *storage) SaveReport(deviceID string, hist []store.HistoryRecord, reported map[string]map[string]any, at time.Time) error {
	return s.uplinks.SaveReport(deviceID, hist, reported, at)
}
func (s *storage) SaveUplink(u store.Uplink) error { return s.uplinks.SaveUplink(u) }
func (s *storage) Close() error                    { return s.close() }

// Forward returns the forwarding rules' store: rules and the forwarding
// outbox. On PostgreSQL it can claim messages (push.Claimer), so each node's
// forwarding engine delivers only what it claimed.
func (s *storage) Forward() forward.Store { return s.forward }

// isPostgres reports whether a -store value names a PostgreSQL database.
func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// openStorage opens the store cfg.Store names: "" is the bbolt file
// doze.db in the data directory, a path another bbolt file, a
// postgres:// or postgresql:// URL a PostgreSQL database (migrated to
// this build's schema on open).
func openStorage(cfg Config) (*storage, error) {
	if isPostgres(cfg.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := postgres.Open(ctx, cfg.Store, nil)
		if err != nil {
			return nil, fmt.Errorf("-store: %w", err)
		}
		return &storage{kind: "postgres", where: redactStore(cfg.Store), shared: true,
			registry: db.Registry(), commands: db.Commands(), lwm2mOps: db.LwM2MOps(), push: db.Push(), ota: db.OTA(),
			observations: db.Observations(), registrations: db.Registrations(),
			dtlsSessions: func(ttl time.Duration) transport.SessionStore { return db.DTLSSessions(ttl) },
			history:      db.History(), shadow: db.Shadow(), products: db.Products(), inbox: db.Inbox(),
			deviceLog: func(max int) deviceLogStore { return db.DeviceLog(max) },
			bootstrap: db.Bootstrap(), uplinks: db, apps: &dbApps{db: db.Apps()}, owners: db.Owners(), forward: db.Forward(),
			close: db.Close}, nil
	}
	if strings.Contains(cfg.Store, "://") {
		return nil, fmt.Errorf("-store %q: want a bbolt file path, or a postgres:// or postgresql:// URL", redactStore(cfg.Store))
	}
	path := cfg.Store
	if path == "" {
		path = filepath.Join(cfg.DataDir, "doze.db")
	}
	db, err := store.Open(path, nil)
	if err != nil {
		return nil, err
	}
	return &storage{kind: "bbolt", where: path, bolt: db,
		registry: db.Registry(), commands: db.Commands(), lwm2mOps: db.LwM2MOps(), push: db.Push(), ota: db.OTA(),
		observations: db.Observations(), registrations: db.Registrations(),
		dtlsSessions: func(ttl time.Duration) transport.SessionStore { return db.DTLSSessions(ttl) },
		history:      db.History(), shadow: db.Shadow(), products: db.Products(), inbox: db.Inbox(),
		deviceLog: func(max int) deviceLogStore { return db.DeviceLog(max) },
		bootstrap: db.Bootstrap(), uplinks: db, apps: fileApps{dir: cfg.DataDir}, owners: db.Owners(), forward: db.Forward(),
		close: db.Close}, nil
}

// redactStore hides a password in a -store URL, for logs and errors.
func redactStore(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return s
	}
	user, _, hasPass := strings.Cut(userinfo, ":")
	if hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return s
}

// appStore keeps the applications: the file <dataDir>/apps.json with
// bbolt (one node), a table of the database with PostgreSQL (every node
// reads the same apps).
type appStore interface {
	// Load returns every app; with demo and no app stored it creates one
	// demo app and reports created.
	Load(ctx context.Context, demo bool) (apps []App, created bool, err error)
	// Save stores apps, the platform's whole list as it is now.
	Save(ctx context.Context, apps []App) error
}

// fileApps is the apps.json file of a data directory.
type fileApps struct{ dir string }

func (f fileApps) Load(_ context.Context, demo bool) ([]App, bool, error) {
	return loadApps(f.dir, demo)
}

func (f fileApps) Save(_ context.Context, apps []App) error {
	b, err := json.MarshalIndent(apps, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(f.dir, "apps.json"), b, 0o600)
}

// dbApps keeps the apps in the database, one row each. Save writes what
// changed since this node last loaded or saved (seen): the apps it
// changed or created, and deletes those it deleted, so that apps another
// node created meanwhile are kept.
type dbApps struct {
	db   *postgres.Apps
	mu   sync.Mutex
	seen map[string]App
}

func (d *dbApps) Load(ctx context.Context, demo bool) ([]App, bool, error) {
	recs, err := d.db.All(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("apps: %w", err)
	}
	created := false
	if len(recs) == 0 && demo {
		a := App{ID: "demo-" + randomHex(4), Secret: randomHex(16), HistoryEnabled: true}
		b, _ := json.Marshal(a)
		if created, err = d.db.PutFirst(ctx, a.ID, b); err != nil {
			return nil, false, fmt.Errorf("apps: creating the demo app: %w", err)
		}
		if recs, err = d.db.All(ctx); err != nil {
			return nil, false, fmt.Errorf("apps: %w", err)
		}
	}
	seen := make(map[string]App, len(recs))
	apps := make([]App, 0, len(recs))
	for id, b := range recs {
		var a App
		if err := json.Unmarshal(b, &a); err != nil || a.ID != id {
			return nil, false, fmt.Errorf("apps: the stored record of app %q is not an app (%v)", id, err)
		}
		seen[id] = a
		apps = append(apps, a)
	}
	d.mu.Lock()
	d.seen = seen
	d.mu.Unlock()
	return apps, created, nil
}

func (d *dbApps) Save(ctx context.Context, apps []App) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := make(map[string]App, len(apps))
	var errs []error
	for _, a := range apps {
		now[a.ID] = a
		if old, ok := d.seen[a.ID]; ok && sameApp(old, a) {
			continue
		}
		b, err := json.Marshal(a)
		if err == nil {
			err = d.db.Put(ctx, a.ID, b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("storing app %s: %w", a.ID, err))
			delete(now, a.ID)
		}
	}
	for id, old := range d.seen {
		if _, ok := now[id]; ok {
			continue
		}
		if err := d.db.Delete(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("deleting app %s: %w", id, err))
			now[id] = old
		}
	}
	d.seen = now
	return errors.Join(errs...)
}

func sameApp(a, b App) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// appSyncEvery is how often a node of a shared store reads the apps
// again, to see those other nodes created, changed or deleted.
const appSyncEvery = 2 * time.Second

// syncApps makes the platform's apps those of the store: new ones are
// added, changed ones take the stored settings (their tokens stay), and
// deleted ones lose their tokens. Only a shared store needs it.
func (p *Platform) syncApps(ctx context.Context) error {
	p.appsMu.Lock()
	defer p.appsMu.Unlock()
	apps, _, err := p.db.apps.Load(ctx, false)
	if err != nil {
		return err
	}
	stored := make(map[string]bool, len(apps))
	for _, a := range apps {
		stored[a.ID] = true
		if p.auth.Add(a) {
			continue
		}
		if old, _ := p.auth.App(a.ID); !sameApp(old, a) {
			p.auth.Change(a.ID, func(x *App) { *x = a })
			p.trust.forget(a.ID)
		}
	}
	for _, a := range p.auth.Apps() {
		if !stored[a.ID] {
			p.auth.Delete(a.ID)
			p.trust.forget(a.ID)
		}
	}
	return nil
}

// runAppSync reads the apps every appSyncEvery while Run runs, when the
// store is shared.
func (p *Platform) runAppSync(ctx context.Context) error {
	if !p.db.shared {
		return nil
	}
	t := time.NewTicker(appSyncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := p.syncApps(ctx); err != nil && ctx.Err() == nil {
				p.logger.Error("reading the apps from the store", "err", err)
			}
		}
	}
}
