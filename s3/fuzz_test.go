package s3_test

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// xmlEndpoint is an endpoint that parses an XML request body.
type xmlEndpoint struct {
	name   string
	method string
	path   func(*fuzzTarget) string
	seeds  []string
}

// fuzzTarget is the state the endpoints act on: a plain bucket, a bucket
// with object lock holding one version, and an open multipart upload.
type fuzzTarget struct {
	h        *harness
	handler  http.Handler
	uploadID string
	version  string
}

var xmlEndpoints = []xmlEndpoint{
	{"DeleteObjects", "POST", func(*fuzzTarget) string { return "/fuzz?delete" }, []string{
		`<Delete><Object><Key>a</Key></Object></Delete>`,
		`<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet><Object><Key>a</Key><VersionId>0123</VersionId></Object><Object><Key>b/c</Key></Object></Delete>`,
		`<Delete><Object><Key></Key></Object></Delete>`,
	}},
	{"CompleteMultipartUpload", "POST", func(f *fuzzTarget) string { return "/fuzz/mp?uploadId=" + f.uploadID }, []string{
		`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag></Part></CompleteMultipartUpload>`,
		`<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><PartNumber>2</PartNumber><ETag>x</ETag></Part><Part><PartNumber>1</PartNumber><ETag>y</ETag></Part></CompleteMultipartUpload>`,
	}},
	{"PutBucketVersioning", "PUT", func(*fuzzTarget) string { return "/fuzz?versioning" }, []string{
		`<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>`,
		`<VersioningConfiguration><Status>Suspended</Status><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>`,
	}},
	{"PutObjectLockConfiguration", "PUT", func(*fuzzTarget) string { return "/fuzzlock?object-lock" }, []string{
		`<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>`,
		`<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>`,
		`<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>99999999</Years></DefaultRetention></Rule></ObjectLockConfiguration>`,
	}},
	{"PutObjectRetention", "PUT", func(f *fuzzTarget) string { return "/fuzzlock/obj?retention&versionId=" + f.version }, []string{
		`<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2099-01-01T00:00:00Z</RetainUntilDate></Retention>`,
		`<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>COMPLIANCE</Mode><RetainUntilDate>2099-01-01T00:00:00.000Z</RetainUntilDate></Retention>`,
		`<Retention></Retention>`,
	}},
	{"PutObjectLegalHold", "PUT", func(f *fuzzTarget) string { return "/fuzzlock/obj?legal-hold&versionId=" + f.version }, []string{
		`<LegalHold><Status>ON</Status></LegalHold>`,
		`<LegalHold xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>OFF</Status></LegalHold>`,
	}},
	{"CreateBucket", "PUT", func(*fuzzTarget) string { return "/fuzznew" }, []string{
		`<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>`,
		`<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>`,
	}},
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	h := newHarness(f)
	h.bucket("fuzz")
	h.lockedBucket("fuzzlock")
	fx := &fuzzTarget{h: h, handler: h.srv.Config.Handler, version: h.put("fuzzlock", "obj", []byte("x"))}
	out, err := h.sdk.CreateMultipartUpload(f.Context(), &awss3.CreateMultipartUploadInput{Bucket: aws.String("fuzz"), Key: aws.String("mp")})
	if err != nil {
		f.Fatal(err)
	}
	fx.uploadID = aws.ToString(out.UploadId)
	return fx
}

// FuzzXMLBodies sends arbitrary bodies to every endpoint that parses XML:
// the server must never panic, never answer 500, every refusal must be an
// S3 error document, and after any accepted document the vaults must still
// take writes.
func FuzzXMLBodies(f *testing.F) {
	fx := newFuzzTarget(f)
	for i, e := range xmlEndpoints {
		for _, s := range e.seeds {
			f.Add(uint8(i), []byte(s))
		}
		f.Add(uint8(i), []byte(""))
		f.Add(uint8(i), []byte("<"))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		e := xmlEndpoints[int(which)%len(xmlEndpoints)]
		req := httptest.NewRequest(e.method, "http://embassy.test"+e.path(fx), bytes.NewReader(body))
		sign(t, req, alice, "UNSIGNED-PAYLOAD", time.Now())
		w := httptest.NewRecorder()
		fx.handler.ServeHTTP(w, req)
		if w.Code >= 500 && w.Code != http.StatusNotImplemented {
			t.Fatalf("%s answered %d to %q:\n%s", e.name, w.Code, body, w.Body)
		}
		if w.Code >= 300 {
			var d errorDoc
			if err := xml.Unmarshal(w.Body.Bytes(), &d); err != nil || d.Code == "" || d.RequestID == "" {
				t.Fatalf("%s answered %d without an error document (%v):\n%s", e.name, w.Code, err, w.Body)
			}
		}
		// A document the server accepted must leave the vaults writable:
		// a configuration that breaks every later put is a failure too.
		if w.Code == http.StatusOK {
			for _, path := range []string{"/fuzzlock/probe", "/fuzz/probe"} {
				req := httptest.NewRequest("PUT", "http://embassy.test"+path, bytes.NewReader([]byte("probe")))
				sign(t, req, alice, "UNSIGNED-PAYLOAD", time.Now())
				pw := httptest.NewRecorder()
				fx.handler.ServeHTTP(pw, req)
				if pw.Code != http.StatusOK {
					t.Fatalf("after %s accepted %q, PUT %s answered %d:\n%s", e.name, body, path, pw.Code, pw.Body)
				}
			}
		}
		// The server's error log must stay empty too.
		fx.h.mu.Lock()
		failed := fx.h.failed
		fx.h.failed = nil
		fx.h.mu.Unlock()
		if len(failed) > 0 {
			t.Fatalf("%s logged a failure for %q: %v", e.name, body, failed)
		}
	})
}
