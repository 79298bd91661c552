package main

// Adapters between the packages. Each is a few lines and asserts the
// interface it fits at compile time (docs/architecture.md "Small interfaces, owned by
// the caller").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/registry"
)

// keyStore gives the lwm2m server each device's PSK from the registry
// (LWM-1); a deleted device has none, so it can no longer connect (REG-5),
// nor has a device registered with security NONE (SEC-1).
type keyStore struct{ p *Platform }

var _ transport.KeyStore = keyStore{}

func (k keyStore) Key(identity string) ([]byte, error) {
	psk, err := k.p.reg.PSK(context.Background(), identity)
	if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrExpired) || errors.Is(err, registry.ErrWrongTransport) {
		return nil, fmt.Errorf("%w: %v", transport.ErrUnknownIdentity, err)
	}
	return psk, err
}

// eventHandler hands lwm2m events to the platform's workers; uplinks are
// kept in the inbox first, before the device is answered.
type eventHandler struct{ p *Platform }

var (
	_ transport.UplinkHandler = eventHandler{}
	_ transport.SendFilter    = eventHandler{}
)

func (h eventHandler) HandleEvent(e transport.Event) { h.p.enqueueEvent(e, 0) }

func (h eventHandler) HandleUplink(e transport.Event) error { return h.p.acceptUplink(e) }

func (h eventHandler) FilterSend(ep string, paths []lwm2m.Path) ([]bool, string) {
	return h.p.filterSend(ep, paths)
}

// commandSender encodes a command with the device's codec and writes it to
// the device's data channel (/19/1/0 or /t/d). It is a command.Transmitter:
// lwm2m tells when the write left (SENT) and Downlink returns with the
// device's ACK (DELIVERED) or without one after the retransmissions.
type commandSender struct{ p *Platform }

var (
	_ command.Sender      = commandSender{}
	_ command.Transmitter = commandSender{}
)

// Send is the plain Sender for a caller that does not use Transmit: the
// command counts as left when the device ACKed it.
func (s commandSender) Send(ctx context.Context, c command.Command) error {
	return s.Transmit(ctx, c, func() {})
}

func (s commandSender) Transmit(ctx context.Context, c command.Command, left func()) error {
	p := s.p
	d, err := p.reg.Get(ctx, c.DeviceID)
	if err != nil {
		return err
	}
	if p.ota.Upgrading(c.DeviceID) {
		// OTA-5: business traffic waits while the device upgrades.
		return errors.New("the device is upgrading; the command waits")
	}
	if p.viaMQTT(ctx, d) {
		return p.mqttTransmit(ctx, d, c, left)
	}
	if prod, _ := p.products.catalog.Get(d.Info.ManufacturerID, d.Info.Model); isRawCommand(prod, c.Body) {
		return p.transmitRaw(ctx, d, c, left) // APP-5: the bytes as they are
	}
	if cm, ok := p.products.Mapping(d.Info.ManufacturerID, d.Info.Model).Command(c.Body.ServiceID, c.Body.Method); ok {
		return p.mappedCommand(ctx, d, c, cm, left) // LWM-12: a write or execute of mapped resources
	}
	cd := p.products.Codec(d.Info.ManufacturerID, d.Info.Model)
	if cd == nil {
		return fmt.Errorf("%w: product %s/%s has no codec", command.ErrEncode, d.Info.ManufacturerID, d.Info.Model)
	}
	var paras map[string]any
	if err := json.Unmarshal(c.Body.Paras, &paras); err != nil {
		return fmt.Errorf("%w: paras: %v", command.ErrEncode, err)
	}
	payload, err := cd.Encode(&codec.Command{Identifier: "0", MsgType: codec.MsgCommand, ServiceID: c.Body.ServiceID,
		Cmd: c.Body.Method, Paras: paras, Mid: c.Mid()})
	if err != nil {
		p.log.Add(d.ID, "encode_error", err.Error())
		p.metrics.encodeErrors.Inc()
		return fmt.Errorf("%w: %v", command.ErrEncode, err)
	}
	if err := p.lwm.Downlink(transport.WithLeft(ctx, left), d.NodeID, payload); err != nil {
		// A 4.xx answer (to every form Downlink tried) will be the same at
		// the next wake: the command ends FAILED with the device's code.
		// Timeouts, no session and sleep stay transport failures.
		if re, ok := errors.AsType[*transport.ResponseError](err); ok && re.ClientError() {
			p.log.Add(d.ID, "command_refused", err.Error())
			return &command.RefusedError{Code: re.CodeText(), Err: err}
		}
		return err
	}
	return nil
}

