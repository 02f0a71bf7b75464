package dir

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	old := time.Now().Add(-2 * tmpMaxAge)
	if err := os.Chtimes(stale, old, old); err != nil {
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

// TestRemovalRacingWritesRecreatesNothing: the site's directory is removed
// while writers keep putting blobs: "rm -rf site" (a volume going away), and
// "rm -rf site/*", which leaves the hidden .tmp behind. Every put begun
// after that fails with ErrUnavailable, and no put recreates the directory
// or its top directories, or writes anything anywhere else.
func TestRemovalRacingWritesRecreatesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove func(root string) error
		left   []string // what the site's parent holds afterwards
	}{
		{"rm -rf site", os.RemoveAll, nil},
		{"rm -rf site/*", func(root string) error {
			ents, err := os.ReadDir(root)
			if err != nil {
				return err
			}
			for _, e := range ents {
				if e.Name() != tmpDir {
					if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
						return err
					}
				}
			}
			return nil
		}, []string{"site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "site")
			if _, err := New(root); err != nil {
				t.Fatal(err)
			}
			s, err := Open(root)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			var removed atomic.Bool
			afterRemoval := make(chan error, 1024)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						gone := removed.Load()
						name := fmt.Sprintf("%s/%02x/%d-%d", site.TopDirs()[i%len(site.TopDirs())], (w*31+i)%256, w, i)
						size := int64(100 + i%7)
						err := s.Put(ctx, name, bytes.NewReader(make([]byte, size)), size)
						if gone {
							select {
							case afterRemoval <- err:
							default:
							}
						}
					}
				})
			}
			// Let the writers make their directories, then remove the site.
			for {
				n := 0
				s.List(ctx, "", func(site.Info) error { n++; return nil })
				if n >= 12 {
					break
				}
			}
			for tc.remove(root) != nil {
				// A put renamed into a directory being removed: remove again.
			}
			removed.Store(true)
			// Wait for 200 puts begun after the removal, then stop the writers.
			for range 200 {
				if err := <-afterRemoval; !errors.Is(err, site.ErrUnavailable) {
					t.Errorf("put after the site was removed: %v, want ErrUnavailable", err)
				}
			}
			close(stop)
			wg.Wait()
			var left []string
			ents, _ := os.ReadDir(parent)
			for _, e := range ents {
				left = append(left, e.Name())
			}
			if !slices.Equal(left, tc.left) {
				t.Fatalf("after the removal the parent holds %v, want %v", left, tc.left)
			}
			if tc.left != nil {
				ents, _ := os.ReadDir(root)
				if len(ents) != 1 || ents[0].Name() != tmpDir {
					t.Fatalf("the removed top directories were recreated: the site holds %v", ents)
				}
			}
		})
	}
}

// TestUnmountedMountPoint: the site's volume is unmounted and its mount
// point is an empty directory on another disk. Nothing is written there.
func TestUnmountedMountPoint(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mnt")
	if _, err := New(root); err != nil {
		t.Fatal(err)
	}
	s, _ := Open(root)
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o700); err != nil { // the bare mount point
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "s/ab/blob", strings.NewReader("x"), 1); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("put onto an unmounted mount point: %v", err)
	}
	if err := s.List(t.Context(), "m/", func(site.Info) error { return nil }); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("list of an unmounted mount point: %v", err)
	}
	if err := s.Delete(t.Context(), "m/ab/x"); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("delete on an unmounted mount point: %v", err)
	}
	if _, err := s.Get(t.Context(), "m/ab/x", 0, -1); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("get on an unmounted mount point: %v", err)
	}
	if _, err := s.Stat(t.Context(), "m/ab/x"); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("stat on an unmounted mount point: %v", err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("the mount point was written to: %v", ents)
	}
}

