package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests play MQTT devices with Debian's mosquitto-clients, a client
// nobody here wrote (MQT-1…MQT-4).

// needMosquitto skips t when mosquitto_pub or mosquitto_sub is missing,
// or fails it under CI=true (.ci/run installs them).
func needMosquitto(t *testing.T) {
	t.Helper()
	for _, c := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(c); err != nil {
			msg := fmt.Sprintf("%s not installed (apt-get install -y mosquitto-clients): %v", c, err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg + " (CI=true: the MQTT tests must run)")
			}
			t.Skip(msg)
		}
	}
}

// registerMQTT registers an MQTT device of the demo product and returns
// its deviceId and the secret shown once.
func registerMQTT(t *testing.T, tp *testPlatform, nodeID string) (id, secret string) {
	t.Helper()
	var reg struct {
		DeviceID string `json:"deviceId"`
		Secret   string `json:"secret"`
		Security string `json:"security"`
		PSK      string `json:"psk"`
	}
	status := tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{
		"nodeId": nodeID, "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID, "deviceType": demoDeviceType,
			"model": demoModel, "protocolType": "MQTT", "name": "4G meter " + nodeID}}, &reg)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "SECRET", reg.Security, "an MQTT device is registered with a secret (MQT-1)")
	require.Len(t, reg.Secret, 32, "a 128-bit secret is generated and shown once")
	require.Empty(t, reg.PSK, "an MQTT device has no DTLS key")
	return reg.DeviceID, reg.Secret
}

func mqttPort(t *testing.T, tp *testPlatform) string {
	_, port, err := net.SplitHostPort(tp.mq.Addr("tcp"))
	require.NoError(t, err)
	return port
}

