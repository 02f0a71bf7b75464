package s3_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestDeleteMarkers(t *testing.T) {
	h := newHarness(t)
	h.bucket("dmk")
	ctx := t.Context()
	v1 := h.put("dmk", "k", []byte("first"))
	v2 := h.put("dmk", "k", []byte("second"))
	if v1 == v2 {
		t.Fatalf("two puts got the same version id %s", v1)
	}
	if got := string(h.get("dmk", "k")); got != "second" {
		t.Fatalf("latest %q, want second", got)
	}

	del, err := h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("dmk"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	marker := aws.ToString(del.VersionId)
	if !aws.ToBool(del.DeleteMarker) || marker == "" || marker == v1 || marker == v2 {
		t.Fatalf("delete: marker %v version %q", aws.ToBool(del.DeleteMarker), marker)
	}

	t.Run("get answers NoSuchKey with the marker's headers", func(t *testing.T) {
		for _, method := range []string{"GET", "HEAD"} {
			r := h.do(rawRequest{method: method, path: "/dmk/k", as: &alice})
			if r.status != 404 {
				t.Fatalf("%s: status %d, want 404", method, r.status)
			}
			if method == "GET" {
				r.wantError(t, "NoSuchKey", 404)
			} else if len(r.body) != 0 {
				t.Errorf("HEAD error with a body: %q", r.body)
			}
			if r.header.Get("x-amz-delete-marker") != "true" || r.header.Get("x-amz-version-id") != marker {
				t.Errorf("%s: x-amz-delete-marker %q x-amz-version-id %q, want true %s", method,
					r.header.Get("x-amz-delete-marker"), r.header.Get("x-amz-version-id"), marker)
			}
		}
	})
	t.Run("get the marker by version id", func(t *testing.T) {
		// S3 answers 405 for a delete marker named by version id.
		r := h.do(rawRequest{method: "GET", path: "/dmk/k?versionId=" + marker, as: &alice})
		r.wantError(t, "MethodNotAllowed", 405)
		if r.header.Get("x-amz-delete-marker") != "true" {
			t.Errorf("x-amz-delete-marker %q", r.header.Get("x-amz-delete-marker"))
		}
	})
	t.Run("older versions stay readable by id", func(t *testing.T) {
		for id, want := range map[string]string{v1: "first", v2: "second"} {
			out, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("dmk"), Key: aws.String("k"), VersionId: aws.String(id)})
			if err != nil {
				t.Fatalf("get version %s: %v", id, err)
			}
			b := make([]byte, 64)
			n, _ := out.Body.Read(b)
			out.Body.Close()
			if string(b[:n]) != want || aws.ToString(out.VersionId) != id {
				t.Errorf("version %s: %q (version %s), want %q", id, b[:n], aws.ToString(out.VersionId), want)
			}
		}
	})
	t.Run("unknown version", func(t *testing.T) {
		// A well-formed id that names no version of this key.
		r := h.do(rawRequest{method: "GET", path: "/dmk/other?versionId=" + v1, as: &alice})
		if r.status != 404 {
			t.Fatalf("status %d\n%s", r.status, r.body)
		}
		if code := r.errorDoc(t).Code; code != "NoSuchVersion" && code != "NoSuchKey" {
			t.Errorf("code %s, want NoSuchVersion", code)
		}
	})
	t.Run("delete a version by id", func(t *testing.T) {
		out, err := h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("dmk"), Key: aws.String("k"), VersionId: aws.String(v1)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.VersionId) != v1 || aws.ToBool(out.DeleteMarker) {
			t.Errorf("delete version: version %q marker %v", aws.ToString(out.VersionId), aws.ToBool(out.DeleteMarker))
		}
		_, err = h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("dmk"), Key: aws.String("k"), VersionId: aws.String(v1)})
		wantAPIError(t, err, "NoSuchVersion", 404)
	})
	t.Run("removing the marker brings the object back", func(t *testing.T) {
		out, err := h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("dmk"), Key: aws.String("k"), VersionId: aws.String(marker)})
		if err != nil {
			t.Fatal(err)
		}
		if !aws.ToBool(out.DeleteMarker) {
			t.Errorf("deleting a marker by id: DeleteMarker header false")
		}
		if got := string(h.get("dmk", "k")); got != "second" {
			t.Errorf("after removing the marker: %q, want second", got)
		}
	})
	t.Run("deleting a missing key still writes a marker", func(t *testing.T) {
		out, err := h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("dmk"), Key: aws.String("never-was")})
		if err != nil {
			t.Fatal(err)
		}
		if !aws.ToBool(out.DeleteMarker) {
			t.Errorf("no delete marker")
		}
	})
	t.Run("bad version ids", func(t *testing.T) {
		for _, id := range []string{"garbage", "null", strings.Repeat("0", 40)} {
			r := h.do(rawRequest{method: "DELETE", path: "/dmk/k?versionId=" + url.QueryEscape(id), as: &alice})
			if r.status != 400 && r.status != 404 {
				t.Errorf("versionId %q: status %d\n%s", id, r.status, r.body)
			}
		}
		if got := string(h.get("dmk", "k")); got != "second" {
			t.Errorf("after refused deletes: %q", got)
		}
	})
}

