package s3_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/embassy-dev/embassy/manifest"
)

// deleteVersion deletes one version as c, with or without the governance
// bypass.
func deleteVersion(t *testing.T, c *awss3.Client, bucket, key, id string, bypass bool) error {
	t.Helper()
	in := &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(id)}
	if bypass {
		in.BypassGovernanceRetention = aws.Bool(true)
	}
	_, err := c.DeleteObject(t.Context(), in)
	return err
}

func retention(t *testing.T, h *harness, bucket, key, id string) (types.ObjectLockRetentionMode, time.Time) {
	t.Helper()
	out, err := h.sdk.GetObjectRetention(t.Context(), &awss3.GetObjectRetentionInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(id)})
	if err != nil {
		t.Fatalf("get retention: %v", err)
	}
	return out.Retention.Mode, aws.ToTime(out.Retention.RetainUntilDate)
}

func setRetention(t *testing.T, c *awss3.Client, bucket, key, id string, mode types.ObjectLockRetentionMode, until time.Time, bypass bool) error {
	t.Helper()
	in := &awss3.PutObjectRetentionInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(id),
		Retention: &types.ObjectLockRetention{Mode: mode, RetainUntilDate: aws.Time(until)}}
	if bypass {
		in.BypassGovernanceRetention = aws.Bool(true)
	}
	_, err := c.PutObjectRetention(t.Context(), in)
	return err
}

