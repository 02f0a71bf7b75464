package housekeeping

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/manifest"
)

func randomID(r *rand.Rand) manifest.ID {
	var id manifest.ID
	for i := range id {
		id[i] = byte(r.Uint32())
	}
	return id
}

// TestRebuildScratch checks the scratch state against a map: every id
// once, in order, with its sites and highest revision, and lookups of ids
// there and not there. Small buffers make it merge in two passes and
// thin its samples, so that every path of the sort and the lookup runs.
func TestRebuildScratch(t *testing.T) {
	defer func(a, b int) { sortRecords, maxSamples = a, b }(sortRecords, maxSamples)
	sortRecords, maxSamples = 100, 16
	for _, sites := range []int{6, 100} {
		type want struct {
			sites []int
			rev   int
		}
		r := rand.New(rand.NewPCG(1, uint64(sites)))
		s, err := newRebuildScratch(t.TempDir(), sites)
		if err != nil {
			t.Fatal(err)
		}
		m := map[manifest.ID]*want{}
		var ids []manifest.ID
		for range 20_000 {
			var id manifest.ID
			if len(ids) > 0 && r.IntN(4) == 0 {
				id = ids[r.IntN(len(ids))]
			} else {
				id = randomID(r)
				ids = append(ids, id)
				m[id] = &want{}
			}
			if r.IntN(5) == 0 {
				rev := r.IntN(10)
				s.addRevision(id, rev)
				m[id].rev = max(m[id].rev, rev)
				continue
			}
			i := r.IntN(sites)
			s.add(id, i)
			if !slices.Contains(m[id].sites, i) {
				m[id].sites = append(m[id].sites, i)
			}
		}
		if err := s.finish(); err != nil {
			t.Fatal(err)
		}
		if s.step < 8 {
			t.Fatalf("samples every %d records: the test does not thin them", s.step)
		}
		names := make([]string, sites)
		for i := range names {
			names[i] = string(rune('A'+i%26)) + string(rune('a'+i/26))
		}
		check := func(id manifest.ID, rec []byte) {
			t.Helper()
			w := m[id]
			var got []string
			if rec != nil {
				got = s.sitesOf(rec, names)
			}
			var exp []string
			slices.Sort(w.sites)
			for _, i := range w.sites {
				exp = append(exp, names[i])
			}
			if !slices.Equal(got, exp) || s.revision(rec) != w.rev {
				t.Fatalf("%d sites: %s: sites %v revision %d, want %v %d", sites, id, got, s.revision(rec), exp, w.rev)
			}
		}
		if s.count != int64(len(m)) {
			t.Fatalf("%d sites: %d records, want %d", sites, s.count, len(m))
		}
		slices.SortFunc(ids, func(a, b manifest.ID) int { return bytes.Compare(a[:], b[:]) })
		buf := make([]byte, 1000*s.rec)
		var found int64
		for from := int64(0); from < s.count; from += 1000 {
			n := int(min(1000, s.count-from))
			recs, err := s.read(buf, from, n)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				rec := recs[i*s.rec : (i+1)*s.rec]
				id := manifest.ID(rec[:16])
				if id != ids[from+int64(i)] {
					t.Fatalf("%d sites: record %d is %s, want %s", sites, from+int64(i), id, ids[from+int64(i)])
				}
				check(id, rec)
				if len(m[id].sites) > 0 {
					found++
				}
				if i%2 == 0 {
					rec[s.rec-1] |= recIndexed
				}
			}
			if err := s.write(recs, from); err != nil {
				t.Fatal(err)
			}
		}
		if found != s.found {
			t.Fatalf("%d sites: %d found, want %d", sites, s.found, found)
		}
		for i, id := range ids {
			rec, err := s.lookup(id)
			if err != nil || rec == nil {
				t.Fatalf("%d sites: lookup %s: %v %v", sites, id, rec, err)
			}
			check(id, rec)
			if indexed := rec[s.rec-1]&recIndexed != 0; indexed != (i%1000%2 == 0) {
				t.Fatalf("%d sites: record %d indexed %v", sites, i, indexed)
			}
		}
		for _, id := range []manifest.ID{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, randomID(r)} {
			if rec, err := s.lookup(id); err != nil || rec != nil {
				t.Fatalf("%d sites: lookup of %s, not added: %v %v", sites, id, rec, err)
			}
		}
		s.close()
	}
}

