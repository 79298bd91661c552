package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProfilingOnAdminListenerOnly: the runtime profiles are served on the
// operator listener behind its token, and not on the public API (SEC-5).
func TestProfilingOnAdminListenerOnly(t *testing.T) {
	tp := startPlatform(t, func(c *Config) { c.AdminToken = "operator-token" })
	admin := httptest.NewServer(tp.AdminHandler())
	defer admin.Close()
	public := httptest.NewServer(tp.Handler())
	defer public.Close()

	get := func(base, token string) (int, string) {
		resp := doRequest(t, "GET", base+"/debug/pprof/goroutine?debug=1", bearer(token), nil)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	status, body := get(admin.URL, "operator-token")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "goroutine profile:")
	status, _ = get(admin.URL, "")
	require.Equal(t, http.StatusUnauthorized, status)
	status, body = get(public.URL, "operator-token")
	require.NotEqual(t, http.StatusOK, status)
	require.NotContains(t, body, "goroutine profile:")
}
