package transport

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// SEC-2: one source IP cannot hold the handshake slots: beyond
// MaxHandshakesPerIP handshakes in flight from it, its ClientHellos (with
// a valid cookie) start nothing and are counted, while a device from
// another IP completes its handshake.
func TestDTLSHandshakesPerIP(t *testing.T) {
	const perIP, tries = 3, 6
	s, rec := startServer(t, Config{DisableUDP: true, MaxHandshakesPerIP: perIP, HandshakeTimeout: 20 * time.Second}, keys("dev1"))
	started := 0
	for i := range tries {
		p := newDTLSPeer(t, "127.0.0.2", s.DTLSAddr()) // another port of the same IP each time
		p.verifiedHello(byte(i + 1))
		if p.recv(300*time.Millisecond) != nil {
			started++
		}
	}
	require.Equal(t, perIP, started, "handshakes from one IP beyond MaxHandshakesPerIP are not started")
	st := s.DTLSStats()
	require.Equal(t, perIP, st.HandshakesInFlight)
	require.Equal(t, uint64(tries-perIP), st.HellosDroppedPerIP)

	c := newClient(t, ClientConfig{Server: s.DTLSAddr().String(), Endpoint: "dev1", Key: testKey})
	require.NoError(t, c.Connect(ctxT(t)), "a device from another IP completes its handshake")
	require.NoError(t, c.Register(ctxT(t)))
	rec.wait(t, EventRegistered, "dev1", 1)
}

func TestHandshakeSource(t *testing.T) {
	a := func(s string) *net.UDPAddr { return net.UDPAddrFromAddrPort(mustAddrPort(t, s)) }
	require.Equal(t, sourcePrefix(a("192.0.2.1:1")), sourcePrefix(a("192.0.2.1:2")), "ports of one IPv4 address")
	require.NotEqual(t, sourcePrefix(a("192.0.2.1:1")), sourcePrefix(a("192.0.2.2:1")))
	require.Equal(t, sourcePrefix(a("192.0.2.1:1")), sourcePrefix(a("[::ffff:192.0.2.1]:9")), "IPv4-mapped is IPv4")
	require.Equal(t, sourcePrefix(a("[2001:db8:1:2::1]:1")), sourcePrefix(a("[2001:db8:1:2:ffff::9]:2")), "one IPv6 /64")
	require.NotEqual(t, sourcePrefix(a("[2001:db8:1:2::1]:1")), sourcePrefix(a("[2001:db8:1:3::1]:1")))
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	require.NoError(t, err)
	return ap
}
