package main

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/lwm2m/lwm2mtest"
)

// startConformDevice connects a conformance device (go-coap's codec over
// pion DTLS, not transport.Client) to the platform with its PSK and registers.
func startConformDevice(t *testing.T, tp *testPlatform, imei string, psk []byte, cfg lwm2mtest.DeviceConfig) *lwm2mtest.Device {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ra := tp.lwm.DTLSAddr().(*net.UDPAddr)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: ra.IP})
	require.NoError(t, err)
	identity := "urn:imei:" + imei
	conn, err := dtls.ClientWithOptions(pc, ra,
		dtls.WithPSK(func([]byte) ([]byte, error) { return psk, nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8))
	require.NoError(t, err)
	require.NoError(t, conn.HandshakeContext(ctx))
	cfg.Endpoint = identity
	d, err := lwm2mtest.StartDevice(ctx, conn, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		d.Close()
		_ = pc.Close()
	})
	return d
}

// Issue 20.1 through the platform: a command reaches a strict LwM2M 1.1
// device as a write of /19/1/0/0 and is DELIVERED; a device refusing every
// form ends the command FAILED at once with its code, never retried.
func TestCommandToStrictDevice(t *testing.T) {
	tp := startPlatform(t)
	hook := newSink(t)
	subscribe(t, tp, hook, "deviceDataChanged")
	cd, err := codec.Compile(demoCodec, nil)
	require.NoError(t, err)

	command := func(deviceID string) string {
		var cmd struct {
			CommandID string `json:"commandId"`
		}
		require.Equal(t, http.StatusCreated, tp.call(t, "POST", "/iocm/app/cmd/v1.4.0/deviceCommands", map[string]any{
			"deviceId": deviceID, "callbackUrl": hook.srv.URL + "/cmd",
			"command": map[string]any{"serviceId": "Meter", "method": "SET_REPORT_PERIOD", "paras": map[string]any{"period": 600}},
		}, &cmd))
		return cmd.CommandID
	}

	t.Run("1.1 device", func(t *testing.T) {
		const imei = "868333030000601"
		id, psk := registerDevice(t, tp, imei)
		d := startConformDevice(t, tp, imei, psk, lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11})
		cmdID := command(id)
		hook.wait(t, "DELIVERED", func(p map[string]any) bool { return resultCode(p) == "DELIVERED" && p["commandId"] == cmdID })
		var ws []string
		for _, w := range d.Writes() {
			ws = append(ws, w.String())
		}
		require.Equal(t, []string{"PUT /19/1/0/0 cf=42 → 2.04"}, ws)
		require.Len(t, d.Data(), 1)
		msg, err := cd.DecodeDownlink(d.Data()[0])
		require.NoError(t, err)
		require.Equal(t, "SET_REPORT_PERIOD", msg.(*codec.Command).Cmd)
	})

	t.Run("device refusing every form", func(t *testing.T) {
		const imei = "868333030000602"
		id, psk := registerDevice(t, tp, imei)
		d := startConformDevice(t, tp, imei, psk, lwm2mtest.DeviceConfig{Stack: lwm2mtest.StackRefuse, Version: "1.1"})
		cmdID := command(id)
		p := hook.wait(t, "FAILED", func(p map[string]any) bool { return resultCode(p) == "FAILED" && p["commandId"] == cmdID })
		detail, _ := p["result"].(map[string]any)["resultDetail"].(map[string]any)
		require.Equal(t, "4.00", detail["code"], "resultDetail %v carries the device's code", detail)
		require.Contains(t, detail["reason"], "refused in every form tried")
		tries := len(d.Writes())
		require.Equal(t, 3, tries, "instance, SenML, legacy: %v", d.Writes())

		var list struct {
			Data []struct {
				Status      string `json:"status"`
				IssuedTimes int    `json:"issuedTimes"`
			} `json:"data"`
		}
		require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/cmd/v1.4.0/deviceCommands?deviceId="+id, nil, &list))
		require.Len(t, list.Data, 1)
		require.Equal(t, "FAILED", list.Data[0].Status)
		time.Sleep(200 * time.Millisecond) // nothing may follow: no retry of a refused command
		require.Len(t, d.Writes(), tries)
	})
}
