package sigv4

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
)

// checkErr fails unless err is nil or a well-formed *Error.
func checkErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("error %T %v is not an *Error", err, err)
	}
	if e.Code == "" || e.Message == "" || e.Status() < 400 || !strings.HasPrefix(e.Error(), "sigv4: ") {
		t.Fatalf("ill-formed error %#v", e)
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-date, Signature=" + goodSig)
	f.Add("AWS4-HMAC-SHA256 Credential=" + testAccessKey + "/20261125/eu-north-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=" + goodSig)
	f.Add("AWS4-HMAC-SHA256 Signature=, SignedHeaders=;, Credential=////")
	f.Add("AWS4-ECDSA-P256-SHA256 Credential=a")
	f.Add("AWS a:b")
	f.Add("")
	f.Fuzz(func(t *testing.T, header string) {
		s, perr := parseAuthorization(header)
		if perr != nil {
			checkErr(t, perr)
		} else {
			if !strings.HasPrefix(header, algorithm+" ") {
				t.Fatalf("parsed %q without the algorithm", header)
			}
			host := false
			for _, h := range s.signedHeaders {
				if h == "" || h != strings.ToLower(h) {
					t.Fatalf("signed header %q", h)
				}
				host = host || h == "host"
			}
			if !host || strings.Count(s.cred.scope, "/") != 3 || s.cred.accessKey == "" {
				t.Fatalf("parsed %+v", s)
			}
		}
		// The whole of Verify takes any header without panicking.
		r := httptest.NewRequest("GET", "http://localhost:9000/bucket/key", nil)
		r.Header.Set("Authorization", header)
		r.Header.Set("X-Amz-Date", t0.Format(iso8601Basic))
		r.Header.Set("X-Amz-Content-Sha256", UnsignedPayload)
		_, err := Verify(r, testCreds, testNow, Options{})
		if err == nil {
			t.Fatalf("verified a fuzzed header %q", header)
		}
		checkErr(t, err)
	})
}

func FuzzPresignQuery(f *testing.F) {
	f.Add(presignedGet(f).URL.RawQuery, "/bucket/key")
	f.Add("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb&X-Amz-Expires=-1", "/")
	f.Add("X-Amz-Signature=&X-Amz-Signature=", "/%2F")
	f.Add("a=%zz&b=+&c=%2B&&=", "/a%20b")
	f.Add("AWSAccessKeyId=a&Signature=b", "/")
	f.Fuzz(func(t *testing.T, rawQuery, path string) {
		// Canonicalising is idempotent: a canonical query string parses
		// back to itself.
		c := canonicalQuery(parseQuery(rawQuery), "")
		if again := canonicalQuery(parseQuery(c), ""); again != c {
			t.Fatalf("canonical query %q re-canonicalises to %q", c, again)
		}
		if cu := canonicalURI(&url.URL{Path: path}); strings.HasPrefix(path, "/") && !strings.HasPrefix(cu, "/") {
			t.Fatalf("canonical uri %q of %q", cu, path)
		}
		r := httptest.NewRequest("GET", "http://localhost:9000/", nil)
		r.URL.Path, r.URL.RawQuery = path, rawQuery
		a, err := Verify(r, testCreds, testNow, Options{})
		checkErr(t, err)
		if err == nil && rawQuery != presignedGet(t).URL.RawQuery {
			t.Fatalf("verified a fuzzed query %q (auth %v)", rawQuery, a)
		}
	})
}

// fuzzAuths are verified requests of each streaming mode whose bodies the
// chunked-reader fuzzer replaces.
func fuzzAuths(f *testing.F) ([]*Auth, [][]byte) {
	data := testData(20000)
	specs := []chunkedSpec{
		{mode: StreamingSigned, data: data, size: 8192},
		{mode: StreamingSignedTrailer, data: data, size: 8192, trailerName: "x-amz-checksum-crc32", trailerValue: crc32b64(string(data))},
		{mode: StreamingUnsignedTrailer, data: data, size: 8192, trailerName: "x-amz-checksum-crc32", trailerValue: crc32b64(string(data))},
		{mode: StreamingUnsignedTrailer, data: data[:100], size: 8192, declared: "-"},
	}
	var auths []*Auth
	var bodies [][]byte
	for _, s := range specs {
		r := s.request(f)
		a, err := Verify(r, testCreds, testNow, Options{MaxChunkSize: 1 << 16, MaxTrailerSize: 1024})
		if err != nil {
			f.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		auths, bodies = append(auths, a), append(bodies, b)
	}
	return auths, bodies
}

func FuzzChunkedReader(f *testing.F) {
	auths, bodies := fuzzAuths(f)
	for i, b := range bodies {
		f.Add(uint8(i), b)
		f.Add(uint8(i), b[:len(b)/2])
	}
	f.Add(uint8(3), []byte("64\r\n"+strings.Repeat("a", 100)+"\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\n\r\n\r\n"))
	f.Add(uint8(3), []byte("ffffffffffffffff\r\n"))
	f.Add(uint8(0), []byte("0;chunk-signature="+strings.Repeat("0", 64)+"\r\n\r\n"))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		a := auths[int(which)%len(auths)]
		p := a.Body(bytes.NewReader(body))
		got, err := io.ReadAll(p)
		checkErr(t, err)
		if len(got) > len(body) {
			t.Fatalf("decoded %d bytes from %d", len(got), len(body))
		}
		if err == nil {
			// Only a body that decodes to what was signed or summed passes
			// a signed or checksummed mode.
			switch int(which) % len(auths) {
			case 0, 1, 2:
				if !bytes.Equal(got, testData(20000)) {
					t.Fatalf("accepted %d bytes that are not the signed data", len(got))
				}
			case 3:
				if a.ContentLength != -1 {
					t.Fatal("declared length set")
				}
			}
		}
	})
}

// Decoding a body holds a fixed amount of memory however large its chunks
// or the body are.
func TestChunkedMemoryBounded(t *testing.T) {
	data := testData(8 << 20)
	for _, mode := range []string{StreamingSigned, StreamingUnsignedTrailer} {
		t.Run(mode, func(t *testing.T) {
			r := chunkedSpec{mode: mode, data: data, size: 8 << 20}.request(t)
			body, _ := io.ReadAll(r.Body)
			a, err := Verify(r, testCreds, testNow, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			n, err := io.CopyBuffer(io.Discard, a.Body(bytes.NewReader(body)), make([]byte, 32<<10))
			runtime.ReadMemStats(&after)
			if err != nil || n != int64(len(data)) {
				t.Fatalf("decoded %d bytes, %v", n, err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<10 {
				t.Fatalf("decoding an 8 MiB chunk allocated %d bytes", grew)
			}
		})
	}
}
