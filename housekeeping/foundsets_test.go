package housekeeping

import (
	"crypto/rand"
	"runtime"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
)

// TestRebuildStateAtAMillion measures what a rebuild holds per version id
// for a million versions found on six sites: the part of its memory that
// grows with the node (the rest is one batch at a time). The bound
// (invariant 9) is 256 MiB for the whole rebuild; this state must leave
// most of it to the batch, bbolt and the garbage collector's headroom.
func TestRebuildStateAtAMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a million entries")
	}
	for _, tc := range []struct {
		sites int
		max   float64 // bytes per version
	}{{6, 64}, {100, 144}} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f := newFoundSets(tc.sites)
		const n = 1_000_000
		var id manifest.ID
		for range n {
			rand.Read(id[:])
			for s := range 6 {
				f.add(id, (s*7)%tc.sites)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(after.HeapAlloc-before.HeapAlloc) / n
		t.Logf("%d sites: %d versions hold %.1f MiB, %.1f B/version", tc.sites, f.len(), float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), per)
		if f.len() != n {
			t.Fatalf("%d entries, want %d", f.len(), n)
		}
		if per > tc.max {
			t.Errorf("%d sites: %.1f B/version, want at most %.0f", tc.sites, per, tc.max)
		}
		sites, ok := f.sites(id, make([]string, tc.sites))
		if !ok || len(sites) != 6 {
			t.Errorf("last id: found %v on %d sites, want 6", ok, len(sites))
		}
		runtime.KeepAlive(f)
	}
}
