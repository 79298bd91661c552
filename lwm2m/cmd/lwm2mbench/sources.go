package main

import (
	"fmt"
	"net"
	"syscall"
)

// One source address gives a load generator about 28,000 UDP sockets
// talking to one server address: Linux picks each socket's port from
// ip_local_port_range (32768–60999 by default), and a 28,232nd connected
// socket fails with "connect: resource temporarily unavailable". All of
// 127.0.0.0/8 is loopback on Linux, so the devices are spread over
// 127.0.0.2, 127.0.0.3, … and each address holds a share of them.
// One process holds at most its descriptor limit of sockets, so the
// devices are spread over processes too (-procs).
const (
	// devicesPerSource is how many devices one source address carries
	// when -sources is left to choose: under the 28,232 ports of the
	// default range, with room for other programs' sockets.
	devicesPerSource = 20000
	// spareDescriptors is what a device process keeps for itself (its
	// pipes, the Go runtime, a profile file) beside one socket per device.
	spareDescriptors = 256
)

// sourceIP is the loopback address device i sends from when the devices
// are spread over sources addresses: 127.0.0.2 for i%sources == 0, then
// counting up (127.0.1.1 follows 127.0.0.255). sources ≤ 0 means no
// choice: nil, and the kernel takes the address of the route (127.0.0.1).
func sourceIP(i, sources int) net.IP {
	if sources <= 0 {
		return nil
	}
	k := 2 + i%sources // 127.0.0.0 is the network, 127.0.0.1 the server's
	return net.IPv4(127, byte(k>>16), byte(k>>8), byte(k))
}

// autoSources is the number of source addresses for n devices: one per
// devicesPerSource.
func autoSources(n int) int { return (n + devicesPerSource - 1) / devicesPerSource }

// checkSources refuses a -sources value that would leave the loopback
// network 127.0.0.0/8.
func checkSources(sources int) error {
	if sources < 0 || sources > 1<<24-3 {
		return fmt.Errorf("-sources %d: must be 0 (one per %d devices) to %d (the addresses of 127.0.0.0/8 from 127.0.0.2)", sources, devicesPerSource, 1<<24-3)
	}
	return nil
}

// descriptorLimit is the hard limit of open files of this process, which a
// device process raises its soft limit to; 0 when unknown.
func descriptorLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return int(min(l.Max, 1<<30))
}

// autoProcs is the number of device processes for n devices: as many as
// their sockets need under the descriptor hard limit.
func autoProcs(n int) int {
	per := descriptorLimit() - spareDescriptors
	if per <= 0 {
		return 1
	}
	return max(1, (n+per-1)/per)
}

// raiseDescriptorLimit raises the soft limit of open files to what n
// sockets need, up to the hard limit, and says when that is not enough.
func raiseDescriptorLimit(n int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	need := uint64(n + spareDescriptors)
	if l.Cur >= need {
		return nil
	}
	l.Cur = min(need, l.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur < need {
		return fmt.Errorf("%d devices need %d descriptors; this process may open %d (ulimit -Hn): spread them over more processes (-procs)", n, need, l.Max)
	}
	return nil
}
