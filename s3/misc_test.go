package s3_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// A body shorter than its declared Content-Length stores nothing.
func TestIncompleteBody(t *testing.T) {
	h := newHarness(t)
	h.bucket("short")
	for _, size := range []int{100, 3 * mib} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			key := fmt.Sprintf("k%d", size)
			req := h.newRequest(rawRequest{method: "PUT", path: "/short/" + key, as: &alice, payload: "UNSIGNED-PAYLOAD", contentLength: int64(size)})
			conn, err := net.Dial("tcp", h.host)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			var b strings.Builder
			fmt.Fprintf(&b, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", req.URL.RequestURI(), h.host, size)
			for k, vs := range req.Header {
				for _, v := range vs {
					fmt.Fprintf(&b, "%s: %s\r\n", k, v)
				}
			}
			b.WriteString("\r\n")
			io.WriteString(conn, b.String())
			conn.Write(pattern(size/2, 1))
			conn.(*net.TCPConn).CloseWrite()
			// The answer comes once the handler has finished with the body.
			resp, err := readResponse(conn)
			if err != nil {
				t.Fatalf("no answer to a short body: %v", err)
			}
			// IncompleteBody, or RequestTimeout when net/http cancelled the
			// request on the half-closed connection before the engine saw
			// the short body: a 400 either way.
			if d := resp.wantErrorStatus(t, 400); d.Code != "IncompleteBody" && d.Code != "RequestTimeout" {
				t.Errorf("code %s, want IncompleteBody", d.Code)
			}
			if h.stored(t, "short", key) {
				t.Errorf("a short body was stored")
			}
		})
	}
}

func readResponse(conn net.Conn) (rawResponse, error) {
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return rawResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}, err
}

func TestPartNumberOfSinglePut(t *testing.T) {
	h := newHarness(t)
	h.bucket("single")
	body := []byte("one part")
	h.put("single", "k", body)
	for _, method := range []string{"GET", "HEAD"} {
		r := h.do(rawRequest{method: method, path: "/single/k?partNumber=1", as: &alice})
		if r.status != 200 {
			t.Errorf("%s partNumber=1 of a single put: %d, want 200 (the whole object)\n%s", method, r.status, r.body)
		}
		if method == "GET" && !bytes.Equal(r.body, body) {
			t.Errorf("GET partNumber=1: %q", r.body)
		}
		r = h.do(rawRequest{method: method, path: "/single/k?partNumber=2", as: &alice})
		if r.status != 400 {
			t.Errorf("%s partNumber=2 of a single put: %d, want 400 (InvalidPart, as the conformance suite expects)", method, r.status)
		}
	}
}

func TestHeadDeleteMarkerVersion(t *testing.T) {
	h := newHarness(t)
	h.bucket("hdm")
	h.put("hdm", "k", []byte("x"))
	out, err := h.sdk.DeleteObject(t.Context(), &awss3.DeleteObjectInput{Bucket: aws.String("hdm"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	r := h.do(rawRequest{method: "HEAD", path: "/hdm/k?versionId=" + aws.ToString(out.VersionId), as: &alice})
	if r.status != 405 || r.header.Get("x-amz-delete-marker") != "true" || len(r.body) != 0 {
		t.Errorf("HEAD of a delete marker by id: %d, x-amz-delete-marker %q, body %q", r.status, r.header.Get("x-amz-delete-marker"), r.body)
	}
	// Lock and retention calls against a key whose latest version is a
	// delete marker are refused, not failed.
	for _, q := range []string{"retention", "legal-hold", "tagging"} {
		r := h.do(rawRequest{method: "GET", path: "/hdm/k?" + q, as: &alice})
		if r.status < 400 || r.status >= 500 {
			t.Errorf("GET ?%s on a deleted key: %d\n%s", q, r.status, r.body)
		}
	}
}

func TestStoredContentEncoding(t *testing.T) {
	h := newHarness(t)
	h.bucket("encoding")
	r := h.do(rawRequest{method: "PUT", path: "/encoding/k", body: []byte("gz"), header: http.Header{"Content-Encoding": {"gzip"}}, as: &alice})
	if r.status != 200 {
		t.Fatalf("put: %d\n%s", r.status, r.body)
	}
	r = h.do(rawRequest{method: "HEAD", path: "/encoding/k", as: &alice})
	if got := r.header.Get("Content-Encoding"); got != "gzip" {
		t.Errorf("Content-Encoding %q, want gzip", got)
	}
}

// Buckets whose names share a prefix do not see each other's objects,
// versions or uploads.
func TestBucketIsolation(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	for _, b := range []string{"iso", "iso-2", "isoa"} {
		h.bucket(b)
		h.put(b, "in-"+b, []byte(b))
		h.createUpload(t, b, "up-"+b)
	}
	for _, b := range []string{"iso", "iso-2", "isoa"} {
		list, err := h.sdk.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(b)})
		if err != nil || len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != "in-"+b {
			t.Errorf("%s lists %+v, %v", b, list.Contents, err)
		}
		vs, err := h.sdk.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(b)})
		if err != nil || len(vs.Versions) != 1 {
			t.Errorf("%s versions %+v, %v", b, vs.Versions, err)
		}
		ups, err := h.sdk.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(b)})
		if err != nil || len(ups.Uploads) != 1 || aws.ToString(ups.Uploads[0].Key) != "up-"+b {
			t.Errorf("%s uploads %+v, %v", b, ups.Uploads, err)
		}
		_, err = h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("in-iso")})
		if (err == nil) != (b == "iso") {
			t.Errorf("HEAD %s/in-iso: %v", b, err)
		}
	}
}

