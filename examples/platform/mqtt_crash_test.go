package main

import (
	"bufio"
	"fmt"
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

// TestMQTTCrashKeepsAcknowledged: every MQTT report the broker
// acknowledged (QoS 1 PUBACK, seen by mosquitto_pub) is in history after
// the platform is killed with SIGKILL and started again (MQT-1, SEC-6,
// STO-1): the report is kept in the inbox before the PUBACK goes out.
func TestMQTTCrashKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the platform binary")
	}
	needMosquitto(t)
	bin := filepath.Join(t.TempDir(), "platform")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	data := t.TempDir()
	base := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	mqttPort := strconv.Itoa(freePort(t))

	start := func() (*exec.Cmd, App) {
		cmd := exec.Command(bin, "-data", data, "-http", base[len("http://"):], "-coap", "127.0.0.1:0", "-dtls", "127.0.0.1:0",
			"-admin", "off", "-mqtt", "127.0.0.1:"+mqttPort, "-mqtts", "off")
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
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
			apps, _, err := loadApps(data, false)
			require.NoError(t, err)
			app = apps[0]
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
	id, secret := registerMQTT(t, tp, "868000000000901")

	// Each mosquitto_pub -q 1 exits 0 only after the broker's PUBACK.
	const reports = 20
	for i := range reports {
		report := fmt.Sprintf(`{"services":[{"service_id":"Battery","properties":{"batteryLevel":%d}}]}`, 50+i)
		out, err := mosquittoPub(t, mqttPort, "-V", "mqttv5", "-i", id, "-u", id, "-P", secret, "-q", "1",
			"-t", "$oc/devices/"+id+"/sys/properties/report", "-m", report)
		require.NoError(t, err, "report %d: %s", i, out)
		require.NotContains(t, out, "rror", "report %d acknowledged without error: %s", i, out)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL)) // right after the last PUBACK
	cmd.Wait()

	start()
	tp.token = tp.login(t)
	var hist struct {
		DTOs []struct {
			Data map[string]any `json:"data"`
		} `json:"deviceDataHistoryDTOs"`
	}
	got := map[float64]bool{}
	require.Eventually(t, func() bool { // the inbox is replayed after the start
		tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id+"&serviceId=Battery", nil, &hist)
		clear(got)
		for _, h := range hist.DTOs {
			got[h.Data["batteryLevel"].(float64)] = true
		}
		return len(got) >= reports
	}, 10*time.Second, 50*time.Millisecond, "every acknowledged report is in history after the crash; history has %v", got)
	for i := range reports {
		require.True(t, got[float64(50+i)], "acknowledged report %d is in history after the crash; history has %v", i, got)
	}
}
