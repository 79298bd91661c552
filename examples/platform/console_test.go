package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// webDriver is the few W3C WebDriver calls the console test needs, spoken
// to chromedriver over HTTP.
type webDriver struct {
	base    string
	session string
}

func (wd *webDriver) do(t *testing.T, method, path string, body any) json.RawMessage {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, wd.base+path, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Less(t, resp.StatusCode, 300, "webdriver %s %s: %s", method, path, out.Value)
	return out.Value
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBrowser starts chromedriver and a headless Chromium session.
func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	driver, err := exec.LookPath("chromedriver")
	if err != nil {
		t.Skip("chromedriver is not installed (Debian packages chromium and chromium-driver; .ci/run installs them)")
	}
	browser := "/usr/bin/chromium"
	if _, err := os.Stat(browser); err != nil {
		t.Skip("chromium is not installed at /usr/bin/chromium")
	}
	port := freePort(t)
	cmd := exec.Command(driver, fmt.Sprintf("--port=%d", port))
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	wd := &webDriver{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	require.Eventually(t, func() bool {
		resp, err := http.Get(wd.base + "/status")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "chromedriver did not start")
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": browser, "args": []string{"--headless", "--no-sandbox", "--disable-gpu",
			"--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
			"--disable-sync", "--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	require.NoError(t, json.Unmarshal(wd.do(t, "POST", "/session", caps), &sess))
	wd.session = sess.SessionID
	t.Cleanup(func() { wd.do(t, "DELETE", "/session/"+wd.session, nil) })
	return wd
}

func (wd *webDriver) open(t *testing.T, url string) {
	wd.do(t, "POST", "/session/"+wd.session+"/url", map[string]string{"url": url})
}

// text returns the text of the first element matching a CSS selector.
func (wd *webDriver) text(t *testing.T, selector string) string {
	v := wd.do(t, "POST", "/session/"+wd.session+"/execute/sync", map[string]any{
		"script": "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", "args": []string{selector}})
	var s string
	json.Unmarshal(v, &s)
	return s
}

// TestConsole loads the web console in headless Chromium: it logs in, lists
// the demo device with its status, and shows a command change state.
func TestConsole(t *testing.T) {
	wd := startBrowser(t)
	tp := startPlatform(t)
	id, _ := registerDevice(t, tp, "868333030000042")

	var cmd struct {
		CommandID string `json:"commandId"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": id, "command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 900}},
	}, &cmd))

	wd.open(t, tp.api.URL+"/#appId="+tp.app.ID+"&secret="+tp.app.Secret)
	waitText := func(selector, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var got string
		for time.Now().Before(deadline) {
			if got = wd.text(t, selector); strings.Contains(got, want) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("console %s shows %q, want it to contain %q (error line: %q)", selector, got, want, wd.text(t, "#error"))
	}
	waitText("#devices", id)
	waitText("#devices", "INACTIVE")
	waitText("#commands", cmd.CommandID)
	waitText("#commands", "PENDING")

	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/iocm/app/cmd/v1.4.0/deviceCommands/"+cmd.CommandID,
		map[string]string{"status": "CANCELED"}, nil))
	waitText("#commands", "CANCELED")
	require.Empty(t, wd.text(t, "#error"), "the console shows no error")
}
