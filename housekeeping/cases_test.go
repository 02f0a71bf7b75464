package housekeeping

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site/fault"
	"github.com/embassy-dev/embassy/vault"
)

// The cases of issue 8 in which housekeeping used to destroy acknowledged
// data, each now refused or harmless. Cases 3 and 5 (a stale site given to
// recover, two sites on one directory) are about site identity and the
// descriptor and are tested with the node (node, cmd/embassy/testdata).

// Case 1: the node directory (here its index) restored from an older
// backup. A repairing scrub must not delete what was written since; it
// refuses to collect and says to rebuild; the rebuild brings everything
// back, and nothing deleted since the backup returns.
func TestRestoredIndexBackup(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	old, newer, victim := restoreOlderIndex(t, n, 3*testStripe)
	blobs := n.blobCount()

	// Adoption refuses the stale index, as collection does, and takes
	// nothing in.
	if ar, err := n.k.Adopt(ctx, AdoptOptions{}); !errors.Is(err, ErrStaleIndex) || !strings.Contains(err.Error(), "older than the sites") || ar.AdoptedCount != 0 {
		t.Fatalf("adopt into a restored index: %+v, %v; want ErrStaleIndex naming why", ar, err)
	}
	for key := range newer {
		if _, err := n.e.Stat(ctx, "registry", key, manifest.ID{}); !errors.Is(err, vault.ErrNoSuchKey) {
			t.Fatalf("%s, written since the backup, is in the index after a refused adoption: %v", key, err)
		}
	}
	rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Collection == nil || rep.Collection.Ran || !strings.Contains(rep.Collection.Refused, "index is older than the sites") || !strings.Contains(rep.Collection.Refused, "index rebuild") || rep.Collection.Reason != RefusedIndexBehind {
		t.Fatalf("collection on a restored index: %+v", rep.Collection)
	}
	if got := n.blobCount(); got != blobs {
		t.Fatalf("%d blobs before the scrub, %d after", blobs, got)
	}
	st, err := n.k.RebuildIndex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unrestored != 0 {
		t.Fatalf("rebuild left versions out: %+v", st)
	}
	n.checkAll(old)
	n.checkAll(newer)
	if _, err := n.e.Stat(ctx, "registry", "before/victim", victim.VersionID); err == nil {
		t.Fatal("a version deleted after the backup came back")
	}
	// Collection runs again once the index is current.
	rep, err = n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: time.Nanosecond})
	if err != nil || rep.Collection == nil || !rep.Collection.Ran {
		t.Fatalf("collection after the rebuild: %+v, %v", rep.Collection, err)
	}
}

// Case 1b: the index restored from an older backup, then written to at
// once, as a node put back into service takes writes: as many commits as
// the backup had lost, and one more, before anything looks at the sites.
// Each commit raises the index's generation of its vault, so the index was
// found behind the sites only if they were read before the first commit;
// they were read at the first write of the generations, a second after it,
// when the index had caught up: collection then ran on the restored index,
// and a version deleted since the backup stayed in it.
func TestRestoredIndexBackupWrittenAtOnce(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	_, newer, victim := restoreOlderIndex(t, n, 100)
	for i := range len(newer) + 2 {
		n.put(fmt.Sprintf("later/%d", i), content("later", 100))
	}
	rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Collection == nil || rep.Collection.Ran || rep.Collection.Reason != RefusedIndexBehind {
		t.Fatalf("collection on a restored index written to at once: %+v; want it refused, the index behind the sites", rep.Collection)
	}
	if _, err := n.k.RebuildIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := n.e.Stat(ctx, "registry", "before/victim", victim.VersionID); err == nil {
		t.Fatal("a version deleted after the backup came back")
	}
	n.checkAll(newer)
}