// TestRebuildScratchHeapFlat: the rebuild's per-version state takes no
// more heap for a million versions than for a hundred thousand (it
// replaced an in-memory map of about 56 bytes a version, 53 MiB at a
// million): scanning the ids of n versions from six sites, the audit
// log's revisions, sorting, one pass in batches marking them indexed, and
// a lookup of every tenth.
func TestRebuildScratchHeapFlat(t *testing.T) {
	heapFlat(t, "writes about 130 MB of scratch", 100_000, 1_000_000, "versions", func(n int) func() error {
		dir := t.TempDir()
		return func() error {
			s, err := newRebuildScratch(dir, 6)
			if err != nil {
				return err
			}
			defer s.close()
			r := rand.New(rand.NewPCG(2, 0))
			// Sites listed two at a time, each in its own order.
			for pair := range 3 {
				r2 := rand.New(rand.NewPCG(2, 0))
				for range n {
					id := randomID(r2)
					s.add(id, 2*pair)
					s.add(id, 2*pair+1)
				}
			}
			for range n / 2 {
				s.addRevision(randomID(r), 2)
			}
			if err := s.finish(); err != nil {
				return err
			}
			err = s.batches(500, func(recs []byte, from int64) error {
				for r := range slices.Chunk(recs, s.rec) {
					r[s.rec-1] |= recIndexed
				}
				return s.write(recs, from)
			})
			if err != nil {
				return err
			}
			r = rand.New(rand.NewPCG(2, 0))
			for i := range n {
				id := randomID(r)
				if i%10 != 0 {
					continue
				}
				rec, err := s.lookup(id)
				if err != nil || rec == nil || len(s.sitesOf(rec, make([]string, 6))) != 6 || rec[s.rec-1]&recIndexed == 0 {
					return errors.Join(err, errors.New("lookup of an id added went wrong"))
				}
			}
			if s.count != int64(n) || s.found != int64(n) {
				return fmt.Errorf("%d records, %d found", s.count, s.found)
			}
			return nil
		}
	})
}

// heapFlat measures the peak heap (benchutil.MeasureHeap, at GOGC=5) of
// the work run returns for a small and a large number (n) of what, logging
// each with its CPU-seconds (getrusage, the whole process), and fails t
// unless the large one peaks under 16 MiB and within 4 MiB of the small
// one. run sets up what is not measured; the work returns what it finds
// wrong. A short run (heavy says why) or the race detector skips it.
func heapFlat(t *testing.T, heavy string, small, large int, what string, run func(n int) func() error) {
	t.Helper()
	if testing.Short() {
		t.Skip(heavy)
	}
	if raceEnabled {
		t.Skip("memory is not measured under the race detector")
	}
	peak := map[int]uint64{}
	for _, n := range []int{small, large} {
		work := run(n)
		var err error
		c0 := cpuSeconds()
		u := benchutil.MeasureHeap(func() { err = work() })
		cpu := cpuSeconds() - c0
		if err != nil {
			t.Fatalf("%d %s: %v", n, what, err)
		}
		peak[n] = u.Peak
		t.Logf("%d %s: peak heap %.1f MiB (live %.1f MiB), %v, %.2f CPU-s", n, what, float64(u.Peak)/(1<<20), float64(u.Live)/(1<<20), u.Took, cpu)
	}
	if p := peak[large]; p > 16<<20 || p > peak[small]+4<<20 {
		t.Errorf("peak heap %.1f MiB for %d %s, %.1f MiB for %d: want under 16 MiB and within 4 MiB", float64(p)/(1<<20), large, what, float64(peak[small])/(1<<20), small)
	}
}

