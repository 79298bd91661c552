package registry

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Enrollment is what an application gives to register a device with
// Register (REG-1): the device's identity, credentials and product. (It is
// not an LwM2M registration, which is the device's own session.)
type Enrollment struct {
	NodeID     string // IMEI or MAC; 1 to 256 characters; "urn:imei:X" is the same device as "X"
	VerifyCode string // "" means NodeID
	PSK        PSK    // nil means 16 random bytes; otherwise 8 to 64 bytes (ParsePSK reads hex); must be nil for SecurityNone
	// Security is the device's transport security (SEC-1): "" means
	// SecuritySecret for protocolType "MQTT" and SecurityPSK (DTLS only)
	// for the rest; SecurityNone means plain CoAP only, no key.
	Security Security
	// Secret is an MQTT device's secret (SecuritySecret, MQT-1): required
	// for such a device (NewSecret makes one), absent for the others;
	// MinSecretLen to MaxSecretLen printable ASCII characters. Only its
	// salted hash is kept.
	Secret string
	Info   Info // ManufacturerID, DeviceType, Model and ProtocolType are required

	// Timeout is the binding timeout (REG-2): nil means
	// Config.DefaultTimeout (180s), 0 means never, at most MaxTimeout.
	Timeout *time.Duration

	NodeType  NodeType // "" means ENDPOINT
	GatewayID string   // the gateway (a GATEWAY device) this device sits behind; "" for none
	Groups    []string // ids of groups to put the device in

	// AppID is the application the device will belong to (Device.AppID).
	// A sub-device belongs to its gateway's application: a GatewayID of a
	// gateway of another application is refused as unknown.
	AppID string
}

