package vault

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/audit/audittest"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
)

var (
	benchCopyLoads    = flag.String("embassy.audit-copies", "64MiB:1:16,4KiB:16:2000", "loads of BenchmarkAuditCopies: SIZE:WRITERS:COUNT, comma-separated")
	benchCopyInterval = flag.Duration("embassy.audit-copy-interval", 0, "the audit log's CopyInterval in BenchmarkAuditCopies (0: a node's default)")
	benchCopyProfile  = flag.String("embassy.audit-copies-profile", "", "BenchmarkAuditCopies: write a CPU profile of each load, from its first put until every site holds the log, to PREFIX-SIZE-WRITERS-COUNT.pb.gz")
	benchCopyPrefill  = flag.Int("embassy.audit-prefill", 70_000, "entries in the audit log before BenchmarkAuditCopies' load (a node's log is not new: at 65,536 its tree has a third level of tiles)")
)

// logOps counts a site's operations on its copy of the audit log (names
// under audit.SitePrefix); everything else passes through uncounted.
type logOps struct {
	site.Site
	puts, bytes, deletes, lists, checkpoints atomic.Int64
}

func (s *logOps) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	err := s.Site.Put(ctx, name, r, size)
	if err == nil && strings.HasPrefix(name, audit.SitePrefix) {
		s.puts.Add(1)
		s.bytes.Add(size)
		if name == audit.SitePrefix+"checkpoint" {
			s.checkpoints.Add(1)
		}
	}
	return err
}

func (s *logOps) Delete(ctx context.Context, name string) error {
	err := s.Site.Delete(ctx, name)
	if err == nil && strings.HasPrefix(name, audit.SitePrefix) {
		s.deletes.Add(1)
	}
	return err
}

func (s *logOps) List(ctx context.Context, prefix string, fn func(site.Info) error) error {
	if strings.HasPrefix(prefix, audit.SitePrefix) {
		s.lists.Add(1)
	}
	return s.Site.List(ctx, prefix, fn)
}

// parseSize reads 64MiB, 4KiB, 1GiB or a number of bytes.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			s, mult = strings.TrimSuffix(s, suf), m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

