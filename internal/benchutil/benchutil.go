// Package benchutil holds what the engine's and housekeeping's benchmarks
// share: where to put their sites, how to read from disk rather than the
// page cache, the disk references they report against (measured through
// the dir driver itself, so that the reference does the same I/O as the
// engine), the median and range of their rounds, and a fast source of
// incompressible bytes.
package benchutil

import (
	"bytes"
	"context"
	"crypto/rand"
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

	"github.com/embassy-dev/embassy/internal/stats"

	"github.com/embassy-dev/embassy/site"
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

// Evict drops a tree's files from the page cache, so reads come from disk.
func Evict(root string) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if f, err := os.Open(p); err == nil {
				unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
				f.Close()
			}
		}
		return nil
	})
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
//     Get after evicting them from the page cache (cold reads, as a get
//     after writes with O_DIRECT finds them), as a healthy get reads them;
//     size divided by the time taken.
//
// So the engine's put and get are compared with the same disk work done
// with no sealing, coding, checksums, index or log.
func LargeRefs(b testing.TB, root string, size int64, k, m int) (write, read float64) {
	d := filepath.Join(root, "ref-large")
	defer os.RemoveAll(d)
	sites := refSites(b, d, k+m)
	shard := (size + int64(k) - 1) / int64(k)
	name := randomHex()
	blob := func(i int) string { return "s/" + name[:2] + "/" + name + "." + fmt.Sprint(i) }
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
	write = float64(size) / time.Since(start).Seconds()
	Evict(d)
	start = time.Now()
	for i, s := range sites[:k] {
		wg.Go(func() {
			rc, err := s.Get(ctx, blob(i), 0, -1)
			if err != nil {
				b.Error(err)
				return
			}
			defer rc.Close()
			buf := make([]byte, 1<<20)
			if n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf); err != nil || n != shard {
				b.Errorf("read shard %d: %d bytes, %v", i, n, err)
			}
		})
	}
	wg.Wait()
	read = float64(size) / time.Since(start).Seconds()
	return write, read
}

// SmallWrites measures the disk reference of small-object puts, in objects
// per second, on the I/O path the engine uses for them: per object, one
// blob of blobSize bytes named as a manifest copy (m/xx/<32 hex>) on each
// of n fresh dir sites, written concurrently through the dir driver's Put
// (through the page cache, fdatasync, rename, the directory's
// group-committed fsync), count objects by workers writers. blobSize is
// what the engine's manifest copies of such an object measure (an inline
// object is its manifest copies and nothing else on the sites).
func SmallWrites(b testing.TB, root string, count, blobSize, n, workers int) float64 {
	d := filepath.Join(root, "ref-small")
	defer os.RemoveAll(d)
	sites := refSites(b, d, n)
	blob := make([]byte, blobSize)
	copy(blob, patternBuf)
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
				for _, s := range sites {
					inner.Go(func() {
						if err := s.Put(ctx, name, bytes.NewReader(blob), int64(len(blob))); err != nil {
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

// ColdRead reads every shard blob (the blobs named s/...) of the dir sites
// at dirs from disk (evicted first), through the dir driver's Get — the
// path the engine's reads of those blobs take — in 1 MiB reads, with
// perSite readers on every site at once, and returns bytes per second (the
// reference for what a repair reads from the survivors of a loss) and the
// bytes read. Manifest
// copies and the audit log's files, which a repair does not read in bulk,
// are left out.
func ColdRead(b testing.TB, dirs []string, perSite int) (rate float64, n int64) {
	ctx := context.Background()
	type blob struct {
		s    *dir.Site
		name string
	}
	var queues [][]blob
	for _, d := range dirs {
		s, err := dir.Open(d)
		if err != nil {
			b.Fatal(err)
		}
		var q []blob
		if err := s.List(ctx, "s/", func(i site.Info) error {
			q = append(q, blob{s, i.Name})
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		queues = append(queues, q)
		Evict(d)
	}
	var total atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, q := range queues {
		var next atomic.Int64
		for range max(1, perSite) {
			wg.Go(func() {
				buf := make([]byte, 1<<20)
				for i := next.Add(1) - 1; i < int64(len(q)); i = next.Add(1) - 1 {
					rc, err := q[i].s.Get(ctx, q[i].name, 0, -1)
					if err != nil {
						b.Error(err)
						return
					}
					n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf)
					rc.Close()
					if err != nil {
						b.Error(err)
					}
					total.Add(n)
				}
			})
		}
	}
	wg.Wait()
	return float64(total.Load()) / time.Since(start).Seconds(), total.Load()
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
	n := len(p) &^ 7
	for i := 0; i < n; i += 8 {
		g.State = g.State*6364136223846793005 + 1442695040888963407
		v := g.State
		p[i], p[i+1], p[i+2], p[i+3] = byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32)
		p[i+4], p[i+5], p[i+6], p[i+7] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	for i := n; i < len(p); i++ {
		p[i] = 0x5a
	}
	if g.Hash != nil {
		g.Hash.Write(p)
	}
	g.Left -= int64(len(p))
	return len(p), nil
}