// TestMountPointHoldingBlobs: the site's volume is unmounted and the mount
// point beneath holds files at the names of the site's blobs (an old copy,
// something restored there by hand) but not the site's .tmp. A read that
// finds the file is refused all the same: only a directory that is the
// site is read from, even when the lookup of the blob itself succeeds.
func TestMountPointHoldingBlobs(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mnt")
	if _, err := New(root); err != nil {
		t.Fatal(err)
	}
	s, _ := Open(root)
	ctx := t.Context()
	if err := s.Put(ctx, "m/ab/blob", strings.NewReader("genuine"), 7); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "m", "ab"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "m", "ab", "blob"), []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rc, err := s.Get(ctx, "m/ab/blob", 0, -1); !errors.Is(err, site.ErrUnavailable) {
		if err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Fatalf("get read %q from a directory that is not the site", b)
		}
		t.Fatalf("get from a mount point holding the blob: %v, want ErrUnavailable", err)
	}
	if _, err := s.Stat(ctx, "m/ab/blob"); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("stat on a mount point holding the blob: %v, want ErrUnavailable", err)
	}
	if err := s.Delete(ctx, "m/ab/blob"); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("delete on a mount point holding the blob: %v, want ErrUnavailable", err)
	}
	if err := s.Put(ctx, "m/ab/other", strings.NewReader("x"), 1); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("put onto a mount point holding blobs: %v, want ErrUnavailable", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "m", "ab", "blob")); err != nil || string(b) != "stale" {
		t.Fatalf("the file beneath was changed: %q, %v", b, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "m", "ab")); len(ents) != 1 {
		t.Fatalf("the mount point was written to: %v", ents)
	}
}

