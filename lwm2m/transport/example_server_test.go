package transport_test

import (
	"context"
	"fmt"
	"time"

	"github.com/doze-io/doze/lwm2m"
	"github.com/doze-io/doze/lwm2m/transport"
)

// A device registers over DTLS with its PSK, the server observes /19/0/0,
// the device reports data, and the server writes a command to /19/1/0.
func Example_server() {
	const imei = "868333030000001"
	keys := transport.NewMemoryKeyStore()
	keys.Set(imei, []byte("0123456789abcdef"))

	uplink := make(chan transport.Event, 1)
	srv, err := transport.New(transport.Config{DisableUDP: true, DTLSAddr: "127.0.0.1:0"}, keys,
		transport.HandlerFunc(func(e transport.Event) {
			if e.Kind == transport.EventUplink {
				uplink <- e
			}
		}))
	if err != nil {
		panic(err)
	}
	if err := srv.Listen(); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()

	dev, err := transport.NewClient(transport.ClientConfig{
		Server: srv.DTLSAddr().String(), Endpoint: "urn:imei:" + imei, Key: []byte("0123456789abcdef"),
	})
	if err != nil {
		panic(err)
	}
	defer dev.Close()
	commands := make(chan []byte, 1)
	dev.Handle("/19/0/0", transport.Resource{Read: func() (transport.Content, error) {
		return transport.Content{Format: lwm2m.FormatOpaque}, nil
	}})
	dev.Handle("/19/1/0", transport.Resource{Write: func(c transport.Content) error { commands <- c.Payload; return nil }})
	if err := dev.Connect(ctx); err != nil {
		panic(err)
	}
	if err := dev.Register(ctx); err != nil {
		panic(err)
	}
	for !dev.Observed("/19/0/0") { // the server observes the data resource
		time.Sleep(time.Millisecond)
	}
	if err := dev.Notify(ctx, "/19/0/0", transport.Content{Format: lwm2m.FormatOpaque, Payload: []byte{0x01, 0x17}}); err != nil {
		panic(err)
	}
	e := <-uplink
	fmt.Printf("uplink from %s on %s: % x\n", e.Endpoint, e.Path, e.Payload)

	if err := srv.Downlink(ctx, imei, []byte{0xA0, 0x01}); err != nil {
		panic(err)
	}
	fmt.Printf("device got command: % x\n", <-commands)
	// Output:
	// uplink from 868333030000001 on /19/0/0: 01 17
	// device got command: a0 01
}

// The retransmission schedule of the NB-IoT profile (LWM-9) for the
// smallest and a middle random draw: waits after each try, the last one
// before giving up.
func ExampleTransmission_Schedule() {
	fmt.Println(transport.Transmission{}.Schedule(0))
	fmt.Println(transport.Transmission{}.Schedule(0.5))
	// Output:
	// [10s 20s 40s 1m20s]
	// [12.5s 25s 50s 1m40s]
}
