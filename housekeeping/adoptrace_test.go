package housekeeping

import (
	"errors"
	"testing"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// TestAdoptionUnderTheVersionLock: a version on the sites that the index
// does not hold (the copies of a completion whose commit failed, say) is
// adopted, and while the adoption reads its copies the version is
// committed (its upload completed again), then changed: a legal hold set,
// or the version deleted. Before, the adoption wrote the revision it had
// read into the index afterwards, outside the version's lock: the hold
// was undone in the index, and the deleted version came back listed while
// its deletion record had collection remove its blobs. Now the adoption
// checks under the lock that the index still does not hold the version
// and that no deletion of it was recorded since it read the records, and
// keeps it otherwise.
func TestAdoptionUnderTheVersionLock(t *testing.T) {
	for _, c := range changesMeanwhile {
		t.Run(c.name, func(t *testing.T) {
			n := newTestNode(t)
			ctx := t.Context()
			id := n.put("doc", content("doc", 5*testStripe)).VersionID
			v, err := n.ix.Get(ctx, "registry", "doc", id)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.ix.Delete(ctx, "registry", "doc", id); err != nil {
				t.Fatal(err)
			}
			testHookAdopting = func(got manifest.ID) {
				if got != id {
					return
				}
				// Committed (the upload completed again), then changed.
				if err := n.ix.Put(ctx, v); err != nil {
					t.Error(err)
				}
				if err := c.change(n, id); err != nil {
					t.Error(err)
				}
			}
			t.Cleanup(func() { testHookAdopting = nil })
			rep, err := n.k.Adopt(ctx, AdoptOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.AdoptedCount != 0 || rep.KeptCount != 1 {
				t.Errorf("adopted %d %q, kept %d %q; want the version kept", rep.AdoptedCount, rep.Adopted, rep.KeptCount, rep.Kept)
			}
			c.check(n, id)
		})
	}
}

// changesMeanwhile are changes of version id of "doc" that a test makes
// while a job that read the version earlier is about to write it to the
// index (adoption, an index rebuild): a legal hold set, and a delete. check
// says whether the index kept the change.
var changesMeanwhile = []struct {
	name   string
	change func(n *testNode, id manifest.ID) error
	check  func(n *testNode, id manifest.ID)
}{
	{"held", func(n *testNode, id manifest.ID) error {
		_, err := n.e.SetLegalHold(n.t.Context(), "registry", "doc", id, true)
		return err
	}, func(n *testNode, id manifest.ID) {
		st, err := n.e.Stat(n.t.Context(), "registry", "doc", id)
		if err != nil || st.Lock == nil || !st.Lock.LegalHold {
			n.t.Errorf("the version afterwards: lock %+v, %v; want the legal hold set meanwhile", st.Lock, err)
		}
	}},
	{"deleted", func(n *testNode, id manifest.ID) error {
		_, err := n.e.Delete(n.t.Context(), "registry", "doc", vault.DeleteOptions{VersionID: id})
		return err
	}, func(n *testNode, id manifest.ID) {
		if _, err := n.ix.Get(n.t.Context(), "registry", "doc", id); !errors.Is(err, index.ErrNotFound) {
			n.t.Errorf("the version deleted meanwhile, in the index afterwards: %v, want %v", err, index.ErrNotFound)
		}
	}},
}