// A bucket whose only content is an upload in progress can be deleted, as
// on AWS: the upload is aborted with it (its end recorded, its parts
// removed), and does not outlive the vault into a new one of the same name.
func TestDeleteBucketWithOpenUpload(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.bucket("reborn")
	before := map[string]bool{}
	for _, f := range h.siteFiles() {
		before[f] = true
	}
	u := h.createUpload(t, "reborn", "k")
	p := u.mustPart(1, pattern(3*mib, 7))
	var shards []string
	for _, f := range h.siteFiles() {
		if !before[f] && strings.Contains(f, "/s/") {
			shards = append(shards, f)
		}
	}
	if len(shards) == 0 {
		t.Fatal("the part wrote no shard blobs")
	}
	// bob's upload goes too: deleting a bucket is an operator's act.
	if _, err := h.sdkBob.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("reborn"), Key: aws.String("b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.sdk.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("reborn")}); err != nil {
		t.Fatalf("delete a bucket with uploads in progress: %v", err)
	}
	h.bucket("reborn")
	ups, err := h.sdk.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String("reborn")})
	if err != nil || len(ups.Uploads) != 0 {
		t.Errorf("uploads in the new bucket: %+v, %v", ups.Uploads, err)
	}
	_, err = u.complete(p)
	wantAPIError(t, err, "NoSuchUpload", 404)
	if h.stored(t, "reborn", "k") {
		t.Errorf("the old vault's upload completed into the new vault")
	}
	// The part's shards are gone from the sites.
	now := map[string]bool{}
	for _, f := range h.siteFiles() {
		now[f] = true
	}
	for _, f := range shards {
		if now[f] {
			t.Errorf("a shard of the aborted upload is left: %s", f)
		}
	}
}

