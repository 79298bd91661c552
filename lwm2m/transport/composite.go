package transport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Composite operations of OMA LwM2M 1.1 (TS Core §6.3.8 Read-Composite,
// §6.3.9 Write-Composite, §6.4.3 Observe-Composite and its cancel; TS
// Transport §6.4: FETCH and iPATCH of RFC 8132 on the root path). The
// request of a Read- or Observe-Composite is a SenML pack of names only
// ([{"n":"/3/0/9"},{"n":"/3303/0/5700"}]) in SenML JSON (110) or SenML
// CBOR (112), with Accept asking the answer in the same format; a
// Write-Composite is a SenML pack of records with values. They exist
// only for a device that registered LwM2M 1.1 and, when its registration
// lists content formats (ct=), one of the SenML ones; any other gets
// ErrCompositeUnsupported before anything is sent.

// MaxCompositePaths bounds the paths of one composite operation.
const MaxCompositePaths = 64

// ErrCompositeUnsupported means the device cannot take a composite
// operation: it registered LwM2M 1.0 (or TUP), or lists no SenML format.
var ErrCompositeUnsupported = errors.New("lwm2m: composite operations need an LwM2M 1.1 device with SenML JSON or SenML CBOR")

// compositeMark starts the Path of an Observe-Composite's observation (and
// of its notifications' events); no LwM2M path starts with it.
const compositeMark = "composite:"

// CompositeKey is the Path under which an Observe-Composite of paths is
// kept and its notifications are reported (Event.Path):
// "composite:/3/0/9,/3303/0/5700". Its notifications' payloads name full
// paths: decode them against lwm2m.RootPath.
func CompositeKey(paths []lwm2m.Path) string {
	s := make([]string, len(paths))
	for i, p := range paths {
		s[i] = p.String()
	}
	return compositeMark + strings.Join(s, ",")
}

// CompositePaths returns the paths of a CompositeKey, and false for any
// other path.
func CompositePaths(key string) ([]lwm2m.Path, bool) {
	rest, ok := strings.CutPrefix(key, compositeMark)
	if !ok || rest == "" {
		return nil, false
	}
	var out []lwm2m.Path
	for _, s := range strings.Split(rest, ",") {
		p, err := lwm2m.ParsePath(s)
		if err != nil {
			return nil, false
		}
		out = append(out, p)
	}
	return out, true
}

// compositeFormat checks that the registration r takes composite
// operations and returns the format to use: f when given (SenML JSON or
// CBOR), else SenML CBOR when the registration lists it or lists no
// format, else SenML JSON.
func compositeFormat(op string, r Registration, f lwm2m.Format) (lwm2m.Format, error) {
	if r.TUP || r.Version != "1.1" {
		v := r.Version
		if r.TUP {
			v = "TUP (no LwM2M version)"
		}
		return 0, fmt.Errorf("lwm2m: %s on %q: %w: it registered LwM2M %s", op, r.Endpoint, ErrCompositeUnsupported, v)
	}
	listed := r.Objects.Formats
	has := func(x lwm2m.Format) bool { return len(listed) == 0 || slices.Contains(listed, x) }
	switch f {
	case NoFormat:
		if has(lwm2m.FormatSenMLCBOR) {
			return lwm2m.FormatSenMLCBOR, nil
		}
		if has(lwm2m.FormatSenMLJSON) {
			return lwm2m.FormatSenMLJSON, nil
		}
		return 0, fmt.Errorf("lwm2m: %s on %q: %w: its registration lists the formats %v", op, r.Endpoint, ErrCompositeUnsupported, listed)
	case lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR:
		if !has(f) {
			return 0, fmt.Errorf("lwm2m: %s on %q: %w: its registration lists the formats %v, not %d", op, r.Endpoint, ErrCompositeUnsupported, listed, f)
		}
		return f, nil
	}
	return 0, fmt.Errorf("lwm2m: %s on %q: %w: content format %d is not SenML JSON (110) or SenML CBOR (112)", op, r.Endpoint, ErrCompositeUnsupported, f)
}

// compositeRequest builds the FETCH of paths in format f, or says why it
// cannot be made.
func (s *Server) compositeRequest(op, endpoint string, paths []lwm2m.Path, f lwm2m.Format) (*message.Message, Registration, error) {
	ep := NormalizeEndpoint(endpoint)
	r, ok := s.Registration(ep)
	if !ok {
		return nil, r, fmt.Errorf("lwm2m: %s on %q: %w", op, ep, ErrNotRegistered)
	}
	if err := checkCompositePaths(paths); err != nil {
		return nil, r, fmt.Errorf("lwm2m: %s on %q: %w", op, ep, err)
	}
	f, err := compositeFormat(op, r, f)
	if err != nil {
		return nil, r, err
	}
	m := &message.Message{Code: codes.FETCH}
	setContentFormat(m, f)
	addUint(m, message.Accept, uint32(f))
	m.Payload = encodePathList(f, paths)
	return m, r, nil
}

// checkCompositePaths refuses an empty list, more than MaxCompositePaths
// and the root path.
func checkCompositePaths(paths []lwm2m.Path) error {
	if len(paths) == 0 {
		return errors.New("no path given; a composite operation names 1 to 64 paths")
	}
	if len(paths) > MaxCompositePaths {
		return fmt.Errorf("%d paths given; a composite operation names at most %d", len(paths), MaxCompositePaths)
	}
	for _, p := range paths {
		if p.IsRoot() {
			return errors.New("the root path / cannot be one of a composite operation's paths")
		}
	}
	return nil
}

// ReadComposite reads the values of paths in one request (Read-Composite,
// FETCH /). f is SenML JSON or SenML CBOR, or NoFormat for the one the
// registration calls for; the answer's records name full paths: decode it
// against lwm2m.RootPath.
func (s *Server) ReadComposite(ctx context.Context, endpoint string, paths []lwm2m.Path, f lwm2m.Format) (Content, error) {
	m, r, err := s.compositeRequest("read-composite", endpoint, paths, f)
	if err != nil {
		return Content{}, err
	}
	resp, err := s.request(ctx, "read-composite", r.Endpoint, CompositeKey(paths), m)
	if err != nil {
		return Content{}, err
	}
	return Content{Format: answerFormat(resp, m), Payload: resp.Payload}, nil
}

// answerFormat is the Content-Format of resp, or the one req asked for
// (RFC 7252 §5.10.4: an answer to an Accept is in that format).
func answerFormat(resp, req *message.Message) lwm2m.Format {
	if f := contentFormat(resp); f != cfNone {
		return f
	}
	v, _ := optUint(req, message.Accept)
	return lwm2m.Format(v)
}

// WriteComposite writes recs, resources or resource instances of any
// objects, in one request (Write-Composite, iPATCH /), in SenML JSON or
// CBOR (NoFormat: the registration's).
func (s *Server) WriteComposite(ctx context.Context, endpoint string, recs []lwm2m.Record, f lwm2m.Format) error {
	ep := NormalizeEndpoint(endpoint)
	r, ok := s.Registration(ep)
	if !ok {
		return fmt.Errorf("lwm2m: write-composite on %q: %w", ep, ErrNotRegistered)
	}
	paths := make([]lwm2m.Path, len(recs))
	for i, rec := range recs {
		paths[i] = rec.Path
		if rec.Path.Len() < 3 {
			return fmt.Errorf("lwm2m: write-composite on %q: %s is not a resource or resource instance", ep, rec.Path)
		}
	}
	if err := checkCompositePaths(paths); err != nil {
		return fmt.Errorf("lwm2m: write-composite on %q: %w", ep, err)
	}
	f, err := compositeFormat("write-composite", r, f)
	if err != nil {
		return err
	}
	b, err := lwm2m.Encode(f, lwm2m.RootPath, recs)
	if err != nil {
		return fmt.Errorf("lwm2m: write-composite on %q: %w", ep, err)
	}
	m := &message.Message{Code: codes.IPATCH, Payload: b}
	setContentFormat(m, f)
	_, err = s.request(ctx, "write-composite", ep, CompositeKey(paths), m)
	return err
}

// ObserveComposite observes paths in one observation (Observe-Composite:
// FETCH / with Observe 0) and returns their current values. Its
// notifications arrive as EventNotification with Path CompositeKey(paths).
func (s *Server) ObserveComposite(ctx context.Context, endpoint string, paths []lwm2m.Path, f lwm2m.Format) (Content, error) {
	m, r, err := s.compositeRequest("observe-composite", endpoint, paths, f)
	if err != nil {
		return Content{}, err
	}
	key := CompositeKey(paths)
	tok := newToken()
	accept := answerFormat(&message.Message{}, m)
	o := Observation{Token: tokenKey(tok), Endpoint: r.Endpoint, Path: key, Created: time.Now(), Accept: &accept}
	if err := s.cfg.Observations.PutObservation(o); err != nil {
		return Content{}, fmt.Errorf("lwm2m: storing observation of %s on %q: %w", key, r.Endpoint, err)
	}
	m.Token = tok
	addUint(m, message.Observe, 0)
	resp, err := s.request(ctx, "observe-composite", r.Endpoint, key, m)
	if err != nil {
		_ = s.cfg.Observations.DeleteObservation(o.Token)
		return Content{}, err
	}
	if _, ok := observeOpt(resp); !ok {
		_ = s.cfg.Observations.DeleteObservation(o.Token)
	}
	return Content{Format: answerFormat(resp, m), Payload: resp.Payload}, nil
}

// CancelObserveComposite ends the server's Observe-Composite of paths (the
// same paths in the same order): FETCH / with Observe 1, the
// observation's token and the path list (RFC 7641 §3.6, RFC 8132 §2.3).
// f is the format of the path list (NoFormat: the registration's).
func (s *Server) CancelObserveComposite(ctx context.Context, endpoint string, paths []lwm2m.Path, f lwm2m.Format) error {
	m, r, err := s.compositeRequest("cancel-observe-composite", endpoint, paths, f)
	if err != nil {
		return err
	}
	key := CompositeKey(paths)
	obs, err := s.cfg.Observations.Observations(r.Endpoint)
	if err != nil {
		return fmt.Errorf("lwm2m: cancel-observe-composite %s on %q: %w", key, r.Endpoint, err)
	}
	found := false
	for _, o := range obs {
		if o.Path != key {
			continue
		}
		found = true
		_ = s.cfg.Observations.DeleteObservation(o.Token)
		c := &message.Message{Code: m.Code, Options: slices.Clone(m.Options), Payload: m.Payload}
		c.Token, _ = hexToken(o.Token)
		addUint(c, message.Observe, 1)
		if _, err := s.request(ctx, "cancel-observe-composite", r.Endpoint, key, c); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("lwm2m: cancel-observe-composite %s on %q: %w", key, r.Endpoint, ErrNotFound)
	}
	return nil
}

// encodePathList writes paths as a SenML pack of names only: SenML JSON
// [{"n":"/3/0/9"},…] or SenML CBOR [{0:"/3/0/9"},…] (RFC 8428 §4.5, §6:
// label n is 0).
func encodePathList(f lwm2m.Format, paths []lwm2m.Path) []byte {
	if f == lwm2m.FormatSenMLJSON {
		var b strings.Builder
		b.WriteByte('[')
		for i, p := range paths {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"n":%q}`, p.String())
		}
		b.WriteByte(']')
		return []byte(b.String())
	}
	b := cborHead(nil, 4, uint64(len(paths))) // array
	for _, p := range paths {
		b = append(b, 0xA1, 0x00) // map of one pair, key 0 (n)
		s := p.String()
		b = cborHead(b, 3, uint64(len(s))) // text string
		b = append(b, s...)
	}
	return b
}

// cborHead appends a CBOR head of major type major and argument n (RFC
// 8949 §3).
func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xFF:
		return append(b, m|24, byte(n))
	default:
		return append(b, m|25, byte(n>>8), byte(n))
	}
}