// commandListener posts each state change to the command's callbackUrl
// (CMD-6) through the push engine's durable outbox.
type commandListener struct{ p *Platform }

var _ command.Listener = commandListener{}

func (l commandListener) CommandChanged(c command.Command) {
	p := l.p
	p.metrics.commandMoves.WithLabelValues(c.Status.String()).Inc()
	p.calls.changed(c)
	p.log.Add(c.DeviceID, "command", fmt.Sprintf("%s %s %s", c.ID, c.Body.Method, c.Status))
	if c.CallbackURL == "" || !c.Status.Notifies() {
		return
	}
	body, err := json.Marshal(c.Notification())
	if err != nil {
		p.logger.Error("command notification", "err", err)
		return
	}
	if _, err := p.push.SendFor(context.Background(), c.AppID, c.CallbackURL, body, ""); err != nil {
		p.logger.Warn("command callback not queued", "command", c.ID, "url", c.CallbackURL, "err", err)
	}
}

// registryListener turns device events into notifications (PSH-1, PSH-3).
type registryListener struct{ p *Platform }

var _ registry.Listener = registryListener{}

func pushInfo(d registry.Device) push.DeviceInfo {
	return push.DeviceInfo{NodeID: d.NodeID, Name: d.Info.Name, ManufacturerID: d.Info.ManufacturerID,
		ManufacturerName: d.Info.ManufacturerName, DeviceType: d.Info.DeviceType, Model: d.Info.Model,
		ProtocolType: d.Info.ProtocolType, Status: string(d.Status), SwVersion: d.Info.SWVersion, FwVersion: d.Info.FWVersion}
}

func (l registryListener) DeviceChanged(e registry.Event) {
	p, d := l.p, e.Device
	switch e.Type {
	case registry.EventAdded:
		p.publish(p.deviceApps(d), push.DeviceAddedBody{DeviceID: d.ID, GatewayID: gatewayOf(d), NodeType: string(d.NodeType), DeviceInfo: pushInfo(d)})
	case registry.EventBound:
		p.publish(p.deviceApps(d), push.BindDeviceBody{DeviceID: d.ID, ResultCode: push.BindSucceeded, DeviceInfo: pushInfo(d)})
	case registry.EventExpired:
		p.publish(p.deviceApps(d), push.BindDeviceBody{DeviceID: d.ID, ResultCode: push.BindExpired, DeviceInfo: pushInfo(d)})
		p.forget(d.ID)
	case registry.EventInfoChanged, registry.EventStatusChanged:
		p.publish(p.deviceApps(d), push.DeviceInfoChangedBody{DeviceID: d.ID, GatewayID: gatewayOf(d), DeviceInfo: pushInfo(d)})
	case registry.EventDeleted:
		p.publish(p.deviceApps(d), push.DeviceDeletedBody{DeviceID: d.ID, GatewayID: gatewayOf(d)})
		p.forget(d.ID)
	}
}

// forget removes what the platform keeps about a deleted device besides
// the registry: pending commands, shadow, history and log.
func (p *Platform) forget(deviceID string) {
	ctx := context.Background()
	p.cluster.forget(deviceID)
	if _, err := p.cmds.CancelDevice(ctx, deviceID); err != nil && !errors.Is(err, command.ErrNotFound) {
		p.logger.Warn("cancelling commands of a deleted device", "device", deviceID, "err", err)
	}
	if _, err := p.ops.CancelDevice(ctx, deviceID); err != nil && !errors.Is(err, command.ErrNotFound) {
		p.logger.Warn("cancelling LwM2M operations of a deleted device", "device", deviceID, "err", err)
	}
	if err := p.db.Shadow().Delete(deviceID); err != nil {
		p.logger.Error("deleting the shadow of a deleted device", "device", deviceID, "err", err)
	}
	if err := p.db.History().DeleteDevice(deviceID); err != nil {
		p.logger.Error("deleting the history of a deleted device", "device", deviceID, "err", err)
	}
	p.log.Forget(deviceID)
	p.touched.Delete(deviceID)
}

