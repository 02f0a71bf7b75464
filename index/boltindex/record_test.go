package boltindex

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// encodeFull writes the full encoding of index format 3, as nodes built
// before format 4 did.
func encodeFull(v index.Version, withEnvelope bool) []byte {
	var flags byte
	if v.DeleteMarker {
		flags |= flagDeleteMarker
	}
	b := append([]byte{flags}, v.ID[:]...)
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

// fakeEnvelope is enough of an envelope for the index, which only reads
// its format byte.
func fakeEnvelope(format byte, n int) []byte {
	return append([]byte{'E', 'M', 'B', 'M', format}, bytes.Repeat([]byte{0xee}, n)...)
}

func sampleVersions() []index.Version {
	return []index.Version{
		{Vault: "registry", Key: "a/1", ID: manifest.ID{1}, Created: 10, Size: 4096, ETag: `"0123456789abcdef0123456789abcdef"`, Envelope: fakeEnvelope(manifest.FormatJSON, 700)},
		{Vault: "registry", Key: "a/1", ID: manifest.ID{2}, Created: 20, DeleteMarker: true, Envelope: fakeEnvelope(manifest.FormatJSON, 300)},
		{Vault: "registry", Key: "a/2", ID: manifest.ID{3}, Created: -5, Size: 1 << 40, ETag: `"0123456789ABCDEF0123456789abcdef-17"`, Label: "EST RESTRICTED", Envelope: fakeEnvelope(manifest.FormatCompact, 300)},
		{Vault: "other", Key: "b", ID: manifest.ID{4}, Created: 30, ETag: `"00112233445566778899aabbccddeeff-3"`, Envelope: fakeEnvelope(manifest.FormatJSON, 10)},
	}
}

// TestRecordsRoundTrip: both encodings give back the version they were
// made from (a compact record its envelope's number), and the compact one
// is smaller.
func TestRecordsRoundTrip(t *testing.T) {
	for i, v := range sampleVersions() {
		vk := versionKey(v.Key, v.Created, v.ID)
		want := v
		want.Vault, want.Key = "", ""
		full := encodeFull(v, true)
		got, _, err := decodeRecord(vk, full, true)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("full record: %v\n got %+v\nwant %+v", err, got, want)
		}
		n := uint64(i) * 1000
		rec := encodeRecord(v, n)
		want.Envelope = nil
		got, gotN, err := decodeRecord(vk, rec, true)
		if err != nil || !reflect.DeepEqual(got, want) || gotN != n {
			t.Fatalf("compact record: %v, envelope %d\n got %+v\nwant %+v", err, gotN, got, want)
		}
		if len(rec) >= len(full)-len(v.Envelope) {
			t.Fatalf("compact record %d bytes, full %d", len(rec), len(full)-len(v.Envelope))
		}
		for name, b := range map[string][]byte{"compact": encodeSummary(v), "full": encodeFull(v, false)} {
			got, err := decodeSummary(b)
			if err != nil {
				t.Fatalf("%s summary %s: %v", name, v.ID, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s summary:\n got %+v\nwant %+v", name, got, want)
			}
		}
	}
}

func TestRecordsRejectMalformed(t *testing.T) {
	v := sampleVersions()[2]
	vk := versionKey(v.Key, v.Created, v.ID)
	sum := encodeSummary(v)
	cases := map[string]func() error{
		"empty summary":             func() error { _, err := decodeSummary(nil); return err },
		"short summary":             func() error { _, err := decodeSummary(sum[:20]); return err },
		"summary with trailing":     func() error { _, err := decodeSummary(append(bytes.Clone(sum), 0)); return err },
		"summary truncated":         func() error { _, err := decodeSummary(sum[:len(sum)-1]); return err },
		"unknown flag":              func() error { _, err := decodeSummary(append([]byte{0x82}, sum[1:]...)); return err },
		"unknown flag, full":        func() error { _, err := decodeSummary(append([]byte{0x02}, sum[1:]...)); return err },
		"record under a bad key":    func() error { _, _, err := decodeRecord([]byte("short"), encodeRecord(v, 1), true); return err },
		"record with a bad etag":    func() error { _, _, err := decodeRecord(vk, []byte{flagCompact, 1, 7}, true); return err },
		"record label past the end": func() error { _, _, err := decodeRecord(vk, []byte{flagCompact, 1, 0, 0, 9, 'a'}, true); return err },
		"record without a number": func() error {
			_, _, err := decodeRecord(vk, encodeRecord(v, 1)[:len(encodeRecord(v, 1))-1], true)
			return err
		},
		"record with trailing": func() error { _, _, err := decodeRecord(vk, append(encodeRecord(v, 1), 0), true); return err },
		"full envelope length": func() error { _, _, err := decodeRecord(vk, append(encodeFull(v, true), 0), true); return err },
	}
	for name, f := range cases {
		if err := f(); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, v := range sampleVersions() {
		f.Add(versionKey(v.Key, v.Created, v.ID), encodeRecord(v, 300))
		f.Add(versionKey(v.Key, v.Created, v.ID), encodeFull(v, true))
		f.Add([]byte(nil), encodeSummary(v))
		f.Add([]byte(nil), encodeFull(v, false))
	}
	f.Fuzz(func(t *testing.T, k, b []byte) {
		if v, err := decodeSummary(b); err == nil && isCompact(b) {
			if again := encodeSummary(v); !bytes.Equal(again, b) && bytes.Equal(again[:1], b[:1]) {
				// Not every byte string that decodes is canonical (an
				// ETag of kind 0 that could be kind 1 is refused, but a
				// longer uvarint is not); what decodes must re-decode
				// to the same version.
				w, err := decodeSummary(again)
				if err != nil || !reflect.DeepEqual(v, w) {
					t.Fatalf("summary does not survive re-encoding: %v", err)
				}
			}
		}
		if v, n, err := decodeRecord(k, b, true); err == nil && isCompact(b) {
			w, m, err := decodeRecord(k, encodeRecord(v, n), true)
			if err != nil || !reflect.DeepEqual(v, w) || m != n {
				t.Fatalf("record does not survive re-encoding: %v", err)
			}
		}
	})
}

// writeFormat3 writes vs into a new index file as a node built before
// format 4 did: meta format 3, every record in the full encoding.
func writeFormat3(t *testing.T, path string, vs []index.Version) {
	t.Helper()
	ix, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if err := ix.Put(t.Context(), v); err != nil {
			t.Fatal(err)
		}
	}
	ix.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		m.Delete(keyMigrate)
		if err := m.Put(keyFormat, []byte{formatFull}); err != nil {
			return err
		}
		for _, vault := range []string{"registry", "other"} {
			if err := tx.Bucket(vaultBucket(vault)).DeleteBucket(bucketEnv); err != nil {
				return err
			}
		}
		for _, v := range vs {
			b, _ := readBuckets(tx, v.Vault)
			if err := b.versions.Put(versionKey(v.Key, v.Created, v.ID), encodeFull(v, true)); err != nil {
				return err
			}
			cur, err := decodeSummary(b.latest.Get([]byte(v.Key)))
			if err != nil {
				return err
			}
			if cur.ID == v.ID {
				if err := b.latest.Put([]byte(v.Key), encodeFull(v, false)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// everything reads back every version, summary and listing of ix.
func everything(t *testing.T, ix *Index) string {
	t.Helper()
	ctx := t.Context()
	var out bytes.Buffer
	for _, vault := range []string{"other", "registry"} {
		vp, err := ix.Versions(ctx, vault, index.VersionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lp, err := ix.List(ctx, vault, index.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%+v\n%+v\n", vp, lp)
		for _, v := range vp.Versions {
			g, err := ix.Get(ctx, vault, v.Key, v.ID)
			if err != nil {
				t.Fatal(err)
			}
			l, err := ix.Latest(ctx, vault, v.Key)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&out, "%+v\n%+v\n", g, l)
		}
	}
	return out.String()
}

// records counts the index's records in each encoding.
func records(t *testing.T, ix *Index) (compact, full int) {
	t.Helper()
	ix.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, v *bolt.Bucket) error {
			if !bytes.HasPrefix(name, []byte("v/")) {
				return nil
			}
			for _, b := range [][]byte{bucketLatest, bucketVersions} {
				v.Bucket(b).ForEach(func(_, val []byte) error {
					if isCompact(val) {
						compact++
					} else {
						full++
					}
					return nil
				})
			}
			return nil
		})
	})
	return compact, full
}

// TestFormat3IndexUpgradesInPlace: an index written before format 4 opens
// without a rebuild, reads as it did, gets compact records for what is
// written, and MigrateRecords rewrites the rest (offering format 1
// envelopes to be sealed again) without changing what it reads.
func TestFormat3IndexUpgradesInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	vs := sampleVersions()
	want := func() string {
		ix := openTemp(t)
		for _, v := range vs {
			ix.Put(t.Context(), v)
		}
		return everything(t, ix)
	}()
	writeFormat3(t, path, vs)
	ix, err := Open(path)
	if err != nil {
		t.Fatalf("a format 3 index does not open: %v", err)
	}
	defer ix.Close()
	if c, f := records(t, ix); c != 0 || f != 7 {
		t.Fatalf("before: %d compact and %d full records, want 0 and 7", c, f)
	}
	if !ix.NeedsMigration() {
		t.Fatal("an upgraded index does not ask for migration")
	}
	if got := everything(t, ix); got != want {
		t.Fatalf("a format 3 index reads differently:\n%s\nwant\n%s", got, want)
	}
	// A write is compact at once.
	if err := ix.Put(t.Context(), vs[3]); err != nil {
		t.Fatal(err)
	}
	if c, f := records(t, ix); c != 2 || f != 5 {
		t.Fatalf("after a put: %d compact and %d full records, want 2 and 5", c, f)
	}
	resealed := fakeEnvelope(manifest.FormatCompact, 25)
	var offered int
	st, err := ix.MigrateRecords(t.Context(), 2, func(env []byte) ([]byte, bool) {
		offered++
		if manifest.EnvelopeFormat(env) != manifest.FormatJSON {
			t.Errorf("offered an envelope of format %d", manifest.EnvelopeFormat(env))
		}
		if len(env) == 5+700 {
			return resealed, true
		}
		return nil, false
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, f := records(t, ix); c != 7 || f != 0 {
		t.Fatalf("after migration: %d compact and %d full records (%+v)", c, f, st)
	}
	if offered != 2 || st.Resealed != 1 || ix.NeedsMigration() {
		t.Fatalf("offered %d envelopes, %+v, mark still set %v", offered, st, ix.NeedsMigration())
	}
	g, err := ix.Get(t.Context(), "registry", "a/1", manifest.ID{1})
	if err != nil || !bytes.Equal(g.Envelope, resealed) {
		t.Fatalf("resealed envelope not stored: %v", err)
	}
	vs[0].Envelope = resealed
	ix2 := openTemp(t)
	for _, v := range vs {
		ix2.Put(t.Context(), v)
	}
	if got, want := everything(t, ix), everything(t, ix2); got != want {
		t.Fatalf("a migrated index reads differently:\n%s\nwant\n%s", got, want)
	}
}

// TestMigrationLeavesNewerWritesAlone: a record written between a
// migration step's read and its write is newer than what the step made,
// and stays; the mark stays too, as that write moved it, so that a later
// pass offers the newer envelope.
func TestMigrationLeavesNewerWritesAlone(t *testing.T) {
	ix := openTemp(t)
	vs := sampleVersions()[:1]
	if err := ix.Put(t.Context(), vs[0]); err != nil {
		t.Fatal(err)
	}
	if !ix.NeedsMigration() {
		t.Fatal("a format 1 envelope put does not ask for migration")
	}
	newer := vs[0]
	newer.Envelope = fakeEnvelope(manifest.FormatJSON, 123)
	var once sync.Once
	testBeforeMigrateWrite = func() {
		once.Do(func() {
			if err := ix.Put(context.Background(), newer); err != nil {
				t.Error(err)
			}
		})
	}
	defer func() { testBeforeMigrateWrite = nil }()
	if _, err := ix.MigrateRecords(t.Context(), 10, func(env []byte) ([]byte, bool) {
		return fakeEnvelope(manifest.FormatCompact, 20), true
	}, nil); err != nil {
		t.Fatal(err)
	}
	g, err := ix.Get(t.Context(), vs[0].Vault, vs[0].Key, vs[0].ID)
	if err != nil || !bytes.Equal(g.Envelope, newer.Envelope) {
		t.Fatalf("migration overwrote a newer write: %v", err)
	}
	if !ix.NeedsMigration() {
		t.Fatal("a format 1 envelope written during the walk cleared the mark")
	}
	testBeforeMigrateWrite = nil
	if _, err := ix.MigrateRecords(t.Context(), 10, func(env []byte) ([]byte, bool) {
		return fakeEnvelope(manifest.FormatCompact, 20), true
	}, nil); err != nil {
		t.Fatal(err)
	}
	if g, _ := ix.Get(t.Context(), vs[0].Vault, vs[0].Key, vs[0].ID); manifest.EnvelopeFormat(g.Envelope) != manifest.FormatCompact || ix.NeedsMigration() {
		t.Fatalf("second pass: format %d, mark %v", manifest.EnvelopeFormat(g.Envelope), ix.NeedsMigration())
	}
}

// TestEnvelopesFollowRecords: rewriting a version replaces its envelope
// and deleting it removes it, so that the envelopes bucket holds exactly
// one envelope per version with one (nothing left behind to grow).
func TestEnvelopesFollowRecords(t *testing.T) {
	ix := openTemp(t)
	ctx := t.Context()
	var vs []index.Version
	for i := range 20 {
		v := index.Version{Vault: "registry", Key: fmt.Sprintf("k/%d", i%7), ID: manifest.ID{byte(i + 1)}, Created: int64(i), Envelope: fakeEnvelope(manifest.FormatCompact, 30+i)}
		if i%5 == 0 {
			v.Envelope = nil
		}
		vs = append(vs, v)
		if err := ix.Put(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	// Rewrites (a lock change) and deletes.
	for i := 0; i < 20; i += 3 {
		vs[i].Envelope = fakeEnvelope(manifest.FormatCompact, 99)
		if err := ix.Put(ctx, vs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < 20; i += 4 {
		if err := ix.Delete(ctx, vs[i].Vault, vs[i].Key, vs[i].ID); err != nil {
			t.Fatal(err)
		}
		vs[i].Envelope = nil
		vs[i].Vault = ""
	}
	want := 0
	for _, v := range vs {
		if v.Vault == "" {
			continue
		}
		got, err := ix.Get(ctx, v.Vault, v.Key, v.ID)
		if err != nil || !bytes.Equal(got.Envelope, v.Envelope) {
			t.Fatalf("%s: %v, envelope %x, want %x", v.ID, err, got.Envelope, v.Envelope)
		}
		if len(v.Envelope) > 0 {
			want++
		}
	}
	var stored int
	ix.db.View(func(tx *bolt.Tx) error {
		stored = tx.Bucket(vaultBucket("registry")).Bucket(bucketEnv).Stats().KeyN
		return nil
	})
	if stored != want {
		t.Fatalf("%d envelopes stored for %d versions with one", stored, want)
	}
}
