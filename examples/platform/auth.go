package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/doze-io/doze/internal/source"
	"golang.org/x/time/rate"
)

// App is an application that calls the northbound API (APP-1).
type App struct {
	ID     string `json:"appId"`
	Secret string `json:"secret"`
	// Name is the administrator's name for the app (APP-3).
	Name string `json:"name,omitempty"`
	// RateLimit is the app's API calls per second; 0 means the platform's
	// rateLimit (APP-1, APP-3).
	RateLimit int `json:"rateLimit,omitempty"`
	// MaxDevices is how many devices the app may own; 0 means no limit
	// (APP-3).
	MaxDevices int `json:"maxDevices,omitempty"`
	// HistoryEnabled keeps reported data in history (STO-2).
	HistoryEnabled bool `json:"historyEnabled"`
	// DefaultMode is the power-saving mode of the app's devices that have
	// none of their own: "PSM" (also when empty), "DRX" or "EDRX" (CMD-11).
	DefaultMode string `json:"defaultMode,omitempty"`
	// CallbackCAs verify the app's HTTPS callback servers, besides the
	// system roots (APP-6).
	CallbackCAs []CallbackCA `json:"callbackCAs,omitempty"`
}

// session is one issued token pair. The access token is valid until
// expires; the refresh token, until it is used or refreshExpires.
type session struct {
	access, refresh string // refresh is "" once used
	expires         time.Time
	refreshExpires  time.Time
}

func (s *session) dead(now time.Time) bool {
	return now.After(s.expires) && (s.refresh == "" || now.After(s.refreshExpires))
}

// appState is one app's credential, tokens and call budget. Each app has
// its own lock: a login of one app never waits for another's (SEC-5).
type appState struct {
	mu       sync.Mutex
	app      App
	sessions []*session          // oldest first; at most Auth.maxSessions
	tokens   map[string]*session // access token → session
	refresh  map[string]*session // refresh token → session
	calls    limiter             // API calls (APP-1)
	logins   bucket              // login and refresh attempts (SEC-5)
}

// Auth issues and checks access tokens, limits each app's call rate, and
// limits login attempts per app and per source address (SEC-5).
type Auth struct {
	tokenTTL    time.Duration
	refreshTTL  time.Duration
	rate        int // calls per second per app
	maxSessions int // token pairs per app; the oldest is evicted
	appLogin    bucketRate
	addrLogin   bucketRate

	mu   sync.RWMutex // guards the apps map, not the apps
	apps map[string]*appState

	addrs addrBuckets
}

// Login limits and token bounds (SEC-5, our choice).
const (
	// DefaultRefreshTTL is how long an unused refresh token lives.
	DefaultRefreshTTL = 7 * 24 * time.Hour
	// MaxSessionsPerApp bounds the token pairs an app holds; a login
	// beyond it evicts the app's oldest pair.
	MaxSessionsPerApp = 64
	// maxAddrBuckets bounds the per-address login buckets kept.
	maxAddrBuckets = 10_000
)

// Login rates: an app may try to log in (or refresh) 10 times at once and
// then once every 6 s; a source address (an IPv6 /64) 20 times at once,
// then once every 3 s. A guesser gets about 10 tries a minute per app.
var (
	appLoginRate  = bucketRate{Burst: 10, Every: 6 * time.Second}
	addrLoginRate = bucketRate{Burst: 20, Every: 3 * time.Second}
)

// NewAuth returns an Auth for apps with tokens valid for ttl and at most rate
// calls per second per app.
func NewAuth(apps []App, ttl time.Duration, rate int) *Auth {
	a := &Auth{tokenTTL: ttl, refreshTTL: DefaultRefreshTTL, rate: rate, maxSessions: MaxSessionsPerApp,
		appLogin: appLoginRate, addrLogin: addrLoginRate, apps: map[string]*appState{}}
	a.addrs.max = maxAddrBuckets
	for _, app := range apps {
		a.apps[app.ID] = newAppState(app)
	}
	return a
}

func newAppState(app App) *appState {
	return &appState{app: app, tokens: map[string]*session{}, refresh: map[string]*session{}}
}

func (a *Auth) state(id string) *appState {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.apps[id]
}

