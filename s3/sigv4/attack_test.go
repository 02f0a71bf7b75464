package sigv4

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// signedPut is a valid request signed by aws-sdk-go-v2 at t0, with a signed
// hash of its body, a signed metadata header and a query.
func signedPut(t testing.TB) *http.Request {
	r := httptest.NewRequest("PUT", "http://localhost:9000/bucket/key?partNumber=1&uploadId=abc", strings.NewReader("payload"))
	r.Header.Set("X-Amz-Meta-Owner", "EST")
	sdkSign(t, r, hexSHA256([]byte("payload")), testAccessKey, testSecret, t0)
	return r
}

// What an attacker might do to a signed request, and what S3 answers.
func TestTamperedRequests(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, r *http.Request)
		now    time.Time // testNow when zero
		opt    Options
		code   Code // "" when the request must verify
		inBody bool // the error comes from reading the body
	}{
		{name: "untouched", mutate: func(*testing.T, *http.Request) {}},
		{name: "unsigned ordinary header added", mutate: func(_ *testing.T, r *http.Request) { r.Header.Set("User-Agent", "curl") }},
		{name: "path percent-encoded differently but equal", mutate: func(_ *testing.T, r *http.Request) { r.URL.RawPath = "/bucket/%6bey" }},
		{name: "14 minutes later", now: t0.Add(14 * time.Minute), mutate: func(*testing.T, *http.Request) {}},

		{name: "wrong secret", code: SignatureDoesNotMatch, mutate: func(t *testing.T, r *http.Request) {
			sdkSign(t, r, hexSHA256([]byte("payload")), testAccessKey, "not the secret", t0)
		}},
		{name: "unknown access key", code: InvalidAccessKeyID, mutate: func(t *testing.T, r *http.Request) {
			sdkSign(t, r, hexSHA256([]byte("payload")), "AKIDUNKNOWN", testSecret, t0)
		}},
		{name: "signed header changed", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) { r.Header.Set("X-Amz-Meta-Owner", "USA") }},
		{name: "signed header removed", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) { r.Header.Del("X-Amz-Meta-Owner") }},
		{name: "signed header given a second value", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) { r.Header.Add("X-Amz-Meta-Owner", "USA") }},
		{name: "unsigned x-amz header added", code: AccessDenied, mutate: func(_ *testing.T, r *http.Request) { r.Header.Set("X-Amz-Storage-Class", "GLACIER") }},
		{name: "query value changed", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) { r.URL.RawQuery = "partNumber=2&uploadId=abc" }},
		{name: "query parameter added", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) { r.URL.RawQuery += "&versionId=x" }},
		{name: "query parameter removed", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) { r.URL.RawQuery = "uploadId=abc" }},
		{name: "path changed", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) { r.URL.Path = "/bucket/key2" }},
		{name: "path slash encoded", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) { r.URL.RawPath = "/bucket%2Fkey" }},
		{name: "method changed", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) { r.Method = "POST" }},
		{name: "host port changed", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) { r.Host = "localhost:9001" }},
		{name: "x-amz-date moved a second", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) {
			r.Header.Set("X-Amz-Date", t0.Add(time.Second).Format(iso8601Basic))
		}},
		{name: "signature digit changed", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) {
			r.Header.Set("Authorization", flipLast(r.Header.Get("Authorization")))
		}},
		{name: "signature truncated", code: SignatureDoesNotMatch, mutate: func(_ *testing.T, r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:len(a)-1])
		}},
		{name: "credential day changed", code: AuthorizationHeaderMalformed, mutate: func(_ *testing.T, r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/20261125/", "/20261124/", 1))
		}},
		{name: "body changed", code: XAmzContentSHA256Mismatch, inBody: true, mutate: func(_ *testing.T, r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader("paYload"))
		}},
		{name: "body cut short", code: XAmzContentSHA256Mismatch, inBody: true, mutate: func(_ *testing.T, r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader("pay"))
		}},
		{name: "unsigned wrong content-md5", code: BadDigest, inBody: true, mutate: func(_ *testing.T, r *http.Request) {
			r.Header.Set("Content-Md5", md5b64("something else"))
		}},
		{name: "unsigned malformed content-md5", code: InvalidDigest, mutate: func(_ *testing.T, r *http.Request) {
			r.Header.Set("Content-Md5", "not base64")
		}},
		{name: "replayed 16 minutes later", now: t0.Add(16 * time.Minute), code: RequestTimeTooSkewed, mutate: func(*testing.T, *http.Request) {}},
		{name: "sent 16 minutes early", now: t0.Add(-16 * time.Minute), code: RequestTimeTooSkewed, mutate: func(*testing.T, *http.Request) {}},
		{name: "replayed within a tighter skew", now: t0.Add(2 * time.Minute), opt: Options{MaxSkew: time.Minute}, code: RequestTimeTooSkewed,
			mutate: func(*testing.T, *http.Request) {}},
		{name: "signed for another region", opt: Options{Region: "us-east-1"}, code: AuthorizationHeaderMalformed, mutate: func(*testing.T, *http.Request) {}},
		{name: "x-amz-content-sha256 removed", code: InvalidRequest, mutate: func(_ *testing.T, r *http.Request) { r.Header.Del("X-Amz-Content-Sha256") }},
		{name: "x-amz-content-sha256 not a mode", code: InvalidArgument, mutate: func(_ *testing.T, r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", "STREAMING-SOMETHING")
		}},
		{name: "x-amz-content-sha256 sigv4a streaming", code: NotImplemented, mutate: func(_ *testing.T, r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")
		}},
		{name: "x-amz-date removed", code: AccessDenied, mutate: func(_ *testing.T, r *http.Request) { r.Header.Del("X-Amz-Date") }},
		{name: "x-amz-date malformed", code: AccessDenied, mutate: func(_ *testing.T, r *http.Request) { r.Header.Set("X-Amz-Date", "2026-11-25T12:00:00Z") }},
		{name: "session token", code: InvalidToken, mutate: func(_ *testing.T, r *http.Request) { r.Header.Set("X-Amz-Security-Token", "token") }},
		{name: "presigned query as well", code: InvalidArgument, mutate: func(_ *testing.T, r *http.Request) { r.URL.RawQuery += "&X-Amz-Signature=00" }},
		{name: "two authorization headers", code: AuthorizationHeaderMalformed, mutate: func(_ *testing.T, r *http.Request) {
			r.Header.Add("Authorization", r.Header.Get("Authorization"))
		}},
		{name: "signature version 2", code: InvalidRequest, mutate: func(_ *testing.T, r *http.Request) { r.Header.Set("Authorization", "AWS AKID:c2lnbmF0dXJl") }},
		{name: "signature version 4a", code: NotImplemented, mutate: func(_ *testing.T, r *http.Request) {
			r.Header.Set("Authorization", "AWS4-ECDSA-P256-SHA256 Credential=AKID/20261125/s3/aws4_request, SignedHeaders=host, Signature=3045")
		}},
		{name: "other scheme", code: InvalidArgument, mutate: func(_ *testing.T, r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }},
		{name: "empty authorization", code: AuthorizationHeaderMalformed, mutate: func(_ *testing.T, r *http.Request) { r.Header.Set("Authorization", "") }},
		{name: "signature version 2 presigned", code: InvalidRequest, mutate: func(_ *testing.T, r *http.Request) {
			r.Header.Del("Authorization")
			r.URL.RawQuery = "AWSAccessKeyId=AKID&Expires=1&Signature=abc"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signedPut(t)
			tt.mutate(t, r)
			now := tt.now
			if now.IsZero() {
				now = testNow
			}
			a, err := Verify(r, testCreds, now, tt.opt)
			if err == nil {
				var body []byte
				body, err = io.ReadAll(a.Body(r.Body))
				if err == nil && string(body) != "payload" {
					t.Fatalf("body %q", body)
				}
				if err != nil && !tt.inBody {
					t.Fatalf("error from the body, want it from Verify: %v", err)
				}
			} else if tt.inBody {
				t.Fatalf("error from Verify, want it from the body: %v", err)
			}
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := wantCode(t, err, tt.code)
			assertNoSecret(t, e)
		})
	}
}

