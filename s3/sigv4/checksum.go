package sigv4

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// crc64NVMEPoly is the CRC-64/NVME polynomial 0xad93d23594c93659 in the
// reversed form hash/crc64 takes.
const crc64NVMEPoly = 0x9a6c9329ac4bc9b5

var (
	crc32cTable    = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })
	crc64NVMETable = sync.OnceValue(func() *crc64.Table { return crc64.MakeTable(crc64NVMEPoly) })
)

// algorithm is a checksum S3 accepts for a payload.
type checksumAlgorithm struct {
	name   string // as S3 spells it: CRC32, CRC32C, CRC64NVME, SHA1, SHA256, MD5
	header string // lower-case header or trailer name
	size   int    // digest length in bytes
	new    func() hash.Hash
	poly   uint64 // a CRC's polynomial, reversed; 0 for a hash
}

// checksumAlgorithms are the x-amz-checksum-* algorithms.
var checksumAlgorithms = [...]checksumAlgorithm{
	{"CRC32", "x-amz-checksum-crc32", 4, func() hash.Hash { return crc32.NewIEEE() }, crc32.IEEE},
	{"CRC32C", "x-amz-checksum-crc32c", 4, func() hash.Hash { return crc32.New(crc32cTable()) }, crc32.Castagnoli},
	{"CRC64NVME", "x-amz-checksum-crc64nvme", 8, func() hash.Hash { return crc64.New(crc64NVMETable()) }, crc64NVMEPoly},
	{"SHA1", "x-amz-checksum-sha1", 20, sha1.New, 0},
	{"SHA256", "x-amz-checksum-sha256", 32, sha256.New, 0},
}

var contentMD5 = checksumAlgorithm{"MD5", "content-md5", 16, md5.New, 0}

// checksumByHeader finds an x-amz-checksum-* algorithm by its lower-case
// header name.
func checksumByHeader(name string) (checksumAlgorithm, bool) {
	for _, a := range checksumAlgorithms {
		if a.header == name {
			return a, true
		}
	}
	return checksumAlgorithm{}, false
}

// digest is one checksum to verify over the decoded payload.
type digest struct {
	alg     checksumAlgorithm
	h       hash.Hash
	want    []byte
	encoded string // want, as the client wrote it (base64)
	trailer bool   // the value arrives in the trailer
}

func newDigest(alg checksumAlgorithm) *digest {
	return &digest{alg: alg, h: alg.new()}
}

// decodeDigest decodes a base64 checksum value of the algorithm's length.
func decodeDigest(alg checksumAlgorithm, v string) ([]byte, bool) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil || len(b) != alg.size {
		return nil, false
	}
	return b, true
}

// check compares the computed digest with the one the client sent.
func (d *digest) check() *Error {
	got := d.h.Sum(nil)
	if subtle.ConstantTimeCompare(got, d.want) == 1 {
		return nil
	}
	gotB64 := base64.StdEncoding.EncodeToString(got)
	if d.alg.header == contentMD5.header {
		return newError(BadDigest, msgBadContentMD5,
			"content-md5 "+d.encoded+" does not match the payload's md5 "+gotB64,
			Field{"ExpectedDigest", d.encoded}, Field{"CalculatedDigest", gotB64})
	}
	where := "header"
	if d.trailer {
		where = "trailer"
	}
	return newError(BadDigest, "The "+d.alg.name+" you specified did not match the calculated checksum.",
		d.alg.header+" "+where+" "+d.encoded+" does not match the payload's "+gotB64)
}

