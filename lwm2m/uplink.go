package lwm2m

import (
	"errors"

	"github.com/plgd-dev/go-coap/v3/message"
)

type uplinkValue struct {
	path string
	data []byte
}

// dataPath is the uplink resource of object 19 (LWM-5).
var dataPath = MustPath("/19/0/0")

// uplinkValues extracts the application bytes of a /19/0/0 or /t/d
// notification or of a Send (/dp). Opaque payloads and TUP payloads are the
// bytes themselves; payloads in the object model's formats are decoded and
// give one value per resource instance of /19/0/0 (none when the payload
// holds other resources only: the caller then reports a notification).
// Payloads the server cannot decode are passed on as they are, with their
// content format in the event.
func (s *Server) uplinkValues(path string, m *message.Message) []uplinkValue {
	cf := contentFormat(m)
	if path == "/t/d" || cf == cfOpaque || cf == cfNone || cf == cfText {
		return []uplinkValue{{path: path, data: m.Payload}}
	}
	base := dataPath
	if path != dataPath.String() {
		base = RootPath // Send: SenML names carry whole paths
	}
	recs, err := s.decode(Content{Format: cf, Payload: m.Payload}, base)
	if err != nil {
		if !errors.Is(err, ErrUnsupportedFormat) {
			s.log.Info("lwm2m: undecodable uplink", "path", path, "format", cf, "err", err)
		}
		return []uplinkValue{{path: path, data: m.Payload}}
	}
	var out []uplinkValue
	for _, r := range recs {
		if dataPath.Contains(r.Path) {
			out = append(out, uplinkValue{path: dataPath.String(), data: r.Value.Bytes()})
		}
	}
	return out
}
