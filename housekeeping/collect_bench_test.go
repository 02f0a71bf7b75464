package housekeeping

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"testing"

	"github.com/embassy-dev/embassy/vault"
)

var (
	collectObjects = flag.Int("embassy.collect-objects", 20_000, "objects for BenchmarkCollect")
	collectDeleted = flag.Int("embassy.collect-deleted", 10_000, "of which BenchmarkCollect deletes")
)

// BenchmarkCollect puts -embassy.collect-objects objects of three 4 KiB
// stripes and a bit (streamed: each put records an intent naming its six
// shards) on six dir sites (4+2) with the audit log on, deletes
// -embassy.collect-deleted of them (each deletion recorded, naming the
// version's shards), then collects garbage once per iteration, reporting
// collections' time, CPU-seconds (getrusage, the whole process) and peak
// heap (benchutil.MeasureHeap, at GOGC=5). Every collection reads every
// record and looks up every blob the sites list; nothing is left to
// remove.
func BenchmarkCollect(b *testing.B) {
	count, deleted := *collectObjects, *collectDeleted
	e, k := benchEngine(b, "collect", 4096)
	ctx := vault.AsSystem(context.Background())
	data := bytes.Repeat([]byte("c"), 3*4096+17)
	ids := make([]vault.ObjectInfo, count)
	inParallel(b, count, func(i int) error {
		var err error
		ids[i], err = e.Put(ctx, "bench", fmt.Sprintf("o/%07d", i), bytes.NewReader(data), vault.PutOptions{Size: int64(len(data))})
		return err
	})
	inParallel(b, deleted, func(i int) error {
		_, err := e.Delete(ctx, "bench", fmt.Sprintf("o/%07d", i), vault.DeleteOptions{VersionID: ids[i].VersionID})
		return err
	})
	if err := e.Settle(ctx); err != nil {
		b.Fatal(err)
	}
	if b.Failed() {
		return
	}
	secs, cpu, peak := measureEach(b, func() error {
		c, err := k.Collect(ctx, CollectOptions{})
		if err == nil && (!c.Ran || c.Removed != 0 || c.Unindexed != 0) {
			err = fmt.Errorf("collect: %+v", c)
		}
		return err
	})
	b.ReportMetric(secs/float64(b.N), "s/collection")
	b.ReportMetric(cpu/float64(b.N), "cpu-s/collection")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
