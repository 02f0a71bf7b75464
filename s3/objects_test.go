package s3_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"
)

const mib = 1 << 20

// The sizes around the 1 MiB stripe that every put/get path must get
// byte-identical: empty, one byte, one stripe less one, one stripe, one
// stripe and one byte, and several stripes.
var objectSizes = []struct {
	name string
	size int
}{
	{"empty", 0},
	{"one byte", 1},
	{"stripe less one", mib - 1},
	{"one stripe", mib},
	{"stripe and one", mib + 1},
	{"three stripes", 3 * mib},
}

func TestPutGetHeadSizes(t *testing.T) {
	h := newHarness(t)
	h.bucket("sizes")
	ctx := t.Context()
	mc := h.minio(bob)
	for i, sz := range objectSizes {
		t.Run(sz.name, func(t *testing.T) {
			body := pattern(sz.size, byte(i))
			key := "obj/" + strconv.Itoa(sz.size)
			put, err := h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("sizes"), Key: aws.String(key), Body: bytes.NewReader(body)})
			if err != nil {
				t.Fatalf("put: %v", err)
			}
			wantETag := `"` + md5hex(body) + `"`
			if got := aws.ToString(put.ETag); got != wantETag {
				t.Errorf("put ETag %s, want %s", got, wantETag)
			}
			get, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("sizes"), Key: aws.String(key)})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			got, err := io.ReadAll(get.Body)
			get.Body.Close()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("get returned %d bytes differing from the %d put", len(got), len(body))
			}
			if aws.ToString(get.ETag) != wantETag || aws.ToInt64(get.ContentLength) != int64(sz.size) {
				t.Errorf("get ETag %s length %d, want %s %d", aws.ToString(get.ETag), aws.ToInt64(get.ContentLength), wantETag, sz.size)
			}
			if aws.ToString(get.VersionId) != aws.ToString(put.VersionId) {
				t.Errorf("get version %s, put version %s", aws.ToString(get.VersionId), aws.ToString(put.VersionId))
			}
			head, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("sizes"), Key: aws.String(key)})
			if err != nil {
				t.Fatalf("head: %v", err)
			}
			if aws.ToString(head.ETag) != wantETag || aws.ToInt64(head.ContentLength) != int64(sz.size) || head.LastModified == nil {
				t.Errorf("head ETag %s length %d modified %v", aws.ToString(head.ETag), aws.ToInt64(head.ContentLength), head.LastModified)
			}
			// Another principal with another client reads the same bytes.
			o, err := mc.GetObject(ctx, "sizes", key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatalf("minio get: %v", err)
			}
			got, err = io.ReadAll(o)
			o.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("minio get: %d bytes, err %v; want the %d put", len(got), err, len(body))
			}
			// A raw GET: the HEAD answer has no body, the GET answer all of it.
			r := h.do(rawRequest{method: "HEAD", path: "/sizes/" + key, as: &alice})
			if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Length") != strconv.Itoa(sz.size) {
				t.Errorf("raw HEAD: status %d, body %d bytes, Content-Length %q", r.status, len(r.body), r.header.Get("Content-Length"))
			}
		})
	}
}

// Bodies put by minio-go (which streams with aws-chunked signing) and by a
// raw request with an unsigned payload read back the same.
func TestPutClients(t *testing.T) {
	h := newHarness(t)
	h.bucket("clients")
	ctx := t.Context()
	body := pattern(2*mib+17, 9)
	if _, err := h.minio(alice).PutObject(ctx, "clients", "minio", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("minio put: %v", err)
	}
	r := h.do(rawRequest{method: "PUT", path: "/clients/raw", body: body, as: &bob, payload: "UNSIGNED-PAYLOAD"})
	if r.status != 200 {
		t.Fatalf("raw unsigned put: %d\n%s", r.status, r.body)
	}
	for _, k := range []string{"minio", "raw"} {
		if got := h.get("clients", k); !bytes.Equal(got, body) {
			t.Errorf("%s: read %d bytes differing from the %d put", k, len(got), len(body))
		}
	}
}

