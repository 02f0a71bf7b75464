package sigv4

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// verified is what the test server learned from one request.
type verified struct {
	auth      *Auth
	body      []byte
	checksums map[string]string
	err       error
}

// verifyingServer is an S3 endpoint reduced to authentication: it
// verifies every request with Verify, reads its body through Auth.Body and
// answers as S3 would, recording what it saw. Tests drive it with real
// clients over real HTTP.
type verifyingServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []verified
}

func newVerifyingServer(t *testing.T, tls bool) *verifyingServer {
	s := &verifyingServer{}
	h := http.HandlerFunc(s.serve)
	if tls {
		s.Server = httptest.NewTLSServer(h)
	} else {
		s.Server = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *verifyingServer) serve(w http.ResponseWriter, r *http.Request) {
	v := verified{}
	defer func() {
		s.mu.Lock()
		s.seen = append(s.seen, v)
		s.mu.Unlock()
	}()
	a, err := Verify(r, testCreds, time.Now(), Options{Region: testRegion})
	if err == nil {
		v.auth = a
		p := a.Body(r.Body)
		v.body, err = io.ReadAll(p)
		v.checksums = p.Checksums()
	}
	if err != nil {
		v.err = err
		writeError(w, err)
		return
	}
	w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
	switch r.Method {
	case http.MethodGet:
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, "hello")
	case http.MethodPost:
		w.Header().Set("Content-Type", "application/xml")
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>`)
	}
}

// writeError answers err as an S3 error document.
func writeError(w http.ResponseWriter, err error) {
	e, ok := errors.AsType[*Error](err)
	if !ok {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	doc := struct {
		XMLName xml.Name `xml:"Error"`
		Code    string
		Message string
	}{Code: string(e.Code), Message: e.Message}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(e.Status())
	xml.NewEncoder(w).Encode(doc)
}

// last returns what the server saw of the most recent request.
func (s *verifyingServer) last(t *testing.T) verified {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		t.Fatal("the server saw no request")
	}
	return s.seen[len(s.seen)-1]
}
