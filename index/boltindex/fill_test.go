package boltindex

import (
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// TestFillsPastTheMark: after commits, the file past bbolt's high-water
// mark is written (no hole) for fillLow bytes, or to its end, so that
// the next commits put their pages on allocated blocks; and the file is
// no larger than bbolt made it.
func TestFillsPastTheMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	ix, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	vs := smallVersions(20_000)
	mark := func() (m int64) {
		ix.db.View(func(tx *bolt.Tx) error { m = tx.Size(); return nil })
		return m
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := func() int64 {
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// Grow the index until bbolt's file has room past the mark, then
	// commit once more: that commit's batch fills.
	i := 0
	for ; i < len(vs) && (i < 2000 || size()-mark() < 2*fillLow); i += 100 {
		if err := ix.PutMany(t.Context(), vs[i:i+100]); err != nil {
			t.Fatal(err)
		}
	}
	if size()-mark() < 2*fillLow {
		t.Fatalf("no room past the mark after %d versions: file %d, mark %d", i, size(), mark())
	}
	if err := ix.Put(t.Context(), vs[i]); err != nil {
		t.Fatal(err)
	}
	m, sz := mark(), size()
	hole, err := unix.Seek(int(f.Fd()), m, unix.SEEK_HOLE)
	if err != nil {
		t.Skipf("SEEK_HOLE: %v", err)
	}
	if want := min(m+fillLow/2, sz); hole < want {
		t.Fatalf("a hole at %d, %d bytes past the mark %d (file %d bytes): want none before %d", hole, hole-m, m, sz, want)
	}
	// Everything is still there.
	for _, v := range vs[:i+1] {
		if _, err := ix.Get(t.Context(), v.Vault, v.Key, v.ID); err != nil {
			t.Fatal(err)
		}
	}
}
