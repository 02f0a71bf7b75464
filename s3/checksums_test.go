package s3_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/crc64nvme"
)

// compositeSHA256 is S3's COMPOSITE checksum of parts: the SHA-256 of
// their concatenated SHA-256s, base64, then "-N".
func compositeSHA256(parts ...[]byte) string {
	var sums []byte
	for _, p := range parts {
		s := sha256.Sum256(p)
		sums = append(sums, s[:]...)
	}
	return sha256b64(sums) + "-" + strconv.Itoa(len(parts))
}

// A multipart upload created with a checksum algorithm keeps each part's
// checksum (the client's, or the node's own when the client sends none)
// and gives the object S3's composite checksum: answered by
// CompleteMultipartUpload (also when repeated), HeadObject and GetObject
// in checksum mode, GetObjectAttributes with each part's, ListParts, and
// checked against the whole-object and per-part checksums a completion
// names. A copy of the object does not inherit it.
func TestMultipartChecksums(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.bucket("sums")
	p1, p2, p3 := pattern(5*mib, 1), pattern(5*mib, 2), []byte("the last part")

	create, err := h.sdk.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("sums"), Key: aws.String("k"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatal(err)
	}
	if create.ChecksumAlgorithm != types.ChecksumAlgorithmSha256 || create.ChecksumType != types.ChecksumTypeComposite {
		t.Errorf("CreateMultipartUpload answers algorithm %q type %q, want SHA256 COMPOSITE", create.ChecksumAlgorithm, create.ChecksumType)
	}
	u := &upload{t: t, c: h.sdk, bucket: "sums", key: "k", id: aws.ToString(create.UploadId)}
	var parts []types.CompletedPart
	for i, body := range [][]byte{p1, p2} {
		out, err := h.sdk.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("sums"), Key: aws.String("k"), UploadId: create.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(body), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
		if err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		if got := aws.ToString(out.ChecksumSHA256); got != sha256b64(body) {
			t.Errorf("part %d: ChecksumSHA256 %q, want %q", i+1, got, sha256b64(body))
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag, ChecksumSHA256: out.ChecksumSHA256})
	}
	// A part sent without any checksum: the node computes the upload's.
	r := h.do(rawRequest{method: "PUT", path: "/sums/k?partNumber=3&uploadId=" + u.id, body: p3, as: &alice})
	if r.status != http.StatusOK || r.header.Get("x-amz-checksum-sha256") != sha256b64(p3) {
		t.Fatalf("part 3 without a checksum: %d, x-amz-checksum-sha256 %q, want %q", r.status, r.header.Get("x-amz-checksum-sha256"), sha256b64(p3))
	}
	parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(3), ETag: aws.String(r.header.Get("ETag"))})

	lu, err := h.sdk.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String("sums")})
	if err != nil || len(lu.Uploads) != 1 || lu.Uploads[0].ChecksumAlgorithm != types.ChecksumAlgorithmSha256 || lu.Uploads[0].ChecksumType != types.ChecksumTypeComposite {
		t.Errorf("ListMultipartUploads: %+v, %v; want the upload with SHA256 COMPOSITE", lu, err)
	}

	lp, err := h.sdk.ListParts(ctx, &awss3.ListPartsInput{Bucket: aws.String("sums"), Key: aws.String("k"), UploadId: create.UploadId})
	if err != nil {
		t.Fatal(err)
	}
	if lp.ChecksumAlgorithm != types.ChecksumAlgorithmSha256 || len(lp.Parts) != 3 {
		t.Fatalf("ListParts: algorithm %q, %d parts", lp.ChecksumAlgorithm, len(lp.Parts))
	}
	for i, body := range [][]byte{p1, p2, p3} {
		if got := aws.ToString(lp.Parts[i].ChecksumSHA256); got != sha256b64(body) {
			t.Errorf("ListParts part %d: ChecksumSHA256 %q, want %q", i+1, got, sha256b64(body))
		}
	}

	want := compositeSHA256(p1, p2, p3)
	complete := func(whole string, parts []types.CompletedPart) (*awss3.CompleteMultipartUploadOutput, error) {
		in := &awss3.CompleteMultipartUploadInput{Bucket: aws.String("sums"), Key: aws.String("k"), UploadId: create.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}
		if whole != "" {
			in.ChecksumSHA256 = aws.String(whole)
		}
		return h.sdk.CompleteMultipartUpload(ctx, in)
	}
	// A whole-object checksum that is not the parts' composite: BadDigest,
	// and the upload stays open.
	_, err = complete(sha256b64(slices.Concat(p1, p2, p3)), parts)
	wantAPIError(t, err, "BadDigest", 400)
	// A part's checksum that is not the one kept: InvalidPart.
	bad := slices.Clone(parts)
	bad[1].ChecksumSHA256 = aws.String(sha256b64(p1))
	_, err = complete("", bad)
	wantAPIError(t, err, "InvalidPart", 400)

	done, err := complete(want, parts)
	if err != nil {
		t.Fatalf("complete with the composite checksum: %v", err)
	}
	if aws.ToString(done.ChecksumSHA256) != want || done.ChecksumType != types.ChecksumTypeComposite {
		t.Errorf("CompleteMultipartUpload: ChecksumSHA256 %q type %q, want %q COMPOSITE", aws.ToString(done.ChecksumSHA256), done.ChecksumType, want)
	}
	again, err := complete(want, parts)
	if err != nil || aws.ToString(again.ChecksumSHA256) != want || aws.ToString(again.ETag) != aws.ToString(done.ETag) {
		t.Errorf("repeated completion: %+v, %v; want the same ETag and checksum", again, err)
	}

	head, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("sums"), Key: aws.String("k"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil || aws.ToString(head.ChecksumSHA256) != want {
		t.Errorf("HeadObject in checksum mode: %q, %v; want %q", aws.ToString(head.ChecksumSHA256), err, want)
	}
	// A part read by number answers that part's checksum.
	r = h.do(rawRequest{method: "GET", path: "/sums/k?partNumber=2", header: http.Header{"X-Amz-Checksum-Mode": {"ENABLED"}}, as: &alice})
	if r.status != http.StatusPartialContent || r.header.Get("x-amz-checksum-sha256") != sha256b64(p2) || !bytes.Equal(r.body, p2) {
		t.Errorf("GET partNumber=2: %d, x-amz-checksum-sha256 %q, want %q", r.status, r.header.Get("x-amz-checksum-sha256"), sha256b64(p2))
	}
	attrs, err := h.sdk.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: aws.String("sums"), Key: aws.String("k"),
		ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesChecksum, types.ObjectAttributesObjectParts}})
	if err != nil {
		t.Fatal(err)
	}
	if attrs.Checksum == nil || aws.ToString(attrs.Checksum.ChecksumSHA256) != want || attrs.Checksum.ChecksumType != types.ChecksumTypeComposite {
		t.Errorf("GetObjectAttributes checksum %+v, want %q COMPOSITE", attrs.Checksum, want)
	}
	if attrs.ObjectParts == nil || len(attrs.ObjectParts.Parts) != 3 {
		t.Fatalf("GetObjectAttributes parts %+v", attrs.ObjectParts)
	}
	for i, body := range [][]byte{p1, p2, p3} {
		if got := aws.ToString(attrs.ObjectParts.Parts[i].ChecksumSHA256); got != sha256b64(body) {
			t.Errorf("GetObjectAttributes part %d: ChecksumSHA256 %q, want %q", i+1, got, sha256b64(body))
		}
	}

	// A copy is one piece: the composite does not describe it.
	if _, err := h.sdk.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("sums"), Key: aws.String("copy"), CopySource: aws.String("sums/k")}); err != nil {
		t.Fatal(err)
	}
	ch, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("sums"), Key: aws.String("copy"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(aws.ToString(ch.ChecksumSHA256), "-") {
		t.Errorf("the copy carries the source's composite checksum %q", aws.ToString(ch.ChecksumSHA256))
	}
}

