package transport

import (
	"errors"
	"sync"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// builtinObjects is the object model of clients configured without one,
// shared: a registry is read-only once built.
var builtinObjects = sync.OnceValue(lwm2m.NewBuiltinObjects)

func isWriteAttributes(m *message.Message) bool {
	return len(m.Payload) == 0 && len(msgQueries(m)) > 0
}

// write answers a Write (PUT) of path. A Multiple resource, and its
// instances when they have no Resource of their own, are written as
// Resource.Write describes; anything else goes to the Resource at path as
// sent.
func (c *Client) write(m *message.Message, path string) *message.Message {
	cf := contentFormat(m)
	c.mu.Lock()
	r, ok := c.resources[path]
	c.mu.Unlock()
	p, err := lwm2m.ParsePath(path)
	switch {
	case err == nil && p.Len() == 3 && c.multiple(p):
		if !ok {
			return errResp(codes.NotFound, "no resource %s", path)
		}
		return c.writeMultiple(r, p, cf, m.Payload)
	case err == nil && p.Len() == 4 && !ok && c.multiple(p.Parent()):
		c.mu.Lock()
		r, ok = c.resources[p.Parent().String()]
		c.mu.Unlock()
		if !ok {
			return errResp(codes.NotFound, "no resource %s", path)
		}
		return c.writeInstance(r, p, cf, m.Payload)
	case !ok:
		return errResp(codes.NotFound, "no resource %s", path)
	}
	return c.deliver(r, path, []Content{{Format: cf, Payload: m.Payload}})
}

// multiple reports whether the object model defines the resource at p as
// a Multiple resource.
func (c *Client) multiple(p lwm2m.Path) bool {
	d, ok := c.cfg.Model.Resource(p.ID(0), p.ID(2))
	return ok && d.Multiple
}

// writeMultiple writes the Multiple resource p: its instances in a format
// that carries them (TLV, SenML, LwM2M JSON), never a single value.
func (c *Client) writeMultiple(r Resource, p lwm2m.Path, cf lwm2m.Format, payload []byte) *message.Message {
	switch cf {
	case lwm2m.FormatText, lwm2m.FormatOpaque, NoFormat:
		return errResp(codes.BadRequest, "%s is a Multiple resource but the payload (%v) treats it as single: write an instance (%s/0) or the resource as TLV or SenML",
			p, cf, p)
	}
	recs, resp := c.decodeWrite(p, cf, payload)
	if resp != nil {
		return resp
	}
	vals := make([]Content, 0, len(recs))
	for _, rec := range recs {
		if rec.Path.Len() != 4 {
			return errResp(codes.BadRequest, "%s is a Multiple resource; the payload gives %s, not one of its instances", p, rec.Path)
		}
		vals = append(vals, single(rec))
	}
	return c.deliver(r, p.String(), vals)
}

// writeInstance writes the resource instance p of a Multiple resource
// served by r: one value, as sent (text, opaque) or in a format that names
// the instance.
func (c *Client) writeInstance(r Resource, p lwm2m.Path, cf lwm2m.Format, payload []byte) *message.Message {
	switch cf {
	case lwm2m.FormatText, lwm2m.FormatOpaque, NoFormat:
		if cf == NoFormat {
			cf = lwm2m.FormatText
		}
		return c.deliver(r, p.String(), []Content{{Format: cf, Payload: payload}})
	}
	recs, resp := c.decodeWrite(p, cf, payload)
	if resp != nil {
		return resp
	}
	if len(recs) != 1 || recs[0].Path != p {
		return errResp(codes.BadRequest, "a write of %s takes that one resource instance; the payload has %d values", p, len(recs))
	}
	return c.deliver(r, p.String(), []Content{single(recs[0])})
}

func (c *Client) decodeWrite(p lwm2m.Path, cf lwm2m.Format, payload []byte) ([]lwm2m.Record, *message.Message) {
	recs, err := lwm2m.Decode(cf, p, payload, c.cfg.Model)
	if errors.Is(err, lwm2m.ErrUnsupportedFormat) {
		return nil, errResp(codes.UnsupportedMediaType, "%v", err)
	}
	if err != nil {
		return nil, errResp(codes.BadRequest, "%v", err)
	}
	return recs, nil
}

// single returns one record's value alone: the bytes of an Opaque (or
// untyped) value, else its plain text.
func single(rec lwm2m.Record) Content {
	if t := rec.Value.Type(); t == lwm2m.TypeOpaque || t == lwm2m.TypeRaw {
		return Content{Format: lwm2m.FormatOpaque, Payload: rec.Value.Bytes()}
	}
	return Content{Format: lwm2m.FormatText, Payload: []byte(rec.Value.String())}
}

// deliver gives each value to r.Write and answers 2.04 Changed.
func (c *Client) deliver(r Resource, path string, vals []Content) *message.Message {
	if r.Write == nil {
		return errResp(codes.MethodNotAllowed, "%s is not writable", path)
	}
	for _, v := range vals {
		if err := r.Write(v); err != nil {
			return errResp(codes.BadRequest, "%v", err)
		}
	}
	return &message.Message{Code: codes.Changed}
}
