package s3

import (
	"crypto/md5"
	"encoding/hex"
	"sync"
	"testing"
)

// TestETagHash: a body's ETag is the MD5 of its bytes whichever hash
// computes it: crypto/md5 alone, or md5-simd with many bodies hashed at
// once (sizes around its 64-byte blocks and 32 KiB buffers, written in
// uneven pieces), asked for more than once, and after a Reset.
func TestETagHash(t *testing.T) {
	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(i*131 + i>>11)
	}
	sizes := []int{simdMinSize, simdMinSize + 1, 1 << 20, 1<<20 + 63, 3<<20 + 17, 32<<10*5 + 64}
	check := func(t *testing.T, i int, h *etagHash) {
		body := data[:sizes[i%len(sizes)]]
		h.Write(body[:100]) // written, then started again
		h.Reset()
		for off, step := 0, 1000+i; off < len(body); off += step {
			h.Write(body[off:min(off+step, len(body))])
		}
		want := "\"" + hex.EncodeToString(md5sum(body)) + "\""
		for range 2 {
			if got := h.etag(); got != want {
				t.Errorf("body %d (%d bytes, simd %v): etag %s, want %s", i, len(body), h.simd != nil, got, want)
			}
		}
	}
	t.Run("one at a time", func(t *testing.T) {
		for i := range sizes {
			h := newETagHash(int64(sizes[i]))
			if h.simd != nil {
				t.Error("a body hashed alone used md5-simd")
			}
			check(t, i, h)
			h.release()
		}
	})
	t.Run("many at once", func(t *testing.T) {
		// Hold all the hashes before writing, so that the later ones see
		// the earlier ones in flight.
		hs := make([]*etagHash, 2*simdMinStreams*len(sizes))
		simd := 0
		for i := range hs {
			hs[i] = newETagHash(int64(sizes[i%len(sizes)]))
			if hs[i].simd != nil {
				simd++
			}
		}
		if simd == 0 {
			t.Fatal("no body used md5-simd: the test would not test it")
		}
		var wg sync.WaitGroup
		for i, h := range hs {
			wg.Go(func() {
				defer h.release()
				check(t, i, h)
			})
		}
		wg.Wait()
	})
	if n := md5Streams.Load(); n != 0 {
		t.Errorf("%d hashes still counted as in flight after release", n)
	}
}

func md5sum(b []byte) []byte { s := md5.Sum(b); return s[:] }
