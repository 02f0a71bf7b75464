package s3_test

// The harness: a development node (six directory sites in three
// jurisdictions, 4+2 erasure) opened in a temporary directory, its S3 front
// end behind an httptest server, two principals (alice and bob), and the
// clients the tests drive it with: aws-sdk-go-v2, minio-go and raw
// net/http requests signed with the SDK's SigV4 signer.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/s3"
)

const region = "us-east-1"

// The two principals every harness knows, both configured as admins and
// nationals of the node's nation with the highest clearance
// (devPrincipals), so that label checks never stand in the way of what
// these tests look at.
var (
	alice = s3.Credential{AccessKey: "AKIAALICE0000EXAMPLE", SecretKey: "alice-secret-0123456789abcdef", Principal: "alice"}
	bob   = s3.Credential{AccessKey: "AKIABOB00000EXAMPLE1", SecretKey: "bob-secret-0123456789abcdef00", Principal: "bob"}
)

type harness struct {
	t    testing.TB
	n    *node.Node
	dir  string // the node's directory
	root string // the directory holding the node's directory and nothing else
	srv  *httptest.Server
	url  string // http://127.0.0.1:port
	host string // 127.0.0.1:port

	sdk    *awss3.Client // as alice
	sdkBob *awss3.Client // as bob

	mu     sync.Mutex
	failed []string // "s3 request failed" records (500s) logged by the server
}

// newHarness starts a fresh node and S3 server for t.
func newHarness(t testing.TB) *harness {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "node")
	if _, err := node.InitDev(dir, node.DevOptions{}); err != nil {
		t.Fatalf("init dev node: %v", err)
	}
	devPrincipals(t, dir, alice.Principal, bob.Principal)
	h := &harness{t: t, dir: dir, root: root}
	log := slog.New(&recordingHandler{h: h})
	n, err := node.Open(context.Background(), dir, log)
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	h.n = n
	handler, err := n.S3Handler(alice, bob)
	if err != nil {
		t.Fatalf("S3Handler: %v", err)
	}
	h.srv = httptest.NewUnstartedServer(handler)
	h.srv.Config.MaxHeaderBytes = s3.MaxHeaderBytes
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	h.url = h.srv.URL
	h.host = strings.TrimPrefix(h.srv.URL, "http://")
	h.sdk = h.client(alice)
	h.sdkBob = h.client(bob)
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, f := range h.failed {
			t.Errorf("server failed a request: %s", f)
		}
	})
	return h
}

// devPrincipals configures the named principals on the node in dir, as its
// admin is: a principal that is not configured can do nothing, on a
// development node too.
func devPrincipals(t testing.TB, dir string, names ...string) {
	t.Helper()
	c, err := node.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		c.Principals = append(c.Principals, access.Principal{Name: name, Nation: c.Node.Nation,
			Clearances: map[string]string{"NATO": "COSMIC TOP SECRET"}, Roles: []string{string(access.RoleAdmin)}})
	}
	if err := node.SaveConfig(dir, c); err != nil {
		t.Fatal(err)
	}
}

// recordingHandler keeps the server's error records (every 5xx but 501
// is logged at level ERROR) so that the harness fails a test that provoked
// one.
type recordingHandler struct {
	h     *harness
	attrs []slog.Attr
}

func (r *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }

func (r *recordingHandler) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	notImplemented := false
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		notImplemented = notImplemented || a.Key == "code" && a.Value.String() == "NotImplemented"
		return true
	})
	if notImplemented {
		// 501 is an honest answer, not a failure.
		return nil
	}
	r.h.mu.Lock()
	r.h.failed = append(r.h.failed, b.String())
	r.h.mu.Unlock()
	return nil
}

func (r *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordingHandler{h: r.h, attrs: append(append([]slog.Attr(nil), r.attrs...), as...)}
}

func (r *recordingHandler) WithGroup(string) slog.Handler { return r }

// client returns an aws-sdk-go-v2 S3 client acting as cred.
func (h *harness) client(cred s3.Credential, opts ...func(*awss3.Options)) *awss3.Client {
	cfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(cred.AccessKey, cred.SecretKey, ""),
		HTTPClient:  http.DefaultClient,
	}
	return awss3.NewFromConfig(cfg, append([]func(*awss3.Options){func(o *awss3.Options) {
		o.UsePathStyle = true
		o.BaseEndpoint = aws.String(h.url)
		o.RetryMaxAttempts = 1
	}}, opts...)...)
}

// minio returns a minio-go client acting as cred.
func (h *harness) minio(cred s3.Credential) *minio.Client {
	h.t.Helper()
	c, err := minio.New(h.host, &minio.Options{Creds: miniocreds.NewStaticV4(cred.AccessKey, cred.SecretKey, ""), Region: region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		h.t.Fatalf("minio.New: %v", err)
	}
	return c
}

// bucket creates a bucket as alice and returns its name.
func (h *harness) bucket(name string, opts ...func(*awss3.Options)) string {
	h.t.Helper()
	in := &awss3.CreateBucketInput{Bucket: aws.String(name)}
	if _, err := h.sdk.CreateBucket(context.Background(), in, opts...); err != nil {
		h.t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// lockedBucket creates a bucket with object lock enabled.
func (h *harness) lockedBucket(name string) string {
	h.t.Helper()
	_, err := h.sdk.CreateBucket(context.Background(), &awss3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(true)})
	if err != nil {
		h.t.Fatalf("create locked bucket %s: %v", name, err)
	}
	return name
}

// put stores body under bucket/key as alice and returns the version id.
func (h *harness) put(bucket, key string, body []byte) string {
	h.t.Helper()
	out, err := h.sdk.PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		h.t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	if out.VersionId == nil || *out.VersionId == "" {
		h.t.Fatalf("put %s/%s: no version id", bucket, key)
	}
	return *out.VersionId
}

// get reads bucket/key (the latest version) as alice.
func (h *harness) get(bucket, key string) []byte {
	h.t.Helper()
	out, err := h.sdk.GetObject(context.Background(), &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		h.t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		h.t.Fatalf("get %s/%s: read body: %v", bucket, key, err)
	}
	return b
}

// wantAPIError checks that err is an S3 error with the given code and
// HTTP status.
func wantAPIError(t testing.TB, err error, code string, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %s (%d)", code, status)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want an HTTP response error %s (%d)", err, code, status)
	}
	if got := re.HTTPStatusCode(); got != status {
		t.Errorf("status %d, want %d (err %v)", got, status, err)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want API error %s", err, code)
	}
	if got := ae.ErrorCode(); got != code {
		t.Errorf("code %q, want %q (err %v)", got, code, err)
	}
}

