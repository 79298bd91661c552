package main

// Per-application device quota (APP-3): an app with maxDevices set may own
// at most that many devices; a registration beyond it is refused with 403
// device_quota_exceeded (a standing refusal: the app must delete devices
// or the administrator raise the quota, waiting does not help, so not
// 429, which is kept for the calls-per-second limit). The count is read
// from the registry's owner index the first time it is needed, then kept
// in memory: devices are created and deleted only through the API, which
// tells the counter. A refusal recounts from the index before it is
// answered, so a count that drifted never refuses wrongly. On a store
// shared by several nodes (PostgreSQL) every reservation recounts, since
// other nodes register too; two nodes registering the app's last free
// places at the same moment may then both pass (the count and the insert
// are not one transaction), exceeding the quota by at most one device per
// node.

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/doze-io/doze/registry"
)

// maxDeviceQuota bounds an app's maxDevices (our choice).
const maxDeviceQuota = 100_000_000

type quotas struct {
	mu   sync.Mutex
	apps map[string]*appQuota
}

type appQuota struct {
	mu       sync.Mutex
	known    bool // stored was counted
	stored   int  // devices owned
	inflight int  // devices of registrations under way
}

func (q *quotas) of(app string) *appQuota {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.apps == nil {
		q.apps = map[string]*appQuota{}
	}
	a := q.apps[app]
	if a == nil {
		a = &appQuota{}
		q.apps[app] = a
	}
	return a
}

// forget drops what is known of app's count (its quota changed, or it was
// deleted); the next reservation counts again.
func (q *quotas) forget(app string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.apps, app)
}

// countDevices counts app's devices in the registry.
func (p *Platform) countDevices(ctx context.Context, app string) (int, error) {
	_, n, err := p.reg.List(ctx, registry.Query{AppID: app, PageSize: 1})
	return n, err
}

// reserve takes n devices of app's quota for registrations under way. The
// returned function ends the reservation: done(true) when the devices
// were registered, done(false) when not. A recount while registrations
// are under way may count one of them twice (stored, not yet done): the
// error is on the side of refusing, never of exceeding.
func (q *quotas) reserve(ctx context.Context, p *Platform, app string, n int) (func(ok bool), error) {
	a, _ := p.auth.App(app)
	if a.MaxDevices <= 0 {
		return func(bool) {}, nil
	}
	aq := q.of(app)
	aq.mu.Lock()
	defer aq.mu.Unlock()
	if !aq.known || p.db.shared || aq.stored+aq.inflight+n > a.MaxDevices {
		count, err := p.countDevices(ctx, app)
		if err != nil {
			return nil, err
		}
		aq.stored, aq.known = count, true
	}
	if have := aq.stored + aq.inflight; have+n > a.MaxDevices {
		return nil, &httpError{Status: http.StatusForbidden, Code: "device_quota_exceeded",
			Err: fmt.Errorf("app %s owns %d devices (with registrations under way) and may own %d (its maxDevices): delete devices, or ask the administrator to raise the quota", app, have, a.MaxDevices)}
	}
	aq.inflight += n
	return func(ok bool) {
		aq.mu.Lock()
		defer aq.mu.Unlock()
		aq.inflight -= n
		if ok {
			aq.stored += n
		}
	}, nil
}

// deleted tells the counter that one of app's devices was deleted.
func (q *quotas) deleted(app string) {
	aq := q.of(app)
	aq.mu.Lock()
	defer aq.mu.Unlock()
	if aq.known {
		aq.stored--
	}
}
