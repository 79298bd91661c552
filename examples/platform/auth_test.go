package main

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

var addr1 = netip.MustParseAddr("192.0.2.1")

func authed(appID, token string) *http.Request {
	r := httptest.NewRequest("GET", "/iocm/app/dm/v1.4.0/devices", nil)
	r.Header.Set("app_key", appID)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// TestTokenExpires covers APP-1: a token lives one hour; afterwards the
// call fails with 401 and a sentence saying so.
func TestTokenExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAuth([]App{{ID: "app", Secret: "s"}}, time.Hour, 100)
		_, err := a.Login(addr1, "app", "wrong")
		require.ErrorIs(t, err, errBadSecret)
		tok, err := a.Login(addr1, "app", "s")
		require.NoError(t, err)
		require.Equal(t, 3600, tok.ExpiresIn)

		id, status, err := a.Check(authed("app", tok.AccessToken))
		require.NoError(t, err)
		require.Equal(t, "app", id)
		require.Zero(t, status)

		time.Sleep(time.Hour - time.Second)
		_, _, err = a.Check(authed("app", tok.AccessToken))
		require.NoError(t, err, "still valid one second before the hour")

		time.Sleep(2 * time.Second)
		_, status, err = a.Check(authed("app", tok.AccessToken))
		require.ErrorIs(t, err, errTokenExpired)
		require.Equal(t, http.StatusUnauthorized, status)

		// The refresh token gives a fresh pair once, and only once.
		tok2, err := a.Refresh(addr1, "app", "s", tok.RefreshToken)
		require.NoError(t, err)
		_, _, err = a.Check(authed("app", tok2.AccessToken))
		require.NoError(t, err)
		_, err = a.Refresh(addr1, "app", "s", tok.RefreshToken)
		require.ErrorIs(t, err, errBadRefresh)
	})
}

func TestTokenOfAnotherApp(t *testing.T) {
	a := NewAuth([]App{{ID: "a", Secret: "1"}, {ID: "b", Secret: "2"}}, time.Hour, 100)
	tok, err := a.Login(addr1, "a", "1")
	require.NoError(t, err)
	_, status, err := a.Check(authed("b", tok.AccessToken))
	require.ErrorIs(t, err, errTokenOtherApp)
	require.Equal(t, http.StatusForbidden, status)
	_, status, err = a.Check(httptest.NewRequest("GET", "/", nil))
	require.ErrorIs(t, err, errTokenMissing)
	require.Equal(t, http.StatusUnauthorized, status)
}

// TestRateLimit covers APP-1: 100 calls in a second pass, the 101st
// gets 429; a second later calls pass again; apps do not share a budget.
func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAuth([]App{{ID: "a", Secret: "1"}, {ID: "b", Secret: "2"}}, time.Hour, 100)
		ta, _ := a.Login(addr1, "a", "1")
		tb, _ := a.Login(addr1, "b", "2")
		for i := range 100 {
			_, _, err := a.Check(authed("a", ta.AccessToken))
			require.NoError(t, err, "call %d of 100", i+1)
		}
		_, status, err := a.Check(authed("a", ta.AccessToken))
		require.Error(t, err)
		require.Equal(t, http.StatusTooManyRequests, status)
		_, _, err = a.Check(authed("b", tb.AccessToken))
		require.NoError(t, err, "app b has its own budget")

		// Half a second into the next window about half of the previous
		// window still counts: 100 more calls at once are not all allowed.
		time.Sleep(1500 * time.Millisecond)
		passed := 0
		for range 100 {
			if _, _, err := a.Check(authed("a", ta.AccessToken)); err == nil {
				passed++
			}
		}
		require.Less(t, passed, 100)
		require.Greater(t, passed, 0)

		time.Sleep(3 * time.Second)
		for i := range 100 {
			_, _, err := a.Check(authed("a", ta.AccessToken))
			require.NoError(t, err, "call %d after a quiet period", i+1)
		}
	})
}

func TestLimiterNeverAllowsDoubleBurst(t *testing.T) {
	// Across any window edge, at most rate calls pass within one second.
	var l limiter
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	passed := 0
	for i := range 400 {
		// 400 calls spread evenly over 1 s starting 0.9 s into a window.
		if l.allow(t0.Add(900*time.Millisecond+time.Duration(i)*2500*time.Microsecond), 100) {
			passed++
		}
	}
	require.LessOrEqual(t, passed, 110, "calls passed in about one second")
}
