package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
	"github.com/stretchr/testify/require"
)

// TestCrashKeepsAcknowledgedSend (LWM-12, STO-2): a temperature sensor of
// the demo product TS3303 reports by LwM2M Send only, each Send a mapped
// /3303/0/5700 value in SenML CBOR. The platform is killed with SIGKILL
// right after the last Send was acknowledged (2.04); after the restart
// every acknowledged temperature is in history: the Send was in the inbox
// before its 2.04.
func TestCrashKeepsAcknowledgedSend(t *testing.T) {
	p := newCrashPlatform(t)
	tp, dtlsAddr := p.startWithAPI(t)
	const imei = "868333030002901"
	id, psk := registerTempSensor(t, tp, imei)

	c, err := transport.NewClient(transport.ClientConfig{Server: dtlsAddr, Endpoint: imei, Key: psk, Objects: "</1/0>,</3303/0>"})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, c.Connect(ctx))
	require.NoError(t, c.Register(ctx))
	const sends = 20
	for i := range sends {
		body, err := lwm2m.Encode(lwm2m.FormatSenMLCBOR, lwm2m.RootPath, []lwm2m.Record{
			{Path: lwm2m.MustPath("/3303/0/5700"), Value: lwm2m.FloatValue(float64(100 + i))}})
		require.NoError(t, err)
		require.NoError(t, c.Send(ctx, transport.Content{Format: lwm2m.FormatSenMLCBOR, Payload: body}), "Send %d acknowledged", i)
	}
	p.kill() // right after the last 2.04

	p.start()
	tp.token = tp.login(t)
	var hist historyAnswer
	require.Equal(t, http.StatusOK, tp.call(t, "GET", "/iocm/app/data/v1.2.0/deviceDataHistory?deviceId="+id+"&gatewayId="+id+"&serviceId=Temperature&pageSize=100", nil, &hist))
	got := map[float64]bool{}
	for _, h := range hist.DTOs {
		if v, ok := h.Data["temperature"].(float64); ok {
			got[v] = true
		}
	}
	for i := range sends {
		require.True(t, got[float64(100+i)], "acknowledged Send %d (temperature %d) is in history after the crash; history has %s", i, 100+i, fmt.Sprint(got))
	}
}
