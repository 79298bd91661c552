package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/mqtt"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// TestMQTTRefusalsInDeviceLog: wrong secrets against a device (anyone who
// knows its nodeId can send them) write one "refused" entry in its log,
// not one each, so its real log is not flushed; the failures name the
// device for the broker's limits, an unknown name names none.
func TestMQTTRefusalsInDeviceLog(t *testing.T) {
	tp := startPlatform(t)
	id, _ := registerMQTT(t, tp, "868000000000901")
	m := mqttDevices{tp.Platform}
	ctx := context.Background()
	for range 20 {
		_, err := m.Authenticate(ctx, "868000000000901", "wrong-secret-0000")
		ae, ok := err.(*mqtt.AuthError)
		require.True(t, ok, "a wrong secret is an *mqtt.AuthError: %v", err)
		require.Equal(t, id, ae.DeviceID)
		require.Equal(t, "868000000000901", ae.NodeID)
	}
	_, err := m.Authenticate(ctx, "no-such-device", "x")
	require.ErrorIs(t, err, mqtt.ErrUnknownDevice)
	refused := 0
	for _, e := range tp.log.Recent(id, 100) {
		if e.Kind == "refused" {
			refused++
		}
	}
	require.Equal(t, 1, refused, "one refused entry per device per interval")
}

// TestRefusalLog: one entry per device per refusalLogEvery; the next one
// counts the refusals that were not written; devices are apart.
func TestRefusalLog(t *testing.T) {
	var r refusalLog
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t, "refused", r.note(t0, "a", "refused"))
	require.Empty(t, r.note(t0.Add(time.Second), "a", "refused"))
	require.Empty(t, r.note(t0.Add(refusalLogEvery-time.Nanosecond), "a", "refused"))
	require.Equal(t, "refused", r.note(t0.Add(time.Second), "b", "refused"), "another device")
	msg := r.note(t0.Add(refusalLogEvery), "a", "refused")
	require.True(t, strings.HasPrefix(msg, "refused (and 2 more refused since 2026-03-01T12:00:00Z"), msg)
}

// TestMQTTPasswordGuessingLimited: against the platform, guesses of a
// device's secret beyond its budget get CONNACK 3 (server unavailable),
// the right secret too, unchecked; another device still connects.
func TestMQTTPasswordGuessingLimited(t *testing.T) {
	tp := startPlatform(t)
	addr := tp.mq.Addr("tcp")
	_, secret := registerMQTT(t, tp, "868000000000902")
	otherID, otherSecret := registerMQTT(t, tp, "868000000000903")
	connect := func(user, pass string) error {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetUsername(user).SetPassword(pass).
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second))
		tok := c.Connect()
		require.True(t, tok.WaitTimeout(10*time.Second))
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	}
	for i := range mqtt.DefaultDeviceAuthLimit.Burst {
		require.ErrorContains(t, connect("868000000000902", "wrong-secret-0000"), "not Authorized", "guess %d", i)
	}
	require.ErrorContains(t, connect("868000000000902", secret), "server Unavailable", "the right secret while limited")
	require.NoError(t, connect(otherID, otherSecret), "another device")
}
