package vault

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// A read that resolved a version before a drain relocated it reads it
// whole: Relocate removes the old shards once the new revision is
// committed, and the read goes on from the same offset on that revision
// (a GET during 'site drain' once failed mid-body: "too few intact
// relocationSites are the sites a relocation test moves shards to, beside
// the test node's own.
var relocationSites = []site.Descriptor{
	{ID: "est-3", Jurisdiction: "EST", Provider: "other", Control: "EST"},
	{ID: "lux-3", Jurisdiction: "LUX", Provider: "other", Control: "EST"},
	{ID: "fin-3", Jurisdiction: "FIN", Provider: "other", Control: "EST"},
}

// shards").
func TestReadFollowsARelocation(t *testing.T) {
	n := newTestNode(t, relocationSites...)
	data := content("moved", 10*testStripe+5)
	n.put("moved", data)
	r, err := n.e.Get(t.Context(), "registry", "moved", GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, _, err := n.e.resolve(t.Context(), "registry", "moved", r.m.Version)
	if err != nil {
		t.Fatal(err)
	}
	// Three shards of every part move: three of the four needed are left
	// where the read looks.
	sites := moveThree(t, m, relocationSites)
	if _, err := n.e.Relocate(t.Context(), m, Relocation{Sites: sites}); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read resolved before the move: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not what was written", len(got))
	}
	if r.follows != 1 {
		t.Error("the read did not need to follow the move: the test no longer shows it")
	}
}

// moveThree returns the sites of m's parts with three shards of every part
// moved, each to the site of its jurisdiction the part does not use among
// topology and extra (as a drain of one provider does).
func moveThree(t *testing.T, m *manifest.Manifest, extra []site.Descriptor) [][]string {
	t.Helper()
	all := append(slices.Clone(topology), extra...)
	var sites [][]string
	for _, p := range m.Parts {
		s := slices.Clone(p.Sites)
		for _, free := range all {
			if slices.Contains(s, free.ID) {
				continue
			}
			i := slices.IndexFunc(s, func(id string) bool {
				d := all[slices.IndexFunc(all, func(d site.Descriptor) bool { return d.ID == id })]
				return d.Jurisdiction == free.Jurisdiction && slices.Contains(p.Sites, id)
			})
			if i < 0 {
				t.Fatalf("part %d on %v: no shard in %s to move", p.Number, s, free.Jurisdiction)
			}
			s[i] = free.ID
		}
		sites = append(sites, s)
	}
	return sites
}

// A read that races two relocations of its version (a drain, then a
// repair or a second drain) reads it whole: it follows the first when
// its first part's old shards are gone, and the second when its second
// part's are (each part's shards are opened when the read reaches it).
func TestReadFollowsTwoRelocations(t *testing.T) {
	n := newTestNode(t, relocationSites...)
	ctx := t.Context()
	up, err := n.e.CreateUpload(ctx, "registry", "twice", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{content("twice-1", MinPartSize), content("twice-2", 10*testStripe+5)}
	var done []CompletePart
	for i, data := range parts {
		p, err := n.e.PutPart(ctx, "registry", "twice", up.ID, i+1, bytes.NewReader(data), int64(len(data)), func() string { return fmt.Sprintf("\"%032x\"", i+1) })
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, CompletePart{i + 1, p.ETag})
	}
	if _, err := n.e.CompleteUpload(ctx, "registry", "twice", up.ID, done); err != nil {
		t.Fatal(err)
	}
	data := append(slices.Clone(parts[0]), parts[1]...)

	r, err := n.e.Get(ctx, "registry", "twice", GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m1 := r.m
	if len(m1.Parts) != 2 {
		t.Fatalf("%d parts, want 2", len(m1.Parts))
	}
	// The first move, before the read starts: it follows it.
	if _, err := n.e.Relocate(ctx, m1, Relocation{Sites: moveThree(t, m1, relocationSites)}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 100)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("read after the first move: %v", err)
	}
	if r.follows != 1 || r.m.Revision != m1.Revision+1 {
		t.Fatalf("after the first move the read followed %d moves, to revision %d (want 1, to %d)", r.follows, r.m.Revision, m1.Revision+1)
	}
	// The second, while it reads the first part: the shards moved go
	// back where they were, and the second part's that the read would
	// open on the second revision are gone.
	m2, _, err := n.e.resolve(ctx, "registry", "twice", m1.Version)
	if err != nil {
		t.Fatal(err)
	}
	var back [][]string
	for _, p := range m1.Parts {
		back = append(back, p.Sites)
	}
	if _, err := n.e.Relocate(ctx, m2, Relocation{Sites: back}); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read racing two moves: %v", err)
	}
	if got = append(got, rest...); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not what was written", len(got))
	}
	if r.follows != 2 || r.m.Revision != m1.Revision+2 {
		t.Errorf("the read followed %d moves, to revision %d; want 2, to %d: the test no longer shows the second", r.follows, r.m.Revision, m1.Revision+2)
	}
}

