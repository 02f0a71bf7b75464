package dir

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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
