package housekeeping

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// TestUnsignedSiteCopyRefused: a manifest copy on a site whose signature
// does not verify (cut off, or replaced by zeros; the body left intact) is
// refused: a scrub counts it damaged and a repairing scrub rewrites it from
// the index's verified envelope, and an index rebuild does not take it.
func TestUnsignedSiteCopyRefused(t *testing.T) {
	for name, forge := range map[string]func(env []byte) []byte{
		"signature zeroed":  func(env []byte) []byte { clear(env[len(env)-64:]); return env },
		"signature flipped": func(env []byte) []byte { env[len(env)-1] ^= 1; return env },
	} {
		t.Run(name, func(t *testing.T) {
			n := newTestNode(t)
			ctx := t.Context()
			data := []byte("a small object")
			n.put("k", data)
			iv, err := n.ix.Latest(ctx, "registry", "k")
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Open(iv.Envelope, n.e.Keys())
			if err != nil {
				t.Fatal(err)
			}
			sid := m.Parts[0].Sites[0]
			p := filepath.Join(n.dirs[sid], filepath.FromSlash(manifest.BlobName(m.Version)))
			blob, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			el, err := manifest.EnvelopeLen(blob)
			if err != nil {
				t.Fatal(err)
			}
			forged := append(forge(bytes.Clone(blob[:el])), blob[el:]...)
			if err := os.WriteFile(p, forged, 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := n.k.Scrub(ctx, ScrubOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.DamagedCopies != 1 {
				t.Fatalf("scrub: %+v, want one damaged copy", rep)
			}
			// A rebuild from the sites does not take the forged copy:
			// the version comes back from the copies that verify.
			n.ix.Reset(ctx)
			st, err := n.k.RebuildIndex(ctx, nil)
			if err != nil || st.Corrupt != 1 || st.Versions != 1 {
				t.Fatalf("rebuild: %+v, %v", st, err)
			}
			if rep, err = n.k.Scrub(ctx, ScrubOptions{Repair: true}); err != nil || rep.DamagedCopies != 1 || rep.Repaired != 1 {
				t.Fatalf("repairing scrub: %+v, %v", rep, err)
			}
			// Every copy now verifies and is the index's envelope (a
			// repair of an inline version's copy places its shard again,
			// in a new revision).
			iv, err = n.ix.Latest(ctx, "registry", "k")
			if err != nil {
				t.Fatal(err)
			}
			m, err = manifest.Open(iv.Envelope, n.e.Keys())
			if err != nil {
				t.Fatal(err)
			}
			for _, sid := range m.Parts[0].Sites {
				s, _ := n.e.Site(sid)
				env, err := vault.ReadEnvelope(ctx, s.Store, manifest.BlobName(m.Version))
				if err != nil || !bytes.Equal(env, iv.Envelope) {
					t.Fatalf("the copy on %s is not the index's envelope: %v", sid, err)
				}
			}
			if got := n.mustRead("k"); !bytes.Equal(got, data) {
				t.Fatal("the object reads back wrong")
			}
		})
	}
}
