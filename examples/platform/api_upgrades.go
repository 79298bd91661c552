package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/doze-io/doze/internal/apitime"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/profile"
	"github.com/doze-io/doze/registry"
)

type packageJSON struct {
	FileID           string   `json:"fileId"`
	FileType         string   `json:"fileType"`
	Version          string   `json:"version"`
	DeviceType       string   `json:"deviceType"`
	ManufacturerName string   `json:"manufacturerName"`
	Model            string   `json:"model"`
	ProtocolType     string   `json:"protocolType"`
	SourceVersions   []string `json:"sourceVersions"`
	Description      string   `json:"description"`
	BlockSize        int      `json:"blockSize,omitempty"`
	Size             int64    `json:"size"`
	Digest           string   `json:"digest"`
	Date             string   `json:"date"`
}

func toPackageJSON(p ota.Package) packageJSON {
	src := p.SourceVersions
	if src == nil {
		src = []string{}
	}
	return packageJSON{FileID: p.ID, FileType: string(p.Kind), Version: p.Version, DeviceType: p.DeviceType,
		ManufacturerName: p.Manufacturer, Model: p.Model, ProtocolType: p.Protocol, SourceVersions: src,
		Description: p.Description, BlockSize: p.BlockSize, Size: p.Size, Digest: p.DigestHex(), Date: apiTime(p.Created)}
}

// uploadPackage stores an upgrade package: the "file" part streams to
// disk as it arrives (SEC-3), under its cap; the fields may come before or
// after it.
func (p *Platform) uploadPackage(w http.ResponseWriter, r *http.Request) error {
	id := randomHex(12)
	var (
		stored bool
		size   int64
	)
	fields, err := p.readUpload(w, r, `"file" and the package fields`, map[string]filePart{
		"file": {limit: p.cfg.MaxUpload, consume: func(_ string, rd io.Reader) error {
			if stored {
				return badRequest("bad_form", "send one \"file\" part, not several")
			}
			n, err := p.files.Put(id, rd)
			if err != nil {
				return err
			}
			stored, size = true, n
			return nil
		}},
	})
	if err == nil && !stored {
		err = badRequest("missing_file", "the multipart field \"file\" with the package is missing")
	}
	if err != nil {
		if stored {
			p.files.Remove(id)
		}
		return err
	}
	v := func(k string) string { return fields[k] }
	pkg := ota.Package{ID: id, Kind: ota.Kind(v("fileType")), Version: v("version"), DeviceType: v("deviceType"),
		Manufacturer: v("manufacturerName"), Model: v("model"), Protocol: v("protocolType"), Description: v("description"), Size: size}
	if s := strings.TrimSpace(v("sourceVersions")); s != "" {
		for _, sv := range strings.Split(s, ",") {
			pkg.SourceVersions = append(pkg.SourceVersions, strings.TrimSpace(sv))
		}
	}
	if s := v("blockSize"); s != "" {
		if pkg.BlockSize, err = strconv.Atoi(s); err != nil {
			p.files.Remove(id)
			return badRequest("invalid_blockSize", "blockSize %q must be an integer from 32 to 500", s)
		}
	}
	if err := pkg.Validate(); err != nil {
		p.files.Remove(id)
		return apiErr(err)
	}
	// The owner is stored before the package (APP-3): the id is new, so
	// a crash between the two leaves only an owner of nothing.
	if err := p.db.Owners().Set(r.Context(), kindPackage, pkg.ID, appOf(r)); err != nil {
		p.files.Remove(pkg.ID)
		return err
	}
	added, err := p.ota.AddPackage(r.Context(), pkg)
	if err != nil {
		p.files.Remove(pkg.ID)
		p.forgetOwner(kindPackage, pkg.ID)
		return apiErr(err)
	}
	writeJSON(w, http.StatusCreated, toPackageJSON(added))
	return nil
}

func (p *Platform) listPackages(w http.ResponseWriter, r *http.Request) error {
	pkgs, err := p.ota.Packages(r.Context())
	if err != nil {
		return apiErr(err)
	}
	mine := p.mine(r.Context(), appOf(r), kindPackage)
	q := r.URL.Query()
	out := []packageJSON{}
	for _, pk := range pkgs {
		if !mine(pk.ID) || (q.Get("fileType") != "" && string(pk.Kind) != q.Get("fileType")) || (q.Get("model") != "" && pk.Model != q.Get("model")) {
			continue
		}
		out = append(out, toPackageJSON(pk))
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(out), "data": out})
	return nil
}

