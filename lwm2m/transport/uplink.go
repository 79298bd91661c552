package transport

import (
	"errors"
	"strings"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

type uplinkValue struct {
	path string
	data []byte
}

// dataPath is the uplink resource of object 19 (LWM-5).
var dataPath = lwm2m.MustPath("/19/0/0")

// uplinkValues extracts the application bytes of a /19/0/0 or /t/d
// notification or observe answer. Opaque payloads and TUP payloads are the
// bytes themselves; payloads in the object model's formats are decoded and
// give one value per resource instance of /19/0/0 (none when the payload
// holds other resources only: the caller then reports a notification).
// Payloads the server cannot decode are passed on as they are, with their
// content format in the event.
func (s *Server) uplinkValues(path string, c Content) []uplinkValue {
	if path == "/t/d" || c.Format == cfOpaque || c.Format == cfNone || c.Format == cfText {
		return []uplinkValue{{path: path, data: c.Payload}}
	}
	recs, err := s.decode(c, dataPath)
	if err != nil {
		if !errors.Is(err, lwm2m.ErrUnsupportedFormat) {
			s.log.Info("lwm2m: undecodable uplink", "path", path, "format", c.Format, "err", err)
		}
		return []uplinkValue{{path: path, data: c.Payload}}
	}
	return dataValues(recs)
}

// dataValues returns the values of /19/0/0 among recs, one per resource
// instance.
func dataValues(recs []lwm2m.Record) []uplinkValue {
	var out []uplinkValue
	for _, r := range recs {
		if dataPath.Contains(r.Path) {
			out = append(out, uplinkValue{path: dataPath.String(), data: r.Value.Bytes()})
		}
	}
	return out
}

// sendData is what the server delivers of a Send (/dp).
type sendData struct {
	data   []uplinkValue // EventUplink: /19/0/0 values, or the whole body of an opaque Send
	other  []byte        // EventNotification: the records taken (Config.SendPaths or the SendFilter), encoded as they came
	unused []lwm2m.Path  // paths the Send carried that the server does not deliver
}

// sendRaw reports whether a Send body in format f is the application's
// bytes for the data channel, as a /19/0/0 notification would carry them:
// no Content-Format, plain text or opaque. Other Send bodies name their
// paths, in SenML JSON or SenML CBOR (the Send operation of OMA LwM2M 1.1
// Core, Information Reporting interface).
func sendRaw(f lwm2m.Format) bool { return f == cfNone || f == cfText || f == cfOpaque }

// parseSend checks a Send's body of endpoint ep and sorts its values, or
// returns the error answer for a body the server cannot use (LWM-12): 4.13
// over MaxSendSize, 4.15 for a format a Send cannot carry, 4.00 when it is
// malformed or empty, 4.04 when it carries no path the server delivers
// (none under SendPaths, or none the handler's FilterSend takes).
func (s *Server) parseSend(ep string, c Content) (sendData, *message.Message) {
	if n := len(c.Payload); n > s.cfg.MaxSendSize {
		r := errResp(codes.RequestEntityTooLarge, "send: a body of %d bytes is too large; this server takes at most %d bytes in one Send", n, s.cfg.MaxSendSize)
		addUint(r, message.Size1, uint32(s.cfg.MaxSendSize))
		return sendData{}, r
	}
	if len(c.Payload) == 0 {
		return sendData{}, errResp(codes.BadRequest, "send: the body is empty; a Send carries at least one value")
	}
	if sendRaw(c.Format) {
		return sendData{data: []uplinkValue{{path: "/dp", data: c.Payload}}}, nil
	}
	if c.Format != lwm2m.FormatSenMLJSON && c.Format != lwm2m.FormatSenMLCBOR {
		return sendData{}, errResp(codes.UnsupportedMediaType,
			"send: content format %d (%s) cannot carry a Send; use SenML JSON (110) or SenML CBOR (112), or opaque (42) for data-channel bytes",
			c.Format, c.Format)
	}
	recs, err := s.decode(c, lwm2m.RootPath)
	if err != nil {
		return sendData{}, errResp(codes.BadRequest, "send: malformed %s body: %v", c.Format, err)
	}
	if len(recs) == 0 {
		return sendData{}, errResp(codes.BadRequest, "send: the %s body holds no record; a Send carries at least one value", c.Format)
	}
	taken, why := s.sendTaken(ep, recs)
	var d sendData
	var other []lwm2m.Record
	for _, r := range recs {
		switch {
		case dataPath.Contains(r.Path):
			d.data = append(d.data, dataValues([]lwm2m.Record{r})...)
		case taken(r.Path):
			other = append(other, r)
		default:
			d.unused = append(d.unused, r.Path)
		}
	}
	if len(d.data) == 0 && len(other) == 0 {
		if why == "" {
			why = "this server takes " + pathList(append([]lwm2m.Path{dataPath}, s.cfg.SendPaths...), 8)
		}
		return sendData{}, errResp(codes.NotFound, "send: no value this server uses: the Send carries %s; %s",
			pathList(d.unused, 8), why)
	}
	if len(other) > 0 {
		if len(other) == len(recs) {
			d.other = c.Payload
		} else if d.other, err = lwm2m.Encode(c.Format, lwm2m.RootPath, other); err != nil {
			// Decoded records encode again; if one does not, the
			// consumer gets the body as sent and picks its paths.
			d.other = c.Payload
		}
	}
	return d, nil
}

// sendTaken returns which paths of a Send's records (other than /19/0/0)
// the server takes for endpoint ep: the handler's FilterSend when it is a
// SendFilter, else Config.SendPaths; and the filter's reason for those it
// leaves out.
func (s *Server) sendTaken(ep string, recs []lwm2m.Record) (func(lwm2m.Path) bool, string) {
	f, ok := s.h.(SendFilter)
	if !ok {
		return s.sendPathUsed, ""
	}
	var paths []lwm2m.Path
	seen := map[string]bool{}
	for _, r := range recs {
		if k := r.Path.String(); !dataPath.Contains(r.Path) && !seen[k] {
			seen[k] = true
			paths = append(paths, r.Path)
		}
	}
	if len(paths) == 0 {
		return func(lwm2m.Path) bool { return false }, ""
	}
	take, why := f.FilterSend(ep, paths)
	yes := map[string]bool{}
	for i, t := range take {
		if t && i < len(paths) {
			yes[paths[i].String()] = true
		}
	}
	if why == "" {
		why = "the server takes none of them for this device"
	}
	if len(why) > maxWhy { // the diagnostic stays one short datagram
		why = why[:maxWhy] + "…"
	}
	return func(p lwm2m.Path) bool { return yes[p.String()] }, why
}

// maxWhy bounds a SendFilter's reason in a 4.04 diagnostic.
const maxWhy = 300

// sendPathUsed reports whether p is under one of Config.SendPaths.
func (s *Server) sendPathUsed(p lwm2m.Path) bool {
	for _, q := range s.cfg.SendPaths {
		if q.Contains(p) {
			return true
		}
	}
	return false
}

// pathList writes at most max paths, each once, for a diagnostic.
func pathList(ps []lwm2m.Path, max int) string {
	var b strings.Builder
	seen := map[string]bool{}
	n := 0
	for _, p := range ps {
		k := p.String()
		if seen[k] {
			continue
		}
		seen[k] = true
		if n == max {
			b.WriteString(" and more")
			break
		}
		if n > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		n++
	}
	return b.String()
}
