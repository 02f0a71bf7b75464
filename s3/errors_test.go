package s3_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// Every refusal is an S3 error document (Code, Message, Resource,
// RequestId) whose RequestId is the x-amz-request-id header; a HEAD
// refusal has the status and headers but no body. (A HEAD with uploadId
// is a HEAD of the object, not ListParts.)
func TestErrorDocuments(t *testing.T) {
	h := newHarness(t)
	h.bucket("docs")
	h.put("docs", "small", []byte("tiny"))
	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		anon     bool
		header   http.Header
		code     string
		status   int
		resource string
	}{
		{name: "no such bucket", method: "GET", path: "/nobucket/k", code: "NoSuchBucket", status: 404, resource: "/nobucket/k"},
		{name: "no such key", method: "GET", path: "/docs/absent", code: "NoSuchKey", status: 404, resource: "/docs/absent"},
		{name: "no such key, encoded", method: "GET", path: "/docs/a%20b%3Fc", code: "NoSuchKey", status: 404, resource: "/docs/a b?c"},
		{name: "invalid range", method: "GET", path: "/docs/small", header: http.Header{"Range": {"bytes=100-"}}, code: "InvalidRange", status: 416, resource: "/docs/small"},
		{name: "precondition", method: "GET", path: "/docs/small", header: http.Header{"If-Match": {`"nope"`}}, code: "PreconditionFailed", status: 412, resource: "/docs/small"},
		{name: "method not allowed", method: "PATCH", path: "/docs/small", code: "MethodNotAllowed", status: 405, resource: "/docs/small"},
		{name: "method not allowed on the service", method: "DELETE", path: "/", code: "MethodNotAllowed", status: 405, resource: "/"},
		{name: "malformed xml", method: "PUT", path: "/docs?versioning", body: "<Versioning", code: "MalformedXML", status: 400, resource: "/docs"},
		{name: "not implemented", method: "PUT", path: "/docs/small?tagging", body: "<Tagging/>", code: "NotImplemented", status: 501, resource: "/docs/small"},
		{name: "bucket not empty", method: "DELETE", path: "/docs", code: "BucketNotEmpty", status: 409, resource: "/docs"},
		{name: "anonymous", method: "GET", path: "/docs/small", anon: true, code: "AccessDenied", status: 403, resource: "/docs/small"},
		{name: "no such upload", method: "GET", path: "/docs/small?uploadId=nope", code: "NoSuchUpload", status: 404, resource: "/docs/small"},
	}
	ids := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := rawRequest{method: tt.method, path: tt.path, body: []byte(tt.body), header: tt.header, as: &alice}
			if tt.anon {
				rr.as = nil
			}
			r := h.do(rr)
			d := r.wantError(t, tt.code, tt.status)
			if ct := r.header.Get("Content-Type"); ct != "application/xml" {
				t.Errorf("Content-Type %q, want application/xml", ct)
			}
			if !bytes.HasPrefix(r.body, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
				t.Errorf("no XML declaration: %.60s", r.body)
			}
			if d.Message == "" {
				t.Errorf("empty Message")
			}
			if d.Resource != tt.resource {
				t.Errorf("Resource %q, want %q", d.Resource, tt.resource)
			}
			if d.RequestID == "" || d.RequestID != r.header.Get("x-amz-request-id") {
				t.Errorf("RequestId %q, header x-amz-request-id %q", d.RequestID, r.header.Get("x-amz-request-id"))
			}
			if ids[d.RequestID] {
				t.Errorf("RequestId %s reused", d.RequestID)
			}
			ids[d.RequestID] = true
			if strings.Contains(string(r.body), "InternalError") {
				t.Errorf("body mentions InternalError: %s", r.body)
			}
			if tt.method == "GET" && !strings.Contains(tt.path, "uploadId") {
				// The same refusal to a HEAD: status and headers, no body.
				rr.method = "HEAD"
				hr := h.do(rr)
				if hr.status != tt.status {
					t.Errorf("HEAD status %d, want %d", hr.status, tt.status)
				}
				if len(hr.body) != 0 {
					t.Errorf("HEAD error body %q", hr.body)
				}
				if hr.header.Get("x-amz-request-id") == "" {
					t.Errorf("HEAD error without x-amz-request-id")
				}
			}
		})
	}
}
