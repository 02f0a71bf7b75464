package vault

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/embassy-dev/embassy/internal/stacktest"
	"github.com/embassy-dev/embassy/manifest"
)

// aheadObject puts an object of 12 stripes (decoded ahead) and returns
// it, its manifest and where its shards are.
func aheadObject(t *testing.T, n *testNode, key string) ([]byte, *manifest.Manifest, []ShardLocation) {
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

// readAhead reads key whole, checking on the way that its first part
// reader decodes ahead.
func readAhead(t *testing.T, n *testNode, key string) ([]byte, []Problem) {
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
	if r.pr == nil || r.pr.ahead == nil {
		t.Fatal("a read of 12 stripes does not decode ahead")
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return append(first, rest...), r.Problems()
}

// TestDecodeAhead: a large read decoded ahead returns the object, and one
// that meets a damaged block part way (a corrupt block, a block replaced
// with a matching checksum, a missing shard blob) goes on from that
// stripe as a read that does not decode ahead: the same bytes, the damage
// reported once, where it is.
func TestDecodeAhead(t *testing.T) {
	n := newTestNode(t)
	want, _, _ := aheadObject(t, n, "clean")
	got, problems := readAhead(t, n, "clean")
	if !bytes.Equal(got, want) || len(problems) != 0 {
		t.Fatalf("clean read: equal %v, problems %v", bytes.Equal(got, want), problems)
	}

	const stripe, shard = 6, 1
	for _, c := range []struct {
		name   string
		damage func(b []byte, m *manifest.Manifest, g geometry) []byte
		want   int // problems reported
	}{
		{"corrupt", func(b []byte, m *manifest.Manifest, g geometry) []byte {
			b[stripe*g.blockStride()+5] ^= 0x40
			return b
		}, 1},
		{"forged", func(b []byte, m *manifest.Manifest, g geometry) []byte {
			at := stripe * g.blockStride()
			ss := int64(g.shardSize(stripe))
			b[at+7] ^= 0x40
			forgeSum(g.sum, b[at:at+ss], m.Parts[0].Blob, 1, stripe, shard, b[at+ss:at+ss+int64(g.sum.Size())])
			return b
		}, 1},
		{"cut", func(b []byte, m *manifest.Manifest, g geometry) []byte {
			return b[:stripe*g.blockStride()+10]
		}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, m, locs := aheadObject(t, n, c.name)
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
			got, problems := readAhead(t, n, c.name)
			if !bytes.Equal(got, want) {
				t.Fatal("wrong bytes")
			}
			if len(problems) != c.want {
				t.Fatalf("%d problems reported, want %d: %v", len(problems), c.want, problems)
			}
			if pr := problems[0]; pr.Stripe != stripe || pr.Shard != shard {
				t.Fatalf("problem at stripe %d shard %d, want %d, %d: %v", pr.Stripe, pr.Shard, stripe, shard, pr)
			}
		})
	}
}

// TestDecodeAheadClosedPartWay: a reader closed, or whose context ends,
// part way through a read decoded ahead leaves none of its goroutines
// behind once closed.
func TestDecodeAheadClosedPartWay(t *testing.T) {
	n := newTestNode(t)
	aheadObject(t, n, "big")
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
		if r.pr.ahead == nil {
			t.Fatal("not decoding ahead")
		}
		if i%2 == 0 {
			cancel()
			if _, err := io.ReadAll(r); err == nil {
				t.Fatal("a read whose context ended went on")
			}
		}
		r.Close()
		cancel()
		for _, f := range []string{"(*stripeAhead).collect(", "(*stripeAhead).work(", "(*partReader).start.func1("} {
			if stacktest.Has(f, f) {
				t.Fatalf("a goroutine left in %s after Close", f)
			}
		}
	}
}
