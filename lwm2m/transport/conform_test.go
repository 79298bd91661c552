package transport_test

import (
	"context"

	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/lwm2m/lwm2mtest"
	"github.com/doze-io/doze/lwm2m/transport"
)

// plainServer runs a plain-CoAP server on loopback until the test ends.
func plainServer(t *testing.T) *transport.Server {
	t.Helper()
	s, err := transport.New(transport.Config{UDPAddr: "127.0.0.1:0", DisableDTLS: true,
		Policy: transport.EndpointPolicyFunc(func(string) transport.Security { return transport.SecurityNone })}, nil, nil)
	require.NoError(t, err)
	require.NoError(t, s.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return s
}

// startDevice registers a conformance device (not transport.Client) with s.
func startDevice(t *testing.T, s *transport.Server, cfg lwm2mtest.DeviceConfig) *lwm2mtest.Device {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, s.UDPAddr().(*net.UDPAddr))
	require.NoError(t, err)
	d, err := lwm2mtest.StartDevice(testCtx(t), conn, cfg)
	require.NoError(t, err)
	t.Cleanup(d.Close)
	return d
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// writes renders the device's answered writes of /19/1 as "PUT path cf → code".
func writes(d *lwm2mtest.Device) []string {
	var out []string
	for _, r := range d.Writes() {
		out = append(out, r.String())
	}
	return out
}

const (
	wInstance = "PUT /19/1/0/0 cf=42"
	wSenML    = "PUT /19/1/0 cf=110"
	wTLV      = "PUT /19/1/0 cf=11542"
	wLegacy   = "PUT /19/1/0 cf=42"
)

// Issue 20.1: object 19's Data resource is Multiple. Downlink reaches each
// kind of stack in the form it takes, falls back on 4.00/4.04/4.15, and
// the second downlink goes straight to the form that worked.
func TestDownlinkReachesEveryStack(t *testing.T) {
	tests := []struct {
		name   string
		cfg    lwm2mtest.DeviceConfig
		first  []string // writes of the first downlink
		second []string // writes of the second
		form   transport.DownlinkForm
	}{
		{"1.1 client takes the resource instance", lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack11},
			[]string{wInstance + " → 2.04"}, []string{wInstance + " → 2.04"}, transport.DownlinkInstance},
		{"1.0 client takes TLV", lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack10},
			[]string{wTLV + " → 2.04"}, []string{wTLV + " → 2.04"}, transport.DownlinkTLV},
		{"legacy module announcing 1.0", lwm2mtest.DeviceConfig{Stack: lwm2mtest.StackLegacy},
			[]string{wTLV + " → 4.15", wLegacy + " → 2.04"}, []string{wLegacy + " → 2.04"}, transport.DownlinkLegacy},
		{"legacy module announcing 1.1 and SenML", lwm2mtest.DeviceConfig{Stack: lwm2mtest.StackLegacy, Version: "1.1"},
			[]string{wInstance + " → 4.04", wSenML + " → 4.15", wLegacy + " → 2.04"}, []string{wLegacy + " → 2.04"}, transport.DownlinkLegacy},
		{"TLV-only client announcing 1.1 and no formats", lwm2mtest.DeviceConfig{Stack: lwm2mtest.Stack10, Version: "1.1", Links: "</19/0>,</19/1>"},
			[]string{wInstance + " → 4.04", wSenML + " → 4.15", wTLV + " → 2.04"}, []string{wTLV + " → 2.04"}, transport.DownlinkTLV},
	}
	s := plainServer(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Endpoint = fmt.Sprintf("urn:imei:86833303000010%d", i)
			d := startDevice(t, s, tt.cfg)
			require.NoError(t, s.Downlink(testCtx(t), tt.cfg.Endpoint, []byte{0xCA, 0xFE}))
			require.Equal(t, tt.first, writes(d), "writes of the first downlink")
			f, ok := s.LearnedDownlinkForm(tt.cfg.Endpoint)
			require.True(t, ok)
			require.Equal(t, tt.form, f, "LearnedDownlinkForm after the first downlink")

			require.NoError(t, s.Downlink(testCtx(t), tt.cfg.Endpoint, []byte{0x01}))
			require.Equal(t, tt.second, writes(d)[len(tt.first):], "the second downlink goes straight to the form that worked")
			require.Equal(t, [][]byte{{0xCA, 0xFE}, {0x01}}, d.Data(), "data the device took")
		})
	}
}

