package benchutil

import (
	"math"
	"runtime/metrics"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestHistDelta(t *testing.T) {
	inf := math.Inf(1)
	h0 := &metrics.Float64Histogram{Counts: []uint64{1, 2, 0, 5}, Buckets: []float64{math.Inf(-1), 0.001, 0.003, 0.005, inf}}
	h1 := &metrics.Float64Histogram{Counts: []uint64{1, 4, 1, 6}, Buckets: h0.Buckets}
	// Two values in [1 ms, 3 ms) at 2 ms, one in [3, 5) at 4 ms, one above
	// 5 ms at 5 ms: 13 ms over 4.
	n, mean := histDelta(h0, h1)
	if n != 4 || mean != 3250*time.Microsecond {
		t.Errorf("histDelta: %d values, mean %v; want 4, 3.25ms", n, mean)
	}
	if n, mean := histDelta(h0, h0); n != 0 || mean != 0 {
		t.Errorf("histDelta of no change: %d, %v", n, mean)
	}
	if n, _ := histDelta(h0, &metrics.Float64Histogram{Counts: []uint64{1}, Buckets: []float64{0, 1}}); n != 0 {
		t.Errorf("histDelta of unlike histograms: %d values", n)
	}
}

// notInGo reads the runtime's count of goroutines in system calls.
func notInGo() uint64 {
	s := []metrics.Sample{{Name: schedNames[0]}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestSchedProbe(t *testing.T) {
	// Four goroutines blocked in read(2) on a pipe (raw, not through the
	// poller): four goroutines in system calls for as long as the probe
	// runs.
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	base := notInGo()
	const readers = 4
	done := make(chan struct{})
	for range readers {
		go func() {
			var b [1]byte
			unix.Read(fds[0], b[:])
			done <- struct{}{}
		}()
	}
	for notInGo() < base+readers {
		time.Sleep(time.Millisecond)
	}
	p := StartSched(time.Millisecond)
	// Wait for samples, and make the scheduler schedule some goroutines.
	for {
		ch := make(chan struct{})
		go func() { close(ch) }()
		<-ch
		p.mu.Lock()
		n := p.n
		p.mu.Unlock()
		if n >= 20 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	s := p.Stop()
	unix.Close(fds[1])
	for range readers {
		<-done
	}
	if s.Samples < 20 {
		t.Errorf("%d samples, want at least 20", s.Samples)
	}
	if s.Syscall < readers {
		t.Errorf("%.2f goroutines in system calls on average, want at least %d", s.Syscall, readers)
	}
	if s.Running < 1 {
		t.Errorf("%.2f goroutines running on average, want at least the probe's own", s.Running)
	}
	if s.Waits == 0 {
		t.Errorf("no goroutine scheduled in the window: %+v", s)
	}
}
