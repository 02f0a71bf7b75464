package vault

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/manifest"
)

// writtenByAnOlderNode turns key's latest version into what a node built
// before the compact encoding wrote: the same manifest sealed in format 1
// (JSON), in the index and in every manifest copy on the sites (inline
// shard blocks kept). It returns the format 1 envelope.
func writtenByAnOlderNode(t *testing.T, n *testNode, key string) []byte {
	t.Helper()
	ctx := t.Context()
	iv, err := n.ix.Latest(ctx, "registry", key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Open(iv.Envelope, n.keys)
	if err != nil {
		t.Fatal(err)
	}
	old, err := manifest.SealFormat(m, n.keys, manifest.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	name := manifest.BlobName(m.Version)
	for _, s := range n.sites {
		rc, err := s.Store.Get(ctx, name, 0, -1)
		if err != nil {
			continue
		}
		blob, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		el, err := manifest.EnvelopeLen(blob)
		if err != nil {
			t.Fatal(err)
		}
		body := append(bytes.Clone(old), blob[el:]...)
		if err := s.Store.Put(ctx, name, bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
	}
	iv.Envelope = old
	if err := n.ix.Put(ctx, iv); err != nil {
		t.Fatal(err)
	}
	return old
}

// TestFormatOneManifestsServeAndMigrateOnRewrite: versions whose manifests
// an older node wrote in format 1 (JSON) read as before, and move to
// format 2 when they are next rewritten (here a legal hold), in the index
// and on every site.
func TestFormatOneManifestsServeAndMigrateOnRewrite(t *testing.T) {
	for _, size := range []int{100, 3*testStripe + 17} {
		n := newTestNode(t)
		key := "old/object"
		data := content(key, size)
		n.put(key, data)
		old := writtenByAnOlderNode(t, n, key)
		if manifest.EnvelopeFormat(old) != manifest.FormatJSON {
			t.Fatalf("format %d", manifest.EnvelopeFormat(old))
		}
		if got := n.mustRead(key); !bytes.Equal(got, data) {
			t.Fatalf("size %d: a format 1 version reads back wrong", size)
		}
		iv, _ := n.ix.Latest(t.Context(), "registry", key)
		if !bytes.Equal(iv.Envelope, old) {
			t.Fatalf("size %d: a read rewrote the index entry", size)
		}
		if _, err := n.e.SetLegalHold(t.Context(), "registry", key, manifest.ID{}, true); err != nil {
			t.Fatal(err)
		}
		iv, _ = n.ix.Latest(t.Context(), "registry", key)
		if f := manifest.EnvelopeFormat(iv.Envelope); f != manifest.FormatCompact {
			t.Fatalf("size %d: after a rewrite the index holds format %d", size, f)
		}
		if len(iv.Envelope) >= len(old) {
			t.Fatalf("size %d: format 2 envelope of %d bytes, format 1 %d", size, len(iv.Envelope), len(old))
		}
		m, err := manifest.Open(iv.Envelope, n.keys)
		if err != nil {
			t.Fatal(err)
		}
		for _, sid := range manifestSites(m) {
			s, _ := n.e.Site(sid)
			env, err := ReadEnvelope(t.Context(), s.Store, manifest.BlobName(m.Version))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(env, iv.Envelope) {
				t.Fatalf("size %d: site %s holds format %d, not the rewritten envelope", size, sid, manifest.EnvelopeFormat(env))
			}
		}
		if got := n.mustRead(key); !bytes.Equal(got, data) {
			t.Fatalf("size %d: the migrated version reads back wrong", size)
		}
	}
}

// editIndexEnvelope edits, with bbolt and no embassy code, the index file
// wherever it holds the envelope of key's latest version, as someone with
// the node directory could, then reopens the node.
func editIndexEnvelope(t *testing.T, n *testNode, key string, edit func(env []byte) []byte) {
	t.Helper()
	iv, err := n.ix.Latest(t.Context(), "registry", key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(n.root, "index.db")
	n.e.Close(t.Context())
	n.ix.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Found while walking, written after (a bucket is not changed while
	// it is walked).
	var puts []func() error
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(b.Bucket(k))
			}
			if i := bytes.Index(v, iv.Envelope); i >= 0 {
				nv := append(append(bytes.Clone(v[:i]), edit(bytes.Clone(iv.Envelope))...), v[i+len(iv.Envelope):]...)
				k := bytes.Clone(k)
				puts = append(puts, func() error { return b.Put(k, nv) })
			}
			return nil
		})
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) }); err != nil {
			return err
		}
		for _, put := range puts {
			if err := put(); err != nil {
				return err
			}
		}
		return nil
	})
	edited := len(puts)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if edited != 1 {
		t.Fatalf("the envelope of %s is in %d places in the index file", key, edited)
	}
	n.open(path)
}