// Register registers a device and returns it; the answer for the
// application is its ID, VerifyCode, Timeout and PSK.Hex() (REG-1). Every
// bad input is reported as a *FieldError (several are joined): an empty or
// too long nodeId (ErrInvalid), a nodeId already registered
// (ErrNodeIDTaken), a timeout out of range, a PSK of the wrong length,
// deviceInfo naming no product (ErrUnknownProduct), an unknown gateway
// (ErrGatewayNotFound) or group (ErrGroupNotFound).
func (r *Registry) Register(ctx context.Context, reg Enrollment) (Device, error) {
	if err := r.check(ctx); err != nil {
		return Device{}, err
	}
	var errs []error
	if err := checkNodeID(reg.NodeID); err != nil {
		errs = append(errs, err)
	}
	if reg.VerifyCode == "" {
		reg.VerifyCode = reg.NodeID
	} else if err := checkText("verifyCode", reg.VerifyCode, MaxFieldLen, true, true, true); err != nil {
		errs = append(errs, err)
	}
	if reg.Security == "" {
		reg.Security = SecurityPSK
		if strings.EqualFold(reg.Info.ProtocolType, "MQTT") {
			reg.Security = SecuritySecret
		}
	}
	var secret SecretHash
	switch {
	case !reg.Security.Valid():
		errs = append(errs, invalid("security", string(reg.Security), `must be "PSK" (DTLS only, the default), "NONE" (plain CoAP only, no key) or "SECRET" (MQTT with a secret, the default for protocolType MQTT)`))
	case reg.Security == SecuritySecret && reg.PSK != nil:
		errs = append(errs, invalid("psk", "", `must be absent when security is "SECRET": an MQTT device proves itself with its secret`))
	case reg.Security == SecuritySecret && reg.Secret == "":
		errs = append(errs, invalid("secret", "", `is required when security is "SECRET" (MQTT devices)`))
	case reg.Security == SecuritySecret:
		if err := validSecret(reg.Secret); err != nil {
			errs = append(errs, err)
		} else {
			secret = HashSecret(reg.Secret)
		}
	case reg.Secret != "":
		errs = append(errs, invalid("secret", "", fmt.Sprintf(`is only for devices with security "SECRET" (MQTT); this one has %q`, reg.Security)))
	case reg.Security == SecurityNone && reg.PSK != nil:
		errs = append(errs, invalid("psk", "", `must be absent when security is "NONE": such a device has no key`))
	case reg.Security == SecurityNone:
	case reg.PSK == nil:
		reg.PSK = NewPSK()
	default:
		if err := validPSK(reg.PSK); err != nil {
			errs = append(errs, err)
		}
	}
	timeout := r.cfg.DefaultTimeout
	if reg.Timeout != nil {
		timeout = *reg.Timeout
		if err := checkTimeout(timeout); err != nil {
			errs = append(errs, err)
		}
	}
	if reg.NodeType == "" {
		reg.NodeType = Endpoint
	}
	if err := checkNodeType(reg.NodeType); err != nil {
		errs = append(errs, err)
	}
	if err := r.checkInfo(&reg.Info); err != nil {
		errs = append(errs, err)
	}
	if reg.GatewayID != "" {
		var fe *FieldError
		if err := r.checkGateway(ctx, reg.GatewayID, &reg.AppID); errors.As(err, &fe) {
			errs = append(errs, err)
		} else if err != nil {
			return Device{}, err
		}
	}
	for _, g := range reg.Groups {
		if _, err := r.st.Group(ctx, g); errors.Is(err, ErrGroupNotFound) {
			errs = append(errs, &FieldError{Field: "groups", Value: g, Rule: "must name an existing group", Err: ErrGroupNotFound})
		} else if err != nil {
			return Device{}, err
		}
	}
	if len(errs) > 0 {
		return Device{}, joinErrs(errs)
	}
	now := time.Now()
	d := Device{
		ID:           newID(),
		NodeID:       reg.NodeID,
		VerifyCode:   reg.VerifyCode,
		PSK:          slices.Clone(reg.PSK),
		Security:     reg.Security,
		SecretHash:   secret,
		Info:         reg.Info,
		AppID:        reg.AppID,
		GatewayID:    reg.GatewayID,
		NodeType:     reg.NodeType,
		Groups:       slices.Compact(slices.Sorted(slices.Values(reg.Groups))),
		Status:       StatusInactive,
		Timeout:      timeout,
		CreatedAt:    now,
		LastModified: now,
	}
	r.deadline(&d)
	if err := r.st.Create(ctx, d); err != nil {
		return Device{}, r.storeErr(err, reg.NodeID, reg.GatewayID)
	}
	r.log.Debug("registry: registered", "deviceId", d.ID, "nodeId", d.NodeID, "timeout", d.Timeout)
	r.poke(&d)
	r.emit(Event{Type: EventAdded, Device: d.Clone()})
	return d, nil
}

// storeErr turns a Store's sentinel into a *FieldError naming the input.
func (r *Registry) storeErr(err error, nodeID, gatewayID string) error {
	switch {
	case errors.Is(err, ErrNodeIDTaken):
		return &FieldError{Field: "nodeId", Value: nodeID, Rule: "is already registered: one nodeId belongs to one device", Err: ErrNodeIDTaken}
	case errors.Is(err, ErrGatewayNotFound):
		return gatewayNotFound(gatewayID)
	case errors.Is(err, ErrGroupNotFound):
		return &FieldError{Field: "groups", Rule: "must name existing groups (one was deleted meanwhile)", Err: ErrGroupNotFound}
	}
	return err
}

func gatewayNotFound(id string) *FieldError {
	return &FieldError{Field: "gatewayId", Value: id, Rule: "must name a registered device of nodeType GATEWAY", Err: ErrGatewayNotFound}
}

// checkGateway returns a *FieldError unless id names a GATEWAY device of
// application *app (nil: of any), or the Store's error.
func (r *Registry) checkGateway(ctx context.Context, id string, app *string) error {
	gw, err := r.st.Get(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound) || err == nil && (gw.NodeType != Gateway || app != nil && gw.AppID != *app):
		return gatewayNotFound(id)
	case err != nil:
		return err
	}
	return nil
}

func notFound(field, v string) error {
	return &FieldError{Field: field, Value: v, Rule: "must name a registered device", Err: ErrNotFound}
}