// otaChannel carries PCP frames in the device's data channel.
type otaChannel struct{ p *Platform }

var _ ota.Channel = otaChannel{}

func (c otaChannel) SendFrame(ctx context.Context, deviceID string, frame []byte) error {
	d, err := c.p.reg.Get(ctx, deviceID)
	if err != nil {
		return err
	}
	return c.p.lwm.Downlink(ctx, d.NodeID, frame)
}

// otaDevices tells the upgrade engine about devices from the registry.
type otaDevices struct{ p *Platform }

var _ ota.Devices = otaDevices{}

func (o otaDevices) Device(ctx context.Context, deviceID string) (ota.Device, bool) {
	d, err := o.p.reg.Get(ctx, deviceID)
	if err != nil {
		return ota.Device{}, false
	}
	online := d.Status == registry.StatusOnline
	if r, ok := o.p.lwm.Registration(d.NodeID); ok && r.Queue {
		online = online && r.Awake(time.Now())
	}
	manufacturer := d.Info.ManufacturerName
	if manufacturer == "" {
		manufacturer = d.Info.ManufacturerID
	}
	return ota.Device{Online: online, DeviceType: d.Info.DeviceType, Manufacturer: manufacturer,
		Model: d.Info.Model, Protocol: d.Info.ProtocolType}, true
}

// object5 performs LwM2M firmware-update operations (OTA over object 5).
type object5 struct{ p *Platform }

var _ ota.Object5 = object5{}

func (o object5) endpoint(ctx context.Context, deviceID string) (string, error) {
	d, err := o.p.reg.Get(ctx, deviceID)
	return d.NodeID, err
}

// ReadFirmwareVersion reads the version the device runs from /3/0/3 (the
// Device object's Firmware Version); /5/0/7 names the package downloaded
// last, which is not yet running before the update (issue 20 item 2).
func (o object5) ReadFirmwareVersion(ctx context.Context, deviceID string) (string, error) {
	ep, err := o.endpoint(ctx, deviceID)
	if err != nil {
		return "", err
	}
	recs, err := o.p.lwm.ReadRecords(ctx, ep, "/3/0/3")
	if err != nil {
		return "", err
	}
	if len(recs) == 0 || strings.TrimSpace(recs[0].Value.String()) == "" {
		return "", fmt.Errorf("device %s reports no firmware version in /3/0/3", deviceID)
	}
	return strings.TrimSpace(recs[0].Value.String()), nil
}

// ObserveFirmware observes /5/0/3 (State) and /5/0/5 (Update Result) and
// returns the values their Observe answers carry.
func (o object5) ObserveFirmware(ctx context.Context, deviceID string) (ota.FirmwareStatus, error) {
	st := ota.FirmwareStatus{State: ota.FwUnknown, Result: ota.FwUnknown}
	ep, err := o.endpoint(ctx, deviceID)
	if err != nil {
		return st, err
	}
	c, err := o.p.lwm.Observe(ctx, ep, "/5/0/3")
	if err != nil {
		return st, err
	}
	st.State = firmwareValue(c, "/5/0/3")
	if c, err = o.p.lwm.Observe(ctx, ep, "/5/0/5"); err != nil {
		return st, err
	}
	st.Result = firmwareValue(c, "/5/0/5")
	return st, nil
}

func (o object5) WritePackageURI(ctx context.Context, deviceID, uri string) error {
	ep, err := o.endpoint(ctx, deviceID)
	if err != nil {
		return err
	}
	return o.p.lwm.Write(ctx, ep, "/5/0/1", transport.Content{Format: lwm2m.FormatText, Payload: []byte(uri)})
}

func (o object5) ExecuteUpdate(ctx context.Context, deviceID string) error {
	ep, err := o.endpoint(ctx, deviceID)
	if err != nil {
		return err
	}
	return o.p.lwm.Execute(ctx, ep, "/5/0/2", nil)
}

// otaListener turns upgrade events into swUpgrade…/fwUpgrade…
// notifications for every app.
type otaListener struct{ p *Platform }

var _ ota.Listener = otaListener{}

