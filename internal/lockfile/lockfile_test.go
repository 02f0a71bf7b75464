package lockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTryLockExcludesAndNamesHolder: two opens of one file, or of one
// directory, exclude each other (even within one process), the refused
// side can name the holder, and closing the holder's file frees the lock.
func TestTryLockExcludesAndNamesHolder(t *testing.T) {
	d := t.TempDir()
	file := filepath.Join(d, "lock")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, d} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			a, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if err := TryLock(a); err != nil {
				t.Fatal(err)
			}
			b, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := TryLock(b); !errors.Is(err, ErrHeld) {
				t.Fatalf("a second lock: %v, want ErrHeld", err)
			}
			fi, err := b.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := HolderOf(fi), fmt.Sprintf("process %d (", os.Getpid()); !strings.HasPrefix(got, want) {
				t.Errorf("holder %q, want %q…", got, want)
			}
			if got := Holder(path); got != HolderOf(fi) {
				t.Errorf("Holder(path) %q, HolderOf %q", got, HolderOf(fi))
			}
			if got := HolderOfFile(b); got != HolderOf(fi) {
				t.Errorf("HolderOfFile %q, HolderOf %q", got, HolderOf(fi))
			}
			a.Close()
			if err := TryLock(b); err != nil {
				t.Fatalf("after the holder closed: %v", err)
			}
		})
	}
	if got := Holder(filepath.Join(d, "nobody-locks-this")); got != "another process" {
		t.Errorf("holder of a missing file: %q", got)
	}
}

// TestHolderUnderChurn: the holder is named while other locks come and
// go. /proc/locks is read a page at a time, and a release ahead of the
// reader between two pages shifts the holder's line past it.
func TestHolderUnderChurn(t *testing.T) {
	d := t.TempDir()
	held := filepath.Join(d, "held")
	if err := os.WriteFile(held, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := os.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := TryLock(a); err != nil {
		t.Fatal(err)
	}
	fi, err := a.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// Enough other locks that /proc/locks spans pages, taken and
	// released without pause until the reads are done.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		var files []*os.File
		for i := range 100 {
			p := filepath.Join(d, fmt.Sprintf("churn-%d-%d", g, i))
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			files = append(files, f)
		}
		wg.Go(func() {
			for {
				for _, f := range files {
					select {
					case <-stop:
						return
					default:
					}
					_ = TryLock(f)
					_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
					_ = TryLock(f)
				}
			}
		})
	}
	want := fmt.Sprintf("process %d (", os.Getpid())
	missed := 0
	const reads = 1000
	for range reads {
		if got := HolderOf(fi); !strings.HasPrefix(got, want) {
			missed++
		}
	}
	close(stop)
	wg.Wait()
	if missed > 0 {
		t.Errorf("the holder was not named in %d of %d reads under churn", missed, reads)
	}
}