func TestListUploadsPaging(t *testing.T) {
	h := newHarness(t)
	h.bucket("uploads")
	var want []string
	for i := range 5 {
		u := h.createUpload(t, "uploads", fmt.Sprintf("k%d", i%3))
		want = append(want, u.key+" "+u.id)
	}
	slices.SortFunc(want, func(a, b string) int {
		// Keys in order; uploads of one key in the order S3 uses
		// (by id here, since ids sort as they were created).
		return strings.Compare(a, b)
	})
	var got []string
	p := awss3.NewListMultipartUploadsPaginator(h.sdk, &awss3.ListMultipartUploadsInput{Bucket: aws.String("uploads"), MaxUploads: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() && pages < 10 {
		out, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, u := range out.Uploads {
			got = append(got, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("uploads in %d pages:\n%q\nwant\n%q", pages, got, want)
	}
	out, err := h.sdk.ListMultipartUploads(t.Context(), &awss3.ListMultipartUploadsInput{Bucket: aws.String("uploads"), MaxUploads: aws.Int32(0)})
	if err != nil || len(out.Uploads) != 0 {
		t.Errorf("max-uploads=0 listed %d uploads (%v)", len(out.Uploads), err)
	}
}

// Concurrent puts to one key each make a version; the latest is one of
// them and reads back whole.
func TestConcurrentPutsOneKey(t *testing.T) {
	h := newHarness(t)
	h.bucket("race")
	const n = 12
	bodies := map[string]bool{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		body := bytes.Repeat([]byte{byte('a' + i)}, mib+i)
		bodies[string(body)] = true
		wg.Go(func() {
			_, err := h.sdk.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("race"), Key: aws.String("k"), Body: bytes.NewReader(body)})
			if err != nil {
				mu.Lock()
				t.Errorf("put %d: %v", i, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	vs, err := h.sdk.ListObjectVersions(t.Context(), &awss3.ListObjectVersionsInput{Bucket: aws.String("race")})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Versions) != n {
		t.Errorf("%d versions, want %d", len(vs.Versions), n)
	}
	latest := 0
	for _, v := range vs.Versions {
		if aws.ToBool(v.IsLatest) {
			latest++
		}
	}
	if latest != 1 {
		t.Errorf("%d versions marked latest", latest)
	}
	if got := h.get("race", "k"); !bodies[string(got)] {
		t.Errorf("latest holds %d bytes matching no put", len(got))
	}
}

func TestInvalidLabel(t *testing.T) {
	h := newHarness(t)
	h.bucket("labels")
	r := h.do(rawRequest{method: "PUT", path: "/labels/k", body: []byte("x"), header: http.Header{"X-Embassy-Label": {"NATO BANANA//REL TO NOWHERE"}}, as: &alice})
	r.wantError(t, "InvalidArgument", 400)
	if h.stored(t, "labels", "k") {
		t.Errorf("object stored with an invalid label")
	}
}

// A write naming a sub-resource embassy does not implement is refused: it
// must not fall through to a plain PUT that creates a bucket or overwrites
// an object with the sub-resource's configuration document.
func TestUnknownSubresourceWrites(t *testing.T) {
	h := newHarness(t)
	h.bucket("subres")
	h.put("subres", "k", []byte("original"))
	tests := []struct {
		method, path, body string
	}{
		{"PUT", "/newbucket?publicAccessBlock", ""},
		{"PUT", "/subres?publicAccessBlock", `<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls></PublicAccessBlockConfiguration>`},
		{"PUT", "/subres?ownershipControls", `<OwnershipControls/>`},
		{"PUT", "/subres?accelerate", `<AccelerateConfiguration/>`},
		{"PUT", "/subres/k?renameObject", ""},
		{"PUT", "/subres/k?encryption", `<ObjectEncryption/>`},
		{"PUT", "/subres/k?restore", `<RestoreRequest/>`},
		{"POST", "/subres/k?select&select-type=2", `<SelectObjectContentRequest/>`},
		{"DELETE", "/subres/k?annotation", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := h.do(rawRequest{method: tt.method, path: tt.path, body: []byte(tt.body), as: &alice})
			if r.status < 400 {
				t.Errorf("status %d: the request was carried out as something else", r.status)
			}
		})
	}
	if _, err := h.n.Engine.Vault("newbucket"); err == nil {
		t.Errorf("PUT ?publicAccessBlock created a bucket")
	}
	if got := string(h.get("subres", "k")); got != "original" {
		t.Errorf("object now %q", got)
	}
	vs, err := h.sdk.ListObjectVersions(t.Context(), &awss3.ListObjectVersionsInput{Bucket: aws.String("subres")})
	if err != nil || len(vs.Versions) != 1 || len(vs.DeleteMarkers) != 0 {
		t.Errorf("versions %d, markers %d (%v), want the one original", len(vs.Versions), len(vs.DeleteMarkers), err)
	}
	// The SDKs' x-id and presigned X-Amz-* parameters are not sub-resources.
	if r := h.do(rawRequest{method: "PUT", path: "/subres/x?x-id=PutObject", body: []byte("x"), as: &alice}); r.status != 200 {
		t.Errorf("PUT ?x-id=PutObject: %d\n%s", r.status, r.body)
	}
}

// A key holding a character XML 1.0 cannot carry comes back exactly only
// with encoding-type=url, as S3 documents.
func TestControlCharacterKey(t *testing.T) {
	h := newHarness(t)
	h.bucket("ctrl")
	key := "ctrl\x01char\x7f"
	h.put("ctrl", key, []byte("x"))
	r := h.do(rawRequest{method: "GET", path: "/ctrl?list-type=2&encoding-type=url", as: &alice})
	if !strings.Contains(string(r.body), "<Key>ctrl%01char%7F</Key>") {
		t.Errorf("url-encoded listing lost the key:\n%s", r.body)
	}
	if got := h.get("ctrl", key); string(got) != "x" {
		t.Errorf("get %q", got)
	}
}