func (p *Platform) getPackage(w http.ResponseWriter, r *http.Request) error {
	if err := p.owns(r.Context(), appOf(r), kindPackage, pathValue(r, "fileId")); err != nil {
		return err
	}
	pk, err := p.ota.Package(r.Context(), pathValue(r, "fileId"))
	if err != nil {
		return apiErr(err)
	}
	writeJSON(w, http.StatusOK, toPackageJSON(pk))
	return nil
}

func (p *Platform) deletePackage(w http.ResponseWriter, r *http.Request) error {
	id := pathValue(r, "fileId")
	if err := p.owns(r.Context(), appOf(r), kindPackage, id); err != nil {
		return err
	}
	if err := p.ota.DeletePackage(r.Context(), id); err != nil {
		return apiErr(err)
	}
	p.files.Remove(id)
	p.forgetOwner(kindPackage, id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type upgradeBody struct {
	FileID  string `json:"fileId"`
	Targets struct {
		Devices      []string `json:"devices"`
		DeviceGroups []string `json:"deviceGroups"`
	} `json:"targets"`
	Policy *struct {
		ExecuteType   string `json:"executeType"`
		StartTime     string `json:"startTime"`
		EndTime       string `json:"endTime"`
		RetryTimes    int    `json:"retryTimes"`
		RetryInterval int    `json:"retryInterval"` // minutes
	} `json:"policy"`
}

// maxRetryInterval is the longest policy.retryInterval, in minutes (30 days).
const maxRetryInterval = 30 * 24 * 60

func (p *Platform) softwareUpgrade(w http.ResponseWriter, r *http.Request) error {
	return p.upgrade(w, r, ota.Software)
}

func (p *Platform) firmwareUpgrade(w http.ResponseWriter, r *http.Request) error {
	return p.upgrade(w, r, ota.Firmware)
}

func (p *Platform) upgrade(w http.ResponseWriter, r *http.Request, kind ota.Kind) error {
	var body upgradeBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	app := appOf(r)
	if err := p.owns(r.Context(), app, kindPackage, body.FileID); err != nil {
		return err
	}
	pkg, err := p.ota.Package(r.Context(), body.FileID)
	if err != nil {
		return apiErr(err)
	}
	if pkg.Kind != kind {
		return badRequest("wrong_package_type", "package %s is a %s; this operation takes a %s", pkg.ID, pkg.Kind, kind)
	}
	// Every target must be the caller's: another app's device or group
	// is refused as an unknown one (APP-3).
	if err := p.ownedDevices(r.Context(), app, "targets.devices", body.Targets.Devices); err != nil {
		return err
	}
	if err := p.ownedGroups(r.Context(), app, body.Targets.DeviceGroups); err != nil {
		return err
	}
	ids := append([]string{}, body.Targets.Devices...)
	for _, g := range body.Targets.DeviceGroups {
		devs, _, err := p.reg.Members(r.Context(), g, registry.Query{AppID: app})
		if err != nil {
			return apiErr(err)
		}
		for _, d := range devs {
			ids = append(ids, d.ID)
		}
	}
	if len(ids) == 0 {
		return badRequest("no_targets", "targets must name devices or deviceGroups")
	}
	ids, refused := p.upgradable(r.Context(), ids, kind)
	if len(ids) == 0 {
		// Every device refused: the problems list each one's reason.
		return &problemsError{Code: "upgrade_not_supported", Err: fmt.Errorf("no target device can take the upgrade: %s (device %s)",
			refused[0].Reason, refused[0].DeviceID), Problems: refused}
	}
	spec := ota.TaskSpec{PackageID: pkg.ID, Devices: ids}
	if pol := body.Policy; pol != nil {
		// Bounded before it is multiplied into a Duration, which would
		// overflow into a negative interval.
		if pol.RetryInterval < 0 || pol.RetryInterval > maxRetryInterval {
			return badRequest("invalid_argument", "policy.retryInterval is %d; it must be 0 to %d minutes", pol.RetryInterval, maxRetryInterval)
		}
		spec.Policy = ota.Policy{Execute: ota.ExecuteType(pol.ExecuteType), RetryTimes: pol.RetryTimes,
			RetryInterval: time.Duration(pol.RetryInterval) * time.Minute}
		if spec.Policy.Start, err = parseAPITime("policy.startTime", pol.StartTime); err != nil {
			return err
		}
		if spec.Policy.End, err = parseAPITime("policy.endTime", pol.EndTime); err != nil {
			return err
		}
	}
	t, err := p.ota.CreateTask(r.Context(), spec)
	if err != nil {
		return apiErr(err)
	}
	// A crash before this write leaves the task without owner: the next
	// start gives it to the default owner (migrate.go).
	if err := p.db.Owners().Set(r.Context(), kindUpgrade, t.ID, app); err != nil {
		return err
	}
	out := map[string]any{"operationId": t.ID}
	if len(refused) > 0 {
		out["refusedDevices"] = refused
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// refusedDevice is a target device left out of an upgrade task, and why.
type refusedDevice struct {
	DeviceID string `json:"deviceId"`
	Reason   string `json:"reason"`
}

// upgradable splits target devices by their product's upgrade capability
// (OTA-5): a software upgrade needs omCapability.upgradeCapability, a
// firmware upgrade omCapability.fwUpgradeCapability, with supportUpgrade
// true; a product that declares none takes no upgrade of that kind.
// Devices that do not exist are left in, for the task to fail them.
func (p *Platform) upgradable(ctx context.Context, ids []string, kind ota.Kind) (ok []string, refused []refusedDevice) {
	for _, id := range ids {
		d, err := p.reg.Get(ctx, id)
		if err != nil {
			ok = append(ok, id)
			continue
		}
		prod, err := p.products.catalog.Get(d.Info.ManufacturerID, d.Info.Model)
		if err != nil {
			refused = append(refused, refusedDevice{id, fmt.Sprintf("its product %s/%s is not in the catalog", d.Info.ManufacturerID, d.Info.Model)})
			continue
		}
		var up *profile.Upgrade
		what, field := "software", "upgradeCapability"
		if kind == ota.Firmware {
			what, field = "firmware", "fwUpgradeCapability"
		}
		if prod.OM != nil {
			up = prod.OM.Upgrade
			if kind == ota.Firmware {
				up = prod.OM.FirmwareUpgrade
			}
		}
		if up == nil || !up.Supported {
			refused = append(refused, refusedDevice{id, fmt.Sprintf("its product %s/%s does not support %s upgrade (its profile's omCapability.%s.supportUpgrade is not true)",
				d.Info.ManufacturerID, d.Info.Model, what, field)})
			continue
		}
		ok = append(ok, id)
	}
	return ok, refused
}

func parseAPITime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := apitime.Parse(s)
	if err != nil {
		return t, badRequest("invalid_time", "%s %q must be a UTC time like 20170214T164001Z", field, s)
	}
	return t, nil
}

type operationJSON struct {
	OperationID   string         `json:"operationId"`
	OperationType string         `json:"operationType"`
	FileID        string         `json:"fileId"`
	Status        string         `json:"status"`
	CreateTime    string         `json:"createTime"`
	UpdateTime    string         `json:"updateTime"`
	TotalCount    int            `json:"totalCount"`
	SuccessCount  int            `json:"successCount"`
	FailCount     int            `json:"failCount"`
	Progress      int            `json:"progress"`
	Download      int            `json:"downloadProgress"`
	States        map[string]int `json:"subOperationStates"`
	Attempt       int            `json:"attempt"`
}

func (p *Platform) operationJSON(r *http.Request, t ota.Task) operationJSON {
	op := operationJSON{OperationID: t.ID, OperationType: string(t.Kind), FileID: t.PackageID, Status: string(t.State),
		CreateTime: apiTime(t.Created), UpdateTime: apiTime(t.Updated), Attempt: t.Attempt, States: map[string]int{}}
	if pr, err := p.ota.Progress(r.Context(), t.ID); err == nil {
		op.TotalCount, op.Progress, op.Download = pr.Total, pr.Percent, pr.Download
		op.SuccessCount, op.FailCount = pr.States[ota.SubSuccess], pr.States[ota.SubFail]
		for s, n := range pr.States {
			op.States[string(s)] = n
		}
	}
	return op
}

func (p *Platform) listOperations(w http.ResponseWriter, r *http.Request) error {
	pageNo, pageSize, _, err := page(r)
	if err != nil {
		return err
	}
	tasks, err := p.ota.Tasks(r.Context())
	if err != nil {
		return apiErr(err)
	}
	mine := p.mine(r.Context(), appOf(r), kindUpgrade)
	q := r.URL.Query()
	var out []operationJSON
	for i := len(tasks) - 1; i >= 0; i-- { // newest first
		t := tasks[i]
		if !mine(t.ID) || (q.Get("status") != "" && string(t.State) != q.Get("status")) || (q.Get("operationType") != "" && string(t.Kind) != q.Get("operationType")) {
			continue
		}
		out = append(out, p.operationJSON(r, t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(out), "pageNo": pageNo, "pageSize": pageSize,
		"data": pageOf(out, pageNo, pageSize)})
	return nil
}

func (p *Platform) getOperation(w http.ResponseWriter, r *http.Request) error {
	if err := p.owns(r.Context(), appOf(r), kindUpgrade, pathValue(r, "operationId")); err != nil {
		return err
	}
	t, err := p.ota.Task(r.Context(), pathValue(r, "operationId"))
	if err != nil {
		return apiErr(err)
	}
	writeJSON(w, http.StatusOK, p.operationJSON(r, t))
	return nil
}

func (p *Platform) subOperations(w http.ResponseWriter, r *http.Request) error {
	pageNo, pageSize, _, err := page(r)
	if err != nil {
		return err
	}
	if err := p.owns(r.Context(), appOf(r), kindUpgrade, pathValue(r, "operationId")); err != nil {
		return err
	}
	subs, err := p.ota.SubTasks(r.Context(), pathValue(r, "operationId"))
	if err != nil {
		return apiErr(err)
	}
	type row struct {
		SubOperationID string `json:"subOperationId"`
		DeviceID       string `json:"deviceId"`
		Status         string `json:"status"`
		Step           string `json:"step"`
		Progress       int    `json:"progress"`
		ErrorReason    string `json:"errorReason,omitempty"`
		SourceVersion  string `json:"sourceVersion,omitempty"`
		TargetVersion  string `json:"targetVersion"`
		CurrentVersion string `json:"currentVersion,omitempty"`
		UpdateTime     string `json:"updateTime"`
	}
	// A software sub-task's progress is the blocks served over the
	// package's blocks (OTA-7).
	pkgBlocks := 0
	if t, err := p.ota.Task(r.Context(), pathValue(r, "operationId")); err == nil && t.Kind == ota.Software {
		if pkg, err := p.ota.Package(r.Context(), t.PackageID); err == nil {
			pkgBlocks = pkg.Blocks()
		}
	}
	want := r.URL.Query().Get("subOperationStatus")
	var rows []row
	for _, s := range subs {
		if want != "" && string(s.State) != want {
			continue
		}
		served, ok := p.ota.Served(s.DeviceID)
		rows = append(rows, row{SubOperationID: s.ID(), DeviceID: s.DeviceID, Status: string(s.State), Step: string(s.Step),
			Progress: subProgress(s, pkgBlocks, served, ok), ErrorReason: s.Reason, SourceVersion: s.SourceVersion, TargetVersion: s.TargetVersion,
			CurrentVersion: s.CurrentVersion, UpdateTime: apiTime(s.Updated)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(rows), "pageNo": pageNo, "pageSize": pageSize,
		"data": pageOf(rows, pageNo, pageSize)})
	return nil
}

func (p *Platform) stopOperation(w http.ResponseWriter, r *http.Request) error {
	if err := p.owns(r.Context(), appOf(r), kindUpgrade, pathValue(r, "operationId")); err != nil {
		return err
	}
	t, err := p.ota.Stop(r.Context(), pathValue(r, "operationId"))
	if err != nil {
		return apiErr(err)
	}
	writeJSON(w, http.StatusOK, p.operationJSON(r, t))
	return nil
}

func (p *Platform) retryOperation(w http.ResponseWriter, r *http.Request) error {
	if err := p.owns(r.Context(), appOf(r), kindUpgrade, pathValue(r, "operationId")); err != nil {
		return err
	}
	t, err := p.ota.Retry(r.Context(), pathValue(r, "operationId"))
	if err != nil {
		return apiErr(err)
	}
	writeJSON(w, http.StatusOK, p.operationJSON(r, t))
	return nil
}

// subProgress is a sub-task's download progress in percent: for software,
// the distinct blocks served (live while the device downloads, else as
// last saved) over the package's pkgBlocks; for firmware, the highest byte
// served over the package size.
func subProgress(s ota.SubTask, pkgBlocks int, live ota.Served, isLive bool) int {
	if isLive && live.TaskID == s.TaskID {
		s.Blocks = live.Distinct
		if live.Blocks > 0 {
			pkgBlocks = live.Blocks
		}
	}
	return s.Progress(pkgBlocks)
}
