package benchutil

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the calling thread's CPU time, by another clock than
// getrusage's (CLOCK_THREAD_CPUTIME_ID).
func threadCPU(t *testing.T) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

var sink uint64 // the busy loop's result, so that it is not optimised away

// TestProcessCPU: ProcessCPU grows by at least the CPU time a busy loop
// burned on one thread, as that thread's own clock measures it (a count
// of user time only, of another unit, or of the wrong process would fall
// short), and by no more than the process's threads could burn in the
// wall time that passed.
func TestProcessCPU(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const burn = 50 * time.Millisecond
	start, p0 := time.Now(), ProcessCPU()
	t0 := threadCPU(t)
	x := uint64(1)
	for threadCPU(t)-t0 < burn {
		for range 10000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	t1 := threadCPU(t)
	p1, wall := ProcessCPU(), time.Since(start)
	sink = x
	burned, got := t1-t0, p1-p0
	// getrusage counts in microseconds: allow for its truncation.
	if got < burned-10*time.Microsecond {
		t.Fatalf("ProcessCPU grew by %v while this thread alone burned %v", got, burned)
	}
	if limit := time.Duration(runtime.NumCPU()+1) * wall; got > limit {
		t.Fatalf("ProcessCPU grew by %v in %v of wall time on %d CPUs", got, wall, runtime.NumCPU())
	}
}

// TestSettle: Settle does not return while the process keeps a core busy
// (it waits out its limit), and returns before its limit once the process
// is idle.
func TestSettle(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		x := uint64(1)
		for {
			select {
			case <-stop:
				sink = x
				return
			default:
			}
			for range 10000 {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
	}()
	const limit = 400 * time.Millisecond
	waited := Settle(limit)
	close(stop)
	<-done
	if waited < limit {
		t.Fatalf("Settle returned after %v while a goroutine kept a core busy; want it to wait out its %v", waited, limit)
	}
	const long = time.Minute
	if waited := Settle(long); waited >= long {
		t.Fatalf("Settle waited out its %v on an idle process", long)
	}
}
