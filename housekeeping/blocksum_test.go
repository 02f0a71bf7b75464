package housekeeping

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/fault"
	"github.com/embassy-dev/embassy/vault"
)

// TestBlockChecksumsOldAndNew: parts keep the block checksum algorithm
// they were written with for their life. Objects written as a node before
// XXH3 wrote them (BLAKE3, no field in the manifest), objects written now
// (XXH3) and a multipart object with one part of each are served by the
// current node: read whole and by range; bit rot in a block is found on
// read and by scrub and repaired; after a whole jurisdiction is lost the
// repair rebuilds its shards with each part's own algorithm (a part never
// mixes two); the index rebuilt from the sites serves them all; and a
// drill reads them without the lost sites.
func TestBlockChecksumsOldAndNew(t *testing.T) {
	n := newTestNode(t,
		site.Descriptor{ID: "deu-1", Jurisdiction: "DEU", Provider: "gov-dc", Control: "DEU"},
		site.Descriptor{ID: "deu-2", Jurisdiction: "DEU", Provider: "cloudco", Control: "USA"})
	ctx := t.Context()
	algo := map[string]erasure.Checksum{} // key -> algorithm of its parts
	want := map[string][]byte{}
	for _, sum := range []erasure.Checksum{erasure.BLAKE3, erasure.XXH3} {
		if err := n.e.SetBlockChecksum(sum); err != nil {
			t.Fatal(err)
		}
		for k, v := range n.fillSizes(sum.String()) {
			want[k], algo[k] = v, sum
		}
	}
	// A multipart upload begun before the upgrade and completed after:
	// part 1 BLAKE3, part 2 XXH3, in one manifest.
	if err := n.e.SetBlockChecksum(erasure.BLAKE3); err != nil {
		t.Fatal(err)
	}
	up, err := n.e.CreateUpload(ctx, "registry", "mixed", vault.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mixed := content("mixed", vault.MinPartSize+3*testStripe+5)
	var done []vault.CompletePart
	for i, piece := range [][]byte{mixed[:vault.MinPartSize], mixed[vault.MinPartSize:]} {
		if i == 1 {
			if err := n.e.SetBlockChecksum(erasure.Current); err != nil {
				t.Fatal(err)
			}
		}
		pi, err := n.e.PutPart(ctx, "registry", "mixed", up.ID, i+1, bytes.NewReader(piece), int64(len(piece)), nil)
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, vault.CompletePart{Number: i + 1, ETag: pi.ETag})
	}
	if _, err := n.e.CompleteUpload(ctx, "registry", "mixed", up.ID, done); err != nil {
		t.Fatal(err)
	}
	want["mixed"] = mixed

	// Every part says what it was written with, through any rewrite.
	checkAlgorithms := func(when string) {
		t.Helper()
		for key := range want {
			iv, err := n.ix.Latest(ctx, "registry", key)
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Open(iv.Envelope, n.e.Keys())
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range m.Parts {
				w, ok := algo[key]
				if !ok { // mixed
					w = []erasure.Checksum{erasure.BLAKE3, erasure.XXH3}[i]
				}
				if p.BlockSum != w {
					t.Fatalf("%s: %s part %d has %v blocks, want %v", when, key, p.Number, p.BlockSum, w)
				}
				if p.Inline {
					continue
				}
				for i, sid := range p.Sites {
					s, _ := n.e.Site(sid)
					if info, err := s.Store.Stat(ctx, manifest.ShardBlobName(p.Blob, i)); err == nil && info.Size != vault.ShardBlobSize(m, p) {
						t.Fatalf("%s: %s shard %d is %d bytes, want %d", when, key, i, info.Size, vault.ShardBlobSize(m, p))
					}
				}
			}
		}
	}
	checkAlgorithms("written")
	n.checkAll(want)
	// Ranges within a stripe, across stripes, across the parts of mixed.
	for key, w := range want {
		for _, r := range [][2]int64{{1, 10}, {testStripe - 3, 7}, {2*testStripe + 1, testStripe + 2}, {vault.MinPartSize - 5, 3*testStripe + 10}} {
			if r[0] >= int64(len(w)) {
				continue
			}
			got, _, err := n.read(key, vault.GetOptions{Offset: r[0], Length: r[1]})
			end := min(r[0]+r[1], int64(len(w)))
			if err != nil || !bytes.Equal(got, w[r[0]:end]) {
				t.Fatalf("%s range %v: %v", key, r, err)
			}
		}
	}
	if rep, err := n.k.Scrub(ctx, ScrubOptions{}); err != nil || rep.AtRisk != 0 || rep.CorruptShards != 0 || rep.Versions != len(want) {
		t.Fatalf("scrub of intact objects: %+v, %v", rep, err)
	}

	// Bit rot: the first byte of data shard 0 of the last part of every
	// object with data. Each read finds it (and still returns the data,
	// from parity), and so does scrub, which repairs it.
	rotten := 0
	for key, w := range want {
		if len(w) == 0 {
			continue
		}
		locs, _ := n.e.Locate(ctx, "registry", key, manifest.ID{})
		var l vault.ShardLocation
		for _, c := range locs {
			if c.Shard == 0 && c.Part >= l.Part {
				l = c
			}
		}
		p := filepath.Join(n.dirs[l.Site], filepath.FromSlash(l.Blob))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		at := 0 // a shard blob starts with stripe 0's block
		if l.Inline {
			// After this copy's envelope come its blocks, the lowest
			// shard (0) first.
			if at, err = manifest.EnvelopeLen(b); err != nil {
				t.Fatal(err)
			}
		}
		b[at] ^= 0x04
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		rotten++
		got, r, err := n.read(key, vault.GetOptions{Length: -1})
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("%s: read over bit rot: %v", key, err)
		}
		if len(r.Problems()) == 0 {
			t.Fatalf("%s: the read did not report the rotten block", key)
		}
	}
	rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true})
	if err != nil || rep.CorruptShards < rotten || rep.Repaired < rotten || len(rep.Unrepairable) > 0 {
		t.Fatalf("repairing scrub over %d rotten blocks: %+v, %v", rotten, rep, err)
	}
	if rep, err := n.k.Scrub(ctx, ScrubOptions{}); err != nil || rep.AtRisk+rep.CorruptShards+rep.MissingShards != 0 {
		t.Fatalf("scrub after repairing bit rot: %+v, %v", rep, err)
	}
	checkAlgorithms("after repairing bit rot")
	n.checkAll(want)

	// A drill without EST reads everything from the other sites.
	var descs []site.Descriptor
	for _, s := range n.e.Sites() {
		descs = append(descs, s.Descriptor)
	}
	lost, err := LostSites("jurisdiction=EST", descs)
	if err != nil {
		t.Fatal(err)
	}
	if dr, err := n.k.Drill(ctx, DrillOptions{Lost: lost, Vaults: []string{"registry"}}); err != nil || dr.RPOObjects != 0 || dr.Read != len(want) {
		t.Fatalf("drill without EST: %+v, %v", dr, err)
	}

	// Lose EST for real: the repair rebuilds its shards elsewhere, each
	// part with its own algorithm.
	for _, d := range topology {
		if d.Jurisdiction == "EST" {
			os.RemoveAll(n.dirs[d.ID])
			n.faults[d.ID].Set(fault.Config{Down: true})
		}
	}
	rep, err = n.k.Scrub(ctx, ScrubOptions{Repair: true})
	if err != nil || len(rep.Unrepairable) > 0 || rep.Repaired != rep.AtRisk || rep.Repaired == 0 {
		t.Fatalf("repair after losing EST: %+v, %v", rep, err)
	}
	if rep, err := n.k.Scrub(ctx, ScrubOptions{}); err != nil || rep.AtRisk+rep.CorruptShards+rep.MissingShards != 0 {
		t.Fatalf("scrub after losing EST: %+v, %v", rep, err)
	}
	checkAlgorithms("after losing EST")
	n.checkAll(want)

	// The index rebuilt from the sites serves them all.
	n.ix.Reset(ctx)
	if st, err := n.k.RebuildIndex(ctx, nil); err != nil || len(st.Unreadable) > 0 {
		t.Fatalf("rebuild: %+v, %v", st, err)
	}
	checkAlgorithms("after an index rebuild")
	n.checkAll(want)

	// And what is written now is XXH3.
	n.put("now", content("now", 2*testStripe))
	iv, _ := n.ix.Latest(ctx, "registry", "now")
	m, err := manifest.Open(iv.Envelope, n.e.Keys())
	if err != nil || m.Parts[0].BlockSum != erasure.Current {
		t.Fatalf("a new write: %v, %v", m, err)
	}
	if err := n.e.SetBlockChecksum(erasure.Checksum(5)); err == nil {
		t.Fatal("an unknown algorithm was accepted for writing")
	}
}
