package vault

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site/sitetest"
)

// TestChangesPastAFIFOCopy: a FIFO (or another file that is not a blob) at
// a version's manifest copy's name on one site, put there by someone other
// than the node, which the directory driver neither reads, replaces nor
// removes. Before, every lock change, relabel, re-wrap and delete of that
// version failed ("may hold a copy and does not answer") until an operator
// removed it. Now it counts as a copy that holds no revision, named in the
// log: a COMPLIANCE retention is set on the other copies and the index
// (an inline version's blocks for the other copies rebuilt as for a damaged
// copy), a delete decides on them (refused by the retention), a version
// without a lock is deleted, and the FIFO stays where it is.
func TestChangesPastAFIFOCopy(t *testing.T) {
	for _, c := range []struct {
		name string
		size int
	}{{"inline", 3000}, {"streamed", 3*testStripe + 100}} {
		t.Run(c.name, func(t *testing.T) {
			n := newTestNode(t)
			ctx := t.Context()
			data := content("doc", c.size)
			id := n.put("doc", data).VersionID
			m, _, err := n.e.resolve(ctx, "registry", "doc", id)
			if err != nil {
				t.Fatal(err)
			}
			sites := manifestSites(m)
			fifo := func(sid string, id manifest.ID) string {
				p := filepath.Join(n.dirs[sid], filepath.FromSlash(manifest.BlobName(id)))
				sitetest.MakeFIFO(t, p)
				return p
			}
			stillFIFO := func(p string) {
				t.Helper()
				if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
					t.Errorf("the FIFO at %s: %v, %v; want it left in place", p, fi, err)
				}
			}
			p := fifo(sites[0], id)
			until := time.Now().Add(10 * 365 * 24 * time.Hour).Truncate(time.Second)
			if _, err := n.e.SetRetention(ctx, "registry", "doc", id, Compliance, until, false); err != nil {
				t.Fatalf("a retention with a FIFO at site %s's copy: %v", sites[0], err)
			}
			for _, sid := range sites[1:] {
				raw, err := os.ReadFile(filepath.Join(n.dirs[sid], filepath.FromSlash(manifest.BlobName(id))))
				if err != nil {
					t.Fatal(err)
				}
				l, err := manifest.EnvelopeLen(raw)
				if err != nil {
					t.Fatal(err)
				}
				cm, err := n.e.OpenEnvelope(raw[:l])
				if err != nil {
					t.Fatal(err)
				}
				if cm.Lock == nil || cm.Lock.Mode != Compliance {
					t.Errorf("site %s's copy: lock %+v; want the COMPLIANCE retention", sid, cm.Lock)
				}
			}
			if info, err := n.e.Stat(ctx, "registry", "doc", id); err != nil || info.Lock == nil || info.Lock.Mode != Compliance {
				t.Errorf("the index: %+v, %v; want the COMPLIANCE retention", info.Lock, err)
			}
			if _, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{VersionID: id}); !errors.Is(err, ErrLocked) {
				t.Errorf("delete of the retained version: %v, want %v", err, ErrLocked)
			}
			if got := n.mustRead("doc"); !bytes.Equal(got, data) {
				t.Error("the version does not read back")
			}
			stillFIFO(p)

			// A version without a lock is deleted.
			id2 := n.put("doc", content("doc2", c.size)).VersionID
			m2, _, err := n.e.resolve(ctx, "registry", "doc", id2)
			if err != nil {
				t.Fatal(err)
			}
			p2 := fifo(manifestSites(m2)[0], id2)
			if _, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{VersionID: id2}); err != nil {
				t.Errorf("delete with a FIFO at a copy's name: %v", err)
			}
			if _, err := n.e.Stat(ctx, "registry", "doc", id2); !errors.Is(err, ErrNoSuchVersion) {
				t.Errorf("the deleted version: %v, want %v", err, ErrNoSuchVersion)
			}
			stillFIFO(p2)
		})
	}
}
