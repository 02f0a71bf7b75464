package s3_test

// Attacker-side tests: each "what is wrong" finding of the security review
// (issue 10), tried through the real S3 interface with aws-sdk-go-v2 as the
// attacker, asserting the refusal and that nothing changed.

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/vault"
)

// snapshot is what an attack must not change: the versions of a key with
// their locks, the node's configuration and its two-person requests.
type snapshot struct {
	versions string
	config   []byte
	requests []byte
}

func (h *rolesHarness) snapshot(bucket, key string) snapshot {
	h.t.Helper()
	var b strings.Builder
	if key != "" {
		page, err := h.n.Engine.Versions(vault.AsSystem(context.Background()), bucket, indexVersionOptions(key))
		if err != nil {
			h.t.Fatal(err)
		}
		for _, v := range page.Versions {
			b.WriteString(v.ID.String())
			if v.DeleteMarker {
				b.WriteString(" marker")
			}
			info, err := h.n.Engine.Stat(vault.AsSystem(context.Background()), bucket, key, v.ID)
			if err == nil && info.Lock != nil {
				b.WriteString(" lock=" + info.Lock.Mode + "/" + info.Lock.Until.String())
				if info.Lock.LegalHold {
					b.WriteString("/hold")
				}
			}
			b.WriteString("\n")
		}
	}
	cfg, err := os.ReadFile(filepath.Join(h.dir, node.ConfigFile))
	if err != nil {
		h.t.Fatal(err)
	}
	req, _ := os.ReadFile(filepath.Join(h.dir, node.RequestsFile))
	return snapshot{versions: b.String(), config: cfg, requests: req}
}

func (s snapshot) same(t *testing.T, after snapshot) {
	t.Helper()
	if s.versions != after.versions {
		t.Errorf("the versions changed:\nbefore:\n%safter:\n%s", s.versions, after.versions)
	}
	if !bytes.Equal(s.config, after.config) {
		t.Errorf("node.yaml changed:\nbefore:\n%s\nafter:\n%s", s.config, after.config)
	}
	if !bytes.Equal(s.requests, after.requests) {
		t.Errorf("requests.json changed:\nbefore:\n%s\nafter:\n%s", s.requests, after.requests)
	}
}

// denied checks that err is a plain 403 AccessDenied.
func denied(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: allowed, want AccessDenied", what)
		return
	}
	if errStatus(err) != http.StatusForbidden || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("%s: %v, want 403 AccessDenied", what, err)
	}
}

// TestAttackReadingIsNotEnoughToDestroy: a foreign ally who reads an object
// through REL TO, and a reader of the owner's nation, can neither lift its
// legal hold, nor delete the version (alone or in a DeleteObjects), nor
// lock it under COMPLIANCE until 9999.
func TestAttackReadingIsNotEnoughToDestroy(t *testing.T) {
	h := newRolesHarness(t)
	ctx := context.Background()
	key, v := h.object()
	id := mustID(t, v)
	if _, err := h.n.Engine.SetLegalHold(h.as("admin"), "reg", key, id, true); err != nil {
		t.Fatal(err)
	}
	before := h.snapshot("reg", key)
	for _, who := range []string{"ally", "foreign", "reader", "auditor", "stranger"} {
		t.Run(who, func(t *testing.T) {
			c := h.client(rolesCred(who))
			if who == "ally" || who == "foreign" || who == "reader" {
				// The attacker can read the object: the label releases it.
				if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("reg"), Key: aws.String(key)}); err != nil {
					t.Fatalf("%s cannot read the object the attack is about: %v", who, err)
				}
			}
			_, err := c.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: aws.String("reg"), Key: aws.String(key), VersionId: aws.String(v),
				LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOff}})
			denied(t, "lift the legal hold", err)
			_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("reg"), Key: aws.String(key), VersionId: aws.String(v)})
			denied(t, "delete the version", err)
			out, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("reg"), Delete: &types.Delete{
				Objects: []types.ObjectIdentifier{{Key: aws.String(key), VersionId: aws.String(v)}}}})
			if err == nil && (len(out.Deleted) > 0 || len(out.Errors) != 1 || aws.ToString(out.Errors[0].Code) != "AccessDenied") {
				t.Errorf("DeleteObjects with the version: deleted %d, errors %+v; want AccessDenied", len(out.Deleted), out.Errors)
			} else if err != nil {
				denied(t, "DeleteObjects with the version", err)
			}
			_, err = c.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{Bucket: aws.String("reg"), Key: aws.String(key), VersionId: aws.String(v),
				Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: aws.Time(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))}})
			denied(t, "COMPLIANCE retention until 9999", err)
			before.same(t, h.snapshot("reg", key))
		})
	}
	// The operator of the owner's nation can: the hold is lifted and the
	// version deleted, which shows the refusals above were not an accident
	// of the requests.
	op := h.client(rolesCred("operator"))
	if _, err := op.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: aws.String("reg"), Key: aws.String(key), VersionId: aws.String(v),
		LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOff}}); err != nil {
		t.Fatal(err)
	}
	if _, err := op.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("reg"), Key: aws.String(key), VersionId: aws.String(v)}); err != nil {
		t.Fatal(err)
	}
}

