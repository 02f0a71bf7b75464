package vault

import (
	"bytes"
	"io"
	"testing"

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
