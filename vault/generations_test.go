package vault

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/site/fault"
)

// TestReconfigureKeepsACurrentIndexCurrent: Reconfigure makes a trial
// engine over the same index, and New reads the sites' commit generations.
// It read the index's first: when the running engine committed and wrote
// its generations to a site before the trial's read of that site reached
// it (a site slower to answer than the running engine's second between a
// commit and its write of the generations), the site showed more than the
// index had shown, and the current index was marked stale (collection off
// until a rebuild). The index's are now read after the sites'.
func TestReconfigureKeepsACurrentIndexCurrent(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	n.put("doc/0", content("doc", 100))
	if err := n.e.FlushGenerations(ctx); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	for _, f := range n.faults {
		f.Set(fault.Config{BeforeGet: func(_ context.Context, name string) {
			if name != evidence.GenerationsBlob {
				return
			}
			once.Do(func() {
				// The running engine commits and writes its generations
				// before this read reaches the site.
				if _, err := n.e.Put(ctx, "registry", "doc/1", bytes.NewReader(content("doc", 100)), PutOptions{Size: 100}); err != nil {
					t.Error(err)
				}
				if err := n.e.FlushGenerations(ctx); err != nil {
					t.Error(err)
				}
			})
		}})
	}
	if err := n.e.Reconfigure(n.sites, n.e.Vaults()); err != nil {
		t.Fatal(err)
	}
	if _, why, err := n.ix.Stale(ctx); err != nil || why != "" {
		t.Fatalf("the index after a reconfiguration beside commits: stale %q, %v; want it current", why, err)
	}
}
