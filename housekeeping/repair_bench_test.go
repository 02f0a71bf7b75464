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
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/seal"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/site/fault"
)

var (
	benchRepairSize    = flag.Int64("embassy.repair-size", 4<<30, "bytes of objects for BenchmarkRepair")
	benchRepairProfile = flag.String("embassy.repair-cpuprofile", "", "write a CPU profile of the first round's repair (the scrub alone) to this file")
	benchRepairTrace   = flag.String("embassy.repair-trace", "", "write an execution trace of the first round's repair (the scrub alone) to this file")
	benchRepairNewDir  = flag.String("embassy.repair-new-dir", "", "put the two sites the repair writes to under this directory (another filesystem: a disk of their own) instead of beside the survivors")
	benchRepairDiscard = flag.Bool("embassy.repair-discard", false, "the two sites the repair writes to take each rebuilt shard's bytes and keep none of them (the repair's read side alone, as where the new sites are on other disks)")
	benchRepairRound   = flag.Int("embassy.repair-profile-round", 1, "the round whose repair -embassy.repair-cpuprofile and -embassy.repair-trace record")
)

// profileRepair starts the repair's CPU profile and trace when asked for
// (in round -embassy.repair-profile-round only, the first by default) and
// returns what stops them.
func profileRepair(b *testing.B, round int) func() {
	if round+1 != *benchRepairRound {
		return func() {}
	}
	return benchutil.StartProfiles(b, *benchRepairProfile, *benchRepairTrace)
}

