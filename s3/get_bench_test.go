package s3_test

import (
	"io"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkGetObject: GETs of one object through the S3 front end over
// HTTP, signed as alice, the body read and discarded. Run it with
// -benchmem: its allocations per GET are what a change to the GET path is
// judged by here (its times drift with the machine's load); the client's
// signing and reading are in both sides of a comparison.
func BenchmarkGetObject(b *testing.B) {
	for _, size := range []int{4 << 10, 3 << 20} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			h := newHarness(b)
			h.bucket("bench")
			h.put("bench", "k", pattern(size, 7))
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				resp, err := http.DefaultClient.Do(h.newRequest(rawRequest{method: "GET", path: "/bench/k", as: &alice}))
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || n != int64(size) {
					b.Fatalf("status %d, %d bytes, %v", resp.StatusCode, n, err)
				}
			}
		})
	}
}
