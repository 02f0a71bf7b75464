package s3_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// Keys are opaque names: nothing in a key, however much it looks like a
// path, an escape or markup, reaches a filesystem or changes on the way
// back.
var trickyKeys = []string{
	"../../etc/passwd",
	"..",
	".",
	"a//b",
	"/leading-slash",
	"trailing/",
	"dot/./segment",
	"dot/../segment",
	"unicode ü ☃ 日本語",
	"with spaces  and  runs",
	" leading-space",
	"%2F",
	"a%2Fb",
	"%",
	"plus+sign",
	"question?mark",
	"hash#fragment",
	"amp&eq=semi;colon",
	"quote\"apos'",
	"<xml>&amp;</xml>",
	"back\\slash",
	"tab\tinside",
	"tilde~star*",
	strings.Repeat("k", 1024),
}

// encodeKey percent-encodes a key for a request path as the SDKs do:
// every byte but the unreserved characters and '/', once.
func encodeKey(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestTrickyKeys(t *testing.T) {
	h := newHarness(t)
	h.bucket("keys")
	ctx := t.Context()
	before := h.siteFiles()
	for i, key := range trickyKeys {
		body := append([]byte(key), byte(i))
		name := key
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			h.put("keys", key, body)
			if got := h.get("keys", key); !bytes.Equal(got, body) {
				t.Errorf("SDK get: %q, want %q", got, body)
			}
			// A raw request with the key encoded once reaches the same object.
			r := h.do(rawRequest{method: "GET", path: "/keys/" + encodeKey(key), as: &bob})
			if r.status != 200 || !bytes.Equal(r.body, body) {
				t.Errorf("raw get: status %d body %q", r.status, r.body)
			}
			head, err := h.sdk.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("keys"), Key: aws.String(key)})
			if err != nil || aws.ToInt64(head.ContentLength) != int64(len(body)) {
				t.Errorf("head: %v", err)
			}
		})
	}

	t.Run("listed back exactly", func(t *testing.T) {
		var got []string
		p := awss3.NewListObjectsV2Paginator(h.sdk, &awss3.ListObjectsV2Input{Bucket: aws.String("keys"), MaxKeys: aws.Int32(7)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Contents {
				got = append(got, aws.ToString(o.Key))
			}
		}
		want := slices.Clone(trickyKeys)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("listed\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("listed back with encoding-type=url", func(t *testing.T) {
		r := h.do(rawRequest{method: "GET", path: "/keys?list-type=2&encoding-type=url", as: &alice})
		if r.status != 200 {
			t.Fatalf("status %d\n%s", r.status, r.body)
		}
		var res struct {
			EncodingType string `xml:"EncodingType"`
			Contents     []struct {
				Key string `xml:"Key"`
			} `xml:"Contents"`
		}
		if err := xml.Unmarshal(r.body, &res); err != nil {
			t.Fatal(err)
		}
		if res.EncodingType != "url" {
			t.Errorf("EncodingType %q", res.EncodingType)
		}
		var got []string
		for _, c := range res.Contents {
			if strings.ContainsAny(c.Key, " \t<>&\"'?#%") && !strings.HasPrefix(c.Key, "%") && strings.Count(c.Key, "%") == 0 {
				t.Errorf("key %q not encoded", c.Key)
			}
			k, err := url.PathUnescape(c.Key)
			if err != nil {
				t.Fatalf("encoded key %q: %v", c.Key, err)
			}
			got = append(got, k)
		}
		want := slices.Clone(trickyKeys)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("listed\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("nothing written outside the sites", func(t *testing.T) {
		after := h.siteFiles()
		old := map[string]bool{}
		for _, f := range before {
			old[f] = true
		}
		for _, f := range after {
			if old[f] {
				continue
			}
			parts := strings.Split(filepath.ToSlash(f), "/")
			// The node's audit log grows with every write; its files
			// are named by numbers only.
			if (len(parts) < 4 || parts[0] != "node" || parts[1] != "sites") && !(len(parts) > 2 && parts[0] == "node" && parts[1] == "audit") {
				t.Errorf("new file outside the site directories: %s", f)
			}
			for _, frag := range []string{"passwd", "etc", "unicode", "日本", "leading", "question", "xml"} {
				if strings.Contains(f, frag) {
					t.Errorf("site file %s carries a piece of an object name (%q)", f, frag)
				}
			}
		}
		if len(after) <= len(before) {
			t.Errorf("no new site files after %d puts", len(trickyKeys))
		}
	})
}

func TestKeyLimits(t *testing.T) {
	h := newHarness(t)
	h.bucket("limits")
	tests := []struct {
		name   string
		path   string
		code   string
		status int
	}{
		{"key too long", "/limits/" + strings.Repeat("k", 1025), "KeyTooLongError", 400},
		// S3 answers InvalidURI for a key that is not UTF-8.
		{"invalid utf-8", "/limits/bad%FFutf8", "InvalidURI", 400},
		{"nul byte", "/limits/nul%00byte", "InvalidURI", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{"PUT", "DELETE", "POST"} {
				path := tt.path
				if method == "POST" {
					path += "?uploads"
				}
				r := h.do(rawRequest{method: method, path: path, body: []byte("x"), as: &alice})
				r.wantError(t, tt.code, tt.status)
			}
		})
	}
	t.Run("in DeleteObjects", func(t *testing.T) {
		h.put("limits", "fine", []byte("x"))
		body := "<Delete><Object><Key>" + strings.Repeat("k", 1025) + "</Key></Object><Object><Key></Key></Object><Object><Key>fine</Key></Object></Delete>"
		r := h.do(rawRequest{method: "POST", path: "/limits?delete", body: []byte(body), header: http.Header{"Content-Md5": {md5b64([]byte(body))}}, as: &alice})
		if r.status != 200 {
			t.Fatalf("status %d\n%s", r.status, r.body)
		}
		var res struct {
			Deleted []struct{ Key string }
			Error   []struct{ Key, Code string }
		}
		if err := xml.Unmarshal(r.body, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Deleted) != 1 || res.Deleted[0].Key != "fine" {
			t.Errorf("deleted %+v, want fine only", res.Deleted)
		}
		codes := map[int]string{}
		for _, e := range res.Error {
			codes[len(e.Key)] = e.Code
		}
		if codes[1025] != "KeyTooLongError" || codes[0] != "InvalidArgument" || len(codes) != 2 {
			t.Errorf("per-key errors %+v, want KeyTooLongError and InvalidArgument", res.Error)
		}
		// Clean up the marker so that the check below sees only refusals.
		vs, err := h.sdk.ListObjectVersions(t.Context(), &awss3.ListObjectVersionsInput{Bucket: aws.String("limits")})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs.Versions {
			h.sdk.DeleteObject(t.Context(), &awss3.DeleteObjectInput{Bucket: aws.String("limits"), Key: v.Key, VersionId: v.VersionId})
		}
		for _, v := range vs.DeleteMarkers {
			h.sdk.DeleteObject(t.Context(), &awss3.DeleteObjectInput{Bucket: aws.String("limits"), Key: v.Key, VersionId: v.VersionId})
		}
	})
	// Nothing was stored, not even a delete marker.
	vs, err := h.sdk.ListObjectVersions(t.Context(), &awss3.ListObjectVersionsInput{Bucket: aws.String("limits")})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Versions)+len(vs.DeleteMarkers) != 0 {
		t.Errorf("refused requests left %d versions and %d markers", len(vs.Versions), len(vs.DeleteMarkers))
	}
}
