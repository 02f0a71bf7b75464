package housekeeping

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

func TestIndexRebuildReproducesIndex(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := map[string][]byte{}
	for i, size := range sizes {
		key := fmt.Sprintf("r/%02d", i)
		want[key] = content(key, size)
		n.put(key, want[key])
		n.put(key, want[key]) // a second version
	}
	n.e.Delete(ctx, "registry", "r/03", vault.DeleteOptions{})
	before := n.snapshot()

	// Throw the index away entirely.
	n.ix.Close()
	os.Remove(filepath.Join(n.root, "index.db"))
	n.ix = nil
	n.open(filepath.Join(n.root, "index.db"))
	if s := n.snapshot(); len(s.list) != 0 {
		t.Fatalf("fresh index lists %d keys", len(s.list))
	}
	st, err := n.k.RebuildIndex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Versions != 2*len(sizes)+1 || st.Markers != 1 || len(st.Unreadable) != 0 {
		t.Fatalf("rebuild stats %+v", st)
	}
	after := n.snapshot()
	if !slices.Equal(before.list, after.list) || !slices.Equal(before.versions, after.versions) {
		t.Fatalf("rebuilt index differs:\nbefore %v\nafter  %v\nversions before %v\nafter %v", before.list, after.list, before.versions, after.versions)
	}
	for key, w := range want {
		if key == "r/03" {
			continue
		}
		if got := n.mustRead(key); !bytes.Equal(got, w) {
			t.Fatalf("%s differs after rebuild", key)
		}
	}
}

