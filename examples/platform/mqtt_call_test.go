package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/command"
)

// mqttListener is a device played by mosquitto_sub: subscribed at QoS 1
// to filter, it acknowledges every command (PUBACK) and hands each
// "topic payload" line to lines.
type mqttListener struct {
	lines chan string
	cmd   *exec.Cmd
}

func listenMQTT(t *testing.T, tp *testPlatform, clientID, user, secret, filter string) *mqttListener {
	t.Helper()
	// Generous: the whole test must fit, on a loaded CI machine too.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	sub := exec.CommandContext(ctx, "mosquitto_sub", "-h", "127.0.0.1", "-p", mqttPort(t, tp), "-V", "mqttv311",
		"-i", clientID, "-u", user, "-P", secret, "-q", "1", "-t", filter, "-v")
	stdout, err := sub.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, sub.Start())
	l := &mqttListener{lines: make(chan string, 16), cmd: sub}
	go func() {
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				close(l.lines)
				return
			}
			l.lines <- strings.TrimSpace(line)
		}
	}()
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait(); cancel() })
	return l
}

// next returns the next command the device got: its topic and payload.
func (l *mqttListener) next(t *testing.T) (topic string, payload map[string]any) {
	t.Helper()
	select {
	case line, ok := <-l.lines:
		require.True(t, ok, "mosquitto_sub ended before a command came")
		topic, body, ok := strings.Cut(line, " ")
		require.True(t, ok, "mosquitto_sub -v prints topic and payload: %q", line)
		require.NoError(t, json.Unmarshal([]byte(body), &payload), "command payload %q", body)
		return topic, payload
	case <-time.After(30 * time.Second):
		t.Fatal("no command reached the device")
	}
	return "", nil
}

// serviceCallAt calls the device service call API and returns its status
// and decoded answer (or error body).
func serviceCallAt(t *testing.T, tp *testPlatform, deviceID string, body map[string]any) (int, map[string]any) {
	t.Helper()
	var out map[string]any
	status := tp.call(t, "POST", "/iocm/app/signaltrans/v1.1.0/devices/"+deviceID+"/services/Meter/sendCommand", body, &out)
	return status, out
}

func setPeriod(mode string, timeout int) map[string]any {
	h := map[string]any{"method": "SET_REPORT_PERIOD", "mode": mode}
	if timeout > 0 {
		h["timeout"] = timeout
	}
	return map[string]any{"header": h, "body": map[string]any{"period": 900}}
}

// answerOnce waits for one command on l and answers it from the device's
// response topic with mosquitto_pub (run from a goroutine: it reports
// through the returned channel).
func answerOnce(l *mqttListener, port, clientID, user, secret, answerTopicDevice, resp string) <-chan error {
	errc := make(chan error, 1)
	go func() {
		line, ok := <-l.lines
		if !ok {
			errc <- io.ErrUnexpectedEOF
			return
		}
		topic, _, _ := strings.Cut(line, " ")
		_, req, ok := strings.Cut(topic, "/sys/commands/request_id=")
		if !ok {
			errc <- fmt.Errorf("command on an unexpected topic %q", topic)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-i", clientID, "-u", user, "-P", secret,
			"-q", "1", "-t", "$oc/devices/"+answerTopicDevice+"/sys/commands/response/request_id="+req, "-m", resp).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("mosquitto_pub: %v: %s", err, out)
		}
		errc <- err
	}()
	return errc
}

