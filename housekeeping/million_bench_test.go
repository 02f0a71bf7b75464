package housekeeping

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/vault"
)

var (
	millionCount   = flag.Int("embassy.million", 1_000_000, "objects for BenchmarkMillion")
	millionSize    = flag.Int("embassy.million-size", 4096, "object size for BenchmarkMillion")
	millionWorkers = flag.Int("embassy.million-workers", 32, "concurrent writers for BenchmarkMillion")
	millionPhases  = flag.String("embassy.million-phases", "list,rebuild,scrub,collect,drill", "phases of BenchmarkMillion to run after the puts, comma-separated")
	millionReuse   = flag.String("embassy.million-reuse", "", "directory BenchmarkMillion keeps its sites, index and root key in, and takes them from when an earlier run completed its puts there (skipping the puts)")
)

// peak samples the Go heap in use and the process's resident set while a
// phase runs.
type peak struct {
	heap, live, rss atomic.Int64
	stop            chan struct{}
	done            sync.WaitGroup
}

// With EMBASSY_MILLION_HEAPPROF set to a directory, a phase also writes
// heap profiles while it runs: every EMBASSY_MILLION_HEAPPROF_EVERY (2s by
// default) it collects garbage (so that the profile is current, not two
// collections old) and, when the live heap is the largest seen in the
// phase, writes <phase>.peak.heap, so that what a phase holds at its
// largest can be diffed between two sizes (docs/design.md, "The live
// heap's growth (issue 15, twelfth pass)"). The forced collections lower
// the phase's peak heap in use; its live heap is what they measure.
// EMBASSY_MILLION_MEMPROFRATE sets runtime.MemProfileRate (bytes between
// samples; Go's default 512 KiB) for a finer profile.
func writeHeapProfile(path string) {
	if f, err := os.Create(path); err == nil {
		pprof.WriteHeapProfile(f)
		f.Close()
	}
}

