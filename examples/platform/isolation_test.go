package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/doze-io/doze/push"
	"github.com/stretchr/testify/require"
)

// twoApps starts a platform with apps app-a (the test platform's caller)
// and app-b, each changed by the edits, and returns a function that
// switches the caller. app-a owns the demo products.
func twoApps(t *testing.T, edits ...func([]App)) (*testPlatform, func(id string)) {
	tp := startPlatform(t, func(c *Config) {
		apps := []App{{ID: "app-a", Secret: "secret-a", HistoryEnabled: true}, {ID: "app-b", Secret: "secret-b"}}
		for _, e := range edits {
			e(apps)
		}
		b, _ := json.Marshal(apps)
		require.NoError(t, os.WriteFile(c.DataDir+"/apps.json", b, 0o600))
	})
	return appSwitcher(t, tp)
}

// appSwitcher returns tp and a function that makes the app with id the
// caller of tp.
func appSwitcher(t *testing.T, tp *testPlatform) (*testPlatform, func(id string)) {
	tokens := map[string]string{tp.app.ID: tp.token}
	return tp, func(id string) {
		app, ok := tp.auth.App(id)
		require.True(t, ok)
		if tokens[id] == "" {
			tok, err := tp.auth.Login(addr1, app.ID, app.Secret)
			require.NoError(t, err)
			tokens[id] = tok.AccessToken
		}
		tp.app, tp.token = app, tokens[id]
	}
}

// TestAppIsolation: app B sees neither app A's push endpoints (their URLs
// and errors would be a blind SSRF oracle) nor A's batch task (SEC-5,
// APP-3).
func TestAppIsolation(t *testing.T) {
	tp, as := twoApps(t)
	s := newSink(t)
	hook := s.srv.URL + "/a-hook"
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": "deviceAdded", "callbackUrl": hook}, nil))
	id, _ := registerDevice(t, tp, "868333030000701") // a push to A's hook
	cmdHook := s.srv.URL + "/a-commands"
	var task struct{ TaskID string }
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/batchtask/v1.1.0/tasks", map[string]any{
		"taskName": "a-task", "taskType": "DeviceCmd", "param": map[string]any{"type": "DeviceList", "deviceList": []string{id},
			"callbackUrl": cmdHook, "command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}}}}, &task))
	_, err := tp.push.Send(context.Background(), cmdHook, []byte(`{}`), "") // as a command callback would
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(tp.push.Endpoints()) >= 2 }, 10*time.Second, 10*time.Millisecond)

	urls := func() []string {
		var raw []map[string]any
		require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/endpoints", nil, &raw))
		var out []string
		for _, e := range raw {
			out = append(out, e["callbackUrl"].(string))
		}
		return out
	}
	details := func() (int, int) {
		var d struct{ TotalCount int }
		status := tp.call(t, "GET", "/iocm/app/batchtask/v1.1.0/taskDetails?taskID="+task.TaskID, nil, &d)
		return status, d.TotalCount
	}
	require.ElementsMatch(t, []string{hook, cmdHook}, urls(), "A sees its subscription's and its commands' endpoints")
	status, n := details()
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 1, n, "A sees its task's command")

	as("app-b")
	require.Empty(t, urls(), "B sees none of A's endpoints")
	status, _ = details()
	require.Equal(t, http.StatusNotFound, status, "A's task does not exist for B (APP-3)")
}

// TestLoopbackCallbacksOnlyForDemo: loopback callback URLs pass the SSRF
// guard by default only with -demo; without it, and without an allowPush
// of the operator's, they are refused (SEC-5).
func TestLoopbackCallbacksOnlyForDemo(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		demo  bool
		allow []string
		ok    bool
	}{
		{demo: true, ok: true},
		{demo: false, ok: false},
		{demo: false, allow: []string{"127.0.0.1"}, ok: true},
	} {
		cfg := defaultConfig()
		cfg.DataDir, cfg.Demo, cfg.AllowPush = t.TempDir(), c.demo, c.allow
		cfg.CoAPAddr, cfg.DTLSAddr = "127.0.0.1:0", "127.0.0.1:0"
		p, err := New(cfg, nil)
		require.NoError(t, err)
		err = p.push.CheckURL(ctx, "http://127.0.0.1:9/hook")
		if c.ok {
			require.NoError(t, err, "demo=%v allowPush=%v", c.demo, c.allow)
		} else {
			require.ErrorIs(t, err, push.ErrAddressDenied, "demo=%v allowPush=%v", c.demo, c.allow)
		}
		require.NoError(t, p.Close())
	}
}
