package s3_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"
)

// multipartETag is S3's ETag of a completed upload: the MD5 of the
// concatenated binary MD5s of its parts, a hyphen and the part count.
func multipartETag(parts ...[]byte) string {
	var sums []byte
	for _, p := range parts {
		s := md5.Sum(p)
		sums = append(sums, s[:]...)
	}
	s := md5.Sum(sums)
	return fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(s[:]), len(parts))
}

// upload is one multipart upload driven through the SDK.
type upload struct {
	t      *testing.T
	c      *awss3.Client
	bucket string
	key    string
	id     string
}

func (h *harness) createUpload(t *testing.T, bucket, key string, opts ...func(*awss3.CreateMultipartUploadInput)) *upload {
	t.Helper()
	in := &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	for _, o := range opts {
		o(in)
	}
	out, err := h.sdk.CreateMultipartUpload(t.Context(), in)
	if err != nil {
		t.Fatalf("create upload %s/%s: %v", bucket, key, err)
	}
	if aws.ToString(out.UploadId) == "" || aws.ToString(out.Key) != key || aws.ToString(out.Bucket) != bucket {
		t.Fatalf("create upload: %+v", out)
	}
	return &upload{t: t, c: h.sdk, bucket: bucket, key: key, id: aws.ToString(out.UploadId)}
}

