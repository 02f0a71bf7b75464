package boltindex

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site/dir"
)

// The flush patterns of an index commit, measured beside the small puts'
// manifest copies (docs/design.md, "Small puts: a commit of one flush,
// measured (issue 15, sixteenth pass)"). A bbolt commit is two flushes in
// series (its pages, then its meta page); a write-ahead log in front of
// bbolt would make it one. These benchmarks measure, on the disk under
// -embassy.dir, what that one flush costs against bbolt's two while six
// sites' small durable writes share the disk, as they do in a put.

var (
	commitSlice   = flag.Duration("embassy.commit-slice", 2*time.Second, "CommitFlush, CommitPut: how long each slice of commits or puts runs")
	commitWriters = flag.Int("embassy.commit-writers", 16, "CommitFlush: writers of the copies beside the commits; CommitPut: writers of the puts")
	commitBatch   = flag.Int("embassy.commit-batch", 3, "CommitFlush: index writes a commit (a transaction of the group commit)")
)

const (
	copySize   = 1391     // the mean manifest copy of a 4 KiB object (docs/design.md, fifteenth pass)
	recordSize = 400      // a logged index write: a version's key, summary and envelope
	logSize    = 64 << 20 // the preallocated log, overwritten in place round and round
)

// copier writes small blobs as manifest copies are written: one on each
// of six dir sites at once, through the driver's small-file path (page
// cache, fdatasync, rename, the directory's group-committed fsync).
type copier struct {
	sites []*dir.Site
	blob  []byte
}

func newCopier(b *testing.B, root string) *copier {
	c := &copier{blob: bytes.Repeat([]byte{0x5a}, copySize)}
	for i := range 6 {
		s, err := dir.New(filepath.Join(root, fmt.Sprint("site", i)))
		if err != nil {
			b.Fatal(err)
		}
		c.sites = append(c.sites, s)
	}
	return c
}

