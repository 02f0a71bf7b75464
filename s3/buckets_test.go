package s3_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/embassy-dev/embassy/evidence"
)

func TestCreateBucketNames(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name   string
		bucket string
		code   string // "" for success
	}{
		{name: "lower case and digits", bucket: "vault-01"},
		{name: "dots", bucket: "a.b.c"},
		{name: "three characters", bucket: "abc"},
		{name: "sixty-three characters", bucket: strings.Repeat("a", 63)},
		{name: "too short", bucket: "ab", code: "InvalidBucketName"},
		{name: "too long", bucket: strings.Repeat("a", 64), code: "InvalidBucketName"},
		{name: "upper case", bucket: "Vault", code: "InvalidBucketName"},
		{name: "underscore", bucket: "bad_name", code: "InvalidBucketName"},
		{name: "leading hyphen", bucket: "-vault", code: "InvalidBucketName"},
		{name: "trailing dot", bucket: "vault.", code: "InvalidBucketName"},
		{name: "double dot", bucket: "a..b", code: "InvalidBucketName"},
		{name: "ip address", bucket: "192.168.1.1", code: "InvalidBucketName"},
		{name: "ip address with leading zeros", bucket: "010.001.1.1", code: "InvalidBucketName"},
		{name: "dotted like an address but five parts", bucket: "1.2.3.4.5"},
		{name: "address-like with letters", bucket: "192.168.1.a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(rawRequest{method: "PUT", path: "/" + tt.bucket, as: &alice})
			if tt.code == "" {
				if r.status != http.StatusOK {
					t.Fatalf("status %d, want 200\n%s", r.status, r.body)
				}
				if got := r.header.Get("Location"); got != "/"+tt.bucket {
					t.Errorf("Location %q, want %q", got, "/"+tt.bucket)
				}
				return
			}
			r.wantError(t, tt.code, http.StatusBadRequest)
			if _, err := h.n.Engine.Vault(tt.bucket); err == nil {
				t.Errorf("bucket %q was created", tt.bucket)
			}
		})
	}
}

func TestCreateBucketTwice(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.bucket("twice")
	h.put("twice", "kept", []byte("still here"))
	// In us-east-1 S3 answers 200 to creating a bucket again, and changes
	// nothing: the contents stay, and object lock is not turned on.
	for _, c := range []struct {
		name   string
		client *awss3.Client
	}{{"same principal", h.sdk}, {"other principal", h.sdkBob}} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("twice"), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
				t.Fatalf("create an existing bucket in us-east-1: %v, want 200", err)
			}
			if got := string(h.get("twice", "kept")); got != "still here" {
				t.Errorf("the bucket's object reads %q after re-creation", got)
			}
			_, err := h.sdk.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: aws.String("twice")})
			wantAPIError(t, err, "ObjectLockConfigurationNotFoundError", http.StatusNotFound)
		})
	}
}

func TestCreateBucketLocationConstraint(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		body string
		code string
	}{
		{name: "our region", body: `<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>`},
		{name: "empty constraint", body: `<CreateBucketConfiguration/>`},
		{name: "other region", body: `<CreateBucketConfiguration><LocationConstraint>eu-north-1</LocationConstraint></CreateBucketConfiguration>`, code: "InvalidLocationConstraint"},
		{name: "not xml", body: `nope`, code: "MalformedXML"},
		{name: "wrong root element", body: `<VersioningConfiguration/>`, code: "MalformedXML"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "loc-" + string(rune('a'+i))
			r := h.do(rawRequest{method: "PUT", path: "/" + name, body: []byte(tt.body), as: &alice})
			if tt.code == "" {
				if r.status != http.StatusOK {
					t.Fatalf("status %d\n%s", r.status, r.body)
				}
				return
			}
			r.wantError(t, tt.code, http.StatusBadRequest)
			if _, err := h.n.Engine.Vault(name); err == nil {
				t.Errorf("bucket %s created despite %s", name, tt.code)
			}
		})
	}
}

