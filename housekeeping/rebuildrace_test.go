package housekeeping

import (
	"testing"

	"github.com/embassy-dev/embassy/index"
)

// TestRebuildKeepsChangesCommittedMeanwhile: an index rebuild on a live
// node reads a version from the sites, and a change of that version
// commits before the rebuild indexes what it read. The rebuild must not
// undo it: a legal hold set meanwhile stays in the index, and a version
// deleted meanwhile does not come back. On the code before, the rebuild
// wrote its batch over the index as it had read it (Known gap 23).
func TestRebuildKeepsChangesCommittedMeanwhile(t *testing.T) {
	for _, c := range changesMeanwhile {
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
			c.check(n, id)
		})
	}
}
