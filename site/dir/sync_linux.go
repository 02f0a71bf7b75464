package dir

import (
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe" // and for go:linkname

	"golang.org/x/sys/unix"
)

// The driver's calls that wait for the disk give up the goroutine's P
// before they block: the flushes (fdatasync, a directory's fsync, also
// after a mkdir or a delete), the O_DIRECT writes of large blobs, the
// renames, and reads of 64 KiB or more.
//
// A goroutine in an ordinary system call keeps its P (its right to run Go
// code) until the runtime's monitor takes it back, which it does only from
// a call that outlasts one of its polling intervals: 20 µs, growing to 10
// ms while it finds nothing to take. A flush of a small file takes a
// fraction of a millisecond, so writers that do little but such flushes
// hold every P in turn while the goroutines that would start the next
// writes wait runnable: few writes in flight, few requests sharing each of
// the device's flushes, the cores half idle (docs/design.md, "Small puts:
// what stalled slices wait on (issue 15, fourteenth pass)"). Large blobs'
// 1 MiB O_DIRECT writes take milliseconds each, so while PUTs stream the
// monitor keeps finding a P to take, never slows its polling, and costs a
// large PUT CPU for every second it runs ("Blocking calls give up the P
// (issue 15, fourteenth pass)"). The runtime hands the P on at once for the
// calls it knows to block (entersyscallblock); the calls here are made the
// same way. The calls, their order and their results are those of
// unix.Fdatasync, unix.Fsync, pwrite(2) and unix.Renameat.

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

// blockingSyscall4 is blockingSyscall1 for a call of four arguments.
//
//go:nosplit
//go:norace
func blockingSyscall4(trap, a1, a2, a3, a4 uintptr) (uintptr, syscall.Errno) {
	entersyscallblock()
	r, _, e := syscall.RawSyscall6(trap, a1, a2, a3, a4, 0, 0)
	exitsyscall()
	return r, e
}