func TestHeadBucket(t *testing.T) {
	h := newHarness(t)
	h.bucket("present")
	r := h.do(rawRequest{method: "HEAD", path: "/present", as: &alice})
	if r.status != http.StatusOK || r.header.Get("x-amz-bucket-region") != region {
		t.Errorf("HEAD present: status %d, region %q", r.status, r.header.Get("x-amz-bucket-region"))
	}
	r = h.do(rawRequest{method: "HEAD", path: "/absent", as: &alice})
	if r.status != http.StatusNotFound {
		t.Errorf("HEAD absent: status %d, want 404", r.status)
	}
	if len(r.body) != 0 {
		t.Errorf("HEAD absent: body %q, want none", r.body)
	}
	_, err := h.sdk.HeadBucket(t.Context(), &awss3.HeadBucketInput{Bucket: aws.String("absent")})
	if errStatus(err) != http.StatusNotFound {
		t.Errorf("SDK HeadBucket absent: %v, want 404", err)
	}
}

func TestListBuckets(t *testing.T) {
	h := newHarness(t)
	out, err := h.sdk.ListBuckets(t.Context(), &awss3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Buckets) != 0 {
		t.Fatalf("fresh node lists %d buckets", len(out.Buckets))
	}
	for _, b := range []string{"zulu", "alpha", "mike"} {
		h.bucket(b)
	}
	out, err = h.sdkBob.ListBuckets(t.Context(), &awss3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range out.Buckets {
		names = append(names, aws.ToString(b.Name))
		if b.CreationDate == nil || b.CreationDate.IsZero() {
			t.Errorf("bucket %s has no creation date", aws.ToString(b.Name))
		}
	}
	if got, want := strings.Join(names, ","), "alpha,mike,zulu"; got != want {
		t.Errorf("buckets %s, want %s", got, want)
	}
	if out.Owner == nil || aws.ToString(out.Owner.ID) != "bob" {
		t.Errorf("owner %+v, want bob", out.Owner)
	}
}

func TestBucketLocation(t *testing.T) {
	h := newHarness(t)
	h.bucket("where")
	out, err := h.sdk.GetBucketLocation(t.Context(), &awss3.GetBucketLocationInput{Bucket: aws.String("where")})
	if err != nil {
		t.Fatal(err)
	}
	// us-east-1 is reported as an empty LocationConstraint, as S3 does.
	if out.LocationConstraint != "" {
		t.Errorf("location %q, want empty (us-east-1)", out.LocationConstraint)
	}
	_, err = h.sdk.GetBucketLocation(t.Context(), &awss3.GetBucketLocationInput{Bucket: aws.String("nowhere")})
	wantAPIError(t, err, "NoSuchBucket", http.StatusNotFound)
}

func TestDeleteBucket(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	del := func() error {
		_, err := h.sdk.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("full")})
		return err
	}
	_, err := h.sdk.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("never")})
	wantAPIError(t, err, "NoSuchBucket", http.StatusNotFound)

	h.bucket("full")
	v1 := h.put("full", "k", []byte("one"))
	v2 := h.put("full", "k", bytes.Repeat([]byte("two"), 100000)) // in shards, not inline
	v3 := h.put("full", "gone", []byte("three"))
	// A current object keeps the bucket, and the answer names it.
	err = del()
	wantAPIError(t, err, "BucketNotEmpty", http.StatusConflict)
	if !strings.Contains(err.Error(), "full/") || !strings.Contains(err.Error(), "is current") {
		t.Errorf("BucketNotEmpty does not name the current object: %v", err)
	}
	marker := deleteObject(t, h, "full", "k")
	err = del()
	wantAPIError(t, err, "BucketNotEmpty", http.StatusConflict)
	if !strings.Contains(err.Error(), "full/gone") {
		t.Errorf("BucketNotEmpty does not name full/gone: %v", err)
	}
	// "gone" has only a delete marker over nothing, "k" two noncurrent
	// versions under its marker: no current object is left, so the bucket
	// goes with its history, as on AWS.
	marker2 := deleteObject(t, h, "full", "gone")
	if _, err := h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("full"), Key: aws.String("gone"), VersionId: aws.String(v3)}); err != nil {
		t.Fatal(err)
	}
	if err := del(); err != nil {
		t.Fatalf("delete a bucket holding only history: %v", err)
	}
	_, err = h.sdk.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("full")})
	if errStatus(err) != http.StatusNotFound {
		t.Errorf("HEAD deleted bucket: %v, want 404", err)
	}
	wantAPIError(t, del(), "NoSuchBucket", http.StatusNotFound)
	// Every version went through the deletion path: a deletion record for
	// each, on the sites that held it.
	deleted := h.deletionRecords(t)
	for _, id := range []string{v1, v2, marker, marker2} {
		if !deleted[id] {
			t.Errorf("version %s was removed without a deletion record", id)
		}
	}
	// The name is free again, and the new bucket has none of the history.
	h.bucket("full")
	out, err := h.sdk.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String("full")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Versions)+len(out.DeleteMarkers) != 0 {
		t.Errorf("the new bucket lists %d versions and %d markers of the old one", len(out.Versions), len(out.DeleteMarkers))
	}
}

