package s3_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/vault"
)

// BenchmarkListObjectsV2 lists a bucket of listBenchObjects small objects
// through the S3 front end, 1,000 keys a page, as a client does; the
// reference is the engine's own listing of the same keys in the same run
// (ratio s3/engine: how much the front end's paging and XML cost).
//
//	go test -run '^$' -bench ListObjectsV2 -benchtime 20x ./s3/
func BenchmarkListObjectsV2(b *testing.B) {
	const objects = 5000
	h := newHarness(b)
	h.bucket("list")
	ctx := h.n.As(context.Background(), alice.Principal)
	var wg sync.WaitGroup
	keys := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range keys {
				if _, err := h.n.Engine.Put(ctx, "list", fmt.Sprintf("dir/obj-%06d", i), strings.NewReader("x"), vault.PutOptions{Size: 1}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range objects {
		keys <- i
	}
	close(keys)
	wg.Wait()
	if b.Failed() {
		return
	}
	b.Run("s3", func(b *testing.B) {
		for b.Loop() {
			token, n := "", 0
			for {
				path := "/list?list-type=2&max-keys=1000"
				if token != "" {
					path += "&continuation-token=" + url.QueryEscape(token)
				}
				r := h.do(rawRequest{method: "GET", path: path, as: &alice})
				if r.status != 200 {
					b.Fatalf("list: %d %s", r.status, r.body)
				}
				n += strings.Count(string(r.body), "<Key>")
				token = ""
				if _, rest, ok := strings.Cut(string(r.body), "<NextContinuationToken>"); ok {
					token, _, _ = strings.Cut(rest, "</NextContinuationToken>")
				}
				if token == "" {
					break
				}
			}
			if n != objects {
				b.Fatalf("listed %d keys, want %d", n, objects)
			}
		}
		b.ReportMetric(float64(objects*b.N)/b.Elapsed().Seconds(), "keys/s")
	})
	b.Run("engine", func(b *testing.B) {
		for b.Loop() {
			n, after := 0, ""
			for {
				page, err := h.n.Engine.List(ctx, "list", index.ListOptions{After: after, Max: 1000})
				if err != nil {
					b.Fatal(err)
				}
				n += len(page.Entries)
				if !page.Truncated {
					break
				}
				after = page.Next
			}
			if n != objects {
				b.Fatalf("listed %d keys, want %d", n, objects)
			}
		}
		b.ReportMetric(float64(objects*b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}
