package main

// Tenancy (APP-3): every resource belongs to the application that created
// it, and another application is told it does not exist. A device's owner
// is its registry record's AppID; the owners of groups, products, upgrade
// packages and upgrade tasks are kept in the store's Owners table. The
// resources that hang off a device (its shadow, history, log, commands,
// LwM2M operations and registration, bootstrap configuration) are the
// device owner's. Commands, batch tasks and subscriptions carry their
// appId themselves.
//
// One rule for every handler: a resource of another application is
// answered exactly as one that does not exist (the same status, code and
// message), so existence never leaks. The check runs before the resource
// is looked up, so a missing resource gets the very same error from it.
//
// What stays platform-wide: a nodeId is one device and a
// manufacturerId/model one product on the whole platform, and a group
// name is unique on the platform too, so registering a taken one answers
// 409 whoever took it (the name is refused, nothing of the resource is
// shown).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/profile"
	"github.com/doze-io/doze/registry"
)

// Kinds of the resources whose owners the Owners table keeps.
const (
	kindGroup   = "group"
	kindProduct = "product"
	kindPackage = "package"
	kindUpgrade = "upgrade"
)

// productKey names a product in the Owners table.
func productKey(manufacturerID, model string) string {
	return strconv.Itoa(len(manufacturerID)) + ":" + manufacturerID + "/" + model
}

// missing returns the error a handler answers for a resource of kind with
// id that the caller does not have: the one it answers when no such
// resource exists.
func missing(kind, id string) error {
	switch kind {
	case kindGroup:
		return apiErr(&registry.FieldError{Field: "groupId", Value: id, Rule: "must name an existing group", Err: registry.ErrGroupNotFound})
	case kindPackage:
		return apiErr(fmt.Errorf("%w: package %q", ota.ErrNotFound, id))
	case kindUpgrade:
		return apiErr(fmt.Errorf("%w: task %q", ota.ErrNotFound, id))
	}
	return notFound("not_found", "no %s %q", kind, id)
}

// missingDevice is the error for a device the caller does not have, field
// naming where its id came from ("deviceId", "deviceIds", …).
func missingDevice(field, id string) error {
	return apiErr(&registry.FieldError{Field: field, Value: id, Rule: "must name a registered device", Err: registry.ErrNotFound})
}

// missingProduct is the error for a product the caller does not have.
func missingProduct(manufacturerID, model string) error {
	return productError(fmt.Errorf("%w: no product with manufacturerId %q and model %q", profile.ErrNotFound, manufacturerID, model))
}

// ownerOf returns the owner of kind/id: its owner in the Owners table, or
// for a resource without one (added outside the API, or just before a
// crash, until the next start's migration gives it one) the default owner
// (apps_migrate.go).
func (p *Platform) ownerOf(ctx context.Context, kind, id string) (string, error) {
	owner, err := p.db.Owners().Owner(ctx, kind, id)
	if err != nil || owner != "" {
		return owner, err
	}
	owner, _ = defaultOwner(p.auth.Apps())
	return owner, nil
}

// owns returns nil when app owns the resource kind/id, else missing(kind,
// id).
func (p *Platform) owns(ctx context.Context, app, kind, id string) error {
	owner, err := p.ownerOf(ctx, kind, id)
	if err != nil {
		return err
	}
	if owner == "" || owner != app {
		return missing(kind, id)
	}
	return nil
}

// ownsProduct returns nil when app owns the product, else the error of a
// product that does not exist.
func (p *Platform) ownsProduct(ctx context.Context, app, manufacturerID, model string) error {
	owner, err := p.ownerOf(ctx, kindProduct, productKey(manufacturerID, model))
	if err != nil {
		return err
	}
	if owner == "" || owner != app {
		return missingProduct(manufacturerID, model)
	}
	return nil
}

// mine returns a test of whether app owns a resource of kind, for lists.
func (p *Platform) mine(ctx context.Context, app, kind string) func(id string) bool {
	return func(id string) bool {
		owner, err := p.ownerOf(ctx, kind, id)
		if err != nil {
			p.logger.Error("reading the owner of a resource", "kind", kind, "id", id, "err", err)
			return false
		}
		return owner == app
	}
}

// ownedDevice returns the device id if it is app's; another app's device
// fails as an unknown one, naming field.
func (p *Platform) ownedDevice(ctx context.Context, app, field, id string) (registry.Device, error) {
	d, err := p.reg.Get(ctx, id)
	if errors.Is(err, registry.ErrNotFound) || err == nil && d.AppID != app {
		return registry.Device{}, missingDevice(field, id)
	}
	if err != nil {
		return registry.Device{}, apiErr(err)
	}
	return d, nil
}

// device returns the caller's device named by the path's deviceId.
func (p *Platform) device(ctx context.Context, r *http.Request) (registry.Device, error) {
	return p.ownedDevice(ctx, appOf(r), "deviceId", pathValue(r, "deviceId"))
}

// ownedDevices checks that every id is a device of app, naming the first
// that is not like an unknown device.
func (p *Platform) ownedDevices(ctx context.Context, app, field string, ids []string) error {
	for _, id := range ids {
		if _, err := p.ownedDevice(ctx, app, field, id); err != nil {
			return err
		}
	}
	return nil
}

// ownedGroups checks that every id is a group of app.
func (p *Platform) ownedGroups(ctx context.Context, app string, ids []string) error {
	for _, id := range ids {
		if err := p.owns(ctx, app, kindGroup, id); err != nil {
			return err
		}
	}
	return nil
}

// checkProductOf refuses a product of another app as the registry refuses
// one that is not in the catalog; a product missing from the catalog is
// left to the registry, which gives the same error.
func (p *Platform) checkProductOf(ctx context.Context, app, manufacturerID, model string) error {
	if _, err := p.products.catalog.Get(manufacturerID, model); err != nil {
		return nil
	}
	owner, err := p.ownerOf(ctx, kindProduct, productKey(manufacturerID, model))
	if err != nil {
		return err
	}
	if owner != app {
		return apiErr(&registry.FieldError{Field: "deviceInfo", Value: manufacturerID + "/" + model,
			Rule: "manufacturerId/model must name a product of the catalog", Err: registry.ErrUnknownProduct})
	}
	return nil
}

// forgetOwner drops the owner of a deleted resource; a failure leaves an
// owner of nothing, which is logged and harmless.
func (p *Platform) forgetOwner(kind, id string) {
	if err := p.db.Owners().Delete(context.Background(), kind, id); err != nil {
		p.logger.Error("forgetting the owner of a deleted resource", "kind", kind, "id", id, "err", err)
	}
}

// deviceApps returns the apps that hear of device d, whose pushes and
// history are theirs: its owner, while it is an app of the platform.
func (p *Platform) deviceApps(d registry.Device) []string {
	if _, ok := p.auth.App(d.AppID); ok && d.AppID != "" {
		return []string{d.AppID}
	}
	return nil
}

// ownerApps is deviceApps of the device with id; none when it is gone.
func (p *Platform) ownerApps(id string) []string {
	d, err := p.reg.Get(context.Background(), id)
	if err != nil {
		return nil
	}
	return p.deviceApps(d)
}
