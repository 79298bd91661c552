package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/registry"
)

func (p *Platform) createCommand(w http.ResponseWriter, r *http.Request) error {
	var req command.Request
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	req.AppID = appOf(r)
	if req.DeviceID == "" {
		return badRequest("missing_deviceId", "deviceId is required: the id of the device the command goes to")
	}
	d, err := p.ownedDevice(r.Context(), req.AppID, "deviceId", req.DeviceID)
	if err != nil {
		return err
	}
	// PRF-9: the command must fit the product model.
	prod, err := p.products.catalog.Get(d.Info.ManufacturerID, d.Info.Model)
	if err != nil {
		return badRequest("product_not_found", "the device's product %s/%s is not in the catalog", d.Info.ManufacturerID, d.Info.Model)
	}
	if isRawCommand(prod, req.Command) { // APP-5
		if err := p.checkRawCommand(d, req.Command); err != nil {
			return err
		}
		return p.submitCommand(w, r, req)
	}
	var paras map[string]any
	if len(req.Command.Paras) > 0 {
		if err := jsonUnmarshalObject(req.Command.Paras, &paras); err != nil {
			return badRequest("invalid_command_paras", "command.paras must be a JSON object: %v", err)
		}
	}
	if err := prod.CheckCommand(req.Command.ServiceID, req.Command.Method, paras); err != nil {
		return withStatus(err, http.StatusBadRequest, "command_mismatch")
	}
	return p.submitCommand(w, r, req)
}

