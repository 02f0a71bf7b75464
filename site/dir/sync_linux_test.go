package dir

import (
	"errors"
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
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 32 {
		wg.Go(func() {
			for range 4 {
				if err := fdatasync(int(f.Fd())); err != nil {
					errs <- err
					return
				}
				_ = make([]byte, 64<<10)
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
		t.Errorf("fdatasync from many goroutines: %v", err)
	}
	f.Close()
}
