//go:build unix

package profile_test

import "syscall"

// cpuTime returns the CPU time the process has used, in nanoseconds. On a
// shared machine it measures work where wall time also counts waiting for
// a core.
func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)
}
