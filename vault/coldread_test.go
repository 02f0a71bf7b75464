package vault

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// hintSite counts the Gets that carry site.WithColdRead's hint and those
// that do not.
type hintSite struct {
	site.Site
	cold, plain *atomic.Int64
}

func (s hintSite) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if site.ColdRead(ctx) {
		s.cold.Add(1)
	} else {
		s.plain.Add(1)
	}
	return s.Site.Get(ctx, name, off, length)
}

// TestRepairReadsCold: a repair reads the surviving shards with the
// cold-read hint (a dir site reads them with O_DIRECT); a GET does not.
func TestRepairReadsCold(t *testing.T) {
	n := newTestNode(t)
	var cold, plain atomic.Int64
	for i := range n.sites {
		n.sites[i].Store = hintSite{Site: n.sites[i].Store, cold: &cold, plain: &plain}
	}
	n.open(filepath.Join(n.root, "index.db"))
	ctx := t.Context()
	want := content("big", 40*testStripe+123)
	n.put("big", want)
	m, _, err := n.e.resolve(ctx, "registry", "big", manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Parts[0].Inline {
		t.Fatal("the object is inline: this test needs shard blobs")
	}
	plain.Store(0)
	if got := n.mustRead("big"); !bytes.Equal(got, want) || plain.Load() == 0 || cold.Load() != 0 {
		t.Fatalf("GET: %d plain and %d cold-hinted Gets (want some and none), bytes equal %v", plain.Load(), cold.Load(), bytes.Equal(got, want))
	}
	bad := make([][]bool, len(m.Parts))
	bad[0] = make([]bool, len(m.Parts[0].Sites))
	bad[0][0] = true
	plain.Store(0)
	if _, err := n.e.Relocate(ctx, m, Relocation{Bad: bad}); err != nil {
		t.Fatal(err)
	}
	if cold.Load() < int64(m.K) || plain.Load() != 0 {
		t.Fatalf("repair: %d cold-hinted and %d plain Gets, want at least %d and none", cold.Load(), plain.Load(), m.K)
	}
	if got := n.mustRead("big"); !bytes.Equal(got, want) {
		t.Fatal("read back after the repair: bytes differ")
	}
}
