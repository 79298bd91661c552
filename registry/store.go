package registry

import (
	"context"
	"time"
)

// Store keeps devices and groups. The registry owns the rules; a Store
// owns atomicity, uniqueness and its indexes. Implementations: MemStore in
// this package, the bbolt one in package store; both pass
// registrytest.Run, as must any other.
//
// Every method is safe for concurrent use. Devices go in and come out as
// deep copies. A Store returns the sentinel errors of this package
// (possibly wrapped) so that the registry can branch on them.
type Store interface {
	// Create stores a new device. It fails with ErrExists if d.ID is
	// taken, ErrNodeIDTaken if another device has the same NodeKey,
	// ErrGatewayNotFound if d.GatewayID is set and names no device, and
	// ErrGroupNotFound if d.Groups names a group that does not exist.
	Create(ctx context.Context, d Device) error

	// Get returns the device with id, or ErrNotFound.
	Get(ctx context.Context, id string) (Device, error)

	// GetByNodeKey returns the device whose NodeKey(NodeID) is key, or
	// ErrNotFound.
	GetByNodeKey(ctx context.Context, key string) (Device, error)

	// Update reads the device with id, lets fn change it, and stores the
	// result atomically (no other write to the device in between),
	// keeping every index in step. If fn returns an error nothing is
	// stored and Update returns that error. fn may run more than once
	// and must only change the *Device it is given. Changing ID fails
	// with ErrInvalid; a changed NodeID must stay unique
	// (ErrNodeIDTaken); every group in Groups must exist
	// (ErrGroupNotFound). Update returns the stored device.
	Update(ctx context.Context, id string, fn func(*Device) error) (Device, error)

	// Delete removes the device with id and all its index entries, and
	// returns what was stored. If check is not nil it is called with the
	// stored device first, in the same transaction; when it returns an
	// error nothing is deleted and Delete returns that error. A gateway
	// with sub-devices is not deleted: ErrHasSubDevices.
	Delete(ctx context.Context, id string, check func(Device) error) (Device, error)

	// List returns the page of devices q selects, ordered by ID, and the
	// number of devices that match q's filters on all pages.
	List(ctx context.Context, q Query) ([]Device, int, error)

	// Due returns up to limit devices whose non-zero Deadline is at or
	// before t, earliest deadline first (ties in any order).
	Due(ctx context.Context, t time.Time, limit int) ([]Device, error)

	// CreateGroup stores a new group; ErrGroupExists if its ID or Name is
	// taken.
	CreateGroup(ctx context.Context, g Group) error

	// Group returns the group with id, or ErrGroupNotFound.
	Group(ctx context.Context, id string) (Group, error)

	// Groups returns every group ordered by ID.
	Groups(ctx context.Context) ([]Group, error)

	// DeleteGroup removes the group and takes it out of every member's
	// Groups, in one transaction; ErrGroupNotFound if there is none.
	DeleteGroup(ctx context.Context, id string) error
}