// TestTopDirectories: a missing top directory makes every operation under
// it (and every listing that would cover it) fail with ErrUnavailable and
// is never recreated; directories below the top ones are made on demand,
// even after being removed; names outside the top directories are refused.
func TestTopDirectories(t *testing.T) {
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, d := range site.TopDirs() {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Fatalf("New did not create top directory %s: %v", d, err)
		}
	}
	if _, err := s.Stat(ctx, "zz/1"); !errors.Is(err, site.ErrNotFound) {
		t.Fatalf("stat outside the top directories: %v, want ErrNotFound", err)
	}
	if err := s.Put(ctx, "zz/1", strings.NewReader("x"), 1); err == nil || errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("put outside the top directories: %v, want an invalid-name error", err)
	}
	if err := s.Put(ctx, "s/ab/1", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	// A subdirectory removed behind the driver's back is made again.
	if err := os.RemoveAll(filepath.Join(root, "s", "ab")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "s/ab/2", strings.NewReader("x"), 1); err != nil {
		t.Fatalf("put after its subdirectory was removed: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(root, "s")); err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{}
	checks["put"] = s.Put(ctx, "s/ab/3", strings.NewReader("x"), 1)
	_, checks["get"] = s.Get(ctx, "s/ab/2", 0, -1)
	_, checks["stat"] = s.Stat(ctx, "s/ab/2")
	checks["delete"] = s.Delete(ctx, "s/ab/2")
	checks["list s/"] = s.List(ctx, "s/", func(site.Info) error { return nil })
	checks["list all"] = s.List(ctx, "", func(site.Info) error { return nil })
	for op, err := range checks {
		if !errors.Is(err, site.ErrUnavailable) || !strings.Contains(err.Error(), "top directory s/ missing") {
			t.Errorf("%s with s/ missing: %v", op, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "s")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a missing top directory was recreated")
	}
	// The other top directories still work.
	if err := s.Put(ctx, "m/ab/1", strings.NewReader("x"), 1); err != nil {
		t.Fatalf("put under m/ with s/ missing: %v", err)
	}
	missing, err := s.MissingTopDirs()
	if err != nil || !slices.Equal(missing, []string{"s"}) {
		t.Fatalf("MissingTopDirs = %v, %v", missing, err)
	}
}

// TestMakeTopDirs: missing top directories are made only when the marker
// read through the open root is approved.
func TestMakeTopDirs(t *testing.T) {
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"s", "m"} {
		os.Remove(filepath.Join(root, d))
	}
	no := errors.New("not ours")
	err = s.MakeTopDirs(func(b []byte, err error) error {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("marker read = %q, %v; want not found", b, err)
		}
		return no
	})
	if !errors.Is(err, no) {
		t.Fatalf("MakeTopDirs refused: %v", err)
	}
	if missing, _ := s.MissingTopDirs(); len(missing) != 2 {
		t.Fatalf("refused MakeTopDirs created directories: missing %v", missing)
	}
	if err := os.WriteFile(filepath.Join(root, "node", "marker"), []byte("mark"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = s.MakeTopDirs(func(b []byte, err error) error {
		if string(b) != "mark" || err != nil {
			t.Errorf("marker read = %q, %v", b, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if missing, _ := s.MissingTopDirs(); len(missing) != 0 {
		t.Fatalf("missing after MakeTopDirs: %v", missing)
	}
	// Never on a vanished root.
	os.RemoveAll(root)
	if err := s.MakeTopDirs(func([]byte, error) error { return nil }); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("MakeTopDirs on a vanished root: %v", err)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("MakeTopDirs recreated a vanished root")
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

// TestSymlinksNotFollowed: a symbolic link planted in a site's directory —
// as a blob pointing at a file outside, or as a directory pointing at a
// directory outside — is never followed: a read gets ErrSymlink, not the
// file; a put through a linked directory writes nothing outside; a delete
// removes at most the link itself; a listing does not show it.
func TestSymlinksNotFollowed(t *testing.T) {
	work := t.TempDir()
	root := filepath.Join(work, "site")
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	outside := filepath.Join(work, "outside")
	os.MkdirAll(outside, 0o700)
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("the machine's secret"), 0o600)
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("must survive"), 0o600)

	// A blob that is a link to a file outside.
	os.MkdirAll(filepath.Join(root, "s", "aa"), 0o700)
	if err := os.Symlink(secret, filepath.Join(root, "s", "aa", "linked")); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get(ctx, "s/aa/linked", 0, -1); !errors.Is(err, ErrSymlink) {
		if r != nil {
			b, _ := io.ReadAll(r)
			t.Fatalf("get through a link read %q (%v)", b, err)
		}
		t.Fatalf("get through a link: %v, want ErrSymlink", err)
	}
	if _, err := s.Stat(ctx, "s/aa/linked"); !errors.Is(err, ErrSymlink) {
		t.Fatalf("stat of a link: %v, want ErrSymlink", err)
	}
	// A directory that is a link to a directory outside.
	if err := os.Symlink(outside, filepath.Join(root, "s", "bb")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "s/bb/planted", strings.NewReader("node data"), 9); err == nil {
		t.Fatal("a put through a linked directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Fatal("a put wrote outside the site")
	}
	if _, err := s.Get(ctx, "s/bb/secret", 0, -1); !errors.Is(err, ErrSymlink) {
		t.Fatalf("get through a linked directory: %v, want ErrSymlink", err)
	}
	s.Delete(ctx, "s/bb/victim")
	if b, err := os.ReadFile(victim); err != nil || string(b) != "must survive" {
		t.Fatalf("a delete through a linked directory removed a file outside: %q, %v", b, err)
	}
	if err := s.Delete(ctx, "s/aa/linked"); err != nil {
		t.Fatalf("deleting the link itself: %v", err)
	}
	if b, err := os.ReadFile(secret); err != nil || len(b) == 0 {
		t.Fatalf("deleting the link removed its target: %v", err)
	}
	// The linked directory's contents are not listed either.
	os.Symlink(secret, filepath.Join(root, "s", "aa", "again"))
	var names []string
	if err := s.List(ctx, "s/", func(i site.Info) error { names = append(names, i.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 0 {
		t.Fatalf("listed %v", names)
	}
	// An ordinary blob still works.
	if err := s.Put(ctx, "s/cc/ok", strings.NewReader("fine"), 4); err != nil {
		t.Fatal(err)
	}
	r, err := s.Get(ctx, "s/cc/ok", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "fine" {
		t.Fatalf("read %q", b)
	}
}

// TestOpenKeepsPutsInFlight: opening a site removes only old leftovers in
// its temporary directory; a recent file may be a put another Site on the
// same directory (or another process) is writing, and survives.
func TestOpenKeepsPutsInFlight(t *testing.T) {
	root := t.TempDir()
	if _, err := New(root); err != nil {
		t.Fatal(err)
	}
	fresh, stale := filepath.Join(root, tmpDir, "fresh"), filepath.Join(root, tmpDir, "stale")
	for _, p := range []string{fresh, stale} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * tmpMaxAge)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a put in flight was removed: %v", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an old leftover was kept: %v", err)
	}
}

// cutShort yields its bytes, then fails as a body cut short does.
type cutShort struct{ b []byte }

func (c *cutShort) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, c.b)
	c.b = c.b[n:]
	return n, nil
}

// A reader that fails with io.ErrUnexpectedEOF (a client's body cut short)
// is a failed put, not the blob's end, when the size is not declared: the
// truncated bytes were once stored as the whole blob. A short last read
// of a reader that ends with io.EOF still ends the blob.
func TestPutReaderCutShortStoresNothing(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{100, 3 << 20} { // through the page cache, and O_DIRECT buffers
		name := fmt.Sprintf("blob-%d", size)
		err := s.Put(t.Context(), name, &cutShort{b: bytes.Repeat([]byte("x"), size)}, -1)
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), name) {
			t.Errorf("put of a reader cut short after %d bytes: %v, want an error naming %s", size, err, name)
		}
		if _, err := s.Stat(t.Context(), name); !errors.Is(err, site.ErrNotFound) {
			t.Errorf("a blob cut short after %d bytes was stored (stat: %v)", size, err)
		}
		whole := bytes.Repeat([]byte("y"), size+7)
		if err := s.Put(t.Context(), name, bytes.NewReader(whole), -1); err != nil {
			t.Fatalf("put of %d bytes, size not declared: %v", len(whole), err)
		}
		r, err := s.Get(t.Context(), name, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if !bytes.Equal(got, whole) {
			t.Errorf("read back %d bytes, want %d", len(got), len(whole))
		}
	}
}

// TestDeleteSyncsItsDirectory: a delete is reported only after an fsync of
// the blob's directory has started after the removal, so a power loss
// cannot bring the blob back (as for a put's rename).
func TestDeleteSyncsItsDirectory(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const name = "s/ab/blob"
	if err := s.Put(ctx, name, strings.NewReader("shard"), 5); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.root, "s", "ab")
	synced := func() uint64 {
		s.mu.Lock()
		sy := s.syncers[dir]
		s.mu.Unlock()
		if sy == nil {
			return 0
		}
		sy.mu.Lock()
		defer sy.mu.Unlock()
		return sy.done
	}
	before := synced()
	if err := s.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if after := synced(); after <= before {
		t.Fatalf("delete of %s returned with %d fsyncs of %s finished, as many as before it (%d)", name, after, dir, before)
	}
	if _, err := os.Stat(filepath.Join(dir, "blob")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("blob still there: %v", err)
	}
	// Deleting what is not there syncs nothing and succeeds.
	n := synced()
	if err := s.Delete(ctx, name); err != nil || synced() != n {
		t.Fatalf("second delete: %v, fsyncs %d -> %d", err, n, synced())
	}
}

// TestPutSyncsItsDirectoryAfterTheRename: a put returns only after an fsync
// of the blob's directory that started once the blob was at its name (the
// rename done), so the acknowledged blob's directory entry is durable; and
// concurrent puts into one directory share fsyncs without any of them
// returning before one that started after its rename.
func TestPutSyncsItsDirectoryAfterTheRename(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	dir := filepath.Join(s.root, "m", "ab")
	const puts = 16
	var mu sync.Mutex
	var fsyncs int
	present := map[string]int{} // blob name -> the number of fsyncs of dir started after it was in place
	returned := map[string]int{}
	testHookFsync = func(d string) {
		if d != dir {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fsyncs++
		for i := range puts {
			name := fmt.Sprintf("blob%02d", i)
			if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
				present[name]++
			}
		}
	}
	t.Cleanup(func() { testHookFsync = nil })
	var wg sync.WaitGroup
	for i := range puts {
		wg.Go(func() {
			name := fmt.Sprintf("blob%02d", i)
			if err := s.Put(ctx, "m/ab/"+name, bytes.NewReader([]byte(name)), int64(len(name))); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			returned[name] = present[name]
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := range puts {
		name := fmt.Sprintf("blob%02d", i)
		if returned[name] == 0 {
			t.Errorf("put of %s returned before any fsync of %s started with the blob in place", name, dir)
		}
	}
	if fsyncs == 0 || fsyncs > puts {
		t.Errorf("%d fsyncs of %s for %d puts", fsyncs, dir, puts)
	}
	t.Logf("%d puts into one directory, %d fsyncs of it", puts, fsyncs)
}

// TestPutRefusesAnotherCount: a reader that yields more or fewer bytes than
// declared fails the put and stores nothing, whether the driver writes
// from the reader's own bytes (io.WriterTo, as a bytes.Reader) or copies
// through its buffer.
func TestPutRefusesAnotherCount(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int64
	}{
		{"longer, WriterTo", bytes.NewReader([]byte("abcde")), 4},
		{"shorter, WriterTo", bytes.NewReader([]byte("abc")), 4},
		{"longer, plain reader", strings.NewReader("abcde"), 4},
		{"longer, large declared", bytes.NewReader(make([]byte, 1<<20+1)), 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "m/aa/" + strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)
			if err := s.Put(t.Context(), name, tc.r, tc.size); err == nil {
				t.Fatalf("put of a body not of its declared %d bytes succeeded", tc.size)
			}
			if _, err := s.Stat(t.Context(), name); !errors.Is(err, site.ErrNotFound) {
				t.Fatalf("refused put left a blob: %v", err)
			}
			if ents, _ := os.ReadDir(filepath.Join(s.root, tmpDir)); len(ents) != 0 {
				t.Fatalf("refused put left %d temporary files", len(ents))
			}
		})
	}
}

// TestNewInMakesNothingOutsideItsParent: NewIn makes the site through the
// open parent: never the parent itself, and, when the parent's path is
// taken by another directory meanwhile (a volume unmounted, an empty
// mount point in its place), nothing at the path: what it makes goes to
// the directory it opened.
func TestNewInMakesNothingOutsideItsParent(t *testing.T) {
	vol := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(vol, 0o700); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(vol)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := NewIn(r, "guest")
	if err != nil {
		t.Fatal(err)
	}
	if s.Root() != filepath.Join(vol, "guest") {
		t.Fatalf("root %s", s.Root())
	}
	if missing, err := s.MissingTopDirs(); err != nil || len(missing) != 0 {
		t.Fatalf("a new site lacks %v: %v", missing, err)
	}
	if _, err := NewIn(r, "../escape"); err == nil {
		t.Fatal("a site made outside its parent")
	}
	// The volume goes; an empty directory takes its path.
	if err := os.Rename(vol, vol+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(vol, 0o700); err != nil {
		t.Fatal(err)
	}
	// Made in the opened directory, it is not at its path: unavailable.
	if _, err := NewIn(r, "other"); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("a site made in a directory no longer at its path: %v", err)
	}
	if ents, _ := os.ReadDir(vol); len(ents) != 0 {
		t.Fatalf("made in the directory now at the path: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(vol+".away", "other", "s")); err != nil {
		t.Fatalf("not made in the opened directory: %v", err)
	}
}

// countingReader yields bytes forever, or until limit bytes (when positive),
// and counts those it yielded.
type countingReader struct{ n, limit int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limit > 0 && c.n >= c.limit {
		return 0, io.EOF
	}
	if c.limit > 0 && int64(len(p)) > c.limit-c.n {
		p = p[:c.limit-c.n]
	}
	for i := range p {
		p[i] = byte(c.n + int64(i))
	}
	c.n += int64(len(p))
	return len(p), nil
}

// endlessWriterTo writes chunks of bytes to the writer it is given until a
// write fails (or up to limit bytes), counting the bytes the writer took.
type endlessWriterTo struct{ took, limit int64 }

func (e *endlessWriterTo) Read(p []byte) (int, error) { panic("read: WriteTo expected") }

func (e *endlessWriterTo) WriteTo(w io.Writer) (int64, error) {
	chunk := bytes.Repeat([]byte("w"), 512)
	for e.took < e.limit {
		n, err := w.Write(chunk)
		e.took += int64(n)
		if err != nil {
			return e.took, err
		}
	}
	return e.took, nil
}

// TestPutStopsPastTheDeclaredSize: a reader longer than declared, by far
// (as one that never ends would be), is refused after at most one byte
// past the declared size has been read (through the page cache and through
// O_DIRECT buffers, sizes aligned and not), or, when it writes itself
// (io.WriterTo), at its first write past the declared size: the
// temporary file never grows past the declared size, so such a reader
// cannot fill the disk before it is refused. Nothing is left behind.
func TestPutStopsPastTheDeclaredSize(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const far = 64 << 20 // what the reader would yield if read to its end
	for _, size := range []int64{0, 1, 3000, 64 << 10, directMin - 1, directMin, 2*directMin + 4096, 3*directMin + 5} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			name := fmt.Sprintf("m/aa/long-%d", size)
			check := func(how string, err error) {
				t.Helper()
				if !errors.Is(err, errLonger) || !strings.Contains(err.Error(), fmt.Sprintf(" %d bytes declared", size)) {
					t.Errorf("%s: put of a reader longer than its %d bytes declared: %v, want an error naming them", how, size, err)
				}
				if _, err := s.Stat(t.Context(), name); !errors.Is(err, site.ErrNotFound) {
					t.Errorf("%s: refused put left a blob: %v", how, err)
				}
				if ents, _ := os.ReadDir(filepath.Join(s.root, tmpDir)); len(ents) != 0 {
					t.Errorf("%s: refused put left %d temporary files", how, len(ents))
				}
			}
			r := &countingReader{limit: size + far}
			check("reader", s.Put(t.Context(), name, r, size))
			if r.n > size+1 {
				t.Errorf("reader: %d bytes read for a put of %d declared, want at most %d", r.n, size, size+1)
			}
			if size >= directMin {
				return // written through copyIn, whatever the reader
			}
			w := &endlessWriterTo{limit: size + far}
			check("WriterTo", s.Put(t.Context(), name, w, size))
			if w.took > size {
				t.Errorf("WriterTo: %d bytes written for a put of %d declared, want at most %d", w.took, size, size)
			}
		})
	}
}

// A large blob is written with O_DIRECT at its offsets (through the
// process's io_uring where there is one) and its unaligned tail through
// the page cache: every byte lands where it belongs, whatever the size.
func TestPutLargeBlobContent(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{directMin, directMin + 5, 2*directMin + 4096, 3*directMin + 4097, 5<<20 - 1} {
		want := make([]byte, size)
		crand.Read(want)
		name := fmt.Sprintf("s/aa/content-%d", size)
		// An io.Reader without WriteTo, yielding odd-sized pieces.
		r := io.LimitReader(&chunky{b: want}, size)
		if err := s.Put(t.Context(), name, r, size); err != nil {
			t.Fatalf("put of %d bytes: %v", size, err)
		}
		rc, err := s.Get(t.Context(), name, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("blob of %d bytes read back as %d bytes (%v), equal %v", size, len(got), err, bytes.Equal(got, want))
		}
	}
}

// chunky yields b in pieces of 100,003 bytes at most.
type chunky struct{ b []byte }

func (c *chunky) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 100_003)], c.b)
	c.b = c.b[n:]
	return n, nil
}

