package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// webDriver is the few W3C WebDriver calls the console tests need, spoken
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

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBrowser starts chromedriver and a headless Chromium session.
func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		msg := what + " is not installed (apt-get install -y chromium chromium-driver; .ci/run installs them)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: the console tests must run)")
		}
		t.Skip(msg)
	}
	driver, err := exec.LookPath("chromedriver")
	if err != nil {
		missing("chromedriver")
	}
	browser := "/usr/bin/chromium"
	if _, err := os.Stat(browser); err != nil {
		missing("chromium (at /usr/bin/chromium)")
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
			"--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,1000", "--user-data-dir=" + t.TempDir()}},
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

// js runs script in the page with args and decodes its return value into
// out (when not nil).
func (wd *webDriver) js(t *testing.T, out any, script string, args ...any) {
	t.Helper()
	if args == nil {
		args = []any{}
	}
	v := wd.do(t, "POST", "/session/"+wd.session+"/execute/sync", map[string]any{"script": script, "args": args})
	if out != nil {
		require.NoError(t, json.Unmarshal(v, out), "script result %s", v)
	}
}

// pageClock replaces the timers of every page loaded after it with a test
// clock: setTimeout callbacks run only inside __clock.advance(ms), in time
// order, and __clock.fetches logs every fetch with the clock's time then.
// __clock.pending() counts the timers waiting.
const pageClock = `(() => {
  const timers = new Map();
  let seq = 0;
  const realFetch = window.fetch.bind(window);
  const clock = { now: 0, fetches: [] };
  window.setTimeout = (fn, ms, ...args) => {
    seq++;
    timers.set(seq, { at: clock.now + Math.max(0, Number(ms) || 0), fn, args });
    return seq;
  };
  window.clearTimeout = (id) => { timers.delete(id); };
  window.setInterval = () => { throw new Error("setInterval is not on the test clock"); };
  window.fetch = (input, init) => {
    clock.fetches.push({ path: new URL(input instanceof Request ? input.url : String(input), location.href).pathname, at: clock.now });
    return realFetch(input, init);
  };
  clock.pending = () => timers.size;
  clock.advance = (ms) => {
    const end = clock.now + ms;
    for (;;) {
      let id = 0, next = null;
      for (const [i, tm] of timers) {
        if (tm.at <= end && (!next || tm.at < next.at)) { id = i; next = tm; }
      }
      if (!next) break;
      timers.delete(id);
      clock.now = next.at;
      if (typeof next.fn === "function") next.fn(...next.args);
    }
    clock.now = end;
  };
  window.__clock = clock;
})();`

// withPageClock installs pageClock in the pages loaded from now on, until
// the test ends, and leaves the current page for a blank one so that the
// next open loads a new document. Chromium only: it goes through
// chromedriver's DevTools endpoint.
func (wd *webDriver) withPageClock(t *testing.T) {
	t.Helper()
	var added struct {
		Identifier string `json:"identifier"`
	}
	require.NoError(t, json.Unmarshal(wd.do(t, "POST", "/session/"+wd.session+"/goog/cdp/execute",
		map[string]any{"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": map[string]any{"source": pageClock}}), &added))
	require.NotEmpty(t, added.Identifier)
	wd.open(t, "about:blank")
	t.Cleanup(func() {
		wd.do(t, "POST", "/session/"+wd.session+"/goog/cdp/execute",
			map[string]any{"cmd": "Page.removeScriptToEvaluateOnNewDocument", "params": map[string]any{"identifier": added.Identifier}})
		wd.open(t, "about:blank") // the next test's pages run on real timers
	})
}

