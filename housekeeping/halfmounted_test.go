package housekeeping

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site/fault"
)

// siteFiles lists the manifest and shard blobs under a site directory
// (relative paths), sorted.
func siteFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			if rel = filepath.ToSlash(rel); strings.HasPrefix(rel, manifest.ManifestPrefix) || strings.HasPrefix(rel, manifest.ShardPrefix) {
				out = append(out, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// deadWrites leaves count streamed writes that died after their shards
// (one on every site) and before their manifests, each with its intent
// on the audit log: garbage once the grace period is over, but provably
// so only when every site answers that it holds no manifest of the
// version. It returns the shards' names.
func (n *testNode) deadWrites(count int) []string {
	t, ctx := n.t, n.t.Context()
	var names []string
	for range count {
		rec := evidence.Record{Kind: evidence.Intent, Version: manifest.NewID()}
		blob := manifest.NewID()
		for i, d := range topology {
			name := manifest.ShardBlobName(blob, i)
			s, _ := n.e.Site(d.ID)
			if err := s.Store.Put(ctx, name, bytes.NewReader([]byte("shard")), 5); err != nil {
				t.Fatal(err)
			}
			rec.Blobs = append(rec.Blobs, evidence.Blob{Name: name, Site: d.ID})
			names = append(names, d.ID+"/"+name)
		}
		if err := n.e.Journal().Append(ctx, nil, rec); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// TestCollectHalfMounted: a collection whose records and blob lists spill
// to scratch files (small sort runs, abandonments spilled two at a time)
// while a site is half there removes nothing it cannot prove garbage:
//
//   - a site whose volume is not mounted (an empty directory at its
//     path): skipped and untouched; the writes that died before their
//     manifests are not recorded abandoned (their manifests could be on
//     it), so their shards stay everywhere; the deleted versions'
//     leftovers on another site, which the deletion records prove
//     garbage, are removed;
//   - a site whose listing fails half-way (a directory that errors, a
//     volume dropping out), here the one holding the deleted versions'
//     leftovers: nothing removed there, the error reported; the dead
//     writes' shards, garbage once every site answers that it holds no
//     manifest of them, are removed on the others.
//
// Every live version reads back, and once the site is back whole a
// collection removes the rest.
func TestCollectHalfMounted(t *testing.T) {
	defer func(a, b, c int) { sortRecords, maxSamples, addedMax = a, b, c }(sortRecords, maxSamples, addedMax)
	sortRecords, maxSamples, addedMax = 16, 4, 2
	for _, tc := range []struct{ name, half string }{
		{"empty mount point", "fin-2"},
		{"listing fails", "lux-1"}, // it holds the deletions' leftovers
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, want, _, _ := withGarbage(t, "live/", 6) // deleted versions' blobs left on lux-1
			const deadCount = 8
			dead := n.deadWrites(deadCount)
			ctx := t.Context()
			half := tc.half
			before := map[string][]string{}
			for _, d := range topology {
				before[d.ID] = siteFiles(t, n.dirs[d.ID])
			}
			leftovers := len(before["lux-1"]) - len(before["lux-2"]) // lux-2: the same versions, none deleted
			if leftovers <= 0 {
				t.Fatalf("no deleted versions' leftovers on lux-1 (%d files, %d on lux-2)", len(before["lux-1"]), len(before["lux-2"]))
			}
			aside := n.dirs[half] + ".unmounted"
			switch tc.name {
			case "empty mount point":
				if err := os.Rename(n.dirs[half], aside); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(n.dirs[half], 0o700); err != nil {
					t.Fatal(err)
				}
			case "listing fails":
				n.faults[half].Set(fault.Config{ListErr: errors.New("input/output error"), ListAfter: 3})
			}
			c, err := n.k.Collect(ctx, CollectOptions{Grace: time.Nanosecond})
			if err != nil {
				t.Fatal(err)
			}
			switch tc.name {
			case "empty mount point":
				if !slices.ContainsFunc(c.SkippedSites, func(s string) bool { return strings.HasPrefix(s, half+":") }) ||
					c.Abandoned != 0 || c.Removed != leftovers {
					t.Errorf("collection with %s not mounted: %+v; want it skipped, no write abandoned, the %d leftovers of deleted versions removed", half, c, leftovers)
				}
				if got := siteFiles(t, n.dirs[half]); len(got) != 0 {
					t.Fatalf("the empty mount point got files: %v", got)
				}
				if err := os.Remove(n.dirs[half]); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(aside, n.dirs[half]); err != nil {
					t.Fatal(err)
				}
			case "listing fails":
				if !slices.ContainsFunc(c.Errors, func(s string) bool {
					return strings.Contains(s, "on site "+half+": ") && strings.Contains(s, "input/output error (nothing removed there)")
				}) {
					t.Errorf("collection with %s's listing failing: errors %v", half, c.Errors)
				}
				if c.Abandoned != deadCount || c.Removed != deadCount*(len(topology)-1) {
					t.Errorf("collection with %s's listing failing: %+v; want the %d dead writes abandoned and their shards removed on the %d other sites", half, c, deadCount, len(topology)-1)
				}
				n.faults[half].Set(fault.Config{})
			}
			// What was removed, site by site: nothing on the half-mounted
			// site, and no dead write's shard while a site was missing.
			deadSet := map[string]bool{}
			for _, d := range dead {
				deadSet[d] = true
			}
			removed := 0
			for _, d := range topology {
				after := siteFiles(t, n.dirs[d.ID])
				for _, f := range before[d.ID] {
					if slices.Contains(after, f) {
						continue
					}
					removed++
					name := filepath.ToSlash(f)
					if d.ID == half {
						t.Errorf("%s removed on the half-mounted site %s", name, half)
					}
					if deadSet[d.ID+"/"+name] && tc.name == "empty mount point" {
						t.Errorf("%s on %s, of a write that died before its manifest, removed while %s (which might hold the manifest) was not mounted", name, d.ID, half)
					}
				}
			}
			if removed != c.Removed {
				t.Errorf("%d files gone, %d removals counted", removed, c.Removed)
			}
			n.checkAll(want)

			// Every site back whole: the rest of the garbage goes, and
			// only that.
			c, err = n.k.Collect(ctx, CollectOptions{Grace: time.Nanosecond})
			if err != nil || len(c.Errors) > 0 || len(c.SkippedSites) > 0 {
				t.Fatalf("collection with every site back: %+v, %v", c, err)
			}
			n.checkAll(want)
			for _, d := range dead {
				sid, name, _ := strings.Cut(d, "/")
				if _, err := os.Stat(filepath.Join(n.dirs[sid], filepath.FromSlash(name))); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a dead write's shard is still on %s after the last collection: %s (%v)", sid, name, err)
				}
			}
			if got, want := len(siteFiles(t, n.dirs["lux-1"])), len(siteFiles(t, n.dirs["lux-2"])); got != want {
				t.Errorf("lux-1 holds %d files after the last collection, lux-2 %d: the deleted versions' leftovers are not all gone", got, want)
			}
		})
	}
}