func TestMetadataAndStoredHeaders(t *testing.T) {
	h := newHarness(t)
	h.bucket("meta")
	ctx := t.Context()
	expires := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	_, err := h.sdk.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String("meta"), Key: aws.String("doc"), Body: strings.NewReader("<p>hi</p>"),
		ContentType:        aws.String("text/html; charset=utf-8"),
		ContentDisposition: aws.String(`attachment; filename="report.html"`),
		CacheControl:       aws.String("max-age=60, private"),
		ContentLanguage:    aws.String("et-EE"),
		Expires:            aws.Time(expires),
		Metadata:           map[string]string{"colour": "blue", "owner-nation": "EST", "note": "spaces  inside"},
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, ct, cd, cc, cl string, meta map[string]string) {
		t.Helper()
		if ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if cd != `attachment; filename="report.html"` {
			t.Errorf("Content-Disposition %q", cd)
		}
		if cc != "max-age=60, private" {
			t.Errorf("Cache-Control %q", cc)
		}
		if cl != "et-EE" {
			t.Errorf("Content-Language %q", cl)
		}
		want := map[string]string{"colour": "blue", "owner-nation": "EST", "note": "spaces  inside"}
		got := map[string]string{}
		for k, v := range meta {
			got[strings.ToLower(k)] = v
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("metadata %v, want %v", got, want)
		}
	}
	head, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("meta"), Key: aws.String("doc")})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("head", func(t *testing.T) {
		check(t, aws.ToString(head.ContentType), aws.ToString(head.ContentDisposition), aws.ToString(head.CacheControl), aws.ToString(head.ContentLanguage), head.Metadata)
	})
	get, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("meta"), Key: aws.String("doc")})
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	t.Run("get", func(t *testing.T) {
		check(t, aws.ToString(get.ContentType), aws.ToString(get.ContentDisposition), aws.ToString(get.CacheControl), aws.ToString(get.ContentLanguage), get.Metadata)
	})
	r := h.do(rawRequest{method: "GET", path: "/meta/doc", as: &alice})
	if got := r.header.Get("Expires"); got != expires.Format(http.TimeFormat) {
		t.Errorf("Expires %q, want %q", got, expires.Format(http.TimeFormat))
	}
	if got := r.header.Get("x-amz-server-side-encryption"); got != "AES256" {
		t.Errorf("x-amz-server-side-encryption %q, want AES256", got)
	}
	// response-* query parameters override what is returned, not what is stored.
	r = h.do(rawRequest{method: "GET", path: "/meta/doc?response-content-type=text%2Fplain&response-cache-control=no-store", as: &alice})
	if r.header.Get("Content-Type") != "text/plain" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("overrides: Content-Type %q Cache-Control %q", r.header.Get("Content-Type"), r.header.Get("Cache-Control"))
	}
	head, err = h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("meta"), Key: aws.String("doc")})
	if err != nil || aws.ToString(head.ContentType) != "text/html; charset=utf-8" {
		t.Errorf("after override: Content-Type %q, %v", aws.ToString(head.ContentType), err)
	}
}

func TestContentTypeDefault(t *testing.T) {
	h := newHarness(t)
	h.bucket("ctype")
	r := h.do(rawRequest{method: "PUT", path: "/ctype/none", body: []byte("x"), as: &alice})
	if r.status != 200 {
		t.Fatalf("put: %d\n%s", r.status, r.body)
	}
	r = h.do(rawRequest{method: "HEAD", path: "/ctype/none", as: &alice})
	if got := r.header.Get("Content-Type"); got != "binary/octet-stream" {
		t.Errorf("Content-Type %q, want binary/octet-stream", got)
	}
}

func TestUserMetadataTooLarge(t *testing.T) {
	h := newHarness(t)
	h.bucket("bigmeta")
	hdr := http.Header{}
	hdr.Set("x-amz-meta-big", strings.Repeat("m", 2049))
	r := h.do(rawRequest{method: "PUT", path: "/bigmeta/k", body: []byte("x"), header: hdr, as: &alice})
	r.wantError(t, "MetadataTooLarge", http.StatusBadRequest)
	if r := h.do(rawRequest{method: "HEAD", path: "/bigmeta/k", as: &alice}); r.status != 404 {
		t.Errorf("object stored despite MetadataTooLarge: HEAD %d", r.status)
	}
}