// deleteObject writes a delete marker over bucket/key and returns its id.
func deleteObject(t *testing.T, h *harness, bucket, key string) string {
	t.Helper()
	out, err := h.sdk.DeleteObject(t.Context(), &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("delete %s/%s: %v", bucket, key, err)
	}
	if !aws.ToBool(out.DeleteMarker) || aws.ToString(out.VersionId) == "" {
		t.Fatalf("delete %s/%s: no delete marker: %+v", bucket, key, out)
	}
	return aws.ToString(out.VersionId)
}

// deletionRecords returns the versions that deletion records on the
// node's sites name.
func (h *harness) deletionRecords(t *testing.T) map[string]bool {
	t.Helper()
	e := h.n.Engine
	got := map[string]bool{}
	for _, sid := range e.SiteIDs() {
		s, _ := e.Site(sid)
		err := evidence.ReadSite(t.Context(), s.Store, e.Keys(), e.NodeID(), func(string) bool { return false },
			func(_ string, recs []evidence.Record) error {
				for _, r := range recs {
					if r.Kind == evidence.Delete {
						got[r.Version.String()] = true
					}
				}
				return nil
			},
			func(name string, err error) { t.Errorf("site %s: journal batch %s: %v", sid, name, err) })
		if err != nil {
			t.Fatalf("read the journal of site %s: %v", sid, err)
		}
	}
	return got
}

func TestBucketVersioning(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.bucket("ver")
	out, err := h.sdk.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: aws.String("ver")})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != types.BucketVersioningStatusEnabled {
		t.Errorf("versioning %q, want Enabled", out.Status)
	}
	_, err = h.sdk.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: aws.String("ver"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
	if err != nil {
		t.Errorf("enable versioning: %v", err)
	}
	_, err = h.sdk.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: aws.String("ver"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}})
	wantAPIError(t, err, "InvalidBucketState", http.StatusConflict)
	out, err = h.sdk.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: aws.String("ver")})
	if err != nil || out.Status != types.BucketVersioningStatusEnabled {
		t.Errorf("after refused suspension: %q, %v; want Enabled", out.Status, err)
	}
	_, err = h.sdk.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: aws.String("nover")})
	wantAPIError(t, err, "NoSuchBucket", http.StatusNotFound)
	_, err = h.sdk.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: aws.String("nover"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
	wantAPIError(t, err, "NoSuchBucket", http.StatusNotFound)
}