// object writes one object's six copies and returns when all are durable.
func (c *copier) object(b *testing.B) {
	var h [16]byte
	rand.Read(h[:])
	x := hex.EncodeToString(h[:])
	name := "m/" + x[:2] + "/" + x
	var wg sync.WaitGroup
	for _, s := range c.sites {
		wg.Go(func() {
			if err := s.Put(context.Background(), name, bytes.NewReader(c.blob), int64(len(c.blob))); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}

// logKind is how a log record is made durable.
type logKind int

const (
	logPrealloc    logKind = iota // pwrite into a written, preallocated file; fdatasync
	logDirectDsync                // O_DIRECT|O_DSYNC pwrite of whole 4 KiB blocks
	logDirectSync                 // O_DIRECT pwrite of whole 4 KiB blocks; fdatasync
	logGrow                       // append to a growing file; fdatasync (the seventh pass's)
)

// wal is a log file written one record a commit.
type wal struct {
	f    *os.File
	kind logKind
	off  int64
	buf  []byte // 4 KiB aligned, for O_DIRECT
}

func openWAL(b *testing.B, path string, kind logKind) *wal {
	flags := os.O_RDWR | os.O_CREATE
	switch kind {
	case logGrow:
		flags |= os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if kind != logGrow {
		// Allocated and written before use, so that an overwrite changes
		// no metadata the flush must carry (no unwritten extents).
		zero := make([]byte, 1<<20)
		for off := int64(0); off < logSize; off += int64(len(zero)) {
			if _, err := f.WriteAt(zero, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	if kind == logDirectDsync || kind == logDirectSync {
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err == nil {
			_, err = unix.FcntlInt(f.Fd(), unix.F_SETFL, fl|unix.O_DIRECT)
		}
		if err != nil {
			b.Fatal(err)
		}
		if kind == logDirectDsync {
			// F_SETFL cannot set O_DSYNC: reopen with it.
			f.Close()
			f, err = os.OpenFile(path, os.O_RDWR|unix.O_DIRECT|unix.O_DSYNC, 0)
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	raw := make([]byte, 1<<20+4096)
	a := int(uintptr(unsafe.Pointer(&raw[0])) & 4095)
	if a != 0 {
		a = 4096 - a
	}
	w := &wal{f: f, kind: kind, buf: raw[a : a+1<<20]}
	b.Cleanup(func() { f.Close() })
	return w
}

// append makes n bytes of record durable.
func (w *wal) append(n int) error {
	switch w.kind {
	case logGrow:
		if _, err := w.f.Write(w.buf[:n]); err != nil {
			return err
		}
		return unix.Fdatasync(int(w.f.Fd()))
	case logPrealloc:
		if w.off+int64(n) > logSize {
			w.off = 0
		}
		if _, err := w.f.WriteAt(w.buf[:n], w.off); err != nil {
			return err
		}
		w.off += int64(n)
		return unix.Fdatasync(int(w.f.Fd()))
	default:
		// Whole blocks: a record starts on a fresh block (a real log would
		// rewrite its last partial block; the same I/O).
		m := (n + 4095) &^ 4095
		if w.off+int64(m) > logSize {
			w.off = 0
		}
		if _, err := w.f.WriteAt(w.buf[:m], w.off); err != nil {
			return err
		}
		w.off += int64(m)
		if w.kind == logDirectSync {
			return unix.Fdatasync(int(w.f.Fd()))
		}
		return nil
	}
}

var benchKeys atomic.Int64

func benchVersion() index.Version {
	var id manifest.ID
	rand.Read(id[:])
	return index.Version{Vault: "bench", Key: fmt.Sprintf("o/%09d", benchKeys.Add(1)), ID: id, Created: time.Now().UnixNano(), Size: 4096,
		ETag: `"0123456789abcdef0123456789abcdef"`, Envelope: fakeEnvelope(manifest.FormatCompact, 345)}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func median(xs []float64) float64 { return benchutil.Summarize(xs).Med }

// flushCounter counts the disk's completed flushes, if it can.
type flushCounter struct{ d *benchutil.Disk }

func (c flushCounter) now() uint64 {
	if c.d == nil {
		return 0
	}
	s, err := c.d.Stat()
	if err != nil {
		return 0
	}
	return s.Flushes
}

// BenchmarkCommitFlush measures one commit's time, back to back from one
// committer, for bbolt's transaction of -embassy.commit-batch small
// versions (its pages and fdatasync, then its meta page and fdatasync)
// against a log record of as many index writes made durable by one flush:
//
//   - prealloc: pwrite into a preallocated, already written file,
//     overwritten in place, then fdatasync (data only: no metadata changes);
//   - direct-dsync: the same file opened O_DIRECT|O_DSYNC, whole blocks;
//   - direct-fdatasync: O_DIRECT pwrite of whole blocks, then fdatasync;
//   - grow: an append to a growing file, then fdatasync (size changes, so
//     the inode is written too: the seventh pass's experiment).
//
// All the while -embassy.commit-writers writers put small objects' six
// copies through six dir sites on the same disk, as the engine's puts do
// beside their commits. Each round runs, for each log kind, a pair of
// slices (bbolt's and the log's, in ABBA order across pairs and rounds);
// a pair gives the ratio of the log's median commit time to bbolt's. It
// prints every pair, each round's load average, and the median ratio of
// each kind over the rounds with its range.
//
//	go test -run '^$' -bench CommitFlush -benchtime 1x ./index/boltindex/ -args -embassy.rounds=5
func BenchmarkCommitFlush(b *testing.B) {
	root := benchutil.Root(b)
	ix, err := Open(filepath.Join(root, "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ix.Close() })
	// Warm the index: a B-tree of some depth, as a node's.
	warm := make([]index.Version, 0, 1000)
	for range 20 {
		warm = warm[:0]
		for range 1000 {
			warm = append(warm, benchVersion())
		}
		if err := ix.PutMany(b.Context(), warm); err != nil {
			b.Fatal(err)
		}
	}
	kinds := []struct {
		name string
		kind logKind
	}{{"prealloc", logPrealloc}, {"direct-dsync", logDirectDsync}, {"direct-fdatasync", logDirectSync}, {"grow", logGrow}}
	logs := make([]*wal, len(kinds))
	for i, k := range kinds {
		logs[i] = openWAL(b, filepath.Join(root, k.name+".log"), k.kind)
	}
	disk, _ := benchutil.DiskOf(root)
	fc := flushCounter{disk}

	// The copies beside the commits, all through the run.
	c := newCopier(b, filepath.Join(root, "copies"))
	stop := make(chan struct{})
	var copies atomic.Int64
	var bg sync.WaitGroup
	for range *commitWriters {
		bg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c.object(b)
				copies.Add(1)
			}
		})
	}
	defer func() { close(stop); bg.Wait() }()
	time.Sleep(*commitSlice) // the copies under way before the first slice

	batch := *commitBatch
	type slice struct {
		median, mean   float64 // ms a commit
		commits        int
		flushes, objsS float64 // device flushes a commit; copies' objects a second
	}
	run := func(commit func() error) slice {
		var lat []float64
		f0, o0 := fc.now(), copies.Load()
		start := time.Now()
		for time.Since(start) < *commitSlice {
			t := time.Now()
			if err := commit(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, float64(time.Since(t).Microseconds())/1000)
		}
		el := time.Since(start)
		var sum float64
		for _, x := range lat {
			sum += x
		}
		return slice{median: median(lat), mean: sum / float64(len(lat)), commits: len(lat),
			flushes: float64(fc.now()-f0) / float64(len(lat)), objsS: float64(copies.Load()-o0) / el.Seconds()}
	}
	boltCommit := func() error {
		vs := make([]index.Version, batch)
		for i := range vs {
			vs[i] = benchVersion()
		}
		return ix.PutMany(b.Context(), vs)
	}
	ratios := make([][]float64, len(kinds))
	var boltMs []float64
	logMs := make([][]float64, len(kinds))
	pair := 0
	for r := range max(*benchutil.Rounds, 1) {
		fmt.Printf("round %d: load average %s\n", r+1, loadavg())
		for i := range kinds {
			k := (i + r) % len(kinds) // each round starts with another kind
			logCommit := func() error { return logs[k].append(batch * recordSize) }
			var sb, sl slice
			if pair%2 == 0 {
				sb, sl = run(boltCommit), run(logCommit)
			} else {
				sl, sb = run(logCommit), run(boltCommit)
			}
			pair++
			ratio := sl.median / sb.median
			ratios[k] = append(ratios[k], ratio)
			boltMs = append(boltMs, sb.median)
			logMs[k] = append(logMs[k], sl.median)
			fmt.Printf("round %d pair %d: bbolt %.2f ms a commit (mean %.2f, %d commits, the disk %.2f flushes over the slice a commit, copies %.0f objects/s); %s %.2f ms (mean %.2f, %d, %.2f flushes, copies %.0f/s); %s/bbolt %.2f\n",
				r+1, pair, sb.median, sb.mean, sb.commits, sb.flushes, sb.objsS, kinds[k].name, sl.median, sl.mean, sl.commits, sl.flushes, sl.objsS, kinds[k].name, ratio)
		}
	}
	s := benchutil.Summarize(boltMs)
	fmt.Printf("load average at the end %s; bbolt's commit of %d writes: %.2f ms (%.2f–%.2f over its %d slices)\n", loadavg(), batch, s.Med, s.Min, s.Max, s.N)
	for k := range kinds {
		s := benchutil.Summarize(ratios[k])
		fmt.Printf("%s/bbolt commit time %.2f (%.2f–%.2f over %d rounds); %s %.2f ms\n", kinds[k].name, s.Med, s.Min, s.Max, len(ratios[k]), kinds[k].name, median(logMs[k]))
		b.ReportMetric(s.Med, kinds[k].name+"/bbolt")
	}
}

// committer is a group commit as the index's: each commit takes every
// write waiting when it starts.
type committer struct {
	in       chan request
	commit   func(vs []index.Version) error
	batches  atomic.Int64
	writes   atomic.Int64
	waitNs   atomic.Int64
	stopOnce sync.Once
}

type request struct {
	v   index.Version
	res chan error
}

func startCommitter(commit func(vs []index.Version) error) *committer {
	c := &committer{in: make(chan request, 1024), commit: commit}
	go func() {
		for w := range c.in {
			batch := []request{w}
		drain:
			for len(batch) < 1000 {
				select {
				case w, ok := <-c.in:
					if !ok {
						break drain
					}
					batch = append(batch, w)
				default:
					break drain
				}
			}
			vs := make([]index.Version, len(batch))
			for i, w := range batch {
				vs[i] = w.v
			}
			err := c.commit(vs)
			c.batches.Add(1)
			for _, w := range batch {
				w.res <- err
			}
		}
	}()
	return c
}

func (c *committer) do(v index.Version) error {
	t := time.Now()
	res := make(chan error, 1)
	c.in <- request{v, res}
	err := <-res
	c.writes.Add(1)
	c.waitNs.Add(int64(time.Since(t)))
	return err
}

func (c *committer) stop() { c.stopOnce.Do(func() { close(c.in) }) }

// BenchmarkCommitPut measures puts as the engine's small puts are on the
// disk: -embassy.commit-writers writers (16, as the engine benchmark's),
// each writing an object's six copies through six dir sites and then
// waiting for its index write's group commit, for these commits:
//
//   - bbolt: the index's own (Index.Put: one transaction, two flushes,
//     for every write waiting);
//   - wal-prealloc: the I/O of a write-ahead log in front of bbolt (not
//     its recovery): each batch committed to bbolt without a flush
//     (NoSync) and appended to a preallocated log overwritten in place,
//     one fdatasync; bbolt synced once a second;
//   - wal-direct: the same with the log opened O_DIRECT|O_DSYNC.
//
// Each is run in pairs of slices with the copies alone (no commit: the
// reference, as benchutil.SmallRef is the engine's), in ABBA order; a
// pair's ratio is the puts a second with the commit over those without,
// what small put/raw is for the engine. It prints every pair (puts a
// second, the commit's wait, writes a commit, device flushes a put), the
// load average, and each commit's median ratio with its range, and the
// median of the log's ratios over bbolt's.
//
//	go test -run '^$' -bench CommitPut -benchtime 1x ./index/boltindex/ -args -embassy.rounds=5
func BenchmarkCommitPut(b *testing.B) {
	root := benchutil.Root(b)
	ixSync, err := Open(filepath.Join(root, "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ixSync.Close() })
	ixWAL, err := Open(filepath.Join(root, "index-nosync.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ixWAL.Close() })
	ixWAL.db.NoSync = true
	for _, ix := range []*Index{ixSync, ixWAL} {
		for range 20 {
			warm := make([]index.Version, 1000)
			for i := range warm {
				warm[i] = benchVersion()
			}
			if err := ix.PutMany(b.Context(), warm); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := ixWAL.db.Sync(); err != nil {
		b.Fatal(err)
	}
	disk, _ := benchutil.DiskOf(root)
	fc := flushCounter{disk}
	c := newCopier(b, filepath.Join(root, "copies"))

	// The log's committers: bbolt without a flush, then the log's one.
	var dirty atomic.Bool
	walCommit := func(w *wal) func(vs []index.Version) error {
		return func(vs []index.Version) error {
			err := ixWAL.db.Update(func(tx *bolt.Tx) error {
				for _, v := range vs {
					if err := putTx(tx, v); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			dirty.Store(true)
			return w.append(len(vs) * recordSize)
		}
	}
	pre := startCommitter(walCommit(openWAL(b, filepath.Join(root, "prealloc.log"), logPrealloc)))
	direct := startCommitter(walCommit(openWAL(b, filepath.Join(root, "direct.log"), logDirectDsync)))
	b.Cleanup(func() { pre.stop(); direct.stop() })
	// bbolt synced once a second while the log has batches it holds.
	syncStop := make(chan struct{})
	var syncs sync.WaitGroup
	syncs.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-syncStop:
				return
			case <-t.C:
				if dirty.Swap(false) {
					if err := ixWAL.db.Sync(); err != nil {
						b.Error(err)
					}
				}
			}
		}
	})
	defer func() { close(syncStop); syncs.Wait() }()

	type kind struct {
		name string
		put  func() error // after the copies; nil: none
		c    *committer
	}
	walPut := func(c *committer) func() error {
		return func() error { return c.do(benchVersion()) }
	}
	kinds := []kind{
		{"bbolt", func() error { return ixSync.Put(b.Context(), benchVersion()) }, nil},
		{"wal-prealloc", walPut(pre), pre},
		{"wal-direct", walPut(direct), direct},
	}
	type slice struct {
		rate, waitMs, perBatch, flushes float64
	}
	run := func(k *kind) slice {
		var n atomic.Int64
		var s0 index.CommitStats
		var b0, w0, wn0 int64
		if k != nil && k.c == nil {
			s0 = ixSync.CommitStats()
		} else if k != nil {
			b0, w0, wn0 = k.c.batches.Load(), k.c.writes.Load(), k.c.waitNs.Load()
		}
		f0 := fc.now()
		start := time.Now()
		var wg sync.WaitGroup
		for range *commitWriters {
			wg.Go(func() {
				for time.Since(start) < *commitSlice {
					c.object(b)
					if k != nil {
						if err := k.put(); err != nil {
							b.Error(err)
							return
						}
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		el := time.Since(start)
		s := slice{rate: float64(n.Load()) / el.Seconds(), flushes: float64(fc.now()-f0) / float64(n.Load())}
		switch {
		case k != nil && k.c == nil:
			d := ixSync.CommitStats()
			if w := d.Writes - s0.Writes; w > 0 {
				s.waitMs = float64((d.Wait - s0.Wait).Microseconds()) / 1000 / float64(w)
				s.perBatch = float64(w) / float64(d.Batches-s0.Batches)
			}
		case k != nil:
			if w := k.c.writes.Load() - w0; w > 0 {
				s.waitMs = float64(k.c.waitNs.Load()-wn0) / 1e6 / float64(w)
				s.perBatch = float64(w) / float64(k.c.batches.Load()-b0)
			}
		}
		return s
	}
	run(nil) // warm up: the sites' directories
	ratios := make([][]float64, len(kinds))
	pair := 0
	for r := range max(*benchutil.Rounds, 1) {
		fmt.Printf("round %d: load average %s\n", r+1, loadavg())
		for i := range kinds {
			k := &kinds[(i+r)%len(kinds)]
			var sr, sk slice
			if pair%2 == 0 {
				sr, sk = run(nil), run(k)
			} else {
				sk, sr = run(k), run(nil)
			}
			pair++
			ratio := sk.rate / sr.rate
			ratios[(i+r)%len(kinds)] = append(ratios[(i+r)%len(kinds)], ratio)
			fmt.Printf("round %d pair %d: copies alone %.0f puts/s (the disk %.2f flushes a put); %s %.0f puts/s (a put %.1f ms, the commit's wait %.2f ms, %.1f writes a commit, %.2f flushes a put); %s/copies %.2f\n",
				r+1, pair, sr.rate, sr.flushes, k.name, sk.rate, float64(*commitWriters)*1000/sk.rate, sk.waitMs, sk.perBatch, sk.flushes, k.name, ratio)
		}
	}
	fmt.Printf("load average at the end %s\n", loadavg())
	for i, k := range kinds {
		s := benchutil.Summarize(ratios[i])
		fmt.Printf("%s/copies %.2f (%.2f–%.2f over %d rounds)\n", k.name, s.Med, s.Min, s.Max, len(ratios[i]))
		b.ReportMetric(s.Med, k.name+"/copies")
	}
	for i := 1; i < len(kinds); i++ {
		var rel []float64
		for r := range ratios[i] {
			rel = append(rel, ratios[i][r]/ratios[0][r])
		}
		s := benchutil.Summarize(rel)
		fmt.Printf("%s/bbolt puts a second %.2f (%.2f–%.2f over the rounds)\n", kinds[i].name, s.Med, s.Min, s.Max)
	}
}
