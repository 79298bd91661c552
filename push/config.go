package push

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Config holds the Engine's settings. The zero value gives the the rules'
// numbers (PSH-4, PSH-7); every field's default is in its comment.
type Config struct {
	// KeepTime is how long an undelivered message is kept and retried
	// before it is dropped. 0 means 10 minutes (FAQ §5.6, §5.15).
	KeepTime time.Duration
	// Timeout bounds one try: connect, send, and the answer's status line
	// and body. 0 means 15 seconds (FAQ §5.6).
	Timeout time.Duration
	// FailureThreshold is the number of failed tries within KeepTime after
	// which a URL is marked invalid. 0 means 10 (FAQ §5.15).
	FailureThreshold int
	// ProbeInterval is how often an invalid URL is probed, with the oldest
	// message it holds. 0 means 30 seconds.
	ProbeInterval time.Duration
	// RetrySchedule is the wait after the 1st, 2nd, … consecutive failure of
	// a valid URL before it is tried again; the last entry repeats. nil
	// means 1s, 5s, 15s, 30s, 60s (10 failures then take about 6 minutes,
	// inside the keep time).
	RetrySchedule []time.Duration
	// EndpointConcurrency bounds the tries in flight to one URL while it
	// answers; a URL that is failing or invalid, or has not answered 2xx
	// since Run started, gets one at a time. 0 means 16.
	EndpointConcurrency int
	// Workers bounds the tries in flight over all URLs. 0 means 128.
	Workers int
	// SubscriptionCache is how long the engine reuses the subscribers it
	// looked up for a report (PublishReport, ReportMessages): a report
	// then costs no Store read. Changes made through this engine show at
	// once; changes another process makes in a shared Store show within
	// this time. 0 means 1 second; negative means no cache.
	SubscriptionCache time.Duration
	// MaxQueued bounds the messages waiting for one URL while Run runs;
	// Publish, PublishReport or Send beyond it fails with ErrQueueFull
	// (before Run nothing is counted). 0 means 100000.
	MaxQueued int

	// Allow lists address prefixes the SSRF guard lets through although
	// they are loopback, link-local or cloud metadata (PSH-2). Tests and
	// the demo allow 127.0.0.1/32. nil allows none of them.
	Allow []netip.Prefix
	// Resolver resolves callback host names at subscription time. nil
	// means net.DefaultResolver.
	Resolver Resolver
	// TLSClientConfig is used for https callback URLs. nil means the
	// system roots.
	TLSClientConfig *tls.Config
	// TLSConfig, when not nil, gives the TLS settings of one application's
	// https pushes (APP-6): typically the system roots plus the CAs the
	// application trusts. It is called before each https try with the
	// message's application (Message.AppID) and must be quick; a nil
	// answer means TLSClientConfig. Return the same *tls.Config while the
	// application's trust is unchanged: the engine keeps one transport per
	// application and starts a new one (closing the old one's idle
	// connections) when the pointer changes, so a connection verified
	// under one application's trust never carries another's pushes. The
	// dial-time SSRF guard applies to every transport. Ignored when
	// Transport is set.
	TLSConfig func(appID string) *tls.Config
	// Transport replaces the engine's own HTTP transport, e.g. with a test
	// double. The dial-time SSRF check lives in the engine's transport, so
	// a replacement must do its own. nil means the engine's transport.
	Transport http.RoundTripper

	// Node names this engine among several that share one Store (a
	// platform node id, stable across restarts). When set, the Store must
	// implement Claimer, and the engine delivers only the messages it
	// holds a lease on: those it stored itself (claimed as it stores
	// them), and those it claims every ClaimLease/4 — messages nobody
	// holds, or whose holder's lease ended (a dead node's), or its own
	// from before a restart. Leases are renewed every ClaimLease/4; a try
	// starts only if it ends (Timeout) before the leases may. "" means
	// one node: Run loads the whole outbox.
	Node string
	// ClaimLease is how long a lease lasts: a dead node's messages are
	// delivered by another node within about ClaimLease and a quarter. It
	// must exceed twice Timeout. 0 means 4×Timeout, at least 1 minute.
	ClaimLease time.Duration
	// ClaimBatch bounds the messages one claim takes. 0 means 1000.
	ClaimBatch int

	// Listener hears about every message dropped undelivered. nil means none.
	Listener Listener
	// Logger receives state changes and drops. nil discards.
	Logger *slog.Logger
}

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Listener is told about every message that leaves the outbox without a
// 2xx answer: err wraps ErrExpired (keep time over) or ErrRejected (a final
// answer, then it is a *StatusError), or ErrAddressDenied (the dial-time
// guard refused the address). Calls come from the engine's goroutines, one
// at a time per message; they must not block for long, and must not call
// Engine.Close (which waits for those goroutines).
type Listener interface {
	Dropped(m Message, err error)
}