// An error never carries the secret, and a signature error carries what S3
// returns to help a client debug: the string to sign and canonical request.
func assertNoSecret(t *testing.T, e *Error) {
	t.Helper()
	all := e.Error() + e.Message + fmt.Sprint(e.Fields)
	for _, s := range []string{testSecret, hex.EncodeToString([]byte(testSecret))} {
		if strings.Contains(all, s) {
			t.Fatalf("error carries the secret: %s", all)
		}
	}
	if e.Code == SignatureDoesNotMatch && len(e.Fields) > 0 {
		names := ""
		for _, f := range e.Fields {
			names += f.Name + " "
		}
		if !strings.Contains(names, "StringToSign") || !strings.Contains(names, "CanonicalRequest") {
			t.Fatalf("signature error fields: %s", names)
		}
	}
	if e.Detail == "" || e.Detail != strings.ToLower(e.Detail[:1])+e.Detail[1:] {
		t.Fatalf("detail %q is empty or not lower-case", e.Detail)
	}
}

func TestAnonymous(t *testing.T) {
	r := httptest.NewRequest("GET", "http://localhost:9000/bucket/key", nil)
	_, err := Verify(r, testCreds, testNow, Options{})
	wantCode(t, err, AccessDenied)
	if !errors.Is(err, ErrAnonymous) {
		t.Fatalf("%v does not wrap ErrAnonymous", err)
	}
	// A signed request that fails is not anonymous.
	r = signedPut(t)
	r.Header.Set("X-Amz-Meta-Owner", "USA")
	if _, err := Verify(r, testCreds, testNow, Options{}); errors.Is(err, ErrAnonymous) {
		t.Fatal("a bad signature reported as anonymous")
	}
}

