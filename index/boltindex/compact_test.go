package boltindex

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// compactFixture is an index at path holding versions (some deleted, so
// that the file has free pages), audit entries not yet drained, an upload
// and commit generations; check verifies through the Index that a file at
// path holds all of it.
type compactFixture struct {
	path string
	kept []index.Version
}

func newCompactFixture(t *testing.T) *compactFixture {
	t.Helper()
	f := &compactFixture{path: filepath.Join(t.TempDir(), "index.db")}
	ix, err := Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	ctx := t.Context()
	vs := smallVersions(3000)
	for i := range vs {
		if i%100 == 0 {
			vs[i].Audit = []byte(fmt.Sprint("entry ", i))
		}
	}
	for i := 0; i < len(vs); i += 100 {
		if err := ix.PutMany(ctx, vs[i:i+100]); err != nil {
			t.Fatal(err)
		}
	}
	// Deletes from many writers: group-committed.
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < len(vs); i += 16 {
				if i%3 != 0 {
					if err := ix.Delete(ctx, vs[i].Vault, vs[i].Key, vs[i].ID); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	for i, v := range vs {
		if i%3 == 0 {
			f.kept = append(f.kept, v)
		}
	}
	if err := ix.PutUpload(ctx, index.Upload{Vault: "bench", ID: "up-1", Key: "big", Created: 5}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *compactFixture) check(t *testing.T) {
	t.Helper()
	ix, err := Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	ctx := t.Context()
	if err := ix.CheckComplete(); err != nil {
		t.Fatal(err)
	}
	for _, v := range f.kept {
		got, err := ix.Get(ctx, v.Vault, v.Key, v.ID)
		if err != nil || !bytes.Equal(got.Envelope, v.Envelope) || got.ETag != v.ETag || got.Created != v.Created {
			t.Fatalf("%s: %+v, %v", v.Key, got, err)
		}
	}
	st, err := ix.Stats(ctx)
	if err != nil || st.Versions != int64(len(f.kept)) {
		t.Fatalf("stats %+v, %v; want %d versions", st, err, len(f.kept))
	}
	keys, _, err := ix.PendingAudit(ctx, 0, 100)
	if err != nil || len(keys) != 30 {
		t.Fatalf("%d audit entries pending (%v), want 30", len(keys), err)
	}
	if u, err := ix.GetUpload(ctx, "bench", "up-1"); err != nil || u.Key != "big" {
		t.Fatalf("upload: %+v, %v", u, err)
	}
	if g, err := ix.Generations(ctx); err != nil || g["bench"] == 0 {
		t.Fatalf("generations %v, %v", g, err)
	}
}

// TestCompact: the compacted index holds what the old one held (versions
// and their envelopes, audit entries not yet drained, uploads, commit
// generations) in a smaller file with no free pages, and new envelopes
// get numbers after the old ones' (the buckets' sequences are kept: a new
// envelope under an old number would replace a version's).
func TestCompact(t *testing.T) {
	f := newCompactFixture(t)
	st, err := Compact(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if st.After >= st.Before || st.Entries == 0 || st.Leftover {
		t.Errorf("stats %+v: want a smaller file", st)
	}
	if fi, err := os.Stat(f.path); err != nil || fi.Size() != st.After {
		t.Errorf("the file: %v, %v; stats say %d bytes", fi, err, st.After)
	}
	if _, err := os.Lstat(CompactTemp(f.path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is still there: %v", err)
	}
	f.check(t)
	ix, err := Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ix.Space()
	if err != nil {
		t.Fatal(err)
	}
	if s.FreePages+s.PendingPages > 2 {
		t.Errorf("compacted index: %d free and %d pending pages", s.FreePages, s.PendingPages)
	}
	more := smallVersions(200)
	for i := range more {
		more[i].Envelope = fakeEnvelope(manifest.FormatCompact, 100+i)
	}
	if err := ix.PutMany(t.Context(), more); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	f.kept = append(f.kept, more...)
	f.check(t)
}

// TestCompactInUse: an index another process (or another open in this one)
// holds is left alone, and the error names who holds it.
func TestCompactInUse(t *testing.T) {
	f := newCompactFixture(t)
	ix, err := Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(f.path)
	_, err = Compact(f.path)
	ix.Close()
	if want := fmt.Sprintf("compact index %s: in use by process %d (", f.path, os.Getpid()); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Compact of an open index: %v, want %q", err, want)
	}
	if after, _ := os.ReadFile(f.path); !bytes.Equal(before, after) {
		t.Error("the index changed")
	}
	if _, err := os.Lstat(CompactTemp(f.path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a temporary file was made: %v", err)
	}
	// No index there: none is made.
	missing := filepath.Join(t.TempDir(), "index.db")
	if _, err := Compact(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Compact of no file: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Compact made %s", missing)
	}
}

// TestCompactLeftover: a temporary file an earlier compaction left is
// removed (and said), but not when it is not a plain file of its own: a
// link to the index (symbolic or hard) makes Compact stop, the index as
// it was.
func TestCompactLeftover(t *testing.T) {
	f := newCompactFixture(t)
	tmp := CompactTemp(f.path)
	before, _ := os.ReadFile(f.path)
	for _, link := range []func(string, string) error{os.Symlink, os.Link} {
		if err := link(f.path, tmp); err != nil {
			t.Fatal(err)
		}
		_, err := Compact(f.path)
		if err == nil || !strings.Contains(err.Error(), "is in the way and is not a file an earlier compaction left") {
			t.Fatalf("Compact with a link to the index in the way: %v", err)
		}
		if after, _ := os.ReadFile(f.path); !bytes.Equal(before, after) {
			t.Fatal("the index changed")
		}
		if err := os.Remove(tmp); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(tmp, []byte("half a copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := Compact(f.path)
	if err != nil || !st.Leftover {
		t.Fatalf("Compact with a leftover: %+v, %v", st, err)
	}
	f.check(t)
}

// TestCompactRenameFails: a failure before the copy is in place leaves the
// index as it was and no temporary file.
func TestCompactRenameFails(t *testing.T) {
	f := newCompactFixture(t)
	before, _ := os.ReadFile(f.path)
	renameFile = func(string, string) error { return errors.New("injected") }
	t.Cleanup(func() { renameFile = os.Rename })
	_, err := Compact(f.path)
	if err == nil || !strings.Contains(err.Error(), "injected; the index is unchanged") {
		t.Fatalf("Compact: %v", err)
	}
	if after, _ := os.ReadFile(f.path); !bytes.Equal(before, after) {
		t.Error("the index changed")
	}
	if _, err := os.Lstat(CompactTemp(f.path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is still there: %v", err)
	}
}

// TestOpenDuringCompaction: a process that opened the index while Compact
// held it gets its lock only once Compact has put the new file in place
// and let go of the old one; it then opens the new file rather than using
// the old one, no longer at the path (its writes would be lost).
func TestOpenDuringCompaction(t *testing.T) {
	f := newCompactFixture(t)
	checked, release := make(chan struct{}), make(chan struct{})
	compactStep = func(s string) error {
		if s == "checked" {
			close(checked)
			<-release
		}
		return nil
	}
	waiting := make(chan struct{})
	fileOpened = func(p string) {
		if p == f.path {
			select {
			case <-checked:
				select {
				case <-waiting:
				default:
					close(waiting)
				}
			default:
			}
		}
	}
	t.Cleanup(func() { compactStep, fileOpened = func(string) error { return nil }, func(string) {} })
	done := make(chan error, 1)
	go func() {
		_, err := Compact(f.path)
		done <- err
	}()
	<-checked
	opened := make(chan *Index, 1)
	go func() {
		ix, err := Open(f.path)
		if err != nil {
			t.Error(err)
		}
		opened <- ix
	}()
	<-waiting // Open has the old file open and waits for its lock
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ix := <-opened
	if ix == nil {
		t.FailNow()
	}
	v := smallVersions(1)[0]
	if err := ix.Put(t.Context(), v); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	f.kept = append(f.kept, v)
	f.check(t) // the write is in the file at the path
}

// TestCompactCrash: a compaction killed at any step leaves a complete
// index, the old one or the new (the child process exits at the step, as
// a crash would, running nothing after it). The temporary file it left
// (an empty bbolt file, a complete copy, a checked one) is removed by the
// next Open, which says so, or by the next compaction. A copy that cannot
// be written (a file size limit, as a full disk) fails naming the
// temporary file, which is removed, and the index is as it was.
func TestCompactCrash(t *testing.T) {
	if spec := os.Getenv("EMBASSY_COMPACT_CHILD"); spec != "" {
		compactChild(spec)
		return
	}
	for _, step := range []string{"created", "copied", "checked", "renamed"} {
		for _, next := range []string{"open", "compact"} {
			t.Run(step+"/"+next, func(t *testing.T) {
				f := newCompactFixture(t)
				out, code := runCompactChild(t, f.path+":crash:"+step)
				if code != 3 {
					t.Fatalf("child exited %d, want 3 (killed at %s):\n%s", code, step, out)
				}
				tmp := CompactTemp(f.path)
				_, err := os.Lstat(tmp)
				left := err == nil
				if left != (step != "renamed") {
					t.Errorf("temporary file left: %v, at step %s", left, step)
				}
				if next == "open" {
					ix, err := Open(f.path)
					if err != nil {
						t.Fatal(err)
					}
					removed, kept := ix.Leftover()
					ix.Close()
					if kept != nil || (removed == tmp) != left || (removed != "" && removed != tmp) {
						t.Errorf("Open after a crash at %s: removed %q, kept %v", step, removed, kept)
					}
					if _, err := os.Lstat(tmp); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("Open left the temporary file: %v", err)
					}
					left = false
					f.check(t)
				}
				// (In the "compact" case the index is checked only after:
				// an Open would remove the temporary file first.)
				st, err := Compact(f.path)
				if err != nil || st.Leftover != left {
					t.Fatalf("the next compaction: %+v, %v", st, err)
				}
				f.check(t)
			})
		}
	}
	t.Run("full", func(t *testing.T) {
		f := newCompactFixture(t)
		before, _ := os.ReadFile(f.path)
		// 64 KiB: the copy does not fit.
		out, code := runCompactChild(t, f.path+":fsize:"+strconv.Itoa(64<<10))
		tmp := CompactTemp(f.path)
		if code != 4 || !strings.Contains(out, "write "+tmp+": ") || !strings.Contains(out, "the index is unchanged") {
			t.Fatalf("child exited %d:\n%s", code, out)
		}
		if after, _ := os.ReadFile(f.path); !bytes.Equal(before, after) {
			t.Error("the index changed")
		}
		if _, err := os.Lstat(tmp); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the temporary file is still there: %v", err)
		}
		f.check(t)
	})
}

func runCompactChild(t *testing.T, spec string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCompactCrash$")
	cmd.Env = append(os.Environ(), "EMBASSY_COMPACT_CHILD="+spec)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// compactChild runs Compact as spec ("PATH:crash:STEP" or
// "PATH:fsize:BYTES") says and exits: 3 when killed at the step, 4 on an
// error (printed), 0 otherwise.
func compactChild(spec string) {
	parts := strings.Split(spec, ":")
	path, mode, arg := parts[0], parts[1], parts[2]
	switch mode {
	case "crash":
		compactStep = func(s string) error {
			if s == arg {
				os.Exit(3)
			}
			return nil
		}
	case "fsize":
		n, _ := strconv.ParseUint(arg, 10, 64)
		// Writes past n bytes fail with EFBIG (Go ignores SIGXFSZ).
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			fmt.Println(err)
			os.Exit(5)
		}
	}
	if _, err := Compact(path); err != nil {
		fmt.Println(err)
		os.Exit(4)
	}
	os.Exit(0)
}
