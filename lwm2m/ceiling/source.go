package ceiling

import "net"

// One source address gives a load generator about 28,000 UDP sockets
// talking to one server address: Linux picks each socket's port from
// ip_local_port_range (32768–60999 by default), and a 28,232nd connected
// socket fails with "connect: resource temporarily unavailable". All of
// 127.0.0.0/8 is loopback on Linux, so a load generator spreads its
// devices over 127.0.0.2, 127.0.0.3, … and each address holds a share.
const (
	// DevicesPerSource is how many devices one source address carries
	// when a load generator chooses: under the 28,232 ports of Linux's
	// default ephemeral range, with room for other programs' sockets.
	DevicesPerSource = 20000
	// MaxSources is the number of source addresses SourceIP gives: from
	// 127.0.0.2 to 127.255.255.254.
	MaxSources = 1<<24 - 3
)

// SourceIP is the loopback address device i sends from when the devices
// are spread over sources addresses: 127.0.0.2 for i%sources == 0, then
// counting up (127.0.1.0 follows 127.0.0.255), never 127.0.0.1 (the
// server's) or 127.255.255.255 for sources ≤ MaxSources. sources ≤ 0
// means no choice: nil, and the kernel takes the address of the route.
func SourceIP(i, sources int) net.IP {
	if sources <= 0 {
		return nil
	}
	k := 2 + i%sources // 127.0.0.0 is the network, 127.0.0.1 the server's
	return net.IPv4(127, byte(k>>16), byte(k>>8), byte(k))
}
