package s3_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
)

// listingKeys is a small tree for the listing tests, in the order S3
// lists it (byte order: 'é' sorts after 'z').
var listingKeys = []string{"a", "b/1", "b/2", "b/c/3", "c", "d/1", "z", "é"}

// listV2 lists one page with ListObjectsV2 and returns its keys and common
// prefixes in one slice, prefixes marked with a trailing "(p)".
func listV2(t *testing.T, c *awss3.Client, in *awss3.ListObjectsV2Input) ([]string, *awss3.ListObjectsV2Output) {
	t.Helper()
	out, err := c.ListObjectsV2(t.Context(), in)
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	var got []string
	for _, o := range out.Contents {
		got = append(got, aws.ToString(o.Key))
	}
	for _, p := range out.CommonPrefixes {
		got = append(got, aws.ToString(p.Prefix)+"(p)")
	}
	return got, out
}

func listV1(t *testing.T, c *awss3.Client, in *awss3.ListObjectsInput) ([]string, *awss3.ListObjectsOutput) {
	t.Helper()
	out, err := c.ListObjects(t.Context(), in)
	if err != nil {
		t.Fatalf("ListObjects: %v", err)
	}
	var got []string
	for _, o := range out.Contents {
		got = append(got, aws.ToString(o.Key))
	}
	for _, p := range out.CommonPrefixes {
		got = append(got, aws.ToString(p.Prefix)+"(p)")
	}
	return got, out
}

