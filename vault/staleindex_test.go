package vault

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/manifest"
)

// TestStaleIndexKeepsTheSitesLock: the index is a cache, and one restored
// from a backup is older than the sites (invariant 10: stale indexes and
// restored backups never turn into data loss). A retention set after the
// backup is on every manifest copy but not in the restored index. Before,
// a lock change on that index wrote the index's manifest, one revision up,
// over every copy (here revision 1 without the retention over revision 1
// with it), so the COMPLIANCE retention was gone from the sites and from
// the index, and a delete went through on the index's word. Lock changes,
// relabels and deletes now decide on the newest verified copy.
func TestStaleIndexKeepsTheSitesLock(t *testing.T) {
	for _, c := range []struct {
		name string
		size int
	}{{"inline", 3000}, {"streamed", 3*testStripe + 100}} {
		t.Run(c.name, func(t *testing.T) {
			n := newTestNode(t)
			ctx := t.Context()
			info := n.put("doc", content("doc", c.size))
			id := info.VersionID
			// The index's backup, taken before the retention.
			idx := filepath.Join(n.root, "index.db")
			n.ix.Close()
			n.ix = nil
			b, err := os.ReadFile(idx)
			if err != nil {
				t.Fatal(err)
			}
			backups := []string{filepath.Join(n.root, "backup1.db"), filepath.Join(n.root, "backup2.db")}
			for _, p := range backups {
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			n.open(idx)
			until := time.Now().Add(10 * 365 * 24 * time.Hour).Truncate(time.Second)
			if _, err := n.e.SetRetention(ctx, "registry", "doc", id, Compliance, until, false); err != nil {
				t.Fatal(err)
			}
			copies := func() []*manifest.Manifest {
				t.Helper()
				var out []*manifest.Manifest
				for _, d := range n.dirs {
					raw, err := os.ReadFile(filepath.Join(d, filepath.FromSlash(manifest.BlobName(id))))
					if errors.Is(err, os.ErrNotExist) {
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					l, err := manifest.EnvelopeLen(raw)
					if err != nil {
						t.Fatal(err)
					}
					m, err := n.e.OpenEnvelope(raw[:l])
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, m)
				}
				if len(out) == 0 {
					t.Fatal("no manifest copy on any site")
				}
				return out
			}

			// A legal hold set on the restored index keeps the retention.
			n.open(backups[0])
			if _, err := n.e.SetLegalHold(ctx, "registry", "doc", id, true); err != nil {
				t.Fatal(err)
			}
			for _, m := range copies() {
				if m.Lock == nil || m.Lock.Mode != Compliance || !m.Lock.Until.Equal(until) || !m.Lock.LegalHold || m.Revision != 2 {
					t.Fatalf("a copy after a legal hold set on an older index: revision %d, lock %+v; want revision 2, the COMPLIANCE retention and the hold", m.Revision, m.Lock)
				}
			}
			if _, err := n.e.SetLegalHold(ctx, "registry", "doc", id, false); err != nil {
				t.Fatal(err)
			}
			if _, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{VersionID: id}); !errors.Is(err, ErrLocked) {
				t.Fatalf("delete under COMPLIANCE retention: %v, want %v", err, ErrLocked)
			}

			// A delete on the restored index is refused, and so is a
			// retention the index's word would allow.
			n.open(backups[1])
			if _, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{VersionID: id}); !errors.Is(err, ErrLocked) {
				t.Fatalf("delete on an index older than the retention: %v, want %v", err, ErrLocked)
			}
			if _, err := n.e.SetRetention(ctx, "registry", "doc", id, Governance, time.Now().Add(time.Hour), false); !errors.Is(err, ErrLocked) {
				t.Fatalf("a shorter GOVERNANCE retention on an index older than the COMPLIANCE one: %v, want %v", err, ErrLocked)
			}
			for _, m := range copies() {
				if m.Lock == nil || m.Lock.Mode != Compliance || !m.Lock.Until.Equal(until) {
					t.Fatalf("a copy: revision %d, lock %+v; want the COMPLIANCE retention", m.Revision, m.Lock)
				}
			}
			if _, err := n.e.Stat(ctx, "registry", "doc", id); err != nil {
				t.Fatalf("the version after the refused delete: %v", err)
			}
		})
	}
}