// BenchmarkRepair writes objects (4 GiB by default) to six dir sites with
// 4+2, destroys both sites of one jurisdiction, and measures against the raw
// read throughput of the surviving sites (measured in the same run):
//   - repair: a scrub rebuilding the lost shards onto two new sites, in
//     object bytes per second;
//   - recovery: an index rebuild from the sites plus reading every object
//     back, verified, from the survivors, scrubConcurrency objects at once.
//
// The raw read (bench/README.md, "Cold reads") is a cold read of the same
// blobs as the repair reads, by the same method: the survivors' shard
// blobs, mirrored name for name and size for size onto four fresh dir
// sites (benchutil.Mirror: the dir driver's Put, O_DIRECT, as the
// engine wrote them), then read once, evicted from the page cache, through
// the driver's Get in the engine's block reads, scrubConcurrency blobs of a
// site at a time (benchutil.ReadBlobs), as the repair reads the survivors'
// own, also evicted and read for the first time since written. Neither was
// read before: a cache below the guest (a virtual disk the host caches)
// holds neither. Which of the two goes first alternates from round to
// round. The mirror is then read a second time, which shows what such a
// cache gives (a first read close to the second was not cold: the line
// says so). Recovery, which reads the survivors after the repair did, is
// judged against the first read of the mirror read through the page cache
// (as a GET reads): the repair reads with O_DIRECT and leaves nothing of
// the survivors in the page cache, so the recovery's reads find them as
// that first read found its mirror, not as the second, warm, read does.
//
// Repair also writes the lost shards, so it also reports against the
// lesser of raw read and the write bound, where raw write is that of blobs
// like the lost shards (the survivors' size, one a version on each of two
// fresh sites, scrubConcurrency at once a site) through the dir driver's
// Put, as the repair writes them: O_DIRECT, fdatasync, rename, directory
// fsync. Every site here is on one disk (unless -embassy.repair-new-dir puts
// the two sites the repair writes to elsewhere), so the repair's reads and writes
// share it; the shared reference does both at once (a third mirror read
// as the raw read reads while blobs like the lost shards are written as
// the raw write writes them) and repair/shared is the repair's rate over
// it. With -embassy.rounds=N it
// measures N times, on fresh sites each time, and reports the median
// ratios and their range.
//
//	go test -run '^$' -bench Repair -benchtime 1x ./housekeeping/ -args -embassy.repair-size=4294967296
func BenchmarkRepair(b *testing.B) {
	size := *benchRepairSize
	const objSize = 64 << 20
	for b.Loop() {
		var repR, recR, limR, boundR, useR, repBR, repSR []float64
		for round := range max(1, *benchutil.Rounds) {
			root := benchutil.Root(b)
			keys, ix := benchKeysIndex(b, root)
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
				if nd := *benchRepairNewDir; nd != "" && d.Jurisdiction == "DEU" {
					p = filepath.Join(nd, filepath.Base(root), d.ID)
					b.Cleanup(func() { os.RemoveAll(filepath.Join(nd, filepath.Base(root))) })
				}
				ds, _ := dir.New(p)
				var st site.Site = ds
				if *benchRepairDiscard && d.Jurisdiction == "DEU" {
					st = discardSite{ds}
				}
				f := fault.New(st, 1)
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
			var survivors []string // the sites that will survive, by id
			for _, d := range topology {
				if d.Jurisdiction != "EST" {
					survivors = append(survivors, d.ID)
				}
			}
			// The reference's blobs: each object's shard blobs on the
			// survivors, mirrored onto fresh sites right after its put
			// (so of the same age) and never read.
			mirror := benchutil.NewMirror(b, filepath.Join(root, "ref-read"), len(survivors))
			// A second mirror, read through the page cache (no cold-read
			// hint): the repair's reads before they took O_DIRECT, and
			// the reads of a GET (recovery's reference).
			mirrorB := benchutil.NewMirror(b, filepath.Join(root, "ref-read-buffered"), len(survivors))
			// A third mirror, read with the hint while blobs like the
			// lost shards are written (the shared reference): the
			// repair's reads and writes at once, on the one disk every
			// site of this benchmark shares.
			mirrorS := benchutil.NewMirror(b, filepath.Join(root, "ref-shared"), len(survivors))
			objects := int(size / objSize)
			var lostIdx []int // the shards of the first object on the sites to be lost
			for i := range objects {
				src := &benchutil.Gen{Left: objSize, State: uint64(i + 1)}
				key := fmt.Sprintf("o/%04d", i)
				info, err := e.Put(ctx, "bench", key, io.MultiReader(src), vault.PutOptions{Size: objSize})
				if err != nil {
					b.Fatal(err)
				}
				blobs := survivorBlobs(b, e, key, info.VersionID, survivors)
				mirror.Copy(b, blobs, 1)
				mirrorB.Copy(b, blobs, 1)
				mirrorS.Copy(b, blobs, 1)
				if i == 0 {
					locs, err := e.Locate(ctx, "bench", key, info.VersionID)
					if err != nil {
						b.Fatal(err)
					}
					lostIdx = lostShards(locs, []string{"est-1", "est-2"})
				}
			}
			e.SetDraining(nil)
			for _, id := range []string{"est-1", "est-2"} {
				os.RemoveAll(dirs[id])
				faults[id].Set(fault.Config{Down: true})
			}
			for i, id := range survivors {
				survivors[i] = dirs[id]
			}
			stride := repairStride(b, e, ix)

			var raw, rawB, repair float64
			var took, cpu, readCPU, readCPUB time.Duration
			var rep ScrubReport
			var mono [2]float64 // the repair's start and end, CLOCK_MONOTONIC (for perf report --time)
			readOne := func(m *benchutil.Mirror, hint bool) (rate float64, cpu time.Duration) {
				rctx := ctx
				if hint {
					rctx = site.WithColdRead(ctx)
				}
				benchutil.Settle(5 * time.Second)
				cpu0 := benchutil.ProcessCPU()
				rate, _, left := benchutil.ReadBlobsContext(rctx, b, m.Blobs, scrubConcurrency, stride)
				cpu = benchutil.ProcessCPU() - cpu0
				if left > 0 {
					fmt.Printf("round %d: WARNING: %d bytes of the reference's blobs stayed in the page cache (tmpfs?): its read is not cold\n", round+1, left)
				}
				return rate, cpu
			}
			// The shared reference: the third mirror read as the first is
			// read (cold, with the hint, scrubConcurrency blobs of a site
			// at once) while blobs like the lost shards are written to two
			// fresh sites as the write reference below writes them, both
			// started together; its rate is the object bytes over the time
			// until both are done.
			lost := len(topology) - len(survivors)
			var shared, sharedR float64
			readShared := func() {
				sw := benchutil.NewMirror(b, filepath.Join(root, "ref-shared-write"), lost)
				for _, q := range mirrorS.Blobs {
					if len(q) > 0 {
						benchutil.Evict(q[0].Site.Root())
					}
				}
				benchutil.Settle(5 * time.Second)
				start := time.Now()
				var wg sync.WaitGroup
				wg.Go(func() {
					sharedR, _, _ = benchutil.ReadBlobsContext(site.WithColdRead(ctx), b, mirrorS.Blobs, scrubConcurrency, stride)
				})
				wg.Go(func() { sw.Copy(b, mirrorS.Blobs[:lost], scrubConcurrency) })
				wg.Wait()
				shared = float64(size) / time.Since(start).Seconds()
			}
			// The reference as the repair reads (with the cold-read
			// hint), and through the page cache, in turn first; the
			// shared one first or last.
			doRead := func() {
				if round%4 < 2 {
					raw, readCPU = readOne(mirror, true)
					rawB, readCPUB = readOne(mirrorB, false)
					readShared()
				} else {
					readShared()
					rawB, readCPUB = readOne(mirrorB, false)
					raw, readCPU = readOne(mirror, true)
				}
			}
			doRepair := func() {
				var left int64
				for _, d := range survivors {
					left += benchutil.Evict(d)
				}
				if left > 0 {
					fmt.Printf("round %d: WARNING: %d bytes of the survivors stayed in the page cache (tmpfs?): the repair does not read cold\n", round+1, left)
				}
				benchutil.Settle(5 * time.Second)
				stop := profileRepair(b, round)
				mono[0] = monotonic()
				start, cpu0 := time.Now(), benchutil.ProcessCPU()
				var err error
				rep, err = New(e, nil).Scrub(ctx, ScrubOptions{Repair: true})
				if err != nil || len(rep.Unrepairable) > 0 {
					b.Fatalf("repair: %+v, %v", rep, err)
				}
				took, cpu = time.Since(start), benchutil.ProcessCPU()-cpu0
				mono[1] = monotonic()
				stop()
				repair = float64(size) / took.Seconds()
			}
			order := "reference first"
			if round%2 == 0 {
				doRead()
				doRepair()
			} else {
				order = "repair first"
				doRepair()
				doRead()
			}
			// The same blobs again: what a cache below the page cache
			// gives a second read.
			benchutil.Settle(5 * time.Second)
			cpu0 := benchutil.ProcessCPU()
			warm, readBytes, _ := benchutil.ReadBlobs(b, mirrorB.Blobs, scrubConcurrency, stride)
			warmCPU := benchutil.ProcessCPU() - cpu0

			// The write reference: blobs like the lost shards (one a
			// version on each of two sites, the survivors' size), written
			// as the repair writes them, as many at once, on two fresh
			// sites: O_DIRECT, fdatasync, rename, directory fsync.
			wm := benchutil.NewMirror(b, filepath.Join(root, "ref-write"), lost)
			benchutil.Settle(5 * time.Second)
			cpu0 = benchutil.ProcessCPU()
			wm.Copy(b, mirror.Blobs[:lost], scrubConcurrency)
			writeCPU := benchutil.ProcessCPU() - cpu0
			rawW := wm.WriteRate()
			var refWritten int64
			for _, q := range wm.Blobs {
				for _, bl := range q {
					refWritten += bl.Size
				}
			}
			// The compute the repair does besides reading and writing,
			// in memory (the lost shards of the first object, which
			// stand for all: every object lost two of its six), and what
			// the write reference spent making its bytes.
			computeSize := min(size, 512<<20)
			compute := repairCompute(b, computeSize, vault.DefaultStripeSize, 4, 2, lostIdx)
			gen := genCPU(refWritten)

			for _, d := range survivors {
				benchutil.Evict(d)
			}
			benchutil.Evict(dirs["deu-1"])
			benchutil.Evict(dirs["deu-2"])
			start := time.Now()
			if err := ix.Reset(ctx); err != nil {
				b.Fatal(err)
			}
			if _, err := New(e, nil).RebuildIndex(ctx, nil); err != nil {
				b.Fatal(err)
			}
			// Every object read back, verified, scrubConcurrency at once
			// (as many as the reference reads a site at once; one at a
			// time, four streams, it measured the reader's latency).
			var next atomic.Int64
			var wg sync.WaitGroup
			for range scrubConcurrency {
				wg.Go(func() {
					for i := next.Add(1) - 1; i < int64(objects); i = next.Add(1) - 1 {
						r, err := e.Get(ctx, "bench", fmt.Sprintf("o/%04d", i), vault.GetOptions{Length: -1})
						if err != nil {
							b.Error(err)
							return
						}
						n, err := io.Copy(io.Discard, r)
						r.Close()
						if err != nil || n != objSize {
							b.Errorf("read back %d bytes: %v", n, err)
							return
						}
					}
				})
			}
			wg.Wait()
			if b.Failed() {
				b.FailNow()
			}
			recovery := float64(size) / time.Since(start).Seconds()
			// Repair also writes: the lost shards, (k+m-survivors)/k of the
			// object bytes. With writes slower than reads, that bounds it.
			written := float64(rep.BytesRepaired)
			writeBound := rawW * float64(size) / max(written, 1)
			limit := min(raw, writeBound)
			const mb = 1e6
			// The CPU bound (bench/README.md, "The repair's CPU bound"):
			// per GB of objects, what the reference's first read spent
			// reading the same blobs the repair reads, what the write
			// reference spent writing blobs like the lost shards (less
			// what it spent making their bytes), scaled to the bytes the
			// repair wrote, and the repair's compute measured in memory.
			gb := float64(size) / 1e9
			cRead := readCPU.Seconds() / gb
			cWritten := (writeCPU - gen).Seconds() / (float64(refWritten) / 1e9) // per GB written
			cWrite := cWritten * written / float64(size)
			cCompute := compute.Seconds() / (float64(computeSize) / 1e9)
			need := cRead + cWrite + cCompute
			cores := runtime.GOMAXPROCS(0)
			cpuBound := float64(cores) / need * 1e9
			repR, recR, limR = append(repR, repair/raw), append(recR, recovery/rawB), append(limR, repair/limit)
			repBR = append(repBR, repair/rawB)
			repSR = append(repSR, repair/shared)
			boundR, useR = append(boundR, cpuBound/raw), append(useR, cpu.Seconds()/gb/need)
			fmt.Printf("round %d: %d MiB in %d objects, one jurisdiction lost: raw read of the survivors' blobs (mirrored, cold, O_DIRECT, %d readers a site, %s) %.0f MB/s, read again %.0f MB/s; raw write of blobs like the lost shards (%d at once a site) %.0f MB/s\n", round+1, size>>20, objects, scrubConcurrency, order, raw/mb, warm/mb, scrubConcurrency, rawW/mb)
			if raw > 0.75*warm {
				fmt.Printf("round %d: note: the first read ran at %.2f of the second and %.1fx the raw write: most likely a cache below the guest's page cache served it (bench/README.md, \"Cold reads\"), as it serves the repair's reads of blobs of the same age\n", round+1, raw/warm, raw/rawW)
			}
			fmt.Printf("round %d: repair %.0f MB/s: %.2f of raw read; %.2f of the limit %.0f MB/s (the lesser of raw read and raw write x object bytes / %d MiB of shards written: at most %.2f of raw read)\n",
				round+1, repair/mb, repair/raw, repair/limit, limit/mb, rep.BytesRepaired>>20, limit/raw)
			fmt.Printf("round %d: repair used %.1f CPU-s in %.1f s (%.2f cores busy), %.2f CPU-s per GB of objects (CLOCK_MONOTONIC %.3f to %.3f)\n", round+1, cpu.Seconds(), took.Seconds(), cpu.Seconds()/took.Seconds(), cpu.Seconds()/(float64(size)/1e9), mono[0], mono[1])
			fmt.Printf("round %d: raw read through the page cache (as a GET reads; the repair before it read with O_DIRECT) %.0f MB/s, %.2f CPU-s per GB read: repair/raw-buffered %.2f\n",
				round+1, rawB/mb, readCPUB.Seconds()/(float64(readBytes)/1e9), repair/rawB)
			fmt.Printf("round %d: CPU-s per GB: first raw read %.2f per GB read (%.2f cores busy), read again %.2f; raw write %.2f per GB written (%.2f, less %.2f making its bytes); compute in memory %.2f per GB of objects (verify, rebuild, join, GCM open, sum, copy out)\n",
				round+1, readCPU.Seconds()/(float64(readBytes)/1e9), readCPU.Seconds()/(float64(readBytes)/raw), warmCPU.Seconds()/(float64(readBytes)/1e9),
				cWritten, writeCPU.Seconds()/(float64(refWritten)/1e9), gen.Seconds()/(float64(refWritten)/1e9), cCompute)
			fmt.Printf("round %d: CPU bound: per GB of objects the repair reads what the first raw read read (%.2f CPU-s), writes %.2f GB (%.2f) and computes (%.2f): at least %.2f CPU-s, so at most %.0f MB/s on %d cores: %.2f of raw read, against repair/raw %.2f; the repair used %.2f CPU-s per GB, %.2f of that least\n",
				round+1, cRead, written/float64(size), cWrite, cCompute, need, cpuBound/mb, cores, cpuBound/raw, repair/raw, cpu.Seconds()/gb, cpu.Seconds()/gb/need)
			fmt.Printf("round %d: recovery (index rebuild + full verified read, %d objects at once, of survivors read before) %.0f MB/s: %.2f of the first raw read through the page cache (%.2f of the second, warm)\n", round+1, scrubConcurrency, recovery/mb, recovery/rawB, recovery/warm)
			// Reads and writes share the disk here: were its time simply
			// divided between them, a repair could reach at most
			// 1/(1/raw + w/rawW) (w: bytes written a byte of objects).
			timeShared := 1 / (1/raw + written/float64(size)/rawW)
			fmt.Printf("round %d: shared reference (the survivors' blobs read as the raw read reads them while blobs like the lost shards are written as the raw write writes them, one disk) %.0f MB/s of objects, reading at %.0f MB/s: repair/shared %.2f; the disk's time divided between raw read and raw write would give %.0f MB/s (shared/divided %.2f)\n",
				round+1, shared/mb, sharedR/mb, repair/shared, timeShared/mb, shared/timeShared)
			// The round's data goes before the next round writes its own
			// (about five times the size: six sites and four mirrors), so
			// that rounds do not add up on the disk. The sites are taken
			// down first, as the lost ones were: the audit log's copies
			// to them stop there.
			for id, f := range faults {
				f.Set(fault.Config{Down: true})
				os.RemoveAll(dirs[id])
			}
			refs, _ := filepath.Glob(filepath.Join(root, "ref-*"))
			for _, d := range refs {
				os.RemoveAll(d)
			}
		}
		rep, rec, lim := benchutil.Summarize(repR), benchutil.Summarize(recR), benchutil.Summarize(limR)
		b.ReportMetric(rep.Med, "repair/raw")
		b.ReportMetric(rec.Med, "recovery/raw")
		b.ReportMetric(lim.Med, "repair/limit")
		bound, use := benchutil.Summarize(boundR), benchutil.Summarize(useR)
		b.ReportMetric(bound.Med, "cpubound/raw")
		b.ReportMetric(benchutil.Summarize(repSR).Med, "repair/shared")
		fmt.Printf("repair/raw %s  repair/limit %s  recovery/raw %s  cpubound/raw %s  repair CPU/least %s  repair/raw-buffered %s  repair/shared %s\n", rep, lim, rec, bound, use, benchutil.Summarize(repBR), benchutil.Summarize(repSR))
	}
}

