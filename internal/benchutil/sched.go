package benchutil

import (
	"math"
	"runtime/metrics"
	"sync"
	"time"
)

// Sched is what the Go scheduler did with the process's goroutines over a
// window (SchedProbe): the mean number in a system call (or cgo call),
// runnable but waiting for a P, and running, and how long the goroutines
// that were scheduled in the window had waited runnable before they ran.
//
// A goroutine in a blocking system call keeps its P until the runtime's
// monitor (sysmon) takes it back, which it does only from a call that
// lasts over one of its polling intervals (20 µs, growing to 10 ms while
// it finds nothing to take). So a process whose goroutines do nothing but
// short blocking writes can settle with about GOMAXPROCS of them in system
// calls and the rest runnable with no P to run on: few writes in flight,
// idle cores, a stall that is the process's and not the disk's.
type Sched struct {
	// Means over the window's samples.
	Syscall, Runnable, Running float64
	Samples                    int
	// Waits is how many times a goroutine was scheduled in the window;
	// WaitMean the mean time it had been runnable before (estimated from
	// the runtime's histogram: each bucket at its middle).
	Waits    uint64
	WaitMean time.Duration
}

var schedNames = []string{
	"/sched/goroutines/not-in-go:goroutines",
	"/sched/goroutines/runnable:goroutines",
	"/sched/goroutines/running:goroutines",
	"/sched/latencies:seconds",
}

// SchedProbe samples the runtime's scheduler metrics (runtime/metrics)
// every interval from Start until Stop. A sample costs a few
// microseconds; the sampling goroutine itself needs a P, so in a stall it
// samples late, by about the length of the system calls that hold the Ps.
type SchedProbe struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	sum  [3]float64
	n    int
	h0   *metrics.Float64Histogram
}

// StartSched starts a probe that samples every interval.
func StartSched(interval time.Duration) *SchedProbe {
	p := &SchedProbe{stop: make(chan struct{}), done: make(chan struct{})}
	s := make([]metrics.Sample, len(schedNames))
	for i, n := range schedNames {
		s[i].Name = n
	}
	metrics.Read(s)
	p.h0 = copyHist(s[3].Value)
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			metrics.Read(s)
			p.mu.Lock()
			for i := range p.sum {
				if s[i].Value.Kind() == metrics.KindUint64 {
					p.sum[i] += float64(s[i].Value.Uint64())
				}
			}
			p.n++
			p.mu.Unlock()
		}
	}()
	return p
}

// copyHist copies a histogram value (the runtime reuses its memory), or
// returns nil if the value is not a histogram.
func copyHist(v metrics.Value) *metrics.Float64Histogram {
	if v.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	h := v.Float64Histogram()
	return &metrics.Float64Histogram{
		Counts:  append([]uint64(nil), h.Counts...),
		Buckets: append([]float64(nil), h.Buckets...),
	}
}

// Stop ends the probe and returns what it saw.
func (p *SchedProbe) Stop() Sched {
	close(p.stop)
	<-p.done
	s := []metrics.Sample{{Name: schedNames[3]}}
	metrics.Read(s)
	var r Sched
	p.mu.Lock()
	if p.n > 0 {
		r.Syscall, r.Runnable, r.Running = p.sum[0]/float64(p.n), p.sum[1]/float64(p.n), p.sum[2]/float64(p.n)
	}
	r.Samples = p.n
	p.mu.Unlock()
	if h1 := copyHist(s[0].Value); h1 != nil && p.h0 != nil {
		r.Waits, r.WaitMean = histDelta(p.h0, h1)
	}
	return r
}

// histDelta returns how many values a cumulative histogram gained from
// h0 to h1 and their mean, each counted at its bucket's middle (at its
// finite edge for a bucket open to infinity). Histograms with different
// buckets give zero.
func histDelta(h0, h1 *metrics.Float64Histogram) (n uint64, mean time.Duration) {
	if len(h0.Counts) != len(h1.Counts) || len(h1.Buckets) != len(h1.Counts)+1 {
		return 0, 0
	}
	var sum float64
	for i := range h1.Counts {
		d := h1.Counts[i] - h0.Counts[i]
		if d == 0 {
			continue
		}
		lo, hi := h1.Buckets[i], h1.Buckets[i+1]
		var mid float64
		switch {
		case math.IsInf(lo, -1):
			mid = hi
		case math.IsInf(hi, 1):
			mid = lo
		default:
			mid = (lo + hi) / 2
		}
		n += d
		sum += float64(d) * mid
	}
	if n == 0 {
		return 0, 0
	}
	return n, time.Duration(sum / float64(n) * 1e9)
}