// pwriteAll writes all of p at offset off of fd, as pwrite(2) does, in
// as many calls as it takes, giving up the P before each: an O_DIRECT
// write waits for the disk.
func pwriteAll(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, e := blockingSyscall4(unix.SYS_PWRITE64, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(off))
		runtime.KeepAlive(p)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// renameat is unix.Renameat, giving up the P first: a rename waits for
// the filesystem's journal.
func renameat(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	op, err := unix.BytePtrFromString(oldpath)
	if err != nil {
		return err
	}
	np, err := unix.BytePtrFromString(newpath)
	if err != nil {
		return err
	}
	_, e := blockingSyscall4(unix.SYS_RENAMEAT, uintptr(olddirfd), uintptr(unsafe.Pointer(op)), uintptr(newdirfd), uintptr(unsafe.Pointer(np)))
	runtime.KeepAlive(op)
	runtime.KeepAlive(np)
	if e != 0 {
		return e
	}
	return nil
}

// handoffReadMin is the least a read asks for to give up the P when it
// must wait for the disk. A large GET's shard streams read a block (a
// quarter of a stripe, 256 KiB and more) at a time, and from the disk
// when the kernel's read-ahead has not got there first: such a read kept
// its P through the disk's wait, so under load the process's Ps were busy
// while its cores were not (docs/design.md, "Large GETs: reads give up the
// P (issue 15, eighteenth pass)"). A smaller read (an inline copy, a
// block's checksum) mostly finds the page cache.
const handoffReadMin = 64 << 10

// nowaitRefused is set when the kernel or filesystem refuses RWF_NOWAIT;
// reads then always give up the P first.
var nowaitRefused atomic.Bool

// preadAt reads len(p) bytes from off of fd as os.File.ReadAt does (until
// p is full, io.EOF at the file's end). Each piece is first asked of the
// page cache alone (preadv2 with RWF_NOWAIT, which returns what is cached
// without waiting, or EAGAIN): a read that finds its pages keeps the P, as
// an ordinary call does, since handing it on would cost more than the copy
// (in quiet ABBA sets of BenchmarkThroughput, handing it on for every read
// made the get slower, 0.95 and 0.87); only a read that must wait for the
// disk gives the P up first.
//
// The two EAGAINs are not the same. preadv2's says that the range is not
// all in the page cache, which is what RWF_NOWAIT asks: the read then
// waits for the disk. The waiting pread's says that the descriptor is
// O_NONBLOCK and the kernel honours that for a regular file (see
// readsBlock): the flag is cleared and the read made again, once.
func preadAt(fd int, p []byte, off int64) (int, error) {
	got := 0
	cleared := false
	for got < len(p) {
		if !nowaitRefused.Load() {
			n, e := sysPreadNowait(fd, p[got:], off+int64(got))
			switch {
			case e == 0 && n > 0:
				got += n
				continue
			case e == 0:
				return got, io.EOF
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
				// Not all cached: wait for the disk without the P.
			case e == syscall.EOPNOTSUPP || e == syscall.ENOSYS || e == syscall.EINVAL:
				nowaitRefused.Store(true)
			default:
				return got, e
			}
		}
		n, e := sysPreadWait(fd, p[got:], off+int64(got))
		if e == syscall.EINTR {
			continue
		}
		if e == syscall.EAGAIN && !cleared {
			cleared = true
			if err := readsBlock(fd); err != nil {
				return got, err
			}
			continue
		}
		if e != 0 {
			return got, e
		}
		if n == 0 {
			return got, io.EOF
		}
		got += n
	}
	return got, nil
}

// A blob read through the page cache keeps the O_NONBLOCK it was opened
// with (blob), which a read of a regular file ignores on Linux. open(2)'s
// manual warns that this "might eventually be implemented" for regular
// files; a kernel or filesystem that did would answer a read that must
// wait for the disk with EAGAIN. Such a read clears the flag (readsBlock)
// and is made again, so that it waits as it would have: a system call
// only then, none on the reads that succeed (docs/design.md, "Robustness
// leftovers of the nineteenth pass (twentieth pass)").

// readsBlock clears O_NONBLOCK on fd, a blob's descriptor read through the
// page cache, whose only other file status flag is the access mode that
// F_SETFL leaves alone (O_DIRECT is set only on a cold read's, by the one
// F_SETFL that also clears O_NONBLOCK).
func readsBlock(fd int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0)
	return err
}

// The reads of a blob's descriptor, as variables so that a test can answer
// as a kernel that honoured O_NONBLOCK for regular files would
// (TestNonblockingRegularFile).
var (
	// sysPread is pread(2), keeping the P.
	sysPread = func(fd int, p []byte, off int64) (int, syscall.Errno) {
		r, _, e := unix.Syscall6(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(off), 0, 0)
		runtime.KeepAlive(p)
		return int(r), e
	}
	// sysPreadWait is pread(2), giving up the P first.
	sysPreadWait = func(fd int, p []byte, off int64) (int, syscall.Errno) {
		r, e := blockingSyscall4(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(off))
		runtime.KeepAlive(p)
		return int(r), e
	}
	// sysPreadNowait is preadv2(fd, p, off, RWF_NOWAIT): what the page
	// cache holds of the range, without waiting for the disk.
	sysPreadNowait = func(fd int, p []byte, off int64) (int, syscall.Errno) {
		iov := unix.Iovec{Base: &p[0]}
		iov.SetLen(len(p))
		r, _, e := unix.Syscall6(unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1, uintptr(off), 0, unix.RWF_NOWAIT)
		runtime.KeepAlive(p)
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
)

// preadOnce is unix.Pread, giving up the P first: a cold read (O_DIRECT)
// always waits for the disk.
func preadOnce(fd int, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, e := sysPreadWait(fd, p, off)
	if e != 0 {
		return 0, e
	}
	return n, nil
}

// syncDirAt flushes directory dir's entries (fsync of a descriptor of
// it), giving up the P first, as atomicfile.SyncDir does otherwise.
func syncDirAt(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := fsync(int(d.Fd())); err != nil {
		return &os.PathError{Op: "sync", Path: dir, Err: err}
	}
	return nil
}
