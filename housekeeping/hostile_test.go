package housekeeping

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site/sitetest"
	"github.com/embassy-dev/embassy/vault"
)

// TestCollectKeepsNearMissNames: a blob the node never wrote is kept, even
// when its name differs from a deleted version's manifest blob only in
// case ("m/AB/AB…" beside "m/ab/ab…": put there by hand, by a tool, or by
// a provider that changes case). Before, ParseBlobName decoded it to the
// deleted version and collection removed it as that version's copy.
func TestCollectKeepsNearMissNames(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	info := n.put("victim", []byte("deleted soon"))
	if _, err := n.e.Delete(ctx, "registry", "victim", vault.DeleteOptions{VersionID: info.VersionID}); err != nil {
		t.Fatal(err)
	}
	id := info.VersionID
	name := manifest.BlobName(id)
	upper := "m/" + strings.ToUpper(name[2:])
	if upper == name {
		t.Fatalf("version id %s has no letters", id)
	}
	sid := n.sites[0].ID
	p := filepath.Join(n.dirs[sid], filepath.FromSlash(upper))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("not the node's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n.k.Collect(ctx, CollectOptions{Grace: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("blob %s on site %s, not the node's: %v", upper, sid, err)
	}
}

// TestVerifyLogReplacedCopies: audit verify compares each manifest copy on
// the sites with the log. A copy is named by its version; one replaced by
// another version's valid copy (every copy of B deleted and A's put in its
// place) was taken for B's: B counted as held, its deletion behind the
// node's back unreported, and A's revision compared with B's.
func TestVerifyLogReplacedCopies(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	a := n.put("a", []byte("version a"))
	b := n.put("b", []byte("version b"))
	nameA, nameB := manifest.BlobName(a.VersionID), manifest.BlobName(b.VersionID)
	replaced := 0
	for _, d := range n.dirs {
		copyA, err := os.ReadFile(filepath.Join(d, filepath.FromSlash(nameA)))
		if err != nil {
			continue
		}
		pb := filepath.Join(d, filepath.FromSlash(nameB))
		if _, err := os.Stat(pb); err != nil {
			continue
		}
		if err := os.WriteFile(pb, copyA, 0o600); err != nil {
			t.Fatal(err)
		}
		replaced++
	}
	if replaced == 0 {
		t.Fatal("no site holds both versions' copies")
	}
	// Sites without A's copy lose B's.
	for _, d := range n.dirs {
		if _, err := os.Stat(filepath.Join(d, filepath.FromSlash(nameA))); err != nil {
			os.Remove(filepath.Join(d, filepath.FromSlash(nameB)))
		}
	}
	rep, err := n.k.VerifyLog(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Problems, "\n")
	if !strings.Contains(all, "deleted behind the node's back") || !strings.Contains(all, b.VersionID.String()) {
		t.Fatalf("problems:\n%s\nwant B (%s) deleted behind the node's back", all, b.VersionID)
	}
	if !strings.Contains(all, "a copy replaced") {
		t.Fatalf("problems:\n%s\nwant the replaced copies named", all)
	}
}

