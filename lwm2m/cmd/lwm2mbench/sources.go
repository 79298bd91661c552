package main

import (
	"fmt"
	"syscall"

	"github.com/doze-io/doze/lwm2m/ceiling"
)

// The devices are spread over loopback source addresses (see
// ceiling.SourceIP: one address holds about 28,000 sockets towards one
// server address) and over processes (-procs): one process holds at most
// its descriptor limit of sockets.

// spareDescriptors is what a device process keeps for itself (its pipes,
// the Go runtime, a profile file) beside one socket per device.
const spareDescriptors = 256

// autoSources is the number of source addresses for n devices: one per
// ceiling.DevicesPerSource.
func autoSources(n int) int { return (n + ceiling.DevicesPerSource - 1) / ceiling.DevicesPerSource }

// checkSources refuses a -sources value that would leave the loopback
// network 127.0.0.0/8.
func checkSources(sources int) error {
	if sources < 0 || sources > ceiling.MaxSources {
		return fmt.Errorf("-sources %d: must be 0 (one per %d devices) to %d (the addresses of 127.0.0.0/8 from 127.0.0.2)", sources, ceiling.DevicesPerSource, ceiling.MaxSources)
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
