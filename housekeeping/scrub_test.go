package housekeeping

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/vault"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/fault"
)

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
	rep, err := n.k.Scrub(ctx, ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.AtRisk == 0 || rep.MissingShards == 0 || rep.Repaired != 0 {
		t.Fatalf("scrub without repair: %+v", rep)
	}
	rep, err = n.k.Scrub(ctx, ScrubOptions{Repair: true})
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
	rep, _ = n.k.Scrub(ctx, ScrubOptions{})
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

// TestRepairWriteFailsMidway: a repair whose new site fails in the middle
// of writing a rebuilt shard (after its queue of blocks has filled, so the
// rebuild is waiting on the site) stops without hanging, says the version
// is unrepairable, leaves its placement and bytes as they were and no part
// of the shard on the sites; once the site is well, the next repair
// succeeds.
func TestRepairWriteFailsMidway(t *testing.T) {
	n := newTestNode(t,
		site.Descriptor{ID: "deu-1", Jurisdiction: "DEU", Provider: "gov-dc", Control: "DEU"},
		site.Descriptor{ID: "deu-2", Jurisdiction: "DEU", Provider: "cloudco", Control: "USA"})
	ctx := t.Context()
	// Written with DEU out of use, so that DEU is where the repair goes.
	n.e.SetDraining([]string{"deu-1", "deu-2"})
	// 12 MiB in 4 KiB stripes: some 3,000 blocks a shard, more than a
	// rebuild queues for a site (4 MiB over two sites in 1 KiB blocks).
	big := content("big", 12<<20)
	n.put("big", big)
	want := n.fillSizes("w")
	n.e.SetDraining(nil)
	before, err := n.e.Locate(ctx, "registry", "big", manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range topology {
		if d.Jurisdiction == "EST" {
			os.RemoveAll(n.dirs[d.ID])
			n.faults[d.ID].Set(fault.Config{Down: true})
		}
	}
	n.faults["deu-1"].Set(fault.Config{FailPutAfter: 1 << 20})
	rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	failed := false
	for _, u := range rep.Unrepairable {
		if strings.Contains(u, "registry/big ") && strings.Contains(u, fault.ErrInjected.Error()) {
			failed = true
		}
	}
	if !failed || rep.RemainingAtRisk == 0 {
		t.Fatalf("repair with a site failing mid-write: %+v", rep)
	}
	after, err := n.e.Locate(ctx, "registry", "big", manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("placement changed by a failed repair:\n%v\n%v", before, after)
	}
	if got, _, err := n.read("big", vault.GetOptions{Length: -1}); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big after a failed repair: %v", err)
	}
	for _, l := range before {
		for _, sid := range []string{"deu-1", "deu-2"} {
			if _, err := os.Stat(filepath.Join(n.dirs[sid], filepath.FromSlash(l.Blob))); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s holds %s after a failed repair: %v", sid, l.Blob, err)
			}
		}
	}
	// The audit log copies its tiles to every site in the background, so
	// a site's .tmp may hold one of its files for a moment: a temporary
	// file the failed repair left stays, and that is what is refused.
	for _, sid := range []string{"deu-1", "deu-2"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ents, _ := os.ReadDir(filepath.Join(n.dirs[sid], ".tmp"))
			if len(ents) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s keeps %d temporary files after a failed repair (%s, still there after 10 s)", sid, len(ents), ents[0].Name())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	n.faults["deu-1"].Set(fault.Config{})
	rep, err = n.k.Scrub(ctx, ScrubOptions{Repair: true})
	if err != nil || len(rep.Unrepairable) > 0 || rep.RemainingAtRisk != 0 {
		t.Fatalf("repair once the site is well: %+v, %v", rep, err)
	}
	want["big"] = big
	n.checkAll(want)
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
	rep, err := n.k.Scrub(t.Context(), ScrubOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unrepairable) != len(want) || rep.Repaired != 0 {
		t.Fatalf("infeasible repair: %+v", rep)
	}
	for key, w := range want {
		if got, _, err := n.read(key, vault.GetOptions{Length: -1}); err != nil || !bytes.Equal(got, w) {
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
	rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != len(want) || len(rep.Unrepairable) > 0 || rep.BytesRepaired == 0 {
		t.Fatalf("repair: %+v", rep)
	}
	// A second scrub finds nothing wrong.
	rep, err = n.k.Scrub(ctx, ScrubOptions{})
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
	if st, err := n.k.RebuildIndex(ctx, nil); err != nil || len(st.Unreadable) > 0 {
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
	rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unrepairable) > 0 || rep.ShardsMoved == 0 {
		t.Fatalf("drain: %+v", rep)
	}
	left := 0
	fin2, _ := n.e.Site("fin-2")
	for _, prefix := range []string{manifest.ShardPrefix, manifest.ManifestPrefix} {
		fin2.Store.List(ctx, prefix, func(site.Info) error { left++; return nil })
	}
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

// TestCollectionNeedsEvidence: garbage collection removes what the node's
// records show is garbage, and nothing else.
func TestCollectionNeedsEvidence(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := n.fillSizes("g")
	up, _ := n.e.CreateUpload(ctx, "registry", "in-flight", vault.PutOptions{})
	if _, err := n.e.PutPart(ctx, "registry", "in-flight", up.ID, 1, bytes.NewReader(content("p", 3*testStripe)), -1, nil); err != nil {
		t.Fatal(err)
	}
	// Blobs no record explains: kept, whatever their age.
	var unexplained []string
	for _, d := range topology[:3] {
		s, _ := n.e.Site(d.ID)
		shard, stray := manifest.ShardBlobName(manifest.NewID(), 0), manifest.BlobName(manifest.NewID())
		s.Store.Put(ctx, shard, bytes.NewReader([]byte("orphan")), 6)
		s.Store.Put(ctx, stray, bytes.NewReader([]byte("stray")), 5)
		unexplained = append(unexplained, d.ID+"/"+shard, d.ID+"/"+stray)
	}
	// A streamed put that died after its shards and before its manifest:
	// its intent is on the sites, its shards are, no manifest is.
	dead, blob := manifest.NewID(), manifest.NewID()
	rec := evidence.Record{Kind: evidence.Intent, Version: dead}
	for i, d := range topology {
		name := manifest.ShardBlobName(blob, i)
		s, _ := n.e.Site(d.ID)
		s.Store.Put(ctx, name, bytes.NewReader([]byte("shard")), 5)
		rec.Blobs = append(rec.Blobs, evidence.Blob{Name: name, Site: d.ID})
	}
	if err := n.e.Journal().Append(ctx, nil, rec); err != nil {
		t.Fatal(err)
	}
	// A version delete whose clean-up failed on one site.
	victim := n.put("victim", content("victim", 3*testStripe))
	locs, _ := n.e.Locate(ctx, "registry", "victim", victim.VersionID)
	n.faults["lux-1"].Set(fault.Config{DeleteErr: errors.New("disk busy")})
	if _, err := n.e.Delete(ctx, "registry", "victim", vault.DeleteOptions{VersionID: victim.VersionID}); err != nil {
		t.Fatal(err)
	}
	if err := n.e.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	n.faults["lux-1"].Set(fault.Config{})
	lux1, _ := n.e.Site("lux-1")
	leftover := 0
	lux1.Store.List(ctx, "", func(i site.Info) error {
		for _, l := range locs {
			if i.Name == l.Blob && l.Site == "lux-1" {
				leftover++
			}
		}
		if i.Name == manifest.BlobName(victim.VersionID) {
			leftover++
		}
		return nil
	})
	if leftover == 0 {
		t.Fatal("the failed clean-up left nothing on lux-1")
	}
	before := n.blobCount()

	rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Collection
	if c == nil || !c.Ran {
		t.Fatalf("collection did not run: %+v", c)
	}
	if c.Abandoned != 1 {
		t.Fatalf("abandoned writes = %d, want 1: %+v", c.Abandoned, c)
	}
	for _, u := range unexplained {
		sid, name, _ := strings.Cut(u, "/")
		s, _ := n.e.Site(sid)
		if _, err := s.Store.Stat(ctx, name); err != nil {
			t.Fatalf("blob %s with no record was removed: %v", u, err)
		}
	}
	for i, d := range topology {
		s, _ := n.e.Site(d.ID)
		if _, err := s.Store.Stat(ctx, manifest.ShardBlobName(blob, i)); !errors.Is(err, site.ErrNotFound) {
			t.Fatalf("shard of the abandoned write still on %s: %v", d.ID, err)
		}
	}
	if c.Removed != len(topology)+leftover || n.blobCount() != before-c.Removed {
		t.Fatalf("removed %d blobs (want %d abandoned shards + %d left by the delete): %+v", c.Removed, len(topology), leftover, c)
	}
	if c.Unindexed != 3 {
		t.Fatalf("unindexed = %d, want the 3 stray manifests reported: %+v", c.Unindexed, c)
	}
	n.checkAll(want)
	parts, _ := n.e.ListParts(ctx, "registry", "in-flight", up.ID)
	if _, err := n.e.CompleteUpload(ctx, "registry", "in-flight", up.ID, []vault.CompletePart{{Number: 1, ETag: parts[0].ETag}}); err != nil {
		t.Fatalf("the upload's part was collected: %v", err)
	}
	if got := n.mustRead("in-flight"); !bytes.Equal(got, content("p", 3*testStripe)) {
		t.Fatal("in-flight upload damaged by garbage collection")
	}
}

// TestScrubListsBounded: a scrub lists at most scrubListed versions it
// could not repair and scrubListed errors, and counts the others: a site
// that fails every write fails one repair for each version it holds.
func TestScrubListsBounded(t *testing.T) {
	defer func(n int) { scrubListed = n }(scrubListed)
	scrubListed = 3
	n := newTestNode(t)
	ctx := t.Context()
	var versions int
	for i := range 3 {
		versions += len(n.fillSizes(fmt.Sprint("b", i)))
	}
	// Unrepairable: with the home jurisdiction gone, no version can keep
	// its policy.
	for _, d := range topology {
		if d.Jurisdiction == "EST" {
			n.faults[d.ID].Set(fault.Config{Down: true})
		}
	}
	rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unrepairable) != 3 || rep.Unrepairables() != versions || rep.UnrepairableNotListed != versions-3 {
		t.Fatalf("%d versions: %d unrepairable listed, %d not: %+v", versions, len(rep.Unrepairable), rep.UnrepairableNotListed, rep)
	}
	for _, d := range topology {
		n.faults[d.ID].Set(fault.Config{})
	}
	// Errors: every manifest copy on lux-1 gone, and lux-1 failing every
	// write.
	m := filepath.Join(n.dirs["lux-1"], "m")
	if err := os.RemoveAll(m); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(m, 0o700)
	n.faults["lux-1"].Set(fault.Config{PutErr: errors.New("read-only")})
	rep, err = n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) != 3 || rep.ErrorsNotListed == 0 || rep.Unrepairables()+len(rep.Errors)+rep.ErrorsNotListed != versions {
		t.Fatalf("%d versions: %d errors listed, %d not, %d unrepairable: %+v", versions, len(rep.Errors), rep.ErrorsNotListed, rep.Unrepairables(), rep)
	}
	for _, e := range append(rep.Errors, rep.Unrepairable...) {
		if !strings.Contains(e, "read-only") {
			t.Fatalf("error %q", e)
		}
	}
}

// TestScrubRecheckOutcome: when a repair met damage in the shards it kept,
// the version is scrubbed again, and that second look decides the
// version's outcome: what it could not do (errors, a lost version's
// name) reaches the report, and a version it leaves at risk is not
// counted repaired.
func TestScrubRecheckOutcome(t *testing.T) {
	first := func() ScrubReport {
		return ScrubReport{Versions: 1, AtRisk: 1, Degraded: 1, Repaired: 1, CorruptShards: 1, BytesRepaired: 10}
	}
	for _, tc := range []struct {
		name  string
		again ScrubReport
		want  ScrubReport
	}{
		{"clean", ScrubReport{Versions: 1},
			ScrubReport{Versions: 1, AtRisk: 1, Degraded: 1, Repaired: 1, CorruptShards: 1, BytesRepaired: 10}},
		{"repaired again", ScrubReport{Versions: 1, AtRisk: 1, Degraded: 1, Repaired: 1, CorruptShards: 2, BytesRepaired: 20, ShardsMoved: 1},
			ScrubReport{Versions: 1, AtRisk: 1, Degraded: 1, Repaired: 1, CorruptShards: 3, BytesRepaired: 30, ShardsMoved: 1}},
		{"copies not restored", ScrubReport{Versions: 1, AtRisk: 1, Degraded: 1, RemainingAtRisk: 1, Errors: []string{"v: restore manifest copies: disk full"}},
			ScrubReport{Versions: 1, AtRisk: 1, Degraded: 1, CorruptShards: 1, BytesRepaired: 10, RemainingAtRisk: 1, Errors: []string{"v: restore manifest copies: disk full"}}},
		{"unrepairable", ScrubReport{Versions: 1, AtRisk: 1, Degraded: 1, RemainingAtRisk: 1, Unrepairable: []string{"v: no site for shard 3"}},
			ScrubReport{Versions: 1, AtRisk: 1, Degraded: 1, CorruptShards: 1, BytesRepaired: 10, RemainingAtRisk: 1, Unrepairable: []string{"v: no site for shard 3"}}},
		{"lost", ScrubReport{Versions: 1, AtRisk: 1, Lost: 1, RemainingAtRisk: 1, LostVersions: []string{"v: 3 of 6 shards readable, 4 needed"}},
			ScrubReport{Versions: 1, AtRisk: 1, Lost: 1, CorruptShards: 1, BytesRepaired: 10, RemainingAtRisk: 1, LostVersions: []string{"v: 3 of 6 shards readable, 4 needed"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := first()
			rep.recheck(tc.again)
			if !reflect.DeepEqual(rep, tc.want) {
				t.Errorf("after the re-check:\n got %+v\nwant %+v", rep, tc.want)
			}
			// Summed into a scrub's report, a version is degraded or lost,
			// not both, and repaired only when nothing is left at risk.
			var sum ScrubReport
			sum.add(rep)
			if sum.Degraded+sum.Lost != sum.AtRisk || sum.Repaired+sum.RemainingAtRisk > sum.AtRisk {
				t.Errorf("inconsistent counts: %+v", sum)
			}
		})
	}
}

// shardBlob returns the path of shard i's blob of key's only part, its
// manifest and part, and its stride: the object must be whole stripes,
// stripes of them.
func shardBlob(t *testing.T, n *testNode, key string, stripes int, i int) (string, *manifest.Manifest, manifest.Part, int64) {
	t.Helper()
	ctx := t.Context()
	iv, err := n.ix.Latest(ctx, "registry", key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Open(iv.Envelope, n.e.Keys())
	if err != nil {
		t.Fatal(err)
	}
	locs, _ := n.e.Locate(ctx, "registry", key, manifest.ID{})
	p := m.Parts[0]
	size := vault.ShardBlobSize(m, p)
	if size%int64(stripes) != 0 {
		t.Fatalf("shard blob of %d bytes is not %d equal blocks", size, stripes)
	}
	return filepath.Join(n.dirs[locs[i].Site], filepath.FromSlash(locs[i].Blob)), m, p, size / int64(stripes)
}

// forgeBlock replaces stripe j's block of shard i of key's only part with
// other bytes and a checksum that matches them, as someone who can write
// to the site can (the block checksums have no key). The object must be
// whole stripes, stripes of them. It returns the blob's path and its
// bytes before.
func forgeBlock(t *testing.T, n *testNode, key string, stripes int, j int64, i int) (string, []byte) {
	t.Helper()
	path, _, p, stride := shardBlob(t, n, key, stripes, i)
	sum := p.BlockSum
	ss := stride - int64(sum.Size())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(b)
	blk := b[j*stride : (j+1)*stride]
	blk[5] ^= 0x42
	var s [erasure.MaxSumSize]byte
	copy(blk[ss:], sum.Sum(s[:], erasure.BlockID{Version: p.Blob, Part: uint32(p.Number), Stripe: uint64(j), Shard: uint8(i)}, blk[:ss]))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, before
}

// TestDeepScrubFindsForgedBlocks: blocks replaced along with valid
// checksums pass scrub's checksums; the deep scrub authenticates every
// stripe and codes the parity again, names them, and its repair puts the
// genuine blocks back. One object has a forged parity block, one a forged
// data block, one both in one stripe; a fourth has three in one stripe,
// more than m=2, and is reported lost, not repaired into something else.
func TestDeepScrubFindsForgedBlocks(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	const stripes = 4
	want := map[string][]byte{}
	for _, key := range []string{"parity", "data", "both", "three"} {
		want[key] = content(key, stripes*testStripe)
		n.put(key, want[key])
	}
	genuine := map[string]map[string][]byte{} // key -> forged blob's path -> its bytes before
	forge := func(key string, j int64, shards ...int) {
		genuine[key] = map[string][]byte{}
		for _, i := range shards {
			path, before := forgeBlock(t, n, key, stripes, j, i)
			genuine[key][path] = before
		}
	}
	forge("parity", 1, 5)
	forge("data", 2, 1)
	forge("both", 0, 0, 4)
	forge("three", 3, 0, 1, 5)

	rep, err := n.k.Scrub(ctx, ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CorruptShards != 0 || rep.AtRisk != 0 {
		t.Fatalf("the checksums alone found the forgeries (the test no longer shows the deep check's use): %+v", rep)
	}
	rep, err = n.k.Scrub(ctx, ScrubOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CorruptShards != 4 || rep.Lost != 1 || rep.AtRisk != 4 || rep.Degraded != 3 {
		t.Fatalf("deep scrub: %+v, want 4 corrupt shards in 3 degraded versions and 1 lost", rep)
	}
	if len(rep.LostVersions) != 1 || !strings.Contains(rep.LostVersions[0], "three") {
		t.Fatalf("lost versions %v, want the one with three forged blocks in a stripe", rep.LostVersions)
	}
	rep, err = n.k.Scrub(ctx, ScrubOptions{Deep: true, Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != 3 {
		t.Fatalf("deep scrub with repair: %+v, want 3 repaired", rep)
	}
	// Every repaired object reads back, and no forged block is left where
	// one was: each such blob holds its genuine bytes again or is gone
	// (its shard rebuilt elsewhere); the lost version's are left alone.
	delete(want, "three")
	n.checkAll(want)
	restored := 0
	for path, g := range joinMaps(genuine["parity"], genuine["data"], genuine["both"]) {
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			t.Fatal(err)
		case !bytes.Equal(b, g):
			t.Errorf("%s is still forged after the repair", path)
		default:
			restored++
		}
	}
	t.Logf("%d forged blobs hold their genuine bytes again, the rest were moved", restored)
	rep, err = n.k.Scrub(ctx, ScrubOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CorruptShards != 0 || rep.AtRisk != 1 || rep.Lost != 1 {
		t.Fatalf("deep scrub after the repair: %+v, want only the lost version", rep)
	}
}

// TestDeepScrubReadsOnce: the deep scrub's checks ride on one read of
// each shard, the ordinary scrub's; it used to read every part twice, a
// checksum pass and then the repair's read.
func TestDeepScrubReadsOnce(t *testing.T) {
	n := newTestNode(t)
	n.put("small", content("small", 100))
	n.put("large", content("large", 5*testStripe+17))
	read := func(deep bool) (sites, reported int64) {
		t.Helper()
		var before int64
		for _, f := range n.faults {
			before += f.BytesRead()
		}
		rep, err := n.k.Scrub(t.Context(), ScrubOptions{Deep: deep})
		if err != nil {
			t.Fatal(err)
		}
		if rep.AtRisk != 0 || len(rep.Errors) != 0 {
			t.Fatalf("scrub (deep %v) of intact objects: %+v", deep, rep)
		}
		for _, f := range n.faults {
			sites += f.BytesRead()
		}
		return sites - before, rep.BytesRead
	}
	var cold0 int64
	for _, f := range n.faults {
		cold0 += f.ColdBytesRead()
	}
	plain, plainRep := read(false)
	var cold int64
	for _, f := range n.faults {
		cold += f.ColdBytesRead()
	}
	deep, deepRep := read(true)
	if plain == 0 || deep != plain || deepRep != plainRep {
		t.Errorf("the deep scrub read %d bytes from the sites (reported %d), the ordinary scrub %d (reported %d): want the same", deep, deepRep, plain, plainRep)
	}
	// Both read the shard blobs as a repair does, from the disk and not
	// the page cache (site.WithColdRead): what a scrub checks is what the
	// medium holds.
	var blobs int64
	for _, d := range n.dirs {
		filepath.WalkDir(filepath.Join(d, "s"), func(_ string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				if info, err := e.Info(); err == nil {
					blobs += info.Size()
				}
			}
			return nil
		})
	}
	if blobs == 0 || cold-cold0 < blobs {
		t.Errorf("the ordinary scrub read %d bytes with the cold-read hint; the shard blobs hold %d", cold-cold0, blobs)
	}
}

func joinMaps[K comparable, V any](ms ...map[K]V) map[K]V {
	out := map[K]V{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}
