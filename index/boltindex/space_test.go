package boltindex

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

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
	if s.PageSize == 0 || s.Disk == 0 || s.File < s.HighWater || s.InUse() > s.HighWater || s.InUse() < alloc {
		t.Errorf("space %+v: want file ≥ high-water mark ≥ in use (%d) ≥ buckets' pages (%d)", s, s.InUse(), alloc)
	}
}

// TestRewriteUnchangedLeavesFile: writing versions the index already holds,
// byte for byte, as a rebuild of an index that agrees with the sites does
// (batches of 500 in id order), leaves their records, envelopes and the
// file's pages alone. It once appended every envelope again and freed the
// old ones' pages only as the last envelope on each went: the file grew by
// a third.
func TestRewriteUnchangedLeavesFile(t *testing.T) {
	ix := openTemp(t)
	ctx := t.Context()
	vs := smallVersions(3000)
	for i := 0; i < len(vs); i += 100 {
		if err := ix.PutMany(ctx, vs[i:i+100]); err != nil {
			t.Fatal(err)
		}
	}
	before, err := ix.Space()
	if err != nil {
		t.Fatal(err)
	}
	byID := slices.Clone(vs)
	slices.SortFunc(byID, func(a, b index.Version) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	for range 2 {
		for i := 0; i < len(byID); i += 500 {
			if err := ix.PutMany(ctx, byID[i:i+500]); err != nil {
				t.Fatal(err)
			}
		}
	}
	after, err := ix.Space()
	if err != nil {
		t.Fatal(err)
	}
	// A few pages for the transactions' own (the commit generation, the
	// freelist, the root).
	if grew := (after.HighWater - before.HighWater) / int64(after.PageSize); grew > 4 {
		t.Errorf("rewriting %d unchanged versions twice grew the high-water mark by %d pages (%d to %d bytes)", len(vs), grew, before.HighWater, after.HighWater)
	}
	if b, a := before.Buckets["envelopes"], after.Buckets["envelopes"]; a.Pages != b.Pages || a.Keys != len(vs) {
		t.Errorf("envelopes: %+v before, %+v after", b, a)
	}
	for _, v := range vs {
		got, err := ix.Get(ctx, v.Vault, v.Key, v.ID)
		if err != nil || !bytes.Equal(got.Envelope, v.Envelope) || got.ETag != v.ETag || got.Size != v.Size {
			t.Fatalf("%s after the rewrites: %+v, %v", v.Key, got, err)
		}
	}
	// What differs is written again: a damaged envelope, an "ids" or a
	// "latest" entry that lost its value.
	d := vs[3]
	err = ix.db.Update(func(tx *bolt.Tx) error {
		b, _ := readBuckets(tx, d.Vault)
		_, n, err := decodeRecord(versionKey(d.Key, d.Created, d.ID), b.versions.Get(versionKey(d.Key, d.Created, d.ID)), false)
		if err != nil {
			return err
		}
		if err := b.env.Put(envKey(n), []byte("damaged")); err != nil {
			return err
		}
		if err := b.ids.Delete(d.ID[:]); err != nil {
			return err
		}
		return b.latest.Delete([]byte(d.Key))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Lookup(ctx, d.ID); err == nil {
		t.Fatal("Lookup found a version whose ids entry was removed")
	}
	if err := ix.PutMany(ctx, []index.Version{d}); err != nil {
		t.Fatal(err)
	}
	if got, err := ix.Lookup(ctx, d.ID); err != nil || !bytes.Equal(got.Envelope, d.Envelope) {
		t.Fatalf("a damaged version rewritten: %+v, %v", got, err)
	}
	if got, err := ix.Latest(ctx, d.Vault, d.Key); err != nil || got.ID != d.ID {
		t.Fatalf("its latest: %+v, %v", got, err)
	}
	// A version that did change is written: its record and envelope.
	v := vs[7]
	v.Envelope = fakeEnvelope(manifest.FormatCompact, 400)
	v.Label = "EST RESTRICTED"
	if err := ix.PutMany(ctx, []index.Version{v}); err != nil {
		t.Fatal(err)
	}
	if got, err := ix.Get(ctx, v.Vault, v.Key, v.ID); err != nil || !bytes.Equal(got.Envelope, v.Envelope) || got.Label != v.Label {
		t.Fatalf("a changed version rewritten: %+v, %v", got, err)
	}
	if got, err := ix.Latest(ctx, v.Vault, v.Key); err != nil || got.Label != v.Label {
		t.Fatalf("its latest: %+v, %v", got, err)
	}
}