func (u *upload) part(n int32, body []byte) (string, error) {
	out, err := u.c.UploadPart(u.t.Context(), &awss3.UploadPartInput{Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id),
		PartNumber: aws.Int32(n), Body: bytes.NewReader(body)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

func (u *upload) mustPart(n int32, body []byte) types.CompletedPart {
	u.t.Helper()
	etag, err := u.part(n, body)
	if err != nil {
		u.t.Fatalf("upload part %d: %v", n, err)
	}
	if want := `"` + md5hex(body) + `"`; etag != want {
		u.t.Errorf("part %d ETag %s, want %s", n, etag, want)
	}
	return types.CompletedPart{PartNumber: aws.Int32(n), ETag: aws.String(etag)}
}

func (u *upload) complete(parts ...types.CompletedPart) (*awss3.CompleteMultipartUploadOutput, error) {
	return u.c.CompleteMultipartUpload(u.t.Context(), &awss3.CompleteMultipartUploadInput{Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
}

func TestMultipartUpload(t *testing.T) {
	h := newHarness(t)
	h.bucket("mpu")
	ctx := t.Context()
	p1, p2, p3 := pattern(5*mib, 1), pattern(5*mib+7, 2), pattern(mib+3, 3)
	u := h.createUpload(t, "mpu", "big/object", func(in *awss3.CreateMultipartUploadInput) {
		in.ContentType = aws.String("application/x-big")
		in.Metadata = map[string]string{"purpose": "test"}
	})
	// Parts may arrive out of order and be replaced.
	c3 := u.mustPart(3, p3)
	u.mustPart(1, pattern(5*mib, 99))
	c1 := u.mustPart(1, p1)
	c2 := u.mustPart(2, p2)

	t.Run("list parts", func(t *testing.T) {
		out, err := h.sdk.ListParts(ctx, &awss3.ListPartsInput{Bucket: aws.String("mpu"), Key: aws.String("big/object"), UploadId: aws.String(u.id)})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range out.Parts {
			got = append(got, fmt.Sprintf("%d:%d:%s", aws.ToInt32(p.PartNumber), aws.ToInt64(p.Size), aws.ToString(p.ETag)))
		}
		want := []string{
			fmt.Sprintf("1:%d:%s", len(p1), aws.ToString(c1.ETag)),
			fmt.Sprintf("2:%d:%s", len(p2), aws.ToString(c2.ETag)),
			fmt.Sprintf("3:%d:%s", len(p3), aws.ToString(c3.ETag)),
		}
		if !slices.Equal(got, want) {
			t.Errorf("parts %q, want %q", got, want)
		}
		// Paging by part-number-marker.
		var nums []int32
		pg := awss3.NewListPartsPaginator(h.sdk, &awss3.ListPartsInput{Bucket: aws.String("mpu"), Key: aws.String("big/object"), UploadId: aws.String(u.id), MaxParts: aws.Int32(1)})
		pages := 0
		for pg.HasMorePages() && pages < 10 {
			out, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, p := range out.Parts {
				nums = append(nums, aws.ToInt32(p.PartNumber))
			}
		}
		if !slices.Equal(nums, []int32{1, 2, 3}) {
			t.Errorf("paged parts %v in %d pages", nums, pages)
		}
	})
	t.Run("list uploads", func(t *testing.T) {
		other := h.createUpload(t, "mpu", "another", nil...)
		out, err := h.sdk.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String("mpu")})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, up := range out.Uploads {
			got = append(got, aws.ToString(up.Key)+" "+aws.ToString(up.UploadId))
		}
		want := []string{"another " + other.id, "big/object " + u.id}
		if !slices.Equal(got, want) {
			t.Errorf("uploads %q, want %q", got, want)
		}
		out, err = h.sdk.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String("mpu"), Prefix: aws.String("big/")})
		if err != nil || len(out.Uploads) != 1 || aws.ToString(out.Uploads[0].UploadId) != u.id {
			t.Errorf("uploads under big/: %+v, %v", out, err)
		}
		if _, err := h.sdk.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: aws.String("mpu"), Key: aws.String("another"), UploadId: aws.String(other.id)}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("nothing visible before completion", func(t *testing.T) {
		_, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("mpu"), Key: aws.String("big/object")})
		if errStatus(err) != 404 {
			t.Errorf("HEAD before completion: %v", err)
		}
	})
	out, err := u.complete(c1, c2, c3)
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	whole := slices.Concat(p1, p2, p3)
	if got, want := aws.ToString(out.ETag), multipartETag(p1, p2, p3); got != want {
		t.Errorf("ETag %s, want %s", got, want)
	}
	if aws.ToString(out.VersionId) == "" || aws.ToString(out.Key) != "big/object" || aws.ToString(out.Bucket) != "mpu" {
		t.Errorf("complete result %+v", out)
	}
	t.Run("read back", func(t *testing.T) {
		get, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("mpu"), Key: aws.String("big/object")})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(get.Body)
		get.Body.Close()
		if err != nil || !bytes.Equal(b, whole) {
			t.Fatalf("read %d bytes (%v), want the %d uploaded", len(b), err, len(whole))
		}
		if aws.ToString(get.ContentType) != "application/x-big" || get.Metadata["purpose"] != "test" {
			t.Errorf("Content-Type %q metadata %v, want those given at creation", aws.ToString(get.ContentType), get.Metadata)
		}
		if aws.ToString(get.ETag) != aws.ToString(out.ETag) || aws.ToInt32(get.PartsCount) != 3 {
			t.Errorf("ETag %s parts %d", aws.ToString(get.ETag), aws.ToInt32(get.PartsCount))
		}
	})
	t.Run("get by part number", func(t *testing.T) {
		for n, want := range map[int32][]byte{1: p1, 2: p2, 3: p3} {
			get, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("mpu"), Key: aws.String("big/object"), PartNumber: aws.Int32(n)})
			if err != nil {
				t.Fatalf("part %d: %v", n, err)
			}
			b, _ := io.ReadAll(get.Body)
			get.Body.Close()
			if !bytes.Equal(b, want) {
				t.Errorf("part %d: %d bytes, want %d", n, len(b), len(want))
			}
		}
		_, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("mpu"), Key: aws.String("big/object"), PartNumber: aws.Int32(4)})
		wantAPIError(t, err, "InvalidPart", http.StatusBadRequest)
	})
	t.Run("upload is gone", func(t *testing.T) {
		_, err := h.sdk.ListParts(ctx, &awss3.ListPartsInput{Bucket: aws.String("mpu"), Key: aws.String("big/object"), UploadId: aws.String(u.id)})
		wantAPIError(t, err, "NoSuchUpload", 404)
		_, err = u.part(4, []byte("late"))
		wantAPIError(t, err, "NoSuchUpload", 404)
		// A repeated completion answers with the object it made, as S3.
		again, err := u.complete(c1, c2, c3)
		if err != nil || aws.ToString(again.ETag) != aws.ToString(out.ETag) || aws.ToString(again.VersionId) != aws.ToString(out.VersionId) {
			t.Errorf("repeated completion: %+v, %v; want ETag %s version %s", again, err, aws.ToString(out.ETag), aws.ToString(out.VersionId))
		}
		list, err := h.sdk.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String("mpu")})
		if err != nil || len(list.Uploads) != 0 {
			t.Errorf("uploads after completion: %+v, %v", list.Uploads, err)
		}
	})
}