func TestListObjects(t *testing.T) {
	h := newHarness(t)
	h.bucket("tree")
	for _, k := range listingKeys {
		h.put("tree", k, []byte(k))
	}
	tests := []struct {
		name       string
		prefix     string
		delimiter  string
		max        int32
		after      string // start-after (v2) / marker (v1)
		want       []string
		truncated  bool
		nextMarker string // v1 NextMarker, set only with a delimiter
	}{
		{name: "everything", want: listingKeys},
		{name: "prefix", prefix: "b/", want: []string{"b/1", "b/2", "b/c/3"}},
		{name: "prefix not on a boundary", prefix: "b/c", want: []string{"b/c/3"}},
		{name: "prefix matching nothing", prefix: "x", want: nil},
		{name: "delimiter", delimiter: "/", want: []string{"a", "c", "z", "é", "b/(p)", "d/(p)"}},
		{name: "prefix and delimiter", prefix: "b/", delimiter: "/", want: []string{"b/1", "b/2", "b/c/(p)"}},
		{name: "other delimiter", delimiter: "c", want: []string{"a", "b/1", "b/2", "d/1", "z", "é", "b/c(p)", "c(p)"}},
		{name: "max keys", max: 3, want: []string{"a", "b/1", "b/2"}, truncated: true},
		{name: "max keys exact", max: 8, want: listingKeys},
		{name: "max keys counts prefixes", delimiter: "/", max: 2, want: []string{"a", "b/(p)"}, truncated: true, nextMarker: "b/"},
		{name: "start after", after: "b/2", want: []string{"b/c/3", "c", "d/1", "z", "é"}},
		{name: "start after a missing key", after: "b/15", want: []string{"b/2", "b/c/3", "c", "d/1", "z", "é"}},
		{name: "start after a common prefix", after: "b/", delimiter: "/", want: []string{"c", "z", "é", "d/(p)"}},
		{name: "start after the last key", after: "é", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/v2", func(t *testing.T) {
			in := &awss3.ListObjectsV2Input{Bucket: aws.String("tree"), Prefix: aws.String(tt.prefix), Delimiter: aws.String(tt.delimiter), StartAfter: aws.String(tt.after)}
			if tt.max != 0 {
				in.MaxKeys = aws.Int32(tt.max)
			}
			got, out := listV2(t, h.sdk, in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if aws.ToBool(out.IsTruncated) != tt.truncated {
				t.Errorf("IsTruncated %v, want %v", aws.ToBool(out.IsTruncated), tt.truncated)
			}
			if int(aws.ToInt32(out.KeyCount)) != len(tt.want) {
				t.Errorf("KeyCount %d, want %d", aws.ToInt32(out.KeyCount), len(tt.want))
			}
			if tt.truncated == (aws.ToString(out.NextContinuationToken) == "") {
				t.Errorf("NextContinuationToken %q with IsTruncated %v", aws.ToString(out.NextContinuationToken), tt.truncated)
			}
		})
		t.Run(tt.name+"/v1", func(t *testing.T) {
			in := &awss3.ListObjectsInput{Bucket: aws.String("tree"), Prefix: aws.String(tt.prefix), Delimiter: aws.String(tt.delimiter), Marker: aws.String(tt.after)}
			if tt.max != 0 {
				in.MaxKeys = aws.Int32(tt.max)
			}
			got, out := listV1(t, h.sdk, in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if aws.ToBool(out.IsTruncated) != tt.truncated {
				t.Errorf("IsTruncated %v, want %v", aws.ToBool(out.IsTruncated), tt.truncated)
			}
			if aws.ToString(out.NextMarker) != tt.nextMarker {
				t.Errorf("NextMarker %q, want %q", aws.ToString(out.NextMarker), tt.nextMarker)
			}
			if aws.ToString(out.Marker) != tt.after {
				t.Errorf("Marker %q, want %q", aws.ToString(out.Marker), tt.after)
			}
		})
	}
}

// Paging one entry at a time with a delimiter visits each key and each
// common prefix exactly once: a page that ends on a common prefix must not
// resume inside it.
func TestListObjectsPagingOverPrefixes(t *testing.T) {
	h := newHarness(t)
	h.bucket("pages")
	for _, k := range listingKeys {
		h.put("pages", k, []byte(k))
	}
	want := []string{"a", "b/(p)", "c", "d/(p)", "z", "é"}
	t.Run("v2", func(t *testing.T) {
		var got []string
		in := &awss3.ListObjectsV2Input{Bucket: aws.String("pages"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(1)}
		for range 20 {
			page, out := listV2(t, h.sdk, in)
			got = append(got, page...)
			if !aws.ToBool(out.IsTruncated) {
				break
			}
			if aws.ToString(out.ContinuationToken) != aws.ToString(in.ContinuationToken) {
				t.Errorf("ContinuationToken echoed as %q, sent %q", aws.ToString(out.ContinuationToken), aws.ToString(in.ContinuationToken))
			}
			in.ContinuationToken = out.NextContinuationToken
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages %q, want %q", got, want)
		}
	})
	t.Run("v1", func(t *testing.T) {
		var got []string
		in := &awss3.ListObjectsInput{Bucket: aws.String("pages"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(1)}
		for range 20 {
			page, out := listV1(t, h.sdk, in)
			got = append(got, page...)
			if !aws.ToBool(out.IsTruncated) {
				break
			}
			in.Marker = out.NextMarker
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages %q, want %q", got, want)
		}
	})
	t.Run("continuation token wins over start-after", func(t *testing.T) {
		_, first := listV2(t, h.sdk, &awss3.ListObjectsV2Input{Bucket: aws.String("pages"), MaxKeys: aws.Int32(2)})
		got, _ := listV2(t, h.sdk, &awss3.ListObjectsV2Input{Bucket: aws.String("pages"), MaxKeys: aws.Int32(2), StartAfter: aws.String("d"), ContinuationToken: first.NextContinuationToken})
		if !slices.Equal(got, []string{"b/2", "b/c/3"}) {
			t.Errorf("got %q, want the page after the token", got)
		}
	})
}

func TestListObjectsURLEncoding(t *testing.T) {
	h := newHarness(t)
	h.bucket("enc")
	keys := []string{"dir one/a b", "dir one/ü+%", "plain", "x&y<z>"}
	for _, k := range keys {
		h.put("enc", k, []byte("x"))
	}
	type result struct {
		Prefix         string `xml:"Prefix"`
		Delimiter      string `xml:"Delimiter"`
		StartAfter     string `xml:"StartAfter"`
		EncodingType   string `xml:"EncodingType"`
		Contents       []struct{ Key string }
		CommonPrefixes []struct{ Prefix string }
	}
	list := func(t *testing.T, query string) result {
		t.Helper()
		r := h.do(rawRequest{method: "GET", path: "/enc?" + query, as: &alice})
		if r.status != 200 {
			t.Fatalf("status %d\n%s", r.status, r.body)
		}
		var res result
		if err := xml.Unmarshal(r.body, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, v := range []string{"list-type=2&", ""} {
		name := "v1"
		if v != "" {
			name = "v2"
		}
		t.Run(name, func(t *testing.T) {
			res := list(t, v+"encoding-type=url")
			var got []string
			for _, c := range res.Contents {
				got = append(got, c.Key)
			}
			want := []string{"dir%20one/a%20b", "dir%20one/%C3%BC%2B%25", "plain", "x%26y%3Cz%3E"}
			if !slices.Equal(got, want) || res.EncodingType != "url" {
				t.Errorf("keys %q (EncodingType %q), want %q", got, res.EncodingType, want)
			}
			for i, k := range got {
				if d, err := url.PathUnescape(k); err != nil || d != keys[i] {
					t.Errorf("%q decodes to %q, %v; want %q", k, d, err, keys[i])
				}
			}
			res = list(t, v+"encoding-type=url&delimiter=%20&prefix=dir%20")
			// v1 returns Prefix as given (S3 does, and botocore does
			// not decode it); v2 encodes it.
			wantPrefix := "dir%20"
			if name == "v1" {
				wantPrefix = "dir "
			}
			if res.Prefix != wantPrefix || res.Delimiter != "%20" || len(res.CommonPrefixes) != 1 || res.CommonPrefixes[0].Prefix != "dir%20one/a%20" {
				t.Errorf("encoded prefix %q delimiter %q common prefixes %+v", res.Prefix, res.Delimiter, res.CommonPrefixes)
			}
			// Without encoding-type the XML carries the keys as they are.
			res = list(t, v+"prefix=x")
			if len(res.Contents) != 1 || res.Contents[0].Key != "x&y<z>" {
				t.Errorf("unencoded listing %+v", res.Contents)
			}
		})
	}
}

// An empty continuation-token is a first page, and is echoed, empty, as S3
// does (clients compare it with what they sent).
func TestListV2EmptyContinuationToken(t *testing.T) {
	h := newHarness(t)
	h.bucket("tok")
	h.put("tok", "a", []byte("x"))
	r := h.do(rawRequest{method: "GET", path: "/tok?list-type=2&continuation-token=", as: &alice})
	if r.status != 200 {
		t.Fatalf("status %d\n%s", r.status, r.body)
	}
	var res struct {
		ContinuationToken *string `xml:"ContinuationToken"`
		Contents          []struct{ Key string }
	}
	if err := xml.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	if res.ContinuationToken == nil || *res.ContinuationToken != "" || len(res.Contents) != 1 {
		t.Errorf("ContinuationToken %v, %d keys; want an empty element and 1 key\n%s", res.ContinuationToken, len(res.Contents), r.body)
	}
	// Without the parameter there is no element.
	r = h.do(rawRequest{method: "GET", path: "/tok?list-type=2", as: &alice})
	if strings.Contains(string(r.body), "<ContinuationToken>") {
		t.Errorf("ContinuationToken without one sent:\n%s", r.body)
	}
}

func TestListObjectsErrors(t *testing.T) {
	h := newHarness(t)
	h.bucket("errs")
	h.put("errs", "a", []byte("x"))
	tests := []struct {
		name, path, code string
		status           int
	}{
		{"no such bucket v1", "/nosuch", "NoSuchBucket", 404},
		{"no such bucket v2", "/nosuch?list-type=2", "NoSuchBucket", 404},
		{"no such bucket with max-keys 0", "/nosuch?list-type=2&max-keys=0", "NoSuchBucket", 404},
		{"no such bucket versions", "/nosuch?versions", "NoSuchBucket", 404},
		{"no such bucket versions with max-keys 0", "/nosuch?versions&max-keys=0", "NoSuchBucket", 404},
		{"no such bucket uploads", "/nosuch?uploads", "NoSuchBucket", 404},
		{"negative max-keys", "/errs?list-type=2&max-keys=-1", "InvalidArgument", 400},
		{"non-numeric max-keys", "/errs?max-keys=ten", "InvalidArgument", 400},
		{"unknown encoding", "/errs?list-type=2&encoding-type=base64", "InvalidArgument", 400},
		{"bad continuation token", "/errs?list-type=2&continuation-token=%21%21%21", "InvalidArgument", 400},
		{"version marker without key marker", "/errs?versions&version-id-marker=abc", "InvalidArgument", 400},
		{"bad version marker", "/errs?versions&key-marker=a&version-id-marker=abc", "InvalidArgument", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.do(rawRequest{method: "GET", path: tt.path, as: &alice}).wantError(t, tt.code, tt.status)
		})
	}
	t.Run("max-keys capped at 1000", func(t *testing.T) {
		_, out := listV2(t, h.sdk, &awss3.ListObjectsV2Input{Bucket: aws.String("errs"), MaxKeys: aws.Int32(5000)})
		if aws.ToInt32(out.MaxKeys) != 1000 {
			t.Errorf("MaxKeys %d, want 1000", aws.ToInt32(out.MaxKeys))
		}
	})
}

// putMany stores n small objects named by name(i), with a few workers.
func putMany(t *testing.T, h *harness, bucket string, n int, name func(int) string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				_, err := h.sdk.PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(name(i)), Body: strings.NewReader(name(i))})
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", name(i), err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestListManyKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("puts 2500 objects")
	}
	h := newHarness(t)
	// One shard per object keeps 2500 puts quick; listing is the subject.
	r := h.do(rawRequest{method: "PUT", path: "/many", header: map[string][]string{"X-Embassy-Erasure": {"1+0"}}, as: &alice})
	if r.status != 200 {
		t.Fatalf("create bucket: %d\n%s", r.status, r.body)
	}
	const n = 2500
	name := func(i int) string { return fmt.Sprintf("dir%d/key-%05d", i%3, i) }
	putMany(t, h, "many", n, name)
	want := make([]string, n)
	for i := range n {
		want[i] = name(i)
	}
	slices.Sort(want)
	ctx := t.Context()
	check := func(t *testing.T, got []string, pages int) {
		t.Helper()
		if !slices.Equal(got, want) {
			seen := map[string]int{}
			for _, k := range got {
				seen[k]++
			}
			for _, k := range want {
				if seen[k] != 1 {
					t.Errorf("%s listed %d times", k, seen[k])
				}
			}
			t.Fatalf("listed %d keys, want %d in order", len(got), len(want))
		}
		if pages < 2 {
			t.Errorf("%d pages: the listing never paged", pages)
		}
	}
	t.Run("sdk v2 paginator", func(t *testing.T) {
		var got []string
		pages := 0
		p := awss3.NewListObjectsV2Paginator(h.sdk, &awss3.ListObjectsV2Input{Bucket: aws.String("many")})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, o := range out.Contents {
				got = append(got, aws.ToString(o.Key))
			}
		}
		check(t, got, pages)
	})
	t.Run("sdk v2 paginator with small pages", func(t *testing.T) {
		var got []string
		pages := 0
		p := awss3.NewListObjectsV2Paginator(h.sdkBob, &awss3.ListObjectsV2Input{Bucket: aws.String("many"), MaxKeys: aws.Int32(333)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, o := range out.Contents {
				got = append(got, aws.ToString(o.Key))
			}
		}
		check(t, got, pages)
	})
	t.Run("sdk versions paginator", func(t *testing.T) {
		var got []string
		pages := 0
		p := awss3.NewListObjectVersionsPaginator(h.sdk, &awss3.ListObjectVersionsInput{Bucket: aws.String("many"), MaxKeys: aws.Int32(700)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, v := range out.Versions {
				got = append(got, aws.ToString(v.Key))
			}
		}
		check(t, got, pages)
	})
	t.Run("sdk v1 by marker", func(t *testing.T) {
		var got []string
		pages := 0
		in := &awss3.ListObjectsInput{Bucket: aws.String("many")}
		for {
			keys, out := listV1(t, h.sdk, in)
			pages++
			got = append(got, keys...)
			if !aws.ToBool(out.IsTruncated) {
				break
			}
			// Without a delimiter S3 sends no NextMarker: the client
			// resumes after the last key.
			in.Marker = aws.String(keys[len(keys)-1])
		}
		check(t, got, pages)
	})
	for _, v1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("minio v1=%v", v1), func(t *testing.T) {
			var got []string
			for o := range h.minio(bob).ListObjects(ctx, "many", minio.ListObjectsOptions{Recursive: true, UseV1: v1}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				got = append(got, o.Key)
			}
			check(t, got, 3)
		})
	}
	t.Run("delimiter", func(t *testing.T) {
		got, _ := listV2(t, h.sdk, &awss3.ListObjectsV2Input{Bucket: aws.String("many"), Delimiter: aws.String("/")})
		if !slices.Equal(got, []string{"dir0/(p)", "dir1/(p)", "dir2/(p)"}) {
			t.Errorf("common prefixes %q", got)
		}
	})
}

