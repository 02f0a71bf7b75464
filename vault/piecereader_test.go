package vault

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
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
