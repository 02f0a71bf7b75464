package vault

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// statReader is a reader that reports a size of its own choosing, as a
// file replaced or grown between Stat and Read would.
type statReader struct {
	io.Reader
	size int64
}

func (s statReader) Stat() (fs.FileInfo, error) { return fakeInfo(s.size), nil }

type fakeInfo int64

func (f fakeInfo) Name() string       { return "blob" }
func (f fakeInfo) Size() int64        { return int64(f) }
func (f fakeInfo) Mode() fs.FileMode  { return 0 }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return nil }

// readInline must return exactly what io.ReadAll of the same limited
// reader returns, whatever the guess and whatever the reader's Stat says.
func checkReadInline(t *testing.T, data []byte, limit int64, guess int, r io.Reader) {
	t.Helper()
	got, err := readInline(r, limit, guess)
	if err != nil {
		t.Fatalf("readInline(%d bytes, limit %d, guess %d): %v", len(data), limit, guess, err)
	}
	want, _ := io.ReadAll(io.LimitReader(bytes.NewReader(data), limit))
	if !bytes.Equal(got, want) {
		t.Fatalf("readInline(%d bytes, limit %d, guess %d): %d bytes, want %d", len(data), limit, guess, len(got), len(want))
	}
}

func TestReadInline(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320,000 bytes
	for _, n := range []int{0, 1, 511, 512, 4096, 262144 + 700, len(data)} {
		for _, guess := range []int{0, 1, n - 1, n, n + 1, 2 * n} {
			for _, limit := range []int64{int64(n), int64(n) + 1, int64(n) / 2, 1 << 20} {
				checkReadInline(t, data[:n], limit, max(guess, 0), bytes.NewReader(data[:n]))
				// A Stat that says less, or more, than the blob holds.
				for _, size := range []int64{0, int64(n) / 2, int64(n), int64(n) * 2} {
					checkReadInline(t, data[:n], limit, max(guess, 0), statReader{bytes.NewReader(data[:n]), size})
				}
			}
		}
	}
	// The dir driver's case: a file, sized by Stat, read into a buffer of
	// its size: one allocation beyond what the file holds, not io.ReadAll's
	// doublings.
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, data[:262144+700], 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := readInline(f, 1<<20, 0)
	if err != nil || !bytes.Equal(got, data[:262144+700]) {
		t.Fatalf("file: %d bytes, %v", len(got), err)
	}
	if cap(got) != len(got)+1 {
		t.Errorf("file of %d bytes read into a buffer of %d: not sized by Stat", len(got), cap(got))
	}
}

// FuzzReadInline checks readInline against io.ReadAll over a limited
// reader for any content, limit, guess and reported size.
func FuzzReadInline(f *testing.F) {
	f.Add([]byte("envelope and blocks"), int64(100), 4, int64(19))
	f.Add([]byte{}, int64(0), 0, int64(-1))
	f.Add(bytes.Repeat([]byte{1}, 5000), int64(4096), 1024, int64(10000))
	f.Fuzz(func(t *testing.T, data []byte, limit int64, guess int, size int64) {
		if limit < 0 || limit > 1<<24 || guess < 0 || guess > 1<<24 {
			t.Skip()
		}
		checkReadInline(t, data, limit, guess, statReader{bytes.NewReader(data), size})
		checkReadInline(t, data, limit, guess, bytes.NewReader(data))
	})
}
