package s3site_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/s3site"
)

// lyingProxy stands between the driver and an S3 server and changes the
// answers to ranged GETs: extra appends bytes to the body (a provider
// that sends more than asked), dropRange answers 200 without a
// Content-Range (one that claims to have ignored the range), shiftRange
// names a range starting one byte later than asked.
type lyingProxy struct {
	extra      int
	dropRange  bool
	shiftRange bool
}

func (lp *lyingProxy) start(t *testing.T, srv *server) *server {
	t.Helper()
	target, err := url.Parse("http://" + srv.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || resp.Request.Header.Get("Range") == "" || resp.StatusCode != http.StatusPartialContent {
			return nil
		}
		if lp.extra > 0 {
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(resp.Body, bytes.NewReader(bytes.Repeat([]byte{0xee}, lp.extra))), resp.Body}
			resp.ContentLength = -1
			resp.Header.Del("Content-Length")
		}
		if lp.dropRange {
			resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
			resp.Header.Del("Content-Range")
		}
		if lp.shiftRange {
			cr := resp.Header.Get("Content-Range") // bytes a-b/size
			var a, b, size int64
			if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &a, &b, &size); err == nil {
				resp.Header.Set("Content-Range", "bytes "+strconv.FormatInt(a+1, 10)+"-"+strconv.FormatInt(b+1, 10)+"/"+strconv.FormatInt(size, 10))
			}
		}
		return nil
	}
	hs := httptest.NewServer(rp)
	t.Cleanup(hs.Close)
	return &server{name: srv.name + "-lying", endpoint: strings.TrimPrefix(hs.URL, "http://")}
}

// TestLyingRanges: a site is outside input, its provider's answers too.
// A ranged Get returns at most the bytes asked for, whatever the provider
// sends (callers read what Get returns into memory: a provider sending a
// whole large blob for a header's 16 KiB made them allocate it); and a
// Get at an offset fails, naming the provider's fault, when the answer
// does not say it starts there (a provider that ignores the range sends
// the blob from its start: the caller would take those bytes for the
// ones at the offset).
func TestLyingRanges(t *testing.T) {
	srv := embassyServer(t)
	data := pattern(10000)
	put := func(t *testing.T, s site.Site) {
		if err := s.Put(t.Context(), "b/blob", bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	get := func(t *testing.T, s site.Site, off, length int64) ([]byte, error) {
		rc, err := s.Get(t.Context(), "b/blob", off, length)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	t.Run("extra bytes", func(t *testing.T) {
		cfg := srv.config("")
		s := newSite(t, withEndpoint(cfg, &lyingProxy{extra: 1 << 20}, t, srv))
		put(t, s)
		for _, r := range [][2]int64{{0, 100}, {500, 1000}, {9990, 10}} {
			got, err := get(t, s, r[0], r[1])
			if err != nil || !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
				t.Errorf("Get(%d, %d): %d bytes, %v; want the %d asked for", r[0], r[1], len(got), err, r[1])
			}
		}
	})
	t.Run("range ignored", func(t *testing.T) {
		cfg := srv.config("")
		s := newSite(t, withEndpoint(cfg, &lyingProxy{dropRange: true}, t, srv))
		put(t, s)
		// From the start, the answer is right whatever the provider did.
		if got, err := get(t, s, 0, 100); err != nil || !bytes.Equal(got, data[:100]) {
			t.Errorf("Get(0, 100): %d bytes, %v", len(got), err)
		}
		for _, r := range [][2]int64{{500, 1000}, {500, -1}} {
			got, err := get(t, s, r[0], r[1])
			if err == nil || !strings.Contains(err.Error(), "range") || !errors.Is(err, site.ErrUnavailable) {
				t.Errorf("Get(%d, %d): %d bytes, %v; want an error naming the range", r[0], r[1], len(got), err)
			}
		}
	})
	t.Run("range shifted", func(t *testing.T) {
		cfg := srv.config("")
		s := newSite(t, withEndpoint(cfg, &lyingProxy{shiftRange: true}, t, srv))
		put(t, s)
		got, err := get(t, s, 500, 1000)
		if err == nil || !strings.Contains(err.Error(), "range") {
			t.Errorf("Get(500, 1000): %d bytes, %v; want an error naming the range", len(got), err)
		}
	})
}

// withEndpoint returns cfg reaching srv through lp.
func withEndpoint(cfg s3site.Config, lp *lyingProxy, t *testing.T, srv *server) s3site.Config {
	cfg.Endpoint = lp.start(t, srv).endpoint
	return cfg
}