func TestCreateBucketPolicyHeaders(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name    string
		headers [][2]string
		k, m    int // the policy the vault gets
		code    string
	}{
		{name: "node default", k: 4, m: 2},
		{name: "erasure only", headers: [][2]string{{"x-embassy-erasure", "2+1"}}, k: 2, m: 1},
		{name: "erasure and survive", headers: [][2]string{{"x-embassy-erasure", "3+3"}, {"x-embassy-survive", "sites=3"}}, k: 3, m: 3},
		{name: "survive a provider", headers: [][2]string{{"x-embassy-erasure", "2+2"}, {"x-embassy-survive", "providers=1"}}, k: 2, m: 2},
		{name: "survive only", headers: [][2]string{{"x-embassy-survive", "sites=2"}}, k: 4, m: 2},
		{name: "infeasible providers", headers: [][2]string{{"x-embassy-survive", "providers=1"}}, code: "InvalidArgument"},
		{name: "infeasible survive", headers: [][2]string{{"x-embassy-erasure", "4+2"}, {"x-embassy-survive", "sites=3"}}, code: "InvalidArgument"},
		{name: "infeasible jurisdictions", headers: [][2]string{{"x-embassy-erasure", "2+2"}, {"x-embassy-survive", "jurisdictions=2"}}, code: "InvalidArgument"},
		{name: "more shards than sites", headers: [][2]string{{"x-embassy-erasure", "6+2"}}, code: "InvalidArgument"},
		{name: "malformed erasure", headers: [][2]string{{"x-embassy-erasure", "banana"}}, code: "InvalidArgument"},
		{name: "malformed survive", headers: [][2]string{{"x-embassy-survive", "everything"}}, code: "InvalidArgument"},
		{name: "unknown survive dimension", headers: [][2]string{{"x-embassy-survive", "planets=1"}}, code: "InvalidArgument"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "policy-" + string(rune('a'+i))
			hdr := http.Header{}
			for _, kv := range tt.headers {
				hdr.Set(kv[0], kv[1])
			}
			r := h.do(rawRequest{method: "PUT", path: "/" + name, header: hdr, as: &alice})
			if tt.code != "" {
				d := r.wantError(t, tt.code, http.StatusBadRequest)
				if d.Message == "" {
					t.Errorf("no message explaining the refusal")
				}
				if _, err := h.n.Engine.Vault(name); err == nil {
					t.Errorf("vault %s created with an infeasible policy", name)
				}
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("status %d\n%s", r.status, r.body)
			}
			v, err := h.n.Engine.Vault(name)
			if err != nil {
				t.Fatal(err)
			}
			if v.Policy.K != tt.k || v.Policy.M != tt.m {
				t.Errorf("policy %d+%d, want %d+%d", v.Policy.K, v.Policy.M, tt.k, tt.m)
			}
			// The vault works under its policy.
			h.put(name, "obj", []byte("payload"))
		})
	}
}

func TestCreateBucketObjectLock(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.lockedBucket("locked")
	h.bucket("plain")
	out, err := h.sdk.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: aws.String("locked")})
	if err != nil {
		t.Fatal(err)
	}
	if c := out.ObjectLockConfiguration; c == nil || c.ObjectLockEnabled != types.ObjectLockEnabledEnabled || c.Rule != nil {
		t.Errorf("lock configuration %+v, want Enabled without a rule", c)
	}
	_, err = h.sdk.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: aws.String("plain")})
	wantAPIError(t, err, "ObjectLockConfigurationNotFoundError", http.StatusNotFound)
	_, err = h.sdk.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: aws.String("absent")})
	wantAPIError(t, err, "NoSuchBucket", http.StatusNotFound)
}

// Bucket sub-resources embassy does not keep answer as S3 does for a
// bucket without them, or NotImplemented, never 500.
func TestBucketSubresources(t *testing.T) {
	h := newHarness(t)
	h.bucket("sub")
	tests := []struct {
		method, query string
		status        int
		code          string
	}{
		{"GET", "tagging", 404, "NoSuchTagSet"},
		{"GET", "policy", 404, "NoSuchBucketPolicy"},
		{"GET", "lifecycle", 404, "NoSuchLifecycleConfiguration"},
		{"GET", "cors", 404, "NoSuchCORSConfiguration"},
		{"GET", "website", 501, "NotImplemented"},
		{"PUT", "policy", 501, "NotImplemented"},
		{"PUT", "acl", 400, "MissingSecurityHeader"},
		{"DELETE", "tagging", 501, "NotImplemented"},
		{"POST", "", 405, "MethodNotAllowed"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.query, func(t *testing.T) {
			path := "/sub"
			if tt.query != "" {
				path += "?" + tt.query
			}
			h.do(rawRequest{method: tt.method, path: path, as: &alice}).wantError(t, tt.code, tt.status)
		})
	}
	for _, q := range []string{"encryption", "acl"} {
		r := h.do(rawRequest{method: "GET", path: "/sub?" + q, as: &alice})
		if r.status != 200 {
			t.Errorf("GET ?%s: status %d\n%s", q, r.status, r.body)
		}
		h.do(rawRequest{method: "GET", path: "/nosuch?" + q, as: &alice}).wantError(t, "NoSuchBucket", 404)
	}
}