func TestRange(t *testing.T) {
	h := newHarness(t)
	h.bucket("ranges")
	size := 2*mib + mib/2 + 3
	body := pattern(size, 3)
	h.put("ranges", "obj", body)
	h.put("ranges", "empty", nil)
	tests := []struct {
		name       string
		key        string
		rng        string
		status     int
		start, end int // inclusive, for 206
	}{
		{name: "first byte", rng: "bytes=0-0", status: 206, start: 0, end: 0},
		{name: "middle", rng: "bytes=10-19", status: 206, start: 10, end: 19},
		{name: "across a stripe boundary", rng: fmt.Sprintf("bytes=%d-%d", mib-10, mib+10), status: 206, start: mib - 10, end: mib + 10},
		{name: "across two boundaries", rng: fmt.Sprintf("bytes=%d-%d", mib-1, 2*mib), status: 206, start: mib - 1, end: 2 * mib},
		{name: "open ended", rng: "bytes=100-", status: 206, start: 100, end: size - 1},
		{name: "last byte open ended", rng: fmt.Sprintf("bytes=%d-", size-1), status: 206, start: size - 1, end: size - 1},
		{name: "suffix", rng: "bytes=-10", status: 206, start: size - 10, end: size - 1},
		{name: "suffix longer than object", rng: fmt.Sprintf("bytes=-%d", 2*size), status: 206, start: 0, end: size - 1},
		{name: "end past the object", rng: fmt.Sprintf("bytes=5-%d", 10*size), status: 206, start: 5, end: size - 1},
		{name: "whole object as a range", rng: fmt.Sprintf("bytes=0-%d", size-1), status: 206, start: 0, end: size - 1},
		{name: "start at size", rng: fmt.Sprintf("bytes=%d-", size), status: 416},
		{name: "start past size", rng: fmt.Sprintf("bytes=%d-%d", size+5, size+10), status: 416},
		{name: "empty suffix", rng: "bytes=-0", status: 416},
		{name: "range of an empty object", key: "empty", rng: "bytes=0-0", status: 416},
		{name: "suffix of an empty object", key: "empty", rng: "bytes=-1", status: 206, start: 0, end: -1},
		{name: "reversed range ignored", rng: "bytes=20-10", status: 200},
		{name: "several ranges ignored", rng: "bytes=0-1,5-6", status: 200},
		{name: "other unit ignored", rng: "items=0-1", status: 200},
		{name: "garbage ignored", rng: "bytes=a-b", status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, want := "obj", body
			if tt.key == "empty" {
				key, want = "empty", nil
			}
			hdr := http.Header{"Range": {tt.rng}}
			r := h.do(rawRequest{method: "GET", path: "/ranges/" + key, header: hdr, as: &alice})
			if r.status != tt.status {
				t.Fatalf("status %d, want %d\n%.300s", r.status, tt.status, r.body)
			}
			switch tt.status {
			case 416:
				d := r.wantError(t, "InvalidRange", 416)
				if d.RequestID == "" {
					t.Errorf("no RequestId")
				}
				if got, w := r.header.Get("Content-Range"), fmt.Sprintf("bytes */%d", len(want)); got != w {
					t.Errorf("Content-Range %q, want %q", got, w)
				}
			case 200:
				if !bytes.Equal(r.body, want) {
					t.Errorf("got %d bytes, want the whole %d", len(r.body), len(want))
				}
				if r.header.Get("Content-Range") != "" {
					t.Errorf("Content-Range %q on a 200", r.header.Get("Content-Range"))
				}
			case 206:
				if tt.end < tt.start {
					// S3 answers a suffix range of an empty object with the
					// (empty) object.
					if len(r.body) != 0 {
						t.Errorf("body %d bytes, want none", len(r.body))
					}
					return
				}
				if !bytes.Equal(r.body, want[tt.start:tt.end+1]) {
					t.Errorf("got %d bytes, want bytes %d-%d", len(r.body), tt.start, tt.end)
				}
				if got, w := r.header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", tt.start, tt.end, len(want)); got != w {
					t.Errorf("Content-Range %q, want %q", got, w)
				}
				if got, w := r.header.Get("Content-Length"), strconv.Itoa(tt.end-tt.start+1); got != w {
					t.Errorf("Content-Length %q, want %s", got, w)
				}
			}
		})
	}
	// The SDK's Range reaches the same bytes.
	out, err := h.sdk.GetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String("ranges"), Key: aws.String("obj"), Range: aws.String("bytes=1048570-1048580")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(got, body[1048570:1048581]) || aws.ToString(out.ContentRange) != fmt.Sprintf("bytes 1048570-1048580/%d", size) {
		t.Errorf("SDK range: %d bytes, Content-Range %q", len(got), aws.ToString(out.ContentRange))
	}
}

