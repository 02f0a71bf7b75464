package s3_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// copySource encodes bucket/key for x-amz-copy-source.
func copySource(bucket, key string) string { return bucket + "/" + encodeKey(key) }

func TestCopyObject(t *testing.T) {
	h := newHarness(t)
	h.bucket("src")
	h.bucket("dst")
	ctx := t.Context()
	body := pattern(3*mib+11, 7)
	put, err := h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String("dir/ä b.bin"), Body: bytes.NewReader(body),
		ContentType: aws.String("application/x-test"), ContentDisposition: aws.String("inline"), Metadata: map[string]string{"origin": "src"}})
	if err != nil {
		t.Fatal(err)
	}
	srcVersion := aws.ToString(put.VersionId)
	read := func(t *testing.T, bucket, key string) (*awss3.GetObjectOutput, []byte) {
		t.Helper()
		out, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s/%s: %v", bucket, key, err)
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return out, b
	}

	t.Run("copy directive", func(t *testing.T) {
		out, err := h.sdk.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("copy"), CopySource: aws.String(copySource("src", "dir/ä b.bin"))})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := aws.ToString(out.CopyObjectResult.ETag), `"`+md5hex(body)+`"`; got != want {
			t.Errorf("copy ETag %s, want %s", got, want)
		}
		if aws.ToString(out.CopySourceVersionId) != srcVersion {
			t.Errorf("x-amz-copy-source-version-id %q, want %s", aws.ToString(out.CopySourceVersionId), srcVersion)
		}
		if v := aws.ToString(out.VersionId); v == "" || v == srcVersion {
			t.Errorf("copy version %q: want a new version", v)
		}
		get, b := read(t, "dst", "copy")
		if !bytes.Equal(b, body) {
			t.Fatalf("copy holds %d bytes differing from the %d source bytes", len(b), len(body))
		}
		if aws.ToString(get.ContentType) != "application/x-test" || get.Metadata["origin"] != "src" || aws.ToString(get.ContentDisposition) != "inline" {
			t.Errorf("copy lost the source's headers: %q %v %q", aws.ToString(get.ContentType), get.Metadata, aws.ToString(get.ContentDisposition))
		}
	})
	t.Run("replace directive", func(t *testing.T) {
		_, err := h.sdk.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("replaced"), CopySource: aws.String(copySource("src", "dir/ä b.bin")),
			MetadataDirective: types.MetadataDirectiveReplace, ContentType: aws.String("text/plain"), Metadata: map[string]string{"fresh": "yes"}})
		if err != nil {
			t.Fatal(err)
		}
		get, b := read(t, "dst", "replaced")
		if !bytes.Equal(b, body) {
			t.Fatal("replaced copy holds other bytes")
		}
		if aws.ToString(get.ContentType) != "text/plain" || get.Metadata["fresh"] != "yes" || get.Metadata["origin"] != "" || aws.ToString(get.ContentDisposition) != "" {
			t.Errorf("replace: Content-Type %q metadata %v Content-Disposition %q", aws.ToString(get.ContentType), get.Metadata, aws.ToString(get.ContentDisposition))
		}
	})
	t.Run("copy to itself", func(t *testing.T) {
		self := aws.String(copySource("src", "dir/ä b.bin"))
		_, err := h.sdk.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("src"), Key: aws.String("dir/ä b.bin"), CopySource: self})
		wantAPIError(t, err, "InvalidRequest", 400)
		out, err := h.sdk.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("src"), Key: aws.String("dir/ä b.bin"), CopySource: self,
			MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"origin": "changed"}})
		if err != nil {
			t.Fatalf("copy to itself with REPLACE: %v", err)
		}
		head, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String("dir/ä b.bin")})
		if err != nil || head.Metadata["origin"] != "changed" || aws.ToString(head.VersionId) != aws.ToString(out.VersionId) {
			t.Errorf("after copy to itself: %v %v", head, err)
		}
	})
	t.Run("version source", func(t *testing.T) {
		// Restore the first version over the REPLACE copy made above: a
		// copy to itself naming a version is allowed.
		_, err := h.sdk.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("src"), Key: aws.String("dir/ä b.bin"),
			CopySource: aws.String(copySource("src", "dir/ä b.bin") + "?versionId=" + srcVersion)})
		if err != nil {
			t.Fatal(err)
		}
		get, b := read(t, "src", "dir/ä b.bin")
		if !bytes.Equal(b, body) || get.Metadata["origin"] != "src" {
			t.Errorf("restored version: metadata %v, %d bytes", get.Metadata, len(b))
		}
		h.put("src", "v", []byte("old"))
		old, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String("v")})
		if err != nil {
			t.Fatal(err)
		}
		h.put("src", "v", []byte("new"))
		out, err := h.sdk.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("v"),
			CopySource: aws.String(copySource("src", "v") + "?versionId=" + aws.ToString(old.VersionId))})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.CopySourceVersionId) != aws.ToString(old.VersionId) {
			t.Errorf("copy source version %q, want %q", aws.ToString(out.CopySourceVersionId), aws.ToString(old.VersionId))
		}
		if got := string(h.get("dst", "v")); got != "old" {
			t.Errorf("copy of the old version holds %q", got)
		}
	})
	t.Run("missing sources", func(t *testing.T) {
		h.put("src", "gone", []byte("x"))
		if _, err := h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("src"), Key: aws.String("gone")}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, source, code string
			status             int
		}{
			{"no such key", "src/nothing", "NoSuchKey", 404},
			{"deleted key", "src/gone", "NoSuchKey", 404},
			{"no such bucket", "nosuch/key", "NoSuchBucket", 404},
			{"no key", "src", "InvalidArgument", 400},
			{"bad version id", "src/v?versionId=zzz", "InvalidArgument", 400},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := h.sdk.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("out-" + tt.name), CopySource: aws.String(tt.source)})
				wantAPIError(t, err, tt.code, tt.status)
				if _, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("dst"), Key: aws.String("out-" + tt.name)}); errStatus(err) != 404 {
					t.Errorf("destination written despite the error: %v", err)
				}
			})
		}
	})
}

