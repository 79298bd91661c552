package transport

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Content is a payload with its CoAP Content-Format number (0 text, 40 link,
// 42 opaque, 11542 TLV, 11543 LwM2M JSON, 110 SenML JSON, 112 SenML CBOR).
type Content struct {
	Format  lwm2m.Format
	Payload []byte
}

// Registration returns the endpoint's current registration.
func (s *Server) Registration(endpoint string) (Registration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regs[NormalizeEndpoint(endpoint)]
	if r == nil {
		return Registration{}, false
	}
	return r.Registration, true
}

// Registrations returns every current registration.
func (s *Server) Registrations() []Registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Registration, 0, len(s.regs))
	for _, r := range s.regs {
		out = append(out, r.Registration)
	}
	return out
}

// SetTransmission sets the retransmission profile for requests to one
// device (LWM-9); it applies from the next request and across
// re-registrations.
func (s *Server) SetTransmission(endpoint string, t Transmission) {
	ep := NormalizeEndpoint(endpoint)
	s.mu.Lock()
	s.trans[ep] = t
	if r := s.regs[ep]; r != nil && r.sess != nil {
		r.sess.ex.setTransmission(t)
	}
	s.mu.Unlock()
}

func newRequest(code codes.Code, path string) *message.Message {
	m := &message.Message{Code: code}
	addPath(m, message.URIPath, path)
	return m
}

// request sends m to the device and returns its success response. It fails
// at once with ErrSleeping for a sleeping queue-mode device (LWM-8).
func (s *Server) request(ctx context.Context, op, endpoint, path string, m *message.Message) (*message.Message, error) {
	ep := NormalizeEndpoint(endpoint)
	s.mu.Lock()
	r := s.regs[ep]
	if r == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("lwm2m: %s %s on %q: %w", op, path, ep, ErrNotRegistered)
	}
	snap, sess := r.Registration, r.sess
	s.mu.Unlock()
	if !snap.Awake(time.Now()) {
		return nil, fmt.Errorf("lwm2m: %s %s on %q: %w", op, path, ep, ErrSleeping)
	}
	if sess == nil || sess.isClosed() {
		return nil, fmt.Errorf("lwm2m: %s %s on %q: %w", op, path, ep, ErrUnreachable)
	}
	resp, err := sess.ex.doBlocks(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("lwm2m: %s %s on %q: %w", op, path, ep, err)
	}
	if resp.Code >= 128 {
		return nil, &ResponseError{Op: op, Endpoint: ep, Path: path, Code: Code(resp.Code), Message: string(resp.Payload)}
	}
	if m.Code == codes.GET && !m.Options.HasOption(message.Observe) {
		return s.restOfBlocks(ctx, op, ep, path, sess, m, resp)
	}
	return resp, nil
}

// maxBlockwiseBody caps a body fetched block by block.
const maxBlockwiseBody = 1 << 20

// restOfBlocks fetches the remaining Block2 blocks (RFC 7959) of a GET
// whose first answer carried Block2 with more set, and returns the answer
// with the whole body.
func (s *Server) restOfBlocks(ctx context.Context, op, ep, path string, sess *session, m, resp *message.Message) (*message.Message, error) {
	v, ok := optUint(resp, message.Block2)
	if !ok {
		return resp, nil
	}
	b, err := parseBlock(v)
	if err != nil {
		return nil, fmt.Errorf("lwm2m: %s %s on %q: device's Block2: %w", op, path, ep, err)
	}
	body := append([]byte(nil), resp.Payload...)
	for b.more {
		if len(body) > maxBlockwiseBody {
			return nil, fmt.Errorf("lwm2m: %s %s on %q: body larger than %d bytes", op, path, ep, maxBlockwiseBody)
		}
		next := &message.Message{Code: m.Code}
		for _, o := range m.Options {
			if o.ID != message.Block2 {
				next.Options = next.Options.Add(o)
			}
		}
		want := blockOpt{num: uint32(len(body) / b.size()), szx: b.szx}
		addUint(next, message.Block2, want.value())
		r, err := sess.ex.do(ctx, next, true)
		if err != nil {
			return nil, fmt.Errorf("lwm2m: %s %s on %q, block %d: %w", op, path, ep, want.num, err)
		}
		if r.Code >= 128 {
			return nil, &ResponseError{Op: op, Endpoint: ep, Path: path, Code: Code(r.Code), Message: string(r.Payload)}
		}
		v, ok := optUint(r, message.Block2)
		if !ok {
			return nil, fmt.Errorf("lwm2m: %s %s on %q: block %d came without Block2", op, path, ep, want.num)
		}
		if b, err = parseBlock(v); err != nil {
			return nil, fmt.Errorf("lwm2m: %s %s on %q: device's Block2: %w", op, path, ep, err)
		}
		if b.num != want.num {
			return nil, fmt.Errorf("lwm2m: %s %s on %q: asked for block %d, got %d", op, path, ep, want.num, b.num)
		}
		body = append(body, r.Payload...)
	}
	resp.Payload = body
	return resp, nil
}

