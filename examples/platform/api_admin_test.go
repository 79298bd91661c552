package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doze-io/doze/push"
	"github.com/stretchr/testify/require"
)

// adminCall makes a call with the administrator token and decodes the
// answer into out; it returns the status.
func (tp *testPlatform) adminCall(t *testing.T, token, method, path string, body, out any) int {
	t.Helper()
	return tp.jsonCall(t, bearer(token), method, path, body, out)
}

// TestAdminToken: the first start creates an administrator token, keeps
// only its SHA-256 and shows it once; a restart on the same data keeps it
// and shows nothing; the config's adminToken replaces it.
func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	hash, tok, err := loadAdmin(Config{DataDir: dir})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tok, "adm_"))
	require.Len(t, tok, 4+48, "192 random bits")
	raw, err := os.ReadFile(filepath.Join(dir, "admin.json"))
	require.NoError(t, err)
	require.NotContains(t, string(raw), tok, "the token itself is not kept")

	again, shown, err := loadAdmin(Config{DataDir: dir})
	require.NoError(t, err)
	require.Empty(t, shown, "a restart does not show the token again")
	require.Equal(t, hash, again)

	fromCfg, shown, err := loadAdmin(Config{DataDir: dir, AdminToken: "operator-secret"})
	require.NoError(t, err)
	require.Empty(t, shown)
	require.NotEqual(t, hash, fromCfg)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "admin.json"), []byte(`{"tokenSha256":"zz"}`), 0o600))
	_, _, err = loadAdmin(Config{DataDir: dir})
	require.ErrorContains(t, err, "delete it to get a new token")
}

// TestAdminApps (APP-3 basics): the administrator creates an app (its
// secret shown once), which can log in and call the API within its own
// rate limit; lists, reads and changes it; deletes it, after which its
// token no longer works and its subscriptions are gone. Without the
// administrator token, or with an app token, every call is 401.
func TestAdminApps(t *testing.T) {
	tp := startPlatform(t)
	admin := tp.newAdminToken
	require.NotEmpty(t, admin, "the first start created the administrator token")

	var e apiError
	require.Equal(t, http.StatusUnauthorized, tp.adminCall(t, "", "GET", "/doze/v1/apps", nil, &e))
	require.Contains(t, e.Desc, "Bearer <admin token>")
	require.Equal(t, http.StatusUnauthorized, tp.adminCall(t, tp.token, "GET", "/doze/v1/apps", nil, nil), "an app token is no admin token")
	require.Equal(t, http.StatusUnauthorized, tp.adminCall(t, tp.token, "POST", "/doze/v1/apps", map[string]any{"name": "x"}, nil))

	var created struct {
		AppID  string  `json:"appId"`
		Secret string  `json:"secret"`
		App    appJSON `json:"app"`
	}
	require.Equal(t, http.StatusCreated, tp.adminCall(t, admin, "POST", "/doze/v1/apps",
		map[string]any{"name": "water utility", "historyEnabled": true, "defaultMode": "edrx", "rateLimit": 3}, &created))
	require.NotEmpty(t, created.AppID)
	require.Len(t, created.Secret, 32)
	require.Equal(t, appJSON{AppID: created.AppID, Name: "water utility", HistoryEnabled: true, DefaultMode: "EDRX", RateLimit: 3}, created.App)

	for _, c := range []struct {
		body       map[string]any
		status     int
		code, desc string
	}{
		{map[string]any{"name": "water utility"}, http.StatusConflict, "app_exists", "named"},
		{map[string]any{}, http.StatusBadRequest, "invalid_name", "name is required"},
		{map[string]any{"name": strings.Repeat("n", 65)}, http.StatusBadRequest, "invalid_name", "1 to 64"},
		{map[string]any{"name": "b", "rateLimit": 0}, http.StatusBadRequest, "invalid_rateLimit", "1 to 10000"},
		{map[string]any{"name": "b", "defaultMode": "SLEEPY"}, http.StatusBadRequest, "invalid_mode", "PSM, DRX or EDRX"},
		{map[string]any{"name": "b", "maxDevices": -1}, http.StatusBadRequest, "invalid_maxDevices", "0 (no limit) to"},
	} {
		var e apiError
		require.Equal(t, c.status, tp.adminCall(t, admin, "POST", "/doze/v1/apps", c.body, &e), "%v", c.body)
		require.Equal(t, c.code, e.Code)
		require.Contains(t, e.Desc, c.desc)
	}

	// The new app logs in and works, within its own rate limit.
	resp, err := http.PostForm(tp.api.URL+"/iocm/app/sec/v1.1.0/login", url.Values{"appId": {created.AppID}, "secret": {created.Secret}})
	require.NoError(t, err)
	var tok tokenAnswer
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	tp.app, tp.token = App{ID: created.AppID}, tok.AccessToken
	hook := newSink(t)
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": "deviceAdded", "callbackUrl": hook.srv.URL + "/new"}, nil))
	limited := false
	for range 10 {
		if tp.call(t, "GET", "/iocm/app/sub/v1.2.0/subscriptions", nil, nil) == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	require.True(t, limited, "rateLimit 3 answers 429 within 10 quick calls")

	var list struct {
		TotalCount int       `json:"totalCount"`
		Apps       []appJSON `json:"apps"`
	}
	require.Equal(t, http.StatusOK, tp.adminCall(t, admin, "GET", "/doze/v1/apps", nil, &list))
	require.Equal(t, 2, list.TotalCount, "the demo app and the new one")
	raw, err := json.Marshal(list)
	require.NoError(t, err)
	require.NotContains(t, string(raw), created.Secret, "secrets are never listed")

	var one appJSON
	require.Equal(t, http.StatusOK, tp.adminCall(t, admin, "PUT", "/doze/v1/apps/"+created.AppID,
		map[string]any{"historyEnabled": false, "rateLimit": 50}, &one))
	require.False(t, one.HistoryEnabled)
	require.Equal(t, 50, one.RateLimit)
	require.Equal(t, "water utility", one.Name)
	require.Equal(t, http.StatusOK, tp.adminCall(t, admin, "GET", "/doze/v1/apps/"+created.AppID, nil, &one))
	require.Equal(t, 50, one.RateLimit)
	stored, err := os.ReadFile(filepath.Join(tp.cfg.DataDir, "apps.json"))
	require.NoError(t, err)
	require.Contains(t, string(stored), `"rateLimit": 50`, "changes are kept in apps.json")

	require.Equal(t, http.StatusNoContent, tp.adminCall(t, admin, "DELETE", "/doze/v1/apps/"+created.AppID, nil, nil))
	require.Equal(t, http.StatusNotFound, tp.adminCall(t, admin, "GET", "/doze/v1/apps/"+created.AppID, nil, nil))
	require.Equal(t, http.StatusNotFound, tp.adminCall(t, admin, "DELETE", "/doze/v1/apps/"+created.AppID, nil, nil))
	require.Equal(t, http.StatusUnauthorized, tp.call(t, "GET", "/iocm/app/sub/v1.2.0/subscriptions", nil, nil),
		"the deleted app's token no longer works")
	subs, err := tp.push.Subscriptions(context.Background(), push.Filter{AppID: created.AppID})
	require.NoError(t, err)
	require.Empty(t, subs, "the deleted app's subscriptions are gone")
}