// EndpointListener is an optional extension of Listener: if the Listener
// implements it, it is told when a URL turns invalid or valid again.
type EndpointListener interface {
	EndpointChanged(s EndpointState)
}

// DeliveryListener is an optional extension of Listener: if the Listener
// implements it, it is told about every message answered with a 2xx.
type DeliveryListener interface {
	Delivered(m Message)
}

func (c Config) withDefaults() (Config, error) {
	if c.KeepTime == 0 {
		c.KeepTime = 10 * time.Minute
	}
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	if c.FailureThreshold == 0 {
		c.FailureThreshold = 10
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = 30 * time.Second
	}
	if c.RetrySchedule == nil {
		c.RetrySchedule = []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute}
	}
	if c.EndpointConcurrency == 0 {
		c.EndpointConcurrency = 16
	}
	if c.Workers == 0 {
		c.Workers = 128
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = 100000
	}
	if c.ClaimLease == 0 {
		c.ClaimLease = max(time.Minute, 4*c.Timeout)
	}
	if c.ClaimBatch == 0 {
		c.ClaimBatch = 1000
	}
	if c.SubscriptionCache == 0 {
		c.SubscriptionCache = time.Second
	}
	switch {
	case c.KeepTime < 0:
		return c, fmt.Errorf("push: Config.KeepTime %v is negative", c.KeepTime)
	case c.Timeout < 0:
		return c, fmt.Errorf("push: Config.Timeout %v is negative", c.Timeout)
	case c.FailureThreshold < 0:
		return c, fmt.Errorf("push: Config.FailureThreshold %d is negative", c.FailureThreshold)
	case c.ProbeInterval < 0:
		return c, fmt.Errorf("push: Config.ProbeInterval %v is negative", c.ProbeInterval)
	case len(c.RetrySchedule) == 0:
		return c, fmt.Errorf("push: Config.RetrySchedule is empty; leave it nil for the default")
	case c.EndpointConcurrency < 0 || c.Workers < 0 || c.MaxQueued < 0:
		return c, fmt.Errorf("push: Config.EndpointConcurrency, Workers and MaxQueued must not be negative")
	}
	if err := c.checkClaim(); err != nil {
		return c, err
	}
	for i, d := range c.RetrySchedule {
		if d < 0 {
			return c, fmt.Errorf("push: Config.RetrySchedule[%d] %v is negative", i, d)
		}
	}
	for i, p := range c.Allow {
		if !p.IsValid() {
			return c, fmt.Errorf("push: Config.Allow[%d] is not a valid prefix", i)
		}
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Backoff returns the wait after the n-th consecutive failure (n ≥ 1) of a
// valid URL: RetrySchedule[n-1], the last entry once n passes its end.
func (c Config) Backoff(n int) time.Duration {
	s := c.RetrySchedule
	if len(s) == 0 {
		return 0
	}
	if n < 1 {
		n = 1
	}
	if n > len(s) {
		n = len(s)
	}
	return s[n-1]
}
