package housekeeping

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/vault"
)

var rebuildObjects = flag.Int("embassy.rebuild-objects", 20_000, "objects for BenchmarkRebuildIndex")

// inParallel calls fn with 0 to n-1 from 32 goroutines; an error fails b
// and stops that goroutine.
func inParallel(b *testing.B, n int, fn func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := fn(int(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// BenchmarkRebuildIndex puts -embassy.rebuild-objects small objects (4
// KiB, inline) on six dir sites (4+2) with the audit log on, then rebuilds
// the index from the sites once per iteration, reporting versions a
// second, CPU-seconds per 1,000 versions (getrusage, the whole process)
// and the peak heap of the rebuild (benchutil.MeasureHeap, at GOGC=5).
// It measures the rebuild's cost at a size a loaded machine can set up in
// minutes; BenchmarkMillion measures it at a million.
func BenchmarkRebuildIndex(b *testing.B) {
	count := *rebuildObjects
	e, k := benchEngine(b, "rebuild", 0)
	ctx := vault.AsSystem(context.Background())
	data := bytes.Repeat([]byte("r"), 4096)
	inParallel(b, count, func(i int) error {
		_, err := e.Put(ctx, "bench", fmt.Sprintf("o/%07d", i), bytes.NewReader(data), vault.PutOptions{Size: 4096})
		return err
	})
	if b.Failed() {
		return
	}
	secs, cpu, peak := measureEach(b, func() error {
		st, err := k.RebuildIndex(ctx, nil)
		if err == nil && st.Versions != count {
			err = fmt.Errorf("%d versions", st.Versions)
		}
		return err
	})
	n := float64(b.N) * float64(count)
	b.ReportMetric(n/secs, "versions/s")
	b.ReportMetric(1000*cpu/n, "cpu-s/1000versions")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// benchEngine is an engine over six dir sites in a benchmark's root
// (benchutil.Root), 4+2, with the audit log on, holding vault "bench" of
// stripes of stripe bytes (0: the default), closed when b ends; and its
// keeper, with its scratch space in the root.
func benchEngine(b *testing.B, node string, stripe int) (*vault.Engine, *Keeper) {
	b.Helper()
	root := benchutil.Root(b)
	keys, ix := benchKeysIndex(b, root)
	sites := dirSites(b, root)
	e, err := vault.New(vault.Config{NodeID: node, Keys: keys, Index: ix, Sites: sites, Audit: testAudit(b, root, node, sites),
		Vaults: []vault.Vault{{Name: "bench", Owner: "EST", StripeSize: stripe, Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1}}}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		e.Close(context.Background())
		ix.Close()
	})
	return e, New(e, nil).WithRebuildDir(filepath.Join(root, "rebuild"))
}

// measureEach runs op once an iteration of b (timed from here) under
// benchutil.MeasureHeap, and returns the seconds and CPU-seconds
// (getrusage, the whole process) all the runs took and the highest peak
// heap. An error fails b.
func measureEach(b *testing.B, op func() error) (secs, cpu float64, peak uint64) {
	b.Helper()
	b.ResetTimer()
	for b.Loop() {
		c0 := cpuSeconds()
		var err error
		u := benchutil.MeasureHeap(func() { err = op() })
		cpu += cpuSeconds() - c0
		if err != nil {
			b.Fatal(err)
		}
		secs += u.Took.Seconds()
		peak = max(peak, u.Peak)
	}
	return secs, cpu, peak
}
