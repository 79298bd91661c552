package main

// What the platform does after a device registers or updates its
// registration: the data channel (/19/0/0) and the firmware flow (object 5).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/registry"
)

var (
	dataObject   = lwm2m.MustPath("/19/0")
	dataResource = "/19/0/0"
	deviceObject = lwm2m.MustPath("/3/0")
)

// registered follows up an accepted Register or Update (issue 20 items 2
// and 6). A Register means the device may have restarted and forgotten
// everything it observed: its firmware upgrade re-syncs, and its data
// channel is observed again.
func (p *Platform) registered(ctx context.Context, d registry.Device, e transport.Event) {
	if e.Kind == transport.EventRegistered {
		p.ota.DeviceRegistered(ctx, d.ID)
		if e.Registration.Objects.Has(deviceObject) {
			p.readDeviceObject(d, e.Endpoint) // LWM-11: after a firmware update too, which ends with a Register
		}
	}
	p.dataChannel(d, e)
	p.observeMapped(d, e) // LWM-12
}

// dataChannel makes sure /19/0/0 is observed on the device's current
// registration (issue 20 item 6). After a Register the lwm2m server
// observes it. After an Update whose object list brings </19/0> back (an
// earlier Update removed it, and the device ended that observation), the
// platform observes it again and stores the value of the Observe answer
// through the uplink pipeline, as a notification's. A client without
// object 19 has no data channel: that is said on the device log and the
// console, at each Register and when an Update removes it.
func (p *Platform) dataChannel(d registry.Device, e transport.Event) {
	r := e.Registration
	if r.TUP {
		return // the lwm2m server observes /t/d
	}
	if !r.Objects.Has(dataObject) {
		// The observation of a removed object is dead: forget it, so
		// that the object's return is noticed.
		had := p.forgetDataObservations(e.Endpoint)
		if e.Kind == transport.EventRegistered || had {
			msg := fmt.Sprintf("no data channel: the registration lists no object 19 instance 0 (</19/0>) in %q; reports can arrive only by LwM2M Send", r.Links)
			p.log.Add(d.ID, "data_channel", msg)
			p.logger.Warn("device without a data channel", "device", d.ID, "endpoint", e.Endpoint, "objects", r.Links)
		}
		return
	}
	if e.Kind != transport.EventUpdated || p.dataObserved(e.Endpoint) {
		return
	}
	ep, id := e.Endpoint, d.ID
	p.log.Add(id, "data_channel", "</19/0> is back in the registration: observing "+dataResource+" again")
	p.background(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		c, err := p.lwm.Observe(ctx, ep, dataResource)
		if err != nil {
			p.log.Add(id, "data_channel", "observing "+dataResource+" failed: "+err.Error())
			return
		}
		for _, v := range dataValues(c) {
			// The same pipeline as a notification: the inbox first,
			// then the device's worker.
			if err := p.acceptUplink(transport.Event{Kind: transport.EventUplink, Endpoint: ep, Time: time.Now(),
				Path: dataResource, Payload: v, ContentFormat: c.Format}); err != nil {
				p.log.Add(id, "data_channel", "value of the "+dataResource+" Observe answer not kept: "+err.Error())
			}
		}
	})
}

// dataObserved reports whether the store holds an observation of /19/0/0
// of the endpoint.
func (p *Platform) dataObserved(endpoint string) bool {
	obs, err := p.db.Observations().Observations(endpoint)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(obs, func(o transport.Observation) bool { return o.Path == dataResource })
}

// forgetDataObservations deletes the endpoint's observations of /19/0/0
// from the store and reports whether there were any.
func (p *Platform) forgetDataObservations(endpoint string) bool {
	store := p.db.Observations()
	obs, err := store.Observations(endpoint)
	if err != nil {
		return false
	}
	had := false
	for _, o := range obs {
		if o.Path == dataResource {
			had = true
			if err := store.DeleteObservation(o.Token); err != nil {
				p.logger.Warn("deleting an observation", "endpoint", endpoint, "err", err)
			}
		}
	}
	return had
}

// dataValues returns the application bytes of a /19/0/0 answer: the
// opaque payload, or one value per resource instance (TLV, SenML). An
// empty answer (no data yet) has none.
func dataValues(c transport.Content) [][]byte {
	if len(c.Payload) == 0 {
		return nil
	}
	if c.Format == lwm2m.FormatOpaque || c.Format == transport.NoFormat {
		return [][]byte{c.Payload}
	}
	recs, err := lwm2m.Decode(c.Format, lwm2m.MustPath(dataResource), c.Payload, nil)
	if err != nil {
		return nil
	}
	var out [][]byte
	for _, r := range recs {
		if b := r.Value.Bytes(); len(b) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// firmwareValue reads an integer resource of object 5 (/5/0/3, /5/0/5)
// from content; ota.FwUnknown when it holds none.
func firmwareValue(c transport.Content, path string) int {
	base, err := lwm2m.ParsePath(path)
	if err != nil {
		return ota.FwUnknown
	}
	recs, err := lwm2m.Decode(c.Format, base, c.Payload, nil)
	if err != nil {
		return ota.FwUnknown
	}
	for _, r := range recs {
		if r.Path.String() == path {
			if v, err := r.Value.As(lwm2m.TypeInteger); err == nil {
				if n, ok := v.Int(); ok && n >= 0 && n <= 255 {
					return int(n)
				}
			}
		}
	}
	return ota.FwUnknown
}

// firmwareSend takes object 5 values out of an LwM2M Send (POST /dp): the
// State and Update Result it carries drive the device's firmware upgrade
// like notifications (issue 20 item 2). It reports whether it found any.
func (p *Platform) firmwareSend(ctx context.Context, d registry.Device, e transport.Event) bool {
	c := transport.Content{Format: e.ContentFormat, Payload: e.Payload}
	recs, err := lwm2m.Decode(c.Format, lwm2m.RootPath, c.Payload, nil)
	if err != nil {
		p.log.Add(d.ID, "uplink", "LwM2M Send not understood: "+err.Error())
		return false
	}
	st := ota.FirmwareStatus{State: ota.FwUnknown, Result: ota.FwUnknown}
	for _, r := range recs {
		v, err := r.Value.As(lwm2m.TypeInteger)
		if err != nil {
			continue
		}
		n, _ := v.Int()
		switch strings.TrimSuffix(r.Path.String(), "/") {
		case "/5/0/3":
			st.State = int(n)
		case "/5/0/5":
			st.Result = int(n)
		}
	}
	if st.State == ota.FwUnknown && st.Result == ota.FwUnknown {
		return false
	}
	p.log.Add(d.ID, "upgrade", fmt.Sprintf("object 5 sent: State %d, Update Result %d (-1: not sent)", st.State, st.Result))
	p.ota.FirmwareReport(ctx, d.ID, st)
	return true
}
