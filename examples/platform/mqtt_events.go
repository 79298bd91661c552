package main

// A gateway adds and deletes its sub-devices, and says whether they are
// ONLINE or OFFLINE, over its own MQTT connection (MQT-5, REG-4): the
// sub-device events of package mqtt on
// $oc/devices/{gatewayId}/sys/events/up, answered on …/sys/events/down.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/internal/apitime"
	"github.com/doze-io/doze/mqtt"
	"github.com/doze-io/doze/registry"
)

// DefaultMaxSubDevices is Config.MQTTMaxSubDevices' default: how many
// sub-devices one gateway may have.
const DefaultMaxSubDevices = 1000

// The error_code of a device in an answer's failed_devices (besides the
// API's codes for what the registry refuses: conflict, invalid_<field>).
// They are MQTT answers, not REST ones.
const (
	subUnknownProduct  = "unknown_product"
	subTooMany         = "too_many_sub_devices"
	subInvalidDeviceID = "invalid_device_id"
	subInvalidParent   = "invalid_parent_device_id"
	subConflict        = "conflict"
	subNotFound        = "device_not_found"
	subNotBehind       = "not_behind_gateway"
	subInactive        = "device_inactive" // OFFLINE for a sub-device that was never ONLINE
	subStatusRefused   = "status_refused"  // ONLINE refused by the registry (binding timeout passed, …)
)

// eventAnswerTimeout bounds the delivery of one events/down answer (the
// original platform answers within 30 s).
const eventAnswerTimeout = 30 * time.Second

// mqttEvents takes a gateway's events/up message: every add and delete is
// done, durably, before the message is acknowledged; the answers go down
// after (the connection's PUBACK must go first: the broker reads the
// gateway's packets, its PUBACK of the answer too, on the goroutine that
// waits here). A message that cannot be taken at all is refused with the
// field at fault; a device that cannot be added or deleted is listed in
// the answer's failed_devices with a code and a message. A store failure
// leaves the message unacknowledged, so the gateway sends it again: adds
// are idempotent (a node_id already behind this gateway is answered as
// added).
func (h mqttHandler) mqttEvents(ctx context.Context, m mqtt.Message) error {
	p, gw := h.p, m.Via
	refuse := func(err error) error {
		p.log.Add(gw.ID, "refused", "gateway event refused: "+err.Error())
		return fmt.Errorf("%w: %v", mqtt.ErrRefused, err)
	}
	switch {
	case m.DeviceID != gw.ID:
		return refuse(fmt.Errorf("events go on the gateway's own topic $oc/devices/%s/sys/events/up, not on a sub-device's", gw.ID))
	case !gw.Gateway:
		return refuse(errors.New("only a device of nodeType GATEWAY adds or deletes sub-devices; this one is an ENDPOINT"))
	}
	evs, err := mqtt.ParseEvents(m.Payload)
	if err != nil {
		return refuse(err)
	}
	var answers [][]byte
	for _, ev := range evs {
		var typ string
		var ok any
		var failed []mqtt.SubDeviceFailure
		switch ev.Type {
		case mqtt.EventAddSubDevices:
			typ = mqtt.EventAddSubDevicesResponse
			ok, failed, err = h.addSubDevices(ctx, gw.ID, ev.Add)
		case mqtt.EventDeleteSubDevices:
			typ = mqtt.EventDeleteSubDevicesResponse
			ok, failed, err = p.deleteSubDevices(ctx, gw.ID, ev.Delete)
		case mqtt.EventUpdateSubDeviceStatus:
			typ = mqtt.EventUpdateSubDeviceStatusResponse
			ok, failed, err = p.updateSubDeviceStatus(ctx, gw.ID, ev.Statuses)
		}
		if err != nil {
			p.logger.Error("gateway event not done; not acknowledged", "gateway", gw.ID, "event", ev.Type, "err", err)
			return err
		}
		b, err := mqtt.EventResponse(gw.ID, ev, typ, apitime.Format(time.Now()), ok, failed)
		if err != nil {
			return err
		}
		answers = append(answers, b)
	}
	p.background(func(ctx context.Context) {
		for _, b := range answers {
			ctx, cancel := context.WithTimeout(ctx, eventAnswerTimeout)
			err := p.mq.Event(ctx, gw.ID, b)
			cancel()
			if err != nil {
				p.log.Add(gw.ID, "gateway", "answer on "+mqtt.EventsDownTopic(gw.ID)+" not delivered: "+err.Error())
			}
		}
	})
	return nil
}

