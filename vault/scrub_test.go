package vault

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/fault"
)

func (n *testNode) fillSizes(prefix string) map[string][]byte {
	want := map[string][]byte{}
	for i, size := range sizes {
		key := fmt.Sprintf("%s/%d", prefix, i)
		want[key] = content(key, size)
		n.put(key, want[key])
	}
	return want
}

func (n *testNode) checkAll(want map[string][]byte) {
	n.t.Helper()
	for key, w := range want {
		got, r, err := n.read(key, GetOptions{Length: -1})
		if err != nil {
			n.t.Fatalf("%s: %v", key, err)
		}
		if !bytes.Equal(got, w) {
			n.t.Fatalf("%s differs", key)
		}
		if p := r.Problems(); len(p) > 0 {
			n.t.Fatalf("%s read with problems after repair: %v", key, p)
		}
	}
}

// TestScrubRepairsLostJurisdiction: delete every site of a jurisdiction,
// scrub with repair, and full redundancy is back on the remaining sites.
func TestScrubRepairsLostJurisdiction(t *testing.T) {
	n := newTestNode(t,
		site.Descriptor{ID: "deu-1", Jurisdiction: "DEU", Provider: "gov-dc", Control: "DEU"},
		site.Descriptor{ID: "deu-2", Jurisdiction: "DEU", Provider: "cloudco", Control: "USA"})
	ctx := t.Context()
	want := n.fillSizes("j")
	for _, d := range topology {
		if d.Jurisdiction == "EST" {
			os.RemoveAll(n.dirs[d.ID])
			n.faults[d.ID].Set(fault.Config{Down: true})
		}
	}
	rep, err := n.e.Scrub(ctx, ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.AtRisk == 0 || rep.MissingShards == 0 || rep.Repaired != 0 {
		t.Fatalf("scrub without repair: %+v", rep)
	}
	rep, err = n.e.Scrub(ctx, ScrubOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unrepairable) > 0 || rep.Repaired != rep.AtRisk || rep.BytesRepaired == 0 {
		t.Fatalf("repair: %+v", rep)
	}
	if n.e.Events.AtRisk.Load() != 0 {
		t.Fatalf("objects still at risk: %d", n.e.Events.AtRisk.Load())
	}
	// Full redundancy without EST: nothing at risk, reads need no parity.
	rep, _ = n.e.Scrub(ctx, ScrubOptions{})
	if rep.AtRisk != 0 {
		t.Fatalf("after repair: %+v", rep)
	}
	n.checkAll(want)
	for key := range want {
		locs, _ := n.e.Locate(ctx, "registry", key, manifest.ID{})
		for _, l := range locs {
			if l.Jurisdiction == "EST" {
				t.Fatalf("%s still has shard %d on %s", key, l.Shard, l.Site)
			}
		}
	}
}

// With the home jurisdiction gone and only two left, the policy cannot be
// kept: repair says so and changes nothing, and the data still reads.
func TestScrubRefusesBadRepair(t *testing.T) {
	n := newTestNode(t)
	want := n.fillSizes("x")
	for _, d := range topology {
		if d.Jurisdiction == "EST" {
			n.faults[d.ID].Set(fault.Config{Down: true})
		}
	}
	rep, err := n.e.Scrub(t.Context(), ScrubOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unrepairable) != len(want) || rep.Repaired != 0 {
		t.Fatalf("infeasible repair: %+v", rep)
	}
	for key, w := range want {
		if got, _, err := n.read(key, GetOptions{Length: -1}); err != nil || !bytes.Equal(got, w) {
			t.Fatalf("%s after a refused repair: %v", key, err)
		}
	}
}

func TestScrubRepairsCorruptionAndLoss(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := n.fillSizes("c")
	rng := rand.New(rand.NewPCG(3, 4))
	// Damage two shards of each object: one deleted, one corrupted.
	for key := range want {
		locs, _ := n.e.Locate(ctx, "registry", key, manifest.ID{})
		perm := rng.Perm(len(locs))
		del, cor := locs[perm[0]], locs[perm[1]]
		if del.Inline {
			// An inline shard lives in the manifest copy: delete the copy.
			os.Remove(filepath.Join(n.dirs[del.Site], filepath.FromSlash(del.Blob)))
		} else {
			os.Remove(filepath.Join(n.dirs[del.Site], filepath.FromSlash(del.Blob)))
		}
		p := filepath.Join(n.dirs[cor.Site], filepath.FromSlash(cor.Blob))
		b, err := os.ReadFile(p)
		if err == nil && len(b) > 0 {
			b[len(b)-1-rng.IntN(min(len(b), 64))] ^= 0x10
			os.WriteFile(p, b, 0o600)
		}
	}
	rep, err := n.e.Scrub(ctx, ScrubOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != len(want) || len(rep.Unrepairable) > 0 || rep.BytesRepaired == 0 {
		t.Fatalf("repair: %+v", rep)
	}
	// A second scrub finds nothing wrong.
	rep, err = n.e.Scrub(ctx, ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.AtRisk != 0 || rep.CorruptShards+rep.MissingShards+rep.MisplacedShards+rep.MissingCopies != 0 {
		t.Fatalf("after repair: %+v", rep)
	}
	n.checkAll(want)
	for key := range want {
		n.checkPlacement(key)
	}
	// And the repaired state survives an index rebuild.
	n.ix.Reset(ctx)
	if st, err := n.e.RebuildIndex(ctx, nil); err != nil || len(st.Unreadable) > 0 {
		t.Fatalf("rebuild after repair: %+v, %v", st, err)
	}
	n.checkAll(want)
}

func TestDrainMovesEveryShard(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := n.fillSizes("d")
	// Drain fin-2: FIN keeps fin-1, so the policy still holds.
	n.e.SetDraining([]string{"fin-2"})
	rep, err := n.e.Scrub(ctx, ScrubOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unrepairable) > 0 || rep.ShardsMoved == 0 {
		t.Fatalf("drain: %+v", rep)
	}
	left := 0
	filepath.WalkDir(n.dirs["fin-2"], func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !bytes.Contains([]byte(p), []byte("/.tmp/")) {
			left++
		}
		return nil
	})
	if left != 0 {
		t.Fatalf("%d blobs left on the drained site", left)
	}
	n.checkAll(want)
	for key := range want {
		n.checkPlacement(key)
	}
	// Writes made while draining avoid the site.
	n.put("after-drain", content("a", 3*testStripe))
	locs, _ := n.e.Locate(ctx, "registry", "after-drain", manifest.ID{})
	for _, l := range locs {
		if l.Site == "fin-2" {
			t.Fatal("a new write used the draining site")
		}
	}
}

func TestScrubCollectsOrphans(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := n.fillSizes("g")
	up, _ := n.e.CreateUpload(ctx, "registry", "in-flight", PutOptions{})
	if _, err := n.e.PutPart(ctx, "registry", "in-flight", up.ID, 1, bytes.NewReader(content("p", 3*testStripe)), -1, nil); err != nil {
		t.Fatal(err)
	}
	before := n.blobCount()
	// Orphans: shards of a put that never committed, and a stray copy.
	for _, d := range topology[:3] {
		s, _ := n.e.site(d.ID)
		s.Store.Put(ctx, manifest.ShardBlobName(manifest.NewID(), 0), bytes.NewReader([]byte("orphan")), 6)
		s.Store.Put(ctx, manifest.BlobName(manifest.NewID()), bytes.NewReader([]byte("stray")), 5)
	}
	rep, err := n.e.Scrub(ctx, ScrubOptions{Repair: true, OrphanGrace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OrphansRemoved != 6 || n.blobCount() != before {
		t.Fatalf("removed %d orphans, %d blobs left (want %d): %+v", rep.OrphansRemoved, n.blobCount(), before, rep)
	}
	n.checkAll(want)
	if _, err := n.e.CompleteUpload(ctx, "registry", "in-flight", up.ID, nil); err == nil {
		t.Fatal("completing with no parts succeeded")
	}
	parts, _ := n.e.ListParts(ctx, "registry", "in-flight", up.ID)
	if _, err := n.e.CompleteUpload(ctx, "registry", "in-flight", up.ID, []CompletePart{{1, parts[0].ETag}}); err != nil {
		t.Fatalf("the upload's part was collected as an orphan: %v", err)
	}
	if got := n.mustRead("in-flight"); !bytes.Equal(got, content("p", 3*testStripe)) {
		t.Fatal("in-flight upload damaged by garbage collection")
	}
}
