package registry_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/doze-io/doze/registry"
)

// A device's life: an application registers it, the device connects over
// DTLS with its PSK (the server looks the key up by identity), reports,
// and is listed by status.
func Example() {
	ctx := context.Background()
	products := registry.ProductsFunc(func(manufacturerID, model string) bool {
		return manufacturerID == "acme" && model == "WM1"
	})
	events := registry.ListenerFunc(func(e registry.Event) {
		fmt.Println("event:", e.Type, e.Device.NodeID, e.Device.Status)
	})
	r, err := registry.New(registry.NewMemStore(), products, registry.Config{Listener: events})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	d, err := r.Register(ctx, registry.Enrollment{
		NodeID: "861234567890123",
		Info:   registry.Info{ManufacturerID: "acme", DeviceType: "WaterMeter", Model: "WM1", ProtocolType: "CoAP", Name: "meter 1"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verifyCode:", d.VerifyCode, "timeout:", d.Timeout, "psk hex digits:", len(d.PSK.Hex()))
	fmt.Println("printed psk:", d.PSK)

	// The DTLS server's key lookup: the identity is the nodeId, in either form.
	key, err := r.PSK(ctx, "urn:imei:861234567890123")
	if err != nil {
		log.Fatal(err)
	}
	// After the handshake succeeded with that key, the device binds.
	if _, err := r.Connect(ctx, "861234567890123", registry.Connection{PSK: key}); err != nil {
		log.Fatal(err)
	}
	// Every uplink touches the device.
	if _, err := r.Touch(ctx, d.ID); err != nil {
		log.Fatal(err)
	}
	online, total, err := r.List(ctx, registry.Query{Status: registry.StatusOnline, PageSize: 10})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("online:", total, online[0].Info.Name)

	_, err = r.Register(ctx, registry.Enrollment{NodeID: "urn:imei:861234567890123", Info: d.Info})
	fmt.Println(err)
	// Output:
	// event: added 861234567890123 INACTIVE
	// verifyCode: 861234567890123 timeout: 3m0s psk hex digits: 32
	// printed psk: REDACTED
	// event: bound 861234567890123 ONLINE
	// event: status changed 861234567890123 ONLINE
	// online: 1 meter 1
	// registry: nodeId "urn:imei:861234567890123": is already registered: one nodeId belongs to one device
}

// Groups collect devices for listing and batch work.
func ExampleRegistry_AddToGroup() {
	ctx := context.Background()
	r, _ := registry.New(registry.NewMemStore(), registry.ProductsFunc(func(string, string) bool { return true }), registry.Config{})
	defer r.Close()
	info := registry.Info{ManufacturerID: "acme", DeviceType: "WaterMeter", Model: "WM1", ProtocolType: "CoAP"}
	var ids []string
	for _, n := range []string{"861", "862", "863"} {
		d, _ := r.Register(ctx, registry.Enrollment{NodeID: n, Info: info})
		ids = append(ids, d.ID)
	}
	g, _ := r.CreateGroup(ctx, "building A", "meters in building A")
	if err := r.AddToGroup(ctx, g.ID, ids[0], ids[2]); err != nil {
		log.Fatal(err)
	}
	members, total, _ := r.Members(ctx, g.ID, registry.Query{})
	fmt.Println(total, members[0].NodeID, members[1].NodeID)
	fmt.Println(r.AddToGroup(ctx, "no-such-group", ids[1]))
	// Output:
	// 2 861 863
	// registry: groupId "no-such-group": must name an existing group
}

// The timing rules are plain arithmetic; Run acts on their results.
func ExampleOfflineAt() {
	seen := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	nb := registry.Device{Status: registry.StatusOnline, Bound: true, LastSeen: seen}
	fmt.Println(registry.OfflineAt(&nb, registry.DefaultSilencePeriod, registry.DefaultDisconnectGrace))
	mqtt := registry.Device{Status: registry.StatusOnline, Bound: true, LastSeen: seen, DisconnectedAt: seen.Add(time.Hour)}
	fmt.Println(registry.OfflineAt(&mqtt, registry.DefaultSilencePeriod, registry.DefaultDisconnectGrace))
	fmt.Println(registry.ExpiresAt(seen, registry.DefaultTimeout))
	// Output:
	// 2026-05-02 09:00:00 +0000 UTC
	// 2026-05-01 09:01:00 +0000 UTC
	// 2026-05-01 08:03:00 +0000 UTC
}

// A PSK prints as REDACTED everywhere; Hex is the one way out.
func ExampleParsePSK() {
	k, err := registry.ParsePSK("00112233445566778899aabbccddeeff")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k, len(k))
	fmt.Printf("%x\n", k)
	fmt.Println(k.Hex())
	_, err = registry.ParsePSK("00112233")
	fmt.Println(err)
	// Output:
	// REDACTED 16
	// REDACTED
	// 00112233445566778899aabbccddeeff
	// registry: psk: must be 16 to 128 hex digits (8 to 64 bytes); got 8 characters
}
