// Package sitetest is the conformance suite every site driver passes. A
// driver's test calls Run with a constructor for fresh, empty sites.
package sitetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/embassy-dev/embassy/site"
)

// Run runs the conformance suite against sites made by newSite. Each call of
// newSite must return an empty site. Blob names with a slash lie under one
// of site.TopDirs, as every name the engine uses does.
func Run(t *testing.T, newSite func(t *testing.T) site.Site) {
	t.Run("PutGetStat", func(t *testing.T) {
		s := newSite(t)
		ctx := t.Context()
		data := pattern(100_000)
		if err := s.Put(ctx, "s/b/blob", bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, "s/b/blob", 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("Get returned %d bytes differing from the %d put", len(got), len(data))
		}
		info, err := s.Stat(ctx, "s/b/blob")
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(len(data)) || info.Name != "s/b/blob" {
			t.Fatalf("Stat = %+v, want size %d name s/b/blob", info, len(data))
		}
	})
	t.Run("Ranges", func(t *testing.T) {
		s := newSite(t)
		data := pattern(5000)
		if err := s.Put(t.Context(), "r", bytes.NewReader(data), -1); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name     string
			off, len int64
			want     []byte
		}{
			{"middle", 100, 50, data[100:150]},
			{"to end", 4990, -1, data[4990:]},
			{"past end", 4990, 100, data[4990:]},
			{"empty at end", 5000, 10, nil},
			{"whole", 0, 5000, data},
		}
		for _, tc := range cases {
			if got := get(t, s, "r", tc.off, tc.len); !bytes.Equal(got, tc.want) {
				t.Errorf("%s: got %d bytes, want %d", tc.name, len(got), len(tc.want))
			}
		}
	})
	t.Run("Overwrite", func(t *testing.T) {
		s := newSite(t)
		put(t, s, "x", []byte("first version, longer"))
		put(t, s, "x", []byte("second"))
		if got := get(t, s, "x", 0, -1); string(got) != "second" {
			t.Fatalf("after overwrite got %q", got)
		}
	})
	t.Run("EmptyBlob", func(t *testing.T) {
		s := newSite(t)
		put(t, s, "empty", nil)
		if got := get(t, s, "empty", 0, -1); len(got) != 0 {
			t.Fatalf("got %d bytes", len(got))
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := newSite(t)
		ctx := t.Context()
		if _, err := s.Get(ctx, "missing", 0, -1); !errors.Is(err, site.ErrNotFound) {
			t.Errorf("Get missing: %v, want ErrNotFound", err)
		}
		if _, err := s.Stat(ctx, "missing"); !errors.Is(err, site.ErrNotFound) {
			t.Errorf("Stat missing: %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "missing"); err != nil {
			t.Errorf("Delete missing: %v, want nil", err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s := newSite(t)
		put(t, s, "m/d/1", []byte("x"))
		if err := s.Delete(t.Context(), "m/d/1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(t.Context(), "m/d/1"); !errors.Is(err, site.ErrNotFound) {
			t.Fatalf("Stat after delete: %v", err)
		}
	})
	t.Run("ReaderErrorStoresNothing", func(t *testing.T) {
		s := newSite(t)
		put(t, s, "keep", []byte("old"))
		boom := errors.New("client went away")
		r := io.MultiReader(bytes.NewReader(pattern(3000)), errReader{boom})
		if err := s.Put(t.Context(), "keep", r, 6000); !errors.Is(err, boom) {
			t.Fatalf("Put with failing reader: %v, want %v", err, boom)
		}
		if err := s.Put(t.Context(), "new", io.MultiReader(bytes.NewReader(pattern(10)), errReader{boom}), -1); !errors.Is(err, boom) {
			t.Fatalf("Put with failing reader: %v, want %v", err, boom)
		}
		if got := get(t, s, "keep", 0, -1); string(got) != "old" {
			t.Fatalf("failed put changed the blob to %q", got)
		}
		if _, err := s.Stat(t.Context(), "new"); !errors.Is(err, site.ErrNotFound) {
			t.Fatalf("failed put left a blob: %v", err)
		}
	})
	t.Run("SizeMismatch", func(t *testing.T) {
		// A reader that yields more or fewer bytes than declared is
		// refused, with an error naming the declared size, and nothing
		// of it is stored: no blob, and a blob it would replace is kept.
		s := newSite(t)
		put(t, s, "keep", []byte("old"))
		for _, tc := range []struct {
			name, blob string
			r          io.Reader
			size       int64
		}{
			{"shorter", "short", bytes.NewReader([]byte("abc")), 4},
			{"longer", "long", bytes.NewReader(pattern(3001)), 3000},
			{"longer, a byte at a time", "long1", iotest.OneByteReader(bytes.NewReader(pattern(3001))), 3000},
			{"longer, large", "long2", bytes.NewReader(pattern(1<<20 + 1)), 1 << 20},
			{"bytes for an empty blob", "empty", bytes.NewReader([]byte("x")), 0},
			{"a replacement, longer", "keep", bytes.NewReader(pattern(3001)), 3000},
		} {
			err := s.Put(t.Context(), tc.blob, tc.r, tc.size)
			if err == nil {
				t.Errorf("%s: Put of a reader not of the %d bytes declared succeeded", tc.name, tc.size)
			} else if !regexp.MustCompile(`\b` + strconv.FormatInt(tc.size, 10) + `\b`).MatchString(err.Error()) {
				t.Errorf("%s: Put: %v: the error does not name the %d bytes declared", tc.name, err, tc.size)
			}
		}
		if got := get(t, s, "keep", 0, -1); string(got) != "old" {
			t.Errorf("a refused put changed the blob to %d bytes", len(got))
		}
		var names []string
		if err := s.List(t.Context(), "", func(i site.Info) error { names = append(names, i.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names, []string{"keep"}) {
			t.Errorf("refused puts left blobs: the site lists %v, want [keep]", names)
		}
	})
	t.Run("List", func(t *testing.T) {
		s := newSite(t)
		names := []string{"m/aa/1", "m/aa/2", "m/ab/3", "s/aa/4", "top"}
		for _, n := range names {
			put(t, s, n, []byte(n))
		}
		cases := []struct {
			prefix string
			want   []string
		}{
			{"", names},
			{"m/", names[:3]},
			{"m/a", names[:3]},
			{"m/aa/", names[:2]},
			{"m/aa/2", names[1:2]},
			{"s", names[3:4]},
			{"zz", nil},
		}
		for _, tc := range cases {
			var got []string
			err := s.List(t.Context(), tc.prefix, func(i site.Info) error {
				if i.Size != int64(len(i.Name)) {
					t.Errorf("List: %s has size %d, want %d", i.Name, i.Size, len(i.Name))
				}
				got = append(got, i.Name)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
			}
		}
		stop := errors.New("stop")
		n := 0
		err := s.List(t.Context(), "", func(site.Info) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("List did not stop at the callback's error: err=%v calls=%d", err, n)
		}
	})
	t.Run("BadNames", func(t *testing.T) {
		s := newSite(t)
		for _, n := range []string{"", "../etc/passwd", "a/../../b", "/abs", "a//b", "a/./b", "sp ace", "nul\x00"} {
			if err := s.Put(t.Context(), n, bytes.NewReader(nil), 0); err == nil {
				t.Errorf("Put(%q) accepted", n)
			}
			if _, err := s.Get(t.Context(), n, 0, -1); err == nil {
				t.Errorf("Get(%q) accepted", n)
			}
		}
	})
	t.Run("ConcurrentPuts", func(t *testing.T) {
		s := newSite(t)
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 32 {
			wg.Go(func() {
				d := pattern(1000 + i)
				if err := s.Put(t.Context(), fmt.Sprintf("s/c/%02d", i), bytes.NewReader(d), int64(len(d))); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i := range 32 {
			if got := get(t, s, fmt.Sprintf("s/c/%02d", i), 0, -1); !bytes.Equal(got, pattern(1000+i)) {
				t.Fatalf("blob %d differs", i)
			}
		}
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func put(t *testing.T, s site.Site, name string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
}

func get(t *testing.T, s site.Site, name string, off, length int64) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), name, off, length)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get %s: read: %v", name, err)
	}
	return b
}