func (r *Registry) get(ctx context.Context, id string) (Device, error) {
	d, err := r.st.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Device{}, notFound("deviceId", id)
	}
	return d, err
}

// Get returns the device with deviceId id (ErrNotFound if none).
func (r *Registry) Get(ctx context.Context, id string) (Device, error) {
	if err := r.check(ctx); err != nil {
		return Device{}, err
	}
	return r.get(ctx, id)
}

// GetByNodeID returns the device with nodeId nodeID; "urn:imei:X" finds
// the device registered as "X" and the other way round (ErrNotFound if
// none).
func (r *Registry) GetByNodeID(ctx context.Context, nodeID string) (Device, error) {
	if err := r.check(ctx); err != nil {
		return Device{}, err
	}
	d, err := r.st.GetByNodeKey(ctx, NodeKey(nodeID))
	if errors.Is(err, ErrNotFound) {
		return Device{}, notFound("nodeId", nodeID)
	}
	return d, err
}

// IDLookup is an optional Store method: the id of the device whose
// NodeKey(NodeID) is key, without reading its record, or ErrNotFound.
// IDByNodeID uses it when the store has it.
type IDLookup interface {
	IDByNodeKey(ctx context.Context, key string) (string, error)
}

// IDByNodeID returns the id of the device with nodeId nodeID, as
// GetByNodeID finds it (ErrNotFound if none). It is cheaper than
// GetByNodeID with a store that implements IDLookup: a device's every
// uplink looks its id up.
func (r *Registry) IDByNodeID(ctx context.Context, nodeID string) (string, error) {
	l, ok := r.st.(IDLookup)
	if !ok {
		d, err := r.GetByNodeID(ctx, nodeID)
		return d.ID, err
	}
	if err := r.check(ctx); err != nil {
		return "", err
	}
	id, err := l.IDByNodeKey(ctx, NodeKey(nodeID))
	if errors.Is(err, ErrNotFound) {
		return "", notFound("nodeId", nodeID)
	}
	return id, err
}

// Changes lists the deviceInfo fields Update sets; nil leaves a field as
// it is.
type Changes struct {
	Name             *string
	ManufacturerID   *string
	ManufacturerName *string
	DeviceType       *string
	Model            *string
	ProtocolType     *string
	SWVersion        *string
	FWVersion        *string
	Mode             *string
}

func (c *Changes) apply(in *Info) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&in.Name, c.Name)
	set(&in.ManufacturerID, c.ManufacturerID)
	set(&in.ManufacturerName, c.ManufacturerName)
	set(&in.DeviceType, c.DeviceType)
	set(&in.Model, c.Model)
	set(&in.ProtocolType, c.ProtocolType)
	set(&in.SWVersion, c.SWVersion)
	set(&in.FWVersion, c.FWVersion)
	set(&in.Mode, c.Mode)
}

// Update changes deviceInfo fields of the device (REG-1: the name can be
// set later, §3.4). The new deviceInfo is checked like at registration,
// product included. Listeners get EventInfoChanged when something changed.
func (r *Registry) Update(ctx context.Context, id string, c Changes) (Device, error) {
	if err := r.check(ctx); err != nil {
		return Device{}, err
	}
	var changed bool
	d, err := r.st.Update(ctx, id, func(d *Device) error {
		in := d.Info
		c.apply(&in)
		if err := r.checkInfo(&in); err != nil {
			return err
		}
		changed = in != d.Info
		if changed {
			d.Info = in
			d.LastModified = time.Now()
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return Device{}, notFound("deviceId", id)
	}
	if err != nil {
		return Device{}, err
	}
	if changed {
		r.emit(Event{Type: EventInfoChanged, Device: d.Clone()})
	}
	return d, nil
}

// Delete deletes the device; its credentials stop working at once (REG-5).
// A gateway's sub-devices are deleted with it. Listeners get EventDeleted
// for each. Deleting an unknown device fails with ErrNotFound.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if err := r.check(ctx); err != nil {
		return err
	}
	err := r.remove(ctx, id, EventDeleted, nil)
	if errors.Is(err, ErrNotFound) {
		return notFound("deviceId", id)
	}
	return err
}

