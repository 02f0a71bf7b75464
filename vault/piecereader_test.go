package vault

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// TestPieceReader: a blob's body read from its pieces, by Read in any
// chunk size or by WriteTo, is their concatenation, and its size their
// total.
func TestPieceReader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pieces [][]byte
	}{
		{"none", nil},
		{"one", [][]byte{[]byte("envelope")}},
		{"envelope and tails", [][]byte{[]byte("env"), bytes.Repeat([]byte{1}, 1000), {2, 3}, bytes.Repeat([]byte{4}, 77), {5}}},
		{"empty pieces", [][]byte{{}, []byte("a"), nil, {}, []byte("bc"), {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := bytes.Join(tc.pieces, nil)
			if r := newPieceReader(clonePieces(tc.pieces)); r.size != int64(len(want)) {
				t.Fatalf("size %d, want %d", r.size, len(want))
			}
			var w bytes.Buffer
			n, err := newPieceReader(clonePieces(tc.pieces)).WriteTo(&w)
			if err != nil || n != int64(len(want)) || !bytes.Equal(w.Bytes(), want) {
				t.Fatalf("WriteTo = %d, %v, %q; want %d, %q", n, err, w.Bytes(), len(want), want)
			}
			if err := iotest.TestReader(newPieceReader(clonePieces(tc.pieces)), want); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(iotest.OneByteReader(newPieceReader(clonePieces(tc.pieces))))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("one byte at a time: %q, %v; want %q", got, err, want)
			}
		})
	}
}

// TestPieceReaderShortWrite: a writer that takes less than a piece without
// an error ends WriteTo with io.ErrShortWrite, counting what it took.
func TestPieceReaderShortWrite(t *testing.T) {
	r := newPieceReader([][]byte{[]byte("abc"), []byte("def")})
	n, err := r.WriteTo(halfWriter{})
	if err != io.ErrShortWrite || n != 1 {
		t.Fatalf("WriteTo = %d, %v; want 1, io.ErrShortWrite", n, err)
	}
}

type halfWriter struct{}

func (halfWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func clonePieces(p [][]byte) [][]byte { return append([][]byte(nil), p...) }

// writesPerPut is a site that counts, for each blob put through it, the
// writes a body that is an io.WriterTo makes when it writes itself (as
// site/dir has it do), and then stores the bytes in the site below.
type writesPerPut struct {
	site.Site
	mu     sync.Mutex
	writes map[string]int // blob name -> writes
}

type countWrites struct {
	bytes.Buffer
	n int
}

func (c *countWrites) Write(p []byte) (int, error) { c.n++; return c.Buffer.Write(p) }

func (s *writesPerPut) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	wt, ok := r.(io.WriterTo)
	if !ok {
		return s.Site.Put(ctx, name, r, size)
	}
	var w countWrites
	if _, err := wt.WriteTo(&w); err != nil {
		return err
	}
	s.mu.Lock()
	s.writes[name] = w.n
	s.mu.Unlock()
	return s.Site.Put(ctx, name, &w.Buffer, size)
}

// TestSmallCopyOneWrite: a small object's manifest copy (its envelope and
// its shard blocks with their checksums) reaches a site as one piece, so
// that a site writing a file writes it with one system call; and the
// object reads back. A large manifest copy is not joined (joinSmall's
// limit), and joining leaves the bytes as they were.
func TestSmallCopyOneWrite(t *testing.T) {
	n := newTestNode(t)
	var wrapped []*writesPerPut
	for i := range n.sites {
		w := &writesPerPut{Site: n.sites[i].Store, writes: map[string]int{}}
		n.sites[i].Store = w
		wrapped = append(wrapped, w)
	}
	n.open(filepath.Join(n.root, "index2.db"))
	data := content("small", 1000)
	info := n.put("small", data)
	copies := 0
	for _, w := range wrapped {
		if k, ok := w.writes[manifest.BlobName(info.VersionID)]; ok {
			copies++
			if k != 1 {
				t.Errorf("a manifest copy written with %d writes, want 1", k)
			}
		}
	}
	if copies != 6 {
		t.Fatalf("%d manifest copies seen, want 6", copies)
	}
	if got := n.mustRead("small"); !bytes.Equal(got, data) {
		t.Fatal("the small object reads back different")
	}

	big := [][]byte{bytes.Repeat([]byte{1}, joinLimit), {2}}
	if got := joinSmall(clonePieces(big)); len(got) != 2 {
		t.Errorf("a copy of %d bytes joined into %d pieces, want it left in 2", joinLimit+1, len(got))
	}
	small := [][]byte{[]byte("env"), nil, bytes.Repeat([]byte{3}, 100), {4, 5}}
	if got := joinSmall(clonePieces(small)); len(got) != 1 || !bytes.Equal(got[0], bytes.Join(small, nil)) {
		t.Errorf("joinSmall = %q, want one piece %q", got, bytes.Join(small, nil))
	}
}