// A FULL_OBJECT checksum (CRC32, CRC32C, CRC64NVME) is combined from the
// parts' CRCs into the CRC of the whole object, which the SDK checks
// against the body it reads; CRC32 can also be COMPOSITE. Types that do
// not go with the algorithm are refused.
func TestMultipartFullObjectChecksums(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.bucket("crc")
	p1, p2 := pattern(5*mib, 7), pattern(3*mib+5, 8)
	crc32sum := func(b []byte) []byte { return binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(b)) }
	b64 := base64.StdEncoding.EncodeToString
	composite32 := func() string {
		s := crc32.ChecksumIEEE(slices.Concat(crc32sum(p1), crc32sum(p2)))
		return b64(binary.BigEndian.AppendUint32(nil, s)) + "-2"
	}
	tests := []struct {
		alg  types.ChecksumAlgorithm
		typ  types.ChecksumType // "" for the default
		want string
		got  func(*awss3.CompleteMultipartUploadOutput) string
	}{
		{types.ChecksumAlgorithmCrc64nvme, "", b64(binary.BigEndian.AppendUint64(nil, crc64nvme.Checksum(slices.Concat(p1, p2)))),
			func(o *awss3.CompleteMultipartUploadOutput) string { return aws.ToString(o.ChecksumCRC64NVME) }},
		{types.ChecksumAlgorithmCrc32, types.ChecksumTypeFullObject, b64(crc32sum(slices.Concat(p1, p2))),
			func(o *awss3.CompleteMultipartUploadOutput) string { return aws.ToString(o.ChecksumCRC32) }},
		{types.ChecksumAlgorithmCrc32c, types.ChecksumTypeFullObject,
			b64(binary.BigEndian.AppendUint32(nil, crc32.Checksum(slices.Concat(p1, p2), crc32.MakeTable(crc32.Castagnoli)))),
			func(o *awss3.CompleteMultipartUploadOutput) string { return aws.ToString(o.ChecksumCRC32C) }},
		{types.ChecksumAlgorithmCrc32, "", composite32(),
			func(o *awss3.CompleteMultipartUploadOutput) string { return aws.ToString(o.ChecksumCRC32) }},
	}
	for _, tt := range tests {
		wantType := tt.typ
		if wantType == "" {
			wantType = types.ChecksumTypeComposite
			if tt.alg == types.ChecksumAlgorithmCrc64nvme {
				wantType = types.ChecksumTypeFullObject
			}
		}
		t.Run(string(tt.alg)+" "+string(wantType), func(t *testing.T) {
			key := string(tt.alg) + string(wantType)
			create, err := h.sdk.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("crc"), Key: aws.String(key),
				ChecksumAlgorithm: tt.alg, ChecksumType: tt.typ})
			if err != nil {
				t.Fatal(err)
			}
			if create.ChecksumAlgorithm != tt.alg || create.ChecksumType != wantType {
				t.Errorf("CreateMultipartUpload: %q %q, want %q %q", create.ChecksumAlgorithm, create.ChecksumType, tt.alg, wantType)
			}
			var parts []types.CompletedPart
			for i, body := range [][]byte{p1, p2} {
				out, err := h.sdk.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("crc"), Key: aws.String(key), UploadId: create.UploadId,
					PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(body), ChecksumAlgorithm: tt.alg})
				if err != nil {
					t.Fatalf("part %d: %v", i+1, err)
				}
				parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag,
					ChecksumCRC32: out.ChecksumCRC32, ChecksumCRC32C: out.ChecksumCRC32C, ChecksumCRC64NVME: out.ChecksumCRC64NVME})
			}
			done, err := h.sdk.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String("crc"), Key: aws.String(key), UploadId: create.UploadId,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.got(done); got != tt.want || done.ChecksumType != wantType {
				t.Errorf("CompleteMultipartUpload: %s %q type %q, want %q %q", tt.alg, got, done.ChecksumType, tt.want, wantType)
			}
			// The SDK checks a full-object checksum against the body it reads.
			out, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("crc"), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			defer out.Body.Close()
			var got bytes.Buffer
			if _, err := got.ReadFrom(out.Body); err != nil {
				t.Fatalf("read with the SDK's checksum validation: %v", err)
			}
			if !bytes.Equal(got.Bytes(), slices.Concat(p1, p2)) {
				t.Errorf("read %d bytes, want %d", got.Len(), len(p1)+len(p2))
			}
		})
	}
	for _, bad := range []struct {
		alg types.ChecksumAlgorithm
		typ types.ChecksumType
	}{
		{types.ChecksumAlgorithmSha256, types.ChecksumTypeFullObject},
		{types.ChecksumAlgorithmSha1, types.ChecksumTypeFullObject},
		{types.ChecksumAlgorithmCrc64nvme, types.ChecksumTypeComposite},
	} {
		_, err := h.sdk.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("crc"), Key: aws.String("bad"),
			ChecksumAlgorithm: bad.alg, ChecksumType: bad.typ})
		wantAPIError(t, err, "InvalidRequest", 400)
	}
}