// TestAttackBucketOperations: creating vaults, setting a 100-year
// COMPLIANCE default on another nation's vault, listing buckets and asking
// for a vault's deletion all need a role (and the nationality).
func TestAttackBucketOperations(t *testing.T) {
	h := newRolesHarness(t)
	ctx := context.Background()
	before := h.snapshot("", "")
	for _, who := range []string{"stranger", "reader", "writer", "noroles", "auditor", "foreign", "ally"} {
		t.Run(who, func(t *testing.T) {
			c := h.client(rolesCred(who))
			_, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("planted-" + who)})
			denied(t, "CreateBucket", err)
			_, err = c.PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{Bucket: aws.String("reg"),
				ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled,
					Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeCompliance, Years: aws.Int32(100)}}}})
			denied(t, "a 100-year COMPLIANCE default", err)
			_, err = c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("reg")})
			denied(t, "ask for the vault's deletion", err)
			if who == "stranger" || who == "auditor" {
				_, err = c.ListBuckets(ctx, &awss3.ListBucketsInput{})
				denied(t, "ListBuckets", err)
			}
			before.same(t, h.snapshot("", ""))
			for _, v := range h.n.Engine.Vaults() {
				if strings.HasPrefix(v.Name, "planted") {
					t.Errorf("vault %s was created", v.Name)
				}
			}
		})
	}
	// Even an operator of the owner's nation cannot remove, shorten or
	// soften a vault's default retention alone: it is two-person (this
	// node has no custodians, so it is refused). Lengthening it is not.
	if err := h.n.AddVault(node.VaultConfig{Name: "kept", Erasure: "4+2", ObjectLock: &node.ObjectLockConfig{Mode: "COMPLIANCE", Years: 10}}); err != nil {
		t.Fatal(err)
	}
	op := h.client(rolesCred("operator"))
	keptBefore := h.snapshot("", "")
	for name, rule := range map[string]*types.ObjectLockRule{
		"removed":   nil,
		"shortened": {DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeCompliance, Years: aws.Int32(1)}},
		"softened":  {DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeGovernance, Years: aws.Int32(10)}},
	} {
		_, err := op.PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{Bucket: aws.String("kept"),
			ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled, Rule: rule}})
		if errStatus(err) != http.StatusForbidden || !strings.Contains(err.Error(), "custodians") {
			t.Errorf("default retention %s by an operator: %v, want 403 needing custodians", name, err)
		}
		keptBefore.same(t, h.snapshot("", ""))
	}
	if _, err := op.PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{Bucket: aws.String("kept"),
		ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled,
			Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeCompliance, Years: aws.Int32(20)}}}}); err != nil {
		t.Errorf("lengthening the default retention: %v", err)
	}

	// ListBuckets shows only the vaults where the caller holds reader.
	if err := h.n.AddVault(node.VaultConfig{Name: "cabinet", Erasure: "4+2"}); err != nil {
		t.Fatal(err)
	}
	for who, want := range map[string][]string{"reader": {"cabinet", "kept", "reg"}, "regclerk": {"reg"}, "ally": {"cabinet", "kept", "reg"}} {
		out, err := h.client(rolesCred(who)).ListBuckets(ctx, &awss3.ListBucketsInput{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, b := range out.Buckets {
			names = append(names, aws.ToString(b.Name))
		}
		if !slices.Equal(names, want) {
			t.Errorf("%s lists %v, want %v", who, names, want)
		}
	}
}

func mustID(t *testing.T, s string) manifest.ID {
	t.Helper()
	id, err := manifest.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func indexVersionOptions(key string) index.VersionOptions {
	return index.VersionOptions{Prefix: key}
}

// TestAttackUploadsBelongToTheirInitiator: a multipart upload can be seen,
// fed, completed or aborted only by whoever started it, or by an operator
// of the vault. Others — a credential no configuration knows, another
// writer of the same nation, a writer of that vault only, an ally — are
// refused, and the upload is untouched.
func TestAttackUploadsBelongToTheirInitiator(t *testing.T) {
	h := newRolesHarness(t)
	ctx := context.Background()
	victim := h.client(rolesCred("writer"))
	up, err := victim.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("reg"), Key: aws.String("minutes"),
		Metadata: map[string]string{"origin": "cabinet"}}, withLabel(rolesLabel))
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(up.UploadId)
	mine := bytes.Repeat([]byte("cabinet minutes "), 1<<16) // 1 MiB
	p1, err := victim.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("reg"), Key: aws.String("minutes"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(mine)})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := h.object() // something every attacker can read
	parts := func() string {
		t.Helper()
		ps, err := h.n.Engine.ListParts(vault.AsSystem(ctx), "reg", "minutes", id)
		if err != nil {
			return "gone: " + err.Error()
		}
		var b strings.Builder
		for _, p := range ps {
			b.WriteString(p.ETag + "\n")
		}
		return b.String()
	}
	before, beforeParts := h.snapshot("reg", "minutes"), parts()
	for _, who := range []string{"stranger", "noroles", "regclerk", "ally", "reader"} {
		t.Run(who, func(t *testing.T) {
			c := h.client(rolesCred(who))
			lu, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String("reg")})
			if who == "stranger" || who == "reader" {
				denied(t, "ListMultipartUploads", err)
			} else if err != nil {
				t.Fatalf("ListMultipartUploads: %v", err)
			} else {
				for _, u := range lu.Uploads {
					if aws.ToString(u.UploadId) == id || aws.ToString(u.Key) == "minutes" {
						t.Errorf("the victim's upload is listed to %s", who)
					}
				}
			}
			_, err = c.ListParts(ctx, &awss3.ListPartsInput{Bucket: aws.String("reg"), Key: aws.String("minutes"), UploadId: aws.String(id)})
			denied(t, "ListParts", err)
			_, err = c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("reg"), Key: aws.String("minutes"), UploadId: aws.String(id), PartNumber: aws.Int32(1), Body: strings.NewReader("intruder's bytes")})
			denied(t, "UploadPart over part 1", err)
			_, err = c.UploadPartCopy(ctx, &awss3.UploadPartCopyInput{Bucket: aws.String("reg"), Key: aws.String("minutes"), UploadId: aws.String(id), PartNumber: aws.Int32(2), CopySource: aws.String("reg/" + src)})
			denied(t, "UploadPartCopy", err)
			_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String("reg"), Key: aws.String("minutes"), UploadId: aws.String(id),
				MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: p1.ETag}}}})
			denied(t, "CompleteMultipartUpload", err)
			_, err = c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: aws.String("reg"), Key: aws.String("minutes"), UploadId: aws.String(id)})
			denied(t, "AbortMultipartUpload", err)
			before.same(t, h.snapshot("reg", "minutes"))
			if got := parts(); got != beforeParts {
				t.Errorf("the upload's parts changed: %q, was %q", got, beforeParts)
			}
		})
	}
	// An operator of the vault sees every upload.
	lu, err := h.client(rolesCred("regop")).ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String("reg")})
	if err != nil || len(lu.Uploads) != 1 || aws.ToString(lu.Uploads[0].UploadId) != id {
		t.Fatalf("an operator lists %+v, %v", lu, err)
	}
	// The initiator completes: the object holds its bytes, under its label.
	if _, err := victim.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String("reg"), Key: aws.String("minutes"), UploadId: aws.String(id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: p1.ETag}}}}); err != nil {
		t.Fatal(err)
	}
	out, err := victim.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("reg"), Key: aws.String("minutes")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	got, _ := io.ReadAll(out.Body)
	if !bytes.Equal(got, mine) {
		t.Fatalf("the completed object holds %d other bytes", len(got))
	}
}

