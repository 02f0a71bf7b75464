package benchutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseDiskStat(t *testing.T) {
	// /sys/block/vda/stat on the development VM.
	const line = "   11877     3888   721818     3440     5115    71302  4423232    15321        0     3328    19572     4703        3   519904      797       26       11\n"
	got, err := parseDiskStat("stat", line)
	if err != nil {
		t.Fatal(err)
	}
	want := DiskStat{Reads: 11877, ReadSectors: 721818, ReadMs: 3440, Writes: 5115, WriteSectors: 4423232, WriteMs: 15321, BusyMs: 3328, WeightedMs: 19572, Flushes: 26, FlushMs: 11}
	if got != want {
		t.Errorf("parsed %+v, want %+v", got, want)
	}
	later := DiskStat{Reads: 11880, ReadSectors: 721900, ReadMs: 3450, Writes: 5120, WriteSectors: 4423300, WriteMs: 15330, BusyMs: 3340, WeightedMs: 19600, Flushes: 30, FlushMs: 14}
	if d := later.Sub(got); d != (DiskStat{Reads: 3, ReadSectors: 82, ReadMs: 10, Writes: 5, WriteSectors: 68, WriteMs: 9, BusyMs: 12, WeightedMs: 28, Flushes: 4, FlushMs: 3}) {
		t.Errorf("difference %+v", d)
	}
	// A kernel before 5.5 writes 11 fields (no discards, no flushes).
	if _, err := parseDiskStat("stat", strings.Join(strings.Fields(line)[:11], " ")); err == nil || !strings.Contains(err.Error(), "17") {
		t.Errorf("11 fields: %v, want an error asking for 17", err)
	}
	if _, err := parseDiskStat("stat", strings.Replace(line, "5115", "x", 1)); err == nil || !strings.Contains(err.Error(), "field 5") {
		t.Errorf("a field not a number: %v, want an error naming field 5", err)
	}
}

// TestDiskOf finds the device under a temporary directory and sees its
// counters move with a durable write, where the filesystem is on a block
// device; and refuses tmpfs, which is on none.
func TestDiskOf(t *testing.T) {
	d := t.TempDir()
	disk, err := DiskOf(d)
	if err != nil {
		t.Skipf("no block device under %s: %v", d, err)
	}
	if _, err := os.Stat(filepath.Join("/sys/block", disk.Name)); err != nil {
		t.Errorf("device %q is not a whole disk in /sys/block: %v", disk.Name, err)
	}
	before, err := disk.Stat()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(d, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 1<<16)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	after, err := disk.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if n := after.Sub(before); n.Writes == 0 || n.WriteSectors < 128 {
		t.Errorf("64 KiB written and flushed on %s, but its counters moved by %+v", disk.Name, n)
	}

	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		return
	}
	if _, err := DiskOf("/dev/shm"); err == nil || !strings.Contains(err.Error(), "no block device") {
		t.Errorf("tmpfs: %v, want an error saying it is no block device", err)
	}
}
