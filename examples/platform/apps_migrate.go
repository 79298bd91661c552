package main

// Migration to owned resources (APP-3). A data directory written before
// resources belonged to apps holds devices without an AppID and groups,
// products, packages and upgrade tasks without an owner. When the
// platform opens it, each of them is given to the default owner:
//
//   - the demo app (its id starts with "demo-"; the first by id if there
//     are several), else
//   - the only app, else
//   - with several apps and no demo app, the first by name (then by id),
//     with a warning in the log naming it: the operator moves nothing
//     by hand, and the choice is the same on every start.
//
// With no app at all nothing is assigned and the next start tries again.
// Devices are walked once (the marker "devices-v1" in the Owners table
// records it): they are the many. The other kinds are few and are
// checked on every start, which also gives an owner to one created just
// before a crash, between its own write and its owner's.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/doze-io/doze/registry"
)

const devicesMigrated = "devices-v1"

// defaultOwner returns the app unowned resources go to, "" when there is
// no app, and why it was chosen.
func defaultOwner(apps []App) (id, why string) {
	if len(apps) == 0 {
		return "", ""
	}
	apps = slices.Clone(apps)
	slices.SortFunc(apps, func(a, b App) int { return strings.Compare(a.ID, b.ID) })
	for _, a := range apps {
		if strings.HasPrefix(a.ID, "demo-") {
			return a.ID, "the demo app"
		}
	}
	if len(apps) == 1 {
		return apps[0].ID, "the only app"
	}
	slices.SortStableFunc(apps, func(a, b App) int { return strings.Compare(a.Name, b.Name) })
	return apps[0].ID, "the first app by name of several, none of them a demo app"
}

// migrateOwners gives every resource without an owner to the default
// owner.
func (p *Platform) migrateOwners(ctx context.Context) error {
	owner, why := defaultOwner(p.auth.Apps())
	if owner == "" {
		return nil
	}
	own := p.db.Owners()
	moved := map[string]int{}
	groups, err := p.reg.Groups(ctx)
	if err != nil {
		return err
	}
	var todo [][2]string
	for _, g := range groups {
		todo = append(todo, [2]string{kindGroup, g.ID})
	}
	for _, prod := range p.products.catalog.List() {
		todo = append(todo, [2]string{kindProduct, productKey(prod.Key())})
	}
	pkgs, err := p.ota.Packages(ctx)
	if err != nil {
		return err
	}
	for _, pk := range pkgs {
		todo = append(todo, [2]string{kindPackage, pk.ID})
	}
	tasks, err := p.ota.Tasks(ctx)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		todo = append(todo, [2]string{kindUpgrade, t.ID})
	}
	for _, k := range todo {
		o, err := own.Owner(ctx, k[0], k[1])
		if err != nil {
			return err
		}
		if o != "" {
			continue
		}
		if _, err := own.Claim(ctx, k[0], k[1], owner); err != nil {
			return err
		}
		moved[k[0]]++
	}
	done, err := own.Done(ctx, devicesMigrated)
	if err != nil {
		return err
	}
	if !done {
		n, err := p.migrateDevices(ctx, owner)
		if err != nil {
			return err
		}
		if n > 0 {
			moved["device"] = n
		}
		if err := own.MarkDone(ctx, devicesMigrated); err != nil {
			return err
		}
	}
	if len(moved) > 0 {
		args := []any{"app", owner, "why", why}
		for _, k := range []string{"device", kindGroup, kindProduct, kindPackage, kindUpgrade} {
			if moved[k] > 0 {
				args = append(args, k+"s", moved[k])
			}
		}
		if len(p.auth.Apps()) > 1 && !strings.HasPrefix(owner, "demo-") {
			p.logger.Warn("resources without an owner given to the default app", args...)
		} else {
			p.logger.Info("resources without an owner given to the default app", args...)
		}
	}
	return nil
}

// migrateDevices gives every device without an AppID to owner, page by
// page, straight in the store (the registry's events are not for this).
// A page's updates run side by side, so the store's group commit writes
// them in a few syncs rather than one each.
func (p *Platform) migrateDevices(ctx context.Context, owner string) (int, error) {
	const pageSize, workers = 1000, 32
	st := p.db.Registry()
	n := 0
	for page := 0; ; page++ {
		devs, _, err := st.List(ctx, registry.Query{PageNo: page, PageSize: pageSize})
		if err != nil {
			return n, err
		}
		var todo []string
		for _, d := range devs {
			if d.AppID == "" {
				todo = append(todo, d.ID)
			}
		}
		errs := make([]error, len(todo))
		var wg sync.WaitGroup
		sem := make(chan struct{}, workers)
		for i, id := range todo {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				_, errs[i] = st.Update(ctx, id, func(d *registry.Device) error {
					if d.AppID == "" {
						d.AppID = owner
					}
					return nil
				})
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return n, err
		}
		n += len(todo)
		if len(devs) < pageSize {
			return n, nil
		}
	}
}
