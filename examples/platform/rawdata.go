package main

// Raw data without a codec (APP-5, FAQ §2.8, §6.3). A product with no
// codec still takes binary uplinks: each is stored in history and the
// shadow, and pushed, as {"rawData":"<base64>"} under the service RawData.
// The other way, a command of service RawData carries
// {"rawData":"<base64>"} and its bytes go to the device's /19/1/0 as they
// are.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/profile"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/registry"
	"github.com/doze-io/doze/store"
)

// rawUplink keeps and pushes a payload of a device whose product has no
// codec, as RawData (APP-5). Like report it returns an error naming each
// effect that could not be stored, and fx records those that were.
func (p *Platform) rawUplink(ctx context.Context, d registry.Device, payload []byte, at time.Time, fx *effects) error {
	sd := push.RawData(payload, at)
	if !fx.checked {
		fx.checked = true
		p.usable(ctx, d)
		p.log.Add(d.ID, "uplink", fmt.Sprintf("%d bytes kept as %s: product %s/%s has no codec (APP-5)",
			len(payload), push.RawDataService, d.Info.ManufacturerID, d.Info.Model))
	}
	var hist []store.HistoryRecord
	for _, app := range p.historyApps(d) {
		hist = append(hist, store.HistoryRecord{DeviceID: d.ID, GatewayID: gatewayOf(d), AppID: app,
			ServiceID: push.RawDataService, Data: sd.Data, Time: at})
	}
	reported := map[string]map[string]any{push.RawDataService: normalize(sd.Data)}
	rep := push.Report{DeviceID: d.ID, GatewayID: gatewayOf(d), Services: []push.ServiceData{sd}}
	return p.keep(ctx, d, rep, hist, reported, at, fx)
}

// isRawCommand reports whether a command to a device of prod is a raw one:
// service RawData, which the product model does not declare itself.
func isRawCommand(prod *profile.Product, b command.Body) bool {
	if b.ServiceID != push.RawDataService {
		return false
	}
	if prod != nil {
		if _, declared := prod.Service(push.RawDataService); declared {
			return false
		}
	}
	return true
}

// rawPayload returns the bytes a raw command carries: its paras must be
// exactly {"rawData":"<base64>"}, standard padded base64 of 1 to max bytes.
func rawPayload(b command.Body, max int) ([]byte, error) {
	var paras map[string]json.RawMessage
	if err := json.Unmarshal(b.Paras, &paras); err != nil || paras == nil {
		return nil, badRequest("invalid_rawData", `a command of service RawData carries paras {"rawData":"<base64>"}; its paras are not a JSON object`)
	}
	raw, ok := paras["rawData"]
	if !ok || len(paras) != 1 {
		keys := make([]string, 0, len(paras))
		for k := range paras {
			keys = append(keys, k)
		}
		return nil, badRequest("invalid_rawData", `a command of service RawData carries paras {"rawData":"<base64>"} and nothing else; it has %q`, keys)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, badRequest("invalid_rawData", "paras.rawData must be a string of base64, not %s", raw)
	}
	data, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, badRequest("invalid_rawData", "paras.rawData is not standard base64 (RFC 4648 §4, padded): %v", err)
	}
	if len(data) == 0 || len(data) > max {
		return nil, badRequest("invalid_rawData", "paras.rawData holds %d bytes; a raw command carries 1 to %d (APP-2)", len(data), max)
	}
	return data, nil
}

// checkRawCommand checks a raw command before it is queued: its bytes,
// and a device that takes them (an LwM2M device's /19/1/0).
func (p *Platform) checkRawCommand(d registry.Device, b command.Body) error {
	if isMQTT(d) {
		return badRequest("invalid_rawData", "device %s is an MQTT device, which takes JSON commands; rawData commands go to LwM2M devices' /19/1/0", d.ID)
	}
	_, err := rawPayload(b, p.cfg.MaxMessage)
	return err
}

// transmitRaw writes a raw command's bytes to the device's /19/1/0 as they
// are. With no codec there is no response to wait for: the device's ACK
// ends the command SUCCESSFUL.
func (p *Platform) transmitRaw(ctx context.Context, d registry.Device, c command.Command, left func()) error {
	data, err := rawPayload(c.Body, p.cfg.MaxMessage)
	if err != nil {
		return fmt.Errorf("%w: %v", command.ErrEncode, err)
	}
	if err := p.lwm.Downlink(transport.WithLeft(ctx, left), d.NodeID, data); err != nil {
		if re, ok := errors.AsType[*transport.ResponseError](err); ok && re.ClientError() {
			p.log.Add(d.ID, "command_refused", err.Error())
			return &command.RefusedError{Code: re.CodeText(), Err: err}
		}
		return err
	}
	p.log.Add(d.ID, "command", fmt.Sprintf("%s: %d raw bytes written to %s and acknowledged", c.ID, len(data), "/19/1/0"))
	body, _ := json.Marshal(map[string]any{"rawData": "acknowledged", "bytes": len(data)})
	return p.cmds.Responded(ctx, d.ID, command.Response{Mid: c.Mid(), Body: body})
}
