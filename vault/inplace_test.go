package vault

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/internal/stacktest"
	"github.com/embassy-dev/embassy/manifest"
)

// inPlaceObject puts an object of 12 stripes (read in place) and returns
// it, its manifest and where its shards are.
func inPlaceObject(t *testing.T, n *testNode, key string) ([]byte, *manifest.Manifest, []ShardLocation) {
	t.Helper()
	want := content(key, 12*testStripe-100)
	n.put(key, want)
	locs, err := n.e.Locate(t.Context(), "registry", key, manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := n.e.resolve(t.Context(), "registry", key, manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	return want, m, locs
}

// readInPlace reads key whole, checking on the way, if still, that its
// first part reader still reads in place after the first stripe.
func readInPlace(t *testing.T, n *testNode, key string, still bool) ([]byte, []Problem) {
	t.Helper()
	r, err := n.e.Get(t.Context(), "registry", key, GetOptions{Length: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	first := make([]byte, 10)
	if _, err := io.ReadFull(r, first); err != nil {
		t.Fatal(err)
	}
	if still && (r.pr == nil || r.pr.ip == nil) {
		t.Fatal("a read of 12 stripes does not read in place")
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return append(first, rest...), r.Problems()
}

// TestInPlace: a large read in place returns the object, and one that
// meets a damaged block (a corrupt block, a block replaced with a matching
// checksum, a shard blob cut short), in its first stripe or part way,
// goes on from that stripe as a read of block buffers: the same bytes,
// the damage reported once, where it is. It fails when a damaged stripe's
// bytes come from the in-place read, or its damage is reported twice or
// not at all.
func TestInPlace(t *testing.T) {
	// Both block checksum algorithms: parts written before XXH3 (BLAKE3)
	// and since.
	for _, sum := range []erasure.Checksum{erasure.BLAKE3, erasure.XXH3} {
		t.Run(sum.String(), func(t *testing.T) {
			n := newTestNode(t)
			if err := n.e.SetBlockChecksum(sum); err != nil {
				t.Fatal(err)
			}
			want, _, _ := inPlaceObject(t, n, "clean")
			got, problems := readInPlace(t, n, "clean", true)
			if !bytes.Equal(got, want) || len(problems) != 0 {
				t.Fatalf("clean read: equal %v, problems %v", bytes.Equal(got, want), problems)
			}
			const shard = 1
			for _, stripe := range []int64{0, 6} {
				for _, c := range []struct {
					name   string
					damage func(b []byte, m *manifest.Manifest, g geometry) []byte
				}{
					{"corrupt", func(b []byte, m *manifest.Manifest, g geometry) []byte {
						b[stripe*g.blockStride()+5] ^= 0x40
						return b
					}},
					{"forged", func(b []byte, m *manifest.Manifest, g geometry) []byte {
						at := stripe * g.blockStride()
						ss := int64(g.shardSize(stripe))
						b[at+7] ^= 0x40
						forgeSum(g.sum, b[at:at+ss], m.Parts[0].Blob, 1, uint64(stripe), shard, b[at+ss:at+ss+int64(g.sum.Size())])
						return b
					}},
					// The stored checksum damaged, the data intact: only the
					// checksum's verification finds it.
					{"checksum", func(b []byte, m *manifest.Manifest, g geometry) []byte {
						b[stripe*g.blockStride()+int64(g.shardSize(stripe))+3] ^= 0x40
						return b
					}},
					{"cut", func(b []byte, m *manifest.Manifest, g geometry) []byte {
						return b[:stripe*g.blockStride()+10]
					}},
				} {
					name := fmt.Sprintf("%s-%d", c.name, stripe)
					t.Run(name, func(t *testing.T) {
						want, m, locs := inPlaceObject(t, n, name)
						if m.Parts[0].BlockSum != sum {
							t.Fatalf("part written with %v, want %v", m.Parts[0].BlockSum, sum)
						}
						g := partGeometry(m, m.Parts[0])
						l := locs[shard]
						if l.Parity || l.Inline {
							t.Fatalf("location %+v: want a data shard's blob", l)
						}
						p := filepath.Join(n.dirs[l.Site], filepath.FromSlash(l.Blob))
						b, err := os.ReadFile(p)
						if err != nil {
							t.Fatal(err)
						}
						if err := os.WriteFile(p, c.damage(b, m, g), 0o600); err != nil {
							t.Fatal(err)
						}
						got, problems := readInPlace(t, n, name, stripe > 0)
						if !bytes.Equal(got, want) {
							t.Fatal("wrong bytes")
						}
						if len(problems) != 1 {
							t.Fatalf("%d problems reported, want 1: %v", len(problems), problems)
						}
						if pr := problems[0]; pr.Stripe != stripe || pr.Shard != shard {
							t.Fatalf("problem at stripe %d shard %d, want %d, %d: %v", pr.Stripe, pr.Shard, stripe, shard, pr)
						}
					})
				}
			}
		})
	}
}

// TestInPlaceClosedPartWay: a reader closed, or whose context ends,
// part way through a read in place leaves none of its goroutines
// behind once closed.
func TestInPlaceClosedPartWay(t *testing.T) {
	n := newTestNode(t)
	inPlaceObject(t, n, "big")
	for i := range 20 {
		ctx, cancel := context.WithCancel(t.Context())
		r, err := n.e.Get(ctx, "registry", "big", GetOptions{Length: -1})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3*testStripe+1)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		if r.pr.ip == nil {
			t.Fatal("not reading in place")
		}
		if i%2 == 0 {
			cancel()
			if _, err := io.ReadAll(r); err == nil {
				t.Fatal("a read whose context ended went on")
			}
		}
		r.Close()
		cancel()
		for _, f := range []string{"(*inPlace).stream(", "(*inPlace).opener(", "(*partReader).start.func1("} {
			if stacktest.Has(f, f) {
				t.Fatalf("a goroutine left in %s after Close", f)
			}
		}
	}
}