// A forced form is the only one tried; a device refusing every form ends
// with its code, nothing learned.
func TestDownlinkForcedAndRefused(t *testing.T) {
	s := plainServer(t)

	const senml = "urn:imei:868333030000201"
	d := startDevice(t, s, lwm2mtest.DeviceConfig{Endpoint: senml, Stack: lwm2mtest.Stack11})
	s.SetDownlinkForm(senml, transport.DownlinkSenML)
	require.NoError(t, s.Downlink(testCtx(t), senml, []byte("hi")))
	require.Equal(t, []string{wSenML + " → 2.04"}, writes(d))
	require.Equal(t, [][]byte{[]byte("hi")}, d.Data())
	_, learned := s.LearnedDownlinkForm(senml)
	require.False(t, learned, "a forced form is not learned")

	const legacy = "urn:imei:868333030000202"
	d = startDevice(t, s, lwm2mtest.DeviceConfig{Endpoint: legacy, Stack: lwm2mtest.Stack11})
	s.SetDefaultDownlinkForm(transport.DownlinkLegacy)
	err := s.Downlink(testCtx(t), legacy, []byte("x"))
	var re *transport.ResponseError
	require.ErrorAs(t, err, &re, "Downlink(forced legacy to a 1.1 client) = %v", err)
	require.Equal(t, transport.CodeBadRequest, re.Code)
	require.Equal(t, []string{wLegacy + " → 4.00"}, writes(d), "a forced form has no fallback")
	require.NoError(t, s.Downlink(testCtx(t), senml, []byte("own")), "an endpoint's own form beats the default")
	s.SetDefaultDownlinkForm(transport.DownlinkAuto)

	const refuse = "urn:imei:868333030000203"
	d = startDevice(t, s, lwm2mtest.DeviceConfig{Endpoint: refuse, Stack: lwm2mtest.StackRefuse, Version: "1.1"})
	err = s.Downlink(testCtx(t), refuse, []byte("x"))
	require.ErrorAs(t, err, &re)
	require.Equal(t, transport.CodeBadRequest, re.Code, "the device's code: %v", err)
	require.Contains(t, err.Error(), "every form tried")
	require.Equal(t, []string{wInstance + " → 4.00", wSenML + " → 4.00", wLegacy + " → 4.00"}, writes(d),
		"a 1.1 device announcing SenML: instance, SenML, legacy")
	_, learned = s.LearnedDownlinkForm(refuse)
	require.False(t, learned)
}

// A form remembered from before a restart is tried first; one that stops
// working is forgotten and the others are tried.
func TestDownlinkRememberedForm(t *testing.T) {
	s := plainServer(t)
	const ep = "urn:imei:868333030000301"
	s.RememberDownlinkForm(ep, transport.DownlinkLegacy)
	d := startDevice(t, s, lwm2mtest.DeviceConfig{Endpoint: ep, Stack: lwm2mtest.StackLegacy})
	require.NoError(t, s.Downlink(testCtx(t), ep, []byte{1}))
	require.Equal(t, []string{wLegacy + " → 2.04"}, writes(d))

	const moved = "urn:imei:868333030000302" // the module was replaced by a 1.1 stack
	s.RememberDownlinkForm(moved, transport.DownlinkLegacy)
	d = startDevice(t, s, lwm2mtest.DeviceConfig{Endpoint: moved, Stack: lwm2mtest.Stack11})
	require.NoError(t, s.Downlink(testCtx(t), moved, []byte{1}))
	require.Equal(t, []string{wLegacy + " → 4.00", wInstance + " → 2.04"}, writes(d))
	f, _ := s.LearnedDownlinkForm(moved)
	require.Equal(t, transport.DownlinkInstance, f)
}

func TestParseDownlinkForm(t *testing.T) {
	for _, f := range []transport.DownlinkForm{transport.DownlinkAuto, transport.DownlinkInstance, transport.DownlinkTLV, transport.DownlinkSenML, transport.DownlinkLegacy} {
		got, err := transport.ParseDownlinkForm(f.String())
		require.NoError(t, err)
		require.Equal(t, f, got)
	}
	_, err := transport.ParseDownlinkForm("opaque")
	require.ErrorContains(t, err, "want one of auto, instance, tlv, senml, legacy")
}
