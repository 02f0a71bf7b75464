package s3_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/zeebo/xxh3"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/s3"
)

// stored reports whether bucket/key has any version or delete marker.
func (h *harness) stored(t *testing.T, bucket, key string) bool {
	t.Helper()
	out, err := h.sdk.ListObjectVersions(context.Background(), &awss3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
	if err != nil {
		t.Fatalf("list versions: %v", err)
	}
	for _, v := range out.Versions {
		if aws.ToString(v.Key) == key {
			return true
		}
	}
	for _, v := range out.DeleteMarkers {
		if aws.ToString(v.Key) == key {
			return true
		}
	}
	return false
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t)
	h.bucket("vault")
	h.put("vault", "secret", []byte("classified"))
	wrongSecret := s3.Credential{AccessKey: alice.AccessKey, SecretKey: "not-alices-secret-at-all", Principal: "mallory"}
	unknown := s3.Credential{AccessKey: "AKIAMALLORY000000000", SecretKey: "mallory-secret-000000000", Principal: "mallory"}
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		as     *s3.Credential
		code   string
		status int
	}{
		{"wrong secret get", "GET", "/vault/secret", nil, &wrongSecret, "SignatureDoesNotMatch", 403},
		{"wrong secret put", "PUT", "/vault/planted", []byte("x"), &wrongSecret, "SignatureDoesNotMatch", 403},
		{"wrong secret delete", "DELETE", "/vault/secret", nil, &wrongSecret, "SignatureDoesNotMatch", 403},
		{"wrong secret create bucket", "PUT", "/planted", nil, &wrongSecret, "SignatureDoesNotMatch", 403},
		{"unknown key get", "GET", "/vault/secret", nil, &unknown, "InvalidAccessKeyId", 403},
		{"unknown key put", "PUT", "/vault/planted", []byte("x"), &unknown, "InvalidAccessKeyId", 403},
		{"anonymous get", "GET", "/vault/secret", nil, nil, "AccessDenied", 403},
		{"anonymous head bucket", "HEAD", "/vault", nil, nil, "", 403},
		{"anonymous put", "PUT", "/vault/planted", []byte("x"), nil, "AccessDenied", 403},
		{"anonymous list", "GET", "/vault", nil, nil, "AccessDenied", 403},
		{"anonymous list v2", "GET", "/vault?list-type=2", nil, nil, "AccessDenied", 403},
		{"anonymous list buckets", "GET", "/", nil, nil, "AccessDenied", 403},
		{"anonymous delete", "DELETE", "/vault/secret", nil, nil, "AccessDenied", 403},
		{"anonymous delete bucket", "DELETE", "/vault", nil, nil, "AccessDenied", 403},
		{"anonymous create bucket", "PUT", "/planted", nil, nil, "AccessDenied", 403},
		{"anonymous multi-delete", "POST", "/vault?delete", []byte(`<Delete><Object><Key>secret</Key></Object></Delete>`), nil, "AccessDenied", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(rawRequest{method: tt.method, path: tt.path, body: tt.body, as: tt.as})
			if tt.method == "HEAD" {
				if r.status != tt.status || len(r.body) != 0 {
					t.Errorf("status %d body %q, want %d and no body", r.status, r.body, tt.status)
				}
				return
			}
			d := r.wantError(t, tt.code, tt.status)
			if strings.Contains(string(r.body), "classified") {
				t.Errorf("refusal leaks the object: %s", r.body)
			}
			for _, secret := range []string{alice.SecretKey, bob.SecretKey, wrongSecret.SecretKey, unknown.SecretKey} {
				if strings.Contains(string(r.body), secret) {
					t.Errorf("refusal carries a secret key: %s", r.body)
				}
			}
			if d.RequestID == "" {
				t.Errorf("no RequestId in the error document")
			}
		})
	}
	// Nothing the refused requests tried happened.
	if got := string(h.get("vault", "secret")); got != "classified" {
		t.Errorf("secret now %q", got)
	}
	if h.stored(t, "vault", "planted") {
		t.Errorf("a refused put stored an object")
	}
	if _, err := h.n.Engine.Vault("planted"); err == nil {
		t.Errorf("a refused request created a bucket")
	}
	vs, err := h.sdk.ListObjectVersions(t.Context(), &awss3.ListObjectVersionsInput{Bucket: aws.String("vault")})
	if err != nil || len(vs.Versions) != 1 || len(vs.DeleteMarkers) != 0 {
		t.Errorf("versions after refused requests: %d versions %d markers (%v)", len(vs.Versions), len(vs.DeleteMarkers), err)
	}
}

