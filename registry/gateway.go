package registry

import (
	"context"
	"errors"
	"time"
)

// ConnectVia records that the sub-device id is reachable through its
// gateway's connection (REG-4, MQT-5): the gateway proved itself with its
// own credentials, and the sub-device is registered behind it, so the
// first call binds the sub-device (EventBound; INACTIVE → ONLINE) and
// every call keeps it ONLINE and connected while the gateway is. A device
// that is not behind gatewayID fails with ErrGatewayNotFound, a gateway
// that has not bound with ErrNotBound, a registration whose binding
// timeout passed with ErrExpired. Disconnect ends it as for any
// connection.
func (r *Registry) ConnectVia(ctx context.Context, id, gatewayID string) (Device, error) {
	if err := r.check(ctx); err != nil {
		return Device{}, err
	}
	gw, err := r.get(ctx, gatewayID)
	if err != nil {
		return Device{}, err
	}
	if !gw.Bound || gw.NodeType != Gateway {
		return Device{}, &FieldError{Field: "gatewayId", Value: gatewayID, Rule: "must be a bound device of nodeType GATEWAY", Err: ErrNotBound}
	}
	var from Status
	var bound bool
	d, err := r.st.Update(ctx, id, func(d *Device) error {
		now := time.Now()
		from, bound = d.Status, false
		if d.GatewayID != gatewayID {
			return &FieldError{Field: "gatewayId", Value: gatewayID, Rule: "the device is not registered behind this gateway", Err: ErrGatewayNotFound}
		}
		if expired(d, now) {
			return &FieldError{Field: "deviceId", Value: id, Rule: "the binding timeout passed before the device's gateway reported for it", Err: ErrExpired}
		}
		if !d.Bound {
			d.Bound, bound = true, true
		}
		if d.Status != StatusAbnormal {
			d.Status = StatusOnline
		}
		d.LastSeen = now
		d.Connected = true
		r.deadline(d)
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return Device{}, notFound("deviceId", id)
	}
	if err != nil {
		return Device{}, err
	}
	r.poke(&d)
	if bound {
		r.emit(Event{Type: EventBound, Device: d.Clone()})
	}
	r.statusEvent(d, from)
	return d, nil
}

// DisconnectVia records that the sub-device id's gateway reports it gone
// (MQT-5: a sub_device_update_status with OFFLINE): it is no longer
// connected, and an ONLINE device is OFFLINE at once (EventStatusChanged),
// not after Config.DisconnectGrace; an ABNORMAL one stays ABNORMAL. A
// device that is not behind gatewayID fails with ErrGatewayNotFound, one
// that never bound with ErrNotBound (it stays INACTIVE). ConnectVia, or a
// report through the gateway, brings it back.
func (r *Registry) DisconnectVia(ctx context.Context, id, gatewayID string) (Device, error) {
	return r.change(ctx, id, func(d *Device, now time.Time) error {
		switch {
		case d.GatewayID != gatewayID:
			return &FieldError{Field: "gatewayId", Value: gatewayID, Rule: "the device is not registered behind this gateway", Err: ErrGatewayNotFound}
		case !d.Bound:
			return &FieldError{Field: "deviceId", Value: id, Rule: "the sub-device has never been ONLINE: it stays INACTIVE", Err: ErrNotBound}
		}
		d.Connected = false
		d.DisconnectedAt = now
		if d.Status == StatusOnline {
			d.Status = StatusOffline
		}
		return nil
	})
}
