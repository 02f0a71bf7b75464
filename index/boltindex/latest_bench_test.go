package boltindex

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/internal/stats"
	"github.com/embassy-dev/embassy/manifest"
)

// BenchmarkLatestCreated measures what a put's lookup of the key's latest
// version costs when the key has one (an overwrite), read as the creation
// time alone (LatestCreated, what vault's versionTime asks since the
// eleventh pass) against the whole version with its envelope (Latest, what
// it asked before), in the same run: rounds of 20,000 lookups of 1,000
// keys with envelopes of 1,400 bytes (a small object's manifest), the two
// alternating, the first of each pair alternating too. It prints the
// time and the bytes allocated a lookup of each and the median ratios.
//
//	go test -run '^$' -bench LatestCreated -benchtime 1x ./index/boltindex/
func BenchmarkLatestCreated(b *testing.B) {
	ix, err := Open(b.TempDir() + "/index.db")
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	ctx := context.Background()
	const keys, lookups, rounds = 1000, 20_000, 6
	env := make([]byte, 1400)
	var vs []index.Version
	for i := range keys {
		vs = append(vs, index.Version{Vault: "bench", Key: fmt.Sprintf("obj/%08d", i), ID: manifest.NewID(), Created: int64(i + 1), Size: 4096, ETag: "\"0123456789abcdef0123456789abcdef\"", Envelope: env})
	}
	if err := ix.PutMany(ctx, vs); err != nil {
		b.Fatal(err)
	}
	run := func(created bool) (ns, bytes float64) {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		for i := range lookups {
			key := vs[i%keys].Key
			var c int64
			if created {
				t, found, err := ix.LatestCreated(ctx, "bench", key)
				if err != nil || !found {
					b.Fatal(found, err)
				}
				c = t
			} else {
				l, err := ix.Latest(ctx, "bench", key)
				if err != nil {
					b.Fatal(err)
				}
				c = l.Created
			}
			if c != int64(i%keys+1) {
				b.Fatalf("%s: created %d", key, c)
			}
		}
		took := time.Since(start)
		runtime.ReadMemStats(&m1)
		return float64(took.Nanoseconds()) / lookups, float64(m1.TotalAlloc-m0.TotalAlloc) / lookups
	}
	for b.Loop() {
		var tr, br []float64
		for r := range rounds {
			var nsC, bC, nsL, bL float64
			if r%2 == 0 {
				nsL, bL = run(false)
				nsC, bC = run(true)
			} else {
				nsC, bC = run(true)
				nsL, bL = run(false)
			}
			tr, br = append(tr, nsC/nsL), append(br, bC/bL)
			fmt.Printf("round %d: Latest %.0f ns, %.0f B a lookup; LatestCreated %.0f ns, %.0f B; time %.2f, bytes %.2f\n", r+1, nsL, bL, nsC, bC, nsC/nsL, bC/bL)
		}
		t, by := stats.Summarize(tr), stats.Summarize(br)
		b.ReportMetric(t.Med, "created/latest-time")
		fmt.Printf("LatestCreated/Latest: time %s, bytes allocated %s\n", t, by)
	}
}
