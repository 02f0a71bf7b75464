package dir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFlushesHandOff(t *testing.T) {
	d := t.TempDir()
	f, err := os.Create(filepath.Join(d, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("x"); err != nil {
		t.Fatal(err)
	}
	if err := fdatasync(int(f.Fd())); err != nil {
		t.Errorf("fdatasync: %v", err)
	}
	if err := fsync(int(f.Fd())); err != nil {
		t.Errorf("fsync: %v", err)
	}
	dd, err := os.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsync(int(dd.Fd())); err != nil {
		t.Errorf("fsync of a directory: %v", err)
	}
	dd.Close()
	// The errors are the system call's.
	if err := fdatasync(-1); !errors.Is(err, unix.EBADF) {
		t.Errorf("fdatasync of no descriptor: %v, want EBADF", err)
	}
	if err := fsync(-1); !errors.Is(err, unix.EBADF) {
		t.Errorf("fsync of no descriptor: %v, want EBADF", err)
	}

	// Many at once on one P, with the collector running: each gives up
	// the P and takes one back when its call returns.
	onOneP(t, "fdatasync from many goroutines", func(int) error {
		for range 4 {
			if err := fdatasync(int(f.Fd())); err != nil {
				return err
			}
			_ = make([]byte, 64<<10)
		}
		return nil
	})
	f.Close()
}

// The writes and renames that give up the P do what pwrite(2) and
// renameat(2) do, with their errors, from many goroutines on one P.
func TestWritesAndRenamesHandOff(t *testing.T) {
	d := t.TempDir()
	f, err := os.Create(filepath.Join(d, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := make([]byte, 3<<16)
	for i := range want {
		want[i] = byte(i * 13)
	}
	// Out of order, at their offsets; the file's position is not used.
	for _, i := range []int{2, 0, 1} {
		if err := pwriteAll(int(f.Fd()), want[i<<16:(i+1)<<16], int64(i)<<16); err != nil {
			t.Fatalf("pwriteAll piece %d: %v", i, err)
		}
	}
	if got, err := os.ReadFile(f.Name()); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("file holds %d bytes (%v), equal %v", len(got), err, bytes.Equal(got, want))
	}
	if err := pwriteAll(-1, want[:1], 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("pwriteAll to no descriptor: %v, want EBADF", err)
	}
	dfd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	if err := renameat(dfd, "a", dfd, "b"); err != nil {
		t.Fatalf("renameat: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d, "b")); err != nil {
		t.Fatalf("after the rename: %v", err)
	}
	if err := renameat(dfd, "a", dfd, "c"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("rename of a missing name: %v, want ENOENT", err)
	}

	onOneP(t, "writes and renames from many goroutines", func(w int) error {
		g, err := os.Create(filepath.Join(d, fmt.Sprint("w", w)))
		if err != nil {
			return err
		}
		defer g.Close()
		for i := range 4 {
			if err := pwriteAll(int(g.Fd()), want[i<<14:(i+1)<<14], int64(i)<<14); err != nil {
				return err
			}
			_ = make([]byte, 64<<10)
		}
		if got, err := os.ReadFile(g.Name()); err != nil || !bytes.Equal(got, want[:4<<14]) {
			return fmt.Errorf("writer %d: file differs (%v)", w, err)
		}
		return renameat(dfd, fmt.Sprint("w", w), dfd, fmt.Sprint("r", w))
	})
}

// onOneP runs fn in 32 goroutines at once with GOMAXPROCS 1 and the
// collector running beside them, and fails t (saying what) with each
// error returned.
func onOneP(t *testing.T, what string, fn func(w int) error) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 32 {
		wg.Go(func() {
			if err := fn(w); err != nil {
				errs <- err
			}
		})
	}
	wg.Go(func() {
		for range 4 {
			runtime.GC()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("%s: %v", what, err)
	}
}

// A blob's reads (the small ones and those that give up the P) return
// what os.File.ReadAt returns: the same bytes, counts and io.EOF, at any
// offset and size, short or past the end, from many goroutines on one P;
// the blob is opened as Get opens it, with O_NONBLOCK left on.
func TestReadsHandOff(t *testing.T) {
	d := t.TempDir()
	want := make([]byte, 5*handoffReadMin+123)
	for i := range want {
		want[i] = byte(i*7 + i>>9)
	}
	name := filepath.Join(d, "a")
	if err := os.WriteFile(name, want, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := openTestBlob(t, d, "a")
	defer b.Close()
	size := int64(len(want))
	cases := []struct{ off, n int64 }{
		{0, handoffReadMin}, {1, handoffReadMin}, {0, size}, {17, size - 17}, {3, 2 * handoffReadMin},
		{size - handoffReadMin, handoffReadMin}, {size - 10, handoffReadMin}, {size, handoffReadMin},
		{size + 4096, handoffReadMin}, {0, size + 1}, {0, handoffReadMin - 1}, {size - 5, 100},
	}
	// From the page cache (RWF_NOWAIT), after the pages are dropped (the
	// read that must wait, handing its P on), and where the kernel
	// refuses RWF_NOWAIT.
	defer nowaitRefused.Store(nowaitRefused.Load())
	for _, how := range []string{"cached", "dropped", "no RWF_NOWAIT"} {
		nowaitRefused.Store(how == "no RWF_NOWAIT")
		for _, c := range cases {
			wp, gp := make([]byte, c.n), make([]byte, c.n)
			wn, werr := f.ReadAt(wp, c.off)
			if how != "cached" {
				if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
					t.Fatal(err)
				}
			}
			gn, gerr := b.ReadAt(gp, c.off)
			if gn != wn || !errors.Is(gerr, werr) && gerr != werr || !bytes.Equal(gp[:gn], wp[:wn]) {
				t.Errorf("%s: ReadAt(%d bytes at %d): got %d, %v; os.File.ReadAt gives %d, %v", how, c.n, c.off, gn, gerr, wn, werr)
			}
		}
	}
	nowaitRefused.Store(false)
	if n, err := b.ReadAt(make([]byte, handoffReadMin), -1); n != 0 || err == nil {
		t.Errorf("ReadAt at -1: %d, %v; want an error", n, err)
	}
	// A blob closed: os.ErrClosed, with its path, for every read, though
	// its descriptor's number now names another file.
	cb := openTestBlob(t, d, "a")
	if err := cb.Close(); err != nil {
		t.Fatal(err)
	}
	other, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, n := range []int{handoffReadMin, 10} {
		if got, err := cb.ReadAt(make([]byte, n), 0); got != 0 || !errors.Is(err, os.ErrClosed) || !strings.Contains(err.Error(), name) {
			t.Errorf("ReadAt(%d bytes) of a closed blob: %d, %v; want os.ErrClosed naming %s", n, got, err, name)
		}
	}
	if err := cb.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("a second Close: %v, want os.ErrClosed", err)
	}
	// A section of it through io.SectionReader, as Get returns it.
	onOneP(t, "reads from many goroutines", func(w int) error {
		off := int64(w * 4099 % len(want))
		got, err := io.ReadAll(io.NewSectionReader(b, off, size-off))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want[off:]) {
			return fmt.Errorf("section at %d: %d bytes differ from the file's", off, len(got))
		}
		_ = make([]byte, 64<<10)
		return nil
	})
}

// openTestBlob opens rel in dir as Get does (openBlob).
func openTestBlob(t *testing.T, dir, rel string) *blob {
	t.Helper()
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	b, _, err := openBlob(dfd, dir, rel, false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Directory flushes that give up the P (syncDirAt) do what fsync(2) does,
// between creates (openat2, as the driver makes its files: the file made
// with its mode, the create's errors: an existing name, a missing
// directory, a link on the way, a name outside), from many goroutines on
// one P.
func TestDirSyncsHandOff(t *testing.T) {
	d := t.TempDir()
	if err := os.Mkdir(filepath.Join(d, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(d, "sub"), filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	create := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	fd, err := openat2(dfd, "sub/a", create, 0o640)
	if err != nil {
		t.Fatalf("create sub/a: %v", err)
	}
	if _, err := unix.Write(fd, []byte("x")); err != nil {
		t.Errorf("write: %v", err)
	}
	unix.Close(fd)
	if fi, err := os.Stat(filepath.Join(d, "sub", "a")); err != nil || fi.Mode().Perm()&^0o640 != 0 || fi.Mode().Perm()&0o600 != 0o600 || fi.Size() != 1 {
		t.Errorf("sub/a after the create: %v, %v", fi, err)
	}
	for _, c := range []struct {
		rel  string
		want error
	}{
		{"sub/a", unix.EEXIST}, {"none/a", unix.ENOENT}, {"link/b", unix.ELOOP}, {"../b", unix.EXDEV},
	} {
		fd, err := openat2(dfd, c.rel, create, 0o600)
		if err == nil {
			unix.Close(fd)
		}
		if !errors.Is(err, c.want) {
			t.Errorf("create %s: %v, want %v", c.rel, err, c.want)
		}
	}
	if _, err := os.Lstat(filepath.Join(d, "sub", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a create through a link made sub/b: %v", err)
	}
	if err := syncDirAt(filepath.Join(d, "sub")); err != nil {
		t.Errorf("syncDirAt: %v", err)
	}
	if err := syncDirAt(filepath.Join(d, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("syncDirAt of a missing directory: %v", err)
	}
	onOneP(t, "creates from many goroutines", func(w int) error {
		for i := range 8 {
			fd, err := openat2(dfd, fmt.Sprintf("sub/w%d-%d", w, i), create, 0o600)
			if err != nil {
				return err
			}
			unix.Close(fd)
			if err := syncDirAt(filepath.Join(d, "sub")); err != nil {
				return err
			}
		}
		return nil
	})
	if ents, err := os.ReadDir(filepath.Join(d, "sub")); err != nil || len(ents) != 1+32*8 {
		t.Errorf("sub holds %d entries (%v), want %d", len(ents), err, 1+32*8)
	}
}
