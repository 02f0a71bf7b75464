// Package pagecache tells how much of a file the kernel's page cache
// holds, for benchmarks and tests that must know whether a read will be
// cold.
package pagecache

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Resident counts f's bytes in the page cache, a page at a time
// (mincore over a read-only mapping of f).
func Resident(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return 0, err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, err
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (fi.Size()+page-1)/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return 0, e
	}
	var n int64
	for i, v := range vec {
		if v&1 != 0 {
			n += min(page, fi.Size()-int64(i)*page)
		}
	}
	return n, nil
}
