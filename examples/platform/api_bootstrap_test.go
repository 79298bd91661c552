package main

import (
	"context"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

func withBootstrap(c *Config) {
	c.BootstrapAddr = "127.0.0.1:0"
	c.BootstrapDTLSAddr = "127.0.0.1:0"
}

// TestBootstrapThenRegister is LWM-13's evidence on the platform: the
// bootstrap configuration is set through the API, and a strict
// transport.Client that starts with only its bootstrap server and bootstrap
// key bootstraps over DTLS, is given the platform's server and its own
// PSK, and registers there over DTLS with that key.
func TestBootstrapThenRegister(t *testing.T) {
	tp := startPlatform(t, withBootstrap)
	const imei = "868333030000301"
	id, psk := registerDevice(t, tp, imei)
	bsKey := []byte("bootstrap-only-k")

	var got map[string]any
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/doze/v1/bootstrap/urn:imei:"+imei, map[string]any{
		"serverUri": "coaps://" + tp.lwm.DTLSAddr().String(), "securityMode": "psk", "lifetime": 600, "binding": "UQ",
		"bootstrapPskHex": hex.EncodeToString(bsKey)}, &got))
	require.Equal(t, "device", got["psk"], "no pskHex: the device's own PSK is written")
	require.Equal(t, imei, got["pskIdentity"])
	require.NotContains(t, got, "pskHex", "keys are never shown")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bc, err := transport.NewClient(transport.ClientConfig{Server: tp.bs.DTLSAddr().String(), Endpoint: imei, Key: bsKey})
	require.NoError(t, err)
	defer bc.Close()
	require.NoError(t, bc.Connect(ctx))
	accts, err := bc.Bootstrap(ctx)
	require.NoError(t, err, "bootstrap over DTLS with the bootstrap key")
	require.Len(t, accts, 1)
	require.Equal(t, transport.Key(psk), accts[0].Key, "the device is given its PSK")
	require.NoError(t, bc.Close())

	cfg, err := accts[0].ClientConfig(transport.ClientConfig{Endpoint: imei, Objects: "</1/0>,</3/0>"})
	require.NoError(t, err)
	c, err := transport.NewClient(cfg)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Connect(ctx), "DTLS with the PSK from the bootstrap")
	require.NoError(t, c.Register(ctx))
	var reg map[string]any
	require.Eventually(t, func() bool {
		return tp.call(t, "GET", "/doze/v1/devices/"+id+"/lwm2m-registration", nil, &reg) == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "registered on the platform")
	require.Equal(t, true, reg["secure"])
	require.Equal(t, true, reg["queueMode"], "binding UQ from the bootstrap")
	require.EqualValues(t, 600, reg["lifetime"], "lifetime from the bootstrap")

	require.Eventually(t, func() bool {
		got = nil
		tp.call(t, "GET", "/doze/v1/bootstrap/"+imei, nil, &got)
		return got["lastResult"] == "ok"
	}, 5*time.Second, 20*time.Millisecond, "the bootstrap's result is kept: %v", got)

	// without a configuration the bootstrap server knows the device no more
	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", "/doze/v1/bootstrap/"+imei, nil, nil))
	require.Equal(t, http.StatusNotFound, tp.call(t, "GET", "/doze/v1/bootstrap/"+imei, nil, nil))
	again, err := transport.NewClient(transport.ClientConfig{Server: tp.bs.DTLSAddr().String(), Endpoint: imei, Key: bsKey, HandshakeTimeout: 3 * time.Second})
	require.NoError(t, err)
	defer again.Close()
	require.Error(t, again.Connect(ctx), "handshake refused after DELETE")
}

// TestBootstrapPlainDevice: a device registered with security NONE and no
// bootstrap key bootstraps over plain CoAP only; over plain CoAP a PSK
// device is refused with 4.01 and an unknown one with 4.03.
func TestBootstrapPlainDevice(t *testing.T) {
	tp := startPlatform(t, withBootstrap)
	const plain = "868333030000302"
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{
		"nodeId": plain, "security": "NONE", "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID,
			"deviceType": demoDeviceType, "model": demoModel, "protocolType": "LWM2M"}}, nil))
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/doze/v1/bootstrap/"+plain, map[string]any{
		"serverUri": "coap://" + tp.lwm.UDPAddr().String(), "securityMode": "none"}, nil))
	const pskDev = "868333030000303"
	registerDevice(t, tp, pskDev)
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/doze/v1/bootstrap/"+pskDev, map[string]any{
		"serverUri": "coaps://" + tp.lwm.DTLSAddr().String(), "securityMode": "psk"}, nil))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		ep   string
		want transport.Code
	}{{pskDev, 129 /* 4.01 */}, {"868333030000399", 131 /* 4.03 */}, {plain, 0}} {
		c, err := transport.NewClient(transport.ClientConfig{Server: tp.bs.UDPAddr().String(), Endpoint: tc.ep})
		require.NoError(t, err)
		require.NoError(t, c.Connect(ctx))
		accts, err := c.Bootstrap(ctx)
		c.Close()
		if tc.want != 0 {
			var re *transport.ResponseError
			require.ErrorAs(t, err, &re, tc.ep)
			require.Equal(t, tc.want, re.Code, "%s: %v", tc.ep, err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, transport.SecurityNone, accts[0].Security)
		rc, err := accts[0].ClientConfig(transport.ClientConfig{Endpoint: plain, Objects: "</3/0>"})
		require.NoError(t, err)
		d, err := transport.NewClient(rc)
		require.NoError(t, err)
		defer d.Close()
		require.NoError(t, d.Connect(ctx))
		require.NoError(t, d.Register(ctx), "registers over plain CoAP as the bootstrap said")
	}
}

// TestBootstrapAPIRefusals: each bad configuration is a 400 naming the
// field; an unknown device is a 404.
func TestBootstrapAPIRefusals(t *testing.T) {
	tp := startPlatform(t)
	const imei = "868333030000304"
	registerDevice(t, tp, imei)
	ok := map[string]any{"serverUri": "coaps://h:5684", "securityMode": "psk"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range ok {
			m[a] = b
		}
		m[k] = v
		return m
	}
	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{with("serverUri", ""), "serverUri is required"},
		{with("serverUri", "coap://h:5683"), "does not fit securityMode"},
		{with("serverUri", "http://h"), "want coaps://"},
		{with("securityMode", "rpk"), "securityMode"},
		{with("lifetime", 300000), "lifetime"},
		{with("binding", "S"), "binding"},
		{with("pskHex", "zz"), "pskHex"},
		{with("bootstrapPskHex", "0011"), "bootstrapPskHex"},
	} {
		var e apiError
		require.Equal(t, http.StatusBadRequest, tp.call(t, "PUT", "/doze/v1/bootstrap/"+imei, tc.body, &e), "%v", tc.body)
		require.Equal(t, "bad_bootstrap", e.Code)
		require.Contains(t, e.Desc, tc.want)
	}
	require.Equal(t, http.StatusNotFound, tp.call(t, "PUT", "/doze/v1/bootstrap/868333030000398", ok, nil))
	require.Equal(t, http.StatusNotFound, tp.call(t, "DELETE", "/doze/v1/bootstrap/"+imei, nil, nil))
	require.Equal(t, http.StatusOK, tp.call(t, "PUT", "/doze/v1/bootstrap/"+imei, ok, nil))
}