func TestDeleteObjects(t *testing.T) {
	h := newHarness(t)
	h.bucket("multi")
	ctx := t.Context()
	ids := map[string]string{}
	for i := range 5 {
		k := fmt.Sprintf("k%d", i)
		ids[k] = h.put("multi", k, []byte(k))
	}
	old := h.put("multi", "k0", []byte("k0 again"))

	t.Run("verbose", func(t *testing.T) {
		out, err := h.sdk.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("multi"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
			{Key: aws.String("k1")},
			{Key: aws.String("k2"), VersionId: aws.String(ids["k2"])},
			{Key: aws.String("k0"), VersionId: aws.String(old)},
			{Key: aws.String("absent")},
			{Key: aws.String("k3"), VersionId: aws.String("not-a-version")},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]types.DeletedObject{}
		for _, d := range out.Deleted {
			got[aws.ToString(d.Key)] = d
		}
		if len(out.Deleted) != 4 {
			t.Errorf("%d deleted, want 4: %+v", len(out.Deleted), out.Deleted)
		}
		if d := got["k1"]; !aws.ToBool(d.DeleteMarker) || aws.ToString(d.DeleteMarkerVersionId) == "" {
			t.Errorf("k1: %+v, want a new delete marker", d)
		}
		if d := got["k2"]; aws.ToBool(d.DeleteMarker) || aws.ToString(d.VersionId) != ids["k2"] {
			t.Errorf("k2: %+v, want version %s removed", d, ids["k2"])
		}
		if d := got["absent"]; !aws.ToBool(d.DeleteMarker) {
			t.Errorf("absent key: %+v, want a delete marker", d)
		}
		if len(out.Errors) != 1 || aws.ToString(out.Errors[0].Key) != "k3" || aws.ToString(out.Errors[0].Code) != "InvalidArgument" {
			t.Errorf("errors %+v, want one InvalidArgument for k3", out.Errors)
		}
		if got := string(h.get("multi", "k0")); got != "k0" {
			t.Errorf("k0 after deleting its latest version: %q, want the older k0", got)
		}
		for _, k := range []string{"k1", "k2"} {
			_, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("multi"), Key: aws.String(k)})
			if errStatus(err) != 404 {
				t.Errorf("%s after delete: %v", k, err)
			}
		}
		if got := string(h.get("multi", "k3")); got != "k3" {
			t.Errorf("k3 after a refused delete: %q", got)
		}
	})
	t.Run("quiet", func(t *testing.T) {
		out, err := h.sdk.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("multi"), Delete: &types.Delete{Quiet: aws.Bool(true), Objects: []types.ObjectIdentifier{
			{Key: aws.String("k3")},
			{Key: aws.String("k4"), VersionId: aws.String(ids["k4"])},
			{Key: aws.String("k0"), VersionId: aws.String("bad")},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Deleted) != 0 {
			t.Errorf("quiet mode listed %d deletions", len(out.Deleted))
		}
		if len(out.Errors) != 1 || aws.ToString(out.Errors[0].Key) != "k0" {
			t.Errorf("quiet mode errors %+v, want the one for k0", out.Errors)
		}
		list, err := h.sdk.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("multi")})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range list.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		if !slices.Equal(keys, []string{"k0"}) {
			t.Errorf("left %v, want [k0]", keys)
		}
	})
	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name   string
			bucket string
			body   string
			code   string
			status int
		}{
			{"no such bucket", "nosuch", `<Delete><Object><Key>a</Key></Object></Delete>`, "NoSuchBucket", 404},
			{"not xml", "multi", `<Delete><Object>`, "MalformedXML", 400},
			{"wrong root", "multi", `<Remove><Object><Key>a</Key></Object></Remove>`, "MalformedXML", 400},
			// The schema requires at least one Object.
			{"no objects", "multi", `<Delete><Quiet>true</Quiet></Delete>`, "MalformedXML", 400},
			{"too many keys", "multi", "<Delete>" + strings.Repeat("<Object><Key>x</Key></Object>", 1001) + "</Delete>", "MalformedXML", 400},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				hdr := http.Header{"Content-Md5": {md5b64([]byte(tt.body))}}
				r := h.do(rawRequest{method: "POST", path: "/" + tt.bucket + "?delete", body: []byte(tt.body), header: hdr, as: &alice})
				r.wantError(t, tt.code, tt.status)
			})
		}
	})
}

