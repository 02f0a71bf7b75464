package taxii

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenIndexHeldNamesHolder: the TAXII index is one process's; a
// second open waits for it, then names the process that holds it.
func TestOpenIndexHeldNamesHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "taxii.db")
	x, err := OpenIndex(path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	_, err = OpenIndex(path)
	if want := fmt.Sprintf("open TAXII index %s: in use by process %d (", path, os.Getpid()); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a second open: %v, want %q…", err, want)
	}
}
