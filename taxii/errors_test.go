package taxii_test

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/taxii"
)

// TestProtocolErrors: the media types, sizes and transport TAXII 2.1
// prescribes, each refused with its HTTP code and an error resource.
func TestProtocolErrors(t *testing.T) {
	h := newHarness(t, harnessOptions{edit: func(c *node.Config) { c.TAXII.MaxContentLength = 4096 }})
	env := objectsOf(indicator(1, day, taxii.TLP2Green))
	cases := []struct {
		name   string
		method string
		path   string
		body   []byte
		edit   func(*http.Request)
		status int
		says   string
	}{
		{"accept JSON", "GET", objectsPath, nil, func(r *http.Request) { r.Header.Set("Accept", "application/json") }, 406, "application/taxii+json;version=2.1"},
		{"accept TAXII 2.0", "GET", taxii.Prefix, nil, func(r *http.Request) { r.Header.Set("Accept", "application/taxii+json;version=2.0") }, 406, "Accept"},
		{"content type JSON", "POST", objectsPath, env, func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }, 415, "send an envelope as"},
		{"content type STIX", "POST", objectsPath, env, func(r *http.Request) { r.Header.Set("Content-Type", taxii.MediaSTIX) }, 415, "send an envelope as"},
		{"too large", "POST", objectsPath, bytes.Repeat([]byte(" "), 5000), nil, 413, "max_content_length 4096"},
		{"too large, chunked", "POST", objectsPath, nil, func(r *http.Request) {
			r.Body = readerCloser{strings.NewReader(`{"objects":[` + strings.Repeat(" ", 5000) + `]}`)}
			r.ContentLength = -1
			r.Header.Set("Content-Type", taxii.MediaTAXII)
		}, 413, "max_content_length"},
		{"not an envelope", "POST", objectsPath, []byte(`[1,2]`), nil, 400, "not a JSON object"},
		{"no such collection", "GET", root + "collections/nope/objects/", nil, nil, 404, "no collection"},
		{"no such api root", "GET", taxii.Prefix + "other/collections/", nil, nil, 404, "no TAXII resource"},
		{"method", "PUT", objectsPath, nil, nil, 405, "not allowed"},
		{"not an object id", "GET", objectsPath + "nope/", nil, nil, 404, "not a STIX identifier"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var edits []func(*http.Request)
			if c.edit != nil {
				edits = append(edits, c.edit)
			}
			r := h.do(c.method, c.path, "analyst", c.body, edits...)
			if r.status != c.status || !strings.Contains(string(r.body), c.says) || r.header.Get("Content-Type") != taxii.MediaTAXII {
				t.Errorf("%d %s %s, want %d saying %q", r.status, r.header.Get("Content-Type"), r.body, c.status, c.says)
			}
		})
	}
	// The discovery resource answers with or without the trailing slash.
	for _, p := range []string{taxii.Prefix, strings.TrimSuffix(taxii.Prefix, "/")} {
		if r := h.do("GET", p, "reader", nil); r.status != 200 || !strings.Contains(string(r.body), `"api_roots":["/_embassy/taxii2/api/"]`) {
			t.Errorf("discovery %s: %d %s", p, r.status, r.body)
		}
	}
}

type readerCloser struct{ *strings.Reader }

func (readerCloser) Close() error { return nil }

// TestBasicNeedsTLS: credentials sent in the clear from another host are
// refused (their owner should change them); over TLS, or from loopback,
// they are accepted.
func TestBasicNeedsTLS(t *testing.T) {
	h := newHarness(t)
	handler := h.n.Handler()
	req := func(remote string, tlsOn bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", taxii.Prefix, nil)
		r.RemoteAddr = remote
		if tlsOn {
			r.TLS = &tls.ConnectionState{}
		}
		r.Header.Set("Accept", taxii.MediaTAXII)
		r.SetBasicAuth(keyOf("reader"), secretOf("reader"))
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		return w
	}
	if w := req("192.0.2.7:40000", false); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "only over TLS") {
		t.Errorf("clear text from another host: %d %s", w.Code, w.Body)
	}
	if w := req("192.0.2.7:40000", true); w.Code != 200 {
		t.Errorf("TLS from another host: %d %s", w.Code, w.Body)
	}
	if w := req("[::1]:40000", false); w.Code != 200 {
		t.Errorf("loopback: %d %s", w.Code, w.Body)
	}
}