func TestMultipartAbort(t *testing.T) {
	h := newHarness(t)
	h.bucket("abort")
	ctx := t.Context()
	u := h.createUpload(t, "abort", "k")
	u.mustPart(1, pattern(5*mib, 1))
	if _, err := h.sdk.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: aws.String("abort"), Key: aws.String("k"), UploadId: aws.String(u.id)}); err != nil {
		t.Fatal(err)
	}
	_, err := h.sdk.ListParts(ctx, &awss3.ListPartsInput{Bucket: aws.String("abort"), Key: aws.String("k"), UploadId: aws.String(u.id)})
	wantAPIError(t, err, "NoSuchUpload", 404)
	_, err = u.part(2, []byte("x"))
	wantAPIError(t, err, "NoSuchUpload", 404)
	_, err = h.sdk.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: aws.String("abort"), Key: aws.String("k"), UploadId: aws.String(u.id)})
	wantAPIError(t, err, "NoSuchUpload", 404)
	_, err = h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("abort"), Key: aws.String("k")})
	if errStatus(err) != 404 {
		t.Errorf("object after abort: %v", err)
	}
	// The bucket holds nothing: it can be deleted.
	if _, err := h.sdk.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("abort")}); err != nil {
		t.Errorf("delete bucket after abort: %v", err)
	}
}

func TestMultipartErrors(t *testing.T) {
	h := newHarness(t)
	h.bucket("mperr")
	ctx := t.Context()
	big, small := pattern(5*mib, 1), []byte("tiny")

	t.Run("unknown upload", func(t *testing.T) {
		u := &upload{t: t, c: h.sdk, bucket: "mperr", key: "k", id: "no-such-upload"}
		_, err := u.part(1, small)
		wantAPIError(t, err, "NoSuchUpload", 404)
		_, err = u.complete(types.CompletedPart{PartNumber: aws.Int32(1), ETag: aws.String(`"x"`)})
		wantAPIError(t, err, "NoSuchUpload", 404)
	})
	t.Run("upload id of another key", func(t *testing.T) {
		u := h.createUpload(t, "mperr", "one")
		other := &upload{t: t, c: h.sdk, bucket: "mperr", key: "two", id: u.id}
		_, err := other.part(1, small)
		wantAPIError(t, err, "NoSuchUpload", 404)
	})
	t.Run("no such bucket", func(t *testing.T) {
		_, err := h.sdk.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("nosuch"), Key: aws.String("k")})
		wantAPIError(t, err, "NoSuchBucket", 404)
	})
	t.Run("part numbers", func(t *testing.T) {
		u := h.createUpload(t, "mperr", "numbers")
		for _, n := range []string{"0", "10001", "-1", "x"} {
			r := h.do(rawRequest{method: "PUT", path: "/mperr/numbers?partNumber=" + n + "&uploadId=" + u.id, body: small, as: &alice})
			r.wantError(t, "InvalidArgument", 400)
		}
		if _, err := u.part(10000, small); err != nil {
			t.Errorf("part 10000: %v", err)
		}
	})

	tests := []struct {
		name   string
		upload map[int32][]byte
		// complete names parts; an ETag of "" means the uploaded part's.
		complete []types.CompletedPart
		code     string
	}{
		{name: "part never uploaded", upload: map[int32][]byte{1: big},
			complete: []types.CompletedPart{{PartNumber: aws.Int32(1)}, {PartNumber: aws.Int32(2), ETag: aws.String(`"` + md5hex(small) + `"`)}}, code: "InvalidPart"},
		{name: "wrong etag", upload: map[int32][]byte{1: big, 2: small},
			complete: []types.CompletedPart{{PartNumber: aws.Int32(1)}, {PartNumber: aws.Int32(2), ETag: aws.String(`"` + md5hex(big) + `"`)}}, code: "InvalidPart"},
		{name: "descending", upload: map[int32][]byte{1: big, 2: big},
			complete: []types.CompletedPart{{PartNumber: aws.Int32(2)}, {PartNumber: aws.Int32(1)}}, code: "InvalidPartOrder"},
		{name: "small part before the last", upload: map[int32][]byte{1: small, 2: big},
			complete: []types.CompletedPart{{PartNumber: aws.Int32(1)}, {PartNumber: aws.Int32(2)}}, code: "EntityTooSmall"},
		{name: "small last part is fine", upload: map[int32][]byte{1: big, 2: small},
			complete: []types.CompletedPart{{PartNumber: aws.Int32(1)}, {PartNumber: aws.Int32(2)}}},
		{name: "gaps are fine", upload: map[int32][]byte{2: big, 7: small},
			complete: []types.CompletedPart{{PartNumber: aws.Int32(2)}, {PartNumber: aws.Int32(7)}}},
		{name: "a subset of parts is fine", upload: map[int32][]byte{1: big, 2: small, 3: small},
			complete: []types.CompletedPart{{PartNumber: aws.Int32(1)}, {PartNumber: aws.Int32(3)}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "case" + strconv.Itoa(i)
			u := h.createUpload(t, "mperr", key)
			etags := map[int32]string{}
			for n, b := range tt.upload {
				etags[n] = aws.ToString(u.mustPart(n, b).ETag)
			}
			parts := slices.Clone(tt.complete)
			var want [][]byte
			for j, p := range parts {
				if p.ETag == nil {
					parts[j].ETag = aws.String(etags[aws.ToInt32(p.PartNumber)])
				}
				want = append(want, tt.upload[aws.ToInt32(p.PartNumber)])
			}
			out, err := u.complete(parts...)
			if tt.code != "" {
				wantAPIError(t, err, tt.code, 400)
				if _, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("mperr"), Key: aws.String(key)}); errStatus(err) != 404 {
					t.Errorf("object visible after a refused completion: %v", err)
				}
				// The upload survives a refused completion.
				if _, err := h.sdk.ListParts(ctx, &awss3.ListPartsInput{Bucket: aws.String("mperr"), Key: aws.String(key), UploadId: aws.String(u.id)}); err != nil {
					t.Errorf("upload gone after a refused completion: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.ETag) != multipartETag(want...) {
				t.Errorf("ETag %s, want %s", aws.ToString(out.ETag), multipartETag(want...))
			}
			if got := h.get("mperr", key); !bytes.Equal(got, slices.Concat(want...)) {
				t.Errorf("read %d bytes, want the %d of the named parts", len(got), len(slices.Concat(want...)))
			}
		})
	}
	t.Run("malformed completions", func(t *testing.T) {
		u := h.createUpload(t, "mperr", "malformed")
		for _, body := range []string{
			`<CompleteMultipartUpload></CompleteMultipartUpload>`,
			`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>`,
			`not xml`,
			`<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>`,
		} {
			r := h.do(rawRequest{method: "POST", path: "/mperr/malformed?uploadId=" + u.id, body: []byte(body), as: &alice})
			r.wantError(t, "MalformedXML", 400)
		}
	})
}

