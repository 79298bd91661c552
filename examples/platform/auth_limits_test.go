package main

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBucket: the token bucket as arithmetic on time (SEC-5): Burst takes
// at once, then one every Every; the answer says how long to wait.
func TestBucket(t *testing.T) {
	r := bucketRate{Burst: 3, Every: 6 * time.Second}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b bucket
	for i := range 3 {
		require.Zero(t, b.take(t0, r), "take %d of the burst", i+1)
	}
	for _, c := range []struct {
		at   time.Duration
		wait time.Duration
	}{
		{0, 6 * time.Second},
		{time.Second, 5 * time.Second},
		{6 * time.Second, 0}, // one token back
		{6 * time.Second, 6 * time.Second},
		{11 * time.Second, time.Second},
		{12 * time.Second, 0},
	} {
		require.Equal(t, c.wait, b.take(t0.Add(c.at), r), "take at +%s", c.at)
	}
	require.False(t, b.idle(t0.Add(12*time.Second)))
	require.True(t, b.idle(t0.Add(30*time.Second)), "full again after Burst×Every of quiet")
	for i := range 3 {
		require.Zero(t, b.take(t0.Add(30*time.Second), r), "a full burst after quiet, take %d", i+1)
	}
}

// TestLoginLimitPerApp: guesses at one app's secret, spread over many
// source addresses, get loginLimitError after appLoginRate.Burst tries,
// the right secret too, until a token is back (SEC-5).
func TestLoginLimitPerApp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAuth([]App{{ID: "app", Secret: "s"}, {ID: "other", Secret: "o"}}, time.Hour, 100)
		from := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}) }
		for i := range appLoginRate.Burst {
			_, err := a.Login(from(i), "app", fmt.Sprint("guess-", i))
			require.ErrorIs(t, err, errBadSecret, "guess %d", i+1)
		}
		_, err := a.Login(from(100), "app", "s")
		var le *loginLimitError
		require.ErrorAs(t, err, &le, "the right secret is refused too while the app's budget is spent")
		require.Equal(t, "application", le.Who)
		require.Equal(t, appLoginRate.Every, le.RetryAfter)
		_, err = a.Login(from(100), "other", "o")
		require.NoError(t, err, "another app has its own budget")

		time.Sleep(le.RetryAfter)
		_, err = a.Login(from(101), "app", "s")
		require.NoError(t, err, "one attempt allowed after Retry-After")
		_, err = a.Login(from(102), "app", "s")
		require.ErrorAs(t, err, &le)
	})
}

// TestLoginLimitPerAddress: one source address guessing app ids and
// secrets gets loginLimitError after addrLoginRate.Burst tries; another
// address does not; an IPv6 /64 counts as one address.
func TestLoginLimitPerAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAuth([]App{{ID: "app", Secret: "s"}}, time.Hour, 100)
		for _, c := range []struct{ first, second netip.Addr }{
			{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("203.0.113.7")},
			{netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")},
		} {
			for i := range addrLoginRate.Burst {
				_, err := a.Login(c.first, fmt.Sprint("app-", i), "x")
				require.ErrorIs(t, err, errBadSecret, "attempt %d from %s", i+1, c.first)
			}
			_, err := a.Login(c.second, "nobody", "x")
			var le *loginLimitError
			require.ErrorAs(t, err, &le, "%s after %d attempts from its network", c.second, addrLoginRate.Burst)
			require.Equal(t, "source address", le.Who)
			require.Equal(t, addrLoginRate.Every, le.RetryAfter)
		}
		_, err := a.Login(netip.MustParseAddr("192.0.2.200"), "app", "s")
		require.NoError(t, err, "other addresses are not limited")
	})
}

// TestAddrBucketsBounded: the per-address buckets stay at most max, idle
// ones dropped first.
func TestAddrBucketsBounded(t *testing.T) {
	ab := addrBuckets{max: 100}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		ab.take(t0.Add(time.Duration(i)*time.Millisecond), netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), addrLoginRate)
	}
	require.LessOrEqual(t, len(ab.m), 100)
}

// TestLoginLimitHTTP: brute force through the API gets 429 with
// Retry-After and the limit in words, per app and per address.
func TestLoginLimitHTTP(t *testing.T) {
	tp := startPlatform(t)
	try := func(appID, secret string) *http.Response {
		resp, err := http.PostForm(tp.api.URL+"/iocm/app/sec/v1.1.0/login", url.Values{"appId": {appID}, "secret": {secret}})
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	// startPlatform logged in once already.
	for i := 1; i < appLoginRate.Burst; i++ {
		require.Equal(t, http.StatusUnauthorized, try(tp.app.ID, "wrong").StatusCode, "guess %d", i)
	}
	resp := try(tp.app.ID, tp.app.Secret)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the app's login budget is spent")
	require.Equal(t, "6", resp.Header.Get("Retry-After"))
	// The loopback address has tried Burst times; unknown apps count
	// against it only.
	for i := appLoginRate.Burst + 1; i < addrLoginRate.Burst; i++ {
		require.Equal(t, http.StatusUnauthorized, try(fmt.Sprint("nobody-", i), "x").StatusCode, "attempt %d", i)
	}
	resp = try("nobody", "x")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the address's login budget is spent")
	require.Equal(t, "3", resp.Header.Get("Retry-After"))
}

// TestRefreshTokenExpires: a refresh token works once and only until
// DefaultRefreshTTL (SEC-5).
func TestRefreshTokenExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAuth([]App{{ID: "app", Secret: "s"}}, time.Hour, 100)
		tok, err := a.Login(addr1, "app", "s")
		require.NoError(t, err)
		tok2, err := a.Login(addr1, "app", "s")
		require.NoError(t, err)

		time.Sleep(DefaultRefreshTTL - time.Second)
		_, err = a.Refresh(addr1, "app", "s", tok.RefreshToken)
		require.NoError(t, err, "valid one second before its end")
		time.Sleep(2 * time.Second)
		_, err = a.Refresh(addr1, "app", "s", tok2.RefreshToken)
		require.ErrorIs(t, err, errBadRefresh, "expired after DefaultRefreshTTL")
	})
}

// TestSessionsBoundedAndPruned: an app holds at most MaxSessionsPerApp
// token pairs, the oldest evicted; dead pairs are dropped at the app's
// next login (SEC-5).
func TestSessionsBoundedAndPruned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAuth([]App{{ID: "app", Secret: "s"}}, time.Hour, 1000)
		a.appLogin = bucketRate{Burst: 1000, Every: time.Millisecond}
		a.addrLogin = a.appLogin
		var toks []tokenAnswer
		for range MaxSessionsPerApp + 6 {
			tok, err := a.Login(addr1, "app", "s")
			require.NoError(t, err)
			toks = append(toks, tok)
		}
		require.Equal(t, MaxSessionsPerApp, a.sessionCount("app"))
		_, status, err := a.Check(authed("app", toks[0].AccessToken))
		require.ErrorIs(t, err, errTokenUnknown, "the oldest pair was evicted")
		require.Equal(t, http.StatusUnauthorized, status)
		_, err = a.Refresh(addr1, "app", "s", toks[5].RefreshToken)
		require.ErrorIs(t, err, errBadRefresh, "its refresh token too")
		_, _, err = a.Check(authed("app", toks[len(toks)-1].AccessToken))
		require.NoError(t, err)

		time.Sleep(DefaultRefreshTTL + time.Second)
		_, err = a.Login(addr1, "app", "s")
		require.NoError(t, err)
		require.Equal(t, 1, a.sessionCount("app"), "expired pairs pruned at the next login")
	})
}