// A version under a lock keeps its bucket, even when no object is
// current, and the refusal names it; lifting the lock lets the bucket go.
func TestDeleteBucketLockedHistory(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.lockedBucket("held")
	id := h.put("held", "evidence", []byte("kept under legal hold"))
	hold := func(s types.ObjectLockLegalHoldStatus) {
		t.Helper()
		_, err := h.sdk.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: aws.String("held"), Key: aws.String("evidence"), VersionId: aws.String(id),
			LegalHold: &types.ObjectLockLegalHold{Status: s}})
		if err != nil {
			t.Fatalf("legal hold %s: %v", s, err)
		}
	}
	hold(types.ObjectLockLegalHoldStatusOn)
	marker := deleteObject(t, h, "held", "evidence")
	_, err := h.sdk.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("held")})
	wantAPIError(t, err, "BucketNotEmpty", http.StatusConflict)
	if !strings.Contains(err.Error(), "legal hold") || !strings.Contains(err.Error(), id) {
		t.Errorf("BucketNotEmpty does not name the held version %s: %v", id, err)
	}
	// Nothing was removed: the marker and the version are both there.
	out, err := h.sdk.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String("held")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Versions) != 1 || len(out.DeleteMarkers) != 1 || aws.ToString(out.DeleteMarkers[0].VersionId) != marker {
		t.Fatalf("after a refused delete: %d versions, %d markers, want 1 and 1", len(out.Versions), len(out.DeleteMarkers))
	}
	hold(types.ObjectLockLegalHoldStatusOff)
	if _, err := h.sdk.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("held")}); err != nil {
		t.Fatalf("delete after the hold is lifted: %v", err)
	}
}

// ListBuckets pages with max-buckets and continuation-token, and filters
// by prefix, as S3 does since 2024.
func TestListBucketsPaging(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	for _, b := range []string{"page-c", "page-a", "other", "page-b"} {
		h.bucket(b)
	}
	var got []string
	in := &awss3.ListBucketsInput{MaxBuckets: aws.Int32(2), Prefix: aws.String("page-")}
	for range 5 {
		out, err := h.sdk.ListBuckets(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Buckets) > 2 {
			t.Fatalf("%d buckets on a page of 2", len(out.Buckets))
		}
		for _, b := range out.Buckets {
			got = append(got, aws.ToString(b.Name))
		}
		if aws.ToString(out.ContinuationToken) == "" {
			break
		}
		in.ContinuationToken = out.ContinuationToken
	}
	if want := []string{"page-a", "page-b", "page-c"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("paged listing %v, want %v", got, want)
	}
	// A full last page has no token.
	out, err := h.sdk.ListBuckets(ctx, &awss3.ListBucketsInput{MaxBuckets: aws.Int32(4)})
	if err != nil || len(out.Buckets) != 4 || out.ContinuationToken != nil {
		t.Errorf("4 of 4 buckets: %d, token %v, %v", len(out.Buckets), out.ContinuationToken, err)
	}
	r := h.do(rawRequest{method: "GET", path: "/?max-buckets=0", as: &alice})
	r.wantError(t, "InvalidArgument", 400)
}

