package sigv4

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func crc64nvmeB64(b []byte) string {
	c := crc64.Checksum(b, crc64.MakeTable(crc64NVMEPoly))
	return b64([]byte{byte(c >> 56), byte(c >> 48), byte(c >> 40), byte(c >> 32), byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
}

// decode verifies r and decodes body (in place of r's own) through the
// Payload, returning how many bytes were read before the end or error.
func decode(t *testing.T, r *http.Request, body io.Reader, opt Options) ([]byte, *Payload, error) {
	t.Helper()
	a, err := Verify(r, testCreds, testNow, opt)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	p := a.Body(body)
	got, err := io.ReadAll(p)
	return got, p, err
}

func TestChunkedValid(t *testing.T) {
	sources := map[string]func([]byte) io.Reader{
		"whole":          func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one byte":       func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"eof with data":  func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
		"half reads":     func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
		"timeout at end": func(b []byte) io.Reader { return iotest.DataErrReader(iotest.HalfReader(bytes.NewReader(b))) },
	}
	type tcase struct {
		name string
		spec chunkedSpec
		sum  string // the checksum the payload must report
	}
	var tests []tcase
	for _, n := range []int{0, 1, 8191, 8192, 8193, 3*65536 + 17} {
		data := testData(n)
		tests = append(tests,
			tcase{fmt.Sprintf("signed %d", n), chunkedSpec{mode: StreamingSigned, data: data, size: 8192}, ""},
			tcase{fmt.Sprintf("signed 64KiB chunks %d", n), chunkedSpec{mode: StreamingSigned, data: data, size: 65536}, ""},
			tcase{fmt.Sprintf("signed trailer %d", n), chunkedSpec{mode: StreamingSignedTrailer, data: data, size: 8192,
				trailerName: "x-amz-checksum-sha256", trailerValue: sha256b64(data)}, "x-amz-checksum-sha256"},
			tcase{fmt.Sprintf("signed empty trailer %d", n), chunkedSpec{mode: StreamingSignedTrailer, data: data, size: 8192}, ""},
			tcase{fmt.Sprintf("unsigned trailer %d", n), chunkedSpec{mode: StreamingUnsignedTrailer, data: data, size: 8192,
				trailerName: "x-amz-checksum-crc64nvme", trailerValue: crc64nvmeB64(data)}, "x-amz-checksum-crc64nvme"},
			tcase{fmt.Sprintf("unsigned no trailer %d", n), chunkedSpec{mode: StreamingUnsignedTrailer, data: data, size: 8192}, ""},
		)
	}
	tests = append(tests, tcase{"no decoded length", chunkedSpec{mode: StreamingSigned, data: testData(9000), size: 8192, declared: "-"}, ""})
	for _, tt := range tests {
		for sname, src := range sources {
			t.Run(tt.name+"/"+sname, func(t *testing.T) {
				r := tt.spec.request(t)
				body, _ := io.ReadAll(r.Body)
				got, p, err := decode(t, r, src(body), Options{})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.spec.data) {
					t.Fatalf("decoded %d bytes, want %d", len(got), len(tt.spec.data))
				}
				if p.Len() != int64(len(got)) {
					t.Fatalf("Len %d", p.Len())
				}
				if tt.sum != "" && p.Checksums()[tt.sum] != tt.spec.trailerValue {
					t.Fatalf("checksums %v", p.Checksums())
				}
			})
		}
	}
}

// signedHeaderLen is the length of a chunk header line of size bytes.
func signedHeaderLen(size int) int {
	return len(fmt.Sprintf("%x", size)) + len(";chunk-signature=") + 64 + 2
}

// at returns the offset in an encoded body of decoded byte off, for a
// body of equal chunks of size with header lines of hl bytes.
func at(off, size, hl int) int { return off + (off/size+1)*hl + (off/size)*2 }

func TestChunkedTamperedSigned(t *testing.T) {
	const size = 8192
	data := testData(3*size + 100)
	spec := chunkedSpec{mode: StreamingSigned, data: data, size: size}
	hl := signedHeaderLen(size)
	frame := hl + size + 2 // one whole chunk on the wire
	other := chunkedSpec{mode: StreamingSigned, data: data, size: size, at: t0.Add(time.Second)}

	tests := []struct {
		name    string
		spec    chunkedSpec
		body    func(b, other []byte) []byte
		opt     Options
		code    Code
		maxRead int // at most this many bytes may be handed on before the error; 0 for no bound
	}{
		{name: "data byte flipped in chunk 2", code: SignatureDoesNotMatch, maxRead: 2 * size,
			body: func(b, _ []byte) []byte { b[at(size+5, size, hl)] ^= 1; return b }},
		{name: "data byte flipped in the last chunk", code: SignatureDoesNotMatch,
			body: func(b, _ []byte) []byte { b[at(3*size+5, size, hl)] ^= 1; return b }},
		{name: "chunk signature from another request", code: SignatureDoesNotMatch, maxRead: size,
			body: func(b, o []byte) []byte { copy(b[:hl], o[:hl]); return b }},
		{name: "whole chunk from another request", code: SignatureDoesNotMatch, maxRead: 2 * size,
			body: func(b, o []byte) []byte { copy(b[frame:2*frame], o[frame:2*frame]); return b }},
		{name: "chunks 1 and 2 swapped", code: SignatureDoesNotMatch, maxRead: size,
			body: func(b, _ []byte) []byte {
				c1 := bytes.Clone(b[:frame])
				copy(b[:frame], b[frame:2*frame])
				copy(b[frame:2*frame], c1)
				return b
			}},
		{name: "chunk 2 dropped", code: SignatureDoesNotMatch, maxRead: 2 * size,
			body: func(b, _ []byte) []byte { return append(b[:frame:frame], b[2*frame:]...) }},
		{name: "final chunk dropped", code: IncompleteBody,
			body: func(b, _ []byte) []byte { return b[:bytes.LastIndex(b, []byte("0;chunk-signature="))] }},
		{name: "cut inside data", code: IncompleteBody, maxRead: size + 100,
			body: func(b, _ []byte) []byte { return b[:at(size+100, size, hl)] }},
		{name: "cut inside a header line", code: IncompleteBody,
			body: func(b, _ []byte) []byte { return b[:frame+10] }},
		{name: "cut before the CRLF after data", code: IncompleteBody,
			body: func(b, _ []byte) []byte { return b[:frame-2] }},
		{name: "empty body", code: IncompleteBody, body: func([]byte, []byte) []byte { return nil }},
		{name: "garbage after the final chunk", code: MalformedTrailerError,
			body: func(b, _ []byte) []byte { return append(b, "x-amz-checksum-crc32:AAAAAA==\r\n\r\n"...) }},
		{name: "data not followed by CRLF", code: InvalidRequest, maxRead: size,
			body: func(b, _ []byte) []byte { copy(b[frame-2:], "xx"); return b }},
		{name: "header line ends in LF alone", code: InvalidRequest,
			body: func(b, _ []byte) []byte { return append(append(b[:hl-2:hl-2], '\n'), b[hl:]...) }},
		{name: "chunk size not hex", code: InvalidRequest, body: func(b, _ []byte) []byte { b[1] = 'g'; return b }},
		{name: "chunk size of 17 digits", code: InvalidRequest,
			body: func(b, _ []byte) []byte { return append([]byte("0000000000000"), b...) }},
		{name: "chunk signature missing", code: InvalidRequest,
			body: func(b, _ []byte) []byte { return append([]byte("2000\r\n"), b[hl:]...) }},
		{name: "chunk signature not hex", code: SignatureDoesNotMatch,
			body: func(b, _ []byte) []byte { copy(b[hl-66:], strings.Repeat("z", 64)); return b }},
		{name: "chunk signature short", code: SignatureDoesNotMatch,
			body: func(b, _ []byte) []byte { return append(b[:hl-3:hl-3], b[hl-2:]...) }},
		{name: "header line too long", code: InvalidRequest,
			body: func(b, _ []byte) []byte {
				return []byte("2000;chunk-signature=" + strings.Repeat("a", 5000) + "\r\n")
			}},
		{name: "chunk larger than the maximum", code: InvalidChunkSizeError,
			body: func([]byte, []byte) []byte {
				return []byte("1000001;chunk-signature=" + strings.Repeat("0", 64) + "\r\n")
			}},
		{name: "chunk larger than a configured maximum", code: InvalidChunkSizeError, opt: Options{MaxChunkSize: 4096}, maxRead: 0,
			body: func(b, _ []byte) []byte { return b }},
		{name: "small chunk that is not the last", code: InvalidChunkSizeError, maxRead: 4096,
			spec: chunkedSpec{mode: StreamingSigned, data: data, size: 4096}},
		{name: "declared length longer than the body", code: IncompleteBody,
			spec: chunkedSpec{mode: StreamingSigned, data: data, size: size, declared: fmt.Sprint(len(data) + 1)}},
		{name: "declared length shorter than the body", code: InvalidRequest, maxRead: 3 * size,
			spec: chunkedSpec{mode: StreamingSigned, data: data, size: size, declared: fmt.Sprint(len(data) - 1)}},
		{name: "trailer section in a mode without one", code: MalformedTrailerError,
			body: func(b, _ []byte) []byte { return append(b[:len(b)-2], "x:y\r\n\r\n"...) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec
			if tt.spec.mode != "" {
				s = tt.spec
			}
			r := s.request(t)
			b, _ := io.ReadAll(r.Body)
			if tt.body != nil {
				o, _ := io.ReadAll(other.request(t).Body)
				b = tt.body(b, o)
			}
			got, p, err := decode(t, r, bytes.NewReader(b), tt.opt)
			assertNoSecret(t, wantCode(t, err, tt.code))
			if tt.maxRead > 0 && len(got) > tt.maxRead {
				t.Fatalf("%d bytes handed on before the error, want at most %d", len(got), tt.maxRead)
			}
			if p.Checksums() != nil {
				t.Fatal("checksums reported for a failed body")
			}
		})
	}
}

// A chunk larger than the maximum is refused from its header line alone:
// the decoder does not wait for, or hold, its data.
func TestChunkedOversizeNotRead(t *testing.T) {
	r := chunkedSpec{mode: StreamingSigned, data: testData(10), size: 8192}.request(t)
	a, err := Verify(r, testCreds, testNow, Options{})
	if err != nil {
		t.Fatal(err)
	}
	header := "ffffffffffffffff;chunk-signature=" + strings.Repeat("0", 64) + "\r\n"
	src := io.MultiReader(strings.NewReader(header), iotest.ErrReader(fmt.Errorf("the decoder read past the header")))
	_, err = io.ReadAll(a.Body(src))
	wantCode(t, err, InvalidChunkSizeError)
}

func TestChunkedTrailers(t *testing.T) {
	data := testData(20000)
	// unsignedBody frames data unsigned and appends trailer text after the
	// final chunk.
	unsignedBody := func(trailer string) []byte {
		b := encodeChunks(nil, data, 8192, [][2]string{})
		return append(b[:len(b)-2], trailer...)
	}
	crc := crc64nvmeB64(data)
	tests := []struct {
		name    string
		spec    chunkedSpec
		body    []byte // nil: as the spec frames it
		opt     Options
		code    Code
		mutateD bool // flip a data byte
	}{
		{name: "unsigned trailer", code: "",
			spec: chunkedSpec{mode: StreamingUnsignedTrailer, trailerName: "x-amz-checksum-crc64nvme", trailerValue: crc}},
		{name: "unsigned trailer, LF endings and blank lines as minio-go writes", code: "",
			spec: chunkedSpec{mode: StreamingUnsignedTrailer, trailerName: "x-amz-checksum-crc64nvme"},
			body: unsignedBody("x-amz-checksum-crc64nvme:" + crc + "\n\r\n\r\n")},
		{name: "unsigned trailer, no final blank line", code: "",
			spec: chunkedSpec{mode: StreamingUnsignedTrailer, trailerName: "x-amz-checksum-crc64nvme"},
			body: unsignedBody("x-amz-checksum-crc64nvme: " + crc)},
		{name: "unsigned trailer, data changed", code: BadDigest, mutateD: true,
			spec: chunkedSpec{mode: StreamingUnsignedTrailer, trailerName: "x-amz-checksum-crc64nvme", trailerValue: crc}},
		{name: "unsigned trailer, wrong checksum", code: BadDigest,
			spec: chunkedSpec{mode: StreamingUnsignedTrailer, trailerName: "x-amz-checksum-crc64nvme", trailerValue: crc64nvmeB64(nil)}},
		{name: "unsigned trailer, checksum not base64", code: InvalidRequest,
			spec: chunkedSpec{mode: StreamingUnsignedTrailer, trailerName: "x-amz-checksum-crc64nvme", trailerValue: "%%%%"}},
		{name: "unsigned trailer, checksum too short", code: InvalidRequest,
			spec: chunkedSpec{mode: StreamingUnsignedTrailer, trailerName: "x-amz-checksum-crc64nvme", trailerValue: "AAAAAA=="}},
		{name: "unsigned trailer missing", code: MalformedTrailerError,
			spec: chunkedSpec{mode: StreamingUnsignedTrailer, trailerName: "x-amz-checksum-crc64nvme"}, body: unsignedBody("\r\n")},
		{name: "unsigned trailer repeated", code: MalformedTrailerError,
			spec: chunkedSpec{mode: StreamingUnsignedTrailer, trailerName: "x-amz-checksum-crc64nvme"},
			body: unsignedBody("x-amz-checksum-crc64nvme:" + crc + "\r\nx-amz-checksum-crc64nvme:" + crc + "\r\n\r\n")},
		{name: "unsigned trailer not declared", code: MalformedTrailerError,
			spec: chunkedSpec{mode: StreamingUnsignedTrailer}, body: unsignedBody("x-amz-checksum-crc64nvme:" + crc + "\r\n\r\n")},
		{name: "unsigned trailer not name:value", code: MalformedTrailerError,
			spec: chunkedSpec{mode: StreamingUnsignedTrailer}, body: unsignedBody("garbage\r\n\r\n")},
		{name: "trailer signature in an unsigned trailer", code: MalformedTrailerError,
			spec: chunkedSpec{mode: StreamingUnsignedTrailer},
			body: unsignedBody("x-amz-trailer-signature:" + strings.Repeat("0", 64) + "\r\n\r\n")},
		{name: "unsigned trailer too long", code: MalformedTrailerError, opt: Options{MaxTrailerSize: 64},
			spec: chunkedSpec{mode: StreamingUnsignedTrailer, trailerName: "x-amz-checksum-crc64nvme", trailerValue: crc + strings.Repeat(" ", 64)}},
		{name: "unsigned trailer line longer than the read-ahead", code: "",
			spec: chunkedSpec{mode: StreamingUnsignedTrailer, trailerName: "x-amz-checksum-crc64nvme"},
			body: unsignedBody("x-amz-checksum-crc64nvme:" + strings.Repeat(" ", 3*readBufferSize) + crc + "\r\n\r\n")},
		{name: "endless blank lines after the final chunk", code: MalformedTrailerError,
			spec: chunkedSpec{mode: StreamingUnsignedTrailer}, body: unsignedBody(strings.Repeat("\r\n", 20000))},
		{name: "extension on an unsigned chunk", code: InvalidRequest,
			spec: chunkedSpec{mode: StreamingUnsignedTrailer},
			body: append([]byte("2000;chunk-signature="+strings.Repeat("0", 64)+"\r\n"), data[:8192]...)},
		{name: "signed trailer", code: "",
			spec: chunkedSpec{mode: StreamingSignedTrailer, trailerName: "x-amz-checksum-crc64nvme", trailerValue: crc}},
		{name: "signed trailer, data changed", code: SignatureDoesNotMatch, mutateD: true,
			spec: chunkedSpec{mode: StreamingSignedTrailer, trailerName: "x-amz-checksum-crc64nvme", trailerValue: crc}},
		{name: "signed trailer, signed wrong checksum", code: BadDigest,
			spec: chunkedSpec{mode: StreamingSignedTrailer, trailerName: "x-amz-checksum-crc64nvme", trailerValue: crc64nvmeB64(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			s.data, s.size = data, 8192
			r := s.request(t)
			b, _ := io.ReadAll(r.Body)
			if tt.body != nil {
				b = tt.body
			}
			if tt.mutateD {
				i := bytes.Index(b, data[9000:9016])
				b[i] ^= 0x80
			}
			got, p, err := decode(t, r, bytes.NewReader(b), tt.opt)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) || p.Checksums()["x-amz-checksum-crc64nvme"] == "" {
					t.Fatalf("decoded %d bytes, checksums %v", len(got), p.Checksums())
				}
				return
			}
			assertNoSecret(t, wantCode(t, err, tt.code))
		})
	}
}

