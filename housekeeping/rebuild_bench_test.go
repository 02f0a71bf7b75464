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
	root := benchutil.Root(b)
	keys, ix := benchKeysIndex(b, root)
	sites := dirSites(b, root)
	e, err := vault.New(vault.Config{NodeID: "rebuild", Keys: keys, Index: ix, Sites: sites, Audit: testAudit(b, root, "rebuild", sites),
		Vaults: []vault.Vault{{Name: "bench", Owner: "EST", Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1}}}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		e.Close(context.Background())
		ix.Close()
	})
	ctx := vault.AsSystem(context.Background())
	data := bytes.Repeat([]byte("r"), 4096)
	inParallel(b, count, func(i int) error {
		_, err := e.Put(ctx, "bench", fmt.Sprintf("o/%07d", i), bytes.NewReader(data), vault.PutOptions{Size: 4096})
		return err
	})
	if b.Failed() {
		return
	}
	k := New(e, nil).WithRebuildDir(filepath.Join(root, "rebuild"))
	var secs, cpu float64
	var peak uint64
	b.ResetTimer()
	for b.Loop() {
		c0 := cpuSeconds()
		var st RebuildStats
		u := benchutil.MeasureHeap(func() { st, err = k.RebuildIndex(ctx, nil) })
		cpu += cpuSeconds() - c0
		if err != nil || st.Versions != count {
			b.Fatalf("rebuild: %d versions, %v", st.Versions, err)
		}
		secs += u.Took.Seconds()
		peak = max(peak, u.Peak)
	}
	n := float64(b.N) * float64(count)
	b.ReportMetric(n/secs, "versions/s")
	b.ReportMetric(1000*cpu/n, "cpu-s/1000versions")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
