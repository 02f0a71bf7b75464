package s3

import (
	"encoding/base64"
	"hash"
	"io"
	"net/http"
	"strings"

	"github.com/embassy-dev/embassy/s3/sigv4"
	"github.com/embassy-dev/embassy/vault"
)

// Checksums of multipart uploads, as S3 has them. An upload created with
// x-amz-checksum-algorithm keeps each part's checksum of that algorithm
// (computed by the node as the part arrives, and checked against the
// client's when it sends one), and the completed object gets, by the
// upload's x-amz-checksum-type, the COMPOSITE checksum (the algorithm over
// the parts' checksums, with "-N" for N parts; CRC32, CRC32C, SHA1,
// SHA256) or the FULL_OBJECT one (the CRC of the whole object, combined
// from the parts' CRCs; CRC32, CRC32C, CRC64NVME).

// checksumFields are x-amz-checksum-* values as S3's XML elements.
type checksumFields struct {
	ChecksumCRC32     string `xml:"ChecksumCRC32,omitempty"`
	ChecksumCRC32C    string `xml:"ChecksumCRC32C,omitempty"`
	ChecksumCRC64NVME string `xml:"ChecksumCRC64NVME,omitempty"`
	ChecksumSHA1      string `xml:"ChecksumSHA1,omitempty"`
	ChecksumSHA256    string `xml:"ChecksumSHA256,omitempty"`
}

// checksumXML returns the x-amz-checksum-* values of m as XML elements.
func checksumXML(m map[string]string) checksumFields {
	var c checksumFields
	for k, v := range m {
		switch strings.ToLower(k) {
		case "x-amz-checksum-crc32":
			c.ChecksumCRC32 = v
		case "x-amz-checksum-crc32c":
			c.ChecksumCRC32C = v
		case "x-amz-checksum-crc64nvme":
			c.ChecksumCRC64NVME = v
		case "x-amz-checksum-sha1":
			c.ChecksumSHA1 = v
		case "x-amz-checksum-sha256":
			c.ChecksumSHA256 = v
		}
	}
	return c
}

// get returns the value of the x-amz-checksum-* header name.
func (c checksumFields) get(header string) string {
	switch header {
	case "x-amz-checksum-crc32":
		return c.ChecksumCRC32
	case "x-amz-checksum-crc32c":
		return c.ChecksumCRC32C
	case "x-amz-checksum-crc64nvme":
		return c.ChecksumCRC64NVME
	case "x-amz-checksum-sha1":
		return c.ChecksumSHA1
	case "x-amz-checksum-sha256":
		return c.ChecksumSHA256
	}
	return ""
}

// checksumType is S3's x-amz-checksum-type of a stored checksum value: a
// composite one ends in "-N" (base64 has no '-').
func checksumType(v string) string {
	if strings.Contains(v, "-") {
		return "COMPOSITE"
	}
	return "FULL_OBJECT"
}

// wholeObjectChecksums returns the checksums of m that describe the
// object's bytes as one piece: a composite checksum describes its parts,
// and does not carry over to a copy.
func wholeObjectChecksums(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if checksumType(v) == "FULL_OBJECT" {
			out[k] = v
		}
	}
	return out
}

