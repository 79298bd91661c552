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
