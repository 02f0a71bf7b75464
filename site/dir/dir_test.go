package dir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/sitetest"
)

func TestConformance(t *testing.T) {
	sitetest.Run(t, func(t *testing.T) site.Site {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestLeftoverTempFilesRemoved(t *testing.T) {
	root := t.TempDir()
	if _, err := New(root); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(root, tmpDir, "deadbeef")
	if err := os.WriteFile(stale, []byte("half a shard"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temp file survived reopen: %v", err)
	}
	var n int
	s.List(t.Context(), "", func(site.Info) error { n++; return nil })
	if n != 0 {
		t.Fatalf("List sees %d blobs in a fresh site", n)
	}
}

func TestReservedName(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(t.Context(), ".tmp/x"); err == nil {
		t.Fatal("temp area reachable by name")
	}
}

func TestOpenVanishedDirectoryIsUnavailable(t *testing.T) {
	root := filepath.Join(t.TempDir(), "site")
	if _, err := New(root); err != nil {
		t.Fatal(err)
	}
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "a", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(root)
	if err := s.Put(t.Context(), "b", strings.NewReader("x"), 1); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("put to a vanished site: %v", err)
	}
	if err := s.List(t.Context(), "", func(site.Info) error { return nil }); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("list of a vanished site: %v", err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatal("a vanished site's directory was recreated")
	}
	// Opening a missing directory does not create it either.
	s2, _ := Open(filepath.Join(t.TempDir(), "never"))
	if _, err := s2.Stat(t.Context(), "x"); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("stat on a never-created site: %v", err)
	}
}

// A write that runs out of space says the site is full.
func TestNoSpaceIsFull(t *testing.T) {
	for _, tc := range []struct {
		err  error
		full bool
	}{
		{&os.PathError{Op: "write", Path: "/srv/x", Err: unix.ENOSPC}, true},
		{fmt.Errorf("dir site: put x: %w", &os.PathError{Op: "write", Path: "/srv/x", Err: unix.EDQUOT}), true},
		{&os.PathError{Op: "write", Path: "/srv/x", Err: unix.EIO}, false},
		{nil, false},
	} {
		if got := errors.Is(markFull(tc.err), site.ErrFull); got != tc.full {
			t.Errorf("markFull(%v) is full: %v, want %v", tc.err, got, tc.full)
		}
	}
}
