//go:build !unix

package serverkit

import "time"

// processCPU is not measured here: the CPU utilization is left out of the reports.
func processCPU() (time.Duration, bool) { return 0, false }
