package main

import (
	"context"
	"net/http"

	"github.com/doze-io/doze/registry"
)

// Device groups (REG-4): named sets of devices, for batch commands and
// upgrade tasks, with their members listed page by page.

func (p *Platform) createGroup(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		DeviceIDs   []string `json:"deviceIds"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	app := appOf(r)
	if err := p.ownedDevices(r.Context(), app, "deviceIds", body.DeviceIDs); err != nil {
		return err
	}
	g, err := p.reg.CreateGroup(r.Context(), body.Name, body.Description)
	if err != nil {
		return apiErr(err)
	}
	// The group is the caller's from here on (APP-3). A crash before this
	// write leaves it without owner: the next start gives it to the
	// default owner (migrate.go).
	if err := p.db.Owners().Set(r.Context(), kindGroup, g.ID, app); err != nil {
		if derr := p.reg.DeleteGroup(r.Context(), g.ID); derr != nil {
			p.logger.Error("removing a group whose owner was not stored", "group", g.ID, "err", derr)
		}
		return err
	}
	if len(body.DeviceIDs) > 0 {
		if err := p.reg.AddToGroup(r.Context(), g.ID, body.DeviceIDs...); err != nil {
			// All or nothing: a group whose members were refused is not
			// left behind under the name.
			if derr := p.reg.DeleteGroup(r.Context(), g.ID); derr != nil {
				p.logger.Error("removing a group whose members were refused", "group", g.ID, "err", derr)
			}
			return apiErr(err)
		}
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": g.ID, "name": g.Name, "description": g.Description,
		"appId": appOf(r), "deviceIds": body.DeviceIDs})
	return nil
}

func (p *Platform) listGroups(w http.ResponseWriter, r *http.Request) error {
	gs, err := p.reg.Groups(r.Context())
	if err != nil {
		return apiErr(err)
	}
	mine := p.mine(r.Context(), appOf(r), kindGroup)
	out := make([]map[string]any, 0, len(gs))
	for _, g := range gs {
		if !mine(g.ID) {
			continue
		}
		j, err := p.groupJSON(r.Context(), g)
		if err != nil {
			return apiErr(err)
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(out), "list": out})
	return nil
}

func (p *Platform) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	id := pathValue(r, "devGroupId")
	if err := p.owns(r.Context(), appOf(r), kindGroup, id); err != nil {
		return err
	}
	if err := p.reg.DeleteGroup(r.Context(), id); err != nil {
		return apiErr(err)
	}
	if err := p.db.Owners().Delete(r.Context(), kindGroup, id); err != nil {
		p.logger.Error("forgetting the owner of a deleted group", "group", id, "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type groupMembers struct {
	DevGroupID string   `json:"devGroupId"`
	DeviceIDs  []string `json:"deviceIds"`
}

func (p *Platform) addToGroup(w http.ResponseWriter, r *http.Request) error {
	return p.changeGroup(w, r, p.reg.AddToGroup)
}

func (p *Platform) removeFromGroup(w http.ResponseWriter, r *http.Request) error {
	return p.changeGroup(w, r, p.reg.RemoveFromGroup)
}

func (p *Platform) changeGroup(w http.ResponseWriter, r *http.Request, change func(ctx context.Context, groupID string, ids ...string) error) error {
	var body groupMembers
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if err := p.owns(r.Context(), appOf(r), kindGroup, body.DevGroupID); err != nil {
		return err
	}
	if err := p.ownedDevices(r.Context(), appOf(r), "deviceIds", body.DeviceIDs); err != nil {
		return err
	}
	if err := change(r.Context(), body.DevGroupID, body.DeviceIDs...); err != nil {
		return apiErr(err)
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// groupJSON is one group as the API shows it; curNum is its member count.
func (p *Platform) groupJSON(ctx context.Context, g registry.Group) (map[string]any, error) {
	_, n, err := p.reg.Members(ctx, g.ID, registry.Query{PageSize: 1})
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": g.ID, "name": g.Name, "description": g.Description, "curNum": n}, nil
}

// getGroup answers GET devGroups/{devGroupId}: the group and its member count.
func (p *Platform) getGroup(w http.ResponseWriter, r *http.Request) error {
	if err := p.owns(r.Context(), appOf(r), kindGroup, pathValue(r, "devGroupId")); err != nil {
		return err
	}
	g, err := p.reg.Group(r.Context(), pathValue(r, "devGroupId"))
	if err != nil {
		return apiErr(err)
	}
	out, err := p.groupJSON(r.Context(), g)
	if err != nil {
		return apiErr(err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// groupMembersList answers GET devGroups/{devGroupId}/members: a page of
// the group's deviceIds, in deviceId order, and their total.
func (p *Platform) groupMembersList(w http.ResponseWriter, r *http.Request) error {
	pageNo, pageSize, _, err := page(r)
	if err != nil {
		return err
	}
	if err := p.owns(r.Context(), appOf(r), kindGroup, pathValue(r, "devGroupId")); err != nil {
		return err
	}
	devs, total, err := p.reg.Members(r.Context(), pathValue(r, "devGroupId"), registry.Query{PageNo: pageNo, PageSize: pageSize})
	if err != nil {
		return apiErr(err)
	}
	ids := make([]string, 0, len(devs))
	for _, d := range devs {
		ids = append(ids, d.ID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": total, "pageNo": pageNo, "pageSize": pageSize, "deviceIds": ids})
	return nil
}
