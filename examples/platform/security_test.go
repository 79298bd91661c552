package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

// registerBody is a deviceCredentials body for the demo product.
func registerBody(imei string, extra map[string]any) map[string]any {
	b := map[string]any{"nodeId": imei, "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID,
		"deviceType": demoDeviceType, "model": demoModel, "protocolType": "LWM2M"}}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

// TestRegisterSecurityAPI: deviceCredentials takes security PSK (the
// default) or NONE, answers it, and device queries show it (SEC-1).
func TestRegisterSecurityAPI(t *testing.T) {
	tp := startPlatform(t)
	type answer struct {
		DeviceID, PSK, Security string
		apiError
	}
	var def, none answer
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", registerBody("868333030000201", nil), &def))
	require.Equal(t, "PSK", def.Security)
	require.Len(t, def.PSK, 32)
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials",
		registerBody("868333030000202", map[string]any{"security": "NONE"}), &none))
	require.Equal(t, "NONE", none.Security)
	require.Empty(t, none.PSK, "a NONE device has no key")

	var dev struct{ Security string }
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices/"+none.DeviceID, nil, &dev))
	require.Equal(t, "NONE", dev.Security)
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/reg/v1.1.0/deviceCredentials/"+def.DeviceID, nil, &dev))
	require.Equal(t, "PSK", dev.Security)
	var list struct {
		Devices []struct{ DeviceID, Security string }
	}
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/dm/v1.4.0/devices", nil, &list))
	got := map[string]string{}
	for _, d := range list.Devices {
		got[d.DeviceID] = d.Security
	}
	require.Equal(t, map[string]string{def.DeviceID: "PSK", none.DeviceID: "NONE"}, got)

	var bad answer
	require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials",
		registerBody("868333030000203", map[string]any{"security": "TLS"}), &bad))
	require.Equal(t, "invalid_security", bad.Code)
	require.Contains(t, bad.Desc, `"NONE"`)
	require.Equal(t, http.StatusBadRequest, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials",
		registerBody("868333030000204", map[string]any{"security": "NONE", "psk": "00112233445566778899aabbccddeeff"}), &bad))
	require.Equal(t, "invalid_psk", bad.Code)
}

// TestPlainImpostorCannotBind: the platform side of issue 14's takeover.
// An impostor's plain-CoAP registration in a PSK meter's name (its IMEI
// as endpoint name, the default verifyCode) reaches the platform as an
// insecure Registered event; the device stays unbound, so its data would
// be dropped. A NONE device binds the same way.
func TestPlainImpostorCannotBind(t *testing.T) {
	tp := startPlatform(t)
	meterID, _ := registerDevice(t, tp, "868333030000301")
	var none struct{ DeviceID string }
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials",
		registerBody("868333030000302", map[string]any{"security": "NONE"}), &none))

	ctx := context.Background()
	for _, ep := range []string{"868333030000301", "868333030000302"} {
		tp.handleEvent(ctx, transport.Event{Kind: transport.EventRegistered, Endpoint: ep, Time: time.Now(),
			Registration: transport.Registration{Endpoint: ep, Secure: false, Binding: "UQ"}})
	}
	meter, err := tp.reg.Get(ctx, meterID)
	require.NoError(t, err)
	require.False(t, meter.Bound, "a PSK device never binds over plain CoAP")
	require.Equal(t, registry.StatusInactive, meter.Status)
	var refused bool
	for _, e := range tp.log.Recent(meterID, 50) {
		refused = refused || e.Kind == "refused"
	}
	require.True(t, refused, "the device log says the registration was refused")
	plain, err := tp.reg.Get(ctx, none.DeviceID)
	require.NoError(t, err)
	require.True(t, plain.Bound, "a NONE device binds over plain CoAP")
}