// scratchFiles lists the rebuild's scratch files in dir.
func scratchFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), scratchPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestRebuildScratchLeftByACrash: a scratch file left in the rebuild's
// directory by a crash is removed by the next rebuild, which is right;
// nothing else there is touched, and a rebuild cancelled mid-way leaves
// no scratch behind.
func TestRebuildScratchLeftByACrash(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	dir := RebuildTempDir(n.root)
	n.k.WithRebuildDir(dir)
	want := n.fillSizes("c/")
	before := n.snapshot()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// What a crash between making a scratch file and unlinking it
	// leaves, and what is not the rebuild's.
	left := filepath.Join(dir, scratchPrefix+"123456"+scratchSuffix)
	others := []string{"scratch-notes.txt", "keep" + scratchSuffix, scratchPrefix + "dir" + scratchSuffix}
	if err := os.WriteFile(left, bytes.Repeat([]byte{0xff}, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, o := range others {
		if strings.HasSuffix(o, "dir"+scratchSuffix) {
			if err := os.Mkdir(filepath.Join(dir, o), 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, o), []byte("not the rebuild's"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// A rebuild cancelled mid-way (as it indexes) leaves no scratch.
	cctx, cancel := context.WithCancel(ctx)
	if _, err := n.k.RebuildIndex(cctx, func(done, total int) { cancel() }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled rebuild: %v", err)
	}
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("crashed rebuild's scratch file still there: %v", err)
	}
	if err := n.ix.CheckComplete(); !errors.Is(err, boltindex.ErrIncomplete) {
		t.Fatalf("cancelled rebuild not marked incomplete: %v", err)
	}
	if got := scratchFiles(t, dir); len(got) != 2 {
		t.Fatalf("scratch left after a cancelled rebuild: %v", got)
	}

	// The next rebuild is right.
	st, err := n.k.RebuildIndex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Versions != len(want) || st.Unrestored != 0 {
		t.Fatalf("rebuild stats %+v", st)
	}
	if after := n.snapshot(); !slices.Equal(before.list, after.list) || !slices.Equal(before.versions, after.versions) {
		t.Fatalf("rebuilt index differs:\n%v\n%v", before, after)
	}
	if err := n.ix.CheckComplete(); err != nil {
		t.Fatal(err)
	}
	n.checkAll(want)
	for _, o := range others {
		if _, err := os.Stat(filepath.Join(dir, o)); err != nil {
			t.Errorf("%s, not the rebuild's, is gone: %v", o, err)
		}
	}
}

// TestRebuildScratchSpaceFails: a rebuild that cannot make or write its
// scratch files fails naming the path, with the index as it was (not
// marked as rebuilding).
func TestRebuildScratchSpaceFails(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	n.fillSizes("f/")
	before := n.snapshot()
	file := filepath.Join(n.root, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir string
		limit     int64
		want      error
	}{
		{"unusable directory", filepath.Join(file, "rebuild"), 0, syscall.ENOTDIR},
		{"full disk", filepath.Join(n.root, "rebuild"), 200, syscall.ENOSPC},
	} {
		scratchFailAfter = tc.limit
		n.k.WithRebuildDir(tc.dir)
		_, err := n.k.RebuildIndex(ctx, nil)
		scratchFailAfter = 0
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.dir) {
			t.Fatalf("%s: %v, want %v naming %s", tc.name, err, tc.want, tc.dir)
		}
		t.Logf("%s: %v", tc.name, err)
		if err := n.ix.CheckComplete(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if after := n.snapshot(); !slices.Equal(before.list, after.list) || !slices.Equal(before.versions, after.versions) {
			t.Fatalf("%s: index changed:\n%v\n%v", tc.name, before, after)
		}
	}
}
