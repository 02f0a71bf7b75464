package dir

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
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
