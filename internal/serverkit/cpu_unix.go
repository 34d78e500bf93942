//go:build unix

package serverkit

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) the process has used so far, as the kernel
// accounts it.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
