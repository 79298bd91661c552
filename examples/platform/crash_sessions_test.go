package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

// LWM-14: a sleeping meter's parked DTLS session, its registration and its
// observation survive a SIGKILL of the platform: after the restart its
// next record on its old session (same keys, same Connection ID) is
// understood without a handshake — its report is acknowledged and lands
// in history, and its registration update finds the registration.
func TestCrashKeepsDTLSSession(t *testing.T) {
	p := newCrashPlatform(t)
	conf := filepath.Join(p.data, "config.json")
	require.NoError(t, os.WriteFile(conf, []byte(`{"queueWindow": "1s"}`), 0o600))
	base := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	admin := "127.0.0.1:" + strconv.Itoa(freePort(t))
	dtlsAddr := freeUDPAddr(t)
	metric := func(name string) string {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				return v
			}
		}
		return ""
	}
	p.args = []string{"-config", conf, "-http", strings.TrimPrefix(base, "http://"),
		"-coap", "127.0.0.1:0", "-dtls", dtlsAddr, "-admin", admin}
	p.ready = func() bool { return metric("doze_dtls_cookies_sent_total") != "" }

	app := p.start()
	tp := &testPlatform{api: &httptest.Server{URL: base}, app: app}
	tp.token = tp.login(t)
	const imei = "868333030000920"
	id, psk := registerDevice(t, tp, imei)

	cd, err := codec.Compile(demoCodec, nil)
	require.NoError(t, err)
	c, err := transport.NewClient(transport.ClientConfig{Server: dtlsAddr, Endpoint: "urn:imei:" + imei, Key: psk, Queue: true,
		ConfirmableNotifications: true, Objects: "</1/0>,</3/0>,</19/0>,</19/1>"})
	require.NoError(t, err)
	defer c.Close()
	c.Handle("/19/0/0", transport.Resource{Read: func() (transport.Content, error) { return transport.Content{Format: lwm2m.FormatOpaque}, nil }})
	c.Handle("/19/1/0", transport.Resource{Write: func(transport.Content) error { return nil }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	require.Eventually(t, func() bool { return c.Observed("/19/0/0") }, 20*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return metric("doze_lwm2m_parked_sessions") == "1" }, 20*time.Second, 20*time.Millisecond,
		"the sleeping meter's session is parked")
	require.Equal(t, "1", metric(`doze_dtls_handshakes_total{kind="full"}`))

	p.kill()
	p.start()
	require.Equal(t, "1", metric("doze_lwm2m_parked_sessions"), "the parked session is restored")

	report, err := cd.Encode(&codec.Report{Identifier: "0", MsgType: codec.MsgReport, Data: []codec.ServiceData{
		{ServiceID: "Meter", ServiceData: map[string]any{"totalFlow": 1.5, "flowRate": 0.5, "pulseCount": 4242}},
		{ServiceID: "Battery", ServiceData: map[string]any{"batteryLevel": 80}},
		{ServiceID: "Connectivity", ServiceData: map[string]any{"signalStrength": -90}},
	}})
	require.NoError(t, err)
	require.NoError(t, c.Notify(ctx, "/19/0/0", transport.Content{Format: lwm2m.FormatOpaque, Payload: report}),
		"the report on the old session and observation is acknowledged")
	require.NoError(t, c.Update(ctx), "the registration is still there")
	require.Equal(t, "0", metric("doze_dtls_cookies_sent_total"), "no ClientHello since the restart")
	require.Equal(t, "0", metric(`doze_dtls_handshakes_total{kind="full"}`))
	require.Equal(t, "0", metric(`doze_dtls_handshakes_total{kind="resumed"}`))

	tp.token = tp.login(t)
	require.Eventually(t, func() bool {
		var hist historyAnswer
		tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id+"&serviceId=Meter", nil, &hist)
		for _, h := range hist.DTOs {
			if h.Data["pulseCount"] == float64(4242) {
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "the report after the crash is in history")
}
