package housekeeping

import (
	"context"
	"flag"
	"fmt"
	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/vault"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/site/fault"
)

var (
	benchRepairSize    = flag.Int64("embassy.repair-size", 4<<30, "bytes of objects for BenchmarkRepair")
	benchRepairProfile = flag.String("embassy.repair-cpuprofile", "", "write a CPU profile of the first round's repair (the scrub alone) to this file")
	benchRepairTrace   = flag.String("embassy.repair-trace", "", "write an execution trace of the first round's repair (the scrub alone) to this file")
)

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profileRepair starts the repair's CPU profile and trace when asked for
// (first round only) and returns what stops them.
func profileRepair(b *testing.B, round int) func() {
	var stops []func()
	if round == 0 && *benchRepairProfile != "" {
		f, err := os.Create(*benchRepairProfile)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if round == 0 && *benchRepairTrace != "" {
		f, err := os.Create(*benchRepairTrace)
		if err != nil {
			b.Fatal(err)
		}
		if err := trace.Start(f); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// BenchmarkRepair writes objects (4 GiB by default) to six dir sites with
// 4+2, destroys both sites of one jurisdiction, and measures against the raw
// read throughput of the surviving sites (measured in the same run):
//   - repair: a scrub rebuilding the lost shards onto two new sites, in
//     object bytes per second;
//   - recovery: an index rebuild from the sites plus reading every object
//     back, verified, from the survivors.
//
// The raw read is benchutil.ColdRead: every survivor's shard blobs read
// from disk (evicted first) through the dir driver's Get, one reader per
// site and as many per site as the scrub repairs versions at once (in
// turns: which goes first alternates from round to round); the faster of
// the two. Repair also writes the lost
// shards, so it also reports against the lesser of raw read and the write
// bound, where raw write is benchutil.LargeRefs' (shard blobs through the
// dir driver with O_DIRECT and fdatasync, as repair writes them). With
// -embassy.rounds=N it measures N times, on fresh sites each time, and
// reports the median ratios and their range.
//
//	go test -run '^$' -bench Repair -benchtime 1x ./housekeeping/ -args -embassy.repair-size=4294967296
func BenchmarkRepair(b *testing.B) {
	size := *benchRepairSize
	const objSize = 64 << 20
	for b.Loop() {
		var repR, recR, limR []float64
		for round := range max(1, *benchutil.Rounds) {
			root := benchutil.Root(b)
			rk, _ := custody.GenerateRootKey()
			keys, _ := custody.NewKeyring(rk)
			ix, err := boltindex.Open(filepath.Join(root, "index.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer ix.Close()
			dirs := map[string]string{}
			faults := map[string]*fault.Site{}
			var sites []vault.Site
			extra := []site.Descriptor{
				{ID: "deu-1", Jurisdiction: "DEU", Provider: "gov-dc", Control: "DEU"},
				{ID: "deu-2", Jurisdiction: "DEU", Provider: "cloudco", Control: "USA"},
			}
			for _, d := range append(append([]site.Descriptor(nil), topology...), extra...) {
				p := filepath.Join(root, "sites", d.ID)
				ds, _ := dir.New(p)
				f := fault.New(ds, 1)
				dirs[d.ID], faults[d.ID] = p, f
				sites = append(sites, vault.Site{Descriptor: d, Store: f})
			}
			e, err := vault.New(vault.Config{Keys: keys, Index: ix, Sites: sites, Audit: testAudit(b, root, "bench", sites), Vaults: []vault.Vault{{Name: "bench", Owner: "EST",
				Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1}}}}})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			// Write with the DEU sites out of use, so they are the repair target.
			e.SetDraining([]string{"deu-1", "deu-2"})
			objects := int(size / objSize)
			for i := range objects {
				src := &benchutil.Gen{Left: objSize, State: uint64(i + 1)}
				if _, err := e.Put(ctx, "bench", fmt.Sprintf("o/%04d", i), io.MultiReader(src), vault.PutOptions{Size: objSize}); err != nil {
					b.Fatal(err)
				}
			}
			e.SetDraining(nil)
			for _, id := range []string{"est-1", "est-2"} {
				os.RemoveAll(dirs[id])
				faults[id].Set(fault.Config{Down: true})
			}
			var survivors []string
			for id, d := range dirs {
				if id != "est-1" && id != "est-2" && id != "deu-1" && id != "deu-2" {
					survivors = append(survivors, d)
				}
			}
			// The survivors' shard blobs read cold through the driver,
			// one reader per site and as many as the scrub's repairs
			// (scrubConcurrency); the faster is the reference.
			// The order alternates from round to round, lest a cache
			// below the page cache favour the second.
			var raw1, rawN float64
			if round%2 == 0 {
				raw1, _ = benchutil.ColdRead(b, survivors, 1)
				rawN, _ = benchutil.ColdRead(b, survivors, scrubConcurrency)
			} else {
				rawN, _ = benchutil.ColdRead(b, survivors, scrubConcurrency)
				raw1, _ = benchutil.ColdRead(b, survivors, 1)
			}
			raw := max(raw1, rawN)
			rawW, _ := benchutil.LargeRefs(b, root, 512<<20, 4, 2)
			rawW *= 1.5 // LargeRefs counts object bytes; here, bytes written

			for _, d := range survivors {
				benchutil.Evict(d)
			}
			stop := profileRepair(b, round)
			start, cpu0 := time.Now(), cpuTime()
			rep, err := New(e, nil).Scrub(ctx, ScrubOptions{Repair: true})
			if err != nil || len(rep.Unrepairable) > 0 {
				b.Fatalf("repair: %+v, %v", rep, err)
			}
			took, cpu := time.Since(start), cpuTime()-cpu0
			stop()
			repair := float64(size) / took.Seconds()

			for _, d := range survivors {
				benchutil.Evict(d)
			}
			benchutil.Evict(dirs["deu-1"])
			benchutil.Evict(dirs["deu-2"])
			start = time.Now()
			if err := ix.Reset(ctx); err != nil {
				b.Fatal(err)
			}
			if _, err := New(e, nil).RebuildIndex(ctx, nil); err != nil {
				b.Fatal(err)
			}
			for i := range objects {
				r, err := e.Get(ctx, "bench", fmt.Sprintf("o/%04d", i), vault.GetOptions{Length: -1})
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, r); err != nil || n != objSize {
					b.Fatalf("read back %d bytes: %v", n, err)
				}
				r.Close()
			}
			recovery := float64(size) / time.Since(start).Seconds()
			// Repair also writes: the lost shards, (k+m-survivors)/k of the
			// object bytes. With writes slower than reads, that bounds it.
			written := float64(rep.BytesRepaired)
			writeBound := rawW * float64(size) / max(written, 1)
			limit := min(raw, writeBound)
			const mb = 1e6
			repR, recR, limR = append(repR, repair/raw), append(recR, recovery/raw), append(limR, repair/limit)
			fmt.Printf("round %d: %d MiB in %d objects, one jurisdiction lost: raw read of survivors %.0f MB/s (%.0f with one reader a site, %.0f with %d), raw write %.0f MB/s\n", round+1, size>>20, objects, raw/mb, raw1/mb, rawN/mb, scrubConcurrency, rawW/mb)
			fmt.Printf("round %d: repair %.0f MB/s: %.2f of raw read; %.2f of the limit %.0f MB/s (the lesser of raw read and raw write x object bytes / %d MiB of shards written)\n",
				round+1, repair/mb, repair/raw, repair/limit, limit/mb, rep.BytesRepaired>>20)
			fmt.Printf("round %d: repair used %.1f CPU-s in %.1f s (%.2f cores busy), %.2f CPU-s per GB of objects\n", round+1, cpu.Seconds(), took.Seconds(), cpu.Seconds()/took.Seconds(), cpu.Seconds()/(float64(size)/1e9))
			fmt.Printf("round %d: recovery (index rebuild + full verified read) %.0f MB/s: %.2f of raw read\n", round+1, recovery/mb, recovery/raw)
		}
		rep, rec, lim := benchutil.Summarize(repR), benchutil.Summarize(recR), benchutil.Summarize(limR)
		b.ReportMetric(rep.Med, "repair/raw")
		b.ReportMetric(rec.Med, "recovery/raw")
		b.ReportMetric(lim.Med, "repair/limit")
		fmt.Printf("repair/raw %s  repair/limit %s  recovery/raw %s\n", rep, lim, rec)
	}
}
