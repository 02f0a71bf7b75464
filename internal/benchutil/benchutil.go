// Package benchutil holds what the engine's and housekeeping's benchmarks
// share: where to put their sites, how to read from disk rather than the
// page cache, the disk references they report against (measured through
// the dir driver itself, so that the reference does the same I/O as the
// engine), the median and range of their rounds, a fast source of
// incompressible bytes, and the process's CPU time (ProcessCPU).
package benchutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/internal/pagecache"
	"github.com/embassy-dev/embassy/internal/stats"

	"github.com/embassy-dev/embassy/site/dir"
)

// Dir is where benchmarks put their sites (-embassy.dir).
var Dir = flag.String("embassy.dir", "", "directory for benchmark sites (default: a temporary directory)")

// Root returns a fresh directory for one benchmark run.
func Root(b *testing.B) string {
	if *Dir == "" {
		return b.TempDir()
	}
	d, err := os.MkdirTemp(*Dir, "embassy-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Evict drops a tree's files from the page cache, so that reads come from
// below it: each file is flushed first (fdatasync; posix_fadvise drops
// only clean pages) and then advised POSIX_FADV_DONTNEED. It needs no
// privilege and touches only these files, not the whole machine's cache
// (/proc/sys/vm/drop_caches would, and needs root). It returns the bytes
// of the tree still resident afterwards (mincore), which is 0 where the
// filesystem honours the advice and not on tmpfs, whose pages are its
// storage.
//
// What it cannot reach is a cache below the guest: on a virtual machine
// whose disk the host caches (virtio "write back"), blocks the guest has
// read once come back from the host's memory however empty the guest's
// page cache is. A read is cold only the first time after the blocks were
// written (bench/README.md, "Cold reads"). (The fourteenth pass found a
// second effect on this VM that looks the same: a read into pages the
// guest freed a moment before is cheap, one into memory the host took
// back is dear, whatever the disk did: docs/design.md, "Large GETs: CPU
// per GB between runs (issue 15, fourteenth pass)".)
func Evict(root string) (resident int64) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if f, err := os.Open(p); err == nil {
				unix.Fdatasync(int(f.Fd()))
				unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
				n, _ := pagecache.Resident(f)
				resident += n
				f.Close()
			}
		}
		return nil
	})
	return resident
}

// Resident returns the bytes of the tree at root held in the page cache.
func Resident(root string) (resident int64, err error) {
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := pagecache.Resident(f)
		resident += n
		return err
	})
	return resident, err
}

// Rounds is how many times the benchmarks that report against a reference
// measure both, each time on fresh sites (-embassy.rounds); they report the
// median ratio and the range.
var Rounds = flag.Int("embassy.rounds", 1, "rounds of each benchmark with a reference: the median ratio and the range are reported")

// Spread is the median of a set of ratios and their range.
type Spread = stats.Spread

// Summarize returns the median and the range of xs (stats.Summarize).
func Summarize(xs []float64) Spread { return stats.Summarize(xs) }

