package registry

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Sentinel errors. Callers branch on them with errors.Is; the registry
// usually returns them wrapped in a *FieldError that says which input was
// wrong and what is allowed.
var (
	// ErrNotFound means no device has the given deviceId or nodeId (or it
	// was deleted, REG-5).
	ErrNotFound = errors.New("registry: device not found")
	// ErrInvalid means an input broke a rule of REG-1…REG-4: a missing or
	// too long field, a malformed PSK, a timeout out of range, bad paging.
	ErrInvalid = errors.New("registry: invalid input")
	// ErrNodeIDTaken means another device already has this nodeId (§3.3);
	// "urn:imei:X" and "X" count as the same nodeId.
	ErrNodeIDTaken = errors.New("registry: nodeId already registered")
	// ErrExists means a Store was asked to create a device whose deviceId
	// it already holds.
	ErrExists = errors.New("registry: deviceId already exists")
	// ErrUnknownProduct means deviceInfo names no product of the catalog
	// (§3.19, §8.8).
	ErrUnknownProduct = errors.New("registry: no such product in the catalog")
	// ErrGroupNotFound means no group has the given id.
	ErrGroupNotFound = errors.New("registry: group not found")
	// ErrGroupExists means a group with this name (or id) already exists.
	ErrGroupExists = errors.New("registry: group already exists")
	// ErrGatewayNotFound means gatewayId names no device, or a device that
	// is not a GATEWAY.
	ErrGatewayNotFound = errors.New("registry: gateway not found")
	// ErrHasSubDevices means a Store refused to delete a gateway that still
	// has sub-devices. Registry.Delete deletes the sub-devices first.
	ErrHasSubDevices = errors.New("registry: gateway still has sub-devices")
	// ErrBadCredential means a connecting device presented a verifyCode or
	// PSK that does not match the registration. The message never
	// contains either secret.
	ErrBadCredential = errors.New("registry: credentials do not match")
	// ErrWrongTransport means a device tried to connect over a transport
	// its registration does not allow (SEC-1): a SecurityPSK device over
	// plain CoAP, or a SecurityNone device over DTLS.
	ErrWrongTransport = errors.New("registry: transport not allowed for this device")
	// ErrNotBound means the device has not bound yet (it never connected
	// with its credentials), so it cannot report.
	ErrNotBound = errors.New("registry: device has not bound")
	// ErrExpired means the binding timeout passed before the device bound;
	// the registration is (about to be) deleted (REG-2).
	ErrExpired = errors.New("registry: registration expired before the device bound")
	// ErrClosed means the Registry was used after Close, or Run was called
	// twice.
	ErrClosed = errors.New("registry: closed")
)

// FieldError says which input field was wrong, the offending value (never
// for secrets), and the rule it broke. Err is one of the sentinels above.
type FieldError struct {
	Field string // input field, as the API names it: "nodeId", "deviceInfo.model", "timeout", "psk", …
	Value string // offending value; empty for secrets (psk, verifyCode)
	Rule  string // what is allowed, in words
	Err   error  // sentinel: ErrInvalid, ErrNodeIDTaken, ErrNotFound, …
}

// maxShown bounds how much of an offending value an error message repeats.
const maxShown = 64

// Error says field, value and rule: `registry: nodeId "x": must …`.
func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("registry: %s: %s", e.Field, e.Rule)
	}
	v := e.Value
	if utf8.RuneCountInString(v) > maxShown {
		r := []rune(v)
		v = string(r[:maxShown]) + "…"
	}
	return fmt.Sprintf("registry: %s %q: %s", e.Field, v, e.Rule)
}

// Unwrap returns the sentinel.
func (e *FieldError) Unwrap() error { return e.Err }

func invalid(field, value, rule string) *FieldError {
	return &FieldError{Field: field, Value: value, Rule: rule, Err: ErrInvalid}
}
