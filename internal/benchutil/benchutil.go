// Package benchutil holds what the engine's and housekeeping's benchmarks
// share: where to put their sites, how to read from disk rather than the
// page cache, the disk references they report against, and a fast source
// of incompressible bytes.
package benchutil

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// DiskLimits measures the filesystem's sequential write (six files written
// concurrently, each flushed with fdatasync) and read (from disk, not
// cache) throughput for total bytes.
func DiskLimits(b *testing.B, root string, total int64) (write, read float64) {
	d := filepath.Join(root, "raw")
	os.MkdirAll(d, 0o700)
	defer os.RemoveAll(d)
	per := total / 6
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 31)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			f, err := os.Create(filepath.Join(d, fmt.Sprint(i)))
			if err != nil {
				b.Error(err)
				return
			}
			defer f.Close()
			for n := int64(0); n < per; n += int64(len(chunk)) {
				f.Write(chunk)
			}
			unix.Fdatasync(int(f.Fd()))
		})
	}
	wg.Wait()
	write = float64(per*6) / time.Since(start).Seconds()
	Evict(d)
	start = time.Now()
	for i := range 6 {
		wg.Go(func() {
			f, err := os.Open(filepath.Join(d, fmt.Sprint(i)))
			if err != nil {
				b.Error(err)
				return
			}
			defer f.Close()
			buf := make([]byte, 1<<20)
			for {
				if _, err := f.Read(buf); err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	read = float64(per*6) / time.Since(start).Seconds()
	return write, read
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
