package lockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