// TestMQTTServiceCall: the synchronous "device service call" (MQT-3, FAQ
// §7.1) answers with the device's response, 504 when none comes in
// time, 404/409 when the device cannot be called; the call is an
// ordinary command with consistent states.
func TestMQTTServiceCall(t *testing.T) {
	needMosquitto(t)
	tp := startPlatform(t)
	port := mqttPort(t, tp)
	id, secret := registerMQTT(t, tp, "868000000000301")

	status, out := serviceCallAt(t, tp, "no-such-device", setPeriod("ACK", 0))
	require.Equal(t, http.StatusNotFound, status, "%v", out)
	coap, _ := registerDevice(t, tp, "868000000000302")
	status, out = serviceCallAt(t, tp, coap, setPeriod("ACK", 0))
	require.Equal(t, http.StatusConflict, status, "%v", out)
	require.Equal(t, "not_mqtt_device", out["error_code"])
	status, out = serviceCallAt(t, tp, id, setPeriod("ACK", 0))
	require.Equal(t, http.StatusConflict, status, "%v", out)
	require.Equal(t, "device_not_connected", out["error_code"])
	status, out = serviceCallAt(t, tp, id, setPeriod("MAYBE", 0))
	require.Equal(t, http.StatusBadRequest, status, "%v", out)
	require.Equal(t, "invalid_mode", out["error_code"])
	status, out = serviceCallAt(t, tp, id, setPeriod("ACK", 61))
	require.Equal(t, http.StatusBadRequest, status, "%v", out)
	require.Equal(t, "invalid_timeout", out["error_code"])

	l := listenMQTT(t, tp, id, id, secret, "$oc/devices/"+id+"/sys/commands/#")
	require.Eventually(t, func() bool {
		// connected and subscribed to its commands: the platform made it
		// always reachable (MQT-3)
		m, ok, err := tp.cmds.Mode(context.Background(), id)
		return tp.mq.Connected(id) && err == nil && ok && m.Kind == command.DRX
	}, 30*time.Second, 10*time.Millisecond, "mosquitto_sub connects and subscribes")

	// ACK: the device's response is the HTTP answer.
	answered := answerOnce(l, port, id+"_resp", id, secret, id, `{"result_code":0,"response_name":"COMMAND_RESPONSE","paras":{"result":"ok"}}`)
	status, out = serviceCallAt(t, tp, id, setPeriod("ACK", 30))
	require.NoError(t, <-answered)
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, "SUCCESSFUL", out["status"])
	require.Equal(t, map[string]any{"result": "ok"}, out["body"])
	require.Regexp(t, `^\d{8}T\d{6}Z$`, out["timestamp"])
	okID, _ := out["requestId"].(string)
	require.NotEmpty(t, okID)

	// A failure the device reports is its answer too: 200, FAILED.
	answered = answerOnce(l, port, id+"_resp", id, secret, id, `{"result_code":1,"paras":{"reason":"busy"}}`)
	status, out = serviceCallAt(t, tp, id, setPeriod("", 10))
	require.NoError(t, <-answered)
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, "FAILED", out["status"])

	// NOACK: the answer comes at the device's PUBACK.
	status, out = serviceCallAt(t, tp, id, setPeriod("NOACK", 10))
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, "DELIVERED", out["status"])
	require.Nil(t, out["body"])
	l.next(t)
	noackID := out["requestId"].(string)
	// An answer later settles that command as usual.
	out2, err := mosquittoPub(t, port, "-i", id+"_resp", "-u", id, "-P", secret, "-q", "1",
		"-t", "$oc/devices/"+id+"/sys/commands/response/request_id="+noackID, "-m", `{"result_code":0}`)
	require.NoError(t, err, out2)

	// No response in time: 504 naming the command, which stays DELIVERED
	// in the engine (the engine, not the HTTP call, ends it).
	// (TestServiceCallTimeout checks in a bubble that it ends at the
	// timeout.)
	status, out = serviceCallAt(t, tp, id, setPeriod("ACK", 1))
	require.Equal(t, http.StatusGatewayTimeout, status, "%v", out)
	require.Equal(t, "device_call_timeout", out["error_code"])
	l.next(t) // the device got it and acknowledged it

	var list struct {
		Data []struct {
			CommandID string `json:"commandId"`
			Status    string `json:"status"`
		} `json:"data"`
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, &list))
	got := map[string]string{}
	for _, c := range list.Data {
		got[c.CommandID] = c.Status
	}
	require.Len(t, got, 4, "every call is a command: %v", got)
	require.Equal(t, "SUCCESSFUL", got[okID])
	require.Eventually(t, func() bool {
		c, err := tp.cmds.Get(context.Background(), noackID)
		return err == nil && c.Status.String() == "SUCCESSFUL"
	}, 5*time.Second, 10*time.Millisecond, "the NOACK call's command is settled by the later answer")
	timedOut := 0
	for _, s := range got {
		if s == "DELIVERED" {
			timedOut++
		}
	}
	require.Equal(t, 1, timedOut, "the unanswered call's command is DELIVERED, waiting for its response: %v", got)
}

// TestServiceCallTimeout: a service call waits for its command for its
// timeout exactly, no less and no longer, and then answers 504
// device_call_timeout, the command left as it was; a move that ends the
// command before answers at once (the wait is woken, not polling).
func TestServiceCallTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := &Platform{}
		cmds, err := command.New(command.NewMemStore(), command.SenderFunc(func(context.Context, command.Command) error { return nil }),
			command.ListenerFunc(p.calls.changed), command.Config{})
		require.NoError(t, err)
		p.cmds = cmds
		submit := func() command.Command {
			c, err := cmds.Submit(ctx, command.Request{AppID: "app", DeviceID: "dev", Command: command.Body{
				ServiceID: "Meter", Method: "SET_REPORT_PERIOD", Paras: json.RawMessage(`{"period":60}`)}})
			require.NoError(t, err)
			return c
		}

		c := submit() // PENDING: the device (PSM, never seen) does not wake
		start := time.Now()
		got, err := p.awaitCall(ctx, c.ID, true, 5*time.Second)
		require.Equal(t, 5*time.Second, time.Since(start), "the call ends at its timeout")
		var he *httpError
		require.ErrorAs(t, err, &he)
		require.Equal(t, http.StatusGatewayTimeout, he.Status)
		require.Equal(t, "device_call_timeout", he.Code)
		require.Equal(t, command.Pending, got.Status, "the command stays as it was")

		c = submit()
		start = time.Now()
		go func() {
			time.Sleep(2 * time.Second)
			if _, err := cmds.Cancel(ctx, c.ID); err != nil {
				t.Errorf("Cancel: %v", err)
			}
		}()
		got, err = p.awaitCall(ctx, c.ID, true, 5*time.Second)
		require.Equal(t, 2*time.Second, time.Since(start), "the call ends when its command does")
		require.ErrorAs(t, err, &he)
		require.Equal(t, "device_call_ended", he.Code)
		require.Equal(t, command.Canceled, got.Status)
	})
}