// Verify checks the headers that describe an aws-chunked body.
func TestChunkedHeaders(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		header map[string]string
		code   Code
	}{
		{"unsupported trailer", StreamingUnsignedTrailer, map[string]string{"X-Amz-Trailer": "x-amz-meta-late"}, InvalidRequest},
		{"two trailing checksums", StreamingUnsignedTrailer, map[string]string{"X-Amz-Trailer": "x-amz-checksum-crc32, x-amz-checksum-sha1"}, InvalidRequest},
		{"trailing and header checksum", StreamingUnsignedTrailer,
			map[string]string{"X-Amz-Trailer": "x-amz-checksum-crc32", "X-Amz-Checksum-Sha1": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, InvalidRequest},
		{"trailer without a trailer mode", StreamingSigned, map[string]string{"X-Amz-Trailer": "x-amz-checksum-crc32"}, InvalidRequest},
		{"decoded length not a number", StreamingSigned, map[string]string{"X-Amz-Decoded-Content-Length": "ten"}, InvalidArgument},
		{"decoded length negative", StreamingSigned, map[string]string{"X-Amz-Decoded-Content-Length": "-1"}, InvalidArgument},
		{"sdk algorithm without its checksum", StreamingUnsignedTrailer,
			map[string]string{"X-Amz-Trailer": "x-amz-checksum-crc32", "X-Amz-Sdk-Checksum-Algorithm": "SHA256"}, InvalidRequest},
		{"sdk algorithm unknown", StreamingSigned, map[string]string{"X-Amz-Sdk-Checksum-Algorithm": "MD4"}, InvalidRequest},
		{"sdk algorithm with its trailer", StreamingUnsignedTrailer,
			map[string]string{"X-Amz-Trailer": "x-amz-checksum-crc32c", "X-Amz-Sdk-Checksum-Algorithm": "crc32c"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("PUT", "http://localhost:9000/bucket/key", nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			sdkSign(t, r, tt.mode, testAccessKey, testSecret, t0)
			_, err := Verify(r, testCreds, testNow, Options{})
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tt.code)
		})
	}
}