func TestUploadPartCopy(t *testing.T) {
	h := newHarness(t)
	h.bucket("upc")
	ctx := t.Context()
	src := pattern(7*mib+5, 8)
	h.put("upc", "source", src)
	u := h.createUpload(t, "upc", "assembled")
	copyPart := func(n int32, rng string) (*awss3.UploadPartCopyOutput, error) {
		in := &awss3.UploadPartCopyInput{Bucket: aws.String("upc"), Key: aws.String("assembled"), UploadId: aws.String(u.id),
			PartNumber: aws.Int32(n), CopySource: aws.String("upc/source")}
		if rng != "" {
			in.CopySourceRange = aws.String(rng)
		}
		return h.sdk.UploadPartCopy(ctx, in)
	}
	split := 5*mib + 1
	o1, err := copyPart(1, fmt.Sprintf("bytes=0-%d", split-1))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(o1.CopyPartResult.ETag), `"`+md5hex(src[:split])+`"`; got != want {
		t.Errorf("part 1 ETag %s, want %s", got, want)
	}
	o2, err := copyPart(2, fmt.Sprintf("bytes=%d-%d", split, len(src)-1))
	if err != nil {
		t.Fatal(err)
	}
	// A whole-object copy part, uploaded and then left out.
	if _, err := copyPart(3, ""); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"bytes=5-2", "0-10"} {
		_, err := copyPart(4, bad)
		wantAPIError(t, err, "InvalidArgument", 400)
	}
	// A range reaching past the source is InvalidRange, as S3 answers,
	// even when it starts inside it.
	for _, bad := range []string{fmt.Sprintf("bytes=%d-%d", len(src), len(src)+10), fmt.Sprintf("bytes=0-%d", len(src))} {
		_, err := copyPart(4, bad)
		wantAPIError(t, err, "InvalidRange", 416)
	}
	out, err := u.complete(types.CompletedPart{PartNumber: aws.Int32(1), ETag: o1.CopyPartResult.ETag}, types.CompletedPart{PartNumber: aws.Int32(2), ETag: o2.CopyPartResult.ETag})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(out.ETag), multipartETag(src[:split], src[split:]); got != want {
		t.Errorf("ETag %s, want %s", got, want)
	}
	if got := h.get("upc", "assembled"); !bytes.Equal(got, src) {
		t.Errorf("assembled object: %d bytes differing from the %d-byte source", len(got), len(src))
	}
}