// App returns the app with id.
func (a *Auth) App(id string) (App, bool) {
	st := a.state(id)
	if st == nil {
		return App{}, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.app, true
}

// Apps returns every app, ordered by id.
func (a *Auth) Apps() []App {
	a.mu.RLock()
	states := make([]*appState, 0, len(a.apps))
	for _, st := range a.apps {
		states = append(states, st)
	}
	a.mu.RUnlock()
	out := make([]App, 0, len(states))
	for _, st := range states {
		st.mu.Lock()
		out = append(out, st.app)
		st.mu.Unlock()
	}
	slices.SortFunc(out, func(x, y App) int { return strings.Compare(x.ID, y.ID) })
	return out
}

var (
	errBadSecret     = errors.New("appId or secret is wrong")
	errBadRefresh    = errors.New("refreshToken is unknown, used, expired, or belongs to another app; log in again")
	errTokenMissing  = errors.New("send headers app_key: <appId> and Authorization: Bearer <accessToken>; get a token from POST /iocm/app/sec/v1.1.0/login")
	errTokenExpired  = errors.New("the access token has expired (tokens live one hour); log in again or use refreshToken")
	errTokenUnknown  = errors.New("the access token is not known; log in again")
	errTokenOtherApp = errors.New("the access token belongs to another app than app_key names")
)

// loginLimitError means too many login attempts (SEC-5); RetryAfter says
// when the next one is allowed.
type loginLimitError struct {
	Who        string // "application" or "source address"
	Limit      bucketRate
	RetryAfter time.Duration
}

func (e *loginLimitError) Error() string {
	return fmt.Sprintf("too many login attempts for this %s: at most %d at once, then one every %s; retry in %d s",
		e.Who, e.Limit.Burst, e.Limit.Every, retrySeconds(e.RetryAfter))
}

// retrySeconds rounds d up to whole seconds for Retry-After.
func retrySeconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

type tokenAnswer struct {
	AccessToken  string `json:"accessToken"`
	TokenType    string `json:"tokenType"`
	ExpiresIn    int    `json:"expiresIn"`
	RefreshToken string `json:"refreshToken"`
	Scope        string `json:"scope"`
}

// allowLogin takes one login attempt from the budget of the source
// address and, for a known app, of the app. Attempts count whether they
// succeed or not, so guessing is slow whichever way it is spread.
func (a *Auth) allowLogin(now time.Time, from netip.Addr, st *appState) error {
	if wait := a.addrs.take(now, from, a.addrLogin); wait > 0 {
		return &loginLimitError{Who: "source address", Limit: a.addrLogin, RetryAfter: wait}
	}
	if st == nil {
		return nil
	}
	if wait := st.logins.take(now, a.appLogin); wait > 0 {
		return &loginLimitError{Who: "application", Limit: a.appLogin, RetryAfter: wait}
	}
	return nil
}

// Login checks appID and secret, from the source address from, and issues
// a new token pair. Too many attempts fail with *loginLimitError.
func (a *Auth) Login(from netip.Addr, appID, secret string) (tokenAnswer, error) {
	now := time.Now()
	st := a.state(appID)
	if st == nil {
		if err := a.allowLogin(now, from, nil); err != nil {
			return tokenAnswer{}, err
		}
		return tokenAnswer{}, errBadSecret
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := a.allowLogin(now, from, st); err != nil {
		return tokenAnswer{}, err
	}
	if subtle.ConstantTimeCompare([]byte(st.app.Secret), []byte(secret)) != 1 {
		return tokenAnswer{}, errBadSecret
	}
	return a.issueLocked(st, now), nil
}

// Refresh exchanges a refresh token for a new token pair; it is limited
// like Login. A refresh token works once, until DefaultRefreshTTL.
func (a *Auth) Refresh(from netip.Addr, appID, secret, refresh string) (tokenAnswer, error) {
	now := time.Now()
	st := a.state(appID)
	if st == nil {
		if err := a.allowLogin(now, from, nil); err != nil {
			return tokenAnswer{}, err
		}
		return tokenAnswer{}, errBadSecret
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := a.allowLogin(now, from, st); err != nil {
		return tokenAnswer{}, err
	}
	if subtle.ConstantTimeCompare([]byte(st.app.Secret), []byte(secret)) != 1 {
		return tokenAnswer{}, errBadSecret
	}
	s := st.refresh[refresh]
	if s == nil || now.After(s.refreshExpires) {
		return tokenAnswer{}, errBadRefresh
	}
	delete(st.refresh, refresh)
	s.refresh = ""
	return a.issueLocked(st, now), nil
}

// Add adds app; it reports false when an app with its id exists.
func (a *Auth) Add(app App) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.apps[app.ID]; ok {
		return false
	}
	a.apps[app.ID] = newAppState(app)
	return true
}

// Delete removes app id and with it every token it holds; it reports
// whether the app existed.
func (a *Auth) Delete(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.apps[id]
	delete(a.apps, id)
	return ok
}

// Change applies f to app id's settings and returns the app as changed.
func (a *Auth) Change(id string, f func(*App)) (App, bool) {
	st := a.state(id)
	if st == nil {
		return App{}, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	f(&st.app)
	return st.app, true
}

// ResetSecret gives app id a new random secret and returns it; tokens
// already issued stay valid until they expire.
func (a *Auth) ResetSecret(id string) (string, bool) {
	st := a.state(id)
	if st == nil {
		return "", false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.app.Secret = randomHex(16)
	return st.app.Secret, true
}

// issueLocked issues a token pair for st's app. It first drops the app's
// dead sessions (lazy, per-app pruning: no sweep over every app), then,
// if the app still holds maxSessions pairs, its oldest.
func (a *Auth) issueLocked(st *appState, now time.Time) tokenAnswer {
	st.sessions = slices.DeleteFunc(st.sessions, func(s *session) bool {
		if s.dead(now) {
			st.forget(s)
			return true
		}
		return false
	})
	for len(st.sessions) >= a.maxSessions {
		st.forget(st.sessions[0])
		st.sessions = slices.Delete(st.sessions, 0, 1)
	}
	t := tokenAnswer{AccessToken: randomHex(32), TokenType: "bearer", ExpiresIn: int(a.tokenTTL / time.Second),
		RefreshToken: randomHex(32), Scope: "default"}
	s := &session{access: t.AccessToken, refresh: t.RefreshToken, expires: now.Add(a.tokenTTL), refreshExpires: now.Add(a.refreshTTL)}
	st.sessions = append(st.sessions, s)
	st.tokens[s.access] = s
	st.refresh[s.refresh] = s
	return t
}

// forget removes s's tokens from the maps.
func (st *appState) forget(s *session) {
	delete(st.tokens, s.access)
	if s.refresh != "" {
		delete(st.refresh, s.refresh)
	}
}

// sessionCount returns how many token pairs app id holds (for tests and
// metrics).
func (a *Auth) sessionCount(id string) int {
	st := a.state(id)
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.sessions)
}

// Check authenticates a request and applies the rate limit. It returns the
// app id, or an HTTP status with an error.
func (a *Auth) Check(r *http.Request) (string, int, error) {
	appID := r.Header.Get("app_key")
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if appID == "" || !ok || tok == "" {
		return "", http.StatusUnauthorized, errTokenMissing
	}
	st := a.state(appID)
	if st == nil {
		if a.ownerOf(tok) != "" {
			return "", http.StatusForbidden, errTokenOtherApp
		}
		return "", http.StatusUnauthorized, errTokenUnknown
	}
	now := time.Now()
	st.mu.Lock()
	s, ok := st.tokens[tok]
	expired := ok && now.After(s.expires)
	rate := a.rate
	if st.app.RateLimit > 0 {
		rate = st.app.RateLimit
	}
	limited := ok && !expired && !st.calls.allow(now, rate)
	st.mu.Unlock()
	switch {
	case !ok:
		if owner := a.ownerOf(tok); owner != "" && owner != appID {
			return "", http.StatusForbidden, errTokenOtherApp
		}
		return "", http.StatusUnauthorized, errTokenUnknown
	case expired:
		return "", http.StatusUnauthorized, errTokenExpired
	case limited:
		return "", http.StatusTooManyRequests, errors.New("more than " + strconv.Itoa(rate) + " API calls in one second for this app (APP-1); slow down and retry")
	}
	return appID, 0, nil
}

// ownerOf returns the app holding access token tok, or "". It looks at
// every app, one lock at a time; only a request with a token of another
// app (or none) gets here.
func (a *Auth) ownerOf(tok string) string {
	a.mu.RLock()
	states := make([]*appState, 0, len(a.apps))
	for _, st := range a.apps {
		states = append(states, st)
	}
	a.mu.RUnlock()
	for _, st := range states {
		st.mu.Lock()
		_, ok := st.tokens[tok]
		id := st.app.ID
		st.mu.Unlock()
		if ok {
			return id
		}
	}
	return ""
}

// limiter allows about rate calls in any one-second span: it counts calls in
// one-second windows and weighs the previous window's count by how much of
// it still overlaps the last second (the sliding-window estimate), so no
// burst of 2×rate passes across a window edge. It is not a token bucket
// (golang.org/x/time/rate): a bucket that lets rate calls pass at once
// lets 2×rate pass in the second that follows, which APP-1 forbids.
type limiter struct {
	start     time.Time
	count     int
	prevCount int
}

func (l *limiter) allow(now time.Time, rate int) bool {
	switch n := now.Sub(l.start) / time.Second; {
	case l.start.IsZero():
		l.start = now
	case n == 1:
		l.prevCount, l.count = l.count, 0
		l.start = l.start.Add(time.Second)
	case n > 1:
		l.prevCount, l.count = 0, 0
		l.start = l.start.Add(n * time.Second)
	}
	weight := float64(time.Second-now.Sub(l.start)) / float64(time.Second)
	if float64(l.prevCount)*weight+float64(l.count) >= float64(rate) {
		return false
	}
	l.count++
	return true
}

// bucketRate is a token bucket's shape: Burst tokens at most, one more
// every Every.
type bucketRate struct {
	Burst int
	Every time.Duration
}

// bucket is a login budget (SEC-5): a token bucket of Burst tokens, one
// more every Every. It is golang.org/x/time/rate's Limiter, made on the
// first take; the zero bucket is full.
type bucket struct{ lim *rate.Limiter }

// take removes one token at now. It returns 0 if there was one, else how
// long until there is. r is the same on every call.
func (b *bucket) take(now time.Time, r bucketRate) time.Duration {
	if b.lim == nil {
		b.lim = rate.NewLimiter(rate.Every(r.Every), r.Burst)
	}
	if b.lim.AllowN(now, 1) {
		return 0
	}
	// The limiter counts tokens as a float64: round the wait for the
	// missing part of a token to the nanosecond, never to 0.
	missing := 1 - b.lim.TokensAt(now)
	return max(time.Nanosecond, time.Duration(math.Round(missing*float64(r.Every))))
}

// idle reports whether the bucket is full at now (nothing to remember).
func (b *bucket) idle(now time.Time) bool {
	return b.lim == nil || b.lim.TokensAt(now) >= float64(b.lim.Burst())
}

// addrBuckets are the login buckets of source addresses, at most max of
// them; IPv6 addresses count by /64, what one host usually holds.
type addrBuckets struct {
	mu  sync.Mutex
	max int
	m   map[netip.Addr]*bucket
}

func addrKey(a netip.Addr) netip.Addr { return source.Prefix(a).Addr() }

func (ab *addrBuckets) take(now time.Time, from netip.Addr, r bucketRate) time.Duration {
	k := addrKey(from)
	ab.mu.Lock()
	defer ab.mu.Unlock()
	if ab.m == nil {
		ab.m = map[netip.Addr]*bucket{}
	}
	b := ab.m[k]
	if b == nil {
		if len(ab.m) >= ab.max {
			ab.evict(now)
		}
		b = &bucket{}
		ab.m[k] = b
	}
	return b.take(now, r)
}

// evict drops the buckets that are full again (they hold nothing worth
// keeping); if none is, one arbitrary bucket, so the map stays bounded.
func (ab *addrBuckets) evict(now time.Time) {
	source.Evict(ab.m, ab.max, func(b *bucket) bool { return b.idle(now) })
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
