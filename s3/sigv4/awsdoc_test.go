package sigv4

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The examples of the S3 API reference, "Authenticating Requests (AWS
// Signature Version 4)": the header-based examples, the query-string
// example and the chunked-upload examples, all signed with the example
// credentials at 20130524T000000Z for us-east-1.

var docTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

func docAuthorization(signed, sig string) string {
	return "AWS4-HMAC-SHA256 Credential=" + docAccessKey + "/20130524/us-east-1/s3/aws4_request,SignedHeaders=" + signed + ",Signature=" + sig
}

func TestAWSDocHeaderExamples(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		headers [][2]string
		body    string
		signed  string
		sig     string
	}{
		{
			name: "GET Object", method: "GET", target: "/test.txt",
			headers: [][2]string{{"Range", "bytes=0-9"}, {"X-Amz-Content-Sha256", emptySHA256}, {"X-Amz-Date", "20130524T000000Z"}},
			signed:  "host;range;x-amz-content-sha256;x-amz-date",
			sig:     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
		},
		{
			// The key is test$file.text; the client sends '$' unencoded
			// and signs it as %24.
			name: "PUT Object", method: "PUT", target: "/test$file.text",
			headers: [][2]string{
				{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"X-Amz-Date", "20130524T000000Z"},
				{"X-Amz-Storage-Class", "REDUCED_REDUNDANCY"},
				{"X-Amz-Content-Sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"},
			},
			body:   "Welcome to Amazon S3.",
			signed: "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
			sig:    "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
		},
		{
			name: "GET Bucket Lifecycle", method: "GET", target: "/?lifecycle",
			headers: [][2]string{{"X-Amz-Date", "20130524T000000Z"}, {"X-Amz-Content-Sha256", emptySHA256}},
			signed:  "host;x-amz-content-sha256;x-amz-date",
			sig:     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
		},
		{
			name: "GET Bucket (List Objects)", method: "GET", target: "/?max-keys=2&prefix=J",
			headers: [][2]string{{"X-Amz-Date", "20130524T000000Z"}, {"X-Amz-Content-Sha256", emptySHA256}},
			signed:  "host;x-amz-content-sha256;x-amz-date",
			sig:     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://examplebucket.s3.amazonaws.com"+tt.target, strings.NewReader(tt.body))
			for _, h := range tt.headers {
				r.Header.Set(h[0], h[1])
			}
			r.Header.Set("Authorization", docAuthorization(tt.signed, tt.sig))
			got, _, err := readPayload(r, docTime, Options{Region: "us-east-1"})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.body {
				t.Fatalf("body %q, want %q", got, tt.body)
			}
			// One bit off in the signature is refused.
			r.Header.Set("Authorization", docAuthorization(tt.signed, flipLast(tt.sig)))
			_, err = Verify(r, testCreds, docTime, Options{})
			wantCode(t, err, SignatureDoesNotMatch)
		})
	}
}