func TestObjectRetention(t *testing.T) {
	h := newHarness(t)
	h.lockedBucket("locked")
	ctx := t.Context()
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)

	t.Run("no retention yet", func(t *testing.T) {
		id := h.put("locked", "plain", []byte("x"))
		_, err := h.sdk.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: aws.String("locked"), Key: aws.String("plain"), VersionId: aws.String(id)})
		wantAPIError(t, err, "NoSuchObjectLockConfiguration", 404)
		// Without retention or hold a version in a locked bucket can go.
		if err := deleteVersion(t, h.sdk, "locked", "plain", id, false); err != nil {
			t.Errorf("delete unretained version: %v", err)
		}
	})

	t.Run("compliance", func(t *testing.T) {
		id := h.put("locked", "compliance", []byte("kept"))
		if err := setRetention(t, h.sdk, "locked", "compliance", id, types.ObjectLockRetentionModeCompliance, until, false); err != nil {
			t.Fatal(err)
		}
		mode, got := retention(t, h, "locked", "compliance", id)
		if mode != types.ObjectLockRetentionModeCompliance || !got.Equal(until) {
			t.Errorf("retention %s %v, want COMPLIANCE %v", mode, got, until)
		}
		for _, c := range []struct {
			name   string
			client *awss3.Client
		}{{"alice", h.sdk}, {"bob", h.sdkBob}} {
			for _, bypass := range []bool{false, true} {
				err := deleteVersion(t, c.client, "locked", "compliance", id, bypass)
				wantAPIError(t, err, "AccessDenied", 403)
			}
			out, err := c.client.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("locked"), BypassGovernanceRetention: aws.Bool(true),
				Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("compliance"), VersionId: aws.String(id)}}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Errors) != 1 || aws.ToString(out.Errors[0].Code) != "AccessDenied" || len(out.Deleted) != 0 {
				t.Errorf("%s: DeleteObjects of a COMPLIANCE version: deleted %+v errors %+v", c.name, out.Deleted, out.Errors)
			}
			// Shortening, removing or weakening is refused, bypass or not.
			for _, bypass := range []bool{false, true} {
				wantAPIError(t, setRetention(t, c.client, "locked", "compliance", id, types.ObjectLockRetentionModeCompliance, until.Add(-time.Minute), bypass), "AccessDenied", 403)
				wantAPIError(t, setRetention(t, c.client, "locked", "compliance", id, types.ObjectLockRetentionModeGovernance, until, bypass), "AccessDenied", 403)
			}
		}
		// Extending is allowed.
		longer := until.Add(time.Hour)
		if err := setRetention(t, h.sdkBob, "locked", "compliance", id, types.ObjectLockRetentionModeCompliance, longer, false); err != nil {
			t.Errorf("extend COMPLIANCE retention: %v", err)
		}
		if _, got := retention(t, h, "locked", "compliance", id); !got.Equal(longer) {
			t.Errorf("retain-until %v after extension, want %v", got, longer)
		}
		// A delete marker may hide the version; the version stays.
		if _, err := h.sdk.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("locked"), Key: aws.String("compliance")}); err != nil {
			t.Errorf("delete marker over a retained version: %v", err)
		}
		out, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("locked"), Key: aws.String("compliance"), VersionId: aws.String(id)})
		if err != nil {
			t.Fatalf("retained version after delete marker: %v", err)
		}
		out.Body.Close()
		if out.ObjectLockMode != types.ObjectLockModeCompliance || !aws.ToTime(out.ObjectLockRetainUntilDate).Equal(longer) {
			t.Errorf("GET lock headers %s %v", out.ObjectLockMode, aws.ToTime(out.ObjectLockRetainUntilDate))
		}
		// The bucket cannot be deleted while it holds the version.
		_, err = h.sdk.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("locked")})
		wantAPIError(t, err, "BucketNotEmpty", 409)
	})

	t.Run("governance", func(t *testing.T) {
		id := h.put("locked", "governance", []byte("kept unless bypassed"))
		if err := setRetention(t, h.sdk, "locked", "governance", id, types.ObjectLockRetentionModeGovernance, until, false); err != nil {
			t.Fatal(err)
		}
		wantAPIError(t, deleteVersion(t, h.sdkBob, "locked", "governance", id, false), "AccessDenied", 403)
		// Shortening needs the bypass.
		wantAPIError(t, setRetention(t, h.sdk, "locked", "governance", id, types.ObjectLockRetentionModeGovernance, until.Add(-time.Minute), false), "AccessDenied", 403)
		if err := setRetention(t, h.sdk, "locked", "governance", id, types.ObjectLockRetentionModeGovernance, until.Add(-time.Minute), true); err != nil {
			t.Errorf("shorten GOVERNANCE with bypass: %v", err)
		}
		// Upgrading to COMPLIANCE changes the lock's settings: as on AWS
		// (and ceph/s3-tests' test_object_lock_changing_mode_from_governance_*),
		// it needs the bypass, though not custodians, since it only
		// strengthens the lock.
		id2 := h.put("locked", "governance", []byte("second"))
		if err := setRetention(t, h.sdk, "locked", "governance", id2, types.ObjectLockRetentionModeGovernance, until, false); err != nil {
			t.Fatal(err)
		}
		wantAPIError(t, setRetention(t, h.sdk, "locked", "governance", id2, types.ObjectLockRetentionModeCompliance, until, false), "AccessDenied", 403)
		if mode, _ := retention(t, h, "locked", "governance", id2); mode != "GOVERNANCE" {
			t.Errorf("mode %s after a refused change to COMPLIANCE, want GOVERNANCE", mode)
		}
		if err := setRetention(t, h.sdk, "locked", "governance", id2, types.ObjectLockRetentionModeCompliance, until, true); err != nil {
			t.Errorf("GOVERNANCE to COMPLIANCE with bypass: %v", err)
		}
		wantAPIError(t, deleteVersion(t, h.sdk, "locked", "governance", id2, true), "AccessDenied", 403)
		// With the bypass the GOVERNANCE version goes (a development node
		// needs no custodians for it).
		if err := deleteVersion(t, h.sdkBob, "locked", "governance", id, true); err != nil {
			t.Fatalf("delete GOVERNANCE version with bypass: %v", err)
		}
		_, err := h.sdk.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("locked"), Key: aws.String("governance"), VersionId: aws.String(id)})
		wantAPIError(t, err, "NoSuchVersion", 404)
	})

	t.Run("legal hold", func(t *testing.T) {
		id := h.put("locked", "held", []byte("evidence"))
		out, err := h.sdk.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: aws.String("locked"), Key: aws.String("held"), VersionId: aws.String(id)})
		if err != nil || out.LegalHold.Status != types.ObjectLockLegalHoldStatusOff {
			t.Fatalf("initial legal hold %+v, %v", out, err)
		}
		hold := func(s types.ObjectLockLegalHoldStatus) {
			t.Helper()
			_, err := h.sdk.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: aws.String("locked"), Key: aws.String("held"), VersionId: aws.String(id),
				LegalHold: &types.ObjectLockLegalHold{Status: s}})
			if err != nil {
				t.Fatalf("legal hold %s: %v", s, err)
			}
		}
		hold(types.ObjectLockLegalHoldStatusOn)
		out, err = h.sdk.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: aws.String("locked"), Key: aws.String("held"), VersionId: aws.String(id)})
		if err != nil || out.LegalHold.Status != types.ObjectLockLegalHoldStatusOn {
			t.Errorf("legal hold %+v, %v, want ON", out, err)
		}
		for _, bypass := range []bool{false, true} {
			wantAPIError(t, deleteVersion(t, h.sdk, "locked", "held", id, bypass), "AccessDenied", 403)
			wantAPIError(t, deleteVersion(t, h.sdkBob, "locked", "held", id, bypass), "AccessDenied", 403)
		}
		head, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("locked"), Key: aws.String("held"), VersionId: aws.String(id)})
		if err != nil || head.ObjectLockLegalHoldStatus != types.ObjectLockLegalHoldStatusOn {
			t.Errorf("HEAD legal hold %q, %v", head.ObjectLockLegalHoldStatus, err)
		}
		hold(types.ObjectLockLegalHoldStatusOff)
		if err := deleteVersion(t, h.sdk, "locked", "held", id, false); err != nil {
			t.Errorf("delete after lifting the hold: %v", err)
		}
		r := h.do(rawRequest{method: "PUT", path: "/locked/held?legal-hold", body: []byte(`<LegalHold><Status>MAYBE</Status></LegalHold>`), as: &alice})
		r.wantError(t, "MalformedXML", 400)
	})

	t.Run("malformed retention", func(t *testing.T) {
		id := h.put("locked", "bad", []byte("x"))
		tests := []struct{ name, body, code string }{
			{"unknown mode", `<Retention><Mode>FOREVER</Mode><RetainUntilDate>2099-01-01T00:00:00Z</RetainUntilDate></Retention>`, "MalformedXML"},
			{"bad date", `<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>tomorrow</RetainUntilDate></Retention>`, "MalformedXML"},
			{"past date", `<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2001-01-01T00:00:00Z</RetainUntilDate></Retention>`, "InvalidArgument"},
			{"date past 9999 in UTC", `<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>9999-12-31T23:59:59-23:59</RetainUntilDate></Retention>`, "InvalidArgument"},
			{"not xml", `<Retention>`, "MalformedXML"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := h.do(rawRequest{method: "PUT", path: "/locked/bad?retention&versionId=" + id, body: []byte(tt.body), as: &alice})
				r.wantError(t, tt.code, 400)
			})
		}
		_, err := h.sdk.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: aws.String("locked"), Key: aws.String("bad"), VersionId: aws.String(id)})
		wantAPIError(t, err, "NoSuchObjectLockConfiguration", 404)
	})
}

