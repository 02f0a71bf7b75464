package benchutil

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStartProfiles: each path asked for gets a profile or trace with
// something in it once stopped; an empty path starts nothing (a second
// CPU profile at once would fail).
func TestStartProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, tr := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "get.trace")
	stop := StartProfiles(t, cpu, tr)
	sum := 0
	for i := range 1 << 20 {
		sum += i
	}
	_ = sum
	stop()
	for _, p := range []string{cpu, tr} {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() == 0 {
			t.Fatalf("%s: %v, size %v", p, err, fi)
		}
	}
	StartProfiles(t, "", "")()
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("%d files, want the two asked for", len(entries))
	}
	// Stopped: another profile can start.
	StartProfiles(t, filepath.Join(dir, "again.pprof"), "")()
}
