package main

import (
	"net/http"
	"testing"

	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

// TestEndpointPolicy: the lwm2m server learns each endpoint's transport
// from the registry (SEC-1): PSK devices DTLS only, NONE devices plain
// CoAP only, unknown or deleted endpoints nothing; both nodeId forms.
func TestEndpointPolicy(t *testing.T) {
	tp := startPlatform(t)
	pskID, _ := registerDevice(t, tp, "868333030000101")
	var none struct{ DeviceID string }
	require.Equal(t, http.StatusOK, tp.call(t, "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", map[string]any{
		"nodeId": "868333030000102", "security": "NONE", "deviceInfo": map[string]any{"manufacturerId": demoManufacturerID,
			"deviceType": demoDeviceType, "model": demoModel, "protocolType": "LWM2M"}}, &none))

	pol := endpointPolicy{tp.Platform}
	for _, c := range []struct {
		ep   string
		want transport.Security
	}{
		{"868333030000101", transport.SecurityPSK},
		{"urn:imei:868333030000101", transport.SecurityPSK},
		{"868333030000102", transport.SecurityNone},
		{"868333030000199", transport.SecurityUnknown},
	} {
		require.Equal(t, c.want, pol.EndpointSecurity(c.ep), "EndpointSecurity(%q)", c.ep)
	}
	require.Equal(t, http.StatusNoContent, tp.call(t, "DELETE", "/iocm/app/dm/v1.4.0/devices/"+pskID, nil, nil))
	require.Equal(t, transport.SecurityUnknown, pol.EndpointSecurity("868333030000101"), "a deleted device is unknown")
}