// errStatus returns the HTTP status of an SDK error, or 0.
func errStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// rawRequest describes a request sent with net/http.
type rawRequest struct {
	method string
	path   string // escaped path and query, e.g. "/bucket/key?versions"
	header http.Header
	body   []byte
	// as signs the request with this credential; nil sends it anonymous.
	as *s3.Credential
	// payload is the x-amz-content-sha256 value to sign; "" means the
	// hex SHA-256 of body.
	payload string
	// at is the signing time; zero means now.
	at time.Time
	// contentLength, if non-zero, overrides the declared length.
	contentLength int64
	// sendBody replaces the bytes sent after signing (tampering).
	sendBody []byte
}

// rawResponse is a response read in full.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// errorDoc is an S3 error document.
type errorDoc struct {
	XMLName    xml.Name `xml:"Error"`
	Code       string   `xml:"Code"`
	Message    string   `xml:"Message"`
	Resource   string   `xml:"Resource"`
	RequestID  string   `xml:"RequestId"`
	HostID     string   `xml:"HostId"`
	Key        string   `xml:"Key"`
	BucketName string   `xml:"BucketName"`
}

// errorDoc decodes the response body as an S3 error document.
func (r rawResponse) errorDoc(t testing.TB) errorDoc {
	t.Helper()
	var d errorDoc
	if err := xml.Unmarshal(r.body, &d); err != nil {
		t.Fatalf("status %d: body is not an S3 error document: %v\n%s", r.status, err, r.body)
	}
	return d
}

// wantError checks the status and S3 error code of a raw response.
func (r rawResponse) wantError(t testing.TB, code string, status int) errorDoc {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d\n%s", r.status, status, r.body)
	}
	d := r.errorDoc(t)
	if d.Code != code {
		t.Errorf("code %q, want %q (message %q)", d.Code, code, d.Message)
	}
	return d
}

// wantErrorStatus checks the status of a raw response and that it is an
// S3 error document, whatever its code.
func (r rawResponse) wantErrorStatus(t testing.TB, status int) errorDoc {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d\n%s", r.status, status, r.body)
	}
	return r.errorDoc(t)
}

// newRequest builds (and signs) rr without sending it.
func (h *harness) newRequest(rr rawRequest) *http.Request {
	h.t.Helper()
	req, err := http.NewRequest(rr.method, h.url+rr.path, bytes.NewReader(rr.body))
	if err != nil {
		h.t.Fatalf("new request: %v", err)
	}
	req.ContentLength = int64(len(rr.body))
	if rr.contentLength != 0 {
		req.ContentLength = rr.contentLength
	}
	if len(rr.body) == 0 && rr.contentLength == 0 {
		req.Body = http.NoBody
	}
	for k, vs := range rr.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if rr.as != nil {
		payload := rr.payload
		if payload == "" {
			payload = hexSHA256(rr.body)
		}
		at := rr.at
		if at.IsZero() {
			at = time.Now()
		}
		sign(h.t, req, *rr.as, payload, at)
	}
	if rr.sendBody != nil {
		req.Body = io.NopCloser(bytes.NewReader(rr.sendBody))
		req.GetBody = nil
	}
	return req
}

// do sends rr and reads the whole response.
func (h *harness) do(rr rawRequest) rawResponse {
	h.t.Helper()
	return h.send(h.newRequest(rr))
}

// send sends req and reads the whole response.
func (h *harness) send(req *http.Request) rawResponse {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// sign signs r with SigV4 in the Authorization header, as the SDK does
// for S3 (the path is not escaped a second time).
func sign(t testing.TB, r *http.Request, cred s3.Credential, payload string, at time.Time) {
	t.Helper()
	r.Header.Set("X-Amz-Content-Sha256", payload)
	s := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	err := s.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: cred.AccessKey, SecretAccessKey: cred.SecretKey}, r, payload, "s3", region, at)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
}

// presign returns a presigned URL for method and path.
func (h *harness) presign(method, path string, cred s3.Credential, at time.Time, expires time.Duration) string {
	h.t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	u := h.url + path + sep + "X-Amz-Expires=" + strconv.FormatInt(int64(expires/time.Second), 10)
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	s := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	signed, _, err := s.PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: cred.AccessKey, SecretAccessKey: cred.SecretKey}, req, "UNSIGNED-PAYLOAD", "s3", region, at)
	if err != nil {
		h.t.Fatalf("presign: %v", err)
	}
	return signed
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func md5b64(b []byte) string {
	s := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

// pattern returns n deterministic bytes that differ between seeds and
// have no short period.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// siteFiles lists every regular file under the node's directory.
func (h *harness) siteFiles() []string {
	h.t.Helper()
	var out []string
	err := filepath.WalkDir(h.root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(h.root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		h.t.Fatalf("walk %s: %v", h.root, err)
	}
	return out
}