// Case 1c: the index restored from an older backup is opened while no
// site answers (their disks not mounted yet, their network not up), and
// they come back. The engine read the sites' commit generations at New,
// got none, and took that for the sites holding none: its first write of
// them put the restored index's generations over the sites' higher ones,
// and the index was never found behind (collection ran on it, and a
// version deleted since the backup stayed in it). Now generations read
// from no site are not taken for the sites': they are read again before
// the first commit.
func TestRestoredIndexOpenedWithSitesAway(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	n.fillSizes("before")
	victim := n.put("before/victim", content("victim", 100))
	indexPath := filepath.Join(n.root, "index.db")
	n.e.Close(ctx)
	n.ix.Close()
	backup, _ := os.ReadFile(indexPath)
	n.open(indexPath)
	newer := n.fillSizes("after")
	if _, err := n.e.Delete(ctx, "registry", "before/victim", vault.DeleteOptions{VersionID: victim.VersionID}); err != nil {
		t.Fatal(err)
	}
	n.e.Close(ctx)
	n.ix.Close()
	if err := os.WriteFile(indexPath, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range n.faults {
		f.Set(fault.Config{Down: true})
	}
	n.open(indexPath)
	for _, f := range n.faults {
		f.Set(fault.Config{})
	}
	n.put("later", content("later", 100))
	n.e.FlushGenerations(ctx)
	rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Collection == nil || rep.Collection.Ran || rep.Collection.Reason != RefusedIndexBehind {
		t.Fatalf("collection on a restored index opened with its sites away: %+v; want it refused, the index behind the sites", rep.Collection)
	}
	if _, err := n.k.RebuildIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := n.e.Stat(ctx, "registry", "before/victim", victim.VersionID); err == nil {
		t.Fatal("a version deleted after the backup came back")
	}
	n.checkAll(newer)
}

// restoreOlderIndex puts objects ("before/…") and a victim of victimSize
// bytes, backs up the index, puts more ("after/…") and deletes the victim,
// then puts the backup back and reopens the node on it: the index is older
// than the sites. It returns what was put before and after, and the victim.
func restoreOlderIndex(t *testing.T, n *testNode, victimSize int) (before, after map[string][]byte, victim vault.ObjectInfo) {
	t.Helper()
	ctx := t.Context()
	before = n.fillSizes("before")
	victim = n.put("before/victim", content("victim", victimSize))
	indexPath := filepath.Join(n.root, "index.db")
	n.e.Close(ctx)
	n.ix.Close()
	backup, _ := os.ReadFile(indexPath)
	n.open(indexPath)
	after = n.fillSizes("after")
	if _, err := n.e.Delete(ctx, "registry", "before/victim", vault.DeleteOptions{VersionID: victim.VersionID}); err != nil {
		t.Fatal(err)
	}
	n.e.Close(ctx) // its last write of the commit generations goes to the sites
	n.ix.Close()
	if err := os.WriteFile(indexPath, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	n.open(indexPath)
	return before, after, victim
}

// Case 2: recover (an index rebuilt from the sites) while some sites are
// not mounted yet. Versions that lack k shards are not restored; the next
// repairing scrub must not delete their shards on the sites that are
// mounted; after remounting, a rebuild restores them all.
func TestRecoverWithSitesUnmounted(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := map[string][]byte{}
	for i := range 12 {
		key := fmt.Sprintf("r/%d", i)
		want[key] = content(key, []int{100, 5 * testStripe}[i%2])
		n.put(key, want[key])
	}
	moved := map[string]string{}
	for _, id := range []string{"est-1", "lux-1", "fin-1"} {
		moved[id] = n.dirs[id] + ".unmounted"
		if err := os.Rename(n.dirs[id], moved[id]); err != nil {
			t.Fatal(err)
		}
		n.faults[id].Set(fault.Config{Down: true})
	}
	indexPath := filepath.Join(n.root, "index.db")
	n.e.Close(ctx)
	n.ix.Close()
	os.Remove(indexPath)
	n.open(indexPath)
	st, err := n.k.RebuildIndex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unrestored == 0 {
		t.Fatal("with three of six sites away, every version was restored: the test needs some that were not")
	}
	blobs := n.blobCount()
	rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.blobCount(); got > blobs {
		t.Fatalf("the scrub wrote %d blobs more than were there", got-blobs)
	}
	// The index was rebuilt without every site: collection refuses until
	// a rebuild sees them all.
	if c := rep.Collection; c == nil || c.Ran || !strings.Contains(c.Refused, "could not be listed") || c.Reason != RefusedIndexStale {
		t.Fatalf("collection after a rebuild with sites unmounted: %+v", c)
	}
	for id, m := range moved {
		if err := os.Rename(m, n.dirs[id]); err != nil {
			t.Fatal(err)
		}
		n.faults[id].Set(fault.Config{})
	}
	if st, err := n.k.RebuildIndex(ctx, nil); err != nil || st.Unrestored != 0 {
		t.Fatalf("rebuild after remounting: %+v, %v", st, err)
	}
	for key, w := range want {
		if got := n.mustRead(key); !bytes.Equal(got, w) {
			t.Fatalf("%s differs after remounting and rebuilding", key)
		}
	}
}

// Case 4: a vault missing from the configuration (a hand edit, an old or
// truncated node.yaml). A repairing scrub must not delete its blobs.
func TestVaultMissingFromConfiguration(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := n.fillSizes("v")
	blobs := n.blobCount()
	n.vaults = nil
	n.open(filepath.Join(n.root, "index.db"))
	rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Collection == nil || rep.Collection.Removed != 0 {
		t.Fatalf("collection without the vault configured: %+v", rep.Collection)
	}
	if got := n.blobCount(); got != blobs {
		t.Fatalf("%d blobs before, %d after", blobs, got)
	}
	n.vaults = []vault.Vault{registry}
	n.open(filepath.Join(n.root, "index.db"))
	n.checkAll(want)
}

// Case 7: a plain scrub must call a version that cannot be read lost, not
// "at risk".
func TestScrubCallsUnreadableLost(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	info := n.put("doomed", content("doomed", 5*testStripe))
	locs, _ := n.e.Locate(ctx, "registry", "doomed", info.VersionID)
	for _, l := range locs[:3] {
		os.Remove(filepath.Join(n.dirs[l.Site], filepath.FromSlash(l.Blob)))
	}
	rep, err := n.k.Scrub(ctx, ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lost != 1 || rep.Degraded != 0 || len(rep.LostVersions) != 1 || !strings.Contains(rep.LostVersions[0], "registry/doomed version "+info.VersionID.String()) {
		t.Fatalf("an unreadable version: %+v", rep)
	}
}