// BenchmarkAuditCopies measures what copying the audit log to the sites
// costs under a load of puts: for each load of -embassy.audit-copies
// (SIZE:WRITERS:COUNT; by default 16 objects of 64 MiB by one writer, then
// 2,000 of 4 KiB by 16), on a fresh engine with its log and six dir sites,
// it counts the copier's operations on every site (files written, their
// bytes, removals, listings, checkpoints written: one a round that had
// something to copy) from the first put until every site holds the whole
// log, and prints them per round and site, and per GiB or per thousand
// objects. The durable syncs follow from the dir driver: a Put is an
// fdatasync and its directory's fsync, a Delete its directory's fsync
// (shared by concurrent removals in one directory).
//
// CPU is not split here: -embassy.audit-copies-profile=PREFIX writes a CPU
// profile of each load, in which go tool pprof -focus 'audit.\(\*copier\)'
// shows the copier's share and -focus 'tessera' tessera's
// (docs/design.md, "The audit log's copies"). The copy
// interval is a node's default (1 s) unless -embassy.audit-copy-interval
// sets it.
//
//	go test -run '^$' -bench AuditCopies -benchtime 1x ./vault/
func BenchmarkAuditCopies(b *testing.B) {
	type load struct {
		spec           string
		size           int64
		writers, count int
	}
	var loads []load
	for spec := range strings.SplitSeq(*benchCopyLoads, ",") {
		f := strings.Split(spec, ":")
		if len(f) != 3 {
			b.Fatalf("-embassy.audit-copies: %q is not SIZE:WRITERS:COUNT", spec)
		}
		size, err := parseSize(f[0])
		w, werr := strconv.Atoi(f[1])
		n, nerr := strconv.Atoi(f[2])
		if err != nil || werr != nil || nerr != nil || size <= 0 || w <= 0 || n <= 0 {
			b.Fatalf("-embassy.audit-copies: %q is not SIZE:WRITERS:COUNT", spec)
		}
		loads = append(loads, load{spec, size, w, n})
	}
	for b.Loop() {
		for _, ld := range loads {
			root := benchutil.Root(b)
			e, l, counts := benchEngineCounted(b, root)
			ctx := context.Background()
			small := bytes.Repeat([]byte{0xa5}, int(min(ld.size, 1<<20)))
			prefill(b, l, counts, *benchCopyPrefill)
			before := l.Integrated()
			stopProfile := func() {}
			if *benchCopyProfile != "" {
				f, err := os.Create(fmt.Sprintf("%s-%s.pb.gz", *benchCopyProfile, strings.ReplaceAll(ld.spec, ":", "-")))
				if err != nil {
					b.Fatal(err)
				}
				// 500 samples a second, not 100: the copier's share
				// of a load is a few hundred milliseconds. Set
				// before the profile starts, the rate stays (the
				// runtime prints that StartCPUProfile could not set
				// its own).
				runtime.SetCPUProfileRate(500)
				if err := pprof.StartCPUProfile(f); err != nil {
					b.Fatal(err)
				}
				stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
			}
			cpu0, start := benchutil.ProcessCPU(), time.Now()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range ld.writers {
				wg.Go(func() {
					for i := next.Add(1) - 1; i < int64(ld.count); i = next.Add(1) - 1 {
						var r io.Reader = bytes.NewReader(small)
						size := ld.size
						if ld.size > int64(len(small)) {
							r, size = &benchutil.Gen{Left: ld.size, State: uint64(i) + 7}, -1
						}
						if _, err := e.Put(ctx, "bench", fmt.Sprintf("obj/%03d/%08d", i%1000, i), r, PutOptions{Size: size}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			puts := time.Since(start)
			// Every entry of the load on every site: the copies
			// the load caused, and no more.
			benchutil.Settle(5 * time.Second)
			ids := make([]string, 0, len(counts))
			for id := range counts {
				ids = append(ids, id)
			}
			sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			if err := l.Sync(sctx, l.Integrated(), ids); err != nil {
				b.Fatal(err)
			}
			cancel()
			wall, cpu := time.Since(start), benchutil.ProcessCPU()-cpu0
			stopProfile()
			var nPut, nBytes, dels, lists, cps int64
			for _, c := range counts {
				nPut += c.puts.Load()
				nBytes += c.bytes.Load()
				dels += c.deletes.Load()
				lists += c.lists.Load()
				cps += c.checkpoints.Load()
			}
			sites := float64(len(counts))
			rounds := float64(cps) / sites
			entries := l.Integrated() - before
			gib := float64(ld.size) * float64(ld.count) / (1 << 30)
			per := func(x int64) float64 { return float64(x) / sites / max(rounds, 1) }
			fmt.Printf("audit copies %s (interval %v, log of %d entries before): %d entries in %.1f s of puts (%.1f s until on every site, %.2f CPU-s in all); per site: %.0f rounds, %.1f entries a round\n",
				ld.spec, *benchCopyInterval, before, entries, puts.Seconds(), wall.Seconds(), cpu.Seconds(), rounds, float64(entries)/max(rounds, 1))
			fmt.Printf("  per round and site: %.2f files written (%.0f bytes), %.2f removed, %.2f listings; durable syncs (dir driver, before grouping) %.2f\n",
				per(nPut), per(nBytes), per(dels), per(lists), per(2*nPut+dels))
			fmt.Printf("  all six sites: %d files written, %d removed, %d listings: per GiB %.0f written, %.0f removed; per 1,000 objects %.0f written, %.0f removed\n",
				nPut, dels, lists, float64(nPut)/gib, float64(dels)/gib, float64(nPut)*1000/float64(ld.count), float64(dels)*1000/float64(ld.count))
			b.ReportMetric(per(nPut), "files/round/site")
			b.ReportMetric(per(dels), "removals/round/site")
		}
	}
}

// prefill appends n entries to l, waits until every site holds them, and
// zeroes the counts.
func prefill(b *testing.B, l *audit.Log, counts map[string]*logOps, n int) {
	ctx := context.Background()
	size := l.Integrated()
	for n > 0 {
		evs := make([]audit.Event, min(n, 1024))
		for i := range evs {
			evs[i] = audit.Event{Kind: "bench.prefill", Actor: "bench", Vault: "bench", Key: fmt.Sprintf("prefill/%08d", n-i)}
		}
		last, err := l.Append(ctx, evs...)
		if err != nil {
			b.Fatal(err)
		}
		size, n = last+1, n-len(evs)
	}
	ids := make([]string, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := l.Sync(sctx, size, ids); err != nil {
		b.Fatal(err)
	}
	for _, c := range counts {
		for _, x := range []*atomic.Int64{&c.puts, &c.bytes, &c.deletes, &c.lists, &c.checkpoints} {
			x.Store(0)
		}
	}
}

// benchEngineCounted is benchEngine with the audit log's operations on
// every site counted, and the log itself returned.
func benchEngineCounted(b *testing.B, root string) (*Engine, *audit.Log, map[string]*logOps) {
	rk, _ := custody.GenerateRootKey()
	keys, _ := custody.NewKeyring(rk)
	ix, err := boltindex.Open(filepath.Join(root, "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ix.Close() })
	var sites []Site
	counts := map[string]*logOps{}
	stores := map[string]site.Site{}
	for _, d := range topology {
		ds, err := dir.New(filepath.Join(root, "sites", d.ID))
		if err != nil {
			b.Fatal(err)
		}
		sites = append(sites, Site{Descriptor: d, Store: ds})
		counts[d.ID] = &logOps{Site: ds}
		stores[d.ID] = counts[d.ID]
	}
	cfg := audittest.Config(b, audittest.Keys(b, "bench"), "bench", filepath.Join(root, "audit"), func() map[string]site.Site { return stores })
	// A node's defaults, not a test's quicker ones.
	cfg.CheckpointInterval, cfg.BatchDelay, cfg.CopyInterval = 0, *benchAuditBatchDelay, *benchCopyInterval
	cfg.IntegrateWithCopies = *benchIntegrateWithCopies
	l := audittest.OpenConfig(b, cfg)
	e, err := New(Config{Keys: keys, Index: ix, Sites: sites, Audit: l, AuditFailClosed: true, Vaults: []Vault{{Name: "bench", Owner: "EST",
		Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1}}}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(context.Background()) })
	return e, l, counts
}
