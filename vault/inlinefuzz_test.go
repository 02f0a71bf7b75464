package vault

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
)

// blobSite is a site holding one blob whose reader seeks (as a dir site's
// file does), or does not (an S3 body), and may hand its bytes a few at a
// time (a network read).
type blobSite struct {
	site.Site
	data  []byte
	seek  bool
	chunk int
}

func (s blobSite) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if off != 0 || length != -1 {
		return nil, errors.New("blobSite: only whole reads")
	}
	if s.seek {
		return struct {
			*bytes.Reader
			io.Closer
		}{bytes.NewReader(s.data), io.NopCloser(nil)}, nil
	}
	var r io.Reader = bytes.NewReader(s.data)
	if s.chunk > 0 {
		r = &chunkReader{r: r, n: s.chunk}
	}
	return io.NopCloser(r), nil
}

// chunkReader returns at most n bytes a Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// FuzzInlineReader: an inline manifest blob is a site's bytes. For any
// blob, inlineReader never panics, fails (manifest.ErrCorrupt) only where
// the header is unreadable, and reads shard i's block exactly where the
// header and the part's layout put it (reading short where the blob ends
// before it), whether the site's reader seeks or not and however it
// splits its reads; inlineTail returns the blocks after the envelope, or
// erasure.ErrChecksum where the blob ends before shard i's block starts.
func FuzzInlineReader(f *testing.F) {
	header := func(format byte, body uint32) []byte {
		h := make([]byte, manifest.HeaderSize)
		copy(h, "EMBM")
		h[4] = format
		binary.BigEndian.PutUint32(h[13:], body)
		return h
	}
	f.Add(append(header(manifest.FormatCompact, 100), bytes.Repeat([]byte{7}, 400)...), uint8(5), uint8(3), uint16(0b10110), uint16(200), uint8(0))
	f.Add(append(header(manifest.FormatJSON, 5000), bytes.Repeat([]byte{1}, 9000)...), uint8(6), uint8(5), uint16(0), uint16(3000), uint8(3))
	f.Add(header(manifest.FormatCompact, 1<<24), uint8(2), uint8(1), uint16(1), uint16(10), uint8(1))
	f.Add([]byte("EMBM"), uint8(1), uint8(0), uint16(0), uint16(1), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, n, i uint8, layout uint16, size uint16, chunk uint8) {
		if n == 0 || n > 16 {
			t.Skip()
		}
		i %= n
		part := manifest.Part{Inline: true, Sites: make([]string, n)}
		for j := range part.Sites {
			part.Sites[j] = "a"
			if layout&(1<<j) != 0 {
				part.Sites[j] = "b"
			}
		}
		g := geometry{k: 2, m: 1, stripe: 1 << 20, size: int64(size), sum: erasure.XXH3}
		bs := g.blockSize(0)
		envLen, herr := manifest.EnvelopeLen(data)
		start := envLen + inlineRank(part, int(i))*bs
		var want []byte
		if herr == nil && start < len(data) {
			want = data[start:min(start+bs, len(data))]
		}
		name := manifest.BlobName(manifest.ID{1})
		for _, s := range []blobSite{
			{Site: memory.New(), data: data, seek: true},
			{Site: memory.New(), data: data},
			{Site: memory.New(), data: data, chunk: int(chunk)%40 + 1},
		} {
			rc, err := inlineReader(t.Context(), s, name, int(i), part, g)
			if herr != nil {
				if err == nil || !errors.Is(err, manifest.ErrCorrupt) {
					t.Fatalf("seek %v chunk %d: header %v, inlineReader %v", s.seek, s.chunk, herr, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("seek %v chunk %d: %v", s.seek, s.chunk, err)
			}
			got := make([]byte, bs)
			m, err := io.ReadFull(rc, got)
			rc.Close()
			if len(want) == bs && err != nil || len(want) < bs && err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("seek %v chunk %d: read %d of %d bytes: %v", s.seek, s.chunk, m, bs, err)
			}
			if !bytes.Equal(got[:m], want) {
				t.Fatalf("seek %v chunk %d: block at %d not read from there (%d bytes, want %d)", s.seek, s.chunk, start, m, len(want))
			}
		}
		tail, at, err := inlineTail(t.Context(), blobSite{Site: memory.New(), data: data, chunk: int(chunk)%40 + 1}, name, int(i), part, g)
		switch {
		case herr != nil:
			if !errors.Is(err, manifest.ErrCorrupt) {
				t.Fatalf("inlineTail: header %v, got %v", herr, err)
			}
		case start > len(data):
			if !errors.Is(err, erasure.ErrChecksum) {
				t.Fatalf("inlineTail: blob of %d bytes, block at %d: %v", len(data), start, err)
			}
		case err != nil:
			t.Fatalf("inlineTail: %v", err)
		case !bytes.Equal(tail, data[envLen:]) || at != start-envLen:
			t.Fatalf("inlineTail: %d bytes at %d, want %d at %d", len(tail), at, len(data)-envLen, start-envLen)
		}
	})
}
