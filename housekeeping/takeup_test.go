package housekeeping

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site/fault"
	"github.com/embassy-dev/embassy/vault"
)

type scrubbing struct{}

// onScrubGet calls do once, at the first Get a scrub run with ctx (marked
// scrubbing) makes of a version's blob that keep accepts, and holds every
// other Get of a version's blob by that scrub until do has returned. Every removal fails with deleteErr
// (none when nil): a deleted version's copies and shards stay, as when
// the removal after a delete has not reached them yet.
func (n *testNode) onScrubGet(deleteErr error, keep func(name string) bool, do func()) {
	var once sync.Once
	done := make(chan struct{})
	for _, f := range n.faults {
		f.Set(fault.Config{DeleteErr: deleteErr, BeforeGet: func(ctx context.Context, name string) {
			if _, isCopy := manifest.ParseBlobName(name); ctx.Value(scrubbing{}) == nil || !isCopy && !strings.HasPrefix(name, manifest.ShardPrefix) {
				return
			}
			if keep(name) {
				once.Do(func() { do(); close(done) })
			}
			<-done
		}})
	}
}

var errRemovalLater = errors.New("removal not run yet")

// TestScrubLeavesADeletedVersionDeleted: scrub lists a page of versions and
// checks them some time after, and a version may be deleted in between
// (its index entry gone, its copies and shards removed in the background,
// after its deletion record reached the sites). Before, scrub wrote the
// index directly, outside the version's lock: a version deleted after it
// was listed read as an index entry that does not verify, for which a
// verified copy on the sites stood in, and a repairing scrub indexed it
// again; one deleted while scrub read its copies, in an index behind the
// sites, was indexed again as the newer revision taken up. Its deletion
// record then has collection remove its shards under the index's entry.
// And a version whose copies the deletion removed while scrub read them
// was reported LOST. Now scrub's index writes are made under the version's
// lock, only if the index still holds what scrub read (vault.TakeUp), and
// a version gone from the index is left alone.
func TestScrubLeavesADeletedVersionDeleted(t *testing.T) {
	ctx := context.WithValue(t.Context(), scrubbing{}, true)
	for _, c := range []struct {
		name string
		size int
	}{{"inline", 3000}, {"streamed", 3*testStripe + 100}} {
		t.Run("deleted after it was listed/"+c.name, func(t *testing.T) {
			n := newTestNode(t)
			// scrubConcurrency versions are checked at once: the last is
			// checked after one of them is done.
			var last vault.ObjectInfo
			for i := range scrubConcurrency + 1 {
				last = n.put(fmt.Sprintf("doc/%d", i), content("doc", c.size))
			}
			victim := manifest.BlobName(last.VersionID)
			n.onScrubGet(errRemovalLater, func(name string) bool {
				_, isCopy := manifest.ParseBlobName(name)
				return isCopy && name != victim
			}, func() {
				if _, err := n.e.Delete(t.Context(), "registry", last.Key, vault.DeleteOptions{VersionID: last.VersionID}); err != nil {
					t.Error(err)
				}
			})
			rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: -1})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.ix.Get(t.Context(), "registry", last.Key, last.VersionID); !errors.Is(err, index.ErrNotFound) {
				t.Fatalf("the version deleted after scrub listed it: %v in the index, want %v (scrub: %d damaged copies, errors %v)", err, index.ErrNotFound, rep.DamagedCopies, rep.Errors)
			}
			if rep.Lost != 0 || rep.AtRisk != 0 || rep.DamagedCopies != 0 || len(rep.Errors) != 0 {
				t.Fatalf("scrub: lost %v, at risk %d, damaged copies %d, errors %v; want nothing: the version was deleted", rep.LostVersions, rep.AtRisk, rep.DamagedCopies, rep.Errors)
			}
		})

		t.Run("deleted while its copies are read/"+c.name, func(t *testing.T) {
			n := newTestNode(t)
			info := n.put("doc", content("doc", c.size))
			id := info.VersionID
			// The index falls behind the sites: its backup is put back
			// after two lock changes (revision 2 on the sites, no lock).
			indexPath := filepath.Join(n.root, "index.db")
			n.e.FlushGenerations(t.Context())
			n.ix.Close()
			b, err := os.ReadFile(indexPath)
			if err != nil {
				t.Fatal(err)
			}
			n.open(indexPath)
			for _, on := range []bool{true, false} {
				if _, err := n.e.SetLegalHold(t.Context(), "registry", "doc", id, on); err != nil {
					t.Fatal(err)
				}
			}
			n.e.FlushGenerations(t.Context())
			n.ix.Close()
			if err := os.WriteFile(indexPath, b, 0o600); err != nil {
				t.Fatal(err)
			}
			n.open(indexPath)
			n.onScrubGet(errRemovalLater, func(name string) bool { return name == manifest.BlobName(id) }, func() {
				if _, err := n.e.Delete(t.Context(), "registry", "doc", vault.DeleteOptions{VersionID: id}); err != nil {
					t.Error(err)
				}
			})
			rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true, Grace: -1})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.ix.Get(t.Context(), "registry", "doc", id); !errors.Is(err, index.ErrNotFound) {
				t.Fatalf("the version deleted while scrub read its copies: %v in the index, want %v (scrub errors %v)", err, index.ErrNotFound, rep.Errors)
			}
			if len(rep.Errors) != 0 {
				t.Fatalf("scrub: errors %v; want none: the version was deleted", rep.Errors)
			}
		})
	}

	t.Run("removed while its copies are read", func(t *testing.T) {
		n := newTestNode(t)
		id := n.put("doc", content("doc", 3000)).VersionID
		name := manifest.BlobName(id)
		n.onScrubGet(nil, func(b string) bool { return b == name }, func() {
			if _, err := n.e.Delete(t.Context(), "registry", "doc", vault.DeleteOptions{VersionID: id}); err != nil {
				t.Error(err)
			}
			// Its removal done: every copy gone.
			for _, d := range n.dirs {
				if err := os.Remove(filepath.Join(d, filepath.FromSlash(name))); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Error(err)
				}
			}
		})
		rep, err := n.k.Scrub(ctx, ScrubOptions{Grace: -1})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Lost != 0 || rep.AtRisk != 0 {
			t.Fatalf("scrub of a version deleted while it was read: lost %v, at risk %d, errors %v; want nothing", rep.LostVersions, rep.AtRisk, rep.Errors)
		}
	})
}