// Read reads path ("/3/0/0", "/3/0", "/3") from the device (LWM-7).
// accept is the wanted Content-Format, or NoFormat for the device's choice.
//
// A 2.05 that names no Content-Format is in the format asked for: RFC 7252
// §5.10.4 lets a server answer an Accept only in that format (or 4.06), and
// §5.5.1 has the client infer a missing format from the context. Clients
// written to the LwM2M 1.0 drafts, where text was the default, leave it
// out (Telefonica's lwm2m-node-lib). Without an Accept nothing is
// inferred: the Content's Format stays NoFormat.
func (s *Server) Read(ctx context.Context, endpoint, path string, accept lwm2m.Format) (Content, error) {
	m := newRequest(codes.GET, path)
	if accept != cfNone {
		addUint(m, message.Accept, uint32(accept))
	}
	resp, err := s.request(ctx, "read", endpoint, path, m)
	if err != nil {
		return Content{}, err
	}
	f := contentFormat(resp)
	if f == cfNone {
		f = accept
	}
	return Content{Format: f, Payload: resp.Payload}, nil
}

// Write replaces path with c (PUT, LWM-7).
func (s *Server) Write(ctx context.Context, endpoint, path string, c Content) error {
	m := newRequest(codes.PUT, path)
	setContentFormat(m, c.Format)
	m.Payload = c.Payload
	_, err := s.request(ctx, "write", endpoint, path, m)
	return err
}

// WritePartial updates the resources of an object instance given in c
// (POST, LWM-7 partial update).
func (s *Server) WritePartial(ctx context.Context, endpoint, path string, c Content) error {
	m := newRequest(codes.POST, path)
	setContentFormat(m, c.Format)
	m.Payload = c.Payload
	_, err := s.request(ctx, "write-partial", endpoint, path, m)
	return err
}

// Execute executes the resource at path with optional arguments (LWM-7).
func (s *Server) Execute(ctx context.Context, endpoint, path string, args []byte) error {
	m := newRequest(codes.POST, path)
	if len(args) > 0 {
		setContentFormat(m, cfText)
		m.Payload = args
	}
	_, err := s.request(ctx, "execute", endpoint, path, m)
	return err
}

// Create creates an object instance under objectPath ("/5") and returns the
// new instance's path from the Location-Path, if the device sent one.
func (s *Server) Create(ctx context.Context, endpoint, objectPath string, c Content) (string, error) {
	m := newRequest(codes.POST, objectPath)
	setContentFormat(m, c.Format)
	m.Payload = c.Payload
	resp, err := s.request(ctx, "create", endpoint, objectPath, m)
	if err != nil {
		return "", err
	}
	var loc strings.Builder
	for _, o := range resp.Options {
		if o.ID == message.LocationPath {
			loc.WriteByte('/')
			loc.Write(o.Value)
		}
	}
	return loc.String(), nil
}

// Delete deletes the object instance at path (LWM-7).
func (s *Server) Delete(ctx context.Context, endpoint, path string) error {
	_, err := s.request(ctx, "delete", endpoint, path, newRequest(codes.DELETE, path))
	return err
}

// Discover returns the CoRE link-format description of path (LWM-7).
func (s *Server) Discover(ctx context.Context, endpoint, path string) (string, error) {
	m := newRequest(codes.GET, path)
	addUint(m, message.Accept, uint32(cfLink))
	resp, err := s.request(ctx, "discover", endpoint, path, m)
	if err != nil {
		return "", err
	}
	return string(resp.Payload), nil
}