// TestHandEditedIndexEntryRefused: an index entry whose envelope was
// edited by hand (its sealed body, its signature, its key id, or another
// version's valid envelope put in its place) is refused on read, in
// either manifest format, and the background migration does not turn it
// into one that verifies.
func TestHandEditedIndexEntryRefused(t *testing.T) {
	flip := func(at func(env []byte) int) func([]byte) []byte {
		return func(env []byte) []byte { env[at(env)] ^= 0x01; return env }
	}
	edits := map[string]func([]byte) []byte{
		"body":      flip(func(env []byte) int { return manifest.HeaderSize + 20 }),
		"signature": flip(func(env []byte) int { return len(env) - 3 }),
		"key id":    flip(func(env []byte) int { return 6 }),
		"format":    func(env []byte) []byte { env[4] ^= manifest.FormatJSON ^ manifest.FormatCompact; return env },
	}
	for name, edit := range edits {
		for _, format := range []int{manifest.FormatJSON, manifest.FormatCompact} {
			t.Run(fmt.Sprintf("%s/format %d", name, format), func(t *testing.T) {
				n := newTestNode(t)
				n.put("victim", content("victim", 100))
				if format == manifest.FormatJSON {
					writtenByAnOlderNode(t, n, "victim")
				}
				editIndexEnvelope(t, n, "victim", edit)
				if _, _, err := n.read("victim", GetOptions{Length: -1}); !errors.Is(err, manifest.ErrCorrupt) {
					t.Fatalf("read of an edited entry: %v, want ErrCorrupt", err)
				}
				if _, err := n.ix.MigrateRecords(t.Context(), 10, n.e.Reseal, nil); err != nil {
					t.Fatal(err)
				}
				if _, _, err := n.read("victim", GetOptions{Length: -1}); !errors.Is(err, manifest.ErrCorrupt) {
					t.Fatalf("read after the migration: %v, want ErrCorrupt", err)
				}
			})
		}
	}
	t.Run("another version's envelope", func(t *testing.T) {
		n := newTestNode(t)
		n.put("victim", content("victim", 100))
		n.put("other", content("other", 100))
		iv, err := n.ix.Latest(t.Context(), "registry", "other")
		if err != nil {
			t.Fatal(err)
		}
		editIndexEnvelope(t, n, "victim", func([]byte) []byte { return iv.Envelope })
		if _, _, err := n.read("victim", GetOptions{Length: -1}); !errors.Is(err, manifest.ErrCorrupt) {
			t.Fatalf("read of a swapped entry: %v, want ErrCorrupt", err)
		}
	})
}

// TestBackgroundMigrationReseals: the index's migration seals format 1
// envelopes again in format 2 (same manifest, same revision), leaves the
// sites' copies as they are, and everything reads as before.
func TestBackgroundMigrationReseals(t *testing.T) {
	n := newTestNode(t)
	keys := []string{"a", "b", "c"}
	data := map[string][]byte{}
	olds := map[string][]byte{}
	for i, k := range keys {
		data[k] = content(k, 100+i*testStripe*2)
		n.put(k, data[k])
		if k != "c" {
			olds[k] = writtenByAnOlderNode(t, n, k)
		}
	}
	if !n.ix.NeedsMigration() {
		t.Fatal("format 1 envelopes in the index do not ask for migration")
	}
	st, err := n.ix.MigrateRecords(t.Context(), 1, n.e.Reseal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Resealed != 2 || n.ix.NeedsMigration() {
		t.Fatalf("migration: %+v, mark still set %v", st, n.ix.NeedsMigration())
	}
	for _, k := range keys {
		iv, err := n.ix.Latest(t.Context(), "registry", k)
		if err != nil {
			t.Fatal(err)
		}
		if f := manifest.EnvelopeFormat(iv.Envelope); f != manifest.FormatCompact {
			t.Fatalf("%s: format %d after the migration", k, f)
		}
		m, err := manifest.Open(iv.Envelope, n.keys)
		if err != nil {
			t.Fatal(err)
		}
		if old, ok := olds[k]; ok {
			om, err := manifest.Open(old, n.keys)
			if err != nil {
				t.Fatal(err)
			}
			om.Format = m.Format
			if !reflect.DeepEqual(om, m) {
				t.Fatalf("%s: the resealed manifest differs:\n%+v\n%+v", k, om, m)
			}
			s, _ := n.e.Site(m.Parts[0].Sites[0])
			env, err := ReadEnvelope(t.Context(), s.Store, manifest.BlobName(m.Version))
			if err != nil || !bytes.Equal(env, old) {
				t.Fatalf("%s: the site's copy changed: %v", k, err)
			}
		}
		if got := n.mustRead(k); !bytes.Equal(got, data[k]) {
			t.Fatalf("%s reads back wrong after the migration", k)
		}
	}
}
