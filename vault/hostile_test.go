package vault

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
)

// TestLockOnDamagedCopy: a lock change (legal hold, retention) rewrites
// every manifest copy, keeping an inline object's blocks after the
// envelope. A site's copy cut inside its envelope, or with a garbled
// header, made the rewrite slice past the copy's end in a goroutine: the
// node stopped. Now the change of an inline version fails with an error
// naming the site and the damage, and goes through once the copy is
// repaired; a version without inline blocks (whose copies are the envelope
// alone) writes the new envelope over the damaged copy.
func TestLockOnDamagedCopy(t *testing.T) {
	damage := []struct {
		name   string
		damage func(b []byte, envLen int) []byte
	}{
		{"cut in the header", func(b []byte, _ int) []byte { return b[:5] }},
		{"empty", func(b []byte, _ int) []byte { return b[:0] }},
		{"cut in the envelope", func(b []byte, envLen int) []byte { return b[:envLen-10] }},
		{"length garbled", func(b []byte, _ int) []byte { b[14] ^= 0x40; return b }},
		{"magic garbled", func(b []byte, _ int) []byte { b[0] = 'X'; return b }},
	}
	for _, inline := range []bool{true, false} {
		for _, c := range damage {
			name := c.name
			if inline {
				name = "inline/" + name
			}
			t.Run(name, func(t *testing.T) {
				n := newTestNode(t)
				ctx := t.Context()
				size := 2000
				if !inline {
					size = 3 * testStripe
				}
				key := "lock/" + name
				want := content(key, size)
				info := n.put(key, want)
				m, _, err := n.e.resolve(ctx, "registry", key, manifest.ID{})
				if err != nil {
					t.Fatal(err)
				}
				if m.Parts[0].Inline != inline {
					t.Fatalf("part inline %v, want %v", m.Parts[0].Inline, inline)
				}
				sid := manifestSites(m)[1]
				p := filepath.Join(n.dirs[sid], filepath.FromSlash(manifest.BlobName(m.Version)))
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				envLen, err := manifest.EnvelopeLen(b)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, c.damage(bytes.Clone(b), envLen), 0o600); err != nil {
					t.Fatal(err)
				}
				_, err = n.e.SetLegalHold(ctx, "registry", key, info.VersionID, true)
				if inline {
					if err == nil {
						t.Fatal("lock change over a damaged inline copy succeeded")
					}
					if !errors.Is(err, manifest.ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(sid)) {
						t.Fatalf("lock change: %v, want a corrupt copy at site %s", err, sid)
					}
					// Repaired (as a scrub's Relocate does), the change
					// goes through.
					if err := os.WriteFile(p, b, 0o600); err != nil {
						t.Fatal(err)
					}
					if _, err := n.e.SetLegalHold(ctx, "registry", key, info.VersionID, true); err != nil {
						t.Fatalf("lock change after repair: %v", err)
					}
				} else if err != nil {
					t.Fatalf("lock change of a version without inline blocks: %v", err)
				}
				st, err := n.e.Stat(ctx, "registry", key, info.VersionID)
				if err != nil || st.Lock == nil || !st.Lock.LegalHold {
					t.Fatalf("stat after the change: %+v, %v", st.Lock, err)
				}
				if got := n.mustRead(key); !bytes.Equal(got, want) {
					t.Fatal("object differs after the lock change")
				}
				// Every copy now holds the new envelope.
				for _, s := range manifestSites(m) {
					st, _ := n.e.Site(s)
					env, err := ReadEnvelope(ctx, st.Store, manifest.BlobName(m.Version))
					if err != nil {
						t.Fatalf("site %s: %v", s, err)
					}
					cm, err := manifest.Open(env, n.keys)
					if err != nil {
						t.Fatalf("site %s: %v", s, err)
					}
					if cm.Lock == nil || !cm.Lock.LegalHold {
						t.Errorf("site %s: copy's lock %+v", s, cm.Lock)
					}
				}
			})
		}
	}
}