// remove deletes a device and, first, its sub-devices, then emits ev.
func (r *Registry) remove(ctx context.Context, id string, ev EventType, check func(Device) error) error {
	for attempt := 0; ; attempt++ {
		d, err := r.st.Delete(ctx, id, check)
		if errors.Is(err, ErrHasSubDevices) && attempt < 5 {
			subs, _, err := r.st.List(ctx, Query{GatewayID: id})
			if err != nil {
				return err
			}
			for _, s := range subs {
				if err := r.remove(ctx, s.ID, EventDeleted, nil); err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
			}
			continue
		}
		if err != nil {
			return err
		}
		r.log.Debug("registry: device removed", "deviceId", id, "why", ev.String())
		r.emit(Event{Type: ev, Device: d})
		return nil
	}
}

// List returns the page of devices q selects (ordered by deviceId, that is
// by registration time) and how many match on all pages (REG-4).
func (r *Registry) List(ctx context.Context, q Query) ([]Device, int, error) {
	if err := r.check(ctx); err != nil {
		return nil, 0, err
	}
	if err := checkQuery(&q); err != nil {
		return nil, 0, err
	}
	return r.st.List(ctx, q)
}

// Connection describes a device connecting: the credential it proved and
// whether it keeps a connection open.
type Connection struct {
	// VerifyCode is what a plain (non-DTLS) device presented; compared
	// with the registration's. Ignored when PSK is set.
	VerifyCode string
	// PSK is the key a DTLS handshake succeeded with (the one PSK
	// returned for the device's identity). nil means the device came over
	// plain CoAP, which only a SecurityNone device may (SEC-1).
	PSK PSK
	// Secret is the secret an MQTT client presented (MQT-1); only a
	// SecuritySecret device may connect with one, and it must.
	Secret string
	// Persistent is true for connection-oriented devices (MQTT-like):
	// they stay ONLINE until Disconnect. NB-IoT (LwM2M queue mode)
	// devices leave it false and go OFFLINE by silence.
	Persistent bool
}

