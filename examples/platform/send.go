package main

// LwM2M values no product mapping takes (LWM-12): which values of a Send
// the lwm2m server takes, per device, and the lwm2mNotification push of
// the values a device notified or sent that no mapping turns into a
// report.
//
// A Send (/dp) is taken path by path: a path the device's product maps, the
// firmware State and Update Result (the firmware flow's), and, while at
// least one application subscribes to lwm2mNotification, any path (it is
// pushed). A Send of nothing taken is answered 4.04 with the paths and why
// (the device must not believe an unused value delivered); the values left
// out of a partly taken Send are said on the device log. Whatever is taken
// is kept in the inbox before the device's 2.04 (transport.UplinkHandler),
// so an acknowledged Send survives a crash.
//
// An lwm2mNotification carries one path's node in Leshan's JSON, as the
// LwM2M API shows a read: for a notification the observed path, for a Send
// each resource it carried. The answer to a read is the caller's and is not
// pushed.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/registry"
)

// filterSend decides which paths of endpoint ep's Send the platform takes
// (transport.SendFilter): mapped paths, the firmware State and Update
// Result, and every path while an application subscribes to
// lwm2mNotification. why says what a refused Send's device is told.
func (p *Platform) filterSend(ep string, paths []lwm2m.Path) (take []bool, why string) {
	ctx := context.Background()
	d, err := p.reg.GetByNodeID(ctx, ep)
	if err != nil {
		return nil, "the device is not known to the platform"
	}
	m := p.products.Mapping(d.Info.ManufacturerID, d.Info.Model)
	pushed := p.notifiesLwM2M(ctx, d)
	take = make([]bool, len(paths))
	var left []string
	for i, path := range paths {
		k := path.String()
		_, mapped := m.Property(k)
		take[i] = mapped || pushed || slices.Contains(firmwarePaths, k)
		if !take[i] {
			left = append(left, k)
		}
	}
	product := d.Info.ManufacturerID + "/" + d.Info.Model
	why = fmt.Sprintf("product %s maps no property to them and no application subscribes to lwm2mNotification", product)
	if m == nil {
		why = fmt.Sprintf("product %s has no LwM2M mapping and no application subscribes to lwm2mNotification", product)
	}
	if len(left) > 0 && len(left) < len(paths) {
		p.log.Add(d.ID, "refused", fmt.Sprintf("LwM2M Send values left out: product %s maps no property to %s", product, strings.Join(left, ", ")))
	}
	return take, why
}

// notifiesLwM2M reports whether d's application (its owner, APP-3)
// subscribes to lwm2mNotification. A store error counts as yes: the value
// is taken and its push tried (and retried) rather than refused for a
// passing error.
func (p *Platform) notifiesLwM2M(ctx context.Context, d registry.Device) bool {
	for _, app := range p.deviceApps(d) {
		subs, err := p.push.Subscriptions(ctx, push.Filter{AppID: app, NotifyType: push.LwM2MNotification})
		if err != nil || len(subs) > 0 {
			return true
		}
	}
	return false
}

// pushUnmapped pushes the values recs of a notification of base (or of a
// Send: base is the root) as lwm2mNotification to every application's
// subscribers, one push per notified path; with nobody subscribed it says
// so on the device log. Its error (a push not stored) keeps the event in
// the inbox for another try; apps that took it are not pushed again
// (pushed).
func (p *Platform) pushUnmapped(ctx context.Context, d registry.Device, base lwm2m.Path, recs []lwm2m.Record, at time.Time, pushed map[string]bool) error {
	groups := map[string][]lwm2m.Record{}
	var order []lwm2m.Path
	for _, r := range recs {
		where := base
		if base.Len() < 2 { // a Send (or an observed object): one push per resource
			where = r.Path
			for where.Len() > 3 {
				where = where.Parent()
			}
		}
		k := where.String()
		if groups[k] == nil {
			order = append(order, where)
		}
		groups[k] = append(groups[k], r)
	}
	var bodies []push.LwM2MNotificationBody
	for _, where := range order {
		n, err := toNode(where, groups[where.String()])
		var v []byte
		if err == nil {
			v, err = json.Marshal(n)
		}
		if err != nil {
			p.log.Add(d.ID, "notification", fmt.Sprintf("values of %s not pushed: %v", where, err))
			continue
		}
		bodies = append(bodies, push.LwM2MNotificationBody{DeviceID: d.ID, GatewayID: gatewayOf(d), Path: where.String(),
			Value: v, EventTime: push.FormatTime(at)})
	}
	sent := 0
	apps := p.deviceApps(d) // the device's owner (APP-3)
	for _, app := range apps {
		if pushed[app] {
			continue
		}
		for _, b := range bodies {
			n, err := p.push.Publish(ctx, app, b)
			if err != nil {
				return fmt.Errorf("lwm2mNotification of %s to app %s: %w", b.Path, app, err)
			}
			sent += n
		}
		pushed[app] = true
	}
	if sent == 0 && len(bodies) > 0 && len(pushed) == len(apps) {
		paths := make([]string, len(bodies))
		for i, b := range bodies {
			paths[i] = b.Path
		}
		p.log.Add(d.ID, "notification", fmt.Sprintf("LwM2M values of %s: what a device sends here reaches no application: no product mapping takes it and no application subscribes to lwm2mNotification",
			strings.Join(paths, ", ")))
	}
	return nil
}