// mosquittoPub runs mosquitto_pub and returns its exit error and output.
func mosquittoPub(t *testing.T, port string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mosquitto_pub", append([]string{"-h", "127.0.0.1", "-p", port}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestMQTTDeviceReportsAndTakesCommands(t *testing.T) {
	needMosquitto(t)
	tp := startPlatform(t)
	port := mqttPort(t, tp)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceDataChanged", "deviceInfoChanged")
	id, secret := registerMQTT(t, tp, "868000000000101")
	other, _ := registerMQTT(t, tp, "868000000000102")
	report := `{"services":[{"service_id":"Battery","properties":{"batteryLevel":66},"event_time":"20260301T120000Z"}]}`
	topic := "$oc/devices/" + id + "/sys/properties/report"

	// A wrong secret is refused at CONNECT: mosquitto_pub fails.
	out, err := mosquittoPub(t, port, "-V", "mqttv311", "-i", id, "-u", id, "-P", "wrong-secret-0000", "-q", "1", "-t", topic, "-m", report)
	require.Error(t, err, "mosquitto_pub with a wrong secret must fail; output %q", out)
	out, err = mosquittoPub(t, port, "-V", "mqttv5", "-i", id, "-u", id, "-P", "wrong-secret-0000", "-q", "1", "-t", topic, "-m", report)
	require.Error(t, err, "MQTT 5 with a wrong secret must fail; output %q", out)
	// Another device's client id would take over its session: refused.
	out, err = mosquittoPub(t, port, "-i", other, "-u", id, "-P", secret, "-q", "1", "-t", topic, "-m", report)
	require.Error(t, err, "a client id of another device must be refused; output %q", out)

	// The right secret (username = nodeId here), QoS 1: acknowledged, then in
	// history and pushed.
	out, err = mosquittoPub(t, port, "-V", "mqttv311", "-i", id, "-u", "868000000000101", "-P", secret, "-q", "1", "-t", topic, "-m", report)
	require.NoError(t, err, "mosquitto_pub with the device's credentials: %s", out)
	push := hook.wait(t, "deviceDataChanged over MQTT", func(p map[string]any) bool {
		s, _ := p["service"].(map[string]any)
		return p["notifyType"] == "deviceDataChanged" && p["deviceId"] == id && s["serviceId"] == "Battery"
	})
	svc := push["service"].(map[string]any)
	require.EqualValues(t, 66, svc["data"].(map[string]any)["batteryLevel"])
	require.Equal(t, "20260301T120000Z", svc["eventTime"], "event_time of the report is kept")
	var hist struct {
		TotalCount int `json:"totalCount"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id, nil, &hist))
	require.Equal(t, 1, hist.TotalCount, "the MQTT report is in history (STO-2)")

	// MQTT 5: a report on another device's topic is refused with PUBACK
	// 0x87, a report that breaks the model with 0x99; nothing is stored.
	foreign := "$oc/devices/" + other + "/sys/properties/report"
	// (mosquitto_pub prints the PUBACK's reason and exits 0.)
	out, _ = mosquittoPub(t, port, "-V", "mqttv5", "-i", id, "-u", id, "-P", secret, "-q", "1", "-t", foreign, "-m", report)
	require.Contains(t, strings.ToLower(out), "not authorized", "publishing on another device's topic must be refused")
	out, _ = mosquittoPub(t, port, "-V", "mqttv5", "-i", id, "-u", id, "-P", secret, "-q", "1", "-t", topic, "-m", `{"services":"nope"}`)
	require.Contains(t, strings.ToLower(out), "payload format invalid", "a malformed report must be refused")
	// Retained messages are refused (MQT-4): MQTT 5 gets DISCONNECT 0x9A.
	out, err = mosquittoPub(t, port, "-V", "mqttv5", "-i", id, "-u", id, "-P", secret, "-q", "1", "-r", "-t", topic, "-m", report)
	require.Error(t, err, "a retained report must be refused; output %q", out)
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id, nil, &hist))
	require.Equal(t, 1, hist.TotalCount, "refused reports must not reach history")
	require.GreaterOrEqual(t, tp.mq.Stats().NotAuthorized, uint64(1))
	require.GreaterOrEqual(t, tp.mq.Stats().Retained, uint64(1))

	// A subscription to another device's commands is refused: SUBACK 0x87.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bad, err := exec.CommandContext(ctx, "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv5", "-i", id, "-u", id, "-P", secret,
		"-t", "$oc/devices/"+other+"/sys/commands/#", "-C", "1", "-W", "3").CombinedOutput()
	require.Contains(t, string(bad), "ubscri", "mosquitto_sub must report the refused subscription; got %q (%v)", bad, err)

	// The device subscribes to its commands and answers one (MQT-3).
	sub := exec.CommandContext(ctx, "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv311", "-i", id, "-u", id, "-P", secret,
		"-q", "1", "-t", "$oc/devices/"+id+"/sys/commands/#", "-C", "1", "-v")
	stdout, err := sub.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, sub.Start())
	defer sub.Wait()
	defer sub.Process.Kill()
	var cmd struct {
		CommandID string `json:"commandId"`
	}
	require.Eventually(t, func() bool { return tp.mq.Connected(id) }, 5*time.Second, 10*time.Millisecond, "mosquitto_sub connects")
	require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
		"deviceId": id, "callbackUrl": hook.srv.URL + "/cmd",
		"command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}},
	}, &cmd))
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "mosquitto_sub must print the command")
	gotTopic, body, ok := strings.Cut(strings.TrimSpace(line), " ")
	require.True(t, ok, "mosquitto_sub -v prints topic and payload: %q", line)
	require.Equal(t, "$oc/devices/"+id+"/sys/commands/request_id="+cmd.CommandID, gotTopic)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &got), "command payload %q", body)
	require.Equal(t, "SET_REPORT_PERIOD", got["command_name"])
	require.Equal(t, "Meter", got["service_id"])
	require.EqualValues(t, 600, got["paras"].(map[string]any)["period"])
	hook.wait(t, "DELIVERED at the device's PUBACK", func(p map[string]any) bool {
		return resultCode(p) == "DELIVERED" && p["commandId"] == cmd.CommandID
	})

	resp := `{"result_code":0,"response_name":"COMMAND_RESPONSE","paras":{"result":"ok"}}`
	out, err = mosquittoPub(t, port, "-i", id+"_resp", "-u", id, "-P", secret, "-q", "1",
		"-t", "$oc/devices/"+id+"/sys/commands/response/request_id="+cmd.CommandID, "-m", resp)
	require.NoError(t, err, "command response: %s", out)
	hook.wait(t, "SUCCESSFUL from the response topic", func(p map[string]any) bool {
		return resultCode(p) == "SUCCESSFUL" && p["commandId"] == cmd.CommandID
	})

	// The connection drops: OFFLINE after the grace, deviceInfoChanged.
	sub.Process.Kill()
	sub.Wait()
	require.Eventually(t, func() bool { return !tp.mq.Connected(id) }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		d, err := tp.reg.Get(context.Background(), id)
		return err == nil && !d.Connected && !d.DisconnectedAt.IsZero()
	}, 5*time.Second, 10*time.Millisecond, "the registry must learn that the connection closed (MQT-3)")
}

// TestMQTTRateLimit: over mqttRate messages a second, an MQTT 3.1.1
// connection's messages are dropped and counted, an MQTT 5 connection is
// closed with DISCONNECT 0x96 (MQT-4).
func TestMQTTRateLimit(t *testing.T) {
	needMosquitto(t)
	tp := startPlatform(t, func(c *Config) { c.MQTTRate = 20 })
	port := mqttPort(t, tp)
	id, secret := registerMQTT(t, tp, "868000000000201")
	topic := "$oc/devices/" + id + "/sys/properties/report"
	lines := strings.Repeat(`{"services":[{"service_id":"Battery","properties":{"batteryLevel":50}}]}`+"\n", 100)

	run := func(version string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", version, "-i", id, "-u", id, "-P", secret,
			"-q", "0", "-t", topic, "-l")
		cmd.Stdin = strings.NewReader(lines)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	t.Logf("mosquitto_pub: %s", run("mqttv311"))
	// QoS 0: mosquitto_pub may exit before the broker has read every
	// message, so the count is awaited, then must stay put.
	require.Eventually(t, func() bool { return tp.mq.Stats().RateLimited >= 100-20-5 }, 5*time.Second, 10*time.Millisecond,
		"100 messages at once with a limit of 20/s: the rest are dropped and counted (got %d)", tp.mq.Stats().RateLimited)
	dropped := tp.mq.Stats().RateLimited
	require.Never(t, func() bool { return tp.mq.Stats().RateLimited != dropped }, 200*time.Millisecond, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		var hist struct {
			TotalCount int `json:"totalCount"`
		}
		tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id, nil, &hist)
		return uint64(hist.TotalCount) == 100-dropped
	}, 5*time.Second, 20*time.Millisecond, "every message within the limit is in history, none beyond it")

	t.Logf("mosquitto_pub: %s", run("mqttv5"))
	require.Eventually(t, func() bool { return tp.mq.Stats().RateLimited == dropped+1 }, 5*time.Second, 10*time.Millisecond,
		"MQTT 5: the first message over the limit closes the connection (DISCONNECT 0x96)")
	require.Never(t, func() bool { return tp.mq.Stats().RateLimited != dropped+1 }, 200*time.Millisecond, 10*time.Millisecond,
		"nothing more is read from the closed connection")
}

// TestMQTTDefaultPortTaken: with the default :1883 taken (a Mosquitto on
// this machine), the platform starts without the MQTT listener and says
// which flag moves it.
func TestMQTTDefaultPortTaken(t *testing.T) {
	if l, err := net.Listen("tcp", ":1883"); err == nil { // taken either way
		defer l.Close()
	}
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.CoAPAddr, cfg.DTLSAddr = "127.0.0.1:0", "127.0.0.1:0"
	var logs strings.Builder
	p, err := New(cfg, slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)))
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Listen(), "a taken default MQTT port must not stop the platform")
	require.Empty(t, p.mq.Addr("tcp"), "no MQTT listener on a taken port")
	require.Contains(t, logs.String(), "set -mqtt to another address", "the log names the flag")

	cfg.MQTTAddr = "127.0.0.1:1883" // not the default spelling: the operator's choice
	cfg.DataDir = t.TempDir()
	p2, err := New(cfg, nil)
	require.NoError(t, err)
	defer p2.Close()
	require.Error(t, p2.Listen(), "an address the operator chose must open or fail the start")
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
