package sigv4

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Requests signed by aws-sdk-go-v2's SigV4 signer verify.
func TestSDKSignedRequests(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		url       string
		rawPath   string // the client's own encoding of the path, if any
		headers   [][2]string
		body      string
		checksums int // how many digests the payload verifies
	}{
		{name: "get object", method: "GET", url: "http://localhost:9000/bucket/key"},
		{name: "virtual host without port", method: "GET", url: "http://bucket.s3.example.org/key"},
		{name: "ipv6 host with port", method: "GET", url: "http://[::1]:9000/bucket/key"},
		{name: "list with query to sort and encode", method: "GET",
			url: "http://localhost:9000/bucket?prefix=a%2Fb%20c&list-type=2&delimiter=%2F&start-after=a-b&encoding-type=url&empty="},
		{name: "query value with plus and tilde", method: "GET", url: "http://localhost:9000/bucket?prefix=a%2Bb~c&marker=%E2%82%AC"},
		{name: "repeated query names", method: "GET", url: "http://localhost:9000/bucket?tag=b&tag=a&tag="},
		{name: "key with reserved and non-ascii characters", method: "GET",
			url:     "http://localhost:9000/bucket/dir/a b+c$d(e)~ü&=;,:@!*'.txt",
			rawPath: "/bucket/dir/a%20b%2Bc%24d%28e%29~%C3%BC%26%3D%3B%2C%3A%40%21%2A%27.txt"},
		{name: "key with an encoded slash", method: "GET", url: "http://localhost:9000/bucket/a/b", rawPath: "/bucket/a%2Fb"},
		{name: "key with dot segments and double slash", method: "GET", url: "http://localhost:9000/bucket/a/../b//c/./d"},
		{name: "put with hashed body and metadata", method: "PUT", url: "http://localhost:9000/bucket/object",
			headers: [][2]string{
				{"Content-Type", "text/plain"},
				{"X-Amz-Meta-Note", "  spaced   out  value "},
				{"X-Amz-Storage-Class", "STANDARD"},
				{"Content-Md5", md5b64("embassy payload")},
			},
			body: "embassy payload", checksums: 1},
		{name: "repeated header lines", method: "PUT", url: "http://localhost:9000/bucket/object",
			headers: [][2]string{{"X-Amz-Meta-Tag", "one"}, {"X-Amz-Meta-Tag", "two  three"}}, body: "x"},
		{name: "checksum header", method: "PUT", url: "http://localhost:9000/bucket/object",
			headers: [][2]string{{"X-Amz-Checksum-Crc32", crc32b64("abc")}, {"X-Amz-Sdk-Checksum-Algorithm", "CRC32"}}, body: "abc", checksums: 1},
		{name: "delete", method: "DELETE", url: "http://localhost:9000/bucket/object?versionId=null"},
	}
	for _, tt := range tests {
		for _, payload := range []string{"hash", UnsignedPayload} {
			t.Run(tt.name+"/"+payload, func(t *testing.T) {
				r := httptest.NewRequest(tt.method, "http://placeholder/", strings.NewReader(tt.body))
				u, err := url.Parse(tt.url)
				if err != nil {
					t.Fatal(err)
				}
				u.RawPath = tt.rawPath
				r.URL, r.Host = u, u.Host
				for _, h := range tt.headers {
					r.Header.Add(h[0], h[1])
				}
				if payload == "hash" {
					payload = hexSHA256([]byte(tt.body))
				}
				sdkSign(t, r, payload, testAccessKey, testSecret, t0)
				got, p, err := readPayload(r, testNow, Options{Region: testRegion})
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tt.body {
					t.Fatalf("body %q, want %q", got, tt.body)
				}
				if len(p.Checksums()) != tt.checksums {
					t.Fatalf("checksums verified: %v, want %d", p.Checksums(), tt.checksums)
				}
			})
		}
	}
}