// text returns the text of the first element matching a CSS selector.
func (wd *webDriver) text(t *testing.T, selector string) string {
	t.Helper()
	var s string
	wd.js(t, &s, "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector)
	return s
}

// waitText waits until the element's text contains want.
func (wd *webDriver) waitText(t *testing.T, selector, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		if got = wd.text(t, selector); strings.Contains(got, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	wd.screenshot(t, "failed-"+strings.ReplaceAll(t.Name(), "/", "-"))
	t.Fatalf("console %s shows %q, want it to contain %q (error line: %q)", selector, got, want, wd.text(t, "#error"))
}

// waitJS waits until script returns true.
func (wd *webDriver) waitJS(t *testing.T, what, script string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var ok bool
		wd.js(t, &ok, script, args...)
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	wd.screenshot(t, "failed-"+strings.ReplaceAll(t.Name(), "/", "-"))
	t.Fatalf("console: %s did not happen in 20 s (error line: %q)", what, wd.text(t, "#error"))
}

// fill sets the value of the form control matching selector, as typing
// would (an input event follows).
func (wd *webDriver) fill(t *testing.T, selector, value string) {
	t.Helper()
	var ok bool
	wd.js(t, &ok, `const e = document.querySelector(arguments[0]); if (!e) return false;
e.value = arguments[1]; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return true;`, selector, value)
	require.True(t, ok, "no form control %s", selector)
}

// click clicks the first element matching selector.
func (wd *webDriver) click(t *testing.T, selector string) {
	t.Helper()
	var ok bool
	wd.js(t, &ok, "const e = document.querySelector(arguments[0]); if (!e) return false; e.click(); return true;", selector)
	require.True(t, ok, "nothing to click at %s", selector)
}

// attach puts a file with content into the file input matching selector.
func (wd *webDriver) attach(t *testing.T, selector, name string, content []byte) {
	t.Helper()
	var ok bool
	wd.js(t, &ok, `const e = document.querySelector(arguments[0]); if (!e) return false;
const bin = atob(arguments[2]); const b = new Uint8Array(bin.length); for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
const dt = new DataTransfer(); dt.items.add(new File([b], arguments[1])); e.files = dt.files; return true;`,
		selector, name, base64.StdEncoding.EncodeToString(content))
	require.True(t, ok, "no file input %s", selector)
}

// resize sets the browser window's size.
func (wd *webDriver) resize(t *testing.T, w, h int) {
	wd.do(t, "POST", "/session/"+wd.session+"/window/rect", map[string]int{"width": w, "height": h})
}

// screenshot writes the page as PNG to $DOZE_SCREENSHOTS/<name>.png (the
// test's temp dir when unset) for a person to look at.
func (wd *webDriver) screenshot(t *testing.T, name string) string {
	t.Helper()
	// The whole page, not just the window: make the window as tall as
	// the page (at most 5000 px) for the shot.
	var rect struct{ Width, Height int }
	require.NoError(t, json.Unmarshal(wd.do(t, "GET", "/session/"+wd.session+"/window/rect", nil), &rect))
	var page, inner int
	wd.js(t, &page, "return document.documentElement.scrollHeight")
	wd.js(t, &inner, "return window.innerHeight")
	if page > inner {
		wd.resize(t, rect.Width, min(rect.Height+page-inner, 5000))
		defer wd.resize(t, rect.Width, rect.Height)
	}
	v := wd.do(t, "GET", "/session/"+wd.session+"/screenshot", nil)
	var b64 string
	require.NoError(t, json.Unmarshal(v, &b64))
	png, err := base64.StdEncoding.DecodeString(b64)
	require.NoError(t, err)
	dir := os.Getenv("DOZE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, name+".png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	return path
}

// consoleLogin opens the console and logs in through its form.
func consoleLogin(t *testing.T, wd *webDriver, tp *testPlatform) {
	t.Helper()
	wd.open(t, tp.api.URL+"/")
	wd.waitJS(t, "the login form shows", "return !document.querySelector('#login').hidden")
	wd.fill(t, "#login [name=appId]", tp.app.ID)
	wd.fill(t, "#login [name=secret]", tp.app.Secret)
	wd.click(t, "#login button")
	wd.waitText(t, "#who", tp.app.ID)
}

// TestConsole drives the web console in headless Chromium, one subtest per
// action, over one platform and one browser.
func TestConsole(t *testing.T) {
	wd := startBrowser(t)
	tp := startPlatform(t, func(c *Config) { c.RateLimit = 1000; c.QueueWindow = Duration(1500 * time.Millisecond) })

	t.Run("Login", func(t *testing.T) { consoleLoginTest(t, wd, tp) })
	t.Run("DeviceListPaging", func(t *testing.T) { consoleDeviceList(t, wd, tp) })
	t.Run("RegisterOne", func(t *testing.T) { consoleRegisterOne(t, wd, tp) })
	t.Run("RegisterCSV", func(t *testing.T) { consoleRegisterCSV(t, wd, tp) })
	t.Run("ObjectTree", func(t *testing.T) { consoleObjectTree(t, wd, tp) })
	t.Run("QueuedOperation", func(t *testing.T) { consoleQueuedOperation(t, wd, tp) })
	t.Run("Command", func(t *testing.T) { consoleCommand(t, wd, tp) })
	t.Run("Shadow", func(t *testing.T) { consoleShadow(t, wd, tp) })
	t.Run("History", func(t *testing.T) { consoleHistory(t, wd, tp) })
	t.Run("Subscriptions", func(t *testing.T) { consoleSubscriptions(t, wd, tp) })
	t.Run("ProductUpload", func(t *testing.T) { consoleProductUpload(t, wd, tp) })
	t.Run("Upgrades", func(t *testing.T) { consoleUpgrades(t, wd, tp) })
	t.Run("Polling", func(t *testing.T) { consolePolling(t, wd, tp) })
	t.Run("Narrow", func(t *testing.T) { consoleNarrow(t, wd, tp) })
	t.Run("Logout", func(t *testing.T) { consoleLogout(t, wd, tp) })
}

// consoleLoginTest: a secret in the address (an old bookmark) is removed
// and not used; the login form posts it, and only the token is kept, in
// sessionStorage, so a reload stays logged in.
func consoleLoginTest(t *testing.T, wd *webDriver, tp *testPlatform) {
	wd.open(t, tp.api.URL+"/#appId="+tp.app.ID+"&secret="+tp.app.Secret)
	wd.waitJS(t, "the login form shows", "return !document.querySelector('#login').hidden")
	var href string
	wd.js(t, &href, "return location.href")
	require.NotContains(t, href, tp.app.Secret, "the secret stays in the address bar")
	require.Empty(t, wd.text(t, "#who"), "a secret in the URL logged the console in")

	consoleLogin(t, wd, tp)
	wd.js(t, &href, "return location.href")
	require.NotContains(t, href, tp.app.Secret)
	var stored string
	wd.js(t, &stored, "return JSON.stringify(sessionStorage) + JSON.stringify(localStorage) + document.cookie")
	require.NotContains(t, stored, tp.app.Secret, "the secret is kept in the browser")
	require.Contains(t, stored, `\"appId\":\"`+tp.app.ID, "the token is kept for the tab")

	wd.open(t, tp.api.URL+"/#/devices")
	wd.waitText(t, "#who", tp.app.ID)
	wd.waitJS(t, "the device list shows after a reload", "return document.querySelector('#devices') !== null")
}
