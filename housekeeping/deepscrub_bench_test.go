package housekeeping

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/vault"
)

var benchDeepSize = flag.Int64("embassy.deep-size", 512<<20, "bytes of 64 MiB objects BenchmarkScrubDeep scrubs")

// BenchmarkScrubDeep: what a deep scrub costs beside the ordinary one, on
// the same objects in the same run: rounds alternate the two (which goes
// first alternating too), each after the sites' files are dropped from
// the page cache (benchutil.Evict), and print the wall time and the
// process's CPU a GB of each, and their ratios, deep over ordinary.
func BenchmarkScrubDeep(b *testing.B) {
	const objSize = 64 << 20
	for b.Loop() {
		root := benchutil.Root(b)
		keys, ix := benchKeysIndex(b, root)
		defer ix.Close()
		sites := dirSites(b, root)
		e, err := vault.New(vault.Config{Keys: keys, Index: ix, Sites: sites, Audit: testAudit(b, root, "bench", sites), Vaults: []vault.Vault{{Name: "bench", Owner: "EST",
			Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1}}}}})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		objects := int(*benchDeepSize / objSize)
		for i := range objects {
			if _, err := e.Put(ctx, "bench", fmt.Sprintf("o/%04d", i), &benchutil.Gen{Left: objSize, State: uint64(i + 1)}, vault.PutOptions{Size: objSize}); err != nil {
				b.Fatal(err)
			}
		}
		gb := float64(objects*objSize) / 1e9
		k := New(e, nil)
		scrub := func(deep bool) (secs, cpuPerGB float64, read int64) {
			benchutil.Evict(filepath.Join(root, "sites"))
			cpu0, t0 := benchutil.ProcessCPU(), time.Now()
			rep, err := k.Scrub(ctx, ScrubOptions{Deep: deep})
			if err != nil {
				b.Fatal(err)
			}
			if rep.AtRisk != 0 || rep.CorruptShards != 0 {
				b.Fatalf("scrub (deep %v) found damage: %+v", deep, rep)
			}
			return time.Since(t0).Seconds(), (benchutil.ProcessCPU() - cpu0).Seconds() / gb, rep.BytesRead
		}
		for round := range max(1, *benchutil.Rounds) {
			var ps, pc, ds, dc float64
			var pr, dr int64
			if round%2 == 0 {
				ps, pc, pr = scrub(false)
				ds, dc, dr = scrub(true)
			} else {
				ds, dc, dr = scrub(true)
				ps, pc, pr = scrub(false)
			}
			fmt.Printf("round %d (%s first): scrub %.2f s, %.2f CPU-s/GB, read %d MiB; deep %.2f s, %.2f CPU-s/GB, read %d MiB; deep/scrub time %.2f, CPU %.2f\n",
				round+1, map[bool]string{true: "scrub", false: "deep"}[round%2 == 0], ps, pc, pr>>20, ds, dc, dr>>20, ds/ps, dc/pc)
		}
	}
}
