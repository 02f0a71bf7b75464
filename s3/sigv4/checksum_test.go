package sigv4

import (
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/minio/crc64nvme"
)

// Published check values ("123456789") of the CRC catalogue.
func TestChecksumCheckValues(t *testing.T) {
	tests := []struct {
		header string
		want   uint64
	}{
		{"x-amz-checksum-crc32", 0xcbf43926},
		{"x-amz-checksum-crc32c", 0xe3069283},
		{"x-amz-checksum-crc64nvme", 0xae8b14860a799888},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			alg, ok := checksumByHeader(tt.header)
			if !ok {
				t.Fatal("unknown algorithm")
			}
			h := alg.new()
			io.WriteString(h, "123456789")
			sum := h.Sum(nil)
			if len(sum) != alg.size {
				t.Fatalf("digest of %d bytes, want %d", len(sum), alg.size)
			}
			var got uint64
			for _, b := range sum {
				got = got<<8 | uint64(b)
			}
			if got != tt.want {
				t.Fatalf("check value %#x, want %#x", got, tt.want)
			}
		})
	}
}

// CRC64NVME agrees with minio's independent implementation (the one
// minio-go uses) on random inputs of every length up to 300 bytes.
func TestCRC64NVMEAgreesWithMinio(t *testing.T) {
	alg, _ := checksumByHeader("x-amz-checksum-crc64nvme")
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 300)
	for n := range len(buf) {
		for i := range buf[:n] {
			buf[i] = byte(rng.Uint32())
		}
		h := alg.new()
		h.Write(buf[:n])
		if got, want := binary.BigEndian.Uint64(h.Sum(nil)), crc64nvme.Checksum(buf[:n]); got != want {
			t.Fatalf("length %d: %#x, minio says %#x", n, got, want)
		}
	}
}