func (l otaListener) UpgradeStateChanged(e ota.StateEvent) {
	l.p.log.Add(e.DeviceID, "upgrade", "state "+e.State)
	for _, app := range l.p.ownerApps(e.DeviceID) {
		var n push.Notification
		if e.Kind == ota.Software {
			n = push.SwUpgradeStateChangeBody{DeviceID: e.DeviceID, AppID: app, OperationID: e.TaskID,
				SubOperationID: e.SubTaskID, SwUpgradeState: e.State}
		} else {
			n = push.FwUpgradeStateChangeBody{DeviceID: e.DeviceID, AppID: app, OperationID: e.TaskID,
				SubOperationID: e.SubTaskID, Step: e.Step(), StepDesc: e.State}
		}
		l.p.push.Publish(context.Background(), app, n)
	}
}

func (l otaListener) UpgradeResult(e ota.ResultEvent) {
	l.p.log.Add(e.DeviceID, "upgrade", "result "+e.Result+" "+e.Reason)
	if e.Result == ota.ResultSuccess && e.CurVersion != "" {
		v := e.CurVersion
		ch := registry.Changes{SWVersion: &v}
		if e.Kind != ota.Software {
			ch = registry.Changes{FWVersion: &v}
		}
		l.p.reg.Update(context.Background(), e.DeviceID, ch)
	}
	result := strings.ToUpper(e.Result)
	for _, app := range l.p.ownerApps(e.DeviceID) {
		var n push.Notification
		if e.Kind == ota.Software {
			n = push.SwUpgradeResultBody{DeviceID: e.DeviceID, AppID: app, OperationID: e.TaskID, SubOperationID: e.SubTaskID,
				CurVersion: e.CurVersion, TargetVersion: e.TargetVersion, SourceVersion: e.SourceVersion,
				SwUpgradeResult: result, UpgradeTime: push.FormatTime(e.Time), ResultDesc: e.Reason}
		} else {
			n = push.FwUpgradeResultBody{DeviceID: e.DeviceID, AppID: app, OperationID: e.TaskID, SubOperationID: e.SubTaskID,
				CurVersion: e.CurVersion, TargetVersion: e.TargetVersion, SourceVersion: e.SourceVersion,
				Status: result, StatusDesc: e.Reason, UpgradeTime: push.FormatTime(e.Time)}
		}
		l.p.push.Publish(context.Background(), app, n)
	}
}

// firmwareFiles serves firmware packages to devices under /fw/<packageId>
// with Block2 (OTA-7): the ETag is the first 8 bytes of the SHA-256 digest.
// Each block read is told to the upgrade engine as download progress.
type firmwareFiles struct{ p *Platform }

var _ transport.FileSource = firmwareFiles{}

func (f firmwareFiles) Open(endpoint, name string) (transport.File, error) {
	ctx := context.Background()
	pkg, err := f.p.ota.Package(ctx, name)
	if err != nil {
		return transport.File{}, fmt.Errorf("%w: package %s: %v", transport.ErrNotFound, name, err)
	}
	content, err := f.p.ota.Content(ctx, name)
	if err != nil {
		return transport.File{}, fmt.Errorf("%w: package %s: %v", transport.ErrNotFound, name, err)
	}
	var data io.ReaderAt = content.R
	if endpoint != "" {
		data = servedReader{r: content.R, p: f.p, endpoint: endpoint, pkg: name}
	}
	return transport.File{Data: data, Size: pkg.Size, ETag: pkg.Digest[:8]}, nil
}

// servedReader tells the upgrade engine how far a device has downloaded a
// package: the lwm2m server reads each block it serves with one ReadAt. A
// download from a socket the server cannot tie to an endpoint has no
// progress of its own; /5/0/3 still moves the task on.
type servedReader struct {
	r        io.ReaderAt
	p        *Platform
	endpoint string
	pkg      string
}

func (s servedReader) ReadAt(b []byte, off int64) (int, error) {
	n, err := s.r.ReadAt(b, off)
	if n > 0 {
		ctx := context.Background()
		if d, gerr := s.p.reg.GetByNodeID(ctx, s.endpoint); gerr == nil {
			s.p.ota.FirmwareServed(ctx, d.ID, s.pkg, off+int64(n))
		}
	}
	return n, err
}

// parseAllow reads the push allow-list: CIDR prefixes or single addresses.
func parseAllow(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if pfx, err := netip.ParsePrefix(s); err == nil {
			out = append(out, pfx)
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("config: allowPush entry %q is neither an address nor a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
