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

// TestCrashKeepsAcknowledged builds the platform, lets an application
// register a device, subscribe and create a command, kills the process with
// SIGKILL and starts it again on the same data directory: everything that
// was acknowledged is still there (STO-1, CMD-9, PSH-6).
func TestCrashKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the platform binary")
	}
	bin := filepath.Join(t.TempDir(), "platform")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	data := t.TempDir()
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)

	start := func() (*exec.Cmd, App) {
		cmd := exec.Command(bin, "-data", data, "-http", "127.0.0.1:"+strconv.Itoa(port), "-coap", "127.0.0.1:0", "-dtls", "127.0.0.1:0")
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		re := regexp.MustCompile(`appId=(\S+) secret=(\S+)`)
		sc := bufio.NewScanner(stdout)
		var app App
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				app = App{ID: m[1], Secret: m[2]}
				break
			}
		}
		go func() {
			for sc.Scan() {
			}
		}()
		require.NotEmpty(t, app.ID, "the platform printed no app credentials")
		require.Eventually(t, func() bool {
			resp, err := http.Get(base + "/openapi.json")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		}, 30*time.Second, 20*time.Millisecond)
		return cmd, app
	}

	cmd, app := start()
	tp := &testPlatform{api: &httptest.Server{URL: base}, app: app}
	tp.token = tp.login(t)
	id, _ := registerDevice(t, tp, "868333030000900")
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/sub/v1.2.0/subscriptions",
		map[string]any{"notifyType": "deviceDataChanged", "callbackUrl": "http://127.0.0.1:9/push"}, nil))
	var c struct {
		CommandID string `json:"commandId"`
	}
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": id, "command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 60}},
	}, &c))

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	cmd.Wait()

	_, app2 := start()
	require.Equal(t, app, app2, "the app's credentials survive a restart")
	tp.token = tp.login(t)
	var dev deviceJSON
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+id, nil, &dev))
	require.Equal(t, "868333030000900", dev.DeviceInfo.NodeID)
	var subs struct {
		TotalCount int `json:"totalCount"`
	}
	tp.call(t, "GET", "/iocm/app/sub/v1.2.0/subscriptions", nil, &subs)
	require.Equal(t, 1, subs.TotalCount)
	var list struct {
		Data []struct {
			CommandID, Status string
		} `json:"data"`
	}
	tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, &list)
	require.Len(t, list.Data, 1)
	require.Equal(t, c.CommandID, list.Data[0].CommandID)
	require.Equal(t, "PENDING", list.Data[0].Status)
	var products struct {
		TotalCount int `json:"totalCount"`
	}
	tp.call(t, "GET", "/doze/v1/products", nil, &products)
	require.Equal(t, 1, products.TotalCount, "the demo product is stored once, not added again")
}
