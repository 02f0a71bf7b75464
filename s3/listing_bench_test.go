package s3_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/vault"
)

// listBenchObjects is how many objects the listing benchmarks list, in
// pages of 1,000.
const listBenchObjects = 5000

// listBenchHarness starts a harness with a bucket "list" of
// listBenchObjects one-byte objects dir/obj-000000, dir/obj-000001, ...
func listBenchHarness(b *testing.B) (*harness, context.Context) {
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
	for i := range listBenchObjects {
		keys <- i
	}
	close(keys)
	wg.Wait()
	return h, ctx
}

// BenchmarkListObjectsV2 lists a bucket of listBenchObjects small objects
// through the S3 front end, 1,000 keys a page, as a client does; the
// reference is the engine's own listing of the same keys in the same run
// (ratio s3/engine: how much the front end's paging and XML cost).
//
//	go test -run '^$' -bench ListObjectsV2 -benchtime 20x ./s3/
func BenchmarkListObjectsV2(b *testing.B) {
	const objects = listBenchObjects
	h, ctx := listBenchHarness(b)
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

// BenchmarkListHandler measures the server's share of a listing: each
// page of 1,000 keys is a presigned GET served by the S3 handler in the
// same goroutine, into a writer that only counts the bytes (no network,
// no client decoding). Its sub-benchmarks are the list calls a client
// pages through: ListObjectsV2 (plain, with fetch-owner and
// encoding-type=url, and with a prefix and a delimiter), ListObjects (v1)
// and ListObjectVersions, on a bucket of unlabelled objects; then, on a
// vault of labelled objects of which a fifth are hidden from the caller
// (an ally), with second versions and delete markers
// (listBenchLabelled), ListObjectsV2 plain, by delimiter (50 common
// prefixes, each probed for something readable) and under one prefix,
// and ListObjectVersions.
//
//	go test -run '^$' -bench ListHandler -count 6 ./s3/
func BenchmarkListHandler(b *testing.B) {
	h, _ := listBenchHarness(b)
	if b.Failed() {
		return
	}
	v2 := func(base string) listBenchCase {
		return listBenchCase{base, func(body string) string {
			if t := between(body, "<NextContinuationToken>", "</NextContinuationToken>"); t != "" {
				return base + "&continuation-token=" + url.QueryEscape(t)
			}
			return ""
		}}
	}
	versions := func(base string) listBenchCase {
		return listBenchCase{base, func(body string) string {
			if between(body, "<IsTruncated>", "</IsTruncated>") != "true" {
				return ""
			}
			return base + "&key-marker=" + url.QueryEscape(between(body, "<NextKeyMarker>", "</NextKeyMarker>")) +
				"&version-id-marker=" + url.QueryEscape(between(body, "<NextVersionIdMarker>", "</NextVersionIdMarker>"))
		}}
	}
	runListBench(b, h, alice, map[string]listBenchCase{
		"v2":           v2("/list?list-type=2&max-keys=1000"),
		"v2-owner-url": v2("/list?list-type=2&max-keys=1000&fetch-owner=true&encoding-type=url"),
		"v2-delim":     v2("/list?list-type=2&max-keys=1000&prefix=dir%2F&delimiter=%2F"),
		"v1": {"/list?max-keys=1000", func(body string) string {
			if between(body, "<IsTruncated>", "</IsTruncated>") != "true" {
				return ""
			}
			i := strings.LastIndex(body, "<Key>")
			return "/list?max-keys=1000&marker=" + url.QueryEscape(between(body[i:], "<Key>", "</Key>"))
		}},
		"versions": versions("/list?versions&max-keys=1000"),
	}, []string{"v2", "v2-owner-url", "v2-delim", "v1", "versions"})
	lh := listBenchLabelled(b)
	if b.Failed() {
		return
	}
	runListBench(b, lh.harness, rolesCred("ally"), map[string]listBenchCase{
		"labels-v2":           v2("/reg?list-type=2&max-keys=1000"),
		"labels-delim":        v2("/reg?list-type=2&max-keys=1000&delimiter=%2F"),
		"labels-prefix-delim": v2("/reg?list-type=2&max-keys=1000&prefix=d07%2F&delimiter=%2F"),
		"labels-versions":     versions("/reg?versions&max-keys=1000"),
	}, []string{"labels-v2", "labels-delim", "labels-prefix-delim", "labels-versions"})
}

// listBenchCase is a listing a client pages through: its first request's
// path, and next, the path that continues after a page's body, or "".
type listBenchCase struct {
	first string
	next  func(body string) string
}

// runListBench runs the cases named in order as sub-benchmarks: every page
// of each, presigned once for cred, served by h's handler in turn.
func runListBench(b *testing.B, h *harness, cred s3.Credential, cases map[string]listBenchCase, order []string) {
	handler := h.srv.Config.Handler
	for _, name := range order {
		c := cases[name]
		// The pages' URLs, presigned once (signing is the client's cost).
		var urls []string
		keys := 0
		for path := c.first; path != ""; {
			r := h.do(rawRequest{method: "GET", path: path, as: &cred})
			if r.status != 200 {
				b.Fatalf("%s: %d %s", path, r.status, r.body)
			}
			keys += strings.Count(string(r.body), "<Key>") + strings.Count(string(r.body), "<Prefix>")
			urls = append(urls, h.presign("GET", path, cred, time.Now(), time.Hour))
			path = c.next(string(r.body))
		}
		if keys == 0 {
			b.Fatalf("%s: listed nothing", name)
		}
		b.Run(name, func(b *testing.B) {
			var w countingWriter
			cpu := benchutil.ProcessCPU()
			for b.Loop() {
				for _, u := range urls {
					req := httptest.NewRequest("GET", u, nil)
					w.reset()
					handler.ServeHTTP(&w, req)
					if w.status != 200 {
						b.Fatalf("%s: status %d", u, w.status)
					}
				}
			}
			b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "keys/s")
			// The process's CPU (the garbage collector's included) is
			// steadier than the time on a shared machine.
			b.ReportMetric(float64(benchutil.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// listBenchLabelled starts a roles harness whose vault "reg" holds
// listBenchObjects one-byte objects d00/obj-0000 ... d49/obj-4999, labelled:
// every fifth one NATO SECRET releasable to EST only (hidden from the
// ally), the others rolesLabel; every tenth has a second version and every
// 25th a delete marker on top.
func listBenchLabelled(b *testing.B) *rolesHarness {
	h := newRolesHarness(b)
	ctx := h.as("admin")
	var wg sync.WaitGroup
	keys := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range keys {
				key := fmt.Sprintf("d%02d/obj-%04d", i/100, i)
				l := rolesLabel
				if i%5 == 4 {
					l = "NATO SECRET//REL TO EST"
				}
				n := 1
				if i%10 == 0 {
					n = 2
				}
				for range n {
					if _, err := h.n.Engine.Put(ctx, "reg", key, strings.NewReader("x"), vault.PutOptions{Size: 1, Label: l}); err != nil {
						b.Error(err)
						return
					}
				}
				if i%25 == 0 {
					if _, err := h.n.Engine.Delete(ctx, "reg", key, vault.DeleteOptions{}); err != nil {
						b.Error(err)
					}
				}
			}
		})
	}
	for i := range listBenchObjects {
		keys <- i
	}
	close(keys)
	wg.Wait()
	return h
}

// between returns what s holds between the first open and the close after
// it, or "".
func between(s, open, close string) string {
	_, rest, ok := strings.Cut(s, open)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, close)
	return v
}

// countingWriter is an http.ResponseWriter that keeps the status and
// counts the body's bytes.
type countingWriter struct {
	header http.Header
	status int
	n      int
}

func (w *countingWriter) reset() { w.header, w.status, w.n = http.Header{}, 0, 0 }

func (w *countingWriter) Header() http.Header { return w.header }

func (w *countingWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}