// minio-go streams an object of unknown length as a multipart upload of
// PartSize parts.
func TestMinioStreamingMultipart(t *testing.T) {
	h := newHarness(t)
	h.bucket("stream")
	ctx := t.Context()
	const size = 20 * mib
	body := pattern(size, 20)
	mc := h.minio(alice)
	info, err := mc.PutObject(ctx, "stream", "twenty", io.MultiReader(bytes.NewReader(body)), -1, minio.PutObjectOptions{PartSize: 5 * mib, ContentType: "application/x-stream"})
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{body[:5*mib], body[5*mib : 10*mib], body[10*mib : 15*mib], body[15*mib:]}
	if want := multipartETag(parts...); `"`+info.ETag+`"` != want && info.ETag != want {
		t.Errorf("ETag %s, want %s", info.ETag, want)
	}
	obj, err := mc.GetObject(ctx, "stream", "twenty", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	hs := sha256.New()
	n, err := io.Copy(hs, obj)
	if err != nil || n != size {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	if want := sha256.Sum256(body); !bytes.Equal(hs.Sum(nil), want[:]) {
		t.Errorf("read back differs from the upload")
	}
	st, err := mc.StatObject(ctx, "stream", "twenty", minio.StatObjectOptions{})
	if err != nil || st.ContentType != "application/x-stream" || st.Size != size {
		t.Errorf("stat: %+v, %v", st, err)
	}
}

// An object made by a multipart upload of one part reports its part count,
// and partNumber answers 206 for it; a part number out of range is 400
// InvalidPart, on a single PUT object too.
func TestGetPartOfOnePartUpload(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.bucket("onepart")
	u := h.createUpload(t, "onepart", "k")
	body := pattern(mib, 3)
	if _, err := u.complete(u.mustPart(1, body)); err != nil {
		t.Fatal(err)
	}
	get, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("onepart"), Key: aws.String("k"), PartNumber: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if aws.ToInt32(get.PartsCount) != 1 || !bytes.Equal(b, body) {
		t.Errorf("PartsCount %d, %d bytes; want 1 and the part", aws.ToInt32(get.PartsCount), len(b))
	}
	_, err = h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("onepart"), Key: aws.String("k"), PartNumber: aws.Int32(2)})
	wantAPIError(t, err, "InvalidPart", 400)
	h.put("onepart", "single", []byte("body"))
	_, err = h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("onepart"), Key: aws.String("single"), PartNumber: aws.Int32(2)})
	wantAPIError(t, err, "InvalidPart", 400)
	head, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("onepart"), Key: aws.String("single")})
	if err != nil || head.PartsCount != nil {
		t.Errorf("a single PUT object reports PartsCount %v (%v)", head.PartsCount, err)
	}
}

