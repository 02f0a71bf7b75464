package taxii_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/embassy-dev/embassy/taxii"
)

// BenchmarkTAXIIvsS3 measures, on one node over HTTP on loopback, the
// three things a threat-intelligence server does most — add N objects
// (envelopes of 1,000), page through all of them (pages of 1,000, bodies
// included), and a filtered query (match[type]=malware, 1 % of them) —
// and the same work through the S3 API of the same node: N PUTs at the
// store's concurrency (8), ListObjectsV2 pages of 1,000 with a GET of each
// object, and a prefix listing of the malware with a GET of each. It
// reports each TAXII time as a ratio to its S3 reference (below 1: TAXII
// is faster). N is TAXII_BENCH_N (default 10,000); bench/taxii.sh runs it.
func BenchmarkTAXIIvsS3(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("TAXII_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	objs := make([]json.RawMessage, n)
	malware := 0
	for i := range objs {
		var o map[string]any
		if i%100 == 99 {
			o = map[string]any{"type": "malware", "spec_version": "2.1", "id": fmt.Sprintf("malware--%08x-0000-4000-8000-000000000000", i),
				"created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", "name": fmt.Sprintf("m%d", i), "is_family": false,
				"object_marking_refs": []string{taxii.TLP2Green}}
			malware++
		} else {
			o = indicator(i, day, taxii.TLP2Green)
		}
		objs[i], _ = json.Marshal(o)
	}
	idOf := func(raw json.RawMessage) string {
		var x struct {
			ID string `json:"id"`
		}
		json.Unmarshal(raw, &x)
		return x.ID
	}
	var tPost, tPage, tFilter, sPut, sPage, sFilter time.Duration
	for b.Loop() {
		b.StopTimer()
		h := newHarness(b)
		s3c, err := minio.New(strings.TrimPrefix(h.url, "http://"), &minio.Options{Creds: credentials.NewStaticV4(keyOf("analyst"), secretOf("analyst"), ""), Region: "us-east-1"})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.StartTimer()

		// TAXII: add.
		start := time.Now()
		for i := 0; i < n; i += 1000 {
			env, _ := json.Marshal(taxii.Envelope{Objects: objs[i:min(i+1000, n)]})
			if st := h.post("analyst", env); st.SuccessCount != min(1000, n-i) {
				b.Fatalf("post: %d of %d stored: %+v", st.SuccessCount, min(1000, n-i), st.Failures)
			}
		}
		tPost += time.Since(start)
		// TAXII: page through.
		start = time.Now()
		got, next := 0, ""
		for {
			query := "limit=1000"
			if next != "" {
				query += "&" + q("next", next)
			}
			env, r := h.get("analyst", query)
			if r.status != http.StatusOK {
				b.Fatalf("page: %d %s", r.status, r.body)
			}
			got += len(env.Objects)
			if !env.More {
				break
			}
			next = env.Next
		}
		tPage += time.Since(start)
		if got != n {
			b.Fatalf("paged through %d objects, want %d", got, n)
		}
		// TAXII: a filtered query.
		start = time.Now()
		env, _ := h.get("analyst", "limit=1000&match[type]=malware")
		tFilter += time.Since(start)
		if len(env.Objects) != malware {
			b.Fatalf("filter: %d malware, want %d", len(env.Objects), malware)
		}

		// S3: the same objects, one PUT each, 8 at a time.
		start = time.Now()
		each(b, n, func(i int) error {
			_, err := s3c.PutObject(ctx, "intel", "s3/"+idOf(objs[i]), bytes.NewReader(objs[i]), int64(len(objs[i])), minio.PutObjectOptions{ContentType: taxii.MediaSTIX})
			return err
		})
		sPut += time.Since(start)
		// S3: list all, GET each.
		get := func(prefix string) int {
			var keys []string
			for o := range s3c.ListObjects(ctx, "intel", minio.ListObjectsOptions{Prefix: prefix, Recursive: true, MaxKeys: 1000}) {
				if o.Err != nil {
					b.Fatal(o.Err)
				}
				keys = append(keys, o.Key)
			}
			each(b, len(keys), func(i int) error {
				r, err := s3c.GetObject(ctx, "intel", keys[i], minio.GetObjectOptions{})
				if err != nil {
					return err
				}
				defer r.Close()
				_, err = io.Copy(io.Discard, r)
				return err
			})
			return len(keys)
		}
		start = time.Now()
		if k := get("s3/"); k != n {
			b.Fatalf("S3 listed %d, want %d", k, n)
		}
		sPage += time.Since(start)
		start = time.Now()
		if k := get("s3/malware--"); k != malware {
			b.Fatalf("S3 listed %d malware, want %d", k, malware)
		}
		sFilter += time.Since(start)
	}
	runs := float64(b.N)
	b.ReportMetric(float64(n)*runs/tPost.Seconds(), "taxii-add-obj/s")
	b.ReportMetric(float64(n)*runs/sPut.Seconds(), "s3-put-obj/s")
	b.ReportMetric(tPost.Seconds()/sPut.Seconds(), "add/s3-ratio")
	b.ReportMetric(tPage.Seconds()/sPage.Seconds(), "page/s3-ratio")
	b.ReportMetric(tFilter.Seconds()/sFilter.Seconds(), "filter/s3-ratio")
	b.ReportMetric(tPage.Seconds()/runs, "taxii-page-all-s")
	b.ReportMetric(tFilter.Seconds()*1000/runs, "taxii-filter-ms")
}

// each runs do(0..n-1), 8 at a time, failing b on the first error.
func each(b *testing.B, n int, do func(int) error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if err := do(i); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}