func TestLockHeadersOnPut(t *testing.T) {
	h := newHarness(t)
	h.lockedBucket("locked")
	ctx := t.Context()
	until := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	t.Run("put with retention and hold", func(t *testing.T) {
		out, err := h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("locked"), Key: aws.String("k"), Body: strings.NewReader("x"),
			ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(until), ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
		if err != nil {
			t.Fatal(err)
		}
		mode, got := retention(t, h, "locked", "k", aws.ToString(out.VersionId))
		if mode != types.ObjectLockRetentionModeGovernance || !got.Equal(until) {
			t.Errorf("retention %s %v", mode, got)
		}
		wantAPIError(t, deleteVersion(t, h.sdk, "locked", "k", aws.ToString(out.VersionId), true), "AccessDenied", 403)
	})
	t.Run("multipart with retention", func(t *testing.T) {
		u := h.createUpload(t, "locked", "mp", func(in *awss3.CreateMultipartUploadInput) {
			in.ObjectLockMode, in.ObjectLockRetainUntilDate = types.ObjectLockModeCompliance, aws.Time(until)
		})
		out, err := u.complete(u.mustPart(1, []byte("part")))
		if err != nil {
			t.Fatal(err)
		}
		if mode, got := retention(t, h, "locked", "mp", aws.ToString(out.VersionId)); mode != types.ObjectLockRetentionModeCompliance || !got.Equal(until) {
			t.Errorf("retention %s %v", mode, got)
		}
	})
	t.Run("copy with retention", func(t *testing.T) {
		h.put("locked", "src", []byte("copy me"))
		out, err := h.sdk.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("locked"), Key: aws.String("copy"), CopySource: aws.String("locked/src"),
			ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(until)})
		if err != nil {
			t.Fatal(err)
		}
		if mode, _ := retention(t, h, "locked", "copy", aws.ToString(out.VersionId)); mode != types.ObjectLockRetentionModeGovernance {
			t.Errorf("copy retention %s", mode)
		}
	})
	tests := []struct {
		name    string
		headers [][2]string
	}{
		{"unknown mode", [][2]string{{"x-amz-object-lock-mode", "FOREVER"}, {"x-amz-object-lock-retain-until-date", until.Format(time.RFC3339)}}},
		{"mode without date", [][2]string{{"x-amz-object-lock-mode", "GOVERNANCE"}}},
		{"date without mode", [][2]string{{"x-amz-object-lock-retain-until-date", until.Format(time.RFC3339)}}},
		{"date in the past", [][2]string{{"x-amz-object-lock-mode", "GOVERNANCE"}, {"x-amz-object-lock-retain-until-date", "2001-01-01T00:00:00Z"}}},
		{"unparsable date", [][2]string{{"x-amz-object-lock-mode", "GOVERNANCE"}, {"x-amz-object-lock-retain-until-date", "soon"}}},
		// 9999-12-31T23:59:59-23:59 is in the year 10000 UTC, which no
		// manifest can record.
		{"date past 9999 in UTC", [][2]string{{"x-amz-object-lock-mode", "GOVERNANCE"}, {"x-amz-object-lock-retain-until-date", "9999-12-31T23:59:59-23:59"}}},
		{"bad legal hold", [][2]string{{"x-amz-object-lock-legal-hold", "MAYBE"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			for _, kv := range tt.headers {
				hdr.Set(kv[0], kv[1])
			}
			r := h.do(rawRequest{method: "PUT", path: "/locked/refused", body: []byte("x"), header: hdr, as: &alice})
			r.wantError(t, "InvalidArgument", 400)
			if r := h.do(rawRequest{method: "HEAD", path: "/locked/refused", as: &alice}); r.status != 404 {
				t.Errorf("object stored despite refused lock headers: %d", r.status)
			}
		})
	}
}