func TestReplayWindow(t *testing.T) {
	h := newHarness(t)
	h.bucket("replay")
	tests := []struct {
		name   string
		offset time.Duration
		ok     bool
	}{
		{"now", 0, true},
		{"fourteen minutes old", -14 * time.Minute, true},
		{"twenty minutes old", -20 * time.Minute, false},
		{"a day old", -24 * time.Hour, false},
		{"twenty minutes ahead", 20 * time.Minute, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("k%d", i)
			req := h.newRequest(rawRequest{method: "PUT", path: "/replay/" + key, body: []byte("x"), as: &alice, at: time.Now().Add(tt.offset)})
			r := h.send(req)
			if tt.ok {
				if r.status != 200 {
					t.Fatalf("status %d\n%s", r.status, r.body)
				}
				return
			}
			r.wantError(t, "RequestTimeTooSkewed", 403)
			if h.stored(t, "replay", key) {
				t.Errorf("a skewed request stored an object")
			}
		})
	}
	t.Run("captured request replayed later", func(t *testing.T) {
		// A request captured 20 minutes ago (signed then) is refused now,
		// even though its signature is valid.
		r := h.do(rawRequest{method: "DELETE", path: "/replay/k0", as: &alice, at: time.Now().Add(-20 * time.Minute)})
		r.wantError(t, "RequestTimeTooSkewed", 403)
		if got := string(h.get("replay", "k0")); got != "x" {
			t.Errorf("replayed delete took effect")
		}
	})
}

// shardBlobRe matches the path of a shard blob on a directory site
// (manifest.ShardBlobName: s/xx/<blob>.<shard>).
var shardBlobRe = regexp.MustCompile(`/s/[0-9a-f]{2}/[0-9a-f]+\.[0-9]+$`)

// shardBlobs lists the shard blobs on the node's directory sites. (Not
// their temporary areas: the node's own background writes, such as the
// audit log's copies, pass through them at any time.)
func (h *harness) shardBlobs(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(h.root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && shardBlobRe.MatchString(filepath.ToSlash(p)) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// A body that does not match the SHA-256 it was signed with is refused,
// and nothing of it is left: no version, and none of the shard blobs
// written while it streamed in (a large body's first stripes are coded and
// written before its end shows the mismatch).
func TestTamperedPayload(t *testing.T) {
	h := newHarness(t)
	h.bucket("tamper")
	for _, size := range []int{10, 3*mib + 1} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			body := pattern(size, 1)
			evil := bytes.Clone(body)
			evil[len(evil)-1] ^= 0xff
			key := fmt.Sprintf("obj-%d", size)
			before := h.shardBlobs(t)
			r := h.do(rawRequest{method: "PUT", path: "/tamper/" + key, body: body, sendBody: evil, as: &alice})
			r.wantError(t, "XAmzContentSHA256Mismatch", 400)
			if h.stored(t, "tamper", key) {
				t.Errorf("a tampered body was stored")
			}
			if after := h.shardBlobs(t); !slices.Equal(before, after) {
				t.Errorf("a tampered body left blobs behind: %d before, %d after: %v", len(before), len(after), after)
			}
			// The same body untampered is stored, and where a large
			// one's shard blobs are looked for above.
			h.put("tamper", key, body)
			if after := h.shardBlobs(t); size > 1*mib && len(after) <= len(before) {
				t.Errorf("an object of %d bytes stored no shard blobs where they are looked for", size)
			}
		})
	}
	t.Run("upload part", func(t *testing.T) {
		u := h.createUpload(t, "tamper", "mp")
		body := pattern(5*mib, 2)
		evil := bytes.Clone(body)
		evil[mib] ^= 1
		before := h.shardBlobs(t)
		defer func() {
			if after := h.shardBlobs(t); !slices.Equal(before, after) {
				t.Errorf("a tampered part left blobs behind: %v", after)
			}
		}()
		r := h.do(rawRequest{method: "PUT", path: "/tamper/mp?partNumber=1&uploadId=" + u.id, body: body, sendBody: evil, as: &alice})
		r.wantError(t, "XAmzContentSHA256Mismatch", 400)
		parts, err := h.sdk.ListParts(t.Context(), &awss3.ListPartsInput{Bucket: aws.String("tamper"), Key: aws.String("mp"), UploadId: aws.String(u.id)})
		if err != nil || len(parts.Parts) != 0 {
			t.Errorf("parts after a tampered upload: %+v, %v", parts.Parts, err)
		}
	})
	t.Run("signed headers changed", func(t *testing.T) {
		req := h.newRequest(rawRequest{method: "PUT", path: "/tamper/meta", body: []byte("x"), header: http.Header{"X-Amz-Meta-Level": {"low"}}, as: &alice})
		req.Header.Set("X-Amz-Meta-Level", "high")
		h.send(req).wantError(t, "SignatureDoesNotMatch", 403)
		req = h.newRequest(rawRequest{method: "PUT", path: "/tamper/meta", body: []byte("x"), as: &alice})
		req.Header.Set("X-Amz-Meta-Added", "after signing")
		h.send(req).wantError(t, "AccessDenied", 403)
		req = h.newRequest(rawRequest{method: "PUT", path: "/tamper/meta", body: []byte("x"), as: &alice})
		req.URL.Path = "/tamper/other"
		h.send(req).wantError(t, "SignatureDoesNotMatch", 403)
		if h.stored(t, "tamper", "meta") || h.stored(t, "tamper", "other") {
			t.Errorf("a request with tampered headers stored an object")
		}
	})
}