func TestCopyConditionals(t *testing.T) {
	h := newHarness(t)
	h.bucket("ccond")
	ctx := t.Context()
	h.put("ccond", "src", []byte("source"))
	head, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("ccond"), Key: aws.String("src")})
	if err != nil {
		t.Fatal(err)
	}
	etag := aws.ToString(head.ETag)
	past, future := head.LastModified.Add(-time.Hour), head.LastModified.Add(time.Hour)
	tests := []struct {
		name string
		in   awss3.CopyObjectInput
		ok   bool
	}{
		{"if-match same", awss3.CopyObjectInput{CopySourceIfMatch: aws.String(etag)}, true},
		{"if-match other", awss3.CopyObjectInput{CopySourceIfMatch: aws.String(`"0123"`)}, false},
		{"if-none-match same", awss3.CopyObjectInput{CopySourceIfNoneMatch: aws.String(etag)}, false},
		{"if-none-match other", awss3.CopyObjectInput{CopySourceIfNoneMatch: aws.String(`"0123"`)}, true},
		{"if-modified-since past", awss3.CopyObjectInput{CopySourceIfModifiedSince: aws.Time(past)}, true},
		{"if-modified-since future", awss3.CopyObjectInput{CopySourceIfModifiedSince: aws.Time(future)}, false},
		{"if-unmodified-since past", awss3.CopyObjectInput{CopySourceIfUnmodifiedSince: aws.Time(past)}, false},
		{"if-unmodified-since future", awss3.CopyObjectInput{CopySourceIfUnmodifiedSince: aws.Time(future)}, true},
		{"if-match true and if-unmodified-since false", awss3.CopyObjectInput{CopySourceIfMatch: aws.String(etag), CopySourceIfUnmodifiedSince: aws.Time(past)}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			dst := "dst" + string(rune('a'+i))
			in.Bucket, in.Key, in.CopySource = aws.String("ccond"), aws.String(dst), aws.String("ccond/src")
			_, err := h.sdk.CopyObject(ctx, &in)
			_, herr := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("ccond"), Key: aws.String(dst)})
			if tt.ok {
				if err != nil || herr != nil {
					t.Fatalf("copy: %v; head: %v", err, herr)
				}
				return
			}
			wantAPIError(t, err, "PreconditionFailed", http.StatusPreconditionFailed)
			if errStatus(herr) != 404 {
				t.Errorf("destination written despite a failed precondition: %v", herr)
			}
		})
	}
}