func TestDefaultRetention(t *testing.T) {
	h := newHarness(t)
	h.lockedBucket("defaults")
	ctx := t.Context()
	before := h.put("defaults", "before", []byte("x"))
	_, err := h.sdk.PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{Bucket: aws.String("defaults"),
		ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled,
			Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeGovernance, Days: aws.Int32(2)}}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := h.sdk.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: aws.String("defaults")})
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.ObjectLockConfiguration.Rule; r == nil || r.DefaultRetention.Mode != types.ObjectLockRetentionModeGovernance || aws.ToInt32(r.DefaultRetention.Days) != 2 {
		t.Errorf("lock configuration rule %+v", r)
	}
	start := time.Now()
	after := h.put("defaults", "after", []byte("y"))
	mode, until := retention(t, h, "defaults", "after", after)
	if mode != types.ObjectLockRetentionModeGovernance {
		t.Errorf("default retention mode %q", mode)
	}
	if lo, hi := start.Add(48*time.Hour-time.Minute), time.Now().Add(48*time.Hour+time.Minute); until.Before(lo) || until.After(hi) {
		t.Errorf("default retain-until %v, want two days from the put", until)
	}
	wantAPIError(t, deleteVersion(t, h.sdk, "defaults", "after", after, false), "AccessDenied", 403)
	// Explicit headers win over the default.
	explicit := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	out, err := h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("defaults"), Key: aws.String("explicit"), Body: bytes.NewReader([]byte("z")),
		ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: aws.Time(explicit)})
	if err != nil {
		t.Fatal(err)
	}
	if mode, until := retention(t, h, "defaults", "explicit", aws.ToString(out.VersionId)); mode != types.ObjectLockRetentionModeCompliance || !until.Equal(explicit) {
		t.Errorf("explicit retention %s %v", mode, until)
	}
	// A version put before the rule has no retention.
	_, err = h.sdk.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: aws.String("defaults"), Key: aws.String("before"), VersionId: aws.String(before)})
	wantAPIError(t, err, "NoSuchObjectLockConfiguration", 404)

	tests := []struct{ name, body, code string }{
		{"days and years", `<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years></DefaultRetention></Rule></ObjectLockConfiguration>`, "MalformedXML"},
		{"neither days nor years", `<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode></DefaultRetention></Rule></ObjectLockConfiguration>`, "InvalidRetentionPeriod"},
		// A default that would date retention past what a manifest can
		// record must be refused when set, not fail every later put.
		{"a hundred million years", `<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Years>99999999</Years></DefaultRetention></Rule></ObjectLockConfiguration>`, "InvalidRetentionPeriod"},
		{"ten billion days", `<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>9999999999</Days></DefaultRetention></Rule></ObjectLockConfiguration>`, "InvalidRetentionPeriod"},
		{"over a hundred years", `<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Years>101</Years></DefaultRetention></Rule></ObjectLockConfiguration>`, "InvalidRetentionPeriod"},
		{"negative days", `<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>-1</Days></DefaultRetention></Rule></ObjectLockConfiguration>`, "InvalidRetentionPeriod"},
		{"zero days", `<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>0</Days></DefaultRetention></Rule></ObjectLockConfiguration>`, "InvalidRetentionPeriod"},
		{"unknown mode", `<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>FOREVER</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>`, "MalformedXML"},
		{"not enabled", `<ObjectLockConfiguration><ObjectLockEnabled>Disabled</ObjectLockEnabled></ObjectLockConfiguration>`, "MalformedXML"},
		{"not xml", `<ObjectLockConfiguration>`, "MalformedXML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(rawRequest{method: "PUT", path: "/defaults?object-lock", body: []byte(tt.body), as: &alice})
			r.wantError(t, tt.code, 400)
		})
	}
	// The refused configurations left the rule as it was, and puts work.
	h.put("defaults", "still-writable", []byte("w"))
	cfg, err = h.sdk.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: aws.String("defaults")})
	if err != nil || cfg.ObjectLockConfiguration.Rule == nil || aws.ToInt32(cfg.ObjectLockConfiguration.Rule.DefaultRetention.Days) != 2 {
		t.Errorf("rule after refused changes: %+v, %v", cfg.ObjectLockConfiguration, err)
	}
}

