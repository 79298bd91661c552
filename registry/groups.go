package registry

import (
	"context"
	"errors"
	"slices"
	"time"
)

// CreateGroup creates a group named name (1 to 64 characters, unique) and
// returns it (REG-4).
func (r *Registry) CreateGroup(ctx context.Context, name, description string) (Group, error) {
	if err := r.check(ctx); err != nil {
		return Group{}, err
	}
	if err := checkText("name", name, MaxGroupNameLen, true, false, false); err != nil {
		return Group{}, err
	}
	if err := checkText("description", description, MaxFieldLen, false, false, false); err != nil {
		return Group{}, err
	}
	now := time.Now()
	g := Group{ID: newID(), Name: name, Description: description, CreatedAt: now}
	if err := r.st.CreateGroup(ctx, g); err != nil {
		if errors.Is(err, ErrGroupExists) {
			return Group{}, &FieldError{Field: "name", Value: name, Rule: "a group with this name exists; names are unique", Err: ErrGroupExists}
		}
		return Group{}, err
	}
	return g, nil
}

func groupNotFound(id string) error {
	return &FieldError{Field: "groupId", Value: id, Rule: "must name an existing group", Err: ErrGroupNotFound}
}

// Group returns the group with id (ErrGroupNotFound if none).
func (r *Registry) Group(ctx context.Context, id string) (Group, error) {
	if err := r.check(ctx); err != nil {
		return Group{}, err
	}
	g, err := r.st.Group(ctx, id)
	if errors.Is(err, ErrGroupNotFound) {
		return Group{}, groupNotFound(id)
	}
	return g, err
}

// Groups returns every group, ordered by id (creation time).
func (r *Registry) Groups(ctx context.Context) ([]Group, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	return r.st.Groups(ctx)
}

// DeleteGroup deletes the group; its members stay, outside it.
func (r *Registry) DeleteGroup(ctx context.Context, id string) error {
	if err := r.check(ctx); err != nil {
		return err
	}
	err := r.st.DeleteGroup(ctx, id)
	if errors.Is(err, ErrGroupNotFound) {
		return groupNotFound(id)
	}
	return err
}

// AddToGroup puts the devices into the group (REG-4). An unknown group
// fails with ErrGroupNotFound before anything changes; unknown devices are
// reported (joined) while the others are added.
func (r *Registry) AddToGroup(ctx context.Context, groupID string, deviceIDs ...string) error {
	return r.membership(ctx, groupID, deviceIDs, func(gs []string) []string {
		if i, ok := slices.BinarySearch(gs, groupID); !ok {
			gs = slices.Insert(gs, i, groupID)
		}
		return gs
	})
}

// RemoveFromGroup takes the devices out of the group. Devices that are not
// members are left alone; unknown devices are reported (joined).
func (r *Registry) RemoveFromGroup(ctx context.Context, groupID string, deviceIDs ...string) error {
	return r.membership(ctx, groupID, deviceIDs, func(gs []string) []string {
		if i, ok := slices.BinarySearch(gs, groupID); ok {
			gs = slices.Delete(gs, i, i+1)
		}
		return gs
	})
}

func (r *Registry) membership(ctx context.Context, groupID string, ids []string, edit func([]string) []string) error {
	if _, err := r.Group(ctx, groupID); err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		_, err := r.st.Update(ctx, id, func(d *Device) error {
			d.Groups = edit(d.Groups)
			d.LastModified = time.Now()
			return nil
		})
		switch {
		case errors.Is(err, ErrNotFound):
			errs = append(errs, notFound("deviceIds", id))
		case errors.Is(err, ErrGroupNotFound):
			return groupNotFound(groupID) // deleted meanwhile
		case err != nil:
			return err
		}
	}
	return joinErrs(errs)
}

// Members returns the page of the group's devices q selects (q.GroupID is
// set to groupID) and the total (REG-4).
func (r *Registry) Members(ctx context.Context, groupID string, q Query) ([]Device, int, error) {
	if _, err := r.Group(ctx, groupID); err != nil {
		return nil, 0, err
	}
	q.GroupID = groupID
	return r.List(ctx, q)
}