func TestListObjectVersionsPaging(t *testing.T) {
	h := newHarness(t)
	h.bucket("vpage")
	ctx := t.Context()
	type entry struct {
		key, id string
		marker  bool
	}
	// a: three versions then a delete marker; b: one version; c: only a
	// delete marker; d: two versions.
	var want []entry
	add := func(key string, n int, marker bool) {
		var es []entry
		for i := range n {
			es = append(es, entry{key, h.put("vpage", key, []byte(fmt.Sprint(key, i))), false})
		}
		if marker {
			out, err := h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("vpage"), Key: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, entry{key, aws.ToString(out.VersionId), true})
		}
		slices.Reverse(es) // newest first
		want = append(want, es...)
	}
	add("a", 3, true)
	add("b", 1, false)
	add("c", 0, true)
	add("d", 2, false)

	type versionEntry struct {
		XMLName   xml.Name
		Key       string
		VersionId string
		IsLatest  bool
	}
	// list returns the entries of one page in listing order. The SDK splits
	// versions and markers into two lists; the raw XML keeps their order.
	type page struct {
		IsTruncated         bool
		NextKeyMarker       string
		NextVersionIdMarker string
		Entries             []versionEntry `xml:",any"`
	}
	list := func(t *testing.T, query string) page {
		t.Helper()
		r := h.do(rawRequest{method: "GET", path: "/vpage?versions" + query, as: &alice})
		if r.status != 200 {
			t.Fatalf("status %d\n%s", r.status, r.body)
		}
		var p page
		if err := xml.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		// Keep only the Version and DeleteMarker elements.
		p.Entries = slices.DeleteFunc(p.Entries, func(e versionEntry) bool {
			return e.XMLName.Local != "Version" && e.XMLName.Local != "DeleteMarker"
		})
		return p
	}
	full := list(t, "")
	var got []entry
	latest := map[string]bool{}
	for _, e := range full.Entries {
		got = append(got, entry{e.Key, e.VersionId, e.XMLName.Local == "DeleteMarker"})
		if e.IsLatest {
			if latest[e.Key] {
				t.Errorf("%s has two latest versions", e.Key)
			}
			latest[e.Key] = true
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("versions\n%v\nwant\n%v", got, want)
	}
	// The newest entry of each key, and only it, is the latest.
	for _, e := range full.Entries {
		newest := want[slices.IndexFunc(want, func(w entry) bool { return w.key == e.Key })].id
		if e.IsLatest != (e.VersionId == newest) {
			t.Errorf("%s %s: IsLatest %v", e.Key, e.VersionId, e.IsLatest)
		}
	}
	for _, max := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprintf("max-keys=%d", max), func(t *testing.T) {
			var got []entry
			q := ""
			for range 20 {
				p := list(t, fmt.Sprintf("&max-keys=%d%s", max, q))
				for _, e := range p.Entries {
					got = append(got, entry{e.Key, e.VersionId, e.XMLName.Local == "DeleteMarker"})
				}
				if len(p.Entries) > max {
					t.Errorf("page of %d entries with max-keys %d", len(p.Entries), max)
				}
				if !p.IsTruncated {
					break
				}
				if p.NextKeyMarker == "" {
					t.Fatalf("truncated page without NextKeyMarker")
				}
				q = "&key-marker=" + url.QueryEscape(p.NextKeyMarker)
				if p.NextVersionIdMarker != "" {
					q += "&version-id-marker=" + url.QueryEscape(p.NextVersionIdMarker)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged\n%v\nwant\n%v", got, want)
			}
		})
	}
	t.Run("sdk paginator", func(t *testing.T) {
		var versions, markers int
		p := awss3.NewListObjectVersionsPaginator(h.sdk, &awss3.ListObjectVersionsInput{Bucket: aws.String("vpage"), MaxKeys: aws.Int32(2)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			versions += len(out.Versions)
			markers += len(out.DeleteMarkers)
		}
		if versions != 6 || markers != 2 {
			t.Errorf("%d versions and %d markers, want 6 and 2", versions, markers)
		}
	})
	t.Run("key marker alone skips the key", func(t *testing.T) {
		p := list(t, "&key-marker=a")
		if len(p.Entries) == 0 || p.Entries[0].Key != "b" {
			t.Errorf("after key-marker=a the listing starts at %+v, want b", p.Entries[:min(1, len(p.Entries))])
		}
	})
	t.Run("prefix", func(t *testing.T) {
		p := list(t, "&prefix=d")
		if len(p.Entries) != 2 || p.Entries[0].Key != "d" || p.Entries[1].Key != "d" {
			t.Errorf("prefix d: %+v", p.Entries)
		}
	})
}

