package main

import (
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDeviceAddresses: the platform says where devices connect, with the
// ports it bound (port 0 in the tests) and its host.
func TestDeviceAddresses(t *testing.T) {
	tp := startPlatform(t)
	var got map[string]deviceAddress
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/doze/v1/deviceAddresses", nil, &got))
	require.Equal(t, map[string]deviceAddress{
		"coap":  {Host: "127.0.0.1", Port: tp.lwm.UDPAddr().(*net.UDPAddr).Port},
		"coaps": {Host: "127.0.0.1", Port: tp.lwm.DTLSAddr().(*net.UDPAddr).Port},
	}, got, "GET /doze/v1/deviceAddresses with plain CoAP and DTLS on, bootstrap off")

	off := startPlatform(t, func(c *Config) { c.CoAPAddr = "off" })
	got = nil
	require.Equal(t, http.StatusOK, off.call(t, "GET", "/doze/v1/deviceAddresses", nil, &got))
	require.NotContains(t, got, "coap", "plain CoAP is off: %v", got)
	require.Contains(t, got, "coaps")
}

// TestAddressOf: a wildcard address has no host (every address), a bound
// one keeps its own.
func TestAddressOf(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want deviceAddress
		ok   bool
	}{
		{&net.UDPAddr{IP: net.IPv6unspecified, Port: 5684}, deviceAddress{Port: 5684}, true},
		{&net.UDPAddr{IP: net.IPv4zero, Port: 5683}, deviceAddress{Port: 5683}, true},
		{&net.UDPAddr{Port: 5683}, deviceAddress{Port: 5683}, true},
		{&net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5684}, deviceAddress{Host: "192.0.2.7", Port: 5684}, true},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5684}, deviceAddress{Host: "2001:db8::1", Port: 5684}, true},
		{nil, deviceAddress{}, false},
		{(*net.UDPAddr)(nil), deviceAddress{}, false},
	} {
		got, ok := addressOf(tc.addr)
		require.Equal(t, tc.ok, ok, "addressOf(%v)", tc.addr)
		require.Equal(t, tc.want, got, "addressOf(%v)", tc.addr)
	}
}