// TestRebuildKeepsNewestRevision: a rebuild takes the newest revision of
// each manifest among the copies (a lock extension, a vault key rotation,
// a multipart object), even one the index never got (a failed recommit).
func TestRebuildKeepsNewestRevision(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	until := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	locked := n.put("locked", content("locked", 10))
	if _, err := n.e.SetRetention(ctx, "registry", "locked", locked.VersionID, vault.Compliance, until, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.e.SetRetention(ctx, "registry", "locked", locked.VersionID, vault.Compliance, until.Add(time.Hour), false); err != nil {
		t.Fatal(err)
	}
	up, err := n.e.CreateUpload(ctx, "registry", "mp", vault.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p1 := content("p1", vault.MinPartSize)
	p2 := []byte("short last part")
	a, _ := n.e.PutPart(ctx, "registry", "mp", up.ID, 1, bytes.NewReader(p1), int64(len(p1)), nil)
	b, _ := n.e.PutPart(ctx, "registry", "mp", up.ID, 2, bytes.NewReader(p2), int64(len(p2)), nil)
	if _, err := n.e.CompleteUpload(ctx, "registry", "mp", up.ID, []vault.CompletePart{{Number: 1, ETag: a.ETag}, {Number: 2, ETag: b.ETag}}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"mp": append(bytes.Clone(p1), p2...), "locked": content("locked", 10)}
	for i := range 3 {
		key := fmt.Sprintf("rot/%d", i)
		want[key] = content(key, i*testStripe+5)
		n.put(key, want[key])
	}
	v, _ := n.e.Vault("registry")
	v.KeyGen = 2
	if err := n.e.SetVault(v); err != nil {
		t.Fatal(err)
	}
	if _, err := n.e.RewrapVault(ctx, "registry", 2, nil); err != nil {
		t.Fatal(err)
	}
	n.ix.Reset(ctx)
	if _, err := n.k.RebuildIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for key, w := range want {
		if got := n.mustRead(key); !bytes.Equal(got, w) {
			t.Fatalf("%s differs after rebuild", key)
		}
	}
	st, err := n.e.Stat(ctx, "registry", "locked", manifest.ID{})
	if err != nil || st.Lock == nil || !st.Lock.Until.Equal(until.Add(time.Hour)) {
		t.Fatalf("lock after rebuild = %+v, %v", st.Lock, err)
	}
}

// TestRebuildKeepsVersionWithDamagedCopies: every site copy of a manifest
// damaged, the shards intact: a rebuild keeps the version from the index's
// verified envelope, and a repairing scrub rewrites the copies (issue 8,
// case 6).
func TestRebuildKeepsVersionWithDamagedCopies(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := map[string][]byte{"inline": content("inline", 100), "streamed": content("streamed", 5*testStripe)}
	ids := map[string]manifest.ID{}
	for key, w := range want {
		ids[key] = n.put(key, w).VersionID
	}
	// Flip a byte of every envelope on every site.
	for _, d := range n.dirs {
		for _, id := range ids {
			p := filepath.Join(d, filepath.FromSlash(manifest.BlobName(id)))
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			b[40] ^= 0xff
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err := n.k.Scrub(ctx, ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DamagedCopies == 0 || rep.Degraded != 2 || rep.Lost != 0 {
		t.Fatalf("scrub did not report the damaged copies as degraded: %+v", rep)
	}
	st, err := n.k.RebuildIndex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Kept != 2 || st.Unrestored != 0 {
		t.Fatalf("rebuild dropped versions whose copies are damaged: %+v", st)
	}
	for key, w := range want {
		if got := n.mustRead(key); !bytes.Equal(got, w) {
			t.Fatalf("%s differs after rebuild", key)
		}
	}
	rep, err = n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: -1})
	if err != nil || rep.Repaired != 2 || rep.RemainingAtRisk != 0 {
		t.Fatalf("repairing scrub: %+v, %v", rep, err)
	}
	// Now a rebuild from the sites alone finds them.
	n.ix.Reset(ctx)
	st, err = n.k.RebuildIndex(ctx, nil)
	if err != nil || st.Versions != 2 || st.Corrupt != 0 {
		t.Fatalf("rebuild after repair: %+v, %v", st, err)
	}
	for key, w := range want {
		if got := n.mustRead(key); !bytes.Equal(got, w) {
			t.Fatalf("%s differs after repair and rebuild", key)
		}
	}
	_ = slices.Contains[[]string]
}

// TestRebuildRefusesRolledBackManifest: every site copy of a version's
// manifest replaced by an older revision (a legal hold hidden). With the
// index it keeps the newer revision; on a fresh index it leaves the version
// out, named, rather than index the revision without the hold.
func TestRebuildRefusesRolledBackManifest(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	for _, c := range []struct {
		key  string
		size int
	}{{"inline", 100}, {"streamed", 3*testStripe + 1}} {
		info := n.put(c.key, content(c.key, c.size))
		name := manifest.BlobName(info.VersionID)
		old := map[string][]byte{}
		for id, d := range n.dirs {
			if b, err := os.ReadFile(filepath.Join(d, filepath.FromSlash(name))); err == nil {
				old[id] = b
			}
		}
		if _, err := n.e.SetLegalHold(ctx, "registry", c.key, info.VersionID, true); err != nil {
			t.Fatal(err)
		}
		for id, b := range old {
			if err := os.WriteFile(filepath.Join(n.dirs[id], filepath.FromSlash(name)), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The index still holds the newer revision: the rebuild keeps it.
	if _, err := n.k.RebuildIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"inline", "streamed"} {
		st, err := n.e.Stat(ctx, "registry", key, manifest.ID{})
		if err != nil || st.Lock == nil || !st.Lock.LegalHold {
			t.Fatalf("%s after a rebuild over the index: lock %+v, %v", key, st.Lock, err)
		}
	}
	// A fresh index: the log says revision 1, the sites give 0.
	n.ix.Reset(ctx)
	st, err := n.k.RebuildIndex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.RolledBack != 2 || !strings.Contains(strings.Join(st.Unreadable, "\n"), "ROLLED BACK") {
		t.Fatalf("rebuild: %+v", st)
	}
	for _, key := range []string{"inline", "streamed"} {
		if _, err := n.e.Stat(ctx, "registry", key, manifest.ID{}); err == nil {
			t.Fatalf("%s indexed at the rolled-back revision", key)
		}
	}
}

// TestRebuildNeverResurrectsADeletedVersion: a version deleted with its
// deletion record on the audit log, whose every blob comes back on the
// sites (sites restored from a backup taken before the delete). A rebuild
// into a fresh index (what recover does) leaves it out and counts it as
// deleted by record; a rebuild over the index does the same.
func TestRebuildNeverResurrectsADeletedVersion(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	keep := n.put("keep", content("keep", 100))
	for _, c := range []struct {
		key  string
		size int
	}{{"inline", 100}, {"streamed", 3*testStripe + 1}} {
		info := n.put(c.key, content(c.key, c.size))
		saved := map[string][]byte{}
		for _, d := range n.dirs {
			filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
				// Every blob on the sites: the version's manifests and shards.
				if err == nil && e.Type().IsRegular() && !strings.Contains(p, "log") {
					saved[p], _ = os.ReadFile(p)
				}
				return nil
			})
		}
		manifests := 0
		for p := range saved {
			if strings.Contains(p, info.VersionID.String()) {
				manifests++
			}
		}
		if manifests == 0 {
			t.Fatalf("%s: no manifest of the version found on the sites", c.key)
		}
		if _, err := n.e.Delete(ctx, "registry", c.key, vault.DeleteOptions{VersionID: info.VersionID}); err != nil {
			t.Fatal(err)
		}
		// The blobs leave the sites in the background once the record
		// is on them: put them back after that, not before.
		if err := n.e.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		for p, b := range saved {
			os.MkdirAll(filepath.Dir(p), 0o700)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, fresh := range []bool{false, true} {
		if fresh {
			n.ix.Reset(ctx)
		}
		st, err := n.k.RebuildIndex(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Deleted != 2 {
			t.Fatalf("rebuild (fresh index %v): %d deleted by record, want 2: %+v", fresh, st.Deleted, st)
		}
		for _, key := range []string{"inline", "streamed"} {
			if _, err := n.e.Stat(ctx, "registry", key, manifest.ID{}); err == nil {
				t.Fatalf("rebuild (fresh index %v): deleted %s came back", fresh, key)
			}
		}
		if _, err := n.e.Stat(ctx, "registry", "keep", keep.VersionID); err != nil {
			t.Fatalf("rebuild (fresh index %v): keep: %v", fresh, err)
		}
	}
}