func TestConditionalGet(t *testing.T) {
	h := newHarness(t)
	h.bucket("cond")
	body := []byte("conditional body")
	h.put("cond", "k", body)
	head := h.do(rawRequest{method: "HEAD", path: "/cond/k", as: &alice})
	etag := head.header.Get("ETag")
	mod, err := http.ParseTime(head.header.Get("Last-Modified"))
	if err != nil {
		t.Fatalf("Last-Modified %q: %v", head.header.Get("Last-Modified"), err)
	}
	past := mod.Add(-time.Hour).Format(http.TimeFormat)
	future := mod.Add(time.Hour).Format(http.TimeFormat)
	exact := mod.Format(http.TimeFormat)
	tests := []struct {
		name    string
		headers [][2]string
		status  int
	}{
		{"if-match same", [][2]string{{"If-Match", etag}}, 200},
		{"if-match unquoted", [][2]string{{"If-Match", strings.Trim(etag, `"`)}}, 200},
		{"if-match star", [][2]string{{"If-Match", "*"}}, 200},
		{"if-match in a list", [][2]string{{"If-Match", `"0000", ` + etag}}, 200},
		{"if-match other", [][2]string{{"If-Match", `"0123456789abcdef0123456789abcdef"`}}, 412},
		{"if-none-match same", [][2]string{{"If-None-Match", etag}}, 304},
		{"if-none-match star", [][2]string{{"If-None-Match", "*"}}, 304},
		{"if-none-match other", [][2]string{{"If-None-Match", `"0123"`}}, 200},
		{"if-modified-since past", [][2]string{{"If-Modified-Since", past}}, 200},
		{"if-modified-since exact", [][2]string{{"If-Modified-Since", exact}}, 304},
		{"if-modified-since future", [][2]string{{"If-Modified-Since", future}}, 304},
		{"if-unmodified-since past", [][2]string{{"If-Unmodified-Since", past}}, 412},
		{"if-unmodified-since exact", [][2]string{{"If-Unmodified-Since", exact}}, 200},
		{"if-unmodified-since future", [][2]string{{"If-Unmodified-Since", future}}, 200},
		{"unparsable date ignored", [][2]string{{"If-Unmodified-Since", "yesterday"}}, 200},
		// S3's documented combinations.
		{"if-match true wins over if-unmodified-since false", [][2]string{{"If-Match", etag}, {"If-Unmodified-Since", past}}, 200},
		{"if-none-match false wins over if-modified-since true", [][2]string{{"If-None-Match", etag}, {"If-Modified-Since", past}}, 304},
		{"if-none-match true with if-modified-since false", [][2]string{{"If-None-Match", `"0123"`}, {"If-Modified-Since", future}}, 200},
		{"if-match false beats if-none-match", [][2]string{{"If-Match", `"0123"`}, {"If-None-Match", etag}}, 412},
	}
	for _, tt := range tests {
		for _, method := range []string{"GET", "HEAD"} {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				hdr := http.Header{}
				for _, kv := range tt.headers {
					hdr.Add(kv[0], kv[1])
				}
				r := h.do(rawRequest{method: method, path: "/cond/k", header: hdr, as: &alice})
				if r.status != tt.status {
					t.Fatalf("status %d, want %d\n%s", r.status, tt.status, r.body)
				}
				switch {
				case tt.status == 200 && method == "GET":
					if !bytes.Equal(r.body, body) {
						t.Errorf("body %q", r.body)
					}
				case tt.status == 304:
					if len(r.body) != 0 || r.header.Get("ETag") != etag {
						t.Errorf("304 with body %q, ETag %q", r.body, r.header.Get("ETag"))
					}
				case tt.status == 412 && method == "GET":
					r.wantError(t, "PreconditionFailed", 412)
				case method == "HEAD" && len(r.body) != 0:
					t.Errorf("HEAD answered with a body: %q", r.body)
				}
			})
		}
	}
}

