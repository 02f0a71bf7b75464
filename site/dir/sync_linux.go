package dir

import (
	"syscall"
	_ "unsafe" // for go:linkname

	"golang.org/x/sys/unix"
)

// The driver's flushes give up the goroutine's P before they block.
//
// A goroutine in an ordinary system call keeps its P (its right to run Go
// code) until the runtime's monitor takes it back, which it does only from
// a call that outlasts one of its polling intervals: 20 µs, growing to 10
// ms while it finds nothing to take. A flush of a small file takes a
// fraction of a millisecond, so writers that do little but such flushes
// hold every P in turn while the goroutines that would start the next
// writes wait runnable: few writes in flight, few requests sharing each of
// the device's flushes, the cores half idle (docs/design.md, "Small puts:
// what stalled slices wait on (issue 15, fourteenth pass)"). The runtime
// hands the P on at once for the calls it knows to block
// (entersyscallblock); the flushes here are made the same way. The calls,
// their order and their results are those of unix.Fdatasync and unix.Fsync.

// entersyscallblock and exitsyscall are among the runtime's functions kept
// for use by other packages through go:linkname (go.dev/issue/67401).
//
//go:linkname entersyscallblock runtime.entersyscallblock
func entersyscallblock()

//go:linkname exitsyscall runtime.exitsyscall
func exitsyscall()

// blockingSyscall1 makes the one-argument system call trap on fd after
// handing its P to another thread. It must not be preempted or grow its
// stack between the two runtime calls, and both must be made from the same
// frame (exitsyscall checks the stack pointer), hence nosplit and no
// calls but these.
//
//go:nosplit
//go:norace
func blockingSyscall1(trap, fd uintptr) syscall.Errno {
	entersyscallblock()
	_, _, e := syscall.RawSyscall(trap, fd, 0, 0)
	exitsyscall()
	return e
}

// fdatasync is unix.Fdatasync, giving up the P first.
func fdatasync(fd int) error {
	if e := blockingSyscall1(unix.SYS_FDATASYNC, uintptr(fd)); e != 0 {
		return e
	}
	return nil
}

// fsync is unix.Fsync, giving up the P first.
func fsync(fd int) error {
	if e := blockingSyscall1(unix.SYS_FSYNC, uintptr(fd)); e != 0 {
		return e
	}
	return nil
}
