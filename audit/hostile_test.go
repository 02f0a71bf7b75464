package audit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
)

// turncoat is a site that answers the first read of each entry bundle
// honestly and every later one with the bundle's entries shifted by one
// (entry 5 replayed as 4, and so on): valid entries of the log, in the
// wrong places.
type turncoat struct {
	site.Site
	mu   sync.Mutex
	seen map[string]bool
}

func (s *turncoat) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	rc, err := s.Site.Get(ctx, name, off, length)
	if err != nil || !strings.HasPrefix(name, SitePrefix+"tile/entries/") {
		return rc, err
	}
	s.mu.Lock()
	again := s.seen[name]
	s.seen[name] = true
	s.mu.Unlock()
	if !again {
		return rc, nil
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil || len(b.Entries) < 2 {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}
	var out []byte
	for i := range b.Entries {
		e := b.Entries[min(i+1, len(b.Entries)-1)]
		out = append(out, byte(len(e)>>8), byte(len(e)))
		out = append(out, e...)
	}
	return io.NopCloser(bytes.NewReader(out)), nil
}

// TestCatchUpReadsOnce: a node taking up the log from a site (a fresh
// node directory after `recover`) adds exactly the entries it verified
// against the site's checkpoint. It verified the site's copy, then read
// the entries again to add them: a site answering the second read with
// other entries (here valid ones, replayed in the wrong places) had them
// added to the node's log unchecked, under checkpoints the node then
// signed.
func TestCatchUpReadsOnce(t *testing.T) {
	k := testKeys(t)
	mem := memory.New()
	l := openLog(t, testConfig(t, k, t.TempDir(), map[string]site.Site{"a": mem}))
	var last uint64
	for i := range 300 {
		last, _ = l.Append(t.Context(), event(i))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := l.Sync(ctx, last+1, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)

	s := &turncoat{Site: mem, seen: map[string]bool{}}
	l = openLog(t, testConfig(t, k, t.TempDir(), map[string]site.Site{"a": s}))
	defer closeLog(t, l)
	if got := l.Appended(); got != 300 {
		t.Fatalf("caught up to %d entries, want 300", got)
	}
	if err := l.Events(ctx, 0, func(i uint64, e Event) error {
		if want := event(int(i)); e.Key != want.Key {
			t.Fatalf("entry %d is %s's, want %s's", i, e.Key, want.Key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A take-up's scratch file left by a crash is removed at the next one,
// and nothing else is: not a link of that name (nor what it points to), a
// directory, or a file of another name an operator left there. Before,
// everything matching ".takeup-*" was removed.
func TestCatchUpScratchLeftByACrash(t *testing.T) {
	k := testKeys(t)
	dir := t.TempDir()
	left := filepath.Join(dir, ".takeup-123")
	if err := os.WriteFile(left, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// What is not a take-up's own stays.
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	kept := map[string]func(string) error{
		".takeup-4567": func(p string) error { return os.Symlink(target, p) },
		".takeup-89":   func(p string) error { return os.Mkdir(p, 0o700) },
		".takeup-notes": func(p string) error {
			return os.WriteFile(p, []byte("an operator's"), 0o600)
		},
		".takeup-": func(p string) error { return os.WriteFile(p, []byte("an operator's"), 0o600) },
	}
	for name, mk := range kept {
		if err := mk(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	l := openLog(t, testConfig(t, k, dir, map[string]site.Site{"a": memory.New()}))
	closeLog(t, l)
	if _, err := os.Stat(left); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("scratch left by a crash: %v", err)
	}
	for name := range kept {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s, not a take-up's scratch file: %v", name, err)
		}
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "kept" {
		t.Errorf("a link's target: %q, %v", b, err)
	}
}