// Connect records that the device with nodeId nodeID connected with the
// given credential. The first connection with the right credential binds
// the device (EventBound; INACTIVE → ONLINE, REG-2, REG-3). A connection
// over a transport the device's Security does not allow fails with
// ErrWrongTransport before any credential is compared: a SecurityPSK
// device binds only with its PSK (DTLS), never with a verifyCode, so
// knowing its nodeId (the IMEI printed on the meter) is not enough (SEC-1).
// Wrong credentials fail with ErrBadCredential, a registration whose
// binding timeout passed with ErrExpired. An ABNORMAL device stays ABNORMAL.
func (r *Registry) Connect(ctx context.Context, nodeID string, c Connection) (Device, error) {
	if err := r.check(ctx); err != nil {
		return Device{}, err
	}
	dev, err := r.st.GetByNodeKey(ctx, NodeKey(nodeID))
	if errors.Is(err, ErrNotFound) {
		return Device{}, notFound("nodeId", nodeID)
	}
	if err != nil {
		return Device{}, err
	}
	var from Status
	var bound bool
	d, err := r.st.Update(ctx, dev.ID, func(d *Device) error {
		now := time.Now()
		from, bound = d.Status, false
		if err := transportAllowed(d, c); err != nil {
			return err
		}
		ok := false
		if c.Secret != "" {
			ok = d.SecretHash.Matches(c.Secret)
		} else if c.PSK != nil {
			ok = subtle.ConstantTimeCompare(c.PSK, d.PSK) == 1
		} else {
			ok = verifyCodeMatches(c.VerifyCode, d)
		}
		if !ok {
			return &FieldError{Field: "credential", Rule: "verifyCode, PSK or secret must match the registration", Err: ErrBadCredential}
		}
		if expired(d, now) {
			return &FieldError{Field: "nodeId", Value: nodeID, Rule: "the binding timeout passed before the device connected", Err: ErrExpired}
		}
		if !d.Bound {
			d.Bound, bound = true, true
		}
		if d.Status != StatusAbnormal {
			d.Status = StatusOnline
		}
		d.LastSeen = now
		d.Connected = c.Persistent
		r.deadline(d)
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return Device{}, notFound("nodeId", nodeID)
	}
	if err != nil {
		if errors.Is(err, ErrExpired) {
			r.poke(&Device{Deadline: time.Now()}) // let Run delete it now
		}
		return Device{}, err
	}
	r.poke(&d)
	if bound {
		r.log.Debug("registry: bound", "deviceId", d.ID)
		r.emit(Event{Type: EventBound, Device: d.Clone()})
	}
	r.statusEvent(d, from)
	return d, nil
}

// transportAllowed applies SEC-1: plain CoAP (no PSK) only for
// SecurityNone devices, DTLS only for SecurityPSK ones. A stored device
// without a Security (written before it existed) counts as SecurityPSK.
func transportAllowed(d *Device, c Connection) error {
	none := d.Security == SecurityNone
	switch {
	case d.Security == SecuritySecret && c.Secret == "":
		return &FieldError{Field: "security", Value: string(SecuritySecret),
			Rule: "the device is registered for MQTT with a secret: it connects only over MQTT", Err: ErrWrongTransport}
	case d.Security != SecuritySecret && c.Secret != "":
		return &FieldError{Field: "security", Value: string(d.Security),
			Rule: "the device has no MQTT secret: it connects only over CoAP", Err: ErrWrongTransport}
	case d.Security == SecuritySecret:
		return nil
	case c.PSK == nil && !none:
		return &FieldError{Field: "security", Value: string(SecurityPSK),
			Rule: "the device is registered with a PSK: it connects only over DTLS, never over plain CoAP", Err: ErrWrongTransport}
	case c.PSK != nil && none:
		return &FieldError{Field: "security", Value: string(SecurityNone),
			Rule: "the device is registered without security: it connects only over plain CoAP", Err: ErrWrongTransport}
	}
	return nil
}

// verifyCodeMatches compares, in constant time, the verifyCode a device
// presented with d's. A verifyCode that is the nodeId (the default) is
// compared by NodeKey, so "urn:imei:X" and "X" match each other as the
// nodeIds do (REG-1); one the application chose is compared exactly.
func verifyCodeMatches(presented string, d *Device) bool {
	want := d.VerifyCode
	if want == d.NodeID {
		presented, want = NodeKey(presented), NodeKey(want)
	}
	return subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1
}

func (r *Registry) statusEvent(d Device, from Status) {
	if d.Status != from {
		r.emit(Event{Type: EventStatusChanged, Device: d.Clone(), From: from})
	}
}

// change applies fn to the device and emits a status event if needed.
func (r *Registry) change(ctx context.Context, id string, fn func(d *Device, now time.Time) error) (Device, error) {
	if err := r.check(ctx); err != nil {
		return Device{}, err
	}
	var from Status
	d, err := r.st.Update(ctx, id, func(d *Device) error {
		from = d.Status
		if err := fn(d, time.Now()); err != nil {
			return err
		}
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
	r.statusEvent(d, from)
	return d, nil
}

// Touch records an uplink from the device: it is seen now, and an OFFLINE
// device is ONLINE again (REG-3). Call it for every uplink. A device that
// has not bound fails with ErrNotBound.
func (r *Registry) Touch(ctx context.Context, id string) (Device, error) {
	return r.change(ctx, id, func(d *Device, now time.Time) error {
		if !d.Bound {
			return &FieldError{Field: "deviceId", Value: id, Rule: "the device must connect with its credentials (bind) before it reports", Err: ErrNotBound}
		}
		d.LastSeen = now
		if d.Status != StatusAbnormal {
			d.Status = StatusOnline
		}
		return nil
	})
}

// Disconnect records that a connection-oriented device closed its
// connection; it goes OFFLINE after Config.DisconnectGrace unless it
// connects again (REG-3).
func (r *Registry) Disconnect(ctx context.Context, id string) (Device, error) {
	return r.change(ctx, id, func(d *Device, now time.Time) error {
		d.Connected = false
		d.DisconnectedAt = now
		return nil
	})
}

// MarkAbnormal sets the device ABNORMAL (REG-3). It stays ABNORMAL,
// whatever it sends, until ClearAbnormal.
func (r *Registry) MarkAbnormal(ctx context.Context, id string) (Device, error) {
	return r.change(ctx, id, func(d *Device, now time.Time) error {
		d.Status = StatusAbnormal
		return nil
	})
}

// ClearAbnormal ends ABNORMAL: the device becomes what its history says —
// INACTIVE if it never bound, ONLINE if heard from recently enough,
// OFFLINE otherwise. A device that is not ABNORMAL is left alone.
func (r *Registry) ClearAbnormal(ctx context.Context, id string) (Device, error) {
	return r.change(ctx, id, func(d *Device, now time.Time) error {
		if d.Status != StatusAbnormal {
			return nil
		}
		if !d.Bound {
			d.Status = StatusInactive
			return nil
		}
		d.Status = StatusOnline
		if at := OfflineAt(d, r.cfg.SilencePeriod, r.cfg.DisconnectGrace); !at.IsZero() && !now.Before(at) {
			d.Status = StatusOffline
		}
		return nil
	})
}

// PSK returns the pre-shared key for a DTLS PSK identity, which is the
// device's nodeId (either form). A deleted device has no key (REG-5), nor
// has one whose binding timeout passed, nor one registered with
// SecurityNone (ErrWrongTransport: it may not use DTLS). The lwm2m
// server's key lookup adapts to it.
func (r *Registry) PSK(ctx context.Context, identity string) (PSK, error) {
	d, err := r.GetByNodeID(ctx, identity)
	if err != nil {
		return nil, err
	}
	if expired(&d, time.Now()) {
		return nil, &FieldError{Field: "identity", Value: identity, Rule: "the binding timeout passed before the device connected", Err: ErrExpired}
	}
	if d.Security == SecuritySecret {
		return nil, &FieldError{Field: "identity", Value: identity, Rule: `the device is registered with security "SECRET": it has no key and connects only over MQTT`, Err: ErrWrongTransport}
	}
	if d.Security == SecurityNone {
		return nil, &FieldError{Field: "identity", Value: identity, Rule: `the device is registered with security "NONE": it has no key and connects only over plain CoAP`, Err: ErrWrongTransport}
	}
	return d.PSK, nil
}

// Security returns the transport security of the device with nodeId nodeID
// (either form; SEC-1), what a server asks before it keeps anything for a
// connecting endpoint. A record older than SEC-1 is SecurityPSK. An
// unknown nodeId fails with ErrNotFound, a registration whose binding
// timeout passed with ErrExpired.
func (r *Registry) Security(ctx context.Context, nodeID string) (Security, error) {
	d, err := r.GetByNodeID(ctx, nodeID)
	if err != nil {
		return "", err
	}
	if expired(&d, time.Now()) {
		return "", &FieldError{Field: "nodeId", Value: nodeID, Rule: "the binding timeout passed before the device connected", Err: ErrExpired}
	}
	if d.Security == SecurityNone {
		return SecurityNone, nil
	}
	return SecurityPSK, nil
}

// SubDevices returns the page of devices behind the gateway that q selects
// (q.GatewayID is set to gatewayID) and the total (REG-4, §3.7). An
// unknown gateway fails with ErrGatewayNotFound.
func (r *Registry) SubDevices(ctx context.Context, gatewayID string, q Query) ([]Device, int, error) {
	if err := r.check(ctx); err != nil {
		return nil, 0, err
	}
	var app *string
	if q.AppID != "" {
		app = &q.AppID
	}
	if err := r.checkGateway(ctx, gatewayID, app); err != nil {
		return nil, 0, err
	}
	q.GatewayID = gatewayID
	return r.List(ctx, q)
}