// countingSource counts the reads the decoder makes of the body and the
// bytes they return.
type countingSource struct {
	r            io.Reader
	reads, bytes int
}

func (c *countingSource) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.reads++
	c.bytes += n
	return n, err
}

// A large aws-chunked body is read in few, large reads: each fills the
// read-ahead (maxReadAhead), chunk headers and data alike, rather than two
// reads a chunk (one for the header, one for the data), which cost the
// kernel more than the copy out of the read-ahead costs (see
// maxReadAhead). A small body takes a small read-ahead.
func TestChunkedBodyReadInFewReads(t *testing.T) {
	for _, tc := range []struct {
		size, chunk int
		maxReads    int // at most, from a source that always fills the read
	}{
		{4 << 20, 64 << 10, (4<<20)/maxReadAhead + 2},
		{4 << 20, 8 << 10, (4<<20)/maxReadAhead + 2},
		{100, 8 << 10, 2},
	} {
		data := testData(tc.size)
		r := chunkedSpec{mode: StreamingSigned, data: data, size: tc.chunk}.request(t)
		body, _ := io.ReadAll(r.Body)
		a, err := Verify(r, testCreds, testNow, Options{})
		if err != nil {
			t.Fatal(err)
		}
		src := &countingSource{r: bytes.NewReader(body)}
		p := a.Body(src)
		got, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("decoded %d bytes, not the %d sent", len(got), len(data))
		}
		if src.bytes != len(body) {
			t.Fatalf("read %d bytes of a %d-byte body", src.bytes, len(body))
		}
		if src.reads > tc.maxReads {
			t.Errorf("%d-byte body in %d-byte chunks read in %d reads, want at most %d", tc.size, tc.chunk, src.reads, tc.maxReads)
		}
		if want := readAheadFor(int64(tc.size)); tc.size < readBufferSize && want > 2*readBufferSize {
			t.Errorf("a %d-byte body takes a %d-byte read-ahead", tc.size, want)
		}
	}
}