// addSubDevices registers the requested devices behind the gateway: each
// MQTT, of nodeType ENDPOINT, with the gateway's id as gatewayId, a secret
// nobody is told (it never connects itself: its gateway proves it), bound
// and ONLINE at once through the gateway's live connection. An error is
// a store failure; refusals are failures of their device.
func (h mqttHandler) addSubDevices(ctx context.Context, gatewayID string, reqs []mqtt.SubDeviceRequest) ([]mqtt.SubDevice, []mqtt.SubDeviceFailure, error) {
	p := h.p
	h.adds.Lock() // the count per gateway holds against concurrent adds
	defer h.adds.Unlock()
	_, have, err := p.reg.List(ctx, registry.Query{GatewayID: gatewayID, PageSize: 1})
	if err != nil {
		return nil, nil, err
	}
	gw, err := p.reg.Get(ctx, gatewayID)
	if err != nil {
		return nil, nil, err
	}
	app := gw.AppID // sub-devices are their gateway's application's (APP-3)
	ok := []mqtt.SubDevice{}
	var failed []mqtt.SubDeviceFailure
	fail := func(r mqtt.SubDeviceRequest, code, msg string) {
		failed = append(failed, mqtt.SubDeviceFailure{NodeID: r.NodeID, ProductID: r.ProductID, ErrorCode: code, ErrorMsg: msg})
	}
	for _, r := range reqs {
		switch {
		case r.DeviceID != "":
			fail(r, subInvalidDeviceID, "device_id cannot be chosen: the platform assigns deviceIds; leave it out")
			continue
		case r.ParentDeviceID != "" && r.ParentDeviceID != gatewayID:
			fail(r, subInvalidParent, "parent_device_id must be the gateway itself ("+gatewayID+") or absent: sub-devices do not nest")
			continue
		}
		if d, err := p.reg.GetByNodeID(ctx, r.NodeID); err == nil {
			if d.GatewayID == gatewayID {
				ok = append(ok, subDeviceJSON(d)) // sent again: already done
			} else {
				fail(r, subConflict, "node_id is already registered: one nodeId belongs to one device")
			}
			continue
		} else if !errors.Is(err, registry.ErrNotFound) {
			return nil, nil, err
		}
		if limit := p.cfg.MQTTMaxSubDevices; have >= limit {
			fail(r, subTooMany, fmt.Sprintf("the gateway has %d sub-devices, at most %d", have, limit))
			continue
		}
		manufacturer, deviceType, err := h.p.subDeviceProduct(ctx, app, r)
		if err != nil {
			fail(r, subUnknownProduct, err.Error())
			continue
		}
		ans, err := p.register(ctx, app, registrationJSON{NodeID: r.NodeID, GatewayID: gatewayID, NodeType: string(registry.Endpoint),
			DeviceInfo: deviceInfoJSON{Name: r.Name, ManufacturerID: manufacturer, DeviceType: deviceType, Model: r.ProductID, ProtocolType: "MQTT"}})
		if err != nil {
			var he *httpError
			if errors.As(err, &he) && he.Status < http.StatusInternalServerError {
				fail(r, he.Code, he.Err.Error())
				continue
			}
			return nil, nil, err
		}
		have++
		p.log.Add(ans.DeviceID, "registered", "added by gateway "+gatewayID+" over MQTT with nodeId "+r.NodeID)
		if r.Description != "" || len(r.ExtensionInfo) > 0 {
			p.log.Add(ans.DeviceID, "registered", "description and extension_info are not kept by this platform")
		}
		d, err := p.reg.ConnectVia(ctx, ans.DeviceID, gatewayID)
		if err != nil {
			return nil, nil, err
		}
		p.mqttReachable(ctx, d.ID)
		ok = append(ok, subDeviceJSON(d))
	}
	return ok, failed, nil
}

// subDeviceProduct finds the product a sub-device request names:
// product_id is the model; manufacturer_id is needed only when several
// products share it. Only the products of app, the gateway's application,
// are looked at (APP-3).
func (p *Platform) subDeviceProduct(ctx context.Context, app string, r mqtt.SubDeviceRequest) (manufacturerID, deviceType string, err error) {
	mine := p.mine(ctx, app, kindProduct)
	if r.ManufacturerID != "" {
		prod, err := p.products.catalog.Get(r.ManufacturerID, r.ProductID)
		if err != nil || !mine(productKey(r.ManufacturerID, r.ProductID)) {
			return "", "", fmt.Errorf("no product with manufacturer_id %q and model (product_id) %q in the catalog", r.ManufacturerID, r.ProductID)
		}
		return prod.ManufacturerID, prod.DeviceType, nil
	}
	var ids []string
	for _, prod := range p.products.catalog.List() {
		if prod.Model == r.ProductID && mine(productKey(prod.Key())) {
			ids = append(ids, prod.ManufacturerID)
			manufacturerID, deviceType = prod.ManufacturerID, prod.DeviceType
		}
	}
	switch len(ids) {
	case 0:
		return "", "", fmt.Errorf("no product with model (product_id) %q in the catalog", r.ProductID)
	case 1:
		return manufacturerID, deviceType, nil
	}
	return "", "", fmt.Errorf("product_id %q is the model of %d products (manufacturers %s): add manufacturer_id", r.ProductID, len(ids), strings.Join(ids, ", "))
}