func TestContentMD5(t *testing.T) {
	h := newHarness(t)
	h.bucket("md5")
	small := []byte("checked payload")
	big := pattern(3*mib+5, 4)
	tests := []struct {
		name string
		body []byte
		md5  string
		code string
	}{
		{name: "good", body: small, md5: md5b64(small)},
		{name: "good multi-stripe", body: big, md5: md5b64(big)},
		{name: "wrong digest", body: small, md5: md5b64([]byte("something else")), code: "BadDigest"},
		{name: "wrong digest multi-stripe", body: big, md5: md5b64(big[1:]), code: "BadDigest"},
		{name: "not base64", body: small, md5: "%%%", code: "InvalidDigest"},
		{name: "wrong length", body: small, md5: base64.StdEncoding.EncodeToString([]byte("short")), code: "InvalidDigest"},
	}
	for _, tt := range tests {
		for _, payload := range []string{"", "UNSIGNED-PAYLOAD"} {
			t.Run(tt.name+"/"+cmpOr(payload, "signed"), func(t *testing.T) {
				key := tt.name + cmpOr(payload, "signed")
				hdr := http.Header{"Content-Md5": {tt.md5}}
				r := h.do(rawRequest{method: "PUT", path: "/md5/" + strings.ReplaceAll(key, " ", "-"), body: tt.body, header: hdr, as: &alice, payload: payload})
				head := h.do(rawRequest{method: "HEAD", path: "/md5/" + strings.ReplaceAll(key, " ", "-"), as: &alice})
				if tt.code == "" {
					if r.status != 200 {
						t.Fatalf("status %d\n%s", r.status, r.body)
					}
					if got, want := r.header.Get("ETag"), `"`+md5hex(tt.body)+`"`; got != want {
						t.Errorf("ETag %s, want %s", got, want)
					}
					if head.status != 200 {
						t.Errorf("HEAD after put: %d", head.status)
					}
					return
				}
				r.wantError(t, tt.code, 400)
				if head.status != 404 {
					t.Errorf("HEAD after a refused put: %d, want 404 (nothing stored)", head.status)
				}
			})
		}
	}
	vs, err := h.sdk.ListObjectVersions(t.Context(), &awss3.ListObjectVersionsInput{Bucket: aws.String("md5")})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Versions) != 4 || len(vs.DeleteMarkers) != 0 {
		t.Errorf("%d versions and %d markers, want the 4 good puts only", len(vs.Versions), len(vs.DeleteMarkers))
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func crc32b64(b []byte) string {
	var s [4]byte
	binary.BigEndian.PutUint32(s[:], crc32.ChecksumIEEE(b))
	return base64.StdEncoding.EncodeToString(s[:])
}

func sha256b64(b []byte) string {
	s := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

func TestChecksums(t *testing.T) {
	h := newHarness(t)
	h.bucket("sums")
	ctx := t.Context()
	body := pattern(mib+100, 5)
	tests := []struct {
		alg  types.ChecksumAlgorithm
		want string
		get  func(*awss3.GetObjectOutput) *string
		head func(*awss3.HeadObjectOutput) *string
		put  func(*awss3.PutObjectOutput) *string
	}{
		{types.ChecksumAlgorithmCrc32, crc32b64(body),
			func(o *awss3.GetObjectOutput) *string { return o.ChecksumCRC32 },
			func(o *awss3.HeadObjectOutput) *string { return o.ChecksumCRC32 },
			func(o *awss3.PutObjectOutput) *string { return o.ChecksumCRC32 }},
		{types.ChecksumAlgorithmSha256, sha256b64(body),
			func(o *awss3.GetObjectOutput) *string { return o.ChecksumSHA256 },
			func(o *awss3.HeadObjectOutput) *string { return o.ChecksumSHA256 },
			func(o *awss3.PutObjectOutput) *string { return o.ChecksumSHA256 }},
	}
	for _, tt := range tests {
		t.Run(string(tt.alg), func(t *testing.T) {
			key := "k-" + string(tt.alg)
			put, err := h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("sums"), Key: aws.String(key), Body: bytes.NewReader(body), ChecksumAlgorithm: tt.alg})
			if err != nil {
				t.Fatal(err)
			}
			if got := aws.ToString(tt.put(put)); got != tt.want {
				t.Errorf("put returned checksum %q, want %q", got, tt.want)
			}
			get, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("sums"), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			// The SDK validates the body against the returned checksum
			// as it reads.
			got, err := io.ReadAll(get.Body)
			get.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("get: %d bytes, %v", len(got), err)
			}
			if g := aws.ToString(tt.get(get)); g != tt.want {
				t.Errorf("get checksum %q, want %q", g, tt.want)
			}
			head, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("sums"), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			if g := aws.ToString(tt.head(head)); g != tt.want {
				t.Errorf("head checksum %q, want %q", g, tt.want)
			}
			// Without checksum mode the checksum is not returned.
			r := h.do(rawRequest{method: "HEAD", path: "/sums/" + key, as: &alice})
			if v := r.header.Get("x-amz-checksum-" + strings.ToLower(string(tt.alg))); v != "" {
				t.Errorf("checksum %q returned without x-amz-checksum-mode", v)
			}
		})
	}
	t.Run("wrong checksum header", func(t *testing.T) {
		hdr := http.Header{"X-Amz-Checksum-Crc32": {crc32b64([]byte("other"))}}
		r := h.do(rawRequest{method: "PUT", path: "/sums/bad", body: body, header: hdr, as: &alice})
		r.wantError(t, "BadDigest", 400)
		if r := h.do(rawRequest{method: "HEAD", path: "/sums/bad", as: &alice}); r.status != 404 {
			t.Errorf("HEAD after refused put: %d", r.status)
		}
	})
}

