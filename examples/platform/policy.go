package main

import (
	"context"
	"errors"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/registry"
)

// endpointPolicy tells the lwm2m server which transport each endpoint may
// use, from the registry (SEC-1): a device registered with a PSK only
// DTLS, one registered with security NONE only plain CoAP, and an endpoint
// the registry does not know (or whose binding timeout passed) nothing.
// The server asks before it keeps anything for the endpoint, so an
// impostor who knows a meter's IMEI cannot register in its name over plain
// CoAP, and the registry refuses such a binding as well
// (registry.ErrWrongTransport).
type endpointPolicy struct{ p *Platform }

var _ transport.EndpointPolicy = endpointPolicy{}

func (e endpointPolicy) EndpointSecurity(endpoint string) transport.Security {
	s, err := e.p.reg.Security(context.Background(), endpoint)
	switch {
	case errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrExpired):
		return transport.SecurityUnknown
	case err != nil:
		// The store failed: refuse rather than guess; the device retries.
		e.p.logger.Error("endpoint security lookup failed; registration refused", "err", err)
		return transport.SecurityUnknown
	case s == registry.SecurityNone:
		return transport.SecurityNone
	}
	return transport.SecurityPSK
}
