package main

import (
	"context"
	"encoding/json"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/profile"
	"github.com/doze-io/doze/registry"
)

// deliverDesired turns the device's desired shadow values into commands
// when it wakes (STO-3: desired values are delivered when the device next
// connects). A service's desired values go out as the first command of that
// service whose paras include every desired name; the command then follows
// the usual rules (CMD-1…CMD-4) and the desired values are cleared once it
// is queued. Values no command can carry stay desired, and the log says so.
func (p *Platform) deliverDesired(ctx context.Context, d registry.Device) {
	sh, err := p.db.Shadow().Desired(d.ID)
	if err != nil || len(sh) == 0 {
		return
	}
	prod, err := p.products.catalog.Get(d.Info.ManufacturerID, d.Info.Model)
	if err != nil {
		return
	}
	for _, s := range sh {
		if s.Desired == nil || len(s.Desired.Data) == 0 {
			continue
		}
		cmd := commandFor(prod, s.ServiceID, s.Desired.Data)
		if cmd == nil {
			p.log.Add(d.ID, "shadow", "desired values of service "+s.ServiceID+" match no command's paras; they stay desired")
			continue
		}
		paras, _ := json.Marshal(s.Desired.Data)
		c, err := p.cmds.Submit(ctx, command.Request{DeviceID: d.ID,
			Command: command.Body{ServiceID: s.ServiceID, Method: cmd.Name, Paras: paras}, SupersedeKey: desiredKey(s.ServiceID)})
		if err != nil {
			p.log.Add(d.ID, "shadow", "desired values of service "+s.ServiceID+" not sent: "+err.Error())
			continue
		}
		p.db.Shadow().ClearDesired(d.ID, s.ServiceID)
		p.log.Add(d.ID, "shadow", "desired values of service "+s.ServiceID+" sent as command "+c.ID+" "+cmd.Name)
	}
}

// commandFor returns the first command of the service whose paras name
// every key of values, or nil.
func commandFor(prod *profile.Product, serviceID string, values map[string]any) *profile.Command {
	svc, ok := prod.Service(serviceID)
	if !ok {
		return nil
	}
	for i := range svc.Commands {
		c := &svc.Commands[i]
		all := len(c.Paras) > 0
		for k := range values {
			if _, ok := c.Para(k); !ok {
				all = false
				break
			}
		}
		if all && prod.CheckCommand(serviceID, c.Name, values) == nil {
			return c
		}
	}
	return nil
}
