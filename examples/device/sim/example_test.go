package sim_test

import (
	"context"
	"fmt"
	"time"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/examples/device/sim"
	"github.com/doze-io/doze/lwm2m/transport"
)

// Example runs one simulated water meter against an transport.Server on
// loopback: it registers, reports a meter reading through the codec, and
// answers SET_REPORT_PERIOD with the command response of the same mid.
func Example() {
	uplinks := make(chan []byte, 8)
	// plain CoAP serves only the devices the policy puts there (SEC-1)
	plain := transport.EndpointPolicyFunc(func(string) transport.Security { return transport.SecurityNone })
	srv, _ := transport.New(transport.Config{UDPAddr: "127.0.0.1:0", DisableDTLS: true, Policy: plain}, transport.NewMemoryKeyStore(),
		transport.HandlerFunc(func(e transport.Event) {
			if e.Kind == transport.EventUplink {
				uplinks <- e.Payload
			}
		}))
	_ = srv.Listen()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Run(ctx) }()

	d, _ := sim.New(sim.Config{Server: srv.UDPAddr().String(), IMEI: "868333030000001", Power: sim.Power{Mode: sim.DRX}})
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-d.Ready()

	wm := sim.WaterMeterCodec()
	m, _ := wm.Decode(<-uplinks)
	for _, s := range m.(*codec.Report).Data {
		fmt.Println(s.ServiceID)
	}

	cmd, _ := wm.Encode(&codec.Command{ServiceID: "Meter", Cmd: "SET_REPORT_PERIOD", Paras: map[string]any{"period": 600}, Mid: 42})
	_ = srv.Downlink(ctx, d.IMEI(), cmd)
	// The first value of the observed /19/0/0 can come twice (the observe's
	// answer and the notification): skip reports until the response.
	var r *codec.Response
	for r == nil {
		m, _ = wm.Decode(<-uplinks)
		r, _ = m.(*codec.Response)
	}
	fmt.Println("mid", r.Mid, "result", r.Body["result"], "period", d.ReportPeriod())

	cancel()
	<-done
	// Output:
	// Battery
	// Connectivity
	// Meter
	// mid 42 result 0 period 10m0s
}

// Example_modes shows when a device in each power mode answers downlinks.
func Example_modes() {
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	lastUplink := t0
	for _, p := range []sim.Power{
		{Mode: sim.PSM, ActiveTime: 20 * time.Second},
		{Mode: sim.DRX},
		{Mode: sim.EDRX, ActiveTime: 5 * time.Second, Cycle: 20480 * time.Millisecond, PagingWindow: 2560 * time.Millisecond},
	} {
		now := t0.Add(41 * time.Second)
		fmt.Printf("%-4s reachable 41s after the uplink: %-5v next change: %s\n", p.Mode, p.Reachable(t0, lastUplink, now),
			p.NextChange(t0, lastUplink, now).Format("15:04:05.000"))
	}
	// Output:
	// psm  reachable 41s after the uplink: false next change: 00:00:00.000
	// drx  reachable 41s after the uplink: true  next change: 00:00:00.000
	// edrx reachable 41s after the uplink: true  next change: 08:00:43.520
}
