package dir

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/internal/atomicfile"
)

// BenchmarkSmallGet reads 4 KiB blobs through the driver (Get, read to the
// end, Close: what a small object's manifest copy costs a GET) and, in the
// same run, the same files by plain os.Open, read and close with no
// safety checks: the reference. It reports driver/plain, the driver's
// time per read as a multiple of the bare open-read-close; compare that
// ratio between commits, not the absolute times.
func BenchmarkSmallGet(b *testing.B) {
	root := b.TempDir()
	s, err := New(root)
	if err != nil {
		b.Fatal(err)
	}
	const blobs = 256
	names := make([]string, blobs)
	data := make([]byte, 4096)
	for i := range names {
		names[i] = fmt.Sprintf("m/%02x/%032x", i%256, i)
		if err := s.Put(b.Context(), names[i], bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 8192)
	driver := func(name string) {
		rc, err := s.Get(b.Context(), name, 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(rc, buf[:4096]); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
	plain := func(name string) {
		f, err := os.Open(filepath.Join(root, name))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(f, buf[:4096]); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	// Alternate in rounds of every blob, so that drift hits both alike.
	var tDriver, tPlain float64
	i := 0
	for b.Loop() {
		tPlain += timeRound(plain, names)
		tDriver += timeRound(driver, names)
		i++
	}
	b.ReportMetric(tDriver/tPlain, "driver/plain")
	b.ReportMetric(tDriver/float64(i*blobs)*1e9, "driver-ns/get")
	b.ReportMetric(tPlain/float64(i*blobs)*1e9, "plain-ns/get")
}

// timeRound runs op on every name and returns the seconds it took.
func timeRound(op func(string), names []string) float64 {
	start := time.Now()
	for _, n := range names {
		op(n)
	}
	return time.Since(start).Seconds()
}

// BenchmarkSmallPut measures the CPU a small durable put costs in the
// driver (a manifest copy of a 4 KiB object: 1,406 bytes, named
// m/xx/<32 hex>, 16 writers) against the same durable write done plainly in
// the same run: create a file in .tmp, write, fdatasync, close, rename by
// path, open the directory by path, fsync, close; no symbolic-link checks,
// no grouping of the directory fsyncs. Rounds of 256 puts alternate
// between the two. It reports driver/plain, the driver's process CPU
// (user + system, getrusage) per put as a multiple of the plain write's,
// and both CPU times per put; compare the ratio between commits. Wall
// time is the disk's flushes, not compared here.
func BenchmarkSmallPut(b *testing.B) {
	root := b.TempDir()
	s, err := New(root)
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte{0x5a}, 1406)
	var seq atomic.Int64
	name := func() string {
		v := uint64(seq.Add(1))
		h := fmt.Sprintf("%016x%016x", v*0x9e3779b97f4a7c15, v)
		return "m/" + h[:2] + "/" + h
	}
	// Every m/xx directory exists before timing, for both.
	for i := range 256 {
		if err := s.Put(b.Context(), fmt.Sprintf("m/%02x/warm", i), bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
	driver := func() {
		if err := s.Put(b.Context(), name(), bytes.NewReader(data), int64(len(data))); err != nil {
			b.Error(err)
		}
	}
	plain := func() {
		n := name()
		tmp := filepath.Join(root, tmpDir, fmt.Sprintf("p%d", seq.Add(1)))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, err = f.Write(data)
		}
		if err == nil {
			err = unix.Fdatasync(int(f.Fd()))
		}
		if err == nil {
			err = f.Close()
		}
		dst := filepath.Join(root, filepath.FromSlash(n))
		if err == nil {
			err = os.Rename(tmp, dst)
		}
		if err == nil {
			err = atomicfile.SyncDir(filepath.Dir(dst))
		}
		if err != nil {
			b.Error(err)
		}
	}
	const perRound, writers = 256, 16
	round := func(op func()) float64 {
		before := cpuSeconds()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for next.Add(1) <= perRound {
					op()
				}
			})
		}
		wg.Wait()
		return cpuSeconds() - before
	}
	var cDriver, cPlain float64
	n := 0
	for b.Loop() {
		cPlain += round(plain)
		cDriver += round(driver)
		n += perRound
	}
	b.ReportMetric(cDriver/cPlain, "driver/plain")
	b.ReportMetric(cDriver/float64(n)*1e6, "driver-cpu-µs/put")
	b.ReportMetric(cPlain/float64(n)*1e6, "plain-cpu-µs/put")
}

// cpuSeconds returns the process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
