package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// crashPlatform is the platform binary run as a child process on one data
// directory, for the tests that kill it with SIGKILL and start it again on
// the same data.
type crashPlatform struct {
	t    testing.TB
	bin  string
	data string // the -data directory, kept across starts
	// args are the flags of every start besides -data.
	args []string
	// ready tells whether a started process serves; start waits for it.
	ready func() bool
	cmd   *exec.Cmd
}

// newCrashPlatform builds the platform binary and gives it an empty data
// directory; with -short the test is skipped. The caller sets args and
// ready before the first start.
func newCrashPlatform(t testing.TB) *crashPlatform {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the platform binary")
	}
	bin := filepath.Join(t.TempDir(), "platform")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return &crashPlatform{t: t, bin: bin, data: t.TempDir()}
}

// start starts the binary and returns the app whose credentials it
// prints, once ready is true. The secret is printed on the first start
// only (SEC-5); later starts name the app, and start reads apps.json.
func (c *crashPlatform) start() App {
	t := c.t
	t.Helper()
	cmd := exec.Command(c.bin, append([]string{"-data", c.data}, c.args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c.cmd = cmd
	re := regexp.MustCompile(`appId=(\S+)(?: secret=(\S+))?`)
	sc := bufio.NewScanner(stdout)
	var app App
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			app = App{ID: m[1], Secret: m[2]}
			break
		}
	}
	if app.ID != "" && app.Secret == "" {
		// apps.json with bbolt; with a shared store (no file) the caller
		// knows the secret from the node that created the app.
		apps, _, err := loadApps(c.data, false)
		require.NoError(t, err)
		if len(apps) > 0 {
			app = apps[0]
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	require.NotEmpty(t, app.ID, "the platform printed no app credentials")
	require.Eventually(t, c.ready, 30*time.Second, 20*time.Millisecond)
	return app
}

// kill ends the running process with SIGKILL, as a crash would, and waits
// for it.
func (c *crashPlatform) kill() {
	c.t.Helper()
	require.NoError(c.t, c.cmd.Process.Signal(syscall.SIGKILL))
	c.cmd.Wait()
}

// answers is a ready func: true once a GET of url is answered.
func answers(url string) func() bool {
	return func() bool {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}
}

// startWithAPI starts c with the REST API on a free port, CoAP on any port,
// DTLS on a free address (returned) and no admin listener, and logs the
// demo app in. A restart (c.start again) keeps the same ports.
func (c *crashPlatform) startWithAPI(t *testing.T) (*testPlatform, string) {
	t.Helper()
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	dtlsAddr := freeUDPAddr(t)
	c.args = []string{"-http", "127.0.0.1:" + strconv.Itoa(port), "-coap", "127.0.0.1:0", "-dtls", dtlsAddr, "-admin", "off"}
	c.ready = answers(base + "/openapi.json")
	tp := &testPlatform{api: &httptest.Server{URL: base}, app: c.start()}
	tp.token = tp.login(t)
	return tp, dtlsAddr
}
