package vault

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"syscall"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/fault"
)

// A write that meets full sites goes to others when the policy allows; when
// it cannot, it fails with a *SiteFullError naming every full site it met,
// so that the front ends can say which site to look at.
func TestPutOnFullSites(t *testing.T) {
	full := func(n *testNode, ids ...string) {
		for _, id := range ids {
			n.faults[id].Set(fault.Config{PutErr: fmt.Errorf("dir site: put x: %w: %w", site.ErrFull, syscall.ENOSPC)})
		}
	}
	wantFull := func(t *testing.T, err error, sites ...string) {
		t.Helper()
		if !errors.Is(err, site.ErrFull) {
			t.Fatalf("err %v, want one wrapping site.ErrFull", err)
		}
		sfe, ok := errors.AsType[*SiteFullError](err)
		if !ok {
			t.Fatalf("err %v is not a *SiteFullError", err)
		}
		if !slices.Equal(sfe.Sites, sites) {
			t.Errorf("full sites %q, want %q", sfe.Sites, sites)
		}
	}
	t.Run("one full site is avoided", func(t *testing.T) {
		n := newTestNode(t)
		full(n, "lux-1")
		n.put("small", content("small", 100))
		n.put("large", content("large", 5*testStripe))
		for _, key := range []string{"small", "large"} {
			locs, err := n.e.Locate(n.t.Context(), "registry", key, manifest.ID{})
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range locs {
				if l.Site == "lux-1" {
					t.Errorf("%s: shard %d on the full site", key, l.Shard)
				}
			}
		}
	})
	t.Run("no room without the full sites", func(t *testing.T) {
		n := newTestNode(t)
		full(n, "lux-1", "lux-2")
		for _, size := range []int{100, 5 * testStripe} {
			data := content("x", size)
			_, err := n.e.Put(t.Context(), "registry", "x", bytes.NewReader(data), PutOptions{Size: int64(size)})
			wantFull(t, err, "lux-1", "lux-2")
			if !errors.Is(err, placement.ErrInfeasible) {
				t.Errorf("size %d: err %v does not say the policy could not be kept", size, err)
			}
		}
		_, err := n.e.Delete(t.Context(), "registry", "x", DeleteOptions{})
		wantFull(t, err, "lux-1", "lux-2")
	})
	t.Run("a stream cannot go elsewhere", func(t *testing.T) {
		n := newTestNode(t)
		full(n, "lux-1")
		data := content("stream", 5*testStripe)
		// Not seekable: the engine cannot read it again for other sites.
		_, err := n.e.Put(t.Context(), "registry", "stream", io.MultiReader(bytes.NewReader(data)), PutOptions{Size: -1})
		if err == nil {
			t.Skip("placement put no shard on lux-1 this time")
		}
		wantFull(t, err, "lux-1")
	})
}