// WriteAttributes sets notification attributes on path, each "name=value"
// ("pmin=10", "pmax=3600") or a bare name to clear it (LWM-7).
func (s *Server) WriteAttributes(ctx context.Context, endpoint, path string, attrs ...string) error {
	m := newRequest(codes.PUT, path)
	for _, a := range attrs {
		addQuery(m, a)
	}
	_, err := s.request(ctx, "write-attributes", endpoint, path, m)
	return err
}

// Observe starts observing path on the device and returns its current value
// (LWM-7). Notifications arrive as EventNotification (EventUplink for
// /19/0/0 and /t/d).
func (s *Server) Observe(ctx context.Context, endpoint, path string) (Content, error) {
	ep := NormalizeEndpoint(endpoint)
	s.mu.Lock()
	r := s.regs[ep]
	s.mu.Unlock()
	if r == nil {
		return Content{}, fmt.Errorf("lwm2m: observe %s on %q: %w", path, ep, ErrNotRegistered)
	}
	return s.observe(ctx, r, path, NoFormat)
}

// ObserveAccept is Observe asking for the values in Content-Format accept
// (the Accept option; NoFormat: the device's choice). The observation
// keeps it: a notification that names no Content-Format (as some clients
// send them) is taken to be in accept, as the answer to a Read is.
func (s *Server) ObserveAccept(ctx context.Context, endpoint, path string, accept lwm2m.Format) (Content, error) {
	ep := NormalizeEndpoint(endpoint)
	s.mu.Lock()
	r := s.regs[ep]
	s.mu.Unlock()
	if r == nil {
		return Content{}, fmt.Errorf("lwm2m: observe %s on %q: %w", path, ep, ErrNotRegistered)
	}
	return s.observe(ctx, r, path, accept)
}

func (s *Server) observe(ctx context.Context, r *registration, path string, accept lwm2m.Format) (Content, error) {
	tok := newToken()
	o := Observation{Token: tokenKey(tok), Endpoint: r.Endpoint, Path: path, Created: time.Now()}
	if accept != NoFormat {
		o.Accept = &accept
	}
	if err := s.cfg.Observations.PutObservation(o); err != nil {
		return Content{}, fmt.Errorf("lwm2m: storing observation of %s on %q: %w", path, r.Endpoint, err)
	}
	m := newRequest(codes.GET, path)
	m.Token = tok
	addUint(m, message.Observe, 0)
	if accept != NoFormat {
		addUint(m, message.Accept, uint32(accept))
	}
	resp, err := s.request(ctx, "observe", r.Endpoint, path, m)
	if err != nil {
		_ = s.cfg.Observations.DeleteObservation(o.Token)
		return Content{}, err
	}
	if _, ok := observeOpt(resp); !ok {
		_ = s.cfg.Observations.DeleteObservation(o.Token)
	}
	f := contentFormat(resp)
	if f == cfNone {
		f = accept
	}
	return Content{Format: f, Payload: resp.Payload}, nil
}

// CancelObserve ends the server's observations of path on the device (GET
// with Observe=1, LWM-7).
func (s *Server) CancelObserve(ctx context.Context, endpoint, path string) error {
	ep := NormalizeEndpoint(endpoint)
	obs, err := s.cfg.Observations.Observations(ep)
	if err != nil {
		return fmt.Errorf("lwm2m: cancel-observe %s on %q: %w", path, ep, err)
	}
	found := false
	for _, o := range obs {
		if o.Path != path {
			continue
		}
		found = true
		_ = s.cfg.Observations.DeleteObservation(o.Token)
		m := newRequest(codes.GET, path)
		m.Token, _ = hexToken(o.Token)
		addUint(m, message.Observe, 1)
		if _, err := s.request(ctx, "cancel-observe", ep, path, m); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("lwm2m: cancel-observe %s on %q: %w", path, ep, ErrNotFound)
	}
	return nil
}

// decode turns a device's payload for base into records with the object
// model's content formats and the server's Objects.
func (s *Server) decode(c Content, base lwm2m.Path) ([]lwm2m.Record, error) {
	return lwm2m.Decode(c.Format, base, c.Payload, s.cfg.Model)
}

// ReadRecords reads path and decodes the answer into records (LWM-7).
func (s *Server) ReadRecords(ctx context.Context, endpoint, path string) ([]lwm2m.Record, error) {
	p, err := lwm2m.ParsePath(path)
	if err != nil {
		return nil, err
	}
	c, err := s.Read(ctx, endpoint, path, NoFormat)
	if err != nil {
		return nil, err
	}
	return s.decode(c, p)
}
