package audit

import (
	"runtime"
	"runtime/metrics"
	"testing"
)

// heldNow returns the live heap (after two collections), the goroutine
// stacks in use and the goroutines running.
func heldNow() (live, stacks uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64(), runtime.NumGoroutine()
}

// TestSequencerAppendersHeld measures what the sequencer's appenders hold
// (docs/design.md, "The audit sequencer's appenders (issue 15, twelfth
// pass)"): a log opened makes nine (sizes 1, 2, 4, ... 256), the feeder
// one of any other size the first time a run of that size comes, at most
// 256 in all. Each is the POSIX driver's own appender, with two goroutines
// (its queue's worker and its checkpoint loop): not tessera.NewAppender's,
// which adds a third reading the tree state every 100 ms. The test makes
// them as the feeder does (the sequencer's chunk) on an idle log, and
// asserts at most two goroutines and 16 KiB of live heap an appender.
func TestSequencerAppendersHeld(t *testing.T) {
	quietTessera()
	k := testKeys(t)
	l0, s0, g0 := heldNow()
	l := openLog(t, testConfig(t, k, t.TempDir(), nil))
	defer closeLog(t, l)
	made := func() int {
		n := 0
		for _, add := range l.seq.add {
			if add != nil {
				n++
			}
		}
		return n
	}
	l1, s1, g1 := heldNow()
	opened := made()
	t.Logf("opened: %d appenders, +%d goroutines, +%.1f KiB live heap, +%.0f KiB stacks", opened, g1-g0, kib(l1, l0), kib(s1, s0))
	// Nothing is appended, so the feeder does not use the sequencer: the
	// test goroutine, which opened the log, may.
	for _, upTo := range []int{16, maxChunk} {
		for n := 1; n <= upTo; n++ {
			if got, _ := l.seq.chunk(n); got != n {
				t.Fatalf("chunk(%d) = %d: no appender of that size", n, got)
			}
		}
		l2, s2, g2 := heldNow()
		t.Logf("%d appenders: +%d goroutines, +%.1f KiB live heap, +%.0f KiB stacks since the log opened", made(), g2-g1, kib(l2, l1), kib(s2, s1))
		more := made() - opened
		if g2-g1 > 2*more {
			t.Errorf("%d appenders made after the log opened started %d goroutines: more than two each", more, g2-g1)
		}
		if l2 > l1 && l2-l1 > uint64(more)*16<<10 {
			t.Errorf("%d appenders made after the log opened hold %.1f KiB of live heap: more than 16 KiB each", more, kib(l2, l1))
		}
	}
}

func kib(a, b uint64) float64 { return (float64(a) - float64(b)) / 1024 }
