package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/internal/apitime"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store"
)

type deviceInfoJSON struct {
	NodeID           string `json:"nodeId,omitempty"`
	Name             string `json:"name"`
	ManufacturerID   string `json:"manufacturerId"`
	ManufacturerName string `json:"manufacturerName"`
	DeviceType       string `json:"deviceType"`
	Model            string `json:"model"`
	ProtocolType     string `json:"protocolType"`
	Status           string `json:"status,omitempty"`
	SWVersion        string `json:"swVersion,omitempty"`
	FWVersion        string `json:"fwVersion,omitempty"`
	Mode             string `json:"mode,omitempty"`
	// The power-saving timers in seconds (CMD-11): taken at registration,
	// shown as they apply.
	PSMActiveTimer   *float64 `json:"psmActiveTimer,omitempty"`
	EDRXCycle        *float64 `json:"edrxCycle,omitempty"`
	PagingTimeWindow *float64 `json:"pagingTimeWindow,omitempty"`
}

type serviceJSON struct {
	ServiceID   string         `json:"serviceId"`
	ServiceType string         `json:"serviceType"`
	Data        map[string]any `json:"data"`
	EventTime   string         `json:"eventTime"`
}

type deviceJSON struct {
	DeviceID         string         `json:"deviceId"`
	Security         string         `json:"security"` // ours: PSK or NONE (SEC-1)
	GatewayID        string         `json:"gatewayId"`
	NodeType         string         `json:"nodeType"`
	CreateTime       string         `json:"createTime"`
	LastModifiedTime string         `json:"lastModifiedTime"`
	DeviceInfo       deviceInfoJSON `json:"deviceInfo"`
	Services         []serviceJSON  `json:"services"`
}

func infoJSON(d registry.Device) deviceInfoJSON {
	return deviceInfoJSON{NodeID: d.NodeID, Name: d.Info.Name, ManufacturerID: d.Info.ManufacturerID,
		ManufacturerName: d.Info.ManufacturerName, DeviceType: d.Info.DeviceType, Model: d.Info.Model,
		ProtocolType: d.Info.ProtocolType, Status: string(d.Status), SWVersion: d.Info.SWVersion,
		FWVersion: d.Info.FWVersion, Mode: d.Info.Mode}
}

// gatewayOf is the gatewayId the API shows: a directly connected device is
// its own gateway.
func gatewayOf(d registry.Device) string {
	if d.GatewayID != "" {
		return d.GatewayID
	}
	return d.ID
}

func (p *Platform) deviceJSON(d registry.Device) deviceJSON {
	out := deviceJSON{DeviceID: d.ID, Security: string(securityOf(d)), GatewayID: gatewayOf(d), NodeType: string(d.NodeType),
		CreateTime: apiTime(d.CreatedAt), LastModifiedTime: apiTime(d.LastModified), DeviceInfo: infoJSON(d),
		Services: []serviceJSON{}}
	p.showMode(context.Background(), &out.DeviceInfo, d.ID)
	sh, _ := p.db.Shadow().Get(d.ID)
	for _, s := range sh {
		if s.Reported == nil {
			continue
		}
		out.Services = append(out.Services, serviceJSON{ServiceID: s.ServiceID, ServiceType: p.serviceType(d, s.ServiceID),
			Data: s.Reported.Data, EventTime: apiTime(s.Reported.EventTime)})
	}
	return out
}

// serviceType looks up the serviceType of a device's service in its product
// (PRF-6: serviceId and serviceType may differ).
func (p *Platform) serviceType(d registry.Device, serviceID string) string {
	prod, err := p.products.catalog.Get(d.Info.ManufacturerID, d.Info.Model)
	if err != nil {
		return serviceID
	}
	if s, ok := prod.Service(serviceID); ok && s.Type != "" {
		return s.Type
	}
	return serviceID
}

