package source

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPrefix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
	} {
		require.Equal(t, netip.MustParsePrefix(tc.want), Prefix(netip.MustParseAddr(tc.in)), tc.in)
	}
	require.Equal(t, netip.Prefix{}, Prefix(netip.Addr{}))
}

func TestOf(t *testing.T) {
	require.Equal(t, netip.MustParsePrefix("192.0.2.7/32"), Of(&net.UDPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5683}))
	require.Equal(t, netip.MustParsePrefix("2001:db8::/64"), Of(&net.TCPAddr{IP: net.ParseIP("2001:db8::9"), Port: 1883}))
	require.Equal(t, netip.MustParsePrefix("2001:db8::/64"), Of(&net.IPAddr{IP: net.ParseIP("2001:db8::9")}))
	require.Equal(t, netip.Prefix{}, Of(nil))
	p, _ := net.Pipe()
	require.Equal(t, netip.Prefix{}, Of(p.RemoteAddr()), "a pipe has no IP")
}

func TestEvict(t *testing.T) {
	m := map[string]int{"a": 0, "b": 1, "c": 0, "d": 2}
	Evict(m, 3, func(v int) bool { return v == 0 })
	require.Equal(t, map[string]int{"b": 1, "d": 2}, m, "the idle ones go; enough room then")
	Evict(m, 2, func(int) bool { return false })
	require.Len(t, m, 1, "none idle: one arbitrary entry goes")
}
