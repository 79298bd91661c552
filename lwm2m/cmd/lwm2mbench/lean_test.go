package main

import (
	"context"
	"testing"
)

// TestLeanDevice registers lean devices with both servers of the benchmark
// (a real lwm2m.Server and bare go-coap, each on loopback with pion/dtls)
// and sends an uplink: the load generator speaks DTLS, CoAP and LwM2M as
// the servers expect, or its figures would mean nothing.
func TestLeanDevice(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(n int) server
	}{{"lwm2m.Server", startOurs}, {"bare go-coap", startBare}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(3)
			defer srv.stop()
			for i := range 3 {
				d, err := register(context.Background(), srv.addr, identity(i))
				if d != nil {
					defer d.Close()
				}
				if err != nil {
					t.Fatalf("device %d: %v", i, err)
				}
				if err := d.send(context.Background(), []byte{1, 2, 3}); err != nil {
					t.Fatalf("device %d uplink: %v", i, err)
				}
			}
		})
	}
}