// submitCommand queues a checked command and answers 201 with it.
func (p *Platform) submitCommand(w http.ResponseWriter, r *http.Request, req command.Request) error {
	if req.ExpireTime != nil && *req.ExpireTime == 0 && p.cluster != nil {
		// "Now or never" needs the device's session: on a cluster the
		// node that has it takes the command (cluster.go).
		b, err := json.Marshal(req)
		if err != nil {
			return err
		}
		if p.cluster.forward(w, r, req.DeviceID, b) {
			return nil
		}
	}
	c, err := p.cmds.Submit(r.Context(), req)
	if err != nil {
		return apiErr(err)
	}
	p.callbacks.add(req.AppID, req.CallbackURL)
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func (p *Platform) listCommands(w http.ResponseWriter, r *http.Request) error {
	pageNo, pageSize, _, err := page(r)
	if err != nil {
		return err
	}
	start, end, err := timeRange(r)
	if err != nil {
		return err
	}
	var ids []string
	if id := r.URL.Query().Get("deviceId"); id != "" {
		if _, err := p.ownedDevice(r.Context(), appOf(r), "deviceId", id); err != nil {
			return err
		}
		ids = []string{id}
	} else {
		// Every device's commands: fine for the example platform's scale.
		devs, _, err := p.reg.List(r.Context(), registry.Query{AppID: appOf(r)})
		if err != nil {
			return err
		}
		for _, d := range devs {
			ids = append(ids, d.ID)
		}
	}
	var all []command.Command
	app := appOf(r)
	for _, id := range ids {
		err := p.eachCommand(r.Context(), id, func(c command.Command) {
			// An app sees its own commands and the platform's (desired
			// shadow values, AppID ""), not other apps'.
			if c.AppID != app && c.AppID != "" {
				return
			}
			if (start.IsZero() || !c.CreationTime.Before(start)) && (end.IsZero() || !c.CreationTime.After(end)) {
				all = append(all, c)
			}
		})
		if err != nil {
			return apiErr(err)
		}
	}
	// Newest first.
	slices.SortStableFunc(all, func(a, b command.Command) int { return b.CreationTime.Compare(a.CreationTime) })
	writeJSON(w, http.StatusOK, map[string]any{
		"pagination": map[string]int{"pageNo": pageNo, "pageSize": pageSize, "totalSize": len(all)},
		"data":       pageOf(all, pageNo, pageSize)})
	return nil
}

func (p *Platform) cancelCommand(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Status string `json:"status"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Status != "CANCELED" {
		return badRequest("invalid_status", "status is %q; the only change allowed is {\"status\":\"CANCELED\"}", body.Status)
	}
	id := pathValue(r, "commandId")
	// Another app's command is not the caller's to cancel: answered as
	// unknown (APP-3).
	if c, err := p.cmds.Get(r.Context(), id); err != nil {
		return apiErr(err)
	} else if c.AppID != appOf(r) {
		return apiErr(&command.NotFoundError{What: "command", ID: id})
	}
	c, err := p.cmds.Cancel(r.Context(), id)
	if err != nil {
		return apiErr(err)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// cancelTask records one "cancel all PENDING commands of a device" call.
// Cancel tasks are kept in memory only (our choice): the commands they
// cancelled are durable, the task is a receipt.
type cancelTask struct {
	TaskID         string            `json:"taskId"`
	AppID          string            `json:"appId"`
	DeviceID       string            `json:"deviceId"`
	Status         string            `json:"status"`
	TotalCount     int               `json:"totalCount"`
	DeviceCommands []command.Command `json:"deviceCommands"`
	CreateTime     string            `json:"createTime"`
}

type cancelTasks struct {
	mu    sync.Mutex
	tasks []cancelTask
}

func (p *Platform) cancelDeviceCommands(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		DeviceID string `json:"deviceId"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.DeviceID == "" {
		return badRequest("missing_deviceId", "deviceId is required: the device whose PENDING commands are cancelled")
	}
	if _, err := p.ownedDevice(r.Context(), appOf(r), "deviceId", body.DeviceID); err != nil {
		return err
	}
	// The caller's PENDING commands of the device and the platform's own
	// (desired shadow values), not other apps': the device is shared.
	app := appOf(r)
	var ids []string
	err := p.eachCommand(r.Context(), body.DeviceID, func(c command.Command) {
		if c.Status == command.Pending && (c.AppID == app || c.AppID == "") {
			ids = append(ids, c.ID)
		}
	})
	if err != nil {
		return apiErr(err)
	}
	cs := []command.Command{}
	for _, id := range ids {
		c, err := p.cmds.Cancel(r.Context(), id)
		if errors.Is(err, command.ErrNotPending) {
			continue // it went out meanwhile
		}
		if err != nil {
			return apiErr(err)
		}
		cs = append(cs, c)
	}
	t := cancelTask{TaskID: randomHex(16), AppID: appOf(r), DeviceID: body.DeviceID, Status: "DONE",
		TotalCount: len(cs), DeviceCommands: cs, CreateTime: apiTime(time.Now())}
	p.cancels.mu.Lock()
	p.cancels.tasks = append(p.cancels.tasks, t)
	if len(p.cancels.tasks) > 1000 {
		p.cancels.tasks = p.cancels.tasks[len(p.cancels.tasks)-1000:]
	}
	p.cancels.mu.Unlock()
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func (p *Platform) listCancelTasks(w http.ResponseWriter, r *http.Request) error {
	pageNo, pageSize, _, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	p.cancels.mu.Lock()
	var out []cancelTask
	for i := len(p.cancels.tasks) - 1; i >= 0; i-- {
		t := p.cancels.tasks[i]
		if t.AppID != appOf(r) || (q.Get("deviceId") != "" && t.DeviceID != q.Get("deviceId")) || (q.Get("taskId") != "" && t.TaskID != q.Get("taskId")) {
			continue
		}
		out = append(out, t)
	}
	p.cancels.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"pagination": map[string]int{"pageNo": pageNo, "pageSize": pageSize, "totalSize": len(out)},
		"data":       pageOf(out, pageNo, pageSize)})
	return nil
}

