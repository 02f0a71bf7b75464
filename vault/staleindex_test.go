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

// TestStaleIndexAfterAMove: a restored index names the sites the version
// was on at its backup, and a repair or a drain may have moved every copy
// off them since (here to est-3, lux-3 and fin-3, two shards each), before
// a COMPLIANCE retention was set. Before, the delete on that index read
// only the sites it names: none held a copy (or one held a copy the second
// move's clean-up left behind, of the first move's revision, without the
// retention), so it decided on the index's lock, or that copy's, and went
// through, and its deletion record would have had collection remove the
// retained copies. Now the sites a newer copy names are asked too, and
// every configured site when not every site the newest revision found
// names holds it. That includes a copy of the index's own revision left
// behind on one of its sites (its-own-left-behind): until the twentieth
// pass that copy was taken for the index being current, the others were
// not looked for, and the delete went through.
func TestStaleIndexAfterAMove(t *testing.T) {
	moved := []string{"est-3", "est-3", "lux-3", "lux-3", "fin-3", "fin-3"}
	for _, c := range []struct {
		name string
		size int
		// first, when set, is where a first move puts the shards; the
		// copy it leaves on est-1 stays after the second.
		first []string
		// own: the move leaves est-1's copy, of the index's own
		// revision, behind.
		own bool
	}{
		{"inline", 3000, nil, false},
		{"streamed", 3*testStripe + 100, nil, false},
		{"inline/left-behind", 3000, []string{"est-1", "est-1", "lux-1", "lux-1", "fin-3", "fin-3"}, false},
		{"streamed/left-behind", 3*testStripe + 100, []string{"est-1", "est-1", "lux-1", "lux-1", "fin-3", "fin-3"}, false},
		{"inline/its-own-left-behind", 3000, nil, true},
		{"streamed/its-own-left-behind", 3*testStripe + 100, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newTestNode(t, relocationSites...)
			ctx := t.Context()
			// Written to the six sites of the topology, none of those it
			// moves to.
			for _, d := range relocationSites {
				n.e.SetSiteDown(d.ID, time.Hour)
			}
			id := n.put("doc", content("doc", c.size)).VersionID
			for _, d := range relocationSites {
				n.e.SetSiteDown(d.ID, 0)
			}
			idx := filepath.Join(n.root, "index.db")
			n.ix.Close()
			n.ix = nil
			b, err := os.ReadFile(idx)
			if err != nil {
				t.Fatal(err)
			}
			backup := filepath.Join(n.root, "backup.db")
			if err := os.WriteFile(backup, b, 0o600); err != nil {
				t.Fatal(err)
			}
			n.open(idx)
			relocate := func(to []string) {
				t.Helper()
				m, _, err := n.e.resolve(ctx, "registry", "doc", id)
				if err != nil {
					t.Fatal(err)
				}
				var sites [][]string
				for range m.Parts {
					sites = append(sites, to)
				}
				if _, err := n.e.Relocate(ctx, m, Relocation{Sites: sites}); err != nil {
					t.Fatal(err)
				}
			}
			leftAt := filepath.Join(n.dirs["est-1"], filepath.FromSlash(manifest.BlobName(id)))
			var left []byte
			if c.first != nil {
				relocate(c.first)
			}
			if c.first != nil || c.own {
				if left, err = os.ReadFile(leftAt); err != nil {
					t.Fatal(err)
				}
			}
			relocate(moved)
			if c.first != nil || c.own {
				if _, err := os.Stat(leftAt); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("est-1's copy after the second move: %v; want it removed", err)
				}
				// Its clean-up failed there.
				if err := os.MkdirAll(filepath.Dir(leftAt), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(leftAt, left, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			until := time.Now().Add(10 * 365 * 24 * time.Hour).Truncate(time.Second)
			if _, err := n.e.SetRetention(ctx, "registry", "doc", id, Compliance, until, false); err != nil {
				t.Fatal(err)
			}
			retained := func() {
				t.Helper()
				for _, sid := range []string{"est-3", "lux-3", "fin-3"} {
					raw, err := os.ReadFile(filepath.Join(n.dirs[sid], filepath.FromSlash(manifest.BlobName(id))))
					if err != nil {
						t.Fatalf("site %s: %v", sid, err)
					}
					l, err := manifest.EnvelopeLen(raw)
					if err != nil {
						t.Fatal(err)
					}
					m, err := n.e.OpenEnvelope(raw[:l])
					if err != nil {
						t.Fatal(err)
					}
					if m.Lock == nil || m.Lock.Mode != Compliance || !m.Lock.Until.Equal(until) {
						t.Fatalf("site %s's copy: revision %d, lock %+v; want the COMPLIANCE retention", sid, m.Revision, m.Lock)
					}
				}
			}

			n.open(backup)
			if _, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{VersionID: id}); !errors.Is(err, ErrLocked) {
				t.Fatalf("delete on an index from before the move and the retention: %v, want %v", err, ErrLocked)
			}
			retained()
			if _, err := n.e.SetLegalHold(ctx, "registry", "doc", id, true); err != nil {
				t.Fatal(err)
			}
			retained()
			if _, err := n.e.Stat(ctx, "registry", "doc", id); err != nil {
				t.Fatalf("the version after the refused delete and the hold: %v", err)
			}
		})
	}
}
