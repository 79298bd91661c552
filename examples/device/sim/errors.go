package sim

import (
	"errors"
	"fmt"
)

var (
	// ErrConfig is wrapped by every *ConfigError.
	ErrConfig = errors.New("sim: invalid configuration")
	// ErrNotRunning is returned by Device.Report when Run is not running
	// (not started yet, or ended).
	ErrNotRunning = errors.New("sim: device not running")
	// ErrClosed is wrapped by the error of a Device's second Run: a Device
	// runs once.
	ErrClosed = errors.New("sim: device has run")
	// ErrNoObserver means a TUP device cannot report because the server
	// has not observed /t/d (yet).
	ErrNoObserver = errors.New("sim: the server does not observe the uplink resource")
	// ErrAPI is wrapped by every *APIError.
	ErrAPI = errors.New("sim: platform API call failed")
)

// ConfigError says which setting is wrong, its value and what is allowed.
type ConfigError struct {
	Field   string
	Value   string
	Problem string
}

// Error returns e.g. `sim: Mode "sleepy": allowed: psm, drx, edrx`.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("sim: %s %q: %s", e.Field, e.Value, e.Problem)
}

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

// APIError is an error answer of the platform's REST API: the call, the
// HTTP status and the body's error_code and error_desc when it had them.
type APIError struct {
	Call   string // e.g. "POST /iocm/app/sec/v1.1.0/login"
	Status int
	Code   string
	Desc   string
}

// Error returns e.g. "sim: POST /iocm/…/deviceCredentials: 409 (device.exists: …)".
func (e *APIError) Error() string {
	if e.Code == "" && e.Desc == "" {
		return fmt.Sprintf("sim: %s: HTTP %d", e.Call, e.Status)
	}
	return fmt.Sprintf("sim: %s: HTTP %d (%s: %s)", e.Call, e.Status, e.Code, e.Desc)
}

// Unwrap returns ErrAPI.
func (e *APIError) Unwrap() error { return ErrAPI }
