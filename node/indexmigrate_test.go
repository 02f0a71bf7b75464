package node

import (
	"context"
	"encoding/binary"
	"io"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// fullRecord is a record of index format 3 (docs/storage-format.md,
// "Node-local files"), written here from the format's description.
func fullRecord(v index.Version, withEnvelope bool) []byte {
	b := []byte{0}
	if v.DeleteMarker {
		b[0] = 1
	}
	b = append(b, v.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(v.Created))
	b = binary.AppendUvarint(b, uint64(v.Size))
	b = binary.AppendUvarint(b, uint64(len(v.ETag)))
	b = append(b, v.ETag...)
	b = binary.AppendUvarint(b, uint64(len(v.Label)))
	b = append(b, v.Label...)
	if withEnvelope {
		b = binary.AppendUvarint(b, uint64(len(v.Envelope)))
		b = append(b, v.Envelope...)
	}
	return b
}

// TestIndexFormat3MigratesWithoutRebuild: a node whose index an older
// build wrote (index format 3, manifests in format 1) opens without
// rebuilding it, serves what it held, and its background migration
// rewrites the records compact and the envelopes in format 2.
func TestIndexFormat3MigratesWithoutRebuild(t *testing.T) {
	n := newNode(t)
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	want := fill(t, n)
	before := listing(t, n)
	ctx := vault.AsSystem(context.Background())
	// What the older build's index held, read before closing.
	page, err := n.Index.Versions(ctx, "registry", index.VersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var vs []index.Version
	for _, v := range page.Versions {
		full, err := n.Index.Get(ctx, "registry", v.Key, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		m, err := manifest.Open(full.Envelope, n.Keys())
		if err != nil {
			t.Fatal(err)
		}
		if full.Envelope, err = manifest.SealFormat(m, n.Keys(), manifest.FormatJSON); err != nil {
			t.Fatal(err)
		}
		full.IsLatest = v.IsLatest
		vs = append(vs, full)
	}
	dir := n.Dir
	n.Close()
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("meta")).Put([]byte("format"), []byte{3}); err != nil {
			return err
		}
		tx.Bucket([]byte("meta")).Delete([]byte("migrate"))
		vb := tx.Bucket([]byte("v/registry"))
		if err := vb.DeleteBucket([]byte("envelopes")); err != nil {
			return err
		}
		for _, v := range vs {
			vk := append(append([]byte(v.Key), 0), binary.BigEndian.AppendUint64(nil, ^uint64(v.Created))...)
			if err := vb.Bucket([]byte("versions")).Put(append(vk, v.ID[:]...), fullRecord(v, true)); err != nil {
				return err
			}
			if v.IsLatest {
				if err := vb.Bucket([]byte("latest")).Put([]byte(v.Key), fullRecord(v, false)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	n, err = Open(t.Context(), dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.LastRebuild.Versions != 0 {
		t.Fatalf("the node rebuilt its index on opening: %+v", n.LastRebuild)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "index.db.old-*")); len(aside) > 0 {
		t.Fatalf("the index was set aside: %v", aside)
	}
	if got := listing(t, n); !slices.Equal(got, before) {
		t.Fatalf("listing of the format 3 index:\n%v\nwant\n%v", got, before)
	}
	checkObjects(t, n, want)
	j, err := n.StartIndexMigration()
	if err != nil || j.ID == "" {
		t.Fatalf("migration not started: %+v, %v", j, err)
	}
	if j, err = n.WaitJob(t.Context(), j.ID); err != nil || j.State != JobDone {
		t.Fatalf("migration job: %+v, %v", j, err)
	}
	for _, v := range vs {
		got, err := n.Index.Get(ctx, "registry", v.Key, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		if manifest.EnvelopeFormat(got.Envelope) != manifest.FormatCompact || len(got.Envelope) >= len(v.Envelope) {
			t.Fatalf("%s: envelope of format %d, %d bytes (was %d)", v.Key, manifest.EnvelopeFormat(got.Envelope), len(got.Envelope), len(v.Envelope))
		}
	}
	if n.Index.NeedsMigration() {
		t.Fatal("the index still asks for migration")
	}
	if again, err := n.StartIndexMigration(); err != nil || again.ID != "" {
		t.Fatalf("a second migration started: %+v, %v", again, err)
	}
	if got := listing(t, n); !slices.Equal(got, before) {
		t.Fatalf("listing after the migration:\n%v\nwant\n%v", got, before)
	}
	checkObjects(t, n, want)
}
