package sigv4

import (
	"bytes"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// Verifying a header-signed GET: the cost every request pays before its
// body.
func BenchmarkVerifyHeader(b *testing.B) {
	r := httptest.NewRequest("GET", "http://localhost:9000/bucket/dir/object.bin?versionId=3", nil)
	r.Header.Set("Range", "bytes=0-1023")
	r.Header.Set("X-Amz-Meta-Owner", "EST")
	sdkSign(b, r, UnsignedPayload, testAccessKey, testSecret, t0)
	for _, c := range []struct {
		name string
		opt  Options
	}{{"derive key", Options{}}, {"cached key", Options{Keys: NewKeyCache(64)}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Verify(r, testCreds, testNow, c.opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyPresigned(b *testing.B) {
	r := presignedGet(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(r, testCreds, testNow, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// Reading a 16 MiB body through Auth.Body in each payload mode; MB/s is
// the decoder's throughput (hashing included).
func BenchmarkPayload(b *testing.B) {
	data := testData(16 << 20)
	type bodyCase struct {
		name string
		make func(b *testing.B) (*Auth, []byte)
	}
	chunked := func(spec chunkedSpec) func(b *testing.B) (*Auth, []byte) {
		return func(b *testing.B) (*Auth, []byte) {
			r := spec.request(b)
			body, _ := io.ReadAll(r.Body)
			a, err := Verify(r, testCreds, testNow, Options{})
			if err != nil {
				b.Fatal(err)
			}
			return a, body
		}
	}
	plain := func(payload string) func(b *testing.B) (*Auth, []byte) {
		return func(b *testing.B) (*Auth, []byte) {
			r := httptest.NewRequest("PUT", "http://localhost:9000/bucket/key", nil)
			sdkSign(b, r, payload, testAccessKey, testSecret, t0)
			a, err := Verify(r, testCreds, testNow, Options{})
			if err != nil {
				b.Fatal(err)
			}
			return a, data
		}
	}
	cases := []bodyCase{
		{"unsigned payload", plain(UnsignedPayload)},
		{"hex sha256", plain(hexSHA256(data))},
		{"signed chunks 64KiB", chunked(chunkedSpec{mode: StreamingSigned, data: data, size: 64 << 10})},
		{"signed chunks 1MiB", chunked(chunkedSpec{mode: StreamingSigned, data: data, size: 1 << 20})},
		{"signed chunks 64KiB and crc32c trailer", chunked(chunkedSpec{mode: StreamingSignedTrailer, data: data, size: 64 << 10,
			trailerName: "x-amz-checksum-crc32c", trailerValue: "AAAAAA=="})},
		{"unsigned chunks 64KiB and crc64nvme trailer", chunked(chunkedSpec{mode: StreamingUnsignedTrailer, data: data, size: 64 << 10,
			trailerName: "x-amz-checksum-crc64nvme", trailerValue: crc64nvmeB64(data)})},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			a, body := c.make(b)
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				n, err := io.CopyBuffer(io.Discard, a.Body(bytes.NewReader(body)), buf)
				if n != int64(len(data)) || (err != nil && !strings.Contains(c.name, "crc32c")) {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
		})
	}
}