// flipTransport flips one byte of every request body at offset, after
// the client has signed it, and records the payload mode.
type flipTransport struct {
	offset int64
	mu     sync.Mutex
	modes  []string
}

func (f *flipTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.modes = append(f.modes, r.Header.Get("X-Amz-Content-Sha256"))
	f.mu.Unlock()
	if r.Body != nil && r.ContentLength > f.offset {
		r = r.Clone(r.Context())
		r.Body = &flipReader{r: r.Body, at: f.offset}
	}
	return http.DefaultTransport.RoundTrip(r)
}

type flipReader struct {
	r   io.ReadCloser
	at  int64
	pos int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		p[f.at-f.pos] ^= 0x01
	}
	f.pos += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return f.r.Close() }

// A streaming (aws-chunked, chunk-signed) body altered in flight is
// refused and nothing is stored, even when the altered chunk comes after
// whole stripes were already read.
func TestTamperedStreamingPayload(t *testing.T) {
	h := newHarness(t)
	h.bucket("stream")
	ft := &flipTransport{offset: 2*mib + 100}
	mc, err := minio.New(h.host, &minio.Options{Creds: miniocreds.NewStaticV4(alice.AccessKey, alice.SecretKey, ""), Region: region,
		BucketLookup: minio.BucketLookupPath, Transport: ft, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	body := pattern(3*mib, 3)
	before := h.shardBlobs(t)
	_, err = mc.PutObject(t.Context(), "stream", "k", io.NopCloser(bytes.NewReader(body)), int64(len(body)), minio.PutObjectOptions{DisableMultipart: true})
	if err == nil {
		t.Fatal("tampered streaming put succeeded")
	}
	resp := minio.ToErrorResponse(err)
	if resp.StatusCode != 403 || resp.Code != "SignatureDoesNotMatch" {
		t.Errorf("got %d %s (%v), want 403 SignatureDoesNotMatch", resp.StatusCode, resp.Code, err)
	}
	if len(ft.modes) == 0 || !strings.HasPrefix(ft.modes[0], "STREAMING-") {
		t.Errorf("payload modes %q: minio did not stream, the test tests nothing", ft.modes)
	}
	if h.stored(t, "stream", "k") {
		t.Errorf("a tampered streaming body was stored")
	}
	if after := h.shardBlobs(t); !slices.Equal(before, after) {
		t.Errorf("a tampered streaming body left blobs behind: %d before, %d after: %v", len(before), len(after), after)
	}
}

func TestPresignedURLs(t *testing.T) {
	h := newHarness(t)
	h.bucket("presign")
	ctx := t.Context()
	pc := awss3.NewPresignClient(h.sdk)
	body := []byte("uploaded through a presigned URL")

	put, err := pc.PresignPutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("presign"), Key: aws.String("dir/up loaded")}, awss3.WithPresignExpires(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(put.Method, put.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range put.SignedHeader {
		if !strings.EqualFold(k, "host") {
			req.Header[k] = vs
		}
	}
	if r := h.send(req); r.status != 200 {
		t.Fatalf("presigned PUT: %d\n%s", r.status, r.body)
	}
	get, err := pc.PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("presign"), Key: aws.String("dir/up loaded")}, awss3.WithPresignExpires(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	r := h.send(mustRequest(t, "GET", get.URL))
	if r.status != 200 || !bytes.Equal(r.body, body) {
		t.Fatalf("presigned GET: %d %q", r.status, r.body)
	}

	t.Run("expired", func(t *testing.T) {
		u := h.presign("GET", "/presign/dir/up%20loaded", alice, time.Now().Add(-2*time.Hour), time.Hour)
		h.send(mustRequest(t, "GET", u)).wantError(t, "AccessDenied", 403)
	})
	t.Run("not yet expired", func(t *testing.T) {
		u := h.presign("GET", "/presign/dir/up%20loaded", alice, time.Now().Add(-30*time.Minute), time.Hour)
		if r := h.send(mustRequest(t, "GET", u)); r.status != 200 {
			t.Errorf("status %d\n%s", r.status, r.body)
		}
	})
	t.Run("other key with the same signature", func(t *testing.T) {
		u := strings.Replace(get.URL, "up%20loaded", "other", 1)
		h.send(mustRequest(t, "GET", u)).wantError(t, "SignatureDoesNotMatch", 403)
	})
	t.Run("presigned GET used to PUT", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", get.URL, strings.NewReader("overwrite"))
		h.send(req).wantError(t, "SignatureDoesNotMatch", 403)
		if got := h.get("presign", "dir/up loaded"); !bytes.Equal(got, body) {
			t.Errorf("object overwritten through a GET URL")
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		u := h.presign("GET", "/presign/dir/up%20loaded", s3.Credential{AccessKey: alice.AccessKey, SecretKey: "wrong-secret-wrong-secret"}, time.Now(), time.Minute)
		h.send(mustRequest(t, "GET", u)).wantError(t, "SignatureDoesNotMatch", 403)
	})
	t.Run("expiry longer than a week", func(t *testing.T) {
		u := h.presign("GET", "/presign/dir/up%20loaded", alice, time.Now(), 8*24*time.Hour)
		r := h.send(mustRequest(t, "GET", u))
		if r.status != 400 && r.status != 403 {
			t.Errorf("status %d, want a refusal\n%s", r.status, r.body)
		}
	})
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// rawExchange writes a request on a fresh connection and reads the
// response, with a deadline: a server that waited for a body never sent
// would fail the test instead of hanging it.
func rawExchange(t *testing.T, host, request string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	return resp
}

func TestEntityTooLargeUnread(t *testing.T) {
	h := newHarness(t)
	h.bucket("huge")
	u := h.createUpload(t, "huge", "mp")
	const six = 6 << 30
	tests := []struct {
		name string
		path string
	}{
		{"put object", "/huge/big"},
		{"upload part", "/huge/mp?partNumber=1&uploadId=" + u.id},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Sign a request declaring 6 GiB; send the headers only.
			req := h.newRequest(rawRequest{method: "PUT", path: tt.path, as: &alice, payload: "UNSIGNED-PAYLOAD", contentLength: six})
			var b strings.Builder
			fmt.Fprintf(&b, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", req.URL.RequestURI(), h.host, int64(six))
			for k, vs := range req.Header {
				for _, v := range vs {
					fmt.Fprintf(&b, "%s: %s\r\n", k, v)
				}
			}
			b.WriteString("\r\n")
			resp := rawExchange(t, h.host, b.String())
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			rawResponse{status: resp.StatusCode, header: resp.Header, body: body}.wantError(t, "EntityTooLarge", 400)
		})
	}
	if h.stored(t, "huge", "big") {
		t.Errorf("an oversized put stored an object")
	}
}

// The listener node.Serve runs refuses request headers past
// s3.MaxHeaderBytes before any handler sees them.
func TestOversizedHeaders(t *testing.T) {
	dir := t.TempDir()
	if _, err := node.InitDev(dir, node.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	devPrincipals(t, dir, alice.Principal)
	n, err := node.Open(context.Background(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- n.Serve(ctx, node.ServeOptions{Address: "127.0.0.1:0", Credentials: []s3.Credential{alice}, Ready: func(addr string, _ bool) { ready <- addr }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("node did not start serving")
	}
	tests := []struct {
		name   string
		size   int
		status int
	}{
		{"small headers reach the handler", 1 << 10, 403}, // anonymous
		{"80 KiB of headers", 80 << 10, http.StatusRequestHeaderFieldsTooLarge},
		{"1 MiB of headers", 1 << 20, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := "GET /bucket/key HTTP/1.1\r\nHost: " + addr + "\r\nX-Filler: " + strings.Repeat("a", tt.size) + "\r\n\r\n"
			resp := rawExchange(t, addr, req)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

// TestForgedShardBlock: someone with write access to one site replaces a
// block of a data shard and writes the checksum it should have, computed
// as docs/storage-format.md describes (XXH3-128 over "EMBSHDv2", the
// block's identity and its bytes: the checksum has no key). The block
// passes its checksum, the stripe's AEAD tag does not open, and the read
// leaves one shard out at a time: whole and ranged GETs return the
// object's own bytes.
func TestForgedShardBlock(t *testing.T) {
	h := newHarness(t)
	h.bucket("forged")
	body := pattern(3*mib, 5)
	h.put("forged", "k", body)
	var victim string
	for _, p := range h.shardBlobs(t) {
		if strings.HasSuffix(p, ".1") { // a data shard (4+2)
			victim = p
		}
	}
	if victim == "" {
		t.Fatal("no shard blob 1 on the sites")
	}
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	// Three full stripes of 1 MiB: three blocks of ceil((1 MiB + 16)/4)
	// shard bytes and a 16-byte checksum each.
	const ss = (mib + 16 + 3) / 4
	if len(b) != 3*(ss+16) {
		t.Fatalf("shard blob of %d bytes, want 3 blocks of %d + 16", len(b), ss)
	}
	name := filepath.Base(victim)
	blob, err := hex.DecodeString(name[:32])
	if err != nil {
		t.Fatal(err)
	}
	block := b[ss+16 : 2*(ss+16)] // stripe 1
	for i := range 64 {
		block[100+i] ^= 0xa5
	}
	hdr := append([]byte("EMBSHDv2"), blob...)
	hdr = binary.BigEndian.AppendUint32(hdr, 1) // part
	hdr = binary.BigEndian.AppendUint64(hdr, 1) // stripe
	hdr = append(hdr, 1)                        // shard
	sum := xxh3.Hash128(append(hdr, block[:ss]...)).Bytes()
	copy(block[ss:], sum[:])
	var id erasure.BlockID
	copy(id.Version[:], blob)
	id.Part, id.Stripe, id.Shard = 1, 1, 1
	if _, err := erasure.XXH3.Verify(id, block); err != nil {
		t.Fatalf("the forged block does not pass its checksum, so the test tests nothing: %v", err)
	}
	if err := os.WriteFile(victim, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := h.get("forged", "k"); !bytes.Equal(got, body) {
		t.Fatal("a forged block with a valid checksum changed what a GET returns")
	}
	out, err := h.sdk.GetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String("forged"), Key: aws.String("k"), Range: aws.String("bytes=1048000-1049999")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, body[1048000:1050000]) {
		t.Fatalf("ranged GET over the forged stripe: %d bytes, %v", len(got), err)
	}
}