func (p *Platform) createBatch(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		AppID    string `json:"appId"`
		Timeout  int    `json:"timeout"`
		TaskName string `json:"taskName"`
		TaskType string `json:"taskType"`
		Param    struct {
			Type           string       `json:"type"`
			DeviceList     []string     `json:"deviceList"`
			DeviceType     string       `json:"deviceType"`
			ManufacturerID string       `json:"manufacturerId"`
			Model          string       `json:"model"`
			GroupList      []string     `json:"groupList"`
			Command        command.Body `json:"command"`
			CallbackURL    string       `json:"callbackUrl"`
			MaxRetransmit  *int         `json:"maxRetransmit"`
			ExpireTime     *int64       `json:"expireTime"`
		} `json:"param"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.TaskType != "DeviceCmd" {
		return badRequest("invalid_taskType", "taskType is %q; only \"DeviceCmd\" is supported", body.TaskType)
	}
	if body.TaskName == "" {
		return badRequest("invalid_taskName", "taskName is required")
	}
	var ids []string
	app := appOf(r)
	q := registry.Query{AppID: app}
	switch body.Param.Type {
	case "DeviceList":
		// Every id must be a device of the caller: another app's device
		// is refused as an unknown one (APP-3).
		if err := p.ownedDevices(r.Context(), app, "param.deviceList", body.Param.DeviceList); err != nil {
			return err
		}
		ids = body.Param.DeviceList
	case "DeviceType":
		q.DeviceType, q.ManufacturerID, q.Model = body.Param.DeviceType, body.Param.ManufacturerID, body.Param.Model
	case "GroupList":
		if err := p.ownedGroups(r.Context(), app, body.Param.GroupList); err != nil {
			return err
		}
		for _, g := range body.Param.GroupList {
			devs, _, err := p.reg.Members(r.Context(), g, registry.Query{AppID: app})
			if err != nil {
				return apiErr(err)
			}
			for _, d := range devs {
				ids = append(ids, d.ID)
			}
		}
	case "Broadcast":
	default:
		return badRequest("invalid_param_type", "param.type is %q; use DeviceList, DeviceType, GroupList or Broadcast", body.Param.Type)
	}
	if body.Param.Type == "DeviceType" || body.Param.Type == "Broadcast" {
		devs, _, err := p.reg.List(r.Context(), q)
		if err != nil {
			return apiErr(err)
		}
		for _, d := range devs {
			ids = append(ids, d.ID)
		}
	}
	if err := p.checkBatchCommand(r.Context(), ids, body.Param.Command); err != nil {
		return err
	}
	if body.Timeout != 0 {
		// The task's timeout (minutes, as the original's) bounds how long
		// each of its commands may wait: none stays PENDING after it.
		if body.Timeout < minTaskTimeout || body.Timeout > maxTaskTimeout {
			return badRequest("invalid_timeout", "timeout is %d; it must be %d to %d minutes (or absent for no task timeout)",
				body.Timeout, minTaskTimeout, maxTaskTimeout)
		}
		limit := int64(body.Timeout) * 60
		if e := body.Param.ExpireTime; e == nil || *e > limit {
			body.Param.ExpireTime = &limit
		}
	}
	t, err := p.cmds.SubmitBatch(r.Context(), command.BatchRequest{Name: body.TaskName, DeviceIDs: ids,
		Command: command.Request{AppID: appOf(r), Command: body.Param.Command, CallbackURL: body.Param.CallbackURL,
			MaxRetransmit: body.Param.MaxRetransmit, ExpireTime: body.Param.ExpireTime}})
	if err != nil {
		return apiErr(err)
	}
	p.callbacks.add(appOf(r), body.Param.CallbackURL)
	writeJSON(w, http.StatusOK, map[string]string{"taskID": t.ID})
	return nil
}

// The range of a batch task's timeout, in minutes (the original's).
const (
	minTaskTimeout = 10
	maxTaskTimeout = 2880
)

// checkBatchCommand checks the command of a batch task against the
// product model of every device it goes to, as a single command is
// checked (PRF-9): all or nothing, so a task never holds commands its
// devices cannot take. Devices that do not exist are left to the engine,
// which counts them failed.
func (p *Platform) checkBatchCommand(ctx context.Context, ids []string, body command.Body) error {
	var paras map[string]any
	if len(body.Paras) > 0 {
		if err := jsonUnmarshalObject(body.Paras, &paras); err != nil {
			return badRequest("invalid_command_paras", "param.command.paras must be a JSON object: %v", err)
		}
	}
	type product struct{ mid, model string }
	devices := map[product][]string{}
	var order []product
	for _, id := range ids {
		d, err := p.reg.Get(ctx, id)
		if err != nil {
			continue
		}
		k := product{d.Info.ManufacturerID, d.Info.Model}
		if devices[k] == nil {
			order = append(order, k)
		}
		devices[k] = append(devices[k], id)
	}
	for _, k := range order {
		ds := devices[k]
		prod, err := p.products.catalog.Get(k.mid, k.model)
		if err != nil {
			return badRequest("product_not_found", "the product %s/%s of %d device(s) of the task (%s first) is not in the catalog",
				k.mid, k.model, len(ds), ds[0])
		}
		if err := prod.CheckCommand(body.ServiceID, body.Method, paras); err != nil {
			return withStatus(fmt.Errorf("the command does not fit product %s/%s of %d device(s) of the task (%s first): %w",
				k.mid, k.model, len(ds), ds[0], err), http.StatusBadRequest, "command_mismatch")
		}
	}
	return nil
}

// batchTask returns the caller's batch task id; another app's is
// answered as unknown (APP-3).
func (p *Platform) batchTask(r *http.Request, id string) (command.Task, error) {
	t, err := p.cmds.Task(r.Context(), id)
	if err != nil {
		return t, apiErr(err)
	}
	if t.AppID != appOf(r) {
		return command.Task{}, apiErr(&command.NotFoundError{What: "task", ID: id})
	}
	return t, nil
}

func (p *Platform) getBatch(w http.ResponseWriter, r *http.Request) error {
	t, err := p.batchTask(r, pathValue(r, "taskID"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// batchDetails lists the commands of a batch task, one row per device.
func (p *Platform) batchDetails(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	taskID := q.Get("taskID")
	if _, err := p.batchTask(r, taskID); err != nil {
		return err
	}
	pageNo, pageSize, _, err := page(r)
	if err != nil {
		return err
	}
	devs, _, err := p.reg.List(r.Context(), registry.Query{AppID: appOf(r)})
	if err != nil {
		return err
	}
	type row struct {
		DeviceID  string          `json:"deviceId"`
		Status    string          `json:"status"`
		CommandID string          `json:"commandId"`
		Command   command.Command `json:"command"`
	}
	var rows []row
	for _, d := range devs {
		err := p.eachCommand(r.Context(), d.ID, func(c command.Command) {
			// Only the caller's commands and the platform's (AppID ""),
			// as in listings: another app's commands are its own.
			if c.TaskID == taskID && (c.AppID == appOf(r) || c.AppID == "") &&
				(q.Get("status") == "" || q.Get("status") == c.Status.String()) {
				rows = append(rows, row{d.ID, c.Status.String(), c.ID, c})
			}
		})
		if err != nil {
			return apiErr(err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(rows), "pageNo": pageNo, "pageSize": pageSize,
		"taskDetails": pageOf(rows, pageNo, pageSize)})
	return nil
}

// eachCommand calls f for every command of a device, oldest first.
func (p *Platform) eachCommand(ctx context.Context, deviceID string, f func(command.Command)) error {
	const batch = 500
	var after uint64
	for {
		cs, err := p.cmds.List(ctx, deviceID, after, batch)
		if err != nil {
			return err
		}
		for _, c := range cs {
			f(c)
		}
		if len(cs) < batch {
			return nil
		}
		after = cs[len(cs)-1].Seq
	}
}