func subDeviceJSON(d registry.Device) mqtt.SubDevice {
	return mqtt.SubDevice{DeviceID: d.ID, NodeID: d.NodeID, ParentDeviceID: d.GatewayID, Name: d.Info.Name,
		ManufacturerID: d.Info.ManufacturerID, Model: d.Info.Model, ProductID: d.Info.Model, Status: string(d.Status)}
}

// deleteSubDevices deletes the named devices, each only if it sits behind
// the gateway (REG-5: its credentials stop at once, its waiting commands
// are cancelled). An error is a store failure.
func (p *Platform) deleteSubDevices(ctx context.Context, gatewayID string, ids []string) ([]string, []mqtt.SubDeviceFailure, error) {
	ok := []string{}
	var failed []mqtt.SubDeviceFailure
	for _, id := range ids {
		d, err := p.reg.Get(ctx, id)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			failed = append(failed, mqtt.SubDeviceFailure{DeviceID: id, ErrorCode: subNotFound, ErrorMsg: "no device " + id})
			continue
		case err != nil:
			return nil, nil, err
		case d.GatewayID != gatewayID:
			failed = append(failed, mqtt.SubDeviceFailure{DeviceID: id, ErrorCode: subNotBehind, ErrorMsg: "device " + id + " is not a sub-device of gateway " + gatewayID})
			continue
		}
		if err := p.reg.Delete(ctx, id); errors.Is(err, registry.ErrNotFound) {
			failed = append(failed, mqtt.SubDeviceFailure{DeviceID: id, ErrorCode: subNotFound, ErrorMsg: "no device " + id})
			continue
		} else if err != nil {
			return nil, nil, err
		}
		if _, err := p.cmds.CancelDevice(ctx, id); err != nil {
			p.logger.Warn("cancelling the commands of a deleted sub-device", "device", id, "err", err)
		}
		p.log.Add(gatewayID, "gateway", "sub-device "+id+" deleted by the gateway over MQTT")
		ok = append(ok, id)
	}
	return ok, failed, nil
}

// updateSubDeviceStatus sets the status the gateway reports for each of
// its sub-devices (sub_device_update_status): ONLINE connects it through
// the gateway (binding it if it never was, as its first report would),
// OFFLINE makes it OFFLINE at once. A change is pushed as
// deviceInfoChanged, as any status change. The answer lists each device
// with the status it has now (an ABNORMAL device stays ABNORMAL). An
// error is a store failure.
func (p *Platform) updateSubDeviceStatus(ctx context.Context, gatewayID string, sts []mqtt.SubDeviceStatus) ([]mqtt.SubDeviceStatus, []mqtt.SubDeviceFailure, error) {
	ok := []mqtt.SubDeviceStatus{}
	var failed []mqtt.SubDeviceFailure
	fail := func(id, code, msg string) {
		failed = append(failed, mqtt.SubDeviceFailure{DeviceID: id, ErrorCode: code, ErrorMsg: msg})
	}
	for _, st := range sts {
		d, err := p.reg.Get(ctx, st.DeviceID)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			fail(st.DeviceID, subNotFound, "no device "+st.DeviceID)
			continue
		case err != nil:
			return nil, nil, err
		case d.GatewayID != gatewayID:
			fail(st.DeviceID, subNotBehind, "device "+st.DeviceID+" is not a sub-device of gateway "+gatewayID)
			continue
		}
		var fe *registry.FieldError
		if st.Status == mqtt.StatusOnline {
			d, err = p.reg.ConnectVia(ctx, d.ID, gatewayID)
			if errors.As(err, &fe) {
				fail(st.DeviceID, subStatusRefused, err.Error())
				continue
			}
		} else {
			d, err = p.reg.DisconnectVia(ctx, d.ID, gatewayID)
			if errors.Is(err, registry.ErrNotBound) {
				fail(st.DeviceID, subInactive, "device "+st.DeviceID+" has never been ONLINE: it stays INACTIVE")
				continue
			} else if errors.As(err, &fe) {
				fail(st.DeviceID, subStatusRefused, err.Error())
				continue
			}
		}
		if err != nil {
			return nil, nil, err
		}
		if st.Status == mqtt.StatusOnline {
			p.mqttReachable(ctx, d.ID)
		}
		p.log.Add(d.ID, "gateway", "gateway "+gatewayID+" reports it "+st.Status+" over MQTT; status "+string(d.Status))
		ok = append(ok, mqtt.SubDeviceStatus{DeviceID: d.ID, Status: string(d.Status)})
	}
	return ok, failed, nil
}

// mqttReachable: commands to the device go out at once through its MQTT
// connection or its gateway's (MQT-3).
func (p *Platform) mqttReachable(ctx context.Context, id string) {
	if err := p.cmds.SetMode(ctx, id, command.Mode{Kind: command.DRX}); err != nil {
		p.logger.Warn("MQTT device mode", "device", id, "err", err)
	}
	p.cluster.heard(id)
	if err := p.cmds.DeviceWoke(ctx, id); err != nil {
		p.logger.Warn("MQTT command wake-up", "device", id, "err", err)
	}
}
