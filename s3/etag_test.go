package s3

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"
	"testing"

	md5simd "github.com/minio/md5-simd"

	"github.com/embassy-dev/embassy/internal/benchutil"
)

// TestETagHash: a body's ETag is the MD5 of its bytes, written in uneven
// pieces, asked for more than once, and after a Reset; with many bodies
// hashed at once.
func TestETagHash(t *testing.T) {
	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(i*131 + i>>11)
	}
	sizes := []int{0, 1, 63, 64, 65, 256 << 10, 1<<20 + 63, 3<<20 + 17}
	check := func(t *testing.T, i int, h *etagHash) {
		body := data[:sizes[i%len(sizes)]]
		h.Write(data[:100]) // written, then started again
		h.Reset()
		for off, step := 0, 1000+i; off < len(body); off += step {
			h.Write(body[off:min(off+step, len(body))])
		}
		want := "\"" + hex.EncodeToString(md5sum(body)) + "\""
		for range 2 {
			if got := h.etag(); got != want {
				t.Errorf("body %d (%d bytes): etag %s, want %s", i, len(body), got, want)
			}
		}
	}
	var wg sync.WaitGroup
	for i := range 4 * len(sizes) {
		wg.Go(func() { check(t, i, newETagHash()) })
	}
	wg.Wait()
}

func md5sum(b []byte) []byte { s := md5.Sum(b); return s[:] }

// BenchmarkETagMD5 measures the process CPU a byte of the ETag's MD5 with
// 1 to 16 bodies hashed at once, each by a goroutine of its own feeding
// 1 MiB writes (a stripe, as the engine's hashing goroutine does), with
// crypto/md5 and with a shared md5-simd server. "paced" streams also read their next stripe in between (a
// SHA-256 pass over it, standing in for the aws-chunked signature check
// of the reading goroutine), so that they do not all hash in lock step as
// in the server; "cpu-ns/B" is the process's CPU per MD5 byte, the SHA-256
// included in both columns alike.
//
//	go test -run '^$' -bench ETagMD5 -benchtime 4x ./s3/
//
// md5-simd is not used for ETags (etag.go says why); this keeps the
// measurement that decided it repeatable.
func BenchmarkETagMD5(b *testing.B) {
	md5Server := sync.OnceValue(md5simd.NewServer)
	const body, piece = 16 << 20, 1 << 20
	data := make([]byte, piece)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, paced := range []bool{false, true} {
		for _, streams := range []int{1, 2, 4, 8, 16} {
			for _, simd := range []bool{false, true} {
				name := fmt.Sprintf("paced=%v/streams=%d/simd=%v", paced, streams, simd)
				b.Run(name, func(b *testing.B) {
					b.SetBytes(int64(streams) * body)
					cpu0 := benchutil.ProcessCPU()
					for b.Loop() {
						var wg sync.WaitGroup
						for range streams {
							wg.Go(func() {
								var h hash.Hash
								if simd {
									s := md5Server().NewHash()
									defer s.Close()
									h = s
								} else {
									h = md5.New()
								}
								sig := sha256.New()
								for range body / piece {
									if paced {
										sig.Write(data)
									}
									h.Write(data)
								}
								h.Sum(nil)
							})
						}
						wg.Wait()
					}
					b.ReportMetric(float64(benchutil.ProcessCPU()-cpu0)/float64(b.N)/float64(streams*body), "cpu-ns/B")
				})
			}
		}
	}
}