// GetObjectAttributes: ETag (unquoted), size, storage class, the
// whole-object checksum verified on the put, and the parts of a multipart
// object, paged.
func TestGetObjectAttributes(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.bucket("attrs")
	all := []types.ObjectAttributes{types.ObjectAttributesEtag, types.ObjectAttributesChecksum, types.ObjectAttributesObjectParts,
		types.ObjectAttributesStorageClass, types.ObjectAttributesObjectSize}
	put, err := h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("attrs"), Key: aws.String("single"), Body: bytes.NewReader([]byte("foo")),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.sdk.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: aws.String("attrs"), Key: aws.String("single"), ObjectAttributes: all})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.ETag) != strings.Trim(aws.ToString(put.ETag), `"`) || aws.ToInt64(out.ObjectSize) != 3 || out.StorageClass != types.StorageClassStandard ||
		out.ObjectParts != nil || aws.ToString(out.VersionId) != aws.ToString(put.VersionId) {
		t.Errorf("single: ETag %s size %d class %s parts %v version %s", aws.ToString(out.ETag), aws.ToInt64(out.ObjectSize), out.StorageClass, out.ObjectParts, aws.ToString(out.VersionId))
	}
	if out.Checksum == nil || aws.ToString(out.Checksum.ChecksumSHA256) != aws.ToString(put.ChecksumSHA256) || aws.ToString(put.ChecksumSHA256) == "" {
		t.Errorf("single: checksum %+v, want SHA-256 %s", out.Checksum, aws.ToString(put.ChecksumSHA256))
	}

	u := h.createUpload(t, "attrs", "multi")
	var parts []types.CompletedPart
	for n := range int32(4) {
		size := 5 * mib
		if n == 3 {
			size = mib
		}
		parts = append(parts, u.mustPart(n+1, pattern(size, byte(n))))
	}
	done, err := u.complete(parts...)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	in := &awss3.GetObjectAttributesInput{Bucket: aws.String("attrs"), Key: aws.String("multi"), ObjectAttributes: all, MaxParts: aws.Int32(3)}
	for range 3 {
		out, err := h.sdk.GetObjectAttributes(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.ETag) != strings.Trim(aws.ToString(done.ETag), `"`) || aws.ToInt64(out.ObjectSize) != 16*mib || out.ObjectParts == nil || aws.ToInt32(out.ObjectParts.TotalPartsCount) != 4 {
			t.Fatalf("multi: ETag %s size %d parts %+v", aws.ToString(out.ETag), aws.ToInt64(out.ObjectSize), out.ObjectParts)
		}
		for _, p := range out.ObjectParts.Parts {
			got = append(got, fmt.Sprintf("%d:%d", aws.ToInt32(p.PartNumber), aws.ToInt64(p.Size)))
		}
		if !aws.ToBool(out.ObjectParts.IsTruncated) {
			break
		}
		in.PartNumberMarker = out.ObjectParts.NextPartNumberMarker
	}
	want := fmt.Sprintf("1:%d 2:%d 3:%d 4:%d", 5*mib, 5*mib, 5*mib, mib)
	if strings.Join(got, " ") != want {
		t.Errorf("parts %v, want %s", got, want)
	}
	_, err = h.sdk.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: aws.String("attrs"), Key: aws.String("absent"), ObjectAttributes: all})
	wantAPIError(t, err, "NoSuchKey", 404)
}

// A completion may name a part number twice: a client that uploaded part 1
// again before the first upload of it finished lists both answers, the one
// that finished last last (ceph/s3-tests'
// test_multipart_resend_first_finishes_last). The last mention counts, as
// on ceph/rgw; its ETag must be the part's.
func TestCompleteNamesAPartTwice(t *testing.T) {
	h := newHarness(t)
	h.bucket("twice")
	a, b, last := pattern(5*mib, 'a'), pattern(5*mib, 'b'), []byte("last")
	partOf := func(u *upload, n int32, body []byte) types.CompletedPart {
		t.Helper()
		etag, err := u.part(n, body)
		if err != nil {
			t.Fatalf("upload part %d: %v", n, err)
		}
		return types.CompletedPart{PartNumber: aws.Int32(n), ETag: aws.String(etag)}
	}

	u := h.createUpload(t, "twice", "k")
	first, second := partOf(u, 1, a), partOf(u, 1, b)
	out, err := u.complete(first, second, partOf(u, 2, last))
	if err != nil {
		t.Fatalf("complete naming part 1 twice: %v", err)
	}
	if want := multipartETag(b, last); aws.ToString(out.ETag) != want {
		t.Errorf("ETag %s, want %s (parts 1 and 2 once each)", aws.ToString(out.ETag), want)
	}
	if got := h.get("twice", "k"); !bytes.Equal(got, slices.Concat(b, last)) {
		t.Errorf("read %d bytes, want the second upload of part 1 and part 2 (%d)", len(got), len(b)+len(last))
	}

	// The last mention names the part's replaced upload: refused, and the
	// upload stays open.
	u = h.createUpload(t, "twice", "stale")
	first, second = partOf(u, 1, a), partOf(u, 1, b)
	_, err = u.complete(second, first, partOf(u, 2, last))
	wantAPIError(t, err, "InvalidPart", 400)
	if _, err := u.complete(second, partOf(u, 2, last)); err != nil {
		t.Errorf("complete after a refused completion: %v", err)
	}
}
