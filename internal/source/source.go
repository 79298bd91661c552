// Package source is how Doze's rate limits and caps name a peer: by its
// IP address, an IPv6 address by its /64 (what one subscriber or host
// usually holds), and how they keep their per-source state bounded.
package source

import (
	"net"
	"net/netip"
)

// Prefix is the source ip counts under: the IPv4 address (a /32), or the
// /64 of an IPv6 address; an IPv4-mapped IPv6 address counts as IPv4. The
// zero Addr gives the zero Prefix.
func Prefix(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Of is Prefix of a connection's remote address (UDP, TCP, IP, or
// anything whose String is host:port); the zero Prefix when it has no IP.
func Of(a net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.IPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case nil:
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	return Prefix(ip)
}

// Evict makes room in m, a map of per-source state that must stay under
// max entries: it drops every entry idle reports as holding nothing worth
// keeping, and if that is not enough, one arbitrary entry.
func Evict[K comparable, V any](m map[K]V, max int, idle func(V) bool) {
	for k, v := range m {
		if idle(v) {
			delete(m, k)
		}
	}
	if len(m) < max {
		return
	}
	for k := range m {
		delete(m, k)
		return
	}
}