func TestLockOnBucketWithoutLock(t *testing.T) {
	h := newHarness(t)
	h.bucket("unlocked")
	ctx := t.Context()
	id := h.put("unlocked", "k", []byte("x"))
	until := time.Now().Add(time.Hour)
	tests := []struct {
		name string
		call func() error
	}{
		{"put with retention", func() error {
			_, err := h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("unlocked"), Key: aws.String("r"), Body: strings.NewReader("x"),
				ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(until)})
			return err
		}},
		{"put with legal hold", func() error {
			_, err := h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("unlocked"), Key: aws.String("r"), Body: strings.NewReader("x"),
				ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
			return err
		}},
		{"create upload with retention", func() error {
			_, err := h.sdk.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("unlocked"), Key: aws.String("r"),
				ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: aws.Time(until)})
			return err
		}},
		{"put retention", func() error {
			return setRetention(t, h.sdk, "unlocked", "k", id, types.ObjectLockRetentionModeGovernance, until, false)
		}},
		{"get retention", func() error {
			_, err := h.sdk.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: aws.String("unlocked"), Key: aws.String("k")})
			return err
		}},
		{"put legal hold", func() error {
			_, err := h.sdk.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: aws.String("unlocked"), Key: aws.String("k"),
				LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOn}})
			return err
		}},
		{"get legal hold", func() error {
			_, err := h.sdk.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: aws.String("unlocked"), Key: aws.String("k")})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantAPIError(t, tt.call(), "InvalidRequest", 400)
		})
	}
	if r := h.do(rawRequest{method: "HEAD", path: "/unlocked/r", as: &alice}); r.status != 404 {
		t.Errorf("object stored by a refused put: %d", r.status)
	}
	if err := deleteVersion(t, h.sdk, "unlocked", "k", id, false); err != nil {
		t.Errorf("delete in a bucket without lock: %v", err)
	}
}

