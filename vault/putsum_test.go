package vault

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/manifest"
)

// TestPutWritesTheStreamingSums: the put sums its shard blocks in place
// (erasure.Checksum.SumShards, the header written into the stripe buffer
// before each block and taken out again) and still writes, byte for byte,
// what it wrote when it summed each shard with the streaming Sum: on each
// site, inline in a manifest copy or in a shard blob, every stripe's block
// is the shard followed by Sum of that shard under its identity, and the
// blob holds nothing else. Objects inline (one stripe or less) and
// streamed, of known and unknown size, a multipart object (parts 1 and 2:
// the part number is in the identity), under both algorithms; each reads
// back whole and by range. So objects written before the change (Sum) and
// after are in one format, and each reads as the other. A header left in
// a shard's tail, or a checksum over other bytes or another identity,
// fails it.
func TestPutWritesTheStreamingSums(t *testing.T) {
	for _, sum := range []erasure.Checksum{erasure.XXH3, erasure.BLAKE3} {
		t.Run(sum.String(), func(t *testing.T) {
			n := newTestNode(t)
			if err := n.e.SetBlockChecksum(sum); err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			objects := map[string][]byte{}
			for _, size := range sizes {
				for _, known := range []bool{true, false} {
					key := fmt.Sprintf("o/%d/%v", size, known)
					data := content(key, size)
					o := PutOptions{Size: -1}
					if known {
						o.Size = int64(size)
					}
					if _, err := n.e.Put(ctx, "registry", key, io.MultiReader(bytes.NewReader(data)), o); err != nil {
						t.Fatal(err)
					}
					objects[key] = data
				}
			}
			up, err := n.e.CreateUpload(ctx, "registry", "mp", PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var mp []byte
			var done []CompletePart
			for i, size := range []int{MinPartSize + 3, 2*testStripe + 5} {
				data := content(fmt.Sprintf("part-%d", i+1), size)
				p, err := n.e.PutPart(ctx, "registry", "mp", up.ID, i+1, bytes.NewReader(data), int64(len(data)), nil)
				if err != nil {
					t.Fatal(err)
				}
				mp, done = append(mp, data...), append(done, CompletePart{i + 1, p.ETag})
			}
			if _, err := n.e.CompleteUpload(ctx, "registry", "mp", up.ID, done); err != nil {
				t.Fatal(err)
			}
			objects["mp"] = mp

			for key, want := range objects {
				checkStreamingSums(t, n, key, sum)
				if got := n.mustRead(key); !bytes.Equal(got, want) {
					t.Fatalf("%s: read back %d bytes that differ", key, len(got))
				}
				if len(want) > 2 {
					off, l := len(want)/3, len(want)/2
					got, _, err := n.read(key, GetOptions{Offset: int64(off), Length: int64(l)})
					if err != nil || !bytes.Equal(got, want[off:off+l]) {
						t.Fatalf("%s: ranged read %d+%d: %v", key, off, l, err)
					}
				}
			}
		})
	}
}

// checkStreamingSums fails t unless every part of key's version in force
// was written with sum and its blocks on every site, inline in a manifest
// copy or in a shard blob, are the shards followed by the streaming Sum
// of each under its identity, and nothing else.
func checkStreamingSums(t *testing.T, n *testNode, key string, sum erasure.Checksum) {
	t.Helper()
	ctx := t.Context()
	m, _, err := n.e.resolve(ctx, "registry", key, manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Parts {
		if p.BlockSum != sum {
			t.Fatalf("%s part %d written with %v, want %v", key, p.Number, p.BlockSum, sum)
		}
		if inline := m.Size <= testStripe; p.Inline != inline {
			t.Fatalf("%s: part inline %v, want %v: this test no longer covers both ways of writing", key, p.Inline, inline)
		}
		g := partGeometry(m, p)
		for i, sid := range p.Sites {
			st, _ := n.e.site(sid)
			var rc io.ReadCloser
			if p.Inline {
				rc, err = inlineReader(ctx, st.Store, manifest.BlobName(m.Version), i, p, g)
			} else {
				rc, err = st.Store.Get(ctx, manifest.ShardBlobName(p.Blob, i), 0, -1)
			}
			if err != nil {
				t.Fatal(err)
			}
			stored, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			var old []byte // what a put that summed with Sum wrote
			for j := range g.stripes() {
				if len(old)+g.shardSize(j) > len(stored) {
					t.Fatalf("%s part %d shard %d: %d bytes stored, stripe %d's block does not fit", key, p.Number, i, len(stored), j)
				}
				shard := stored[len(old) : len(old)+g.shardSize(j)]
				var cs [erasure.MaxSumSize]byte
				old = append(append(old, shard...), sum.Sum(cs[:], blockID(p, j, i), shard)...)
			}
			if p.Inline {
				stored = stored[:min(len(stored), len(old))] // the site's other shards follow
			}
			if !bytes.Equal(stored, old) {
				t.Fatalf("%s part %d shard %d: the blocks stored (%d bytes) are not the shards followed by Sum's checksums (%d bytes)", key, p.Number, i, len(stored), len(old))
			}
		}
	}
}

// TestRepairWritesTheStreamingSums: a repair of an inline part (Relocate
// rewrites every manifest copy with all of the part's blocks, rebuilt by
// rebuildInline) sums the blocks in place and writes, byte for byte, what
// the put writes: each shard followed by the streaming Sum of it under its
// identity. A data shard and a parity shard are marked bad, so that the
// erasure code rebuilds both into their buffers; the engine writes new
// blocks with the other algorithm meanwhile, and the part keeps its own.
func TestRepairWritesTheStreamingSums(t *testing.T) {
	for _, sum := range []erasure.Checksum{erasure.XXH3, erasure.BLAKE3} {
		t.Run(sum.String(), func(t *testing.T) {
			n := newTestNode(t)
			ctx := t.Context()
			if err := n.e.SetBlockChecksum(sum); err != nil {
				t.Fatal(err)
			}
			objects := map[string][]byte{}
			for _, size := range []int{1, 100, testStripe - 1, testStripe} {
				key := fmt.Sprintf("o/%d", size)
				objects[key] = content(key, size)
				n.put(key, objects[key])
			}
			other := erasure.XXH3
			if sum == other {
				other = erasure.BLAKE3
			}
			if err := n.e.SetBlockChecksum(other); err != nil {
				t.Fatal(err)
			}
			for key, want := range objects {
				m, _, err := n.e.resolve(ctx, "registry", key, manifest.ID{})
				if err != nil {
					t.Fatal(err)
				}
				bad := make([][]bool, len(m.Parts))
				for pi, p := range m.Parts {
					if !p.Inline {
						t.Fatalf("%s part %d is not inline: this test no longer covers inline repairs", key, p.Number)
					}
					bad[pi] = make([]bool, len(p.Sites))
					bad[pi][0], bad[pi][len(p.Sites)-1] = true, true
				}
				if _, err := n.e.Relocate(ctx, m, Relocation{Bad: bad}); err != nil {
					t.Fatal(err)
				}
				after, _, err := n.e.resolve(ctx, "registry", key, manifest.ID{})
				if err != nil {
					t.Fatal(err)
				}
				if after.Revision != m.Revision+1 {
					t.Fatalf("%s: revision %d after the repair, want %d", key, after.Revision, m.Revision+1)
				}
				checkStreamingSums(t, n, key, sum)
				if got := n.mustRead(key); !bytes.Equal(got, want) {
					t.Fatalf("%s: read back %d bytes that differ", key, len(got))
				}
			}
		})
	}
}
