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

// fakeClocks is a process whose CPU time grows by busy per window slept,
// on a wall clock that moves only when it sleeps.
type fakeClocks struct {
	wall, cpuTime time.Duration
	busy          func(window int) time.Duration // CPU burned in the n-th window
	windows       int
}

func (f *fakeClocks) cpu() time.Duration { return f.cpuTime }
func (f *fakeClocks) now() time.Time     { return time.Unix(0, 0).Add(f.wall) }
func (f *fakeClocks) sleep(d time.Duration) {
	f.wall += d
	f.cpuTime += f.busy(f.windows)
	f.windows++
}

// TestSettle: Settle does not return while the process keeps more than a
// tenth of a core busy (it waits out its limit), returns after the first
// window in which the process was nearly idle, and after one window on an
// idle process. The clocks are given (settle), so what the machine runs
// beside the test cannot make the process look idle; TestSettleReal checks
// the real clocks are wired in.
func TestSettle(t *testing.T) {
	const limit = 400 * time.Millisecond
	for _, tc := range []struct {
		name string
		busy func(int) time.Duration
		want time.Duration
	}{
		{"a core busy throughout", func(int) time.Duration { return settleWindow }, limit},
		{"just over a tenth of a core", func(int) time.Duration { return settleWindow/10 + time.Microsecond }, limit},
		{"idle", func(int) time.Duration { return 0 }, settleWindow},
		{"just under a tenth of a core", func(int) time.Duration { return settleWindow/10 - time.Microsecond }, settleWindow},
		{"busy for two windows, then idle", func(n int) time.Duration {
			if n < 2 {
				return settleWindow
			}
			return 0
		}, 3 * settleWindow},
	} {
		f := &fakeClocks{busy: tc.busy}
		if got := settle(limit, f.cpu, f.now, f.sleep); got != tc.want {
			t.Errorf("%s: settle waited %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSettleReal: Settle on the real clocks returns before a long limit on
// a process that is idle (nothing here keeps a core busy). It cannot check
// the opposite without depending on the machine's load: a busy goroutine
// may get under a tenth of a core on a shared machine.
func TestSettleReal(t *testing.T) {
	const long = time.Minute
	if waited := Settle(long); waited >= long {
		t.Fatalf("Settle waited out its %v on an idle process", long)
	}
}
