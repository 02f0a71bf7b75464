package housekeeping

import (
	"fmt"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
)

// TestStateFile: the replay's hash table keeps every version's state
// through its growth (several doublings), finds what it holds and only
// that, rewrites a changed name, and lists each version once.
func TestStateFile(t *testing.T) {
	s, err := openStateFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	const n = 5 * minSlots
	ids := make([]manifest.ID, n)
	for i := range ids {
		ids[i] = manifest.NewID()
	}
	want := func(i int) versionState {
		return versionState{vault: fmt.Sprintf("v%d", i%7), key: strings.Repeat("k", i%300) + fmt.Sprint(i), siteRev: i, indexRev: i / 2, flags: uint8(i % 64)}
	}
	// In batches, each id updated twice: the second sees the first.
	for lo := 0; lo < n; lo += 100 {
		batch := ids[lo:min(lo+100, n)]
		if err := s.update(batch, func(i int, st *versionState) {
			if *st != (versionState{}) {
				t.Fatalf("version %d: a new version has state %+v", lo+i, *st)
			}
			*st = want(lo + i)
			st.siteRev = -1
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.update(batch, func(i int, st *versionState) {
			w := want(lo + i)
			w.siteRev = -1
			if *st != w {
				t.Fatalf("version %d: state %+v, want %+v", lo+i, *st, w)
			}
			st.siteRev = lo + i
		}); err != nil {
			t.Fatal(err)
		}
	}
	if s.cap < 2*n {
		t.Fatalf("%d slots for %d versions", s.cap, n)
	}
	// A changed name is written again.
	if err := s.update(ids[:1], func(_ int, st *versionState) { st.vault, st.key = "other", "name" }); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		st, ok, err := s.get(id)
		w := want(i)
		if i == 0 {
			w.vault, w.key = "other", "name"
		}
		if err != nil || !ok || st != w {
			t.Fatalf("version %d: %+v %v %v, want %+v", i, st, ok, err, w)
		}
	}
	if _, ok, err := s.get(manifest.NewID()); ok || err != nil {
		t.Fatalf("an unknown version found: %v %v", ok, err)
	}
	seen := map[manifest.ID]bool{}
	if err := s.forEach(func(id manifest.ID, st versionState) error {
		if seen[id] {
			t.Fatalf("version %s listed twice", id)
		}
		seen[id] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("forEach listed %d versions of %d", len(seen), n)
	}
}