// The Auth reports what was signed.
func TestSDKSignedAuth(t *testing.T) {
	r := httptest.NewRequest("PUT", "http://localhost:9000/bucket/object", strings.NewReader("data"))
	sdkSign(t, r, hexSHA256([]byte("data")), testAccessKey, testSecret, t0)
	a, err := Verify(r, testCreds, testNow, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessKey != testAccessKey || a.Region != testRegion || !a.Time.Equal(t0) || a.Presigned ||
		a.ContentLength != 4 || a.ContentSHA256 != hexSHA256([]byte("data")) {
		t.Fatalf("auth = %v", a)
	}
	for _, h := range []string{"host", "x-amz-content-sha256", "x-amz-date", "content-length"} {
		if !strings.Contains(";"+strings.Join(a.SignedHeaders, ";")+";", ";"+h+";") {
			t.Errorf("signed headers %v lack %s", a.SignedHeaders, h)
		}
	}
}

// sdkPresign presigns r with aws-sdk-go-v2's PresignHTTP for expires and
// returns the request a holder of the URL would send.
func sdkPresign(t *testing.T, method, rawURL string, expires time.Duration, at time.Time, header http.Header) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, rawURL, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	q := r.URL.Query()
	q.Set("X-Amz-Expires", strconv.FormatInt(int64(expires/time.Second), 10))
	r.URL.RawQuery = q.Encode()
	s := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	signed, hdr, err := s.PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecret},
		r, UnsignedPayload, "s3", testRegion, at)
	if err != nil {
		t.Fatal(err)
	}
	out := httptest.NewRequest(method, signed, strings.NewReader("presigned body"))
	for k, v := range hdr {
		if k != "Host" {
			out.Header[k] = v
		}
	}
	return out
}