// declaredTrailers parses x-amz-trailer: the trailing checksums the client
// promises to send after an aws-chunked body. S3 allows one.
func declaredTrailers(h http.Header) ([]*digest, *Error) {
	var out []*digest
	for _, v := range h.Values("X-Amz-Trailer") {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			alg, ok := checksumByHeader(name)
			if !ok {
				return nil, newError(InvalidRequest, "The value specified in the x-amz-trailer header is not supported",
					"x-amz-trailer names "+quote(name)+", which is not an x-amz-checksum-* trailer this server supports")
			}
			d := newDigest(alg)
			d.trailer = true
			out = append(out, d)
		}
	}
	if len(out) > 1 {
		return nil, newError(InvalidRequest, "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
			"x-amz-trailer declares more than one checksum")
	}
	return out, nil
}

// headerDigests parses Content-MD5 and, when checksums is set, the
// x-amz-checksum-* headers of a request. trailers are the checksums
// declared in x-amz-trailer, which count towards S3's limit of one
// x-amz-checksum algorithm per request.
func headerDigests(h http.Header, trailers []*digest, checksums bool) ([]*digest, *Error) {
	var out []*digest
	if vs := h.Values("Content-Md5"); len(vs) > 0 {
		d := newDigest(contentMD5)
		want, ok := decodeDigest(contentMD5, vs[0])
		if len(vs) > 1 || !ok {
			return nil, newError(InvalidDigest, msgInvalidContentMD5,
				"content-md5 must be one base64-encoded 16-byte md5 digest")
		}
		d.want, d.encoded = want, strings.TrimSpace(vs[0])
		out = append(out, d)
	}
	if !checksums {
		return out, nil
	}
	algs := len(trailers)
	for _, alg := range checksumAlgorithms {
		vs := h.Values(alg.header)
		if len(vs) == 0 {
			continue
		}
		algs++
		want, ok := decodeDigest(alg, vs[0])
		if len(vs) > 1 || !ok {
			return nil, newError(InvalidRequest, "Value for "+alg.header+" header is invalid.",
				alg.header+" must be one base64-encoded "+itoa(alg.size)+"-byte digest")
		}
		d := newDigest(alg)
		d.want, d.encoded = want, strings.TrimSpace(vs[0])
		out = append(out, d)
	}
	if algs > 1 {
		return nil, newError(InvalidRequest, "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
			"the request names more than one x-amz-checksum algorithm")
	}
	if sdk := h.Get("X-Amz-Sdk-Checksum-Algorithm"); sdk != "" {
		name := "x-amz-checksum-" + strings.ToLower(strings.TrimSpace(sdk))
		if _, ok := checksumByHeader(name); !ok {
			return nil, newError(InvalidRequest, "Value for x-amz-sdk-checksum-algorithm header is invalid.",
				"x-amz-sdk-checksum-algorithm "+quote(sdk)+" is not CRC32, CRC32C, CRC64NVME, SHA1 or SHA256")
		}
		found := false
		for _, d := range append(out, trailers...) {
			found = found || d.alg.header == name
		}
		if !found {
			return nil, newError(InvalidRequest, "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.",
				"x-amz-sdk-checksum-algorithm is "+quote(sdk)+" but no "+name+" header or trailer was declared")
		}
	}
	return out, nil
}

// ChecksumHeader returns the x-amz-checksum-* header name (lower case) of
// an S3 checksum algorithm (CRC32, CRC32C, CRC64NVME, SHA1 or SHA256, in
// any case).
func ChecksumHeader(algorithm string) (string, bool) {
	for _, a := range checksumAlgorithms {
		if strings.EqualFold(a.name, algorithm) {
			return a.header, true
		}
	}
	return "", false
}

// ChecksumAlgorithm returns the S3 name of the algorithm of an
// x-amz-checksum-* header (any case): x-amz-checksum-sha256 is SHA256.
func ChecksumAlgorithm(header string) (string, bool) {
	a, ok := checksumByHeader(strings.ToLower(header))
	return a.name, ok
}

// NewChecksum returns a new hash of the algorithm of an x-amz-checksum-*
// header (any case). The header's value is its Sum, base64-encoded.
func NewChecksum(header string) (hash.Hash, bool) {
	a, ok := checksumByHeader(strings.ToLower(header))
	if !ok {
		return nil, false
	}
	return a.new(), true
}

