package benchutil

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// HeapPeak samples the heap's object bytes every few milliseconds while fn
// runs and returns the highest value seen above the value before it (peak)
// and that value (base), read after a collection. The collector runs at
// GOGC=5 meanwhile, so that what is measured is what fn keeps, not garbage
// awaiting collection. The bounded-memory tests of the audit log and of
// housekeeping assert on it.
func HeapPeak(fn func()) (peak, base uint64) {
	u := MeasureHeap(fn)
	return u.Peak, u.Base
}

// HeapUse is what MeasureHeap found.
type HeapUse struct {
	// Peak is the highest heap object bytes (live objects and garbage
	// not yet swept) seen while fn ran, above Base.
	Peak uint64
	// Base is the heap's object bytes before fn, after a collection: all
	// live then.
	Base uint64
	// Live is the highest live heap (what a collection that ended while
	// fn ran found reachable) above Base.
	Live uint64
	// GCs is the number of collections that ended while fn ran.
	GCs uint64
	// Took is how long fn ran.
	Took time.Duration
}

// MeasureHeap runs fn with the collector at GOGC=5 and samples the heap
// every 2 ms: the peak of its object bytes, which counts garbage the
// collector has not swept yet (at GOGC=5, up to about 5 % of the whole
// live heap, Base included, plus what is allocated while a collection
// runs), and the peak of the live heap each collection found.
func MeasureHeap(fn func()) HeapUse {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
	}
	metrics.Read(s)
	u := HeapUse{Base: s[0].Value.Uint64()}
	cycles := s[2].Value.Uint64()
	top, live := u.Base, s[1].Value.Uint64()
	sample := func() {
		metrics.Read(s)
		top = max(top, s[0].Value.Uint64())
		if s[2].Value.Uint64() > cycles {
			live = max(live, s[1].Value.Uint64())
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			sample()
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	start := time.Now()
	fn()
	u.Took = time.Since(start)
	close(done)
	wg.Wait()
	sample()
	u.Peak, u.GCs = top-u.Base, s[2].Value.Uint64()-cycles
	if live > u.Base {
		u.Live = live - u.Base
	}
	return u
}
