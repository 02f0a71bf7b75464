package s3_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestGetUnreadableObject: a GET whose first stripe cannot be read (too
// few sites hold intact shards of it) is answered with an S3 error, 503
// ServiceUnavailable as for any unreadable object, not with 200 and a cut
// connection; one that fails after its first stripe, the status line sent,
// cuts the connection short of its Content-Length, so that no client takes
// the short body for the object.
func TestGetUnreadableObject(t *testing.T) {
	h := newHarness(t)
	h.bucket("frail")
	const size = 3 << 20 // three 1 MiB stripes
	// put stores an object and returns its shard blobs by shard index.
	put := func(key string, seed byte) ([]byte, map[string][]string) {
		before := h.shardBlobs(t)
		body := pattern(size, seed)
		h.put("frail", key, body)
		byShard := map[string][]string{}
		for _, p := range h.shardBlobs(t) {
			if !slices.Contains(before, p) {
				shard := p[strings.LastIndexByte(p, '.')+1:]
				byShard[shard] = append(byShard[shard], p)
			}
		}
		if len(byShard) != 6 {
			t.Fatalf("%s: shard blobs of %d shards, want 6 (4+2): %v", key, len(byShard), byShard)
		}
		return body, byShard
	}
	_, gone := put("gone", 1)
	middle, damaged := put("damaged", 2)

	// "gone" loses three of its six shards: no stripe can be read.
	for _, shard := range []string{"0", "1", "2"} {
		for _, p := range gone[shard] {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	// "damaged" has the second stripe's block of three shards corrupted:
	// its first stripe reads, its second cannot.
	for _, shard := range []string{"0", "1", "2"} {
		for _, p := range damaged[shard] {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			stride := fi.Size() / 3 // three full stripes: three blocks of one size
			if err := os.Chmod(p, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 64), stride+stride/2); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, tc := range []struct {
		name, key, rng string
	}{
		{name: "first stripe unreadable", key: "gone"},
		{name: "a range of an unreadable object", key: "gone", rng: "bytes=10-99"},
		{name: "range starting in the damaged stripe", key: "damaged", rng: "bytes=1048586-1048600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.rng != "" {
				hdr.Set("Range", tc.rng)
			}
			r := h.do(rawRequest{method: "GET", path: "/frail/" + tc.key, header: hdr, as: &alice})
			r.wantError(t, "ServiceUnavailable", http.StatusServiceUnavailable)
			if ct := r.header.Get("Content-Type"); ct != "application/xml" {
				t.Errorf("Content-Type %q, want application/xml", ct)
			}
			for _, name := range []string{"ETag", "Last-Modified", "Content-Range", "x-amz-version-id"} {
				if v := r.header.Get(name); v != "" {
					t.Errorf("the error carries the object's %s: %q", name, v)
				}
			}
		})
	}

	t.Run("range before the damaged stripe", func(t *testing.T) {
		r := h.do(rawRequest{method: "GET", path: "/frail/damaged", header: http.Header{"Range": {"bytes=0-999"}}, as: &alice})
		if r.status != http.StatusPartialContent || !bytes.Equal(r.body, middle[:1000]) {
			t.Errorf("status %d, %d bytes; want 206 and the first 1000 bytes", r.status, len(r.body))
		}
	})

	t.Run("failure mid-body", func(t *testing.T) {
		resp, err := http.DefaultClient.Do(h.newRequest(rawRequest{method: "GET", path: "/frail/damaged", as: &alice}))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Length") != strconv.Itoa(size) {
			t.Fatalf("status %d, Content-Length %q; want 200 and %d (the first stripe reads)", resp.StatusCode, resp.Header.Get("Content-Length"), size)
		}
		got, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("reading the body: %v, want an unexpected EOF (the connection cut short of Content-Length)", err)
		}
		if len(got) >= size || !bytes.Equal(got, middle[:len(got)]) {
			t.Errorf("got %d bytes (of %d), want fewer, each the object's", len(got), size)
		}
	})

	// The server logged each failure: the three 503s and the GET cut
	// mid-body.
	h.mu.Lock()
	defer h.mu.Unlock()
	var unavailable, cut int
	for _, f := range h.failed {
		switch {
		case strings.Contains(f, "ServiceUnavailable"):
			unavailable++
		case strings.Contains(f, "GET failed mid-body"):
			cut++
		}
	}
	if unavailable != 3 || cut != 1 || len(h.failed) != 4 {
		t.Errorf("server logged %d failures, want 3 ServiceUnavailable and 1 GET cut mid-body:\n%s", len(h.failed), strings.Join(h.failed, "\n"))
	}
	h.failed = nil
}