// refSites makes n fresh dir sites under d, as the node's dir sites are.
func refSites(b testing.TB, d string, n int) []*dir.Site {
	var out []*dir.Site
	for i := range n {
		s, err := dir.New(filepath.Join(d, fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// pattern yields Left bytes of a fixed pattern at no CPU cost: what the
// disk references write (the filesystem does not compress).
type pattern struct {
	Left int64
}

var patternBuf = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}()

func (p *pattern) Read(q []byte) (int, error) {
	if p.Left == 0 {
		return 0, io.EOF
	}
	n := copy(q[:min(int64(len(q)), p.Left)], patternBuf)
	p.Left -= int64(n)
	return n, nil
}

func randomHex() string {
	var r [16]byte
	rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// LargeRefs measures the disk references of a large object's put and get,
// in object bytes per second, on the I/O path the engine uses for them:
//
//   - write: k+m shard blobs of size/k bytes, one on each of k+m fresh dir
//     sites, written concurrently through the dir driver's Put (O_DIRECT
//     from aligned 1 MiB buffers, fdatasync, rename, the directory's
//     group-committed fsync), as a put of one object of size bytes writes
//     them; size divided by the time taken;
//   - read: the k data shard blobs read concurrently through the driver's
//     Get of each shard's range after evicting them from the page cache
//     (cold reads, as a get after writes with O_DIRECT finds them), as a
//     healthy get reads them (and, as for the engine's, the driver drops
//     what it has read behind it); size divided by the time taken.
//
// So the engine's put and get are compared with the same disk work done
// with no sealing, coding, checksums, index or log.
//
// The blobs stay (in root/ref-large-<random>, removed with root): blocks
// freed during a round would be taken by the engine's writes next, and
// hold what a cache below the guest kept of the reference's read, so the
// engine's get would read warm where the reference read cold (Evict).
func LargeRefs(b testing.TB, root string, size int64, k, m int) (write, read float64) {
	write, read, _ = LargeRefsCPU(b, root, size, k, m)
	return write, read
}

// LargeRefsCPU is LargeRefs, also returning the process's CPU during the
// read, in CPU-seconds per GB of the object.
func LargeRefsCPU(b testing.TB, root string, size int64, k, m int) (write, read, readCPU float64) {
	r := LargeRefsWork(b, root, size, k, m, nil)
	return r.Write, r.Read, r.ReadCPU
}

// Refs is what LargeRefsWork measured: MB/s in bytes of the object, CPU in
// CPU-seconds per GB of it.
type Refs struct {
	Write, Read, ReadCPU float64
	// With a work function: the same blobs read cold again, each reader
	// calling work on every 1 MiB it read before its next read.
	WorkRead, WorkReadCPU float64
}

// LargeRefsWork is LargeRefsCPU and, when work is not nil, a second cold
// read of the same blobs in which each of the k readers hands each 1 MiB
// it read to work (on its own goroutine) before reading on: the reference
// read with a get's CPU work added where it costs the least, on the reader
// that read the bytes, with no stripe joining the streams and no handoff
// between goroutines. It bounds what any get that does that work can reach
// on the machine (docs/design.md, "Large GETs: the reference with the
// get's own work (issue 15, twentieth pass)").
func LargeRefsWork(b testing.TB, root string, size int64, k, m int, work func(shard int, p []byte)) Refs {
	d := filepath.Join(root, "ref-large-"+randomHex()[:8])
	sites, blob, shard, write := largeWrite(b, d, size, k, m)
	r := Refs{Write: write}
	read := func(work func(int, []byte)) (rate, cpu float64) {
		Evict(d)
		ctx := context.Background()
		cpu0 := ProcessCPU()
		start := time.Now()
		var wg sync.WaitGroup
		for i, s := range sites[:k] {
			wg.Go(func() {
				// The shard's range, as the engine asks for it: the same
				// reader (the dir driver drops large ranges behind it).
				rc, err := s.Get(ctx, blob(i), 0, shard)
				if err != nil {
					b.Error(err)
					return
				}
				defer rc.Close()
				var w func([]byte)
				if work != nil {
					w = func(p []byte) { work(i, p) }
				}
				if n, err := drainWork(rc, make([]byte, 1<<20), w); err != nil || n != shard {
					b.Errorf("read shard %d: %d bytes, %v", i, n, err)
				}
			})
		}
		wg.Wait()
		return float64(size) / time.Since(start).Seconds(), (ProcessCPU() - cpu0).Seconds() / (float64(size) / 1e9)
	}
	r.Read, r.ReadCPU = read(nil)
	if work != nil {
		r.WorkRead, r.WorkReadCPU = read(work)
	}
	return r
}

// drain reads r to its end in reads of len(buf) bytes, discarding them,
// and returns how many it read. io.CopyBuffer(io.Discard, r, buf) would
// not read so: io.Discard's ReadFrom reads in 8 KiB reads of its own,
// whatever buf, which made LargeRefs' cold read (documented as 1 MiB
// reads) 128 times as many system calls, 0.4 CPU-s/GB against 0.1
// (docs/design.md, "Large GETs: what bounds get/limit (issue 15,
// seventeenth pass)").
func drain(r io.Reader, buf []byte) (int64, error) {
	return drainWork(r, buf, nil)
}

// drainWork is drain, calling work (when not nil) on each read's bytes.
func drainWork(r io.Reader, buf []byte, work func([]byte)) (int64, error) {
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if work != nil && m > 0 {
			work(buf[:m])
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func largeWrite(b testing.TB, d string, size int64, k, m int) (sites []*dir.Site, blob func(int) string, shard int64, write float64) {
	sites = refSites(b, d, k+m)
	shard = (size + int64(k) - 1) / int64(k)
	name := randomHex()
	blob = func(i int) string { return "s/" + name[:2] + "/" + name + "." + fmt.Sprint(i) }
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Go(func() {
			if err := s.Put(ctx, blob(i), &pattern{Left: shard}, shard); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	return sites, blob, shard, float64(size) / time.Since(start).Seconds()
}

// SmallRef is the disk reference of small-object puts, on the I/O path
// the engine uses for them: per object, one blob of a manifest copy's size
// named as one (m/xx/<32 hex>) on each of n fresh dir sites, written
// concurrently through the dir driver's Put (through the page cache,
// fdatasync, rename, the directory's group-committed fsync). Write may be
// called many times, interleaved with the engine's own puts, so that both
// are measured in the same state of the machine; its sites fill as the
// engine's do.
//
// Its blobs stay until root is removed (with the benchmark's other files,
// at its end). Removed at once, tens of thousands of files would slow the
// next round's engine: ext4 without a journal (this VM's) skips inodes
// freed in the last minute or more when it allocates one, rechecking each
// on every allocation (recently_deleted in fs/ext4/ialloc.c), so the writes
// right after a mass removal pay for it and the reference, written later,
// did not.
type SmallRef struct {
	sites []*dir.Site
	blob  []byte
	// Flight, when set, counts the blob puts in flight (CountWrites).
	Flight *InFlight
}

// NewSmallRef makes the reference's n fresh dir sites under root, for
// blobs of blobSize bytes.
func NewSmallRef(b testing.TB, root string, blobSize, n int) *SmallRef {
	blob := make([]byte, blobSize)
	copy(blob, patternBuf)
	return &SmallRef{sites: refSites(b, filepath.Join(root, "ref-small"), n), blob: blob}
}

// Write writes count objects by workers writers and returns the objects
// written a second.
func (r *SmallRef) Write(b testing.TB, count, workers int) float64 {
	ctx := context.Background()
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(count); i = next.Add(1) - 1 {
				h := randomHex()
				name := "m/" + h[:2] + "/" + h
				var inner sync.WaitGroup
				for _, s := range r.sites {
					inner.Go(func() {
						if r.Flight != nil {
							r.Flight.Enter()
							defer r.Flight.Leave()
						}
						if err := s.Put(ctx, name, bytes.NewReader(r.blob), int64(len(r.blob))); err != nil {
							b.Error(err)
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

// MeanBlob returns the number and the mean size of the files under d.
func MeanBlob(d string) (files int, mean float64) {
	var total int64
	filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			if fi, err := de.Info(); err == nil {
				files++
				total += fi.Size()
			}
		}
		return nil
	})
	if files == 0 {
		return 0, 0
	}
	return files, float64(total) / float64(files)
}

// Blob is one blob of a dir site.
type Blob struct {
	Site *dir.Site
	Name string
	Size int64
}

// Mirror is a set of fresh dir sites holding copies, name for name and
// size for size, of blobs of other sites (of incompressible bytes, not
// their contents): a read reference that does the same reads as the
// engine's of the originals without reading them (reading them would leave
// them in a cache below the guest, Evict).
type Mirror struct {
	Sites []*dir.Site
	Blobs [][]Blob // by site
	bytes int64
	took  time.Duration
	seed  atomic.Uint64
}

// NewMirror makes n fresh dir sites under d.
func NewMirror(b testing.TB, d string, n int) *Mirror {
	return &Mirror{Sites: refSites(b, d, n), Blobs: make([][]Blob, n)}
}

// Copy writes, on every site i of the mirror, blobs named and sized as
// like[i]'s, as the engine writes shard blobs: through the dir driver's
// Put, with O_DIRECT for a blob of 1 MiB or more, fdatasync, rename and
// the directory's group-committed fsync, the sites at once, perSite blobs
// of a site at a time. Calling it right after the engine wrote the blobs
// of like (object by object) keeps the two sets of the same age: whatever
// a cache below the guest kept of the one, it kept of the other.
func (m *Mirror) Copy(b testing.TB, like [][]Blob, perSite int) {
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	for si, q := range like {
		if si >= len(m.Sites) {
			b.Fatalf("mirror of %d sites given blobs of %d", len(m.Sites), len(like))
		}
		var next atomic.Int64
		for range max(1, perSite) {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(len(q)); i = next.Add(1) - 1 {
					src := &Gen{Left: q[i].Size, State: m.seed.Add(1)}
					if err := m.Sites[si].Put(ctx, q[i].Name, src, q[i].Size); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	m.took += time.Since(start)
	for si, q := range like {
		for _, bl := range q {
			m.Blobs[si] = append(m.Blobs[si], Blob{m.Sites[si], bl.Name, bl.Size})
			m.bytes += bl.Size
		}
	}
}

// WriteRate returns the bytes the mirror's copies wrote a second.
func (m *Mirror) WriteRate() float64 {
	return float64(m.bytes) / max(m.took.Seconds(), 1e-9)
}

// ReadBlobs reads blobs (one list a site) after evicting their sites from
// the page cache (Evict), as the engine reads a shard blob: through the dir
// driver's Get of the blob's whole range, in reads of stride bytes (a shard
// block and its checksum), perSite blobs of a site at a time, every site at
// once. It returns bytes read a second, the bytes read, and the bytes the
// page cache still held of the sites when the reads began (0 unless the
// filesystem ignores the eviction, as tmpfs does).
//
// Whether the reads are cold depends on what was read before, not on this
// function: see Evict and bench/README.md, "Cold reads".
func ReadBlobs(b testing.TB, blobs [][]Blob, perSite, stride int) (rate float64, n, resident int64) {
	return ReadBlobsContext(context.Background(), b, blobs, perSite, stride)
}

// ReadBlobsContext is ReadBlobs with the Gets' context: with
// site.WithColdRead's hint, the reads the engine's repair makes (O_DIRECT
// on a dir site).
func ReadBlobsContext(ctx context.Context, b testing.TB, blobs [][]Blob, perSite, stride int) (rate float64, n, resident int64) {
	for _, q := range blobs {
		if len(q) > 0 {
			resident += Evict(q[0].Site.Root())
		}
	}
	var total atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, q := range blobs {
		var next atomic.Int64
		for range max(1, perSite) {
			wg.Go(func() {
				buf := make([]byte, max(1, stride))
				for i := next.Add(1) - 1; i < int64(len(q)); i = next.Add(1) - 1 {
					rc, err := q[i].Site.Get(ctx, q[i].Name, 0, q[i].Size)
					if err != nil {
						b.Error(err)
						return
					}
					var got int64
					for got < q[i].Size {
						m, err := io.ReadFull(rc, buf[:min(int64(len(buf)), q[i].Size-got)])
						got += int64(m)
						if err != nil {
							b.Errorf("read %s: %d of %d bytes: %v", q[i].Name, got, q[i].Size, err)
							break
						}
					}
					rc.Close()
					total.Add(got)
				}
			})
		}
	}
	wg.Wait()
	return float64(total.Load()) / time.Since(start).Seconds(), total.Load(), resident
}

// Gen yields Left pseudo-random, incompressible bytes fast, feeding each
// to Hash when set.
type Gen struct {
	Left  int64
	State uint64
	Hash  io.Writer
}

func (g *Gen) Read(p []byte) (int, error) {
	if g.Left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.Left {
		p = p[:g.Left]
	}
	// The state in a local and one 8-byte store a step: the same bytes as
	// the byte-by-byte stores through g before issue 15's fifteenth pass,
	// at about twice the rate (1.7-2.5 against 0.9-1.1 GB/s of one core on
	// the development VM, loaded); the source was 0.53 of a 1 GiB put's
	// 1.84 CPU-s in BenchmarkThroughput, charged to the put.
	n := len(p) &^ 7
	s := g.State
	for i := 0; i < n; i += 8 {
		s = s*6364136223846793005 + 1442695040888963407
		binary.BigEndian.PutUint64(p[i:i+8], s)
	}
	g.State = s
	for i := n; i < len(p); i++ {
		p[i] = 0x5a
	}
	if g.Hash != nil {
		g.Hash.Write(p)
	}
	g.Left -= int64(len(p))
	return len(p), nil
}