func TestListVersionsShowsMarkers(t *testing.T) {
	h := newHarness(t)
	h.bucket("lvb")
	ctx := t.Context()
	v1 := h.put("lvb", "a", []byte("1"))
	v2 := h.put("lvb", "a", []byte("22"))
	del, err := h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("lvb"), Key: aws.String("a")})
	if err != nil {
		t.Fatal(err)
	}
	vb := h.put("lvb", "b", []byte("333"))
	out, err := h.sdk.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String("lvb")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range out.Versions {
		got = append(got, fmt.Sprintf("%s %s latest=%v size=%d", aws.ToString(v.Key), aws.ToString(v.VersionId), aws.ToBool(v.IsLatest), aws.ToInt64(v.Size)))
	}
	want := []string{
		fmt.Sprintf("a %s latest=false size=2", v2),
		fmt.Sprintf("a %s latest=false size=1", v1),
		fmt.Sprintf("b %s latest=true size=3", vb),
	}
	if !slices.Equal(got, want) {
		t.Errorf("versions\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(out.DeleteMarkers) != 1 || aws.ToString(out.DeleteMarkers[0].VersionId) != aws.ToString(del.VersionId) || !aws.ToBool(out.DeleteMarkers[0].IsLatest) {
		t.Errorf("delete markers %+v, want the one latest marker %s", out.DeleteMarkers, aws.ToString(del.VersionId))
	}
	// The listing of current objects hides a.
	list, err := h.sdk.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("lvb")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != "b" {
		t.Errorf("current objects %+v, want b only", list.Contents)
	}
}

// Emptying a bucket the way clients do it: list a page of versions, delete
// what it shows, ask for the next page with the markers it returned (which
// name versions now deleted). Every version is listed once, none skipped,
// and the bucket ends empty.
func TestListVersionsPagingWhileDeleting(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.bucket("emptying")
	want := map[string]bool{}
	for i := range 4 {
		for j := range 3 {
			key := fmt.Sprintf("k%d", i)
			want[key+" "+h.put("emptying", key, []byte(fmt.Sprintf("v%d", j)))] = true
		}
		want[fmt.Sprintf("k%d ", i)+deleteObject(t, h, "emptying", fmt.Sprintf("k%d", i))] = true
	}
	got := map[string]int{}
	in := &awss3.ListObjectVersionsInput{Bucket: aws.String("emptying"), MaxKeys: aws.Int32(3)}
	for page := 0; ; page++ {
		if page > 20 {
			t.Fatal("paging does not end")
		}
		out, err := h.sdk.ListObjectVersions(ctx, in)
		if err != nil {
			t.Fatalf("page %d (markers %q %q): %v", page, aws.ToString(in.KeyMarker), aws.ToString(in.VersionIdMarker), err)
		}
		var ids []types.ObjectIdentifier
		for _, v := range out.Versions {
			ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, v := range out.DeleteMarkers {
			ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, id := range ids {
			got[aws.ToString(id.Key)+" "+aws.ToString(id.VersionId)]++
		}
		if len(ids) > 0 {
			res, err := h.sdk.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("emptying"), Delete: &types.Delete{Objects: ids}})
			if err != nil || len(res.Errors) > 0 {
				t.Fatalf("delete page %d: %v %+v", page, err, res)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.KeyMarker, in.VersionIdMarker = out.NextKeyMarker, out.NextVersionIdMarker
	}
	for v := range want {
		if got[v] != 1 {
			t.Errorf("version %s listed %d times, want once", v, got[v])
		}
	}
	if len(got) != len(want) {
		t.Errorf("listed %d versions, want %d", len(got), len(want))
	}
	if _, err := h.sdk.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("emptying")}); err != nil {
		t.Errorf("delete the emptied bucket: %v", err)
	}
}
