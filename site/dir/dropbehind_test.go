package dir

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/embassy-dev/embassy/internal/pagecache"
	"golang.org/x/sys/unix"
)

// residentBytes counts the bytes of the file at path held in the page cache.
func residentBytes(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := pagecache.Resident(f)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// blobPath finds the file that holds the blob name under root.
func blobPath(t *testing.T, root, name string) string {
	t.Helper()
	var found string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == filepath.Base(name) {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no file for blob %s under %s", name, root)
	}
	return found
}

// TestLargeGetDropsBehind: a Get of a large range returns the range's bytes
// and leaves none of them in the page cache once read and closed, read in
// the shard blocks the engine reads; a small Get leaves its pages.
func TestLargeGetDropsBehind(t *testing.T) {
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	const size = 24 << 20
	want := coldBlob(t, s, "big", size)
	path := blobPath(t, root, "big")
	// Only where the filesystem drops clean pages when advised (not tmpfs).
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, f)
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	f.Close()
	if n := residentBytes(t, path); n > 0 {
		t.Skipf("the filesystem of %s keeps %d bytes advised POSIX_FADV_DONTNEED", root, n)
	}

	for _, c := range []struct{ off, length int64 }{{0, size}, {3<<20 + 17, 13<<20 + 5}} {
		r, err := s.Get(context.Background(), "big", c.off, c.length)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 0, c.length)
		buf := make([]byte, 256<<10+32)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[c.off:c.off+c.length]) {
			t.Fatalf("range %d+%d: wrong bytes", c.off, c.length)
		}
		// What is left: at most the folios at the range's start (not read
		// from its beginning) and what read-ahead brought in past its end.
		if n := residentBytes(t, path); n > 2*dropAlign+8<<20 && c.off+c.length < size || n > 2*dropAlign && c.off+c.length == size {
			t.Errorf("range %d+%d: %d bytes of the blob still in the page cache after the Get", c.off, c.length, n)
		}
		f, _ := os.Open(path)
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
	}

	// A small range keeps its pages (nothing to drop behind).
	r, err := s.Get(context.Background(), "big", 0, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r)
	r.Close()
	if n := residentBytes(t, path); n < 64<<10 {
		t.Errorf("a 64 KiB Get left %d bytes in the page cache, want its 64 KiB", n)
	}
}