// registrationJSON is the body of a device registration, one element of
// a batch (APP-4).
type registrationJSON struct {
	NodeID     string         `json:"nodeId"`
	VerifyCode string         `json:"verifyCode"`
	Timeout    *int64         `json:"timeout"`
	PSK        string         `json:"psk"`
	Security   string         `json:"security"`
	Secret     string         `json:"secret"` // MQTT devices (MQT-1); generated when absent
	GatewayID  string         `json:"gatewayId"`
	NodeType   string         `json:"nodeType"`
	DeviceInfo deviceInfoJSON `json:"deviceInfo"`
}

// registrationAnswer is what a registration returns: the credentials,
// shown this once.
type registrationAnswer struct {
	DeviceID   string            `json:"deviceId"`
	VerifyCode string            `json:"verifyCode"`
	Timeout    int64             `json:"timeout"`
	PSK        string            `json:"psk"`
	Security   registry.Security `json:"security"`
	Secret     string            `json:"secret,omitempty"` // an MQTT device's secret; only its hash is kept
}

func (p *Platform) registerDevice(w http.ResponseWriter, r *http.Request) error {
	var body registrationJSON
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	answer, err := p.register(r.Context(), appOf(r), body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, answer)
	return nil
}

// register registers one device for app. Its errors are httpErrors
// naming the field at fault, or the store's.
func (p *Platform) register(ctx context.Context, app string, body registrationJSON) (registrationAnswer, error) {
	mode, err := modeFields{Mode: &body.DeviceInfo.Mode, PSMActiveTimer: body.DeviceInfo.PSMActiveTimer,
		EDRXCycle: body.DeviceInfo.EDRXCycle, PagingTimeWindow: body.DeviceInfo.PagingTimeWindow}.parse("deviceInfo.")
	if err != nil {
		return registrationAnswer{}, err
	}
	body.DeviceInfo.Mode = *mode.own
	planned, err := p.planMode(command.Mode{}, false, *mode.own, app, mode)
	if err != nil {
		return registrationAnswer{}, err
	}
	reg := registry.Enrollment{NodeID: body.NodeID, VerifyCode: body.VerifyCode, GatewayID: body.GatewayID,
		Security: registry.Security(strings.ToUpper(body.Security)),
		NodeType: registry.NodeType(body.NodeType),
		Info: registry.Info{ManufacturerID: body.DeviceInfo.ManufacturerID, ManufacturerName: body.DeviceInfo.ManufacturerName,
			DeviceType: body.DeviceInfo.DeviceType, Model: body.DeviceInfo.Model, ProtocolType: body.DeviceInfo.ProtocolType,
			Name: body.DeviceInfo.Name, Mode: body.DeviceInfo.Mode},
		AppID: app}
	if err := p.checkProductOf(ctx, app, reg.Info.ManufacturerID, reg.Info.Model); err != nil {
		return registrationAnswer{}, err
	}
	if reg.Info.ManufacturerName == "" {
		// Optional in the API; the product knows it, and upgrade packages
		// are matched by it (OTA-1).
		if prod, err := p.products.catalog.Get(reg.Info.ManufacturerID, reg.Info.Model); err == nil {
			reg.Info.ManufacturerName = prod.ManufacturerName
		}
	}
	if body.Timeout != nil {
		if *body.Timeout < 0 || *body.Timeout > 2147483647 {
			return registrationAnswer{}, badRequest("invalid_timeout", "timeout is %d; it must be 0 (never expires) to 2147483647 seconds", *body.Timeout)
		}
		d := time.Duration(*body.Timeout) * time.Second
		reg.Timeout = &d
	}
	if body.PSK != "" {
		k, err := registry.ParsePSK(body.PSK)
		if err != nil {
			return registrationAnswer{}, withStatus(err, http.StatusBadRequest, "invalid_psk")
		}
		reg.PSK = k
	}
	reg.Secret = body.Secret
	if reg.Secret == "" && (reg.Security == registry.SecuritySecret || reg.Security == "" && strings.EqualFold(reg.Info.ProtocolType, "MQTT")) {
		reg.Secret = registry.NewSecret()
	}
	release, err := p.quota.reserve(ctx, p, app, 1)
	if err != nil {
		return registrationAnswer{}, err
	}
	d, err := p.reg.Register(ctx, reg)
	release(err == nil)
	if err != nil {
		return registrationAnswer{}, apiErr(err)
	}
	if err := p.setMode(ctx, d.ID, planned); err != nil {
		return registrationAnswer{}, err
	}
	p.log.Add(d.ID, "registered", "registered by app "+app+" with nodeId "+d.NodeID)
	answer := registrationAnswer{DeviceID: d.ID, VerifyCode: d.VerifyCode,
		Timeout: int64(d.Timeout / time.Second), PSK: d.PSK.Hex(), Security: securityOf(d)}
	if d.Security == registry.SecuritySecret {
		answer.Secret = reg.Secret // shown this once; only its hash is kept
	}
	return answer, nil
}

