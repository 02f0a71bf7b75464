package dir

import (
	"os"
	"path/filepath"
	"testing"

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
