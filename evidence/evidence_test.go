package evidence_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
)

func testKeys(t testing.TB) *custody.Keyring {
	t.Helper()
	rk, err := custody.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := custody.NewKeyring(rk)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestReadBatch: a legacy journal batch reads back as its records; one
// that is damaged, of another node or not there says which, and
// ReadSite reads the good ones of a site and reports the others.
func TestReadBatch(t *testing.T) {
	ctx := t.Context()
	keys := testKeys(t)
	s := memory.New()
	recs := []evidence.Record{
		{Kind: evidence.Delete, Time: 1, Version: manifest.NewID(), Blobs: []evidence.Blob{{Name: "s/ab/cd"}}},
		{Kind: evidence.UploadEnd, Time: 2, Upload: "u-1"},
	}
	good, err := evidence.SealBatch(keys, "node-a", recs)
	if err != nil {
		t.Fatal(err)
	}
	other, err := evidence.SealBatch(keys, "node-b", recs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.SealBatch(keys, "node-a", []evidence.Record{{Kind: "nonsense"}}); err == nil {
		t.Fatal("a record of no known kind sealed")
	}
	damaged := bytes.Clone(good)
	damaged[len(damaged)/2] ^= 1
	for name, b := range map[string][]byte{"j/1-good": good, "j/2-other": other, "j/3-damaged": damaged} {
		if err := s.Put(ctx, name, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := evidence.ReadBatch(ctx, s, keys, "node-a", "j/1-good")
	if err != nil || len(got) != 2 || got[0].Version != recs[0].Version || got[1].Upload != "u-1" {
		t.Fatalf("good batch: %+v, %v", got, err)
	}
	for _, name := range []string{"j/2-other", "j/3-damaged"} {
		if _, err := evidence.ReadBatch(ctx, s, keys, "node-a", name); !errors.Is(err, evidence.ErrBatch) {
			t.Fatalf("%s: %v, want ErrBatch", name, err)
		}
	}
	if _, err := evidence.ReadBatch(ctx, s, keys, "node-a", "j/4-gone"); !errors.Is(err, site.ErrNotFound) {
		t.Fatalf("missing batch: %v, want ErrNotFound", err)
	}
	var read, bad []string
	err = evidence.ReadSite(ctx, s, keys, "node-a", func(name string) bool { return false },
		func(name string, _ []evidence.Record) error { read = append(read, name); return nil },
		func(name string, _ error) { bad = append(bad, name) })
	if err != nil || len(read) != 1 || read[0] != "j/1-good" || len(bad) != 2 {
		t.Fatalf("ReadSite: read %v, bad %v, %v", read, bad, err)
	}
}

// FuzzOpenBatch: a journal batch read from a site is outside input; Open
// never panics, and what it accepts seals again to a batch it accepts.
func FuzzOpenBatch(f *testing.F) {
	keys := testKeys(f)
	good, err := evidence.SealBatch(keys, "node-a", []evidence.Record{{Kind: evidence.Delete, Time: 1, Version: manifest.NewID()}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("EMBJ"))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := evidence.Open(keys, "node-a", b)
		if err != nil {
			if !errors.Is(err, evidence.ErrBatch) {
				t.Fatalf("error not ErrBatch: %v", err)
			}
			return
		}
		again, err := evidence.SealBatch(keys, "node-a", recs)
		if err != nil {
			t.Fatalf("accepted records do not seal again: %v", err)
		}
		if _, err := evidence.Open(keys, "node-a", again); err != nil {
			t.Fatalf("sealed again, refused: %v", err)
		}
	})
}

// FuzzOpenGenerations: the generations blob is read from every site
// (ReadGenerations), which is outside input; OpenGenerations never
// panics, refuses with ErrBatch, and accepts only what the node sealed.
func FuzzOpenGenerations(f *testing.F) {
	keys := testKeys(f)
	good, err := evidence.SealGenerations(keys, "node-a", map[string]uint64{"registry": 7})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("EMBG"))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := evidence.OpenGenerations(keys, "node-a", b)
		if err != nil {
			if !errors.Is(err, evidence.ErrBatch) {
				t.Fatalf("error not ErrBatch: %v", err)
			}
			return
		}
		if !bytes.Equal(b, good) || g["registry"] != 7 {
			t.Fatalf("a blob the node did not seal opens: %q", b)
		}
	})
}

// FuzzOpenSealCounts: the seal counts blob is read from every site at
// start, which is outside input; OpenSealCounts never panics, refuses with
// ErrBatch, and accepts only what the node sealed.
func FuzzOpenSealCounts(f *testing.F) {
	keys := testKeys(f)
	counts := []byte(`{"format":1,"keys":[{"key_id":"0123456789abcdef","seals":5}]}`)
	good, err := evidence.SealSealCounts(keys, "node-a", counts)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("EMBN"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := evidence.OpenSealCounts(keys, "node-a", b)
		if err != nil {
			if !errors.Is(err, evidence.ErrBatch) {
				t.Fatalf("error not ErrBatch: %v", err)
			}
			return
		}
		if !bytes.Equal(b, good) || !bytes.Equal(c, counts) {
			t.Fatalf("a blob the node did not seal opens: %q", b)
		}
	})
}

func TestSealCountsOfAnotherNode(t *testing.T) {
	keys := testKeys(t)
	b, err := evidence.SealSealCounts(keys, "node-a", []byte(`{"format":1,"keys":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.OpenSealCounts(keys, "node-b", b); !errors.Is(err, evidence.ErrBatch) {
		t.Errorf("node-b opened node-a's seal counts: %v", err)
	}
	if _, err := evidence.OpenSealCounts(testKeys(t), "node-a", b); !errors.Is(err, evidence.ErrBatch) {
		t.Errorf("another root opened the seal counts: %v", err)
	}
}