func TestAWSDocPresignedExample(t *testing.T) {
	const url = "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
		"&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" +
		"&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
	r := httptest.NewRequest("GET", url, nil)
	a, err := Verify(r, testCreds, docTime.Add(24*time.Hour), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Presigned || a.AccessKey != docAccessKey || !a.Expires.Equal(docTime.Add(24*time.Hour)) {
		t.Fatalf("auth = %v, expires %v", a, a.Expires)
	}
	// One second after the 86400 seconds it is expired.
	_, err = Verify(r, testCreds, docTime.Add(24*time.Hour+time.Second), Options{})
	e := wantCode(t, err, AccessDenied)
	if e.Message != "Request has expired" {
		t.Fatalf("message %q", e.Message)
	}
}

// docChunkedBody frames the 66,560 bytes of 'a' of the chunked examples:
// 64 KiB, 1 KiB and the final empty chunk, then trailer.
func docChunkedBody(sigs [3]string, trailer string) []byte {
	var b bytes.Buffer
	for i, n := range []int{65536, 1024, 0} {
		fmt.Fprintf(&b, "%x;chunk-signature=%s\r\n", n, sigs[i])
		if n > 0 {
			b.Write(bytes.Repeat([]byte{'a'}, n))
			b.WriteString("\r\n")
		}
	}
	b.WriteString(trailer)
	return b.Bytes()
}

func TestAWSDocChunkedExample(t *testing.T) {
	sigs := [3]string{
		"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
		"0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
		"b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
	}
	build := func(sigs [3]string) *http.Request {
		body := docChunkedBody(sigs, "\r\n")
		r := httptest.NewRequest("PUT", "http://s3.amazonaws.com/examplebucket/chunkObject.txt", bytes.NewReader(body))
		r.Header.Set("X-Amz-Date", "20130524T000000Z")
		r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
		r.Header.Set("X-Amz-Content-Sha256", StreamingSigned)
		r.Header.Set("Content-Encoding", "aws-chunked")
		r.Header.Set("X-Amz-Decoded-Content-Length", "66560")
		r.Header.Set("Content-Length", "66824")
		r.Header.Set("Authorization", docAuthorization(
			"content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
			"4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"))
		return r
	}
	r := build(sigs)
	if r.ContentLength != 66824 {
		t.Fatalf("encoded length %d, the example says 66824", r.ContentLength)
	}
	got, _, err := readPayload(r, docTime, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.Repeat([]byte{'a'}, 66560)) {
		t.Fatalf("decoded %d bytes", len(got))
	}
	for i := range sigs {
		t.Run(fmt.Sprintf("chunk %d signature off by one bit", i+1), func(t *testing.T) {
			bad := sigs
			bad[i] = flipLast(bad[i])
			_, _, err := readPayload(build(bad), docTime, Options{})
			wantCode(t, err, SignatureDoesNotMatch)
		})
	}
}

func TestAWSDocChunkedTrailerExample(t *testing.T) {
	sigs := [3]string{
		"b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
		"1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
		"2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
	}
	const trailerSig = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
	build := func(trailer string) *http.Request {
		body := docChunkedBody(sigs, trailer)
		r := httptest.NewRequest("PUT", "http://s3.amazonaws.com/examplebucket/chunkObject.txt", bytes.NewReader(body))
		r.Header.Set("X-Amz-Date", "20130524T000000Z")
		r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
		r.Header.Set("X-Amz-Content-Sha256", StreamingSignedTrailer)
		r.Header.Set("Content-Encoding", "aws-chunked")
		r.Header.Set("X-Amz-Decoded-Content-Length", "66560")
		r.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32c")
		r.Header.Set("Authorization", docAuthorization(
			"content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer",
			"106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"))
		return r
	}
	r := build("x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:" + trailerSig + "\r\n\r\n")
	got, p, err := readPayload(r, docTime, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 66560 {
		t.Fatalf("decoded %d bytes", len(got))
	}
	if c := p.Checksums()["x-amz-checksum-crc32c"]; c != "sOO8/Q==" {
		t.Fatalf("checksums %v", p.Checksums())
	}

	tests := []struct {
		name    string
		trailer string
		code    Code
	}{
		{"trailer value changed", "x-amz-checksum-crc32c:AAAAAA==\r\nx-amz-trailer-signature:" + trailerSig + "\r\n\r\n", SignatureDoesNotMatch},
		{"trailer signature changed", "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:" + flipLast(trailerSig) + "\r\n\r\n", SignatureDoesNotMatch},
		{"trailer signature missing", "x-amz-checksum-crc32c:sOO8/Q==\r\n\r\n", SignatureDoesNotMatch},
		{"declared checksum missing", "x-amz-trailer-signature:" + trailerSig + "\r\n\r\n", MalformedTrailerError},
		{"undeclared trailer", "x-amz-checksum-sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\nx-amz-trailer-signature:" + trailerSig + "\r\n\r\n", MalformedTrailerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readPayload(build(tt.trailer), docTime, Options{})
			wantCode(t, err, tt.code)
		})
	}
}

// TestAWSDocSeedIsNotTheBody checks that the example's decoder returns the
// error in place of io.EOF, not before the data: a consumer sees all 66,560
// bytes of a body whose last signature is wrong, and then the error.
func TestAWSDocErrorReplacesEOF(t *testing.T) {
	sigs := [3]string{
		"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
		"0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
		strings.Repeat("0", 64),
	}
	body := docChunkedBody(sigs, "\r\n")
	r := httptest.NewRequest("PUT", "http://s3.amazonaws.com/examplebucket/chunkObject.txt", bytes.NewReader(body))
	r.Header.Set("X-Amz-Date", "20130524T000000Z")
	r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
	r.Header.Set("X-Amz-Content-Sha256", StreamingSigned)
	r.Header.Set("Content-Encoding", "aws-chunked")
	r.Header.Set("X-Amz-Decoded-Content-Length", "66560")
	r.Header.Set("Content-Length", "66824")
	r.Header.Set("Authorization", docAuthorization(
		"content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
		"4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"))
	a, err := Verify(r, testCreds, docTime, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := a.Body(r.Body)
	n, err := io.Copy(io.Discard, p)
	wantCode(t, err, SignatureDoesNotMatch)
	if n != 66560 {
		t.Fatalf("read %d bytes before the error, want 66560", n)
	}
	if _, again := p.Read(make([]byte, 1)); again != err {
		t.Fatalf("second read error %v, want the same error", again)
	}
	if p.Checksums() != nil {
		t.Fatal("checksums reported for a failed body")
	}
}
