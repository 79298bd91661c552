package push

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Errors of callback URL validation (PSH-2). Each broken rule has its own
// sentinel, returned wrapped in a *URLError that names the URL.
var (
	// ErrURLTooLong means the callback URL is longer than MaxURLLength
	// (2,048 bytes, SEC-3).
	ErrURLTooLong = errors.New("push: callback URL is too long (at most 2048 bytes)")
	// ErrURLSyntax means the callback URL does not parse as a URL at all.
	ErrURLSyntax = errors.New("push: callback URL is not a valid URL")
	// ErrURLScheme means the scheme is neither http nor https.
	ErrURLScheme = errors.New("push: callback URL scheme must be http or https")
	// ErrURLNoHost means the URL names no host (IP address or domain name).
	ErrURLNoHost = errors.New("push: callback URL has no host")
	// ErrURLNoPort means the URL has no explicit port, as in http://IP/path.
	ErrURLNoPort = errors.New("push: callback URL has no port (write http://host:port/path)")
	// ErrURLNoPath means the URL has no path, as in http://IP:PORT; "/" is enough.
	ErrURLNoPath = errors.New("push: callback URL has no path (end it with / at least)")
	// ErrURLUserInfo means the URL carries user:password@, which pushes never send.
	ErrURLUserInfo = errors.New("push: callback URL must not carry user info")
	// ErrAddressDenied means the host is, or resolves to, a loopback,
	// link-local, unspecified, multicast or cloud-metadata address (or an
	// IPv6 address embedding one, see DeniedReason) that the allow-list
	// (Config.Allow) does not cover (PSH-2, SSRF guard).
	ErrAddressDenied = errors.New("push: callback address is not allowed")
	// ErrResolve means the callback URL's host name did not resolve.
	ErrResolve = errors.New("push: callback host does not resolve")
)

// Errors of subscriptions and sending.
var (
	// ErrNotFound means no subscription has the given id.
	ErrNotFound = errors.New("push: subscription not found")
	// ErrNotifyType means the notify type is not one of PSH-1.
	ErrNotifyType = errors.New("push: unknown notify type")
	// ErrOriginConflict means a callback URL's host and port differ from
	// those of the application's other subscriptions (PSH-2, CMD-6); the
	// platform answers 403 "callback address conflict".
	ErrOriginConflict = errors.New("push: callback address conflict")
	// ErrQueueFull means an endpoint already holds Config.MaxQueued messages.
	ErrQueueFull = errors.New("push: endpoint queue is full")
	// ErrClosed means the Engine was closed, or Run was called twice.
	ErrClosed = errors.New("push: engine closed")
	// ErrSecret means a subscription secret is malformed (whsec_ prefix
	// followed by something that is not base64, or an empty key).
	ErrSecret = errors.New("push: bad webhook secret")
	// ErrSignature means a push's Standard Webhooks signature did not verify.
	ErrSignature = errors.New("push: webhook signature does not verify")
)

// Reasons a message leaves the outbox undelivered, as reported to
// Listener.Dropped.
var (
	// ErrExpired means the keep time (Config.KeepTime, 10 min) ended before
	// any try succeeded (PSH-4). The Dropped error wraps it together with the
	// last try's error.
	ErrExpired = errors.New("push: keep time ended before delivery")
	// ErrRejected means the endpoint gave a final answer that is neither
	// 2xx nor retryable (not 501–504): the message is not tried again. The
	// Dropped error is a *StatusError wrapping it.
	ErrRejected = errors.New("push: endpoint rejected the message")
)

// maxQuoted bounds how much of a URL an error message quotes.
const maxQuoted = 120

// URLError says which callback URL broke which rule of PSH-2. Its message
// quotes at most the first 120 bytes of the URL.
type URLError struct {
	URL    string // the URL as given
	Detail string // extra context, e.g. the denied address; may be empty
	Err    error  // one of the ErrURL… sentinels, ErrAddressDenied or ErrResolve
}

// Error implements error.
func (e *URLError) Error() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	b.WriteString(": ")
	if len(e.URL) > maxQuoted {
		fmt.Fprintf(&b, "%q… (%d bytes)", e.URL[:maxQuoted], len(e.URL))
	} else {
		fmt.Fprintf(&b, "%q", e.URL)
	}
	if e.Detail != "" {
		b.WriteString(" (")
		b.WriteString(e.Detail)
		b.WriteString(")")
	}
	b.WriteString("; want http(s)://host:port/path")
	return b.String()
}

// Unwrap returns the sentinel the error wraps.
func (e *URLError) Unwrap() error { return e.Err }

// NotifyTypeError names the unknown notify type and lists the allowed ones.
type NotifyTypeError struct {
	NotifyType string
}

// Error implements error.
func (e *NotifyTypeError) Error() string {
	names := make([]string, len(notifyTypes))
	for i, t := range notifyTypes {
		names[i] = string(t)
	}
	return fmt.Sprintf("push: unknown notify type %q; allowed: %s", e.NotifyType, strings.Join(names, ", "))
}

// Unwrap returns the sentinel the error wraps.
func (e *NotifyTypeError) Unwrap() error { return ErrNotifyType }

// OriginError says that a callback URL's host:port differs from the one the
// application already uses.
type OriginError struct {
	AppID string
	URL   string // the refused URL
	Got   string // its host:port
	Want  string // host:port of the application's subscriptions
}

// Error implements error.
func (e *OriginError) Error() string {
	return fmt.Sprintf("push: callback address conflict: %q uses %s, but application %q subscribes with %s; all callback URLs of one application share host and port",
		e.URL, e.Got, e.AppID, e.Want)
}

// Unwrap returns the sentinel the error wraps.
func (e *OriginError) Unwrap() error { return ErrOriginConflict }

// StatusError is a try answered with an HTTP status that is not 2xx.
type StatusError struct {
	URL  string
	Code int
	Err  error // ErrRejected for a final answer, nil for 501–504 (retried)
}

// Error implements error.
func (e *StatusError) Error() string {
	s := fmt.Sprintf("push: %s answered HTTP %d", e.URL, e.Code)
	if e.Err != nil {
		s += " (final, not retried)"
	}
	return s
}

// Unwrap returns the sentinel the error wraps.
func (e *StatusError) Unwrap() error { return e.Err }

// QueueFullError names the endpoint whose queue is full and its limit.
type QueueFullError struct {
	URL   string
	Limit int
}

// Error implements error.
func (e *QueueFullError) Error() string {
	return fmt.Sprintf("push: queue of %s is full (%d messages, Config.MaxQueued)", e.URL, e.Limit)
}

// Unwrap returns the sentinel the error wraps.
func (e *QueueFullError) Unwrap() error { return ErrQueueFull }

// CertificateError means the certificate an https callback server
// presented did not verify: it does not name the URL's host, has expired,
// or chains to no root the message's application trusts (the system roots
// and, with Config.TLSConfig, the application's own CAs; APP-6). The try
// counts as failed and is retried, so that a push waits for the
// application to upload its CA; the text is the endpoint's LastError.
type CertificateError struct {
	URL   string // the callback URL
	AppID string // the application whose trust was used
	Err   error  // the *tls.CertificateVerificationError
}

func (e *CertificateError) Error() string {
	host := e.URL
	if u, err := url.Parse(e.URL); err == nil {
		host = u.Host
	}
	return fmt.Sprintf("push: the TLS certificate of callback server %s is not trusted for application %q: %v "+
		"(it must name the host and chain to a system root or to a CA the application trusts)", host, e.AppID, e.Err)
}

func (e *CertificateError) Unwrap() error { return e.Err }