// securityOf is a device's transport security as the API shows it; a
// device stored before SEC-1 is a PSK device.
func securityOf(d registry.Device) registry.Security {
	if d.Security == registry.SecurityNone || d.Security == registry.SecuritySecret {
		return d.Security
	}
	return registry.SecurityPSK
}

func (p *Platform) deviceCredentials(w http.ResponseWriter, r *http.Request) error {
	d, err := p.device(r.Context(), r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deviceId": d.ID, "activated": d.Bound, "name": d.Info.Name,
		"security": securityOf(d)})
	return nil
}

func (p *Platform) getDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := p.device(r.Context(), r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p.deviceJSON(d))
	return nil
}

func (p *Platform) updateDevice(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Name             *string `json:"name"`
		DeviceType       *string `json:"deviceType"`
		ManufacturerID   *string `json:"manufacturerId"`
		ManufacturerName *string `json:"manufacturerName"`
		Model            *string `json:"model"`
		ProtocolType     *string `json:"protocolType"`
		modeFields
		DeviceInfo *modeFields `json:"deviceInfo"` // the mode fields may also come as deviceInfo.mode (CMD-11)
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	mf, prefix := body.modeFields, ""
	if body.DeviceInfo != nil && !mf.any() {
		mf, prefix = *body.DeviceInfo, "deviceInfo."
	}
	mode, err := mf.parse(prefix)
	if err != nil {
		return err
	}
	id := pathValue(r, "deviceId")
	own, err := p.device(r.Context(), r)
	if err != nil {
		return err
	}
	if body.ManufacturerID != nil || body.Model != nil {
		mid, model := own.Info.ManufacturerID, own.Info.Model
		if body.ManufacturerID != nil {
			mid = *body.ManufacturerID
		}
		if body.Model != nil {
			model = *body.Model
		}
		if err := p.checkProductOf(r.Context(), appOf(r), mid, model); err != nil {
			return err
		}
	}
	var planned command.Mode
	if mf.any() {
		d := own
		cur, ok, err := p.cmds.Mode(r.Context(), id)
		if err != nil {
			return err
		}
		if planned, err = p.planMode(cur, ok, p.ownMode(d), appOf(r), mode); err != nil {
			return err
		}
	}
	d, err := p.reg.Update(r.Context(), id, registry.Changes{Name: body.Name, DeviceType: body.DeviceType,
		ManufacturerID: body.ManufacturerID, ManufacturerName: body.ManufacturerName, Model: body.Model,
		ProtocolType: body.ProtocolType, Mode: mode.own})
	if err != nil {
		return apiErr(err)
	}
	if mf.any() {
		if err := p.setMode(r.Context(), d.ID, planned); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteDevice deletes a device (REG-5): the key store has no key for it
// any more, so it cannot connect again; its live or parked DTLS session and
// registration end now, and its PENDING commands are cancelled.
func (p *Platform) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	id := pathValue(r, "deviceId")
	d, err := p.device(r.Context(), r)
	if err != nil {
		return err
	}
	if err := p.reg.Delete(r.Context(), id); err != nil {
		return apiErr(err)
	}
	p.quota.deleted(d.AppID)
	p.lwm.Disconnect(d.NodeID)
	if _, err := p.cmds.CancelDevice(r.Context(), id); err != nil {
		p.logger.Warn("cancelling the commands of a deleted device", "device", id, "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// page reads pageNo and pageSize (pageSize 1..1000, default 25).
func page(r *http.Request) (pageNo, pageSize int, paged bool, err error) {
	pageNo, paged, err = queryInt(r, "pageNo", 0, 0, 1<<30)
	if err != nil {
		return
	}
	pageSize, _, err = queryInt(r, "pageSize", 25, 1, 1000)
	return
}

func queryTime(r *http.Request, name string) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := apitime.Parse(s)
	if err != nil {
		return t, badRequest("bad_query", "query parameter %s=%q must be a UTC time like 20170214T164001Z", name, s)
	}
	return t, nil
}

// timeRange reads the optional startTime and endTime query parameters.
func timeRange(r *http.Request) (start, end time.Time, err error) {
	if start, err = queryTime(r, "startTime"); err != nil {
		return
	}
	end, err = queryTime(r, "endTime")
	return
}

func (p *Platform) listDevices(w http.ResponseWriter, r *http.Request) error {
	pageNo, pageSize, _, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	start, end, err := timeRange(r)
	if err != nil {
		return err
	}
	rq := registry.Query{Status: registry.Status(q.Get("status")), DeviceType: q.Get("deviceType"),
		GatewayID: q.Get("gatewayId"), NodeType: registry.NodeType(q.Get("nodeType")), AppID: appOf(r),
		PageNo: pageNo, PageSize: pageSize}
	var (
		devs  []registry.Device
		total int
	)
	sort := q.Get("sort")
	if sort != "" && sort != "ASC" && sort != "DESC" {
		return badRequest("bad_query", "query parameter sort=%q must be ASC or DESC", sort)
	}
	if start.IsZero() && end.IsZero() && sort != "DESC" {
		devs, total, err = p.reg.List(r.Context(), rq)
	} else {
		// Creation-time filters and DESC order are applied here over the
		// full match list, before paging.
		rq.PageNo, rq.PageSize = 0, 0
		all, _, lerr := p.reg.List(r.Context(), rq)
		err = lerr
		var in []registry.Device
		for _, d := range all {
			if (!start.IsZero() && d.CreatedAt.Before(start)) || (!end.IsZero() && d.CreatedAt.After(end)) {
				continue
			}
			in = append(in, d)
		}
		total = len(in)
		if sort == "DESC" {
			slices.Reverse(in)
		}
		devs = pageOf(in, pageNo, pageSize)
	}
	if err != nil {
		return apiErr(err)
	}
	out := make([]deviceJSON, 0, len(devs))
	for _, d := range devs {
		out = append(out, p.deviceJSON(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": total, "pageNo": pageNo, "pageSize": pageSize, "devices": out})
	return nil
}

func (p *Platform) history(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	pageNo, pageSize, paged, err := page(r)
	if err != nil {
		return err
	}
	if q.Get("deviceId") == "" {
		return badRequest("missing_deviceId", "deviceId is required")
	}
	if _, err := p.ownedDevice(r.Context(), appOf(r), "deviceId", q.Get("deviceId")); err != nil {
		return err
	}
	start, end, err := timeRange(r)
	if err != nil {
		return err
	}
	hq := store.HistoryQuery{DeviceID: q.Get("deviceId"), GatewayID: q.Get("gatewayId"), ServiceID: q.Get("serviceId"),
		Since: start, Until: end, Page: pageNo, PageSize: pageSize}
	prop := q.Get("property")
	// Each app that keeps history has its own copy of a device's records
	// (marked with its appId): the caller sees its own, and records from
	// before per-app copies (no appId). They are picked before paging,
	// below, as are records without the property asked for.
	app := appOf(r)
	hq.Page = -1
	recs, _, err := p.db.History().Query(hq) // counted below, after the app filter
	if err != nil {
		return err
	}
	type dto struct {
		DeviceID  string `json:"deviceId"`
		GatewayID string `json:"gatewayId"`
		AppID     string `json:"appId"`
		ServiceID string `json:"serviceId"`
		Data      any    `json:"data"`
		Timestamp string `json:"timestamp"`
	}
	out := make([]dto, 0, len(recs))
	for _, rec := range recs {
		if rec.AppID != "" && rec.AppID != app {
			continue
		}
		var data any = rec.Data
		if prop != "" {
			m := map[string]any{}
			if err := json.Unmarshal(rec.Data, &m); err == nil {
				v, ok := m[prop]
				if !ok {
					continue
				}
				data = map[string]any{prop: v}
			}
		}
		out = append(out, dto{rec.DeviceID, rec.GatewayID, rec.AppID, rec.ServiceID, data, apiTime(rec.Time)})
	}
	total := len(out)
	if paged {
		out = pageOf(out, pageNo, pageSize)
	}
	if !paged {
		pageSize = len(out) // one page holding everything (STO-2)
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": total, "pageNo": pageNo, "pageSize": pageSize, "deviceDataHistoryDTOs": out})
	return nil
}

func (p *Platform) putShadow(w http.ResponseWriter, r *http.Request) error {
	d, err := p.device(r.Context(), r)
	if err != nil {
		return err
	}
	var body struct {
		ServiceDesireds []struct {
			ServiceID string         `json:"serviceId"`
			Desired   map[string]any `json:"desired"`
		} `json:"serviceDesireds"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if len(body.ServiceDesireds) == 0 {
		return badRequest("missing_serviceDesireds", "serviceDesireds must list at least one {serviceId, desired}")
	}
	prod, _ := p.products.catalog.Get(d.Info.ManufacturerID, d.Info.Model)
	for _, sd := range body.ServiceDesireds {
		if prod == nil {
			continue
		}
		// Desired values are properties of the service, or paras of one
		// of its commands (that is how they are delivered, see shadow.go).
		if err := prod.CheckReport(sd.ServiceID, sd.Desired); err != nil && commandFor(prod, sd.ServiceID, sd.Desired) == nil {
			return withStatus(fmt.Errorf("desired values of service %s fit neither its properties nor any command's paras: %w", sd.ServiceID, err),
				http.StatusBadRequest, "desired_mismatch")
		}
	}
	now := time.Now()
	for _, sd := range body.ServiceDesireds {
		if err := p.db.Shadow().Desire(d.ID, sd.ServiceID, sd.Desired, now); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"deviceId": d.ID})
	return nil
}

func (p *Platform) getShadow(w http.ResponseWriter, r *http.Request) error {
	d, err := p.device(r.Context(), r)
	if err != nil {
		return err
	}
	sh, err := p.db.Shadow().Get(d.ID)
	if err != nil {
		return err
	}
	type side struct {
		Data      map[string]any `json:"data"`
		EventTime string         `json:"eventTime"`
	}
	type info struct {
		ServiceID string `json:"serviceId"`
		Desired   *side  `json:"desired"`
		Reported  *side  `json:"reported"`
	}
	out := make([]info, 0, len(sh))
	for _, s := range sh {
		i := info{ServiceID: s.ServiceID}
		if s.Desired != nil {
			i.Desired = &side{s.Desired.Data, apiTime(s.Desired.EventTime)}
		}
		if s.Reported != nil {
			i.Reported = &side{s.Reported.Data, apiTime(s.Reported.EventTime)}
		}
		out = append(out, i)
	}
	writeJSON(w, http.StatusOK, map[string]any{"deviceId": d.ID, "shadowInfo": out})
	return nil
}

func (p *Platform) deviceLogAPI(w http.ResponseWriter, r *http.Request) error {
	d, err := p.device(r.Context(), r)
	if err != nil {
		return err
	}
	limit, _, err := queryInt(r, "limit", 50, 1, 1000)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deviceId": d.ID, "entries": p.log.Recent(d.ID, limit)})
	return nil
}