// A request signed with Date and no x-amz-date uses Date as its time.
func TestDateHeaderOnly(t *testing.T) {
	r := httptest.NewRequest("GET", "http://localhost:9000/bucket/key", nil)
	r.Header.Set("Date", t0.Format(http.TimeFormat))
	r.Header.Set("X-Amz-Content-Sha256", UnsignedPayload)
	signed := "date;host;x-amz-content-sha256"
	canonical := "GET\n/bucket/key\n\ndate:" + t0.Format(http.TimeFormat) + "\nhost:localhost:9000\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n\n" + signed + "\nUNSIGNED-PAYLOAD"
	s := newChunkSigner(testSecret, testRegion, t0, "")
	sig := s.mac("AWS4-HMAC-SHA256\n" + s.amzDate + "\n" + s.scop + "\n" + hexSHA256([]byte(canonical)))
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testAccessKey+"/"+s.scop+", SignedHeaders="+signed+", Signature="+sig)
	a, err := Verify(r, testCreds, testNow, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Time.Equal(t0) {
		t.Fatalf("time %v", a.Time)
	}
	_, err = Verify(r, testCreds, t0.Add(time.Hour), Options{})
	wantCode(t, err, RequestTimeTooSkewed)
}

// Printing or logging an Auth never shows its signing key.
func TestAuthDoesNotPrintKey(t *testing.T) {
	r := signedPut(t)
	a, err := Verify(r, testCreds, testNow, Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := deriveKey(testSecret, "20261125", testRegion)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("auth", "auth", a)
	for _, out := range []string{fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", *a), fmt.Sprintf("%x", a), logged.String()} {
		for _, secret := range []string{hex.EncodeToString(key[:]), fmt.Sprint(key[:]), fmt.Sprintf("%x", key[:4]), testSecret} {
			if strings.Contains(out, secret) {
				t.Fatalf("%q shows the signing key", out)
			}
		}
		if !strings.Contains(out, testAccessKey) {
			t.Fatalf("%q does not name the access key", out)
		}
	}
}

func presignedGet(t testing.TB) *http.Request {
	s := newChunkSigner(testSecret, testRegion, t0, "")
	q := "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + testAccessKey + "%2F" + strings.ReplaceAll(s.scop, "/", "%2F") +
		"&X-Amz-Date=" + s.amzDate + "&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
	canonical := "GET\n/bucket/key\n" + q + "\nhost:localhost:9000\n\nhost\nUNSIGNED-PAYLOAD"
	sig := s.mac("AWS4-HMAC-SHA256\n" + s.amzDate + "\n" + s.scop + "\n" + hexSHA256([]byte(canonical)))
	return httptest.NewRequest("GET", "http://localhost:9000/bucket/key?"+q+"&X-Amz-Signature="+sig, nil)
}

// What an attacker might do to a presigned URL.
func TestTamperedPresigned(t *testing.T) {
	replace := func(old, new string) func(*http.Request) {
		return func(r *http.Request) { r.URL.RawQuery = strings.Replace(r.URL.RawQuery, old, new, 1) }
	}
	tests := []struct {
		name   string
		mutate func(*http.Request)
		code   Code
	}{
		{"untouched", func(*http.Request) {}, ""},
		{"parameters reordered", func(r *http.Request) {
			p := strings.Split(r.URL.RawQuery, "&")
			p[0], p[len(p)-1] = p[len(p)-1], p[0]
			r.URL.RawQuery = strings.Join(p, "&")
		}, ""},
		{"expiry lengthened", replace("X-Amz-Expires=300", "X-Amz-Expires=3000"), SignatureDoesNotMatch},
		{"date moved", replace("T120000Z", "T120100Z"), SignatureDoesNotMatch},
		{"parameter added", func(r *http.Request) { r.URL.RawQuery += "&versionId=1" }, SignatureDoesNotMatch},
		{"path changed", func(r *http.Request) { r.URL.Path = "/bucket/other" }, SignatureDoesNotMatch},
		{"signature changed", func(r *http.Request) { r.URL.RawQuery = flipLast(r.URL.RawQuery) }, SignatureDoesNotMatch},
		{"signature repeated", func(r *http.Request) { r.URL.RawQuery += "&X-Amz-Signature=00" }, AuthorizationQueryParametersError},
		{"signature missing", replace("&X-Amz-Signature=", "&X-Amz-Signaturx="), AuthorizationQueryParametersError},
		{"signed headers missing", replace("X-Amz-SignedHeaders=host", "x=host"), AuthorizationQueryParametersError},
		{"host not signed", replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=range"), AuthorizationQueryParametersError},
		{"expires not a number", replace("X-Amz-Expires=300", "X-Amz-Expires=5m"), AuthorizationQueryParametersError},
		{"expires negative", replace("X-Amz-Expires=300", "X-Amz-Expires=-1"), AuthorizationQueryParametersError},
		{"expires over a week", replace("X-Amz-Expires=300", "X-Amz-Expires=604801"), AuthorizationQueryParametersError},
		{"date malformed", replace("X-Amz-Date=20261125T120000Z", "X-Amz-Date=20261125"), AuthorizationQueryParametersError},
		{"credential malformed", replace("%2Faws4_request", "%2Faws5_request"), AuthorizationQueryParametersError},
		{"credential for another service", replace("%2Fs3%2F", "%2Fs4%2F"), AuthorizationQueryParametersError},
		{"credential for another day", replace("%2F20261125%2F", "%2F20261126%2F"), AuthorizationQueryParametersError},
		{"algorithm changed", replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"), AuthorizationQueryParametersError},
		{"sigv4a", replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"), NotImplemented},
		{"session token added", func(r *http.Request) { r.URL.RawQuery += "&X-Amz-Security-Token=t" }, InvalidToken},
		{"unsigned x-amz header", func(r *http.Request) { r.Header.Set("X-Amz-Acl", "public-read") }, AccessDenied},
		{"streaming payload", func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", StreamingSigned) }, InvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := presignedGet(t)
			tt.mutate(r)
			_, err := Verify(r, testCreds, testNow, Options{})
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			assertNoSecret(t, wantCode(t, err, tt.code))
		})
	}
}

// S3's expiry of a presigned URL is checked at the second.
func TestPresignedExpiry(t *testing.T) {
	tests := []struct {
		name string
		now  time.Time
		code Code
	}{
		{"at signing", t0, ""},
		{"last valid second", t0.Add(300 * time.Second), ""},
		{"one second late", t0.Add(301 * time.Second), AccessDenied},
		{"a year late", t0.AddDate(1, 0, 0), AccessDenied},
		{"15 minutes early", t0.Add(-15 * time.Minute), ""},
		{"16 minutes early", t0.Add(-16 * time.Minute), AccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(presignedGet(t), testCreds, tt.now, Options{})
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := wantCode(t, err, tt.code)
			if tt.now.After(t0) && e.Message != "Request has expired" {
				t.Fatalf("message %q", e.Message)
			}
		})
	}
}
