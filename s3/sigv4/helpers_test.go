package sigv4

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The AWS documentation's example credentials.
const (
	docAccessKey = "AKIAIOSFODNN7EXAMPLE"
	docSecret    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

// Credentials used by the tests' own signed requests.
const (
	testAccessKey = "EMBASSYTESTKEY000001"
	testSecret    = "s3cr3t/with+odd=chars"
	testRegion    = "eu-north-1"
)

// t0 is when the tests' requests are signed; testNow is the server clock.
var (
	t0      = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	testNow = t0.Add(time.Minute)
)

type mapCreds map[string]string

func (m mapCreds) Secret(ak string) (string, bool) {
	s, ok := m[ak]
	return s, ok
}

var testCreds = mapCreds{docAccessKey: docSecret, testAccessKey: testSecret}

// wantCode fails unless err is an *Error with the code.
func wantCode(t testing.TB, err error, code Code) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("got %T %v, want *Error %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("got %s (%v), want %s", e.Code, err, code)
	}
	if e.Status() != code.Status() {
		t.Fatalf("status %d, want %d", e.Status(), code.Status())
	}
	return e
}

// readPayload verifies r and reads its whole body through Auth.Body.
func readPayload(r *http.Request, now time.Time, opt Options) ([]byte, *Payload, error) {
	a, err := Verify(r, testCreds, now, opt)
	if err != nil {
		return nil, nil, err
	}
	p := a.Body(r.Body)
	b, err := io.ReadAll(p)
	return b, p, err
}

// sdkSign signs r in place with aws-sdk-go-v2's SigV4 signer, as its S3
// client does (no extra path escaping). payload is the
// x-amz-content-sha256 value, also set as the header.
func sdkSign(t testing.TB, r *http.Request, payload, ak, secret string, at time.Time) {
	t.Helper()
	r.Header.Set("X-Amz-Content-Sha256", payload)
	s := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	err := s.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: ak, SecretAccessKey: secret}, r, payload, "s3", testRegion, at)
	if err != nil {
		t.Fatal(err)
	}
}

// seedOf extracts the Signature of an Authorization header.
func seedOf(t testing.TB, r *http.Request) string {
	t.Helper()
	_, sig, ok := strings.Cut(r.Header.Get("Authorization"), "Signature=")
	if !ok || len(sig) != 64 {
		t.Fatalf("no signature in %q", r.Header.Get("Authorization"))
	}
	return sig
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// chunkSigner signs aws-chunked chunks and trailers by the algorithm in
// the S3 API reference, independently of the package's decoder.
type chunkSigner struct {
	key           []byte
	amzDate, scop string
	prev          string
}

func newChunkSigner(secret, region string, at time.Time, seed string) *chunkSigner {
	k := []byte("AWS4" + secret)
	for _, s := range []string{at.Format("20060102"), region, "s3", "aws4_request"} {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(s))
		k = m.Sum(nil)
	}
	return &chunkSigner{key: k, amzDate: at.Format("20060102T150405Z"),
		scop: at.Format("20060102") + "/" + region + "/s3/aws4_request", prev: seed}
}

func (s *chunkSigner) mac(sts string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(sts))
	s.prev = hex.EncodeToString(m.Sum(nil))
	return s.prev
}

func (s *chunkSigner) chunk(data []byte) string {
	return s.mac("AWS4-HMAC-SHA256-PAYLOAD\n" + s.amzDate + "\n" + s.scop + "\n" + s.prev + "\n" +
		hexSHA256(nil) + "\n" + hexSHA256(data))
}

func (s *chunkSigner) trailer(canon string) string {
	return s.mac("AWS4-HMAC-SHA256-TRAILER\n" + s.amzDate + "\n" + s.scop + "\n" + s.prev + "\n" + hexSHA256([]byte(canon)))
}

// encodeChunks frames data as aws-chunked, signing each chunk when s is
// not nil, and appends the trailer (name, value pairs; signed when s is
// not nil and the trailer is not nil).
func encodeChunks(s *chunkSigner, data []byte, size int, trailer [][2]string) []byte {
	var b bytes.Buffer
	for off := 0; ; off += size {
		c := data[min(off, len(data)):min(off+size, len(data))]
		if s != nil {
			fmt.Fprintf(&b, "%x;chunk-signature=%s\r\n", len(c), s.chunk(c))
		} else {
			fmt.Fprintf(&b, "%x\r\n", len(c))
		}
		if len(c) == 0 {
			break
		}
		b.Write(c)
		b.WriteString("\r\n")
	}
	if trailer == nil {
		b.WriteString("\r\n")
		return b.Bytes()
	}
	var canon string
	for _, kv := range trailer {
		fmt.Fprintf(&b, "%s:%s\r\n", kv[0], kv[1])
		canon += kv[0] + ":" + kv[1] + "\n"
	}
	if s != nil {
		fmt.Fprintf(&b, "x-amz-trailer-signature:%s\r\n", s.trailer(canon))
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// chunkedSpec describes an aws-chunked PUT: headers signed by
// aws-sdk-go-v2 for the streaming mode, body framed by encodeChunks.
type chunkedSpec struct {
	mode         string
	data         []byte
	size         int    // chunk size
	trailerName  string // declared in x-amz-trailer when set
	trailerValue string
	declared     string    // x-amz-decoded-content-length: len(data) when empty, absent when "-"
	at           time.Time // signing time; t0 when zero
}

func (c chunkedSpec) request(t testing.TB) *http.Request {
	t.Helper()
	at := c.at
	if at.IsZero() {
		at = t0
	}
	r := httptest.NewRequest(http.MethodPut, "http://localhost:9000/bucket/chunked%20object", nil)
	r.ContentLength = 0 // content-length is left unsigned
	r.Header.Set("Content-Encoding", "aws-chunked")
	switch c.declared {
	case "":
		r.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(c.data)))
	case "-":
	default:
		r.Header.Set("X-Amz-Decoded-Content-Length", c.declared)
	}
	if c.trailerName != "" {
		r.Header.Set("X-Amz-Trailer", c.trailerName)
	}
	sdkSign(t, r, c.mode, testAccessKey, testSecret, at)
	var s *chunkSigner
	if c.mode != StreamingUnsignedTrailer {
		s = newChunkSigner(testSecret, testRegion, at, seedOf(t, r))
	}
	var trailer [][2]string
	if c.trailerName != "" {
		trailer = [][2]string{{c.trailerName, c.trailerValue}}
	} else if c.mode != StreamingSigned {
		trailer = [][2]string{}
	}
	body := encodeChunks(s, c.data, c.size, trailer)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return r
}

// testData is n deterministic bytes.
func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// flipLast changes the last hex digit of s.
func flipLast(s string) string {
	if strings.HasSuffix(s, "0") {
		return s[:len(s)-1] + "1"
	}
	return s[:len(s)-1] + "0"
}