func TestGetMissing(t *testing.T) {
	h := newHarness(t)
	h.bucket("miss")
	ctx := t.Context()
	_, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("miss"), Key: aws.String("nothing")})
	wantAPIError(t, err, "NoSuchKey", 404)
	_, err = h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("nobucket"), Key: aws.String("nothing")})
	wantAPIError(t, err, "NoSuchBucket", 404)
	_, err = h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("nobucket"), Key: aws.String("k"), Body: strings.NewReader("x")})
	wantAPIError(t, err, "NoSuchBucket", 404)
	r := h.do(rawRequest{method: "GET", path: "/miss/nothing", as: &alice})
	d := r.wantError(t, "NoSuchKey", 404)
	if d.Key != "nothing" {
		t.Errorf("error document Key %q, want nothing", d.Key)
	}
	r = h.do(rawRequest{method: "GET", path: "/nobucket/nothing", as: &alice})
	if d := r.wantError(t, "NoSuchBucket", 404); d.BucketName != "nobucket" {
		t.Errorf("error document BucketName %q, want nobucket", d.BucketName)
	}
	_, err = h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("miss"), Key: aws.String("nothing"), VersionId: aws.String("not-a-version")})
	wantAPIError(t, err, "InvalidArgument", 400)
}

// A conditional write (If-None-Match: * to create only, If-Match to
// replace only a known version) either holds its condition or is refused
// with 412, and a refused one writes nothing: clients use them as locks.
func TestConditionalWrites(t *testing.T) {
	h := newHarness(t)
	h.bucket("condw")
	h.put("condw", "k", []byte("original"))
	u := h.createUpload(t, "condw", "k")
	part := u.mustPart(1, []byte("part"))
	completion := fmt.Sprintf(`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>`, aws.ToString(part.ETag))
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		header http.Header
	}{
		{"put if-none-match star", "PUT", "/condw/k", "replaced", http.Header{"If-None-Match": {"*"}}},
		{"put if-none-match its etag", "PUT", "/condw/k", "replaced", http.Header{"If-None-Match": {`"` + md5hex([]byte("original")) + `"`}}},
		{"put if-match other etag", "PUT", "/condw/k", "replaced", http.Header{"If-Match": {`"0123456789abcdef0123456789abcdef"`}}},
		{"copy if-none-match star", "PUT", "/condw/k", "", http.Header{"If-None-Match": {"*"}, "X-Amz-Copy-Source": {"condw/k"}, "X-Amz-Metadata-Directive": {"REPLACE"}}},
		{"complete if-none-match star", "POST", "/condw/k?uploadId=" + u.id, completion, http.Header{"If-None-Match": {"*"}}},
		{"delete if-match other etag", "DELETE", "/condw/k", "", http.Header{"If-Match": {`"0123456789abcdef0123456789abcdef"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(rawRequest{method: tt.method, path: tt.path, body: []byte(tt.body), header: tt.header, as: &alice})
			r.wantError(t, "PreconditionFailed", 412)
		})
	}
	if got := string(h.get("condw", "k")); got != "original" {
		t.Errorf("object now %q", got)
	}
	vs, err := h.sdk.ListObjectVersions(t.Context(), &awss3.ListObjectVersionsInput{Bucket: aws.String("condw")})
	if err != nil || len(vs.Versions) != 1 || len(vs.DeleteMarkers) != 0 {
		t.Errorf("%d versions %d markers (%v), want the original only", len(vs.Versions), len(vs.DeleteMarkers), err)
	}
	// The upload whose completion failed stays open and completes with
	// the right condition.
	_, err = h.sdk.CompleteMultipartUpload(t.Context(), &awss3.CompleteMultipartUploadInput{Bucket: aws.String("condw"), Key: aws.String("k"), UploadId: aws.String(u.id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{part}}, IfMatch: aws.String(`"` + md5hex([]byte("original")) + `"`)})
	if err != nil {
		t.Fatalf("complete with a matching If-Match: %v", err)
	}
	if got := string(h.get("condw", "k")); got != "part" {
		t.Errorf("after the conditional completion the object is %q", got)
	}
	// If-Match on a key with no current object is 404 NoSuchKey, as S3.
	_, err = h.sdk.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("condw"), Key: aws.String("absent"), Body: strings.NewReader("x"), IfMatch: aws.String("*")})
	wantAPIError(t, err, "NoSuchKey", 404)
	// The time conditions mean nothing for a write: refused, not ignored.
	r := h.do(rawRequest{method: "PUT", path: "/condw/k", body: []byte("x"), header: http.Header{"If-Unmodified-Since": {time.Now().UTC().Format(http.TimeFormat)}}, as: &alice})
	r.wantError(t, "NotImplemented", 501)
}

// Conditional writes through the SDK: create-only, compare-and-swap on the
// ETag, and a conditional delete.
func TestConditionalWritesSDK(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.bucket("cas")
	put := func(body string, in awss3.PutObjectInput) (*awss3.PutObjectOutput, error) {
		in.Bucket, in.Key, in.Body = aws.String("cas"), aws.String("k"), strings.NewReader(body)
		return h.sdk.PutObject(ctx, &in)
	}
	first, err := put("one", awss3.PutObjectInput{IfNoneMatch: aws.String("*")})
	if err != nil {
		t.Fatalf("create-only put of a new key: %v", err)
	}
	_, err = put("two", awss3.PutObjectInput{IfNoneMatch: aws.String("*")})
	wantAPIError(t, err, "PreconditionFailed", 412)
	second, err := put("two", awss3.PutObjectInput{IfMatch: first.ETag})
	if err != nil {
		t.Fatalf("put with the current ETag: %v", err)
	}
	// The first ETag is no longer current.
	_, err = put("three", awss3.PutObjectInput{IfMatch: first.ETag})
	wantAPIError(t, err, "PreconditionFailed", 412)
	if _, err := put("three", awss3.PutObjectInput{IfNoneMatch: first.ETag}); err != nil {
		t.Fatalf("If-None-Match naming an old ETag: %v", err)
	}
	// A conditional delete: a stale ETag is refused, the current one
	// writes the marker, and a key with nothing current has nothing to
	// delete (204, no marker).
	_, err = h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("cas"), Key: aws.String("k"), IfMatch: second.ETag})
	wantAPIError(t, err, "PreconditionFailed", 412)
	cur, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("cas"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	del, err := h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("cas"), Key: aws.String("k"), IfMatch: cur.ETag})
	if err != nil || !aws.ToBool(del.DeleteMarker) {
		t.Fatalf("delete with the current ETag: %+v, %v", del, err)
	}
	del, err = h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("cas"), Key: aws.String("k"), IfMatch: aws.String("*")})
	if err != nil || aws.ToBool(del.DeleteMarker) {
		t.Fatalf("conditional delete of a deleted key: %+v, %v; want 204 and no marker", del, err)
	}
	vs, err := h.sdk.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String("cas")})
	if err != nil || len(vs.Versions) != 3 || len(vs.DeleteMarkers) != 1 {
		t.Errorf("%d versions %d markers (%v), want 3 and 1", len(vs.Versions), len(vs.DeleteMarkers), err)
	}
	// After the delete, create-only succeeds again.
	if _, err := put("four", awss3.PutObjectInput{IfNoneMatch: aws.String("*")}); err != nil {
		t.Errorf("create-only put over a delete marker: %v", err)
	}
}

// Writers racing with conditional writes, as clients that use them as a
// lock do: of many create-only puts of one key exactly one wins, and of
// many compare-and-swaps on the same ETag exactly one wins, round after
// round. Every loser gets 412 and leaves no version behind.
func TestConditionalWritesRace(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.bucket("race")
	const writers = 8
	race := func(in func(i int) *awss3.PutObjectInput) (won []int) {
		t.Helper()
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range writers {
			wg.Go(func() {
				<-start
				_, err := h.sdk.PutObject(ctx, in(i))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, i)
				case errStatus(err) != http.StatusPreconditionFailed:
					t.Errorf("writer %d: %v, want success or 412", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		return won
	}
	won := race(func(i int) *awss3.PutObjectInput {
		return &awss3.PutObjectInput{Bucket: aws.String("race"), Key: aws.String("lock"), Body: strings.NewReader(fmt.Sprint("holder ", i)), IfNoneMatch: aws.String("*")}
	})
	if len(won) != 1 {
		t.Fatalf("%d create-only puts succeeded (%v), want exactly 1", len(won), won)
	}
	versions := 1
	for round := range 3 {
		head, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("race"), Key: aws.String("lock")})
		if err != nil {
			t.Fatal(err)
		}
		won = race(func(i int) *awss3.PutObjectInput {
			return &awss3.PutObjectInput{Bucket: aws.String("race"), Key: aws.String("lock"), Body: strings.NewReader(fmt.Sprint("round ", round, " writer ", i)), IfMatch: head.ETag}
		})
		if len(won) != 1 {
			t.Fatalf("round %d: %d compare-and-swaps on one ETag succeeded (%v), want exactly 1", round, len(won), won)
		}
		versions++
		if got := string(h.get("race", "lock")); got != fmt.Sprint("round ", round, " writer ", won[0]) {
			t.Errorf("round %d: the object holds %q, not the winner's %d", round, got, won[0])
		}
	}
	vs, err := h.sdk.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String("race")})
	if err != nil || len(vs.Versions) != versions {
		t.Errorf("%d versions (%v), want %d: a losing writer left one", len(vs.Versions), err, versions)
	}
}

// A PUT with Transfer-Encoding: chunked and no Content-Length (a body of
// unknown size, as streaming clients send) is stored whole.
func TestPutChunkedTransferEncoding(t *testing.T) {
	h := newHarness(t)
	h.bucket("chunked")
	for _, size := range []int{3, 3*mib + 17} {
		body := pattern(size, 5)
		req, err := http.NewRequest("PUT", h.url+fmt.Sprintf("/chunked/k%d", size), io.MultiReader(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		sign(t, req, alice, "UNSIGNED-PAYLOAD", time.Now())
		if req.ContentLength != -1 && req.ContentLength != 0 {
			t.Fatalf("the request declares a length %d", req.ContentLength)
		}
		r := h.send(req)
		if r.status != 200 {
			t.Fatalf("%d bytes chunked: status %d\n%s", size, r.status, r.body)
		}
		if got := r.header.Get("ETag"); got != `"`+md5hex(body)+`"` {
			t.Errorf("ETag %s, want the MD5 of the body", got)
		}
		if got := h.get("chunked", fmt.Sprintf("k%d", size)); !bytes.Equal(got, body) {
			t.Errorf("read back %d bytes, want the %d sent", len(got), size)
		}
	}
}

// Of two puts of one key, the one that finishes last is the current
// version, as in S3, even when it started first (its data streamed in while
// the other came and went).
func TestPutFinishingLastWins(t *testing.T) {
	h := newHarness(t)
	h.bucket("lastwins")
	slow := pattern(12*mib, 1)
	pr, pw := io.Pipe()
	req := h.newRequest(rawRequest{method: "PUT", path: "/lastwins/k", as: &alice, payload: "UNSIGNED-PAYLOAD", contentLength: int64(len(slow))})
	req.Body = pr
	done := make(chan rawResponse, 1)
	go func() { done <- h.send(req) }()
	if _, err := pw.Write(slow[:6*mib]); err != nil {
		t.Fatal(err)
	}
	quick := pattern(3*mib, 2)
	h.put("lastwins", "k", quick)
	if got := h.get("lastwins", "k"); !bytes.Equal(got, quick) {
		t.Fatalf("while the slow put streams, the quick one is not current")
	}
	if _, err := pw.Write(slow[6*mib:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if r := <-done; r.status != 200 {
		t.Fatalf("slow put: %d\n%s", r.status, r.body)
	}
	if got := h.get("lastwins", "k"); !bytes.Equal(got, slow) {
		t.Errorf("the put that finished last is not current (read %d bytes)", len(got))
	}
}