// askReader yields data and closes asked when it is asked for bytes at or
// past at.
type askReader struct {
	data  []byte
	pos   int
	at    int
	asked chan struct{}
}

func (a *askReader) Read(p []byte) (int, error) {
	if a.pos >= a.at && a.asked != nil {
		close(a.asked)
		a.asked = nil
	}
	if a.pos == len(a.data) {
		return 0, io.EOF
	}
	n := copy(p, a.data[a.pos:])
	a.pos += n
	return n, nil
}

// TestLargePutReadsWhileWriting: a large blob's next chunk is read while
// the one before is written (the first write waits here until the source
// has been asked for the second chunk), and the blob, its unaligned tail
// included, is whole.
func TestLargePutReadsWhileWriting(t *testing.T) {
	root := t.TempDir()
	probe, err := os.OpenFile(filepath.Join(root, "probe"), os.O_WRONLY|os.O_CREATE|unix.O_DIRECT, 0o600)
	if err != nil {
		t.Skipf("the filesystem of %s refuses O_DIRECT: %v", root, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+100)
	for i := range data {
		data[i] = byte(i * 7)
	}
	asked := make(chan struct{})
	src := &askReader{data: data, at: 1 << 20, asked: asked}
	overlapped := make(chan bool, 1)
	testHookDirectWrite = func(off int64) {
		if off != 0 {
			return
		}
		select {
		case <-asked:
			overlapped <- true
		case <-t.Context().Done():
		case <-time.After(10 * time.Second):
			overlapped <- false // the source is not read during the write: do not hang
		}
	}
	t.Cleanup(func() { testHookDirectWrite = nil })
	if err := s.Put(t.Context(), "s/ab/big", src, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-overlapped:
		if !ok {
			t.Fatal("the second chunk was not read while the first was written")
		}
	default:
		t.Fatal("no O_DIRECT write was made")
	}
	rc, err := s.Get(t.Context(), "s/ab/big", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob read back: %d bytes, equal %v, %v", len(got), bytes.Equal(got, data), err)
	}
}
