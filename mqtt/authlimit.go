package mqtt

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/doze-io/doze/internal/source"
	"golang.org/x/time/rate"
)

// AuthLimit is a budget of failed authentications: a token bucket of
// Burst tokens, one more every Every. A failure spends a token; while
// none is left, every CONNECT is refused unchecked.
type AuthLimit struct {
	Burst int
	Every time.Duration
}

// Default failure budgets (package doc): a device may fail 10 times at
// once, then once every 6 s (about 10 guesses a minute, as the HTTP
// login of an app); a source address (an IPv6 /64) 100 times at once,
// then once a second, so that many devices behind one NAT, a few of them
// misconfigured, still connect.
var (
	DefaultDeviceAuthLimit = AuthLimit{Burst: 10, Every: 6 * time.Second}
	DefaultAddrAuthLimit   = AuthLimit{Burst: 100, Every: time.Second}
)

// maxAuthBuckets bounds the buckets kept of each kind (devices, source
// addresses).
const maxAuthBuckets = 100_000

// ErrUnknownDevice, wrapped by an error of Devices.Authenticate, says the
// username names no device: the failure counts against the source
// address only, and no state is kept for the name.
var ErrUnknownDevice = errors.New("mqtt: no such device")

// AuthError is an error of Devices.Authenticate for a device that exists
// (a wrong secret, say): the failure counts against the device under
// both its names, deviceId and nodeId, whichever the client used.
type AuthError struct {
	DeviceID, NodeID string
	Err              error
}

func (e *AuthError) Error() string { return fmt.Sprintf("device %s: %v", e.DeviceID, e.Err) }
func (e *AuthError) Unwrap() error { return e.Err }

// authBuckets are the failure buckets of one kind, by key, at most max.
// Several keys may share a bucket (a device's names).
type authBuckets struct {
	mu  sync.Mutex
	r   AuthLimit
	max int
	// parallel, when > 0, is how many attempts of one key may be checked
	// at once whatever the tokens left: a source address holds honest
	// devices behind a NAT, which may all connect at once (a broker
	// restart), so its attempts are gated by failures spent and by this
	// count, not by counting each attempt as a failure. 0: each attempt
	// in flight counts as a failure (a device's own budget).
	parallel int
	m        map[string]*authBucket
}

// addrParallel is authBuckets.parallel of the source-address budgets.
const addrParallel = 1000

// authBucket is golang.org/x/time/rate's Limiter, which failures spend,
// and the attempts being checked: an attempt counts as a failure while it
// is checked, so that attempts in parallel cannot pass together (the
// Limiter cannot give a token back, hence the count beside it).
type authBucket struct {
	lim      *rate.Limiter
	inflight int
}

// idle reports whether the bucket holds nothing worth keeping.
func (b *authBucket) idle(now time.Time) bool {
	return b.inflight == 0 && b.lim.TokensAt(now) >= float64(b.lim.Burst())
}

// begin counts an attempt of key at now, making its bucket if there is
// none. It returns nil when the bucket has no token beyond the attempts
// in flight (the key is limited).
func (bs *authBuckets) begin(now time.Time, key string) *authBucket {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.m == nil {
		bs.m = map[string]*authBucket{}
	}
	b := bs.m[key]
	if b == nil {
		if len(bs.m) >= bs.max {
			bs.evict(now)
		}
		b = &authBucket{lim: rate.NewLimiter(rate.Every(bs.r.Every), bs.r.Burst)}
		bs.m[key] = b
	}
	limited := b.lim.TokensAt(now)-float64(b.inflight) < 1
	if bs.parallel > 0 {
		limited = b.lim.TokensAt(now) < 1 || b.inflight >= bs.parallel
	}
	if limited {
		if b.idle(now) { // cannot be: a bucket of Burst ≥ 1
			delete(bs.m, key)
		}
		return nil
	}
	b.inflight++
	return b
}

// end ends an attempt on b: a failure spends a token. A bucket that is
// idle again is forgotten under keys.
func (bs *authBuckets) end(now time.Time, b *authBucket, failed bool, keys ...string) {
	if b == nil {
		return
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b.inflight--
	if failed {
		b.lim.AllowN(now, 1)
	}
	for _, k := range keys {
		if bs.m[k] == b && b.idle(now) {
			delete(bs.m, k)
		}
	}
}

// link makes keys share b (a device's other names); a name whose bucket
// has fewer tokens keeps it.
func (bs *authBuckets) link(now time.Time, b *authBucket, keys ...string) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for _, k := range keys {
		if k == "" {
			continue
		}
		old := bs.m[k]
		if old == b || old != nil && old.lim.TokensAt(now) < b.lim.TokensAt(now) {
			continue
		}
		if old == nil && len(bs.m) >= bs.max {
			bs.evict(now)
		}
		bs.m[k] = b
	}
}

// evict drops, under mu, the buckets that are idle; if none is, one
// arbitrary bucket, so the map stays bounded (package doc).
func (bs *authBuckets) evict(now time.Time) {
	source.Evict(bs.m, bs.max, func(b *authBucket) bool { return b.idle(now) })
}

// authLimits are the failure budgets of devices and source addresses.
type authLimits struct {
	dev, addr authBuckets
}

// attempt is one CONNECT's place in its budgets while its credentials
// are checked.
type attempt struct {
	user, addr string
	dev, ad    *authBucket
}

// begin counts an attempt of user (none for an empty username) and of the
// source address at now. A nil attempt means one of them has no budget
// left: who says which ("device" or "source address").
func (l *authLimits) begin(now time.Time, user, addr string) (a *attempt, who string) {
	a = &attempt{user: user, addr: addr}
	if a.ad = l.addr.begin(now, addr); a.ad == nil {
		return nil, "source address"
	}
	if user != "" {
		if a.dev = l.dev.begin(now, user); a.dev == nil {
			l.addr.end(now, a.ad, false, addr)
			return nil, "device"
		}
	}
	return a, ""
}

// succeeded ends a with no failure: the credentials were right.
func (l *authLimits) succeeded(now time.Time, a *attempt) {
	l.addr.end(now, a.ad, false, a.addr)
	l.dev.end(now, a.dev, false, a.user)
}

// failed spends a token of the address and of the device, unless err says
// the device does not exist; an AuthError's names share the device's
// bucket.
func (l *authLimits) failed(now time.Time, a *attempt, err error) {
	l.addr.end(now, a.ad, true, a.addr)
	if errors.Is(err, ErrUnknownDevice) {
		l.dev.end(now, a.dev, false, a.user)
		return
	}
	l.dev.end(now, a.dev, true, a.user)
	if ae, ok := errors.AsType[*AuthError](err); ok && a.dev != nil {
		l.dev.link(now, a.dev, ae.DeviceID, ae.NodeID)
	}
}

// sourceKey is the budget key of a remote address: the IP, an IPv6
// address by its /64 (what one host usually holds); "" for an address
// without an IP.
func sourceKey(remote net.Addr) string {
	if p := source.Of(remote); p.IsValid() {
		return p.Addr().String()
	}
	return ""
}