// CompositeChecksum returns the checksum S3 gives an object that a
// multipart upload assembled, with the COMPOSITE checksum type: the
// algorithm of header over the parts' checksums (each decoded from base64,
// concatenated in part order), base64-encoded, followed by "-N" for N
// parts. CRC64NVME has no composite form (S3 keeps only a full-object
// CRC64NVME of a multipart object).
func CompositeChecksum(header string, parts []string) (string, error) {
	a, ok := checksumByHeader(strings.ToLower(header))
	if !ok || a.name == "CRC64NVME" {
		return "", fmt.Errorf("%s has no composite checksum", header)
	}
	if len(parts) == 0 {
		return "", errors.New("a composite checksum needs at least one part")
	}
	h := a.new()
	for i, p := range parts {
		b, ok := decodeDigest(a, p)
		if !ok {
			return "", fmt.Errorf("part %d's %s %q is not a base64-encoded %d-byte digest", i+1, a.header, p, a.size)
		}
		h.Write(b)
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(parts)), nil
}

// FullObjectChecksum returns the FULL_OBJECT checksum S3 gives an object
// that a multipart upload assembled: the CRC (CRC32, CRC32C or CRC64NVME)
// of the whole object, combined from its parts' CRCs (base64, in part
// order) and sizes, without reading the object.
func FullObjectChecksum(header string, parts []string, sizes []int64) (string, error) {
	a, ok := checksumByHeader(strings.ToLower(header))
	if !ok || a.poly == 0 {
		return "", fmt.Errorf("%s has no full-object checksum made from parts", header)
	}
	if len(parts) == 0 || len(parts) != len(sizes) {
		return "", errors.New("a full-object checksum needs each part's checksum and size")
	}
	var crc uint64
	for i, p := range parts {
		b, ok := decodeDigest(a, p)
		if !ok {
			return "", fmt.Errorf("part %d's %s %q is not a base64-encoded %d-byte digest", i+1, a.header, p, a.size)
		}
		var c uint64
		for _, x := range b {
			c = c<<8 | uint64(x)
		}
		if i == 0 {
			crc = c
		} else {
			crc = combineCRC(a, crc, c, sizes[i])
		}
	}
	out := make([]byte, a.size)
	for i := range out {
		out[i] = byte(crc >> (8 * (a.size - 1 - i)))
	}
	return base64.StdEncoding.EncodeToString(out), nil
}

// combineCRC returns the CRC of x||y from crcX of x, crcY of y and y's
// length, for a reflected CRC whose initial value and final xor are all
// ones (CRC32, CRC32C, CRC64NVME). It is zlib's crc32_combine: crcX is
// advanced over lenY zero bytes by squaring the operator of one zero bit,
// which takes O(log lenY) steps.
func combineCRC(a checksumAlgorithm, crcX, crcY uint64, lenY int64) uint64 {
	if lenY <= 0 {
		return crcX
	}
	width := 8 * a.size
	var even, odd [64]uint64
	odd[0] = a.poly // the operator of one zero bit
	row := uint64(1)
	for n := 1; n < width; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(&even, &odd, width) // two zero bits
	gf2Square(&odd, &even, width) // four
	for {
		gf2Square(&even, &odd, width) // one zero byte, then 4, 16, ...
		if lenY&1 != 0 {
			crcX = gf2Times(&even, crcX)
		}
		if lenY >>= 1; lenY == 0 {
			break
		}
		gf2Square(&odd, &even, width)
		if lenY&1 != 0 {
			crcX = gf2Times(&odd, crcX)
		}
		if lenY >>= 1; lenY == 0 {
			break
		}
	}
	return crcX ^ crcY
}

func gf2Times(mat *[64]uint64, vec uint64) uint64 {
	var sum uint64
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[64]uint64, width int) {
	for n := range width {
		square[n] = gf2Times(mat, mat[n])
	}
}
