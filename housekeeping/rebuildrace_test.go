package housekeeping

import (
	"errors"
	"testing"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// TestRebuildKeepsChangesCommittedMeanwhile: an index rebuild on a live
// node reads a version from the sites, and a change of that version
// commits before the rebuild indexes what it read. The rebuild must not
// undo it: a legal hold set meanwhile stays in the index, and a version
// deleted meanwhile does not come back. On the code before, the rebuild
// wrote its batch over the index as it had read it (Known gap 23).
func TestRebuildKeepsChangesCommittedMeanwhile(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(n *testNode, id manifest.ID) error
		check  func(n *testNode, id manifest.ID, st RebuildStats)
	}{
		{"held", func(n *testNode, id manifest.ID) error {
			_, err := n.e.SetLegalHold(n.t.Context(), "registry", "doc", id, true)
			return err
		}, func(n *testNode, id manifest.ID, st RebuildStats) {
			info, err := n.e.Stat(n.t.Context(), "registry", "doc", id)
			if err != nil || info.Lock == nil || !info.Lock.LegalHold {
				n.t.Errorf("the version after the rebuild: lock %+v, %v; want the legal hold set meanwhile", info.Lock, err)
			}
		}},
		{"deleted", func(n *testNode, id manifest.ID) error {
			_, err := n.e.Delete(n.t.Context(), "registry", "doc", vault.DeleteOptions{VersionID: id})
			return err
		}, func(n *testNode, id manifest.ID, st RebuildStats) {
			if _, err := n.ix.Get(n.t.Context(), "registry", "doc", id); !errors.Is(err, index.ErrNotFound) {
				n.t.Errorf("the version deleted meanwhile, in the index after the rebuild: %v, want %v", err, index.ErrNotFound)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newTestNode(t)
			ctx := t.Context()
			id := n.put("doc", content("doc", 5*testStripe)).VersionID
			changed := false
			testHookRebuilding = func(vs []index.Version) {
				for _, v := range vs {
					if v.ID == id && !changed {
						changed = true
						if err := c.change(n, id); err != nil {
							t.Error(err)
						}
					}
				}
			}
			t.Cleanup(func() { testHookRebuilding = nil })
			st, err := n.k.RebuildIndex(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !changed {
				t.Fatal("the rebuild did not read the version")
			}
			if st.Meanwhile != 1 {
				t.Errorf("rebuild: %d versions changed meanwhile, want 1: %+v", st.Meanwhile, st)
			}
			c.check(n, id, st)
		})
	}
}