// withLabel sends x-embassy-label (signed, as every header the SDK sends).
func withLabel(l string) func(*awss3.Options) {
	return func(o *awss3.Options) {
		o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Embassy-Label", l))
	}
}

// TestAttackDeleteMarkers: a delete marker shows and can be removed only by
// those who may read the object it hides. A principal who may not read the
// object does not see the marker's version id — not in a listing, not on a
// GET — and cannot remove it to undelete the object.
func TestAttackDeleteMarkers(t *testing.T) {
	h := newRolesHarness(t)
	ctx := context.Background()
	const secret = "NATO SECRET//REL TO EST"
	info, err := h.n.Engine.Put(h.as("admin"), "reg", "plan", strings.NewReader("the plan"), vault.PutOptions{Size: 8, Label: secret})
	if err != nil {
		t.Fatal(err)
	}
	del, err := h.n.Engine.Delete(h.as("admin"), "reg", "plan", vault.DeleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	marker := del.VersionID.String()
	before := h.snapshot("reg", "plan")
	for _, who := range []string{"foreign", "ally"} {
		t.Run(who, func(t *testing.T) {
			c := h.client(rolesCred(who))
			resp := h.do(rawRequest{method: "GET", path: "/reg/plan", as: ptr(rolesCred(who))})
			if resp.status != http.StatusForbidden || resp.header.Get("x-amz-version-id") != "" || bytes.Contains(resp.body, []byte(marker)) {
				t.Errorf("GET of the deleted key: %d, x-amz-version-id %q; want 403 without the marker's id", resp.status, resp.header.Get("x-amz-version-id"))
			}
			lv, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String("reg")})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range lv.DeleteMarkers {
				if aws.ToString(m.VersionId) == marker || aws.ToString(m.Key) == "plan" {
					t.Errorf("the marker is listed to %s", who)
				}
			}
			for _, v := range lv.Versions {
				if aws.ToString(v.Key) == "plan" {
					t.Errorf("the hidden version is listed to %s", who)
				}
			}
			_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("reg"), Key: aws.String("plan"), VersionId: aws.String(marker)})
			denied(t, "remove the delete marker", err)
			out, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("reg"), Delete: &types.Delete{
				Objects: []types.ObjectIdentifier{{Key: aws.String("plan"), VersionId: aws.String(marker)}}}})
			if err == nil && len(out.Deleted) > 0 {
				t.Error("DeleteObjects removed the marker")
			}
			before.same(t, h.snapshot("reg", "plan"))
		})
	}
	// Whoever may read the object sees the marker, and an operator of the
	// owner's nation may remove it.
	resp := h.do(rawRequest{method: "GET", path: "/reg/plan", as: ptr(rolesCred("reader"))})
	if resp.status != http.StatusNotFound || resp.header.Get("x-amz-version-id") != marker {
		t.Errorf("a reader of the object: GET %d, version %q; want 404 naming the marker", resp.status, resp.header.Get("x-amz-version-id"))
	}
	if _, err := h.client(rolesCred("operator")).DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("reg"), Key: aws.String("plan"), VersionId: aws.String(marker)}); err != nil {
		t.Fatal(err)
	}
	if got, err := h.n.Engine.Stat(h.as("admin"), "reg", "plan", manifest.ID{}); err != nil || got.VersionID != info.VersionID {
		t.Fatalf("after removing the marker: %v, %v", got.VersionID, err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestAttackListingsLeakNothing: an ally pages through every kind of
// listing one key at a time, with and without a delimiter, over a vault
// where most keys are hidden from it. No response names a hidden key — not
// as an entry, not as a marker or token, not as a common prefix — and
// paging still reaches every key it may read, though the scan per request
// is bounded (some pages come back empty but truncated).
func TestAttackListingsLeakNothing(t *testing.T) {
	h := newRolesHarness(t, func(c *node.Config) { c.S3.ListScan = 5 })
	const hidden = "NATO SECRET//REL TO EST"
	put := func(key, l string) {
		t.Helper()
		if _, err := h.n.Engine.Put(h.as("admin"), "reg", key, strings.NewReader("x"), vault.PutOptions{Size: 1, Label: l}); err != nil {
			t.Fatal(err)
		}
	}
	visible := []string{"a-shown", "m/shown", "q/deep/shown", "z-shown"}
	for _, k := range visible {
		put(k, rolesLabel)
	}
	for i := range 12 {
		put(fmt.Sprintf("b-secret-%02d", i), hidden)
		put(fmt.Sprintf("h/secret-%02d", i), hidden) // a prefix with nothing readable
		put(fmt.Sprintf("m/secret-%02d", i), hidden)
		put(fmt.Sprintf("q/secret-%02d", i), hidden)
	}
	// A hidden key hidden again by a delete marker.
	if _, err := h.n.Engine.Delete(h.as("admin"), "reg", "b-secret-00", vault.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ally := rolesCred("ally")
	type result struct {
		names  []string
		pages  int
		empty  int
		bodies []string
	}
	page := func(t *testing.T, path string) (rawResponse, listPage) {
		t.Helper()
		resp := h.do(rawRequest{method: "GET", path: path, as: &ally})
		if resp.status != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.status, resp.body)
		}
		var p listPage
		if err := xml.Unmarshal(resp.body, &p); err != nil {
			t.Fatal(err)
		}
		return resp, p
	}
	walk := func(t *testing.T, kind, delimiter string) result {
		var r result
		next, nextVersion := "", ""
		for {
			path := "/reg?max-keys=1&delimiter=" + delimiter
			switch kind {
			case "v1":
				path += "&marker=" + urlQuery(next)
			case "v2":
				path += "&list-type=2"
				if next != "" {
					path += "&continuation-token=" + urlQuery(next)
				}
			case "versions":
				path = "/reg?versions&max-keys=1&delimiter=" + delimiter + "&key-marker=" + urlQuery(next)
				if nextVersion != "" {
					path += "&version-id-marker=" + nextVersion
				}
			}
			resp, p := page(t, path)
			r.pages++
			r.bodies = append(r.bodies, string(resp.body))
			got := append(append(append(p.Keys(), p.Prefixes()...), p.VersionKeys()...), p.MarkerKeys()...)
			if len(got) == 0 {
				r.empty++
			}
			r.names = append(r.names, got...)
			if !p.IsTruncated {
				return r
			}
			switch kind {
			case "v1":
				next = p.NextMarker
				if next == "" && len(p.Contents) > 0 {
					next = p.Contents[len(p.Contents)-1].Key
				}
			case "v2":
				next = p.NextContinuationToken
			case "versions":
				next, nextVersion = p.NextKeyMarker, p.NextVersionIDMarker
			}
			if next == "" {
				t.Fatalf("%s: a truncated page gives nothing to continue from:\n%s", kind, resp.body)
			}
			if r.pages > 400 {
				t.Fatalf("%s: paging does not end", kind)
			}
		}
	}
	for _, kind := range []string{"v1", "v2", "versions"} {
		for _, delim := range []string{"", "/"} {
			t.Run(kind+"/delimiter="+delim, func(t *testing.T) {
				r := walk(t, kind, delim)
				for _, b := range r.bodies {
					b := sealedToken.ReplaceAllString(b, "TOKEN")
					if strings.Contains(b, "secret") || strings.Contains(b, "h/") || strings.Contains(b, "b-") {
						t.Fatalf("a response names a hidden key or prefix:\n%s", b)
					}
				}
				want := visible
				if delim == "/" {
					want = []string{"a-shown", "m/", "q/", "z-shown"}
				}
				if !slices.Equal(r.names, want) {
					t.Errorf("listed %v, want %v", r.names, want)
				}
				if r.empty == 0 {
					t.Errorf("no page came back empty: the scan was not bounded (%d pages)", r.pages)
				}
			})
		}
	}
	// A sealed position works for its own listing only.
	_, p := page(t, "/reg?list-type=2&max-keys=1")
	tok := p.NextContinuationToken
	if !strings.HasPrefix(tok, "embassy-cursor-1.") {
		t.Fatalf("continuation token %q is not sealed", tok)
	}
	for name, rr := range map[string]rawRequest{
		"another principal": {method: "GET", path: "/reg?list-type=2&continuation-token=" + urlQuery(tok), as: ptr(rolesCred("reader"))},
		"another prefix":    {method: "GET", path: "/reg?list-type=2&prefix=m/&continuation-token=" + urlQuery(tok), as: &ally},
		"altered":           {method: "GET", path: "/reg?list-type=2&continuation-token=" + urlQuery(tok[:len(tok)-2]+"AA"), as: &ally},
		"a plain key":       {method: "GET", path: "/reg?list-type=2&continuation-token=b-secret-05", as: &ally},
	} {
		resp := h.do(rr)
		if resp.status != 400 || !bytes.Contains(resp.body, []byte("InvalidArgument")) {
			t.Errorf("%s: %d %s, want 400 InvalidArgument", name, resp.status, resp.body)
		}
	}
}

// listPage decodes any of the listing results.
type listPage struct {
	IsTruncated           bool
	NextMarker            string
	NextContinuationToken string
	NextKeyMarker         string
	NextVersionIDMarker   string `xml:"NextVersionIdMarker"`
	Contents              []struct{ Key string }
	CommonPrefixes        []struct{ Prefix string }
	Version               []struct{ Key string }
	DeleteMarker          []struct{ Key string }
}

func (p listPage) Keys() (out []string) {
	for _, c := range p.Contents {
		out = append(out, c.Key)
	}
	return out
}

func (p listPage) Prefixes() (out []string) {
	for _, c := range p.CommonPrefixes {
		out = append(out, c.Prefix)
	}
	return out
}

func (p listPage) VersionKeys() (out []string) {
	for _, c := range p.Version {
		out = append(out, c.Key)
	}
	return out
}

func (p listPage) MarkerKeys() (out []string) {
	for _, c := range p.DeleteMarker {
		out = append(out, c.Key)
	}
	return out
}

func urlQuery(s string) string { return url.QueryEscape(s) }

var sealedToken = regexp.MustCompile(`embassy-cursor-1\.[A-Za-z0-9_-]+`)

// TestAttackWideningIsLowering: a copy whose label lets more nations read
// the data than could read the source — REL TO added to a label without
// one, an unlabelled object given a REL TO label, a nation added in a vault
// of another owner — is lowering the label, and needs two custodians (this
// node has none, so it is refused). Narrowing copies go through.
func TestAttackWideningIsLowering(t *testing.T) {
	h := newRolesHarness(t)
	ctx := context.Background()
	if err := h.n.AddVault(node.VaultConfig{Name: "lux-share", Owner: "LUX", Erasure: "4+2"}); err != nil {
		t.Fatal(err)
	}
	put := func(key, l string) {
		t.Helper()
		if _, err := h.n.Engine.Put(h.as("admin"), "reg", key, strings.NewReader("national secret"), vault.PutOptions{Size: 15, Label: l}); err != nil {
			t.Fatal(err)
		}
	}
	put("national", "NATO SECRET")
	put("plain", "")
	put("shared", rolesLabel)
	cases := []struct {
		who, src, dstBucket, dstKey, label string
	}{
		{"writer", "national", "reg", "leak-1", "NATO SECRET//REL TO EST, LUX"},
		{"writer", "plain", "reg", "leak-2", "NATO UNCLASSIFIED//REL TO EST, LUX"},
		{"writer", "national", "reg", "leak-3", "NATO RESTRICTED"},
		{"ally", "shared", "lux-share", "leak-4", "NATO CONFIDENTIAL//REL TO EST, LUX, USA"},
		{"writer", "shared", "lux-share", "leak-5", ""}, // another owner's vault: the nationality refuses
	}
	for _, tc := range cases {
		t.Run(tc.dstKey, func(t *testing.T) {
			before := h.snapshot(tc.dstBucket, tc.dstKey)
			_, err := h.client(rolesCred(tc.who)).CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String(tc.dstBucket), Key: aws.String(tc.dstKey),
				CopySource: aws.String("reg/" + tc.src)}, withLabel(tc.label))
			if errStatus(err) != http.StatusForbidden {
				t.Fatalf("widening copy: %v, want 403", err)
			}
			before.same(t, h.snapshot(tc.dstBucket, tc.dstKey))
			if _, err := h.n.Engine.Stat(vault.AsSystem(ctx), tc.dstBucket, tc.dstKey, manifest.ID{}); err == nil {
				t.Fatal("the copy exists")
			}
		})
	}
	// Narrowing: a higher classification, REL TO dropped, an unlabelled
	// object labelled for nationals only, the ally's copy into its own
	// nation's vault under the same release.
	for _, tc := range []struct{ who, src, bucket, key, label string }{
		{"writer", "shared", "reg", "narrow-1", "NATO SECRET//REL TO EST, LUX"},
		{"writer", "shared", "reg", "narrow-2", "NATO CONFIDENTIAL"},
		{"writer", "plain", "reg", "narrow-3", "NATO RESTRICTED"},
		{"ally", "shared", "lux-share", "narrow-4", ""},
	} {
		if _, err := h.client(rolesCred(tc.who)).CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String(tc.bucket), Key: aws.String(tc.key),
			CopySource: aws.String("reg/" + tc.src)}, withLabel(tc.label)); err != nil {
			t.Errorf("%s: %v", tc.key, err)
		}
	}
}

