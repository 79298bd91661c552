package main

// The notify types of APP-7 that are not device or upgrade notifications:
// deviceModelAdded and deviceModelDeleted when a product is added or
// deleted, deviceDesiredPropertiesModifyStatusChanged as the command that
// carries desired shadow values moves. deviceEvent and serviceInfoChanged
// have nothing to send them here, and their subscriptions are refused.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/profile"
	"github.com/doze-io/doze/push"
)

// modelJSON is the body of deviceModelAdded and deviceModelDeleted, as the
// original platform sends them (appId is the receiving app).
type modelJSON struct {
	AppID            string `json:"appId"`
	DeviceType       string `json:"deviceType"`
	ManufacturerName string `json:"manufacturerName"`
	ManufacturerID   string `json:"manufacturerId"`
	Model            string `json:"model"`
	ProtocolType     string `json:"protocolType"`
}

// publishModel tells app, the product's owner, that a product model was
// added or deleted (APP-3).
func (p *Platform) publishModel(app string, t push.NotifyType, prod *profile.Product) {
	{
		b, err := json.Marshal(modelJSON{AppID: app, DeviceType: prod.DeviceType, ManufacturerName: prod.ManufacturerName,
			ManufacturerID: prod.ManufacturerID, Model: prod.Model, ProtocolType: prod.ProtocolType})
		if err != nil {
			p.logger.Error("product notification", "err", err)
			return
		}
		if _, err := p.push.Publish(context.Background(), app, push.Body{Type: t, Fields: b}); err != nil {
			p.logger.Error("publishing notification", "type", t, "app", app, "err", err)
		}
	}
}

// desiredKey is the supersede key (CMD-10) of the command that carries a
// service's desired shadow values: a newer one replaces a PENDING older
// one, and the key tells desiredListener which commands to follow.
func desiredKey(serviceID string) string { return "shadow:" + serviceID }

// desiredListener passes every command move on to next and pushes
// deviceDesiredPropertiesModifyStatusChanged when a command carrying
// desired values is delivered (the device ACKed it) or ends (SUCCESSFUL,
// FAILED, TIMEOUT, EXPIRED, CANCELED).
type desiredListener struct {
	next command.Listener
	p    *Platform
}

var _ command.Listener = desiredListener{}

// desiredStatusJSON is the body of deviceDesiredPropertiesModifyStatusChanged.
type desiredStatusJSON struct {
	DeviceID   string          `json:"deviceId"`
	ServiceID  string          `json:"serviceId"`
	Properties json.RawMessage `json:"properties"` // the desired values
	Status     string          `json:"status"`     // the carrying command's status
	CommandID  string          `json:"commandId"`
}

func (l desiredListener) CommandChanged(c command.Command) {
	l.next.CommandChanged(c)
	serviceID, ok := strings.CutPrefix(c.Key, "shadow:")
	if !ok || (c.Status != command.Delivered && !c.Status.Final()) {
		return
	}
	props := c.Body.Paras
	if len(props) == 0 {
		props = json.RawMessage("{}")
	}
	b, err := json.Marshal(desiredStatusJSON{DeviceID: c.DeviceID, ServiceID: serviceID, Properties: props,
		Status: c.Status.String(), CommandID: c.ID})
	if err != nil {
		l.p.logger.Error("desired status notification", "err", err)
		return
	}
	l.p.log.Add(c.DeviceID, "shadow", fmt.Sprintf("desired values of service %s: %s (command %s)", serviceID, c.Status, c.ID))
	l.p.publish(l.p.ownerApps(c.DeviceID), push.Body{Type: push.DeviceDesiredPropertiesModifyStatusChanged, Fields: b})
}

// notSent are the notify types nothing on this platform sends, with the
// reason a subscription to them is refused (APP-7: every type that can be
// subscribed to is emitted).
var notSent = map[push.NotifyType]string{
	push.DeviceEvent: "deviceEvent is not sent by this platform: product models declare no events it could recognise " +
		"(a profile's events are not loaded); a device's reports arrive as deviceDataChanged and deviceDatasChanged",
	push.ServiceInfoChanged: "serviceInfoChanged is not sent by this platform: it keeps no per-service settings of a device " +
		"(such as muted commands) that could change; device changes arrive as deviceInfoChanged",
}
