package vault

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/site"
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

// TestRestoredIndexOpenedWithSomeSitesAway: a restored index opened while
// only a site that lagged answers (it missed the commits since the
// backup, as the index did) is not found behind at open, nor should it be:
// that site shows nothing newer. The sites that do hold the newer
// generations must not have them written over when they come back: they
// are read first, and the index is then found behind. On the code before,
// the first write of the generations put the index's lower ones over the
// sites', and nothing could tell the index was behind from then on.
func TestRestoredIndexOpenedWithSomeSitesAway(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	n.put("doc/0", content("doc", 100))
	if err := n.e.FlushGenerations(ctx); err != nil {
		t.Fatal(err)
	}
	indexPath := filepath.Join(n.root, "index.db")
	n.e.Close(ctx)
	n.ix.Close()
	backup, err := os.ReadFile(indexPath)
	if err != nil {
		t.Fatal(err)
	}
	n.open(indexPath)
	// est-1 misses the writes of the generations from now on.
	n.faults["est-1"].Set(fault.Config{Down: true})
	for i := range 3 {
		n.put(fmt.Sprintf("doc/%d", i+1), content("doc", 100))
	}
	if err := n.e.FlushGenerations(ctx); err != nil {
		t.Fatal(err)
	}
	high, _ := evidence.ReadGenerations(ctx, map[string]site.Site{"lux-1": n.faults["lux-1"]}, n.keys, "test")
	n.e.Close(ctx)
	n.ix.Close()

	// The index restored, and opened with only est-1 answering.
	if err := os.WriteFile(indexPath, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	for id, f := range n.faults {
		f.Set(fault.Config{Down: id != "est-1"})
	}
	n.open(indexPath)
	for _, f := range n.faults {
		f.Set(fault.Config{})
	}
	n.put("later", content("later", 100))
	if err := n.e.FlushGenerations(ctx); err != nil {
		t.Fatal(err)
	}
	now, _ := evidence.ReadGenerations(ctx, map[string]site.Site{"lux-1": n.faults["lux-1"]}, n.keys, "test")
	if now["registry"] < high["registry"] {
		t.Errorf("lux-1's generation of registry went from %d to %d: the restored index's were written over it", high["registry"], now["registry"])
	}
	if kind, why, err := n.ix.Stale(ctx); err != nil || kind != index.StaleBehind {
		t.Errorf("the restored index after the sites came back: stale %q %q, %v; want it behind the sites", kind, why, err)
	}
}
