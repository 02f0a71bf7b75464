package lockfile

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Holder names the process holding a flock on path, from Linux's
// /proc/locks, as "process 1234 (embassy)"; "another process" where that
// cannot be told (another system, another PID namespace).
func Holder(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return unknownHolder
	}
	return HolderOf(fi)
}

const unknownHolder = "another process"

// HolderOfFile is [HolderOf] for an open file f: the process holding the
// lock on the very file f has open (the one [TryLock] found held).
func HolderOfFile(f *os.File) string {
	fi, err := f.Stat()
	if err != nil {
		return unknownHolder
	}
	return HolderOf(fi)
}

// HolderOf is [Holder] for the file or directory fi describes (from Stat
// of an open file, so that the one locked is the one named).
func HolderOf(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return unknownHolder
	}
	dev := uint64(st.Dev)
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), st.Ino)
	// /proc/locks is read a page at a time, and locks taken or released
	// by others between two reads shift the lines under the reader: a
	// holder's line can be skipped. Read it again before saying no one
	// could be named.
	for range 3 {
		b, err := os.ReadFile("/proc/locks")
		if err != nil {
			return unknownHolder
		}
		if h, ok := holderIn(string(b), want); ok {
			return h
		}
	}
	return unknownHolder
}

// holderIn names the process /proc/locks text locks says holds a flock on
// the file want ("major:minor:inode", in hex as the kernel prints them);
// false when no line names that file.
func holderIn(locks, want string) (string, bool) {
	for line := range strings.SplitSeq(locks, "\n") {
		f := strings.Fields(line)
		// "1: FLOCK  ADVISORY  WRITE 1047 fe:00:10012765 0 EOF"; waiters
		// are listed with "->" and hold nothing.
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != want {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil || pid <= 0 {
			return unknownHolder, true
		}
		name, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			return fmt.Sprintf("process %d", pid), true
		}
		return fmt.Sprintf("process %d (%s)", pid, strings.TrimSpace(string(name))), true
	}
	return "", false
}
