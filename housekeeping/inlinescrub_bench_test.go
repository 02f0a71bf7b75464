package housekeeping

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/vault"
)

// BenchmarkScrubInline is an ordinary scrub of inline objects (of up to
// one stripe, kept in their manifest copies): 4 KiB and 1 MiB objects at
// 4+2 on dir sites, from the page cache. It reports the process's CPU and
// the bytes allocated per version scrubbed; compare two builds
// (docs/design.md, "Site reads held to their length (eighteenth pass)").
//
//	go test -run '^$' -bench ScrubInline -benchmem ./housekeeping/
func BenchmarkScrubInline(b *testing.B) {
	for _, c := range []struct {
		name    string
		size    int
		objects int
	}{{"4KiB", 4 << 10, 400}, {"1MiB", 1 << 20, 64}} {
		b.Run(c.name, func(b *testing.B) {
			e, k := benchEngine(b, "bench", 0)
			ctx := context.Background()
			data := bytes.Repeat([]byte{0x5a}, c.size)
			for i := range c.objects {
				if _, err := e.Put(ctx, "bench", fmt.Sprintf("o/%04d", i), bytes.NewReader(data), vault.PutOptions{Size: int64(len(data))}); err != nil {
					b.Fatal(err)
				}
			}
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			cpu0 := benchutil.ProcessCPU()
			versions := 0
			for b.Loop() {
				rep, err := k.Scrub(ctx, ScrubOptions{Grace: -1})
				if err != nil {
					b.Fatal(err)
				}
				if rep.AtRisk != 0 || rep.Versions != c.objects {
					b.Fatalf("scrub: %+v", rep)
				}
				versions += rep.Versions
			}
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(benchutil.ProcessCPU()-cpu0)/float64(versions), "cpu-ns/version")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(versions), "B/version")
		})
	}
}