// TestAttackPresignedHeadersSigned: whoever holds a presigned PUT or
// CreateBucket cannot add x-embassy-* headers the signer did not sign — a
// label of their choosing, an erasure code — and nothing is written. A
// presigned URL that signs the header works.
func TestAttackPresignedHeadersSigned(t *testing.T) {
	h := newRolesHarness(t)
	cred := rolesCred("operator")
	presign := func(method, path string, header http.Header) string {
		t.Helper()
		req, _ := http.NewRequest(method, h.url+path+"?X-Amz-Expires=300", nil)
		for k, v := range header {
			req.Header[k] = v
		}
		signed, _, err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).
			PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: cred.AccessKey, SecretAccessKey: cred.SecretKey}, req, "UNSIGNED-PAYLOAD", "s3", region, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	send := func(method, u string, header http.Header, body string) rawResponse {
		t.Helper()
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		for k, v := range header {
			req.Header[k] = v
		}
		return h.send(req)
	}
	before := h.snapshot("reg", "leaked")
	u := presign("PUT", "/reg/leaked", nil)
	r := send("PUT", u, http.Header{"X-Embassy-Label": {"NATO UNCLASSIFIED//REL TO EST, LUX, USA"}}, "secret text")
	r.wantError(t, "AccessDenied", http.StatusForbidden)
	if !bytes.Contains(r.body, []byte("x-embassy-label")) {
		t.Errorf("the refusal does not name the unsigned header: %s", r.body)
	}
	before.same(t, h.snapshot("reg", "leaked"))

	u = presign("PUT", "/weak-bucket", nil)
	send("PUT", u, http.Header{"X-Embassy-Erasure": {"1+0"}}, "").wantError(t, "AccessDenied", http.StatusForbidden)
	if _, err := h.n.Engine.Vault("weak-bucket"); err == nil {
		t.Fatal("the bucket was created")
	}
	before.same(t, h.snapshot("", ""))

	// Signed by the presigner, the label is the presigner's choice.
	hdr := http.Header{"X-Embassy-Label": {rolesLabel}}
	u = presign("PUT", "/reg/labelled", hdr)
	if r := send("PUT", u, hdr, "text"); r.status != 200 {
		t.Fatalf("a presigned PUT with its label signed: %d %s", r.status, r.body)
	}
}

