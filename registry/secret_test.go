package registry_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

var mqttInfo = registry.Info{ManufacturerID: "acme", ManufacturerName: "Acme", DeviceType: "WaterMeter", Model: "WM1", ProtocolType: "MQTT"}

func TestRegisterMQTTSecret(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	for _, tc := range []struct {
		name  string
		reg   registry.Enrollment
		field string // "" means accepted
	}{
		{"default security for MQTT is SECRET", registry.Enrollment{NodeID: "m1", Info: mqttInfo, Secret: "0123456789abcdef"}, ""},
		{"explicit SECRET on a CoAP product", registry.Enrollment{NodeID: "m2", Info: meterInfo, Security: registry.SecuritySecret, Secret: "0123456789abcdef"}, ""},
		{"MQTT without a secret", registry.Enrollment{NodeID: "m3", Info: mqttInfo}, "secret"},
		{"secret too short", registry.Enrollment{NodeID: "m4", Info: mqttInfo, Secret: "short"}, "secret"},
		{"secret too long", registry.Enrollment{NodeID: "m5", Info: mqttInfo, Secret: fmt.Sprintf("%065d", 1)}, "secret"},
		{"secret with a space", registry.Enrollment{NodeID: "m6", Info: mqttInfo, Secret: "abc def ghij"}, "secret"},
		{"SECRET with a PSK", registry.Enrollment{NodeID: "m7", Info: mqttInfo, Secret: "0123456789abcdef", PSK: registry.NewPSK()}, "psk"},
		{"secret on a PSK device", registry.Enrollment{NodeID: "m8", Info: meterInfo, Secret: "0123456789abcdef"}, "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := r.Register(ctx, tc.reg)
			if tc.field == "" {
				require.NoError(t, err, "Register(%s)", tc.reg.NodeID)
				require.Equal(t, registry.SecuritySecret, d.Security)
				require.Nil(t, d.PSK, "an MQTT device has no PSK")
				require.True(t, d.SecretHash.Matches(tc.reg.Secret), "the hash kept must match the secret given")
				require.NotContains(t, fmt.Sprintf("%v %+v", d, d), tc.reg.Secret, "a device must never print its secret")
				return
			}
			fe, ok := errors.AsType[*registry.FieldError](err)
			require.True(t, ok, "Register(%s) = %v, want a *FieldError on %q", tc.reg.NodeID, err, tc.field)
			require.Equal(t, tc.field, fe.Field, "Register(%s) = %v", tc.reg.NodeID, err)
			require.ErrorIs(t, fe, registry.ErrInvalid)
			if tc.reg.Secret != "" {
				require.NotContains(t, err.Error(), tc.reg.Secret, "an error must not repeat the secret")
			}
		})
	}
}

func TestConnectWithSecret(t *testing.T) {
	r, rec := newRegistry(t, registry.Config{})
	secret := registry.NewSecret()
	require.Len(t, secret, 32)
	d, err := r.Register(ctx, registry.Enrollment{NodeID: "860000000000077", Info: mqttInfo, Secret: secret})
	require.NoError(t, err)
	rec.take()

	_, err = r.Connect(ctx, d.NodeID, registry.Connection{Secret: "wrong-secret-123", Persistent: true})
	require.ErrorIs(t, err, registry.ErrBadCredential, "Connect with a wrong secret")
	_, err = r.Connect(ctx, d.NodeID, registry.Connection{VerifyCode: d.NodeID})
	require.ErrorIs(t, err, registry.ErrWrongTransport, "plain CoAP for an MQTT device")
	_, err = r.PSK(ctx, d.NodeID)
	require.ErrorIs(t, err, registry.ErrWrongTransport, "DTLS key of an MQTT device")
	require.Empty(t, rec.take(), "refused connections change nothing")

	got, err := r.Connect(ctx, d.NodeID, registry.Connection{Secret: secret, Persistent: true})
	require.NoError(t, err)
	require.True(t, got.Bound)
	require.True(t, got.Connected)
	require.Equal(t, registry.StatusOnline, got.Status)

	coap := register(t, r, "860000000000078")
	_, err = r.Connect(ctx, coap.NodeID, registry.Connection{Secret: secret})
	require.ErrorIs(t, err, registry.ErrWrongTransport, "a secret for a device registered with a PSK")
}
