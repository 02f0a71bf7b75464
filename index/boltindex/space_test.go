package boltindex

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// smallVersions are n versions of distinct keys with random ids, each with
// an envelope the size of a small object's (about 350 bytes).
func smallVersions(n int) []index.Version {
	vs := make([]index.Version, n)
	for i := range vs {
		var id manifest.ID
		rand.Read(id[:])
		vs[i] = index.Version{Vault: "bench", Key: fmt.Sprintf("o/%07d", i), ID: id, Created: int64(1_000_000 + i), Size: 4096,
			ETag: `"0123456789abcdef0123456789abcdef"`, Envelope: fakeEnvelope(manifest.FormatCompact, 345)}
	}
	return vs
}

// TestSpace: Space accounts for the file from bbolt's statistics: each
// bucket's entries, and the file's pages in use, free or past the
// high-water mark.
func TestSpace(t *testing.T) {
	ix := openTemp(t)
	vs := smallVersions(2000)
	for i := 0; i < len(vs); i += 250 {
		if err := ix.PutMany(t.Context(), vs[i:i+250]); err != nil {
			t.Fatal(err)
		}
	}
	s, err := ix.Space()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"latest", "versions", "ids", "envelopes"} {
		if got := s.Buckets[b]; got.Keys != len(vs) || got.Pages == 0 || got.Inuse == 0 || got.Inuse > got.Alloc {
			t.Errorf("bucket %s: %+v, want %d keys in pages", b, got, len(vs))
		}
	}
	if env := s.Buckets["envelopes"].Inuse; env < int64(len(vs))*350 {
		t.Errorf("envelopes in use: %d bytes, less than the %d of the envelopes", env, len(vs)*350)
	}
	var alloc int64
	for _, b := range s.Buckets {
		alloc += b.Alloc
	}
	if s.PageSize == 0 || s.File < s.HighWater || s.InUse() > s.HighWater || s.InUse() < alloc {
		t.Errorf("space %+v: want file ≥ high-water mark ≥ in use (%d) ≥ buckets' pages (%d)", s, s.InUse(), alloc)
	}
}