// uploadChecksum reads CreateMultipartUpload's x-amz-checksum-algorithm
// and x-amz-checksum-type: the algorithm's S3 name ("" for none) and the
// type (S3's default for the algorithm when not given).
func uploadChecksum(h http.Header) (alg, typ string, err error) {
	alg = strings.ToUpper(strings.TrimSpace(h.Get("x-amz-checksum-algorithm")))
	typ = strings.ToUpper(strings.TrimSpace(h.Get("x-amz-checksum-type")))
	if alg == "" {
		if typ != "" {
			return "", "", errorf("InvalidRequest", http.StatusBadRequest, "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.")
		}
		return "", "", nil
	}
	if _, ok := sigv4.ChecksumHeader(alg); !ok {
		return "", "", errorf("InvalidRequest", http.StatusBadRequest, "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
	}
	switch typ {
	case "":
		typ = defaultChecksumType(alg)
	case "COMPOSITE", "FULL_OBJECT":
		if (typ == "COMPOSITE" && alg == "CRC64NVME") || (typ == "FULL_OBJECT" && (alg == "SHA1" || alg == "SHA256")) {
			return "", "", errorf("InvalidRequest", http.StatusBadRequest, "The %s checksum type cannot be used with the %s checksum algorithm (COMPOSITE goes with CRC32, CRC32C, SHA1 and SHA256; FULL_OBJECT with CRC32, CRC32C and CRC64NVME).", typ, alg)
		}
	default:
		return "", "", errorf("InvalidRequest", http.StatusBadRequest, "Value for x-amz-checksum-type header is invalid: %q (want COMPOSITE or FULL_OBJECT)", typ)
	}
	return alg, typ, nil
}

// defaultChecksumType is S3's checksum type of a multipart upload created
// with algorithm alg and no x-amz-checksum-type (also for uploads recorded
// before types were).
func defaultChecksumType(alg string) string {
	if alg == "CRC64NVME" {
		return "FULL_OBJECT"
	}
	return "COMPOSITE"
}

// setUploadChecksumHeaders answers the algorithm and type of an upload.
func setUploadChecksumHeaders(h http.Header, alg, typ string) {
	if alg == "" {
		return
	}
	h.Set("x-amz-checksum-algorithm", alg)
	h.Set("x-amz-checksum-type", typ)
}

// partChecksum computes an upload's checksum over a part as it is read.
type partChecksum struct {
	r      io.Reader
	header string // x-amz-checksum-*, or "" for none
	h      hash.Hash
}

// newPartChecksum reads r, computing the checksum of the upload's
// algorithm alg ("" for none) over it.
func newPartChecksum(r io.Reader, alg string) *partChecksum {
	p := &partChecksum{r: r}
	if header, ok := sigv4.ChecksumHeader(alg); ok {
		p.header = header
		p.h, _ = sigv4.NewChecksum(header)
	}
	return p
}

func (p *partChecksum) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if p.h != nil {
		p.h.Write(b[:n])
	}
	return n, err
}

// sums returns the part's checksums to keep: the verified client ones
// (x-amz-checksum-* of verified, which the client may send without an
// upload algorithm) and the upload algorithm's, computed here (equal to
// the client's if it sent one, since that was verified).
func (p *partChecksum) sums(verified map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range verified {
		if strings.HasPrefix(k, "x-amz-checksum-") {
			out[k] = v
		}
	}
	if p.h != nil {
		out[p.header] = base64.StdEncoding.EncodeToString(p.h.Sum(nil))
	}
	return out
}

// completionChecksums returns the CompleteOptions.Checksums function of a
// completion: the parts' checksums the request names (want, by part
// number) must be those kept, and the object's checksum, if the request
// gives one in the upload algorithm's header, must be the one made from
// them (with or without the "-N" suffix).
func completionChecksums(h http.Header, want map[int]checksumFields) func(string, string, []vault.PartInfo) (map[string]string, error) {
	return func(alg, typ string, parts []vault.PartInfo) (map[string]string, error) {
		header, ok := sigv4.ChecksumHeader(alg)
		if !ok {
			return nil, nil
		}
		if typ == "" {
			typ = defaultChecksumType(alg)
		}
		sums := make([]string, len(parts))
		sizes := make([]int64, len(parts))
		for i, p := range parts {
			sums[i], sizes[i] = p.Checksums[header], p.Size
			if w := want[p.Number].get(header); w != "" && w != sums[i] {
				return nil, errorf("InvalidPart", http.StatusBadRequest, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag. (Part %d's %s is %s, not %s.)", p.Number, alg, sums[i], w)
			}
			if sums[i] == "" {
				// A part uploaded before parts' checksums were kept: the
				// object has no checksum of the algorithm.
				return nil, nil
			}
		}
		var sum string
		var err error
		if typ == "FULL_OBJECT" {
			sum, err = sigv4.FullObjectChecksum(header, sums, sizes)
		} else {
			sum, err = sigv4.CompositeChecksum(header, sums)
		}
		if err != nil {
			return nil, err
		}
		if got := strings.TrimSpace(h.Get(header)); got != "" {
			plain, _, _ := strings.Cut(sum, "-")
			if got != sum && got != plain {
				return nil, errorf("BadDigest", http.StatusBadRequest, "The %s you specified did not match the calculated checksum. (%s %s; the parts' checksums make %s.)", alg, header, got, sum)
			}
		}
		return map[string]string{header: sum}, nil
	}
}

// partChecksums returns the checksums kept for part n of info (numbered
// from 1), for a GET or HEAD of that part and GetObjectAttributes.
func partChecksums(info vault.ObjectInfo, n int) map[string]string {
	if n < 1 || n > len(info.PartChecksums) {
		return nil
	}
	return info.PartChecksums[n-1]
}