// TestFIFOAtBlobName: a FIFO put at a blob's name in a directory site (by
// hand, or by an intruder) is not the node's blob. A GET returns the object
// from the other copies or shards, a scrub (reporting or repairing) names
// the FIFO in its report and finishes, an index rebuild finishes and
// indexes the version, and the FIFO is left where it is. Before, the first
// open of it blocked in open(2), out of every context's reach, until a
// writer came: sitetest.Unblocked turns that into a failure.
func TestFIFOAtBlobName(t *testing.T) {
	for _, c := range []struct {
		name string
		size int
		// blob returns the name of the blob to replace on site sid.
		blob func(t *testing.T, n *testNode, sid string, info vault.ObjectInfo) string
	}{
		{"manifest copy", 100, func(t *testing.T, n *testNode, sid string, info vault.ObjectInfo) string {
			return manifest.BlobName(info.VersionID)
		}},
		{"shard blob", 10 * testStripe, func(t *testing.T, n *testNode, sid string, info vault.ObjectInfo) string {
			var found string
			filepath.WalkDir(filepath.Join(n.dirs[sid], "s"), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() && found == "" {
					rel, _ := filepath.Rel(n.dirs[sid], p)
					found = filepath.ToSlash(rel)
				}
				return nil
			})
			if found == "" {
				t.Fatalf("no shard blob on site %s", sid)
			}
			return found
		}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			n := newTestNode(t)
			key := "fifo/" + c.name
			data := content(key, c.size)
			info := n.put(key, data)
			sid := ""
			locs, err := n.e.Locate(t.Context(), "registry", key, manifest.ID{})
			if err != nil || len(locs) == 0 {
				t.Fatalf("locate: %v", err)
			}
			sid = locs[0].Site
			path := filepath.Join(n.dirs[sid], filepath.FromSlash(c.blob(t, n, sid, info)))
			sitetest.MakeFIFO(t, path)
			fifos := []string{path}

			got := sitetest.Unblocked(t, "GET", fifos, func() []byte { return n.mustRead(key) })
			if !bytes.Equal(got, data) {
				t.Fatalf("GET: %d bytes, not the object's %d", len(got), len(data))
			}
			for _, repair := range []bool{false, true} {
				type scrubbed struct {
					rep ScrubReport
					err error
				}
				r := sitetest.Unblocked(t, fmt.Sprintf("scrub (repair %v)", repair), fifos, func() scrubbed {
					rep, err := n.k.Scrub(t.Context(), ScrubOptions{Repair: repair})
					return scrubbed{rep, err}
				})
				rep, err := r.rep, r.err
				t.Logf("scrub (repair %v): errors %q, unrepairable %q", repair, rep.Errors, rep.Unrepairable)
				if err != nil {
					t.Fatal(err)
				}
				all := strings.Join(append(rep.Errors, rep.Unrepairable...), "\n")
				if !strings.Contains(all, path) || !strings.Contains(all, "FIFO") {
					t.Fatalf("scrub (repair %v) does not name the FIFO %s: errors %q, unrepairable %q", repair, path, rep.Errors, rep.Unrepairable)
				}
				if repair && c.name == "shard blob" {
					// The shard cannot be written back at the FIFO's
					// name: the repair places it on another site, and
					// the version is whole again (before, it was left
					// degraded, listed as unrepairable).
					if len(rep.Unrepairable) != 0 || rep.Repaired != 1 {
						t.Errorf("repair over a FIFO at a shard blob's name: repaired %d, unrepairable %q", rep.Repaired, rep.Unrepairable)
					}
					locs, err := n.e.Locate(t.Context(), "registry", key, manifest.ID{})
					if err != nil {
						t.Fatal(err)
					}
					for _, l := range locs {
						if l.Site == sid && strings.HasSuffix(path, filepath.FromSlash(l.Blob)) {
							t.Errorf("after the repair, shard %d is still placed on site %s at the FIFO's name", l.Shard, sid)
						}
					}
					again, err := n.k.Scrub(t.Context(), ScrubOptions{})
					if err != nil || len(again.Errors) != 0 || again.AtRisk != 0 {
						t.Errorf("scrub after the repair: at risk %d, errors %q, %v", again.AtRisk, again.Errors, err)
					}
				}
			}
			n.ix.Close()
			os.Remove(filepath.Join(n.root, "index.db"))
			n.ix = nil
			n.open(filepath.Join(n.root, "index.db"))
			if err := sitetest.Unblocked(t, "index rebuild", fifos, func() error {
				_, err := n.k.RebuildIndex(t.Context(), nil)
				return err
			}); err != nil {
				t.Fatalf("index rebuild: %v", err)
			}
			if got := sitetest.Unblocked(t, "GET after the rebuild", fifos, func() []byte { return n.mustRead(key) }); !bytes.Equal(got, data) {
				t.Fatalf("GET after the rebuild: %d bytes, not the object's %d", len(got), len(data))
			}
			// Collection removes nothing for it, and does not take a FIFO
			// at the name of a version's manifest copy that the node does
			// not know for a manifest (before, the dir site listed it as a
			// blob of size 0, and collection counted it as a version on the
			// sites missing from the index).
			var stranger manifest.ID
			stranger[0], stranger[15] = 0xab, 1
			other := filepath.Join(n.dirs[sid], filepath.FromSlash(manifest.BlobName(stranger)))
			if err := os.MkdirAll(filepath.Dir(other), 0o700); err != nil {
				t.Fatal(err)
			}
			sitetest.MakeFIFO(t, other)
			fifos = append(fifos, other)
			col := sitetest.Unblocked(t, "collection", fifos, func() Collection {
				c, err := n.k.Collect(t.Context(), CollectOptions{Grace: time.Nanosecond})
				if err != nil {
					t.Errorf("collection: %v", err)
				}
				return c
			})
			if !col.Ran {
				t.Fatalf("collection did not run: %s", col.Refused)
			}
			if col.Removed != 0 || col.Unindexed != 0 || col.Adopted != 0 || len(col.Errors) != 0 {
				t.Errorf("collection over the FIFOs: removed %d, unindexed %d %q, adopted %d, errors %q", col.Removed, col.Unindexed, col.UnindexedVersions, col.Adopted, col.Errors)
			}
			for _, p := range fifos {
				if fi, err := os.Lstat(p); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
					t.Fatalf("the FIFO at %s: %v, %v", p, fi, err)
				}
			}
		})
	}
}
