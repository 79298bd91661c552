package transport

import (
	"errors"
	"fmt"
)

// Errors of the server, the client and the exchange layer (package lwm2m
// has those of the object model). Callers branch on them with errors.Is.
var (
	// ErrClosed is returned by operations on a closed Server, Client or session.
	ErrClosed = errors.New("lwm2m: closed")
	// ErrNotRegistered means the endpoint has no current registration.
	ErrNotRegistered = errors.New("lwm2m: endpoint not registered")
	// ErrSleeping means the device is in queue mode and its awake window has
	// passed; the request was not sent (LWM-8). Wait for a Woke event.
	ErrSleeping = errors.New("lwm2m: device is sleeping (queue mode, outside its awake window)")
	// ErrTimeout means a confirmable message got no answer after the last
	// retransmission and the give-up wait (LWM-9).
	ErrTimeout = errors.New("lwm2m: no answer after the last retransmission")
	// ErrUnknownIdentity means a PSK identity is not in the KeyStore.
	ErrUnknownIdentity = errors.New("lwm2m: unknown PSK identity")
	// ErrNotFound is returned by stores for a missing record.
	ErrNotFound = errors.New("lwm2m: not found")
	// ErrConfig wraps every configuration error of New and Dial.
	ErrConfig = errors.New("lwm2m: invalid configuration")
	// ErrReset means the peer answered with a CoAP Reset.
	ErrReset = errors.New("lwm2m: peer answered with Reset")
	// ErrUnreachable means the device's registration has no live session
	// (its DTLS connection ended); it must connect again.
	ErrUnreachable = errors.New("lwm2m: device has no live session")
)

var errReset = ErrReset

// ResponseError is a CoAP error response to a request: what was asked, of
// which endpoint and path, and the code that came back.
type ResponseError struct {
	Op       string // "read", "write", "register", …
	Endpoint string
	Path     string
	Code     Code
	Message  string // diagnostic payload, if the peer sent one
}

func (e *ResponseError) Error() string {
	s := fmt.Sprintf("lwm2m: %s %s on %q: peer answered %s", e.Op, e.Path, e.Endpoint, e.Code)
	if e.Message != "" {
		s += " (" + e.Message + ")"
	}
	return s
}

// CodeText returns the code as CoAP writes it: "4.00".
func (e *ResponseError) CodeText() string { return e.Code.String() }

// ClientError reports whether the code is of class 4 (RFC 7252 §5.9.2,
// Client Error): the peer refuses the request as sent, and sending it
// again will not change that. Class 5 (Server Error) may pass.
func (e *ResponseError) ClientError() bool { return e.Code>>5 == 4 }

// ConfigError says which configuration field is wrong and what is allowed.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("lwm2m: config %s: %s", e.Field, e.Problem)
}

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }
