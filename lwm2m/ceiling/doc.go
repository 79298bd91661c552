// Package ceiling holds the measuring baselines of Doze's CoAP load runs.
// Nothing here is a product server or a product client: they exist so that
// a benchmark can say how far the platform is from what the libraries
// underneath it do alone on the same machine.
//
//   - Server is a bare go-coap server (plain CoAP over UDP, or DTLS 1.2
//     with PSK, TLS_PSK_WITH_AES_128_CCM_8 and Connection IDs on pion/dtls)
//     that only acknowledges: a registration (POST /rd) with 2.01 Created,
//     a Send (POST /dp) with 2.04 Changed, anything else with 4.04. It
//     keeps nothing and checks nothing, which makes it the ceiling that
//     the simulator's load mode (examples/device -load) and lwm2mbench
//     compare the LwM2M server against.
//   - LeanDevice is the load generator's DTLS device: a minimal DTLS 1.2
//     PSK client with no goroutine or timer of its own, which costs far
//     less CPU per handshake than a pion/dtls client, so that on one
//     machine the devices leave the server under test most of the cores.
//     lwm2mbench runs its devices with it.
//   - SourceIP spreads a load generator's sockets over loopback source
//     addresses (one address gives about 28,000 sockets towards one
//     server address).
//
// Start starts a Server at once, as net/http/httptest does; Close stops it
// and waits for its goroutines, and may be called more than once.
package ceiling