// ACLs behave as on an AWS bucket with ACLs disabled: the canned ACLs
// clients send by default are accepted (and change nothing), grants to
// anyone else are refused with AccessControlListNotSupported, and the ACL
// read back is the owner's FULL_CONTROL.
func TestACLsDisabled(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.bucket("acls")
	h.put("acls", "k", []byte("x"))
	for _, acl := range []types.ObjectCannedACL{types.ObjectCannedACLPrivate, types.ObjectCannedACLBucketOwnerFullControl} {
		if _, err := h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("acls"), Key: aws.String("canned"), Body: strings.NewReader("y"), ACL: acl}); err != nil {
			t.Errorf("PutObject with ACL %s: %v", acl, err)
		}
		if _, err := h.sdk.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("k"), ACL: acl}); err != nil {
			t.Errorf("PutObjectAcl %s: %v", acl, err)
		}
		if _, err := h.sdk.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("acls"), Key: aws.String("copy"), CopySource: aws.String("acls/k"), ACL: acl}); err != nil {
			t.Errorf("CopyObject with ACL %s: %v", acl, err)
		}
		if _, err := h.sdk.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("acls"), Key: aws.String("mp"), ACL: acl}); err != nil {
			t.Errorf("CreateMultipartUpload with ACL %s: %v", acl, err)
		}
	}
	if _, err := h.sdk.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("acls-private"), ACL: types.BucketCannedACLPrivate}); err != nil {
		t.Errorf("CreateBucket with ACL private: %v", err)
	}
	if _, err := h.sdk.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: aws.String("acls"), ACL: types.BucketCannedACLPrivate}); err != nil {
		t.Errorf("PutBucketAcl private: %v", err)
	}
	// FULL_CONTROL to the owner GetObjectAcl shows is accepted.
	got, err := h.sdk.GetObjectAcl(ctx, &awss3.GetObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("k")})
	if err != nil || len(got.Grants) != 1 || got.Grants[0].Permission != types.PermissionFullControl {
		t.Fatalf("GetObjectAcl: %+v, %v", got, err)
	}
	if _, err := h.sdk.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("k"),
		AccessControlPolicy: &types.AccessControlPolicy{Owner: got.Owner, Grants: got.Grants}}); err != nil {
		t.Errorf("PutObjectAcl with the owner's own grant: %v", err)
	}
	// Anything that shares is refused, and nothing is written.
	refused := map[string]error{}
	_, refused["PutObject public-read"] = h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("acls"), Key: aws.String("public"), Body: strings.NewReader("z"), ACL: types.ObjectCannedACLPublicRead})
	_, refused["PutObject grant-read"] = h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("acls"), Key: aws.String("public"), Body: strings.NewReader("z"), GrantRead: aws.String(`id="bob"`)})
	_, refused["PutObjectAcl authenticated-read"] = h.sdk.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("k"), ACL: types.ObjectCannedACLAuthenticatedRead})
	_, refused["PutObjectAcl grant to bob"] = h.sdk.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("k"),
		AccessControlPolicy: &types.AccessControlPolicy{Owner: got.Owner, Grants: []types.Grant{{Grantee: &types.Grantee{Type: types.TypeCanonicalUser, ID: aws.String("bob")}, Permission: types.PermissionRead}}}})
	_, refused["PutBucketAcl public-read-write"] = h.sdk.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: aws.String("acls"), ACL: types.BucketCannedACLPublicReadWrite})
	_, refused["CreateBucket public-read"] = h.sdk.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("acls-public"), ACL: types.BucketCannedACLPublicRead})
	for name, err := range refused {
		t.Run(name, func(t *testing.T) { wantAPIError(t, err, "AccessControlListNotSupported", 400) })
	}
	if h.stored(t, "acls", "public") {
		t.Error("a refused put stored the object")
	}
	if _, err := h.sdk.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("acls-public")}); errStatus(err) != 404 {
		t.Errorf("a refused CreateBucket made the bucket: %v", err)
	}
	_, err = h.sdk.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: aws.String("acls"), Key: aws.String("absent"), ACL: types.ObjectCannedACLPrivate})
	wantAPIError(t, err, "NoSuchKey", 404)
}
