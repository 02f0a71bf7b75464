package sigv4

import (
	"bytes"
	"crypto/sha256"
	"hash"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"
)

// sha256Hasher adapts crypto/sha256 to the md5simd.Hasher minio-go's
// streaming signer takes.
type sha256Hasher struct{ hash.Hash }

func (sha256Hasher) Close() {}

// send sends r to the server and returns what it verified.
func send(t *testing.T, srv *verifyingServer, r *http.Request) verified {
	t.Helper()
	resp, err := srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	v := srv.last(t)
	if v.err == nil && resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	return v
}

func minioRequest(t *testing.T, srv *verifyingServer, method, path string, body []byte) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Requests signed by minio-go's signer package, the one restic and
// minio-go itself use, verify over real HTTP.
func TestMinioSignV4(t *testing.T) {
	srv := newVerifyingServer(t, false)
	tests := []struct {
		name, method, path string
		body               []byte
		header             http.Header
	}{
		{"get", "GET", "/bucket/key", nil, nil},
		{"list", "GET", "/bucket?list-type=2&prefix=a%2Fb&delimiter=%2F", nil, nil},
		{"awkward key", "GET", "/bucket/a%20b%2Bc%24d%28e%29~%C3%BC%26%3D.txt", nil, nil},
		{"put", "PUT", "/bucket/key", []byte("minio payload"), http.Header{"Content-Type": {"text/plain"}, "X-Amz-Meta-A": {"b  c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := minioRequest(t, srv, tt.method, tt.path, tt.body)
			for k, v := range tt.header {
				r.Header[k] = v
			}
			r.Header.Set("X-Amz-Content-Sha256", hexSHA256(tt.body))
			r = signer.SignV4(*r, testAccessKey, testSecret, "", testRegion)
			v := send(t, srv, r)
			if v.err != nil {
				t.Fatal(v.err)
			}
			if !bytes.Equal(v.body, tt.body) {
				t.Fatalf("body %q", v.body)
			}
		})
	}
}

func TestMinioPreSignV4(t *testing.T) {
	srv := newVerifyingServer(t, false)
	r := minioRequest(t, srv, "GET", "/bucket/a%20key?versionId=1", nil)
	r = signer.PreSignV4(*r, testAccessKey, testSecret, "", testRegion, 60)
	r.Header = http.Header{} // the URL alone is shared
	if v := send(t, srv, r); v.err != nil || !v.auth.Presigned || v.auth.Expires.Sub(v.auth.Time) != time.Minute {
		t.Fatalf("presigned: %v, %v", v.err, v.auth)
	}
	// An x-amz-* header the URL did not sign is refused.
	r2, _ := http.NewRequest("GET", r.URL.String(), nil)
	r2.Header.Set("X-Amz-Meta-Added", "later")
	e := wantCode(t, send(t, srv, r2).err, AccessDenied)
	if e.Fields[0] != (Field{"HeadersNotSigned", "x-amz-meta-added"}) {
		t.Fatalf("fields %v", e.Fields)
	}
}

// minio-go's STREAMING-AWS4-HMAC-SHA256-PAYLOAD, with and without a signed
// trailer, at sizes around its 64 KiB chunk.
func TestMinioStreamingSignV4(t *testing.T) {
	srv := newVerifyingServer(t, false)
	for _, n := range []int{0, 1, 65535, 65536, 65537, 200 << 10} {
		for _, trailer := range []bool{false, true} {
			name := "size=" + itoa(n)
			if trailer {
				name += "/trailer"
			}
			t.Run(name, func(t *testing.T) {
				data := testData(n)
				r := minioRequest(t, srv, "PUT", "/bucket/streamed", data)
				if trailer {
					r.Trailer = http.Header{"X-Amz-Checksum-Crc32": {crc32b64(string(data))}}
				}
				r = signer.StreamingSignV4(r, testAccessKey, testSecret, "", testRegion, int64(n), time.Now().UTC(), sha256Hasher{sha256.New()})
				v := send(t, srv, r)
				if v.err != nil {
					t.Fatal(v.err)
				}
				want := StreamingSigned
				if trailer {
					want = StreamingSignedTrailer
				}
				if v.auth.ContentSHA256 != want || !bytes.Equal(v.body, data) {
					t.Fatalf("mode %s, %d bytes", v.auth.ContentSHA256, len(v.body))
				}
				if trailer && v.checksums["x-amz-checksum-crc32"] == "" {
					t.Fatalf("trailer checksum not verified: %v", v.checksums)
				}
			})
		}
	}
}

// minio-go's STREAMING-UNSIGNED-PAYLOAD-TRAILER (SignV4Trailer), and its
// trailer checked against the data.
func TestMinioUnsignedTrailer(t *testing.T) {
	srv := newVerifyingServer(t, false)
	data := testData(150 << 10)
	tests := []struct {
		name     string
		checksum string
		code     Code
	}{
		{"good checksum", crc32b64(string(data)), ""},
		{"wrong checksum", crc32b64("other data"), BadDigest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := minioRequest(t, srv, "PUT", "/bucket/unsigned", data)
			r.Header.Set("X-Amz-Content-Sha256", StreamingUnsignedTrailer)
			r = signer.SignV4Trailer(*r, testAccessKey, testSecret, "", testRegion,
				http.Header{"x-amz-checksum-crc32": {tt.checksum}})
			v := send(t, srv, r)
			if tt.code != "" {
				wantCode(t, v.err, tt.code)
				return
			}
			if v.err != nil {
				t.Fatal(v.err)
			}
			if !bytes.Equal(v.body, data) || !strings.EqualFold(v.auth.ContentSHA256, StreamingUnsignedTrailer) {
				t.Fatalf("mode %s, %d bytes", v.auth.ContentSHA256, len(v.body))
			}
		})
	}
}