// TestAttackPlacementErrorsAreGeneric: when no placement is possible, a
// client that is not an operator of the bucket learns only that; the site
// ids, providers and jurisdictions are in the log, and an operator sees them.
func TestAttackPlacementErrorsAreGeneric(t *testing.T) {
	h := newRolesHarness(t)
	for _, id := range []string{"est-1", "est-2", "lux-1", "lux-2", "fin-1"} {
		h.n.Engine.SetSiteDown(id, time.Minute)
	}
	put := func(who string) rawResponse {
		return h.do(rawRequest{method: "PUT", path: "/reg/refused-" + who, body: []byte("data"), as: ptr(rolesCred(who))})
	}
	r := put("writer")
	r.wantError(t, "ServiceUnavailable", http.StatusServiceUnavailable)
	for _, leak := range []string{"est-", "lux-", "fin-", "gov-dc", "cloudco", "EST", "LUX", "FIN", "jurisdiction", "provider"} {
		if bytes.Contains(r.body, []byte(leak)) {
			t.Errorf("a writer is told %q:\n%s", leak, r.body)
		}
	}
	if r := put("operator"); !bytes.Contains(r.body, []byte("fin-2")) {
		t.Errorf("an operator is not told why:\n%s", r.body)
	}
	// The two 503s were logged as failures, as they should be.
	h.mu.Lock()
	h.failed = nil
	h.mu.Unlock()
}