// A retain-until date with a fraction of a second is answered to the
// millisecond, never earlier than it is enforced: a client that waits
// until the date it is told and then deletes the version (as
// ceph/s3-tests' clean-up does) must find the retention over. Whole
// seconds, as answered before, were up to a second early.
func TestRetainUntilFraction(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	h.lockedBucket("frac")
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second).Add(750 * time.Millisecond)
	put, err := h.sdk.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("frac"), Key: aws.String("k"), Body: strings.NewReader("x"),
		ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(until)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(put.VersionId)
	check := func(want time.Time) {
		t.Helper()
		if _, got := retention(t, h, "frac", "k", id); !got.Equal(want) {
			t.Errorf("GetObjectRetention: retain until %s, want %s", got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
		head, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("frac"), Key: aws.String("k"), VersionId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToTime(head.ObjectLockRetainUntilDate); !got.Equal(want) {
			t.Errorf("HeadObject: retain until %s, want %s", got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}
	check(until)
	// Raised to COMPLIANCE and extended, with another fraction.
	longer := until.Add(time.Minute + 125*time.Millisecond)
	if err := setRetention(t, h.sdk, "frac", "k", id, types.ObjectLockRetentionModeCompliance, longer, true); err != nil {
		t.Fatal(err)
	}
	check(longer)
}

// manifestCopies returns the paths of the copies of version id's manifest
// on the node's directory sites.
func (h *harness) manifestCopies(t *testing.T, id string) []string {
	t.Helper()
	vid, err := manifest.ParseID(id)
	if err != nil {
		t.Fatal(err)
	}
	suffix := "/" + manifest.BlobName(vid)
	var out []string
	err = filepath.WalkDir(h.root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(filepath.ToSlash(p), suffix) {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestLockOnDamagedInlineCopy: PutObjectLegalHold and PutObjectRetention
// on a small (inline) object one of whose manifest copies is damaged
// succeed: every copy is rewritten from the good ones, the damaged one
// included, and each then verifies, carries the new lock and holds its
// blocks as before. Before, the change failed (500) until a scrub had
// rebuilt the copy.
func TestLockOnDamagedInlineCopy(t *testing.T) {
	h := newHarness(t)
	h.lockedBucket("locked")
	ctx := t.Context()
	body := bytes.Repeat([]byte("inline object "), 150)
	id := h.put("locked", "doc", body)
	copies := h.manifestCopies(t, id)
	if len(copies) < 3 {
		t.Fatalf("%d manifest copies", len(copies))
	}
	tails := map[string][]byte{}
	for _, p := range copies {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		n, err := manifest.EnvelopeLen(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == n {
			t.Fatalf("copy %s holds no blocks: the object is not inline", p)
		}
		tails[p] = b[n:]
	}
	damage := func(p string, f func(b []byte, envLen int) []byte) {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := manifest.EnvelopeLen(b)
		if err := os.WriteFile(p, f(b, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, ok func(*manifest.Lock) bool) {
		t.Helper()
		for _, p := range copies {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			n, err := manifest.EnvelopeLen(b)
			if err != nil || n > len(b) {
				t.Fatalf("after %s: copy %s: %v", what, p, err)
			}
			m, err := h.n.Engine.OpenEnvelope(b[:n])
			if err != nil {
				t.Fatalf("after %s: copy %s: %v", what, p, err)
			}
			if !ok(m.Lock) {
				t.Errorf("after %s: copy %s: lock %+v", what, p, m.Lock)
			}
			if !bytes.Equal(b[n:], tails[p]) {
				t.Errorf("after %s: copy %s: %d bytes of blocks, want its %d as before", what, p, len(b)-n, len(tails[p]))
			}
		}
	}

	damage(copies[0], func(b []byte, n int) []byte { return b[:n-10] })
	_, err := h.sdk.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: aws.String("locked"), Key: aws.String("doc"), VersionId: aws.String(id),
		LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOn}})
	if err != nil {
		t.Fatalf("legal hold with copy %s damaged: %v", copies[0], err)
	}
	check("the legal hold", func(l *manifest.Lock) bool { return l != nil && l.LegalHold })

	damage(copies[1], func(b []byte, _ int) []byte { b[0] = 'X'; return b })
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if err := setRetention(t, h.sdk, "locked", "doc", id, types.ObjectLockRetentionModeGovernance, until, false); err != nil {
		t.Fatalf("retention with copy %s damaged: %v", copies[1], err)
	}
	check("the retention", func(l *manifest.Lock) bool {
		return l != nil && l.LegalHold && l.Mode == "GOVERNANCE" && l.Until.Equal(until)
	})
	if mode, got := retention(t, h, "locked", "doc", id); mode != types.ObjectLockRetentionModeGovernance || !got.Equal(until) {
		t.Errorf("GetObjectRetention: %s until %s, want GOVERNANCE until %s", mode, got, until)
	}
	if got := h.get("locked", "doc"); !bytes.Equal(got, body) {
		t.Errorf("GET after the changes: %d bytes, not the object's %d", len(got), len(body))
	}

	// With fewer good copies than the k blocks needed, the change is
	// refused (503, as a read with too few shards is) and nothing is
	// written: the hold stays on, in the index and on the good copies.
	for _, p := range copies[:3] {
		damage(p, func(b []byte, n int) []byte { return b[:n-10] })
	}
	_, err = h.sdk.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: aws.String("locked"), Key: aws.String("doc"), VersionId: aws.String(id),
		LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOff}})
	wantAPIError(t, err, "ServiceUnavailable", 503)
	// The server logged the failure, naming every damaged copy.
	h.mu.Lock()
	if len(h.failed) != 1 || !strings.Contains(h.failed[0], "damaged copy") || !strings.Contains(h.failed[0], "too few intact shards") {
		t.Errorf("server logged %q, want the refused change naming the damaged copies", h.failed)
	}
	h.failed = nil
	h.mu.Unlock()
	hold, err := h.sdk.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: aws.String("locked"), Key: aws.String("doc"), VersionId: aws.String(id)})
	if err != nil || hold.LegalHold.Status != types.ObjectLockLegalHoldStatusOn {
		t.Errorf("legal hold after a refused change: %+v, %v", hold, err)
	}
	copies = copies[3:]
	check("a refused change", func(l *manifest.Lock) bool { return l != nil && l.LegalHold && l.Mode == "GOVERNANCE" })
}
