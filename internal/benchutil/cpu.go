package benchutil

import (
	"time"

	"golang.org/x/sys/unix"
)

// ProcessCPU returns the CPU time the process has used so far, user and
// system, over all its threads, the collector's and exited ones' included
// (getrusage RUSAGE_SELF). On a shared machine a benchmark's CPU time is
// steadier than its wall time: take it before and after the work, and
// divide the difference by the work done.
func ProcessCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		panic("benchutil: getrusage: " + err.Error())
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
