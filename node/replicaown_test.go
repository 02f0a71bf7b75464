package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
	"github.com/embassy-dev/embassy/vault"
)

// TestRecoverOwnBlobsOnEvidence: a site's own blobs come back from an ally
// on what the node can check, not on what the ally lists (restoreOwn). A
// manifest copy is written only if it verifies with the node's keys, is of
// the version its name says, and is sent at exactly the size its manifest
// gives it on its site; the shard blobs come with it, asked for by name
// and written only at the size the manifest gives. A shard blob the ally
// lists is never taken as listed: one no manifest names is not even asked
// for. Before, every blob was written at the size the ally listed.
func TestRecoverOwnBlobsOnEvidence(t *testing.T) {
	n := newNode(t)
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	fill(t, n)
	ctx := t.Context()
	if _, err := n.Engine.Put(n.As(ctx, "admin"), "registry", "small.txt", strings.NewReader("small and inline"), vault.PutOptions{Size: 16}); err != nil {
		t.Fatal(err)
	}
	// What the ally holds: every manifest copy and shard blob of every site.
	held := map[federation.BlobRef][]byte{} // sizes zero
	for _, s := range n.Engine.Sites() {
		var names []string
		if err := s.Store.List(ctx, "", func(i site.Info) error {
			if strings.HasPrefix(i.Name, manifest.ManifestPrefix) || strings.HasPrefix(i.Name, manifest.ShardPrefix) {
				names = append(names, i.Name)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			rc, err := s.Store.Get(ctx, name, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			held[federation.BlobRef{Site: s.ID, Name: name}] = b
		}
	}
	open := func(key string) *manifest.Manifest {
		v, err := n.Engine.Index().Latest(ctx, "registry", key)
		if err != nil {
			t.Fatal(err)
		}
		m, err := n.Engine.OpenEnvelope(v.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	big, small, mid := open("2026/3.bin"), open("small.txt"), open("2026/2.bin")
	if big.Parts[0].Inline {
		t.Fatal("the 3 MiB object is inline: this test no longer covers shard blobs")
	}
	ref := func(sid, name string) federation.BlobRef { return federation.BlobRef{Site: sid, Name: name} }
	bp := big.Parts[0]
	longShard := ref(bp.Sites[0], manifest.ShardBlobName(bp.Blob, 0))
	goneShard := ref(bp.Sites[1], manifest.ShardBlobName(bp.Blob, 1))
	badCopy := ref(bp.Sites[2], manifest.BlobName(big.Version))
	unverified := ref(bp.Sites[2], manifest.ShardBlobName(bp.Blob, 2)) // its site's copy is refused
	longCopy := ref(small.Parts[0].Sites[0], manifest.BlobName(small.Version))
	otherCopy := ref(mid.Parts[0].Sites[0], manifest.BlobName(mid.Version))
	fake := ref(bp.Sites[0], "s/ff/ff000000000000000000000000000000.0")
	witness := ref(bp.Sites[0], federation.BlobWitness)
	for _, r := range []federation.BlobRef{longShard, goneShard, badCopy, unverified, longCopy} {
		if _, ok := held[r]; !ok {
			t.Fatalf("the source holds no %s of site %s", r.Name, r.Site)
		}
	}
	if _, ok := held[otherCopy]; !ok {
		t.Fatalf("the source holds no %s of site %s", otherCopy.Name, otherCopy.Site)
	}
	// The ally's answers, with its lies.
	sends := map[federation.BlobRef][]byte{}
	maps.Copy(sends, held)
	sends[longShard] = append(slices.Clone(held[longShard]), make([]byte, 1<<20)...)
	delete(sends, goneShard)
	garbled := slices.Clone(held[badCopy])
	garbled[manifest.HeaderSize+3] ^= 1
	sends[badCopy] = garbled
	sends[longCopy] = append(slices.Clone(held[longCopy]), "and more"...)
	sends[otherCopy] = held[ref(bp.Sites[0], manifest.BlobName(big.Version))]
	sends[fake] = make([]byte, 1<<20)
	sends[witness] = make([]byte, 100)
	asked := map[federation.BlobRef]bool{}
	pr := &PeerRestoreReport{}
	rs := &peerRestore{keys: n.Engine.Keys(), pr: pr, open: func(r federation.BlobRef) (io.ReadCloser, error) {
		key := federation.BlobRef{Site: r.Site, Name: r.Name}
		asked[key] = true
		b, ok := sends[key]
		if !ok {
			return nil, &PeerError{Peer: "ally", Status: http.StatusNotFound, Code: "not_found", Msg: "no such blob"}
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
	// The ally lists every blob it sends, each at the size it sends (the
	// fake shard at 1 GiB).
	dst := map[string]*memory.Site{}
	listed := slices.SortedFunc(maps.Keys(sends), func(a, b federation.BlobRef) int {
		return strings.Compare(listingKey(a), listingKey(b))
	})
	for _, r := range listed {
		if dst[r.Site] == nil {
			dst[r.Site] = memory.New()
		}
		r.Size = int64(len(sends[r]))
		if r.Name == fake.Name {
			r.Size = 1 << 30
		}
		if err := rs.restoreOwn(ctx, dst[r.Site], r); err != nil {
			t.Fatalf("%s of site %s: %v", r.Name, r.Site, err)
		}
	}
	if asked[fake] {
		t.Error("the ally was asked for a shard blob no manifest names")
	}
	refused := map[federation.BlobRef]bool{longShard: true, goneShard: true, badCopy: true, unverified: true, longCopy: true, otherCopy: true, fake: true, witness: true}
	if !mid.Parts[0].Inline {
		// The shard blob of the site whose copy was another version's.
		refused[ref(otherCopy.Site, manifest.ShardBlobName(mid.Parts[0].Blob, 0))] = true
	}
	if !small.Parts[0].Inline {
		t.Fatal("a 16-byte object is not inline: this test no longer covers inline copies")
	}
	written := 0
	for r, want := range held {
		rc, err := dst[r.Site].Get(ctx, r.Name, 0, -1)
		if refused[r] {
			if err == nil {
				got, _ := io.ReadAll(rc)
				rc.Close()
				t.Errorf("%s of site %s: %d bytes written (the source holds %d)", r.Name, r.Site, len(got), len(want))
			}
			continue
		}
		if err != nil {
			t.Errorf("%s of site %s: %v", r.Name, r.Site, err)
			continue
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, want) {
			t.Errorf("%s of site %s: %d bytes, want %d", r.Name, r.Site, len(got), len(want))
		}
		written++
	}
	for _, r := range []federation.BlobRef{fake, witness} {
		if _, err := dst[r.Site].Stat(ctx, r.Name); !errors.Is(err, site.ErrNotFound) {
			t.Errorf("%s of site %s: %v, want none written", r.Name, r.Site, err)
		}
	}
	// Refused: the long shard, the garbled, long and other version's
	// copies, the witness's memory at a site. Not asked: the shard of the
	// refused copy's site, the fake one.
	if pr.Refused != 5 || len(pr.RefusedBlobs) != 5 || pr.ShardsMissing != 1 || pr.Blobs != written || pr.Present != 0 {
		t.Errorf("report: %d refused %q, %d shards missing, %d blobs (%d written), %d present", pr.Refused, pr.RefusedBlobs, pr.ShardsMissing, pr.Blobs, written, pr.Present)
	}
	for _, want := range []string{"more than the", "does not verify", "holds version", "no site holds such a blob"} {
		if !strings.Contains(strings.Join(pr.RefusedBlobs, "\n"), want) {
			t.Errorf("no refusal says %q: %q", want, pr.RefusedBlobs)
		}
	}
	if asked[unverified] {
		t.Error("a shard blob was asked for on the word of a copy that does not verify")
	}

	// Run again over what was written (a recovery stopped and started
	// again): what the sites hold is left as it is and counted present,
	// the shard blobs a kept copy names included; the lies are refused
	// again.
	again := &PeerRestoreReport{}
	rs.pr = again
	for _, r := range listed {
		r.Size = int64(len(sends[r]))
		if err := rs.restoreOwn(ctx, dst[r.Site], r); err != nil {
			t.Fatal(err)
		}
	}
	if again.Present != written || again.Blobs != 0 || again.Refused != 5 || again.ShardsMissing != 1 {
		t.Errorf("second run: %d present (want %d), %d blobs, %d refused %q, %d shards missing", again.Present, written, again.Blobs, again.Refused, again.RefusedBlobs, again.ShardsMissing)
	}
}

// FuzzRestoreCopy: whatever an ally sends as a site's manifest copy, and
// whatever size it lists, restoreOwn never panics, fails only for the
// site, and writes a copy only if it is a verified envelope of the version
// its name says followed by exactly the inline blocks its manifest places
// on that site.
func FuzzRestoreCopy(f *testing.F) {
	n := newNode(f)
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	var seeds []*manifest.Manifest
	for key, size := range map[string]int{"inline": 16, "streamed": 3 << 20} {
		info, err := n.Engine.Put(n.As(ctx, "admin"), "registry", key, bytes.NewReader(make([]byte, size)), vault.PutOptions{Size: int64(size)})
		if err != nil {
			f.Fatal(err)
		}
		v, err := n.Engine.Index().Get(ctx, "registry", key, info.VersionID)
		if err != nil {
			f.Fatal(err)
		}
		m, err := n.Engine.OpenEnvelope(v.Envelope)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, m)
	}
	sid := seeds[0].Parts[0].Sites[0]
	s, _ := n.Engine.Site(sid)
	for _, m := range seeds {
		rc, err := s.Store.Get(ctx, manifest.BlobName(m.Version), 0, -1)
		if err != nil {
			continue // not on this site
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		f.Add(b, int64(len(b)), m == seeds[0])
		f.Add(b[:len(b)-1], int64(len(b)), m == seeds[0])
		f.Add(append(b, 0), int64(len(b)+1), m == seeds[0])
		f.Add(b[:manifest.HeaderSize], int64(1<<40), m == seeds[0])
	}
	keys := n.Engine.Keys()
	f.Fuzz(func(t *testing.T, body []byte, listed int64, inline bool) {
		m := seeds[1]
		if inline {
			m = seeds[0]
		}
		name := manifest.BlobName(m.Version)
		dst := memory.New()
		pr := &PeerRestoreReport{}
		rs := &peerRestore{keys: keys, pr: pr, open: func(r federation.BlobRef) (io.ReadCloser, error) {
			if r.Name != name {
				return nil, &PeerError{Peer: "ally", Status: http.StatusNotFound, Code: "not_found", Msg: "no such blob"}
			}
			return io.NopCloser(bytes.NewReader(body)), nil
		}}
		if err := rs.restoreOwn(ctx, dst, federation.BlobRef{Site: sid, Name: name, Size: max(listed, 0)}); err != nil {
			t.Fatalf("restoreOwn: %v", err)
		}
		rc, err := dst.Get(ctx, name, 0, -1)
		if err != nil {
			if pr.Refused != 1 {
				t.Fatalf("nothing written and nothing refused: %+v", pr)
			}
			return
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		envLen, err := manifest.EnvelopeLen(got)
		if err != nil {
			t.Fatalf("written: %v", err)
		}
		wm, err := manifest.Open(got[:envLen], keys)
		if err != nil || wm.Version != m.Version || int64(len(got)) != int64(envLen)+inlineHeld(wm, sid) || !bytes.Equal(got, body) {
			t.Fatalf("written %d bytes of a %d-byte body: version %v, %v", len(got), len(body), wm, err)
		}
	})
}
