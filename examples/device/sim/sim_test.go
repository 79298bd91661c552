package sim_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/examples/device/sim"
	"github.com/doze-io/doze/internal/deptest"
	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
)

func TestImports(t *testing.T) { deptest.Check(t) }

// TestReportAndCommand: an LwM2M device registers with object 19, its
// first reading arrives as an uplink the codec decodes, a
// SET_REPORT_PERIOD written to /19/1/0 is answered with the command
// response carrying the same mid (LWM-5, COD-4).
func TestReportAndCommand(t *testing.T) {
	for _, proto := range []sim.Protocol{sim.LwM2M, sim.TUP} {
		t.Run(string(proto), func(t *testing.T) {
			p := startServer(t, transport.Config{DisableDTLS: true}, nil)
			d, err := sim.New(sim.Config{Server: p.srv.UDPAddr().String(), IMEI: "868333030000001",
				Protocol: proto, Power: sim.Power{Mode: sim.DRX}})
			require.NoError(t, err)
			run(t, d)
			reg := p.next(t, transport.EventRegistered)
			require.Equal(t, proto == sim.TUP, reg.Registration.TUP)
			require.False(t, reg.Registration.Queue, "a DRX device is always reachable: no queue mode")
			if proto == sim.LwM2M {
				require.True(t, reg.Registration.Objects.Has(lwm2m.MustPath("/19/0")), "registration %q announces /19/0", reg.Registration.Links)
			}
			up := p.next(t, transport.EventUplink)
			wm := sim.WaterMeterCodec()
			m, err := wm.Decode(up.Payload)
			require.NoError(t, err, "decoding uplink %X", up.Payload)
			rep, ok := m.(*codec.Report)
			require.True(t, ok, "uplink decodes to %T, want *codec.Report", m)
			require.Len(t, rep.Data, 3)
			require.Equal(t, "Meter", rep.Data[2].ServiceID)

			// The report ACK the platform sends back is counted.
			ack, err := wm.Encode(&codec.ReportAck{Request: up.Payload})
			require.NoError(t, err)
			require.NoError(t, p.srv.Downlink(context.Background(), d.IMEI(), ack))
			require.Eventually(t, func() bool { return d.Stats().ReportAcks == 1 }, 5*time.Second, 5*time.Millisecond)

			cmd, err := wm.Encode(&codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Paras: map[string]any{"period": 600}, Mid: 7})
			require.NoError(t, err)
			require.NoError(t, p.srv.Downlink(context.Background(), d.IMEI(), cmd))
			up = nextResponse(t, p, 7)
			require.Equal(t, []byte{0x03, 0x00, 0x07, 0x00}, up.Payload, "command response 03 mid=0007 result=00")
			m, err = wm.Decode(up.Payload)
			require.NoError(t, err)
			require.Equal(t, 7, m.(*codec.Response).Mid)
			require.Equal(t, 600*time.Second, d.ReportPeriod())
			require.Eventually(t, func() bool { return d.Stats().Commands == 1 }, 5*time.Second, 5*time.Millisecond)

			// A period ≤ 0 is refused: result 1, same mid, period kept.
			cmd, err = wm.Encode(&codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Paras: map[string]any{"period": 0}, Mid: 8})
			require.NoError(t, err)
			require.NoError(t, p.srv.Downlink(context.Background(), d.IMEI(), cmd))
			up = nextResponse(t, p, 8)
			require.Equal(t, []byte{0x03, 0x00, 0x08, 0x01}, up.Payload, "command response 03 mid=0008 result=01")
			require.Equal(t, 600*time.Second, d.ReportPeriod())

			// Bytes the codec cannot decode are counted, not answered.
			require.NoError(t, p.srv.Downlink(context.Background(), d.IMEI(), []byte{0x7F, 0x01}))
			require.Eventually(t, func() bool { return d.Stats().DecodeErrors == 1 }, 5*time.Second, 5*time.Millisecond)
			require.Equal(t, int64(2), d.Stats().Commands)
		})
	}
}

// TestRunEnds: Run returns nil when its context ends, Report then fails
// with ErrNotRunning, and a Device runs once.
func TestRunEnds(t *testing.T) {
	p := startServer(t, transport.Config{DisableDTLS: true}, nil)
	d, err := sim.New(sim.Config{Server: p.srv.UDPAddr().String(), IMEI: "868333030000007", Power: sim.Power{Mode: sim.DRX}, NoFirstReport: true})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-d.Ready()
	require.NoError(t, d.Report(ctx))
	cancel()
	require.NoError(t, <-done)
	require.ErrorIs(t, d.Report(context.Background()), sim.ErrNotRunning)
	err = d.Run(context.Background())
	require.ErrorIs(t, err, sim.ErrClosed)
	require.ErrorContains(t, err, "Run called twice")
}

// TestRunUnreachable: a device whose DTLS key the server does not know
// fails in Run with the handshake error, and Ready stays open.
func TestRunUnreachable(t *testing.T) {
	p := startServer(t, transport.Config{DisableUDP: true}, nil)
	d, err := sim.New(sim.Config{Server: p.srv.DTLSAddr().String(), IMEI: "868333030000008", Key: []byte("unknown-key-0000")})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = d.Run(ctx)
	require.ErrorContains(t, err, "868333030000008")
	require.ErrorContains(t, err, "DTLS")
	select {
	case <-d.Ready():
		t.Fatal("Ready closed although the device never registered")
	default:
	}
}

// nextResponse returns the next command response (message type 03) for
// mid, skipping reports (the device's current reading can arrive twice, as
// the answer to the server's observe and as a notification) and earlier
// responses, which can come again: when the server observes the data
// channel anew (its first observe got no answer, and the device was heard
// from since), the device answers with its last uplink, and the server
// takes that value as uplink data.
func nextResponse(t *testing.T, p *platform, mid uint16) transport.Event {
	t.Helper()
	for {
		up := p.next(t, transport.EventUplink)
		if len(up.Payload) >= 3 && up.Payload[0] == 0x03 && binary.BigEndian.Uint16(up.Payload[1:3]) == mid {
			return up
		}
	}
}