func TestSDKPresigned(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		url     string
		expires time.Duration
		now     time.Time
		header  http.Header
		code    Code // "" when valid
	}{
		{name: "get", method: "GET", url: "http://localhost:9000/bucket/key", expires: time.Hour, now: testNow},
		{name: "put with signed metadata", method: "PUT", url: "http://localhost:9000/bucket/key",
			expires: time.Hour, now: testNow, header: http.Header{"X-Amz-Meta-Owner": {"EST"}, "Content-Type": {"text/plain"}}},
		{name: "get with response overrides", method: "GET",
			url: "http://localhost:9000/bucket/a%20key?response-content-disposition=attachment%3B%20filename%3D%22x.txt%22", expires: time.Hour, now: testNow},
		{name: "last second of a week", method: "GET", url: "http://localhost:9000/bucket/key",
			expires: MaxPresignExpiry, now: t0.Add(MaxPresignExpiry)},
		{name: "expired", method: "GET", url: "http://localhost:9000/bucket/key",
			expires: time.Hour, now: t0.Add(time.Hour + time.Second), code: AccessDenied},
		{name: "longer than a week", method: "GET", url: "http://localhost:9000/bucket/key",
			expires: MaxPresignExpiry + time.Second, now: testNow, code: AuthorizationQueryParametersError},
		{name: "dated in the future", method: "GET", url: "http://localhost:9000/bucket/key",
			expires: time.Hour, now: t0.Add(-16 * time.Minute), code: AccessDenied},
		{name: "dated a little in the future", method: "GET", url: "http://localhost:9000/bucket/key",
			expires: time.Hour, now: t0.Add(-14 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sdkPresign(t, tt.method, tt.url, tt.expires, t0, tt.header)
			got, _, err := readPayload(r, tt.now, Options{Region: testRegion})
			if tt.code != "" {
				wantCode(t, err, tt.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "presigned body" {
				t.Fatalf("body %q", got)
			}
		})
	}
}

func md5b64(s string) string {
	h := md5.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(h[:])
}

func crc32b64(s string) string {
	c := crc32.ChecksumIEEE([]byte(s))
	return base64.StdEncoding.EncodeToString([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
}

func sha256b64(b []byte) string {
	s := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

// s3Client is aws-sdk-go-v2's S3 client pointed at the server.
func s3Client(srv *verifyingServer) *s3.Client {
	return s3.New(s3.Options{
		Region:       testRegion,
		Credentials:  credentials.NewStaticCredentialsProvider(testAccessKey, testSecret, ""),
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		HTTPClient:   srv.Client(),
		// What aws.Config gives by default, so that the bare client
		// behaves like one made with NewFromConfig.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
	})
}

// The S3 client itself, over HTTPS, sends STREAMING-UNSIGNED-PAYLOAD-TRAILER
// bodies with a trailing checksum of the algorithm asked for; over HTTP it
// signs a hex SHA-256 and sends the checksum as a header.
func TestSDKClientPutObject(t *testing.T) {
	data := testData(300 << 10)
	algs := []types.ChecksumAlgorithm{"", types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c,
		types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256}
	for _, tls := range []bool{true, false} {
		srv := newVerifyingServer(t, tls)
		client := s3Client(srv)
		for _, alg := range algs {
			name := "tls=" + strconv.FormatBool(tls) + "/" + string(alg)
			t.Run(name, func(t *testing.T) {
				_, err := client.PutObject(t.Context(), &s3.PutObjectInput{
					Bucket: aws.String("bucket"), Key: aws.String("dir/a b+c.txt"),
					Body: bytes.NewReader(data), ChecksumAlgorithm: alg,
				})
				if err != nil {
					t.Fatal(err)
				}
				v := srv.last(t)
				if !bytes.Equal(v.body, data) {
					t.Fatalf("server decoded %d bytes, want %d", len(v.body), len(data))
				}
				wantMode := StreamingUnsignedTrailer
				if !tls {
					wantMode = hexSHA256(data)
				}
				if v.auth.ContentSHA256 != wantMode {
					t.Fatalf("mode %s, want %s", v.auth.ContentSHA256, wantMode)
				}
				if v.auth.ContentLength != int64(len(data)) {
					t.Fatalf("content length %d", v.auth.ContentLength)
				}
				want := "x-amz-checksum-" + strings.ToLower(string(alg))
				if alg == "" {
					want = "x-amz-checksum-crc32"
				}
				if v.checksums[want] == "" {
					t.Fatalf("verified checksums %v, want %s", v.checksums, want)
				}
			})
		}
	}
}

// Other operations of the S3 client verify: GET of an awkward key, and a
// POST with an XML body and a checksum header.
func TestSDKClientOtherOperations(t *testing.T) {
	srv := newVerifyingServer(t, false)
	client := s3Client(srv)
	out, err := client.GetObject(t.Context(), &s3.GetObjectInput{
		Bucket: aws.String("bucket"), Key: aws.String("dir/a b+c$d(e)~ü&=;,:@!*'%.txt"), Range: aws.String("bytes=0-4"),
	})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(body) != "hello" || srv.last(t).auth == nil {
		t.Fatalf("get: body %q", body)
	}
	_, err = client.DeleteObjects(t.Context(), &s3.DeleteObjectsInput{
		Bucket: aws.String("bucket"),
		Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("a")}, {Key: aws.String("b")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := srv.last(t); len(v.checksums) == 0 {
		t.Fatalf("delete objects: no checksum verified (auth %v)", v.auth)
	}
}

// URLs from the S3 client's presigner work, and a wrong secret does not.
func TestSDKPresignClient(t *testing.T) {
	srv := newVerifyingServer(t, false)
	pc := s3.NewPresignClient(s3Client(srv))
	get, err := pc.PresignGetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k y")},
		s3.WithPresignExpires(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Get(get.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !srv.last(t).auth.Presigned {
		t.Fatalf("presigned get: %s", resp.Status)
	}
	put, err := pc.PresignPutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k"),
		ContentType: aws.String("text/plain")})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(put.Method, put.URL, strings.NewReader("uploaded"))
	for k, v := range put.SignedHeader {
		if k != "Host" {
			req.Header[k] = v
		}
	}
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := srv.last(t); resp.StatusCode != 200 || string(v.body) != "uploaded" {
		t.Fatalf("presigned put: %s, %v", resp.Status, v.err)
	}

	bad := s3.NewPresignClient(s3.New(s3Client(srv).Options(), func(o *s3.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(testAccessKey, "not the secret", "")
	}))
	get, err = bad.PresignGetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = srv.Client().Get(get.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("wrong secret: %s", resp.Status)
	}
	wantCode(t, srv.last(t).err, SignatureDoesNotMatch)
}