func TestCheckDigests(t *testing.T) {
	const body = "the payload"
	sha1sum := sha1.Sum([]byte(body))
	md5sum := md5.Sum([]byte(body))
	tests := []struct {
		name      string
		header    http.Header
		early     Code // refused by CheckDigests
		late      Code // refused at the end of the body
		checksums []string
	}{
		{name: "none", header: http.Header{}},
		{name: "content-md5", header: http.Header{"Content-Md5": {b64(md5sum[:])}}, checksums: []string{"content-md5"}},
		{name: "content-md5 wrong", header: http.Header{"Content-Md5": {md5b64("other")}}, late: BadDigest},
		{name: "content-md5 not base64", header: http.Header{"Content-Md5": {"zzz"}}, early: InvalidDigest},
		{name: "content-md5 too short", header: http.Header{"Content-Md5": {"AAAA"}}, early: InvalidDigest},
		{name: "content-md5 twice", header: http.Header{"Content-Md5": {b64(md5sum[:]), b64(md5sum[:])}}, early: InvalidDigest},
		{name: "crc32", header: http.Header{"X-Amz-Checksum-Crc32": {crc32b64(body)}}, checksums: []string{"x-amz-checksum-crc32"}},
		{name: "crc32c", header: http.Header{"X-Amz-Checksum-Crc32c": {"G8EDaQ=="}}, late: BadDigest},
		{name: "crc64nvme", header: http.Header{"X-Amz-Checksum-Crc64nvme": {crc64nvmeB64([]byte(body))}}, checksums: []string{"x-amz-checksum-crc64nvme"}},
		{name: "sha1", header: http.Header{"X-Amz-Checksum-Sha1": {b64(sha1sum[:])}}, checksums: []string{"x-amz-checksum-sha1"}},
		{name: "sha256", header: http.Header{"X-Amz-Checksum-Sha256": {sha256b64([]byte(body))}}, checksums: []string{"x-amz-checksum-sha256"}},
		{name: "sha256 and content-md5", header: http.Header{"X-Amz-Checksum-Sha256": {sha256b64([]byte(body))}, "Content-Md5": {b64(md5sum[:])}},
			checksums: []string{"content-md5", "x-amz-checksum-sha256"}},
		{name: "sha256 wrong", header: http.Header{"X-Amz-Checksum-Sha256": {sha256b64(nil)}}, late: BadDigest},
		{name: "sha256 of the wrong length", header: http.Header{"X-Amz-Checksum-Sha256": {b64(sha1sum[:])}}, early: InvalidRequest},
		{name: "two algorithms", header: http.Header{"X-Amz-Checksum-Sha256": {sha256b64([]byte(body))}, "X-Amz-Checksum-Sha1": {b64(sha1sum[:])}}, early: InvalidRequest},
		{name: "checksum mode and type are not checksums", header: http.Header{"X-Amz-Checksum-Mode": {"ENABLED"}, "X-Amz-Checksum-Type": {"FULL_OBJECT"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CheckDigests(tt.header, strings.NewReader(body))
			if tt.early != "" {
				wantCode(t, err, tt.early)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(p)
			if tt.late != "" {
				wantCode(t, err, tt.late)
				return
			}
			if err != nil || string(got) != body {
				t.Fatalf("read %q, %v", got, err)
			}
			sums := p.Checksums()
			if len(sums) != len(tt.checksums) {
				t.Fatalf("checksums %v, want %v", sums, tt.checksums)
			}
			for _, h := range tt.checksums {
				if sums[h] != strings.TrimSpace(tt.header.Get(h)) {
					t.Fatalf("checksum %s = %q", h, sums[h])
				}
			}
		})
	}
}

// A body that ends early is IncompleteBody, not a digest mismatch.
func TestPayloadShortBody(t *testing.T) {
	p, err := CheckDigests(http.Header{"Content-Md5": {md5b64("abc")}}, io.MultiReader(strings.NewReader("ab"), errReader{io.ErrUnexpectedEOF}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(p)
	wantCode(t, err, IncompleteBody)
	// Any other read error is passed on, wrapped.
	p, _ = CheckDigests(http.Header{}, errReader{io.ErrClosedPipe})
	if _, err = io.ReadAll(p); err == nil || !strings.Contains(err.Error(), "read request body") || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("error %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// The composite checksums ceph/s3-tests expects of multipart uploads: a
// part of 1024 'A's, and parts of 5 MiB of 'A', 'B' and 'C' (the part
// values are SHA256s of those bodies, from the suite).
func TestCompositeChecksumVectors(t *testing.T) {
	tests := []struct {
		name  string
		parts []string
		want  string
	}{
		{"one part", []string{"arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0="}, "Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=-1"},
		{"three parts", []string{"275VF5loJr1YYawit0XSHREhkFXYkkPKGuoK0x9VKxI=", "mrHwOfjTL5Zwfj74F05HOQGLdUb7E5szdCbxgUSq6NM=", "Vw7oB/nKQ5xWb3hNgbyfkvDiivl+U+/Dft48nfJfDow="},
			"uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CompositeChecksum("x-amz-checksum-sha256", tt.parts)
			if err != nil || got != tt.want {
				t.Fatalf("CompositeChecksum = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	for _, bad := range []struct {
		name, header string
		parts        []string
	}{
		{"no parts", "x-amz-checksum-sha256", nil},
		{"not base64", "x-amz-checksum-sha256", []string{"bad"}},
		{"wrong length", "x-amz-checksum-crc32", []string{"arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0="}},
		{"crc64nvme has no composite", "x-amz-checksum-crc64nvme", []string{"Qeh8oXvGiSo="}},
		{"unknown", "x-amz-checksum-md4", []string{"Qeh8oXvGiSo="}},
	} {
		if got, err := CompositeChecksum(bad.header, bad.parts); err == nil {
			t.Errorf("%s: CompositeChecksum = %q, want an error", bad.name, got)
		}
	}
}

// The full-object CRC made from parts' CRCs and sizes is the CRC of the
// whole, for every CRC S3 has, for two pieces of every length up to 40
// bytes, and for three pieces across a 5 MiB part.
func TestFullObjectChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 80)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	big := make([]byte, 5<<20+3)
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, header := range []string{"x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme"} {
		alg, _ := checksumByHeader(header)
		sum := func(b []byte) string {
			h := alg.new()
			h.Write(b)
			return base64.StdEncoding.EncodeToString(h.Sum(nil))
		}
		t.Run(alg.name, func(t *testing.T) {
			for a := 0; a <= 40; a++ {
				for b := 0; b <= 40; b++ {
					got, err := FullObjectChecksum(header, []string{sum(buf[:a]), sum(buf[a : a+b])}, []int64{int64(a), int64(b)})
					if want := sum(buf[:a+b]); err != nil || got != want {
						t.Fatalf("pieces of %d and %d bytes: %s, %v; want %s", a, b, got, err, want)
					}
				}
			}
			cuts := []int{1, 5 << 20}
			got, err := FullObjectChecksum(header, []string{sum(big[:cuts[0]]), sum(big[cuts[0]:cuts[1]]), sum(big[cuts[1]:])},
				[]int64{int64(cuts[0]), int64(cuts[1] - cuts[0]), int64(len(big) - cuts[1])})
			if want := sum(big); err != nil || got != want {
				t.Fatalf("three pieces of 5 MiB: %s, %v; want %s", got, err, want)
			}
		})
	}
	// The CRC64NVME agrees with minio's.
	got, err := FullObjectChecksum("x-amz-checksum-crc64nvme", []string{"AAAAAAAAAAA=", base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, crc64nvme.Checksum(buf)))}, []int64{0, int64(len(buf))})
	if want := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, crc64nvme.Checksum(buf))); err != nil || got != want {
		t.Errorf("CRC64NVME of an empty part and buf: %s, %v; want %s", got, err, want)
	}
	for _, bad := range []struct {
		name, header string
		parts        []string
		sizes        []int64
	}{
		{"sha256 has none", "x-amz-checksum-sha256", []string{"arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0="}, []int64{1}},
		{"no parts", "x-amz-checksum-crc32", nil, nil},
		{"sizes missing", "x-amz-checksum-crc32", []string{"AAAAAA=="}, nil},
		{"not base64", "x-amz-checksum-crc32", []string{"bad"}, []int64{1}},
	} {
		if got, err := FullObjectChecksum(bad.header, bad.parts, bad.sizes); err == nil {
			t.Errorf("%s: FullObjectChecksum = %q, want an error", bad.name, got)
		}
	}
}

// With ObjectChecksums (CompleteMultipartUpload), x-amz-checksum-* headers
// describe the object, not the body: a composite value with its "-N", or
// one that does not match the body, passes, and Content-MD5 is still
// checked. Without it, both are refused.
func TestObjectChecksumsOption(t *testing.T) {
	const body = "<CompleteMultipartUpload/>"
	build := func(header, value string) *http.Request {
		r := httptest.NewRequest("POST", "https://s3.example/b/k?uploadId=u", strings.NewReader(body))
		r.Header.Set(header, value)
		sdkSign(t, r, hexSHA256([]byte(body)), testAccessKey, testSecret, t0)
		return r
	}
	composite := "uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-3"
	other := "arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0="
	for _, v := range []string{composite, other} {
		got, p, err := readPayload(build("X-Amz-Checksum-Sha256", v), testNow, Options{ObjectChecksums: true})
		if err != nil || string(got) != body {
			t.Errorf("ObjectChecksums, x-amz-checksum-sha256 %s: %q, %v", v, got, err)
		} else if len(p.Checksums()) != 0 {
			t.Errorf("ObjectChecksums: body checksums %v, want none", p.Checksums())
		}
	}
	_, _, err := readPayload(build("X-Amz-Checksum-Sha256", composite), testNow, Options{})
	wantCode(t, err, InvalidRequest)
	_, _, err = readPayload(build("X-Amz-Checksum-Sha256", other), testNow, Options{})
	wantCode(t, err, BadDigest)
	_, _, err = readPayload(build("Content-Md5", md5b64("not the body")), testNow, Options{ObjectChecksums: true})
	wantCode(t, err, BadDigest)
}
