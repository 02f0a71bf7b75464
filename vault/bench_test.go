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
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/audit/audittest"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/seal"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
)

var (
	benchSize    = flag.Int64("embassy.size", 1<<30, "object size for BenchmarkThroughput")
	benchObjects = flag.Int("embassy.objects", 100_000, "object count for BenchmarkSmallObjects")
	benchSmall   = flag.Int("embassy.small", 4096, "object size for BenchmarkSmallObjects")
	benchWorkers = flag.Int("embassy.workers", 16, "concurrent writers for BenchmarkSmallObjects")
)

func benchEngine(b *testing.B, root string) *Engine {
	return benchEngineAudit(b, root, true)
}

// benchEngineAudit is benchEngine with or without its audit log.
func benchEngineAudit(b *testing.B, root string, withAudit bool) *Engine {
	rk, _ := custody.GenerateRootKey()
	keys, _ := custody.NewKeyring(rk)
	ix, err := boltindex.Open(filepath.Join(root, "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ix.Close() })
	var sites []Site
	for _, d := range topology {
		ds, err := dir.New(filepath.Join(root, "sites", d.ID))
		if err != nil {
			b.Fatal(err)
		}
		sites = append(sites, Site{Descriptor: d, Store: ds})
	}
	var al AuditLog
	if withAudit {
		al = benchAudit(b, root, sites)
	}
	e, err := New(Config{Keys: keys, Index: ix, Sites: sites, Audit: al, AuditFailClosed: withAudit, Vaults: []Vault{{Name: "bench", Owner: "EST",
		Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1}}}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// benchAudit opens the audit log of a benchmark's engine in root, beside
// its sites: appends are part of what a put costs.
func benchAudit(b *testing.B, root string, sites []Site) AuditLog {
	stores := map[string]site.Site{}
	for _, s := range sites {
		stores[s.ID] = s.Store
	}
	cfg := audittest.Config(b, audittest.Keys(b, "bench"), "bench", filepath.Join(root, "audit"), func() map[string]site.Site { return stores })
	// A node's defaults, not a test's quicker ones.
	cfg.CheckpointInterval, cfg.BatchDelay, cfg.CopyInterval = 0, 0, 0
	return audittest.OpenConfig(b, cfg)
}

// cpuLimit measures one pass of sealing, Reed-Solomon encoding and shard
// checksumming over size bytes in 1 MiB stripes on every core: the CPU
// work a 4+2 put must do.
func cpuLimit(size int64) float64 {
	const stripe = DefaultStripeSize
	coder, _ := erasure.New(4, 2)
	dk, _ := seal.NewDataKey()
	s, _ := seal.NewStripes(dk, seal.StripeContext{})
	stripes := size / stripe
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			buf := make([]byte, bufSize(4, 2, stripe))
			var sum [erasure.SumSize]byte
			for j := next.Add(1) - 1; j < stripes; j = next.Add(1) - 1 {
				sealed := s.Seal(buf[:0], buf[:stripe], uint64(j), false)
				shards, _ := coder.Encode(buf, len(sealed))
				for i, sh := range shards {
					erasure.Sum(&sum, erasure.BlockID{Stripe: uint64(j), Shard: uint8(i)}, sh)
				}
			}
		})
	}
	wg.Wait()
	return float64(stripes*stripe) / time.Since(start).Seconds()
}

// BenchmarkThroughput puts and gets one large object (1 GiB by default) on
// six dir sites with 4+2 and reports it against the machine's limit for
// that work, measured in the same run: the lesser of the CPU work (seal,
// code, checksum on every core) and the disk's sequential throughput
// divided by the write amplification (k+m)/k = 1.5.
//
//	go test -run '^$' -bench Throughput -benchtime 1x ./vault/
func BenchmarkThroughput(b *testing.B) {
	size := *benchSize
	for b.Loop() {
		root := benchutil.Root(b)
		e := benchEngine(b, root)
		ctx := context.Background()

		cpu := cpuLimit(size)
		rawW, rawR := benchutil.DiskLimits(b, root, size*3/2)

		src := &benchutil.Gen{Left: size, State: 7}
		start := time.Now()
		if _, err := e.Put(ctx, "bench", "big", io.MultiReader(src), PutOptions{Size: -1}); err != nil {
			b.Fatal(err)
		}
		put := float64(size) / time.Since(start).Seconds()

		benchutil.Evict(filepath.Join(root, "sites"))
		r, err := e.Get(ctx, "bench", "big", GetOptions{Length: -1})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		n, err := io.Copy(io.Discard, r)
		r.Close()
		if err != nil || n != size {
			b.Fatalf("get: %d bytes, %v", n, err)
		}
		get := float64(size) / time.Since(start).Seconds()

		putLimit := min(cpu, rawW/1.5)
		getLimit := min(cpu, rawR/1.5)
		const mb = 1e6
		b.ReportMetric(put/mb, "put-MB/s")
		b.ReportMetric(get/mb, "get-MB/s")
		b.ReportMetric(cpu/mb, "cpu-limit-MB/s")
		b.ReportMetric(rawW/mb, "disk-write-MB/s")
		b.ReportMetric(rawR/mb, "disk-read-MB/s")
		b.ReportMetric(put/putLimit, "put/limit")
		b.ReportMetric(get/getLimit, "get/limit")
		fmt.Printf("object %d MiB: put %.0f MB/s, get %.0f MB/s; limit put %.0f MB/s (cpu %.0f, disk write %.0f/1.5), get %.0f MB/s (disk read %.0f/1.5)\n",
			size>>20, put/mb, get/mb, putLimit/mb, cpu/mb, rawW/mb, getLimit/mb, rawR/mb)
		fmt.Printf("put/limit %.2f  get/limit %.2f\n", put/putLimit, get/getLimit)
	}
}

// BenchmarkSmallObjects writes many small objects (100 000 by default) with
// concurrent writers, then lists them all, and reports put ops/s, list
// keys/s and index bytes per object. The reference, measured in the same
// run, is the raw durable work of the same writes: six files per object
// written, fdatasync'd, renamed and their directory flushed.
//
//	go test -run '^$' -bench SmallObjects -benchtime 1x ./vault/
func BenchmarkSmallObjects(b *testing.B) {
	count, size, workers := *benchObjects, *benchSmall, *benchWorkers
	for b.Loop() {
		root := benchutil.Root(b)
		e := benchEngine(b, root)
		ctx := context.Background()
		data := bytes.Repeat([]byte{0xa5}, size)

		refCount := min(count, 5000)
		ref := rawSmallWrites(b, filepath.Join(root, "raw"), refCount, size, workers)

		var next atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(count); i = next.Add(1) - 1 {
					key := fmt.Sprintf("obj/%03d/%08d", i%1000, i)
					if _, err := e.Put(ctx, "bench", key, bytes.NewReader(data), PutOptions{Size: int64(size)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		putOps := float64(count) / time.Since(start).Seconds()

		start = time.Now()
		listed := 0
		o := index.ListOptions{Max: 1000}
		for {
			p, err := e.List(ctx, "bench", o)
			if err != nil {
				b.Fatal(err)
			}
			listed += len(p.Entries)
			if !p.Truncated {
				break
			}
			o.After = p.Next
		}
		listRate := float64(listed) / time.Since(start).Seconds()
		if listed != count {
			b.Fatalf("listed %d of %d", listed, count)
		}
		st, err := e.index.Stats(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(putOps, "put-ops/s")
		b.ReportMetric(ref, "raw-ops/s")
		b.ReportMetric(putOps/ref, "put/raw")
		b.ReportMetric(listRate, "list-keys/s")
		b.ReportMetric(float64(st.Bytes)/float64(count), "index-B/object")
		fmt.Printf("%d objects of %d B, %d writers: put %.0f ops/s (raw six-file durable writes %.0f ops/s, ratio %.2f), list %.0f keys/s, index %.0f B/object\n",
			count, size, workers, putOps, ref, putOps/ref, listRate, float64(st.Bytes)/float64(count))
	}
}

// rawSmallWrites measures the durable file work of count small objects: per
// object, six files of size/4+overhead written, fdatasync'd, renamed and
// the directory fsync'd, with the same concurrency.
func rawSmallWrites(b *testing.B, d string, count, size, workers int) float64 {
	for i := range 6 {
		os.MkdirAll(filepath.Join(d, fmt.Sprint(i), "t"), 0o700)
	}
	defer os.RemoveAll(d)
	blob := make([]byte, size/4+600)
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(count); i = next.Add(1) - 1 {
				var inner sync.WaitGroup
				for s := range 6 {
					inner.Go(func() {
						sd := filepath.Join(d, fmt.Sprint(s))
						tmp := filepath.Join(sd, "t", fmt.Sprint(i))
						f, err := os.Create(tmp)
						if err != nil {
							b.Error(err)
							return
						}
						f.Write(blob)
						unix.Fdatasync(int(f.Fd()))
						f.Close()
						os.Rename(tmp, filepath.Join(sd, fmt.Sprint(i)))
						if df, err := os.Open(sd); err == nil {
							df.Sync()
							df.Close()
						}
					})
				}
				inner.Wait()
			}
		})
	}
	wg.Wait()
	return float64(count) / time.Since(start).Seconds()
}

var benchAuditRounds = flag.Int("embassy.audit-rounds", 3, "rounds of BenchmarkAuditCost (each: one run without the log, one with)")

// BenchmarkAuditCost measures what the audit log costs small-object puts:
// the same workload (embassy.objects objects of embassy.small bytes, or
// 2,000 when embassy.objects is left at its default, by embassy.workers
// writers) on a fresh engine without the log and one with it (appends
// durable in the local journal before every index commit, fail-closed,
// copies to the six sites in the background), alternating which goes
// first, and reports ops/s of each and their ratio (median of the
// rounds). The reference is the run without the log, in the same process.
//
//	go test -run '^$' -bench AuditCost -benchtime 1x ./vault/
func BenchmarkAuditCost(b *testing.B) {
	count, size, workers := *benchObjects, *benchSmall, *benchWorkers
	if count == 100_000 {
		count = 2000
	}
	run := func(withAudit bool) float64 {
		root := benchutil.Root(b)
		e := benchEngineAudit(b, root, withAudit)
		ctx := context.Background()
		data := bytes.Repeat([]byte{0xa5}, size)
		var next atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(count); i = next.Add(1) - 1 {
					if _, err := e.Put(ctx, "bench", fmt.Sprintf("obj/%08d", i), bytes.NewReader(data), PutOptions{Size: int64(size)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return float64(count) / time.Since(start).Seconds()
	}
	for b.Loop() {
		var off, on, ratios []float64
		for r := range *benchAuditRounds {
			var a, o float64
			if r%2 == 0 {
				o, a = run(false), run(true)
			} else {
				a, o = run(true), run(false)
			}
			off, on, ratios = append(off, o), append(on, a), append(ratios, a/o)
			fmt.Printf("round %d: without the log %.0f ops/s, with it %.0f ops/s, ratio %.3f\n", r, o, a, a/o)
		}
		med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
		b.ReportMetric(med(off), "put-ops/s-no-log")
		b.ReportMetric(med(on), "put-ops/s-log")
		b.ReportMetric(med(ratios), "log/no-log")
		fmt.Printf("%d objects of %d B, %d writers, %d rounds: median without the log %.0f ops/s, with it %.0f ops/s; ratio with/without %.3f\n",
			count, size, workers, len(ratios), med(off), med(on), med(ratios))
	}
}
