package benchutil

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// HeapPeak samples the heap's object bytes every few milliseconds while fn
// runs and returns the highest value seen above the value before it (peak)
// and that value (base), read after a collection. The collector runs at
// GOGC=5 meanwhile, so that what is measured is what fn keeps, not garbage
// awaiting collection. The bounded-memory tests of the audit log and of
// housekeeping assert on it.
func HeapPeak(fn func()) (peak, base uint64) {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	base = s[0].Value.Uint64()
	var top atomic.Uint64
	top.Store(base)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > top.Load() {
				top.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	fn()
	close(done)
	wg.Wait()
	return top.Load() - base, base
}