func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func watch(profAt string) *peak {
	// Two collections: the first moves pooled buffers of the last phase to
	// the pools' victim caches, the second frees them, so that what a phase
	// is charged with is its own.
	runtime.GC()
	runtime.GC()
	p := &peak{stop: make(chan struct{})}
	p.done.Go(func() {
		var ms runtime.MemStats
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		var written int64
		var writtenAt time.Time
		every, err := time.ParseDuration(os.Getenv("EMBASSY_MILLION_HEAPPROF_EVERY"))
		if err != nil || every <= 0 {
			every = 2 * time.Second
		}
		for {
			runtime.ReadMemStats(&ms)
			if h := int64(ms.HeapInuse); h > p.heap.Load() {
				p.heap.Store(h)
			}
			metrics.Read(live)
			if l := int64(live[0].Value.Uint64()); l > p.live.Load() {
				p.live.Store(l)
			}
			if profAt != "" && time.Since(writtenAt) > every {
				writtenAt = time.Now()
				runtime.GC()
				metrics.Read(live)
				if l := int64(live[0].Value.Uint64()); l > written {
					writeHeapProfile(profAt + ".peak.heap")
					written = l
					fmt.Printf("%s: live heap %.2f MiB at %s\n", filepath.Base(profAt), float64(l)/(1<<20), time.Now().UTC().Format(time.TimeOnly))
				}
			}
			if r := rss(); r > p.rss.Load() {
				p.rss.Store(r)
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	})
	return p
}

// end stops sampling and returns the peaks: the heap in use (live objects
// and garbage not yet collected), the live heap as the last collection
// marked it, and the resident set.
func (p *peak) end() (heap, live, rss int64) {
	close(p.stop)
	p.done.Wait()
	return p.heap.Load(), p.live.Load(), p.rss.Load()
}

// BenchmarkMillion puts a million small objects (4 KiB, inline) through
// the engine on six dir sites (4+2), then lists them, rebuilds the index
// from the sites, scrubs, collects garbage and drills the loss of a
// jurisdiction, reporting for each phase its rate, its time, and the peak
// Go heap in use and resident set while it ran, so that how each cost grows
// with the number of objects is on record (docs/design.md, Measured). The
// bound to keep: the heap of rebuild, drill and collection under 256 MiB.
//
//	bench/million.sh                       # a million objects
//	OBJECTS=100000 bench/million.sh        # quicker
func BenchmarkMillion(b *testing.B) {
	count, size := *millionCount, *millionSize
	if r, err := strconv.Atoi(os.Getenv("EMBASSY_MILLION_MEMPROFRATE")); err == nil && r > 0 {
		runtime.MemProfileRate = r
	}
	for b.Loop() {
		root, reused := millionRoot(b, count)
		var keys *custody.Keyring
		var ix *boltindex.Index
		var rk custody.RootKey
		if reused {
			keys, ix = reuseKeysIndex(b, root)
		} else {
			rk, keys, ix = benchRootKeysIndex(b, root)
		}
		sites := dirSites(b, root)
		e, err := vault.New(vault.Config{NodeID: "million", Keys: keys, Index: ix, Sites: sites, Vaults: []vault.Vault{{Name: "bench", Owner: "EST",
			Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1}}}}})
		if err != nil {
			b.Fatal(err)
		}
		closed := false // by the phase compact
		b.Cleanup(func() {
			if !closed {
				e.Close(context.Background())
				ix.Close()
			}
		})
		k := New(e, nil)
		ctx := vault.AsSystem(context.Background())
		type row struct {
			phase       string
			n           int
			unit        string
			secs        float64
			heap, live  int64
			rss         int64
			heapBounded bool
		}
		var rows []row
		phase := func(name, unit string, bounded bool, fn func() int) {
			if name != "put" && !slices.Contains(strings.Split(*millionPhases, ","), name) || name == "put" && reused {
				return
			}
			profAt := ""
			if d := os.Getenv("EMBASSY_MILLION_HEAPPROF"); d != "" {
				profAt = filepath.Join(d, name)
			}
			p := watch(profAt)
			t0 := time.Now()
			n := fn()
			secs := time.Since(t0).Seconds()
			if profAt != "" {
				// What the phase leaves live: a heap profile per phase.
				runtime.GC()
				writeHeapProfile(profAt + ".heap")
			}
			h, l, r := p.end()
			rows = append(rows, row{name, n, unit, secs, h, l, r, bounded})
			fmt.Printf("%-10s %9d %-8s in %8.1fs: %10.0f %s/s, peak heap %6.1f MiB (live %6.1f), peak RSS %6.1f MiB\n", name, n, unit, secs, float64(n)/secs, unit, float64(h)/(1<<20), float64(l)/(1<<20), float64(r)/(1<<20))
			if name != "compact" && name != "rebuild-new" {
				printSpace(b, "after "+name, ix, count)
			}
		}
		data := bytes.Repeat([]byte("m"), size)
		phase("put", "objects", false, func() int {
			var next atomic.Int64
			var wg sync.WaitGroup
			for range *millionWorkers {
				wg.Go(func() {
					for i := next.Add(1) - 1; i < int64(count); i = next.Add(1) - 1 {
						if _, err := e.Put(ctx, "bench", fmt.Sprintf("o/%07d", i), bytes.NewReader(data), vault.PutOptions{Size: int64(size)}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			return count
		})
		if b.Failed() {
			return
		}
		if *millionReuse != "" && !reused {
			if err := custody.WriteKeyFile(filepath.Join(root, "root.key"), rk); err != nil {
				b.Fatal(err)
			}
		}
		phase("list", "keys", true, func() int {
			n := 0
			o := index.ListOptions{}
			for {
				p, err := e.List(ctx, "bench", o)
				if err != nil {
					b.Fatal(err)
				}
				n += len(p.Entries)
				if !p.Truncated {
					return n
				}
				o.After = p.Next
			}
		})
		phase("rebuild", "versions", true, func() int {
			st, err := k.RebuildIndex(ctx, nil)
			if err != nil || st.Versions != count {
				b.Fatalf("rebuild: %d versions, %v", st.Versions, err)
			}
			return st.Versions
		})
		// A rebuild into a new, empty index (as 'embassy recover' makes
		// one), beside the one in use: what the rebuild's own order of
		// writes leaves in the file.
		phase("rebuild-new", "versions", true, func() int {
			ix2, err := boltindex.Open(filepath.Join(root, "index-new.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer ix2.Close()
			e2, err := vault.New(vault.Config{NodeID: "million", Keys: keys, Index: ix2, Sites: sites, Vaults: []vault.Vault{{Name: "bench", Owner: "EST",
				Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1}}}}})
			if err != nil {
				b.Fatal(err)
			}
			defer e2.Close(context.Background())
			st, err := New(e2, nil).RebuildIndex(ctx, nil)
			if err != nil || st.Versions != count {
				b.Fatalf("rebuild into a new index: %d versions, %v", st.Versions, err)
			}
			printSpace(b, "new, rebuilt", ix2, count)
			return st.Versions
		})
		phase("scrub", "versions", true, func() int {
			rep, err := k.Scrub(ctx, ScrubOptions{Grace: -1})
			if err != nil || rep.AtRisk != 0 {
				b.Fatalf("scrub: %+v, %v", rep, err)
			}
			return rep.Versions
		})
		phase("collect", "versions", true, func() int {
			c, err := k.Collect(ctx, CollectOptions{})
			if err != nil || !c.Ran || c.Removed != 0 {
				b.Fatalf("collect: %+v, %v", c, err)
			}
			return count
		})
		phase("drill", "versions", true, func() int {
			lost, _ := LostSites("jurisdiction=EST", e.SiteDescriptorsList())
			rep, err := k.Drill(ctx, DrillOptions{Lost: lost})
			if err != nil || rep.RPOObjects != 0 {
				b.Fatalf("drill: %+v, %v", rep.RPOObjects, err)
			}
			return rep.Read
		})
		st, _ := ix.Stats(ctx)
		fmt.Printf("index: %d bytes, %.0f bytes/object\n", st.Bytes, float64(st.Bytes)/float64(count))
		// Last: the index compacted offline (the engine closed, as
		// 'embassy index compact' needs the node stopped).
		phase("compact", "versions", true, func() int {
			if err := e.Close(ctx); err != nil {
				b.Fatal(err)
			}
			ix.Close()
			closed = true
			cs, err := boltindex.Compact(filepath.Join(root, "index.db"))
			if err != nil {
				b.Fatal(err)
			}
			fmt.Printf("compact: %d to %d bytes, %d entries\n", cs.Before, cs.After, cs.Entries)
			ix2, err := boltindex.Open(filepath.Join(root, "index.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer ix2.Close()
			printSpace(b, "compacted", ix2, count)
			return count
		})
		for _, r := range rows {
			b.ReportMetric(float64(r.n)/r.secs, r.phase+"-"+r.unit+"/s")
			b.ReportMetric(float64(r.heap)/(1<<20), r.phase+"-heap-MiB")
			b.ReportMetric(float64(r.live)/(1<<20), r.phase+"-live-MiB")
			if r.heapBounded && r.heap > 256<<20 {
				b.Errorf("%s: peak heap %.0f MiB over the 256 MiB bound", r.phase, float64(r.heap)/(1<<20))
			}
		}
	}
}

// printSpace prints how the index file's bytes are used, per object
// (bbolt's statistics, boltindex.Space).
func printSpace(tb testing.TB, when string, ix *boltindex.Index, count int) {
	s, err := ix.Space()
	if err != nil {
		tb.Fatal(err)
	}
	per := func(n int64) float64 { return float64(n) / float64(count) }
	var buckets strings.Builder
	for _, name := range slices.Sorted(maps.Keys(s.Buckets)) {
		bs := s.Buckets[name]
		if bs.Pages == 0 {
			continue
		}
		fmt.Fprintf(&buckets, " %s %.0f (%.0f allocated, %d pages)", name, per(bs.Inuse), per(bs.Alloc), bs.Pages)
	}
	fmt.Printf("index %-13s file %.0f B/object (%d bytes, %d on disk), high-water mark %.0f, pages in use %.0f, %d free + %d pending pages of %d; in use by bucket, B/object:%s\n",
		when, per(s.File), s.File, s.Disk, per(s.HighWater), per(s.InUse()), s.FreePages, s.PendingPages, s.PageSize, buckets.String())
}

// dirSites is a dir site under root/sites for each site of topology.
func dirSites(tb testing.TB, root string) []vault.Site {
	tb.Helper()
	var sites []vault.Site
	for _, d := range topology {
		ds, err := dir.New(filepath.Join(root, "sites", d.ID))
		if err != nil {
			tb.Fatal(err)
		}
		sites = append(sites, vault.Site{Descriptor: d, Store: ds})
	}
	return sites
}

// millionRoot is where BenchmarkMillion keeps its sites and index: a
// fresh directory, or -embassy.million-reuse, which holds those of an
// earlier run when it holds its root key (written once the puts of count
// objects completed there; reused is then true).
func millionRoot(b *testing.B, count int) (root string, reused bool) {
	d := *millionReuse
	if d == "" {
		return benchutil.Root(b), false
	}
	d = filepath.Join(d, fmt.Sprint(count))
	if _, err := os.Stat(filepath.Join(d, "root.key")); err == nil {
		return d, true
	}
	os.RemoveAll(d) // puts cut short
	if err := os.MkdirAll(d, 0o700); err != nil {
		b.Fatal(err)
	}
	return d, false
}

// reuseKeysIndex opens the keyring and index an earlier run left in root.
func reuseKeysIndex(tb testing.TB, root string) (*custody.Keyring, *boltindex.Index) {
	tb.Helper()
	rk, err := custody.ReadKeyFile(filepath.Join(root, "root.key"))
	if err != nil {
		tb.Fatal(err)
	}
	keys, ix := keysIndex(tb, root, rk)
	return keys, ix
}

// benchKeysIndex is a fresh keyring and an index at root/index.db.
func benchKeysIndex(tb testing.TB, root string) (*custody.Keyring, *boltindex.Index) {
	_, keys, ix := benchRootKeysIndex(tb, root)
	return keys, ix
}

// benchRootKeysIndex is benchKeysIndex with the root key.
func benchRootKeysIndex(tb testing.TB, root string) (custody.RootKey, *custody.Keyring, *boltindex.Index) {
	tb.Helper()
	rk, err := custody.GenerateRootKey()
	if err != nil {
		tb.Fatal(err)
	}
	keys, ix := keysIndex(tb, root, rk)
	return rk, keys, ix
}

// keysIndex is the keyring of rk and the index at root/index.db.
func keysIndex(tb testing.TB, root string, rk custody.RootKey) (*custody.Keyring, *boltindex.Index) {
	tb.Helper()
	keys, err := custody.NewKeyring(rk)
	if err != nil {
		tb.Fatal(err)
	}
	ix, err := boltindex.Open(filepath.Join(root, "index.db"))
	if err != nil {
		tb.Fatal(err)
	}
	return keys, ix
}