// A read of an inline version that a relocation is rewriting finds its
// blocks though their places moved. A relocation rewrites every copy of
// the manifest blob, which holds the inline blocks of its site in shard
// order, with the new revision's layout before the index commits that
// revision (TestRemoteDrainUnderTraffic once failed so: a GET of the old
// revision met "shard checksum mismatch" on three sites that kept their
// shards, and no newer revision to follow yet). Here the move is done and
// the read may not follow it, which leaves it what it meets in that
// window: a site that gained a shard of a lower index holds its own at
// another place. A scrub of the old revision in that window finds them
// too.
func TestInlineReadAcrossARelocation(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	data := content("inline", 1000)
	n.put("inline", data)
	r, err := n.e.Get(ctx, "registry", "inline", GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := r.m
	p := m.Parts[0]
	if !p.Inline || len(p.Sites) != 6 {
		t.Fatalf("part inline %v on %d sites, want an inline part on 6", p.Inline, len(p.Sites))
	}
	// Shards 0 and 1 go to the sites of shards 5 and 4: those sites now
	// hold two blocks each, theirs second; the sites of 0 and 1 drop
	// their copies once the move is committed. Of the old layout, only
	// shards 2 and 3 are where the read looks for them.
	next := slices.Clone(p.Sites)
	next[0], next[1] = p.Sites[5], p.Sites[4]
	if _, err := n.e.Relocate(ctx, m, Relocation{Sites: [][]string{next}}); err != nil {
		t.Fatal(err)
	}
	// A scrub of the old revision finds the blocks of the sites that
	// gained one intact.
	for _, i := range []int{4, 5} {
		if _, err := n.e.VerifyShard(ctx, m, p, i, nil); err != nil {
			t.Errorf("scrub of shard %d of the old revision: %v", i, err)
		}
	}
	r.follows = maxFollows // as before the index holds the new revision
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read of the old revision: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not what was written", len(got))
	}
	if r.m.Revision != m.Revision {
		t.Errorf("the read went on to revision %d: the test no longer shows the old one read", r.m.Revision)
	}
}

// A relocation that meets a stripe with forged blocks (valid checksums)
// moves the shard's genuine block, not the forged one: a parity block is
// forged in stripe 0, alone (the stripe authenticates from its data and
// the repair, which reads every shard, checks the parity against the data
// coded again) or beside forged data shard 0 (the stripe authenticates
// without shard 0: reconstructed from 1-4, so without the forged parity
// when it is shard 5, leaving out shard 4 too when it is 4), and the
// parity shard moves to another site. The forged blocks are reported.
func TestRelocationDoesNotCopyAForgedBlock(t *testing.T) {
	for _, withData := range []bool{false, true} {
		t.Run(fmt.Sprintf("with a forged data block %v", withData), func(t *testing.T) {
			relocateForged(t, withData)
		})
	}
}

func relocateForged(t *testing.T, withData bool) {
	n := newTestNode(t, relocationSites...)
	want := content("forged", 3*testStripe)
	n.put("forged", want)
	m, _, err := n.e.resolve(t.Context(), "registry", "forged", manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	locs, _ := n.e.Locate(t.Context(), "registry", "forged", manifest.ID{})
	g := partGeometry(m, m.Parts[0])
	sum := m.Parts[0].BlockSum
	ss := g.shardSize(0)
	// The parity shard to forge and move: one with a free site of its
	// jurisdiction to go to (placement is random).
	all := append(slices.Clone(topology), relocationSites...)
	juris := func(id string) string {
		for _, d := range all {
			if d.ID == id {
				return d.Jurisdiction
			}
		}
		return ""
	}
	sites := slices.Clone(m.Parts[0].Sites)
	par := -1
	for _, x := range []int{5, 4} {
		for _, d := range all {
			if par < 0 && d.Jurisdiction == juris(sites[x]) && !slices.Contains(sites, d.ID) {
				par, sites[x] = x, d.ID
			}
		}
	}
	if par < 0 {
		t.Fatalf("no free site for a parity shard: %v", sites)
	}
	genuine, err := os.ReadFile(filepath.Join(n.dirs[locs[par].Site], filepath.FromSlash(locs[par].Blob)))
	if err != nil {
		t.Fatal(err)
	}
	forged := []int{par}
	if withData {
		forged = []int{0, par}
	}
	for _, x := range forged {
		p := filepath.Join(n.dirs[locs[x].Site], filepath.FromSlash(locs[x].Blob))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[11] ^= 0x81
		forgeSum(sum, b[:ss], m.Parts[0].Blob, 1, 0, uint8(x), b[ss:ss+sum.Size()])
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	res, err := n.e.Relocate(t.Context(), m, Relocation{Sites: [][]string{sites}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Problems != len(forged) {
		t.Errorf("the relocation reported %d problems, want %d (the forged blocks)", res.Problems, len(forged))
	}
	moved, err := os.ReadFile(filepath.Join(n.dirs[sites[par]], filepath.FromSlash(locs[par].Blob)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(moved[:ss], genuine[:ss]) {
		t.Fatalf("the relocation copied shard %d's forged block to its new site", par)
	}
	if !bytes.Equal(moved, genuine) {
		t.Fatalf("shard %d's new blob differs from the genuine one elsewhere", par)
	}
}
