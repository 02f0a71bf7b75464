package dir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/embassy-dev/embassy/site"
)

// TestListHeapFlat: a listing holds a bounded part of a directory, not all
// of it: the live heap while the callback runs, part-way through one
// directory of 2,000 and of 40,000 blobs, differs by less than 512 KiB.
// Reading each directory whole (filepath.WalkDir) held about 120 bytes an
// entry: 4.6 MiB more for the large one.
func TestListHeapFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 42,000 files")
	}
	live := func() int64 {
		runtime.GC()
		runtime.GC()
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		return int64(s[0].Value.Uint64())
	}
	held := map[int]int64{}
	for _, n := range []int{2_000, 40_000} {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		d := filepath.Join(s.Root(), "m", "00")
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("00%030x", i)), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		base := live()
		seen := 0
		stop := errors.New("stop")
		err = s.List(context.Background(), "m/", func(site.Info) error {
			if seen++; seen == 1_000 {
				held[n] = live() - base
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("%d blobs: listed %d, %v", n, seen, err)
		}
	}
	t.Logf("held part-way through a directory: %.0f KiB of 2,000 blobs, %.0f KiB of 40,000", float64(held[2_000])/1024, float64(held[40_000])/1024)
	if d := held[40_000] - held[2_000]; d > 512<<10 {
		t.Errorf("a listing held %.0f KiB more part-way through a directory of 40,000 blobs than of 2,000", float64(d)/1024)
	}
}