// TestUploadCompletesWithItsCode: a labelled multipart upload of a single
// part, started under one erasure code, is completed after the vault's
// policy changed to another. It is acknowledged under the code recorded at
// its creation and reads back, with its label; a put after the change uses
// the new code (so the policy did change).
func TestUploadCompletesWithItsCode(t *testing.T) {
	h := newRolesHarness(t)
	ctx := context.Background()
	c := h.client(rolesCred("writer"))
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("reg"), Key: aws.String("coded")}, withLabel(rolesLabel))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("a part under 4+2 "), 100_000) // 1.7 MB, two stripes
	p1, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("reg"), Key: aws.String("coded"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	var vc node.VaultConfig
	for _, v := range h.n.Config.Vaults {
		if v.Name == "reg" {
			vc = v
		}
	}
	if vc.Erasure != "4+2" {
		t.Fatalf("the fixture's vault reg is %q, want 4+2", vc.Erasure)
	}
	vc.Erasure = "2+4" // stronger: applies at once
	if err := h.n.SetVaultPolicy(vault.AsSystem(ctx), "reg", vc); err != nil {
		t.Fatal(err)
	}
	done, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String("reg"), Key: aws.String("coded"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: p1.ETag}}}})
	if err != nil {
		t.Fatalf("completing a single-part labelled upload after a policy change: %v", err)
	}
	out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("reg"), Key: aws.String("coded")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the completed object reads back %d bytes (%v), want its %d", len(got), err, len(data))
	}
	info, err := h.n.Engine.Stat(vault.AsSystem(ctx), "reg", "coded", mustID(t, aws.ToString(done.VersionId)))
	if err != nil || info.K != 4 || info.M != 2 || info.Label != rolesLabel {
		t.Fatalf("completed as %d+%d, label %q (%v); want the recorded 4+2 and %q", info.K, info.M, info.Label, err, rolesLabel)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("reg"), Key: aws.String("after"), Body: strings.NewReader("after")}, withLabel(rolesLabel)); err != nil {
		t.Fatal(err)
	}
	if after, err := h.n.Engine.Stat(vault.AsSystem(ctx), "reg", "after", manifest.ID{}); err != nil || after.K != 2 || after.M != 4 {
		t.Fatalf("a put after the change: %d+%d (%v), want 2+4", after.K, after.M, err)
	}
}
