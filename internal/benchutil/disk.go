package benchutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DiskStat is what the kernel counts for a block device since boot
// (/sys/block/<dev>/stat, Documentation/block/stat.rst): completed reads and
// writes with their sectors and milliseconds (a request's time from its
// queueing to its completion, summed over requests), the milliseconds with
// at least one request in flight and the same weighted by their number,
// and completed flush requests and the milliseconds spent in them. A flush
// is what the device is asked for by fsync and fdatasync on a disk with a
// volatile write cache; the block layer merges the ones that arrive while
// another is in flight, so the device may complete fewer flushes than the
// system calls that asked.
type DiskStat struct {
	Reads        uint64 // read I/Os completed (field 1)
	ReadSectors  uint64 // 512-byte sectors read (field 3)
	ReadMs       uint64 // milliseconds spent reading (field 4)
	Writes       uint64 // write I/Os completed (field 5)
	WriteSectors uint64 // 512-byte sectors written (field 7)
	WriteMs      uint64 // milliseconds spent writing (field 8)
	BusyMs       uint64 // milliseconds with a request in flight (field 10)
	WeightedMs   uint64 // milliseconds spent by all requests, summed (field 11)
	Flushes      uint64 // flush requests completed (field 16)
	FlushMs      uint64 // milliseconds spent flushing (field 17)
}

// Sub returns the counts of s since earlier.
func (s DiskStat) Sub(earlier DiskStat) DiskStat {
	return DiskStat{
		Reads:        s.Reads - earlier.Reads,
		ReadSectors:  s.ReadSectors - earlier.ReadSectors,
		ReadMs:       s.ReadMs - earlier.ReadMs,
		Writes:       s.Writes - earlier.Writes,
		WriteSectors: s.WriteSectors - earlier.WriteSectors,
		WriteMs:      s.WriteMs - earlier.WriteMs,
		BusyMs:       s.BusyMs - earlier.BusyMs,
		WeightedMs:   s.WeightedMs - earlier.WeightedMs,
		Flushes:      s.Flushes - earlier.Flushes,
		FlushMs:      s.FlushMs - earlier.FlushMs,
	}
}

// Disk is the block device that holds a directory: the whole disk, when
// the directory's filesystem is on a partition of it.
type Disk struct {
	Name string // as in /sys/block, e.g. vda
	stat string // its stat file
}

// DiskOf returns the block device whose filesystem holds dir, found from
// the filesystem's device number (/sys/dev/block/MAJOR:MINOR, or its
// parent for a partition). It fails, saying why, where there is none to
// count (tmpfs, overlay and other filesystems on no block device) or the
// kernel does not count flushes (before Linux 5.5).
func DiskOf(dir string) (*Disk, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	major, minor := unix.Major(st.Dev), unix.Minor(st.Dev)
	link := fmt.Sprintf("/sys/dev/block/%d:%d", major, minor)
	p, err := filepath.EvalSymlinks(link)
	if err != nil {
		return nil, fmt.Errorf("%s is on device %d:%d, which is no block device (%s: %v)", dir, major, minor, link, errors.Unwrap(err))
	}
	if _, err := os.Stat(filepath.Join(p, "partition")); err == nil {
		p = filepath.Dir(p)
	}
	d := &Disk{Name: filepath.Base(p), stat: filepath.Join(p, "stat")}
	if _, err := d.Stat(); err != nil {
		return nil, err
	}
	return d, nil
}

// Stat reads the device's counters now.
func (d *Disk) Stat() (DiskStat, error) {
	b, err := os.ReadFile(d.stat)
	if err != nil {
		return DiskStat{}, err
	}
	return parseDiskStat(d.stat, string(b))
}

// parseDiskStat reads the fields of a block device's stat file.
func parseDiskStat(name, text string) (DiskStat, error) {
	f := strings.Fields(text)
	if len(f) < 17 {
		return DiskStat{}, fmt.Errorf("%s: %d fields, want 17 (a kernel that counts flushes, Linux 5.5 or later)", name, len(f))
	}
	var v [17]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return DiskStat{}, fmt.Errorf("%s: field %d: %w", name, i+1, err)
		}
		v[i] = n
	}
	return DiskStat{Reads: v[0], ReadSectors: v[2], ReadMs: v[3], Writes: v[4], WriteSectors: v[6], WriteMs: v[7], BusyMs: v[9], WeightedMs: v[10], Flushes: v[15], FlushMs: v[16]}, nil
}
