package transport

import (
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Security says how a device must connect (SEC-1).
type Security uint8

// The transports a device may use.
const (
	SecurityUnknown Security = iota // not a device of this server: refused on every transport
	SecurityPSK                     // DTLS with its pre-shared key only
	SecurityNone                    // plain CoAP only (networks that secure the link themselves)
)

// String returns "unknown", "PSK" or "none".
func (s Security) String() string {
	switch s {
	case SecurityPSK:
		return "PSK"
	case SecurityNone:
		return "none"
	default:
		return "unknown"
	}
}

// EndpointPolicy tells the server which endpoints may register and over which transport.
// The caller implements it (like KeyStore). Endpoint names arrive normalized (NormalizeEndpoint).
// The server asks it for every registration, and over plain CoAP also for
// the notifications and Sends it takes: it must be fast and safe for
// concurrent use.
type EndpointPolicy interface {
	EndpointSecurity(endpoint string) Security
}

var _ EndpointPolicy = EndpointPolicyFunc(nil)

// EndpointPolicyFunc adapts a function.
type EndpointPolicyFunc func(endpoint string) Security

// EndpointSecurity implements EndpointPolicy.
func (f EndpointPolicyFunc) EndpointSecurity(endpoint string) Security { return f(endpoint) }

// security is the policy's answer for ep; without a Policy every endpoint
// is SecurityPSK: a DTLS peer proves itself with its key (KeyStore) and
// plain CoAP serves nobody.
func (s *Server) security(ep string) Security {
	if s.cfg.Policy == nil {
		return SecurityPSK
	}
	return s.cfg.Policy.EndpointSecurity(ep)
}

// admit decides, before anything is kept, whether sess may bind endpoint ep
// (register, update, de-register, TUP register): the endpoint's Security
// must allow the session's transport (SEC-1). It returns nil when it may,
// or the answer: 4.01 Unauthorized for a PSK device over plain CoAP (it
// must use DTLS), 4.03 Forbidden for an endpoint the server does not know
// or one that may not use this transport. op names the operation in the
// diagnostic payload. Refusals are logged aggregated (see floodLog).
func (s *Server) admit(sess *session, op, ep string) *message.Message {
	sec := s.security(ep)
	var r *message.Message
	switch {
	case sess.secure && sec == SecurityPSK, !sess.secure && sec == SecurityNone:
		return nil
	case !sess.secure && sec == SecurityPSK:
		r = errResp(codes.Unauthorized, "%s: endpoint %q must connect over DTLS with its pre-shared key", op, ep)
	case sess.secure && sec == SecurityNone:
		r = errResp(codes.Forbidden, "%s: endpoint %q may use plain CoAP only, not DTLS", op, ep)
	default:
		r = errResp(codes.Forbidden, "%s: endpoint %q is not a device of this server", op, ep)
	}
	s.floods.note("refused", "lwm2m: registration refused by the endpoint policy (SEC-1)",
		"op", op, "endpoint", ep, "security", sec.String(), "dtls", sess.secure, "addr", sess.remoteAddr().String())
	return r
}
