package benchutil

import (
	"crypto/sha256"
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

// Settle waits until the process has been nearly idle (under a tenth of a
// core) for a tenth of a second, or until limit has passed, and returns how
// long it waited: what a benchmark calls between two measured phases so
// that the first one's background work (an audit log's integration and
// copies, a committer's last batch) is charged to it and not to the next.
func Settle(limit time.Duration) time.Duration {
	return settle(limit, ProcessCPU, time.Now, time.Sleep)
}

// settleWindow is how long the process must stay under a tenth of a core.
const settleWindow = 100 * time.Millisecond

// settle is Settle with its clocks given, so that a test can say how busy
// the process was without depending on what else the machine runs.
func settle(limit time.Duration, cpu func() time.Duration, now func() time.Time, sleep func(time.Duration)) time.Duration {
	start := now()
	for now().Sub(start) < limit {
		c0 := cpu()
		sleep(settleWindow)
		if cpu()-c0 < settleWindow/10 {
			break
		}
	}
	return now().Sub(start)
}

// canaryBuf is written once, so that no canary pays for faulting in its
// pages (the first did, at 5–20 times the others' time).
var canaryBuf = func() []byte {
	b := make([]byte, 4<<20)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// Canary times two fixed pieces of work on the calling goroutine: SHA-256
// of 4 MiB (compute, about 2.5 ms on the development VM) and a system call
// that does nothing (getppid, the mean of 1,000: about 1 µs there, where
// bare metal takes a tenth of that). Printed beside a phase's figures, they
// show the state of the machine the phase ran in. On a virtual machine
// whose host does not report steal time (this VM's /proc/stat steal column
// stays 0), a host that runs other guests on this one's cores slows the
// first; the second follows the cost of entering the guest's kernel, which
// on this paravirtualised guest moved fivefold with the load, and which
// every small durable write pays many times over.
func Canary() (compute, syscall time.Duration) {
	start := time.Now()
	sha256.Sum256(canaryBuf)
	compute = time.Since(start)
	start = time.Now()
	for range 1000 {
		unix.Getppid()
	}
	return compute, time.Since(start) / 1000
}