// monotonic returns CLOCK_MONOTONIC in seconds, the clock of perf record
// -k mono: the repair's line prints its start and end on it, for perf
// report --time.
func monotonic() float64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return float64(ts.Nano()) / 1e9
}

// repairStride is the size of the engine's reads of a shard blob: one full
// shard block and its checksum (the benchmark's objects have one part, all
// of one geometry).
func repairStride(b *testing.B, e *vault.Engine, ix index.Index) int {
	ctx := context.Background()
	page, err := ix.Versions(ctx, "bench", index.VersionOptions{Max: 1})
	if err != nil || len(page.Versions) == 0 {
		b.Fatalf("no version to take the geometry from: %v", err)
	}
	m, _, err := New(e, nil).manifest(ctx, page.Versions[0])
	if err != nil {
		b.Fatal(err)
	}
	return (m.StripeSize+seal.Overhead+m.K-1)/m.K + m.Parts[0].BlockSum.Size()
}

// survivorBlobs lists the shard blobs of a version on each of the sites
// survivors (by id), with their sizes.
func survivorBlobs(b *testing.B, e *vault.Engine, key string, id manifest.ID, survivors []string) [][]benchutil.Blob {
	ctx := context.Background()
	locs, err := e.Locate(ctx, "bench", key, id)
	if err != nil {
		b.Fatal(err)
	}
	out := make([][]benchutil.Blob, len(survivors))
	for _, l := range locs {
		i := slices.Index(survivors, l.Site)
		if i < 0 || l.Inline {
			continue
		}
		s, _ := e.Site(l.Site)
		info, err := s.Store.Stat(ctx, l.Blob)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = append(out[i], benchutil.Blob{Name: l.Blob, Size: info.Size})
	}
	return out
}

// discardSite takes the bytes of every shard blob larger than 1 MiB put to
// it and keeps none (-embassy.repair-discard); every other put (manifest
// copies, the audit log's copies) goes to its site.
type discardSite struct{ site.Site }

func (d discardSite) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if _, _, ok := manifest.ParseShardBlobName(name); ok && size > 1<<20 {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	return d.Site.Put(ctx, name, r, size)
}
