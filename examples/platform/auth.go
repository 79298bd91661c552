package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// App is an application that calls the northbound API (SPEC APP-1).
type App struct {
	ID     string `json:"appId"`
	Secret string `json:"secret"`
	// HistoryEnabled keeps reported data in history (SPEC STO-2).
	HistoryEnabled bool `json:"historyEnabled"`
}

// session is one issued access token.
type session struct {
	appID   string
	expires time.Time
	refresh string
}

// Auth issues and checks access tokens and limits each app's call rate.
type Auth struct {
	tokenTTL time.Duration
	rate     int // calls per second per app

	mu       sync.Mutex
	apps     map[string]*App
	tokens   map[string]*session // access token → session
	refresh  map[string]string   // refresh token → app id
	limiters map[string]*limiter
}

// NewAuth returns an Auth for apps with tokens valid for ttl and at most rate
// calls per second per app.
func NewAuth(apps []App, ttl time.Duration, rate int) *Auth {
	a := &Auth{tokenTTL: ttl, rate: rate, apps: map[string]*App{}, tokens: map[string]*session{},
		refresh: map[string]string{}, limiters: map[string]*limiter{}}
	for i := range apps {
		app := apps[i]
		a.apps[app.ID] = &app
	}
	return a
}

// App returns the app with id.
func (a *Auth) App(id string) (App, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	app, ok := a.apps[id]
	if !ok {
		return App{}, false
	}
	return *app, true
}

// Apps returns every app, ordered by id.
func (a *Auth) Apps() []App {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]App, 0, len(a.apps))
	for _, app := range a.apps {
		out = append(out, *app)
	}
	slices.SortFunc(out, func(x, y App) int { return strings.Compare(x.ID, y.ID) })
	return out
}

var (
	errBadSecret     = errors.New("appId or secret is wrong")
	errBadRefresh    = errors.New("refreshToken is unknown or belongs to another app")
	errTokenMissing  = errors.New("send headers app_key: <appId> and Authorization: Bearer <accessToken>; get a token from POST /iocm/app/sec/v1.1.0/login")
	errTokenExpired  = errors.New("the access token has expired (tokens live one hour); log in again or use refreshToken")
	errTokenUnknown  = errors.New("the access token is not known; log in again")
	errTokenOtherApp = errors.New("the access token belongs to another app than app_key names")
)

type tokenAnswer struct {
	AccessToken  string `json:"accessToken"`
	TokenType    string `json:"tokenType"`
	ExpiresIn    int    `json:"expiresIn"`
	RefreshToken string `json:"refreshToken"`
	Scope        string `json:"scope"`
}

// Login checks appID and secret and issues a new token pair.
func (a *Auth) Login(appID, secret string) (tokenAnswer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	app, ok := a.apps[appID]
	if !ok || subtle.ConstantTimeCompare([]byte(app.Secret), []byte(secret)) != 1 {
		return tokenAnswer{}, errBadSecret
	}
	return a.issueLocked(appID), nil
}

// Refresh exchanges a refresh token for a new token pair.
func (a *Auth) Refresh(appID, secret, refresh string) (tokenAnswer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	app, ok := a.apps[appID]
	if !ok || subtle.ConstantTimeCompare([]byte(app.Secret), []byte(secret)) != 1 {
		return tokenAnswer{}, errBadSecret
	}
	if a.refresh[refresh] != appID {
		return tokenAnswer{}, errBadRefresh
	}
	delete(a.refresh, refresh)
	return a.issueLocked(appID), nil
}

// ResetSecret gives app id a new random secret and returns it; tokens
// already issued stay valid until they expire.
func (a *Auth) ResetSecret(id string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	app, ok := a.apps[id]
	if !ok {
		return "", false
	}
	app.Secret = randomHex(16)
	return app.Secret, true
}

func (a *Auth) issueLocked(appID string) tokenAnswer {
	now := time.Now()
	// Drop expired sessions so the map does not grow without bound.
	for tok, s := range a.tokens {
		if now.After(s.expires) {
			delete(a.tokens, tok)
		}
	}
	t := tokenAnswer{AccessToken: randomHex(32), TokenType: "bearer", ExpiresIn: int(a.tokenTTL / time.Second),
		RefreshToken: randomHex(32), Scope: "default"}
	a.tokens[t.AccessToken] = &session{appID: appID, expires: now.Add(a.tokenTTL), refresh: t.RefreshToken}
	a.refresh[t.RefreshToken] = appID
	return t
}

// Check authenticates a request and applies the rate limit. It returns the
// app id, or an HTTP status with an error.
func (a *Auth) Check(r *http.Request) (string, int, error) {
	appID := r.Header.Get("app_key")
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if appID == "" || !ok || tok == "" {
		return "", http.StatusUnauthorized, errTokenMissing
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.tokens[tok]
	switch {
	case !ok:
		return "", http.StatusUnauthorized, errTokenUnknown
	case time.Now().After(s.expires):
		delete(a.tokens, tok)
		return "", http.StatusUnauthorized, errTokenExpired
	case s.appID != appID:
		return "", http.StatusForbidden, errTokenOtherApp
	}
	l := a.limiters[appID]
	if l == nil {
		l = &limiter{}
		a.limiters[appID] = l
	}
	if !l.allow(time.Now(), a.rate) {
		return "", http.StatusTooManyRequests, errors.New("more than " + strconv.Itoa(a.rate) + " API calls in one second for this app (SPEC APP-1); slow down and retry")
	}
	return appID, 0, nil
}

// limiter allows about rate calls in any one-second span: it counts calls in
// one-second windows and weighs the previous window's count by how much of
// it still overlaps the last second (the sliding-window estimate), so no
// burst of 2×rate passes across a window edge.
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

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