// A start-after (or marker, or key-marker) that a client picks inside a
// common prefix still returns that prefix when keys after the marker lie
// under it, as S3 does: S3 skips a whole common prefix only when the marker
// is that prefix (which is what its own NextMarker and continuation tokens
// are).
//
// Known bug, not in this package: index/boltindex List (bolt.go:442-448)
// and Versions (bolt.go:536-543) skip the whole common prefix containing
// the marker. Suggested fix: skip it only when the marker ends at the
// delimiter, i.e. add `&& len(o.Prefix)+i+len(o.Delimiter) == len(o.After)`
// (KeyMarker in Versions) to the condition; otherwise seek past the marker
// and let the loop roll the remaining keys up.
func TestListStartAfterInsideCommonPrefix(t *testing.T) {
	h := newHarness(t)
	h.bucket("inside")
	for _, k := range listingKeys {
		h.put("inside", k, []byte(k))
	}
	want := []string{"c", "z", "é", "b/(p)", "d/(p)"}
	got, _ := listV2(t, h.sdk, &awss3.ListObjectsV2Input{Bucket: aws.String("inside"), Delimiter: aws.String("/"), StartAfter: aws.String("b/1")})
	if !slices.Equal(got, want) {
		t.Errorf("v2 start-after b/1: %q, want %q", got, want)
	}
	got, _ = listV1(t, h.sdk, &awss3.ListObjectsInput{Bucket: aws.String("inside"), Delimiter: aws.String("/"), Marker: aws.String("b/1")})
	if !slices.Equal(got, want) {
		t.Errorf("v1 marker b/1: %q, want %q", got, want)
	}
	vs, err := h.sdk.ListObjectVersions(t.Context(), &awss3.ListObjectVersionsInput{Bucket: aws.String("inside"), Delimiter: aws.String("/"), KeyMarker: aws.String("b/1")})
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for _, p := range vs.CommonPrefixes {
		prefixes = append(prefixes, aws.ToString(p.Prefix))
	}
	if !slices.Equal(prefixes, []string{"b/", "d/"}) {
		t.Errorf("versions key-marker b/1: common prefixes %q, want [b/ d/]", prefixes)
	}
}
