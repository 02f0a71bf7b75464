package s3site

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/minio/minio-go/v7"

	"github.com/embassy-dev/embassy/site"
)

func TestPutBody(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name    string
		r       io.Reader
		want    int64
		wantErr string // "" for success
		// maxOut is the most bytes the consumer may see before the error:
		// a reader that yields too much must not deliver all want bytes.
		maxOut int64
	}{
		{"exact", strings.NewReader("abcdef"), 6, "", 6},
		{"exact one byte at a time", iotest.OneByteReader(strings.NewReader("abcdef")), 6, "", 6},
		{"exact with data and EOF together", iotest.DataErrReader(strings.NewReader("abcdef")), 6, "", 6},
		{"short", strings.NewReader("abc"), 6, "reader yielded 3 bytes, 6 declared", 3},
		{"long", strings.NewReader("abcdefg"), 6, "more than the 6 bytes declared", 5},
		{"long one byte at a time", iotest.OneByteReader(strings.NewReader("abcdefg")), 6, "more than the 6 bytes declared", 5},
		{"error mid-way", io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), 6, "boom", 3},
		{"error right after the last byte", io.MultiReader(strings.NewReader("abcdef"), iotest.ErrReader(boom)), 6, "boom", 5},
		{"timeout then data", iotest.TimeoutReader(strings.NewReader("abcdef")), 6, "timeout", 6},
		{"unknown size", strings.NewReader("abcdefg"), -1, "", 7},
		{"unknown size, error", io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), -1, "boom", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &putBody{r: tc.r, want: tc.want}
			var out bytes.Buffer
			buf := make([]byte, 4)
			var err error
			for {
				var n int
				n, err = e.Read(buf)
				out.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if int64(out.Len()) > tc.maxOut {
				t.Errorf("consumer saw %d bytes, at most %d allowed", out.Len(), tc.maxOut)
			}
			if tc.wantErr == "" {
				if err != io.EOF || e.finish() != nil {
					t.Fatalf("err = %v (recorded %v), want io.EOF", err, e.finish())
				}
				return
			}
			if err == nil || err == io.EOF || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if _, again := e.Read(buf); again != err {
				t.Errorf("second read returned %v, want the same error", again)
			}
			if rec := e.finish(); rec != err {
				t.Errorf("recorded %v, returned %v", rec, err)
			}
			if _, after := e.Read(buf); after != errPutReturned {
				t.Errorf("read after finish returned %v, want errPutReturned", after)
			}
		})
	}
}

func TestPutBodyEmpty(t *testing.T) {
	cases := []struct {
		name string
		r    io.Reader
		ok   bool
	}{
		{"empty", strings.NewReader(""), true},
		{"one byte", strings.NewReader("x"), false},
		{"error", iotest.ErrReader(errors.New("boom")), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &putBody{r: tc.r, want: 0}
			if err := e.atEnd(); (err == nil) != tc.ok {
				t.Fatalf("atEnd = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestBlobName(t *testing.T) {
	cases := []struct {
		prefix, key, want string
		ok                bool
	}{
		{"", "a/b", "a/b", true},
		{"", "a/", "", false}, // a folder marker
		{"", "a//b", "", false},
		{"p/", "p/a/b", "a/b", true},
		{"p/", "p/", "", false},
		{"p/", "q/a", "", false},
		{"p/", "pa/b", "", false},
		{"p/q/", "p/q/../x", "", false},
		{"p/", "p/sp ace", "", false},
	}
	for _, tc := range cases {
		s := &Site{prefix: tc.prefix}
		got, ok := s.blobName(tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("prefix %q: blobName(%q) = %q, %v; want %q, %v", tc.prefix, tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzBlobName checks that a key listed by the provider (outside input)
// becomes a blob name only if it is a valid name under the site's prefix,
// and that the name maps back to the same key.
func FuzzBlobName(f *testing.F) {
	for _, k := range []string{"", "p/", "p/a", "p//a", "p/../a", "p/a/", "a", "p/\x00", "p/" + strings.Repeat("x", 600)} {
		f.Add("p", k)
		f.Add("", k)
	}
	f.Fuzz(func(t *testing.T, prefix, key string) {
		cfg := Config{Prefix: prefix}
		if p := strings.Trim(prefix, "/"); p != "" && site.CheckName(p) != nil {
			return
		}
		s := &Site{prefix: cfg.keyPrefix()}
		name, ok := s.blobName(key)
		if !ok {
			return
		}
		if err := site.CheckName(name); err != nil {
			t.Fatalf("blobName(%q) = %q, an invalid name: %v", key, name, err)
		}
		if k, err := s.key(name); err != nil || k != key {
			t.Fatalf("key(blobName(%q)) = %q, %v", key, k, err)
		}
	})
}

// A provider that says it has no space left is full, not unavailable: its
// blobs can still be read, and the operator is told which site is full.
func TestFullProvider(t *testing.T) {
	s := &Site{where: "lux-s3"}
	for _, tc := range []struct {
		name       string
		er         minio.ErrorResponse
		full, down bool
	}{
		{"MinIO storage full", minio.ErrorResponse{StatusCode: 507, Code: "XMinioStorageFull"}, true, false},
		{"507 with another code", minio.ErrorResponse{StatusCode: 507, Code: "InsufficientStorage"}, true, false},
		{"Ceph quota", minio.ErrorResponse{StatusCode: 403, Code: "QuotaExceeded"}, true, false},
		{"server error", minio.ErrorResponse{StatusCode: 500, Code: "InternalError"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.fail(t.Context(), "put x", tc.er)
			if errors.Is(err, site.ErrFull) != tc.full || errors.Is(err, site.ErrUnavailable) != tc.down {
				t.Errorf("%v: full %v, unavailable %v; want %v, %v", err, errors.Is(err, site.ErrFull), errors.Is(err, site.ErrUnavailable), tc.full, tc.down)
			}
		})
	}
}

// FuzzRangeStart: a Content-Range header is the provider's; rangeStart
// never panics and returns only a start the header spells in digits.
func FuzzRangeStart(f *testing.F) {
	f.Add("bytes 100-199/1000")
	f.Add("bytes */1000")
	f.Add("bytes -1-2/3")
	f.Fuzz(func(t *testing.T, v string) {
		n, ok := rangeStart(v)
		if ok && (n < 0 || len(v) < 8 || v[6] < '0' || v[6] > '9') {
			t.Fatalf("%q: start %d", v, n)
		}
	})
}
