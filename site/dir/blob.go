package dir

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// blob is a blob opened for reading: a descriptor of the driver's own,
// read with pread(2), and what the fstat that checked its type said. It is
// not an *os.File because making one costs a system call (os.NewFile asks
// the descriptor's flags, F_GETFL) and reading one from the start another
// (a Get of a whole blob returned the file after a Seek, lseek(2)): two of
// the some ten calls a blob's Get made, at about 2 µs a call on the
// development VM (docs/design.md, "Blob reads without *os.File (issue 15,
// nineteenth pass)"). A blob opened for a read through the page cache
// keeps the O_NONBLOCK it was opened with (so that a FIFO could not block
// the open): a read of a regular file ignores it, and clearing it was a
// third call. Should a kernel honour it for regular files, a read answered
// EAGAIN clears it then and is made again (readsBlock).
//
// What an *os.File gives is kept. Its descriptor is closed only once, by
// whichever of Close and the last read in progress ends last: a Close
// racing a read in another goroutine never closes the descriptor under
// that read, and no read after Close reaches the descriptor, whose number
// the process may have given to another file by then (os.ErrClosed). A
// blob dropped without Close has its descriptor closed when it is
// collected.
//
// A blob is also the reader of a Get of a whole blob (length -1): Read
// reads with pread from its own offset, Seek moves that offset without a
// system call, and Stat says what the fstat at open said, so that a
// reader sizing its buffer by it (vault's readInline) makes no second
// fstat.
type blob struct {
	fd        int
	root, rel string    // its path, for errors
	size      int64     // at open: a blob is written whole and renamed into place
	mode      uint32    // st_mode at open
	mtime     time.Time // at open
	// state is twice the reads in progress, plus one once Close was called.
	state atomic.Int64
	off   int64 // where Read reads next
}

// newBlob takes fd, a regular file opened for reading (rel beneath root)
// whose fstat is st.
func newBlob(fd int, root, rel string, st *unix.Stat_t) *blob {
	b := &blob{fd: fd, root: root, rel: rel, size: st.Size, mode: st.Mode, mtime: time.Unix(st.Mtim.Unix())}
	// As os.NewFile does: a finalizer, not a cleanup, whose argument would
	// be one more allocation a blob.
	runtime.SetFinalizer(b, (*blob).forgotten)
	return b
}

// forgotten closes the descriptor of a blob collected without Close.
func (b *blob) forgotten() { unix.Close(b.fd) }

// path is the blob's path, for errors.
func (b *blob) path() string { return filepath.Join(b.root, b.rel) }

// acquire counts a read in progress; false once Close was called.
func (b *blob) acquire() bool {
	for {
		s := b.state.Load()
		if s&1 != 0 {
			return false
		}
		if b.state.CompareAndSwap(s, s+2) {
			return true
		}
	}
}

// release ends a read, closing the descriptor when it was the last one
// and Close was called meanwhile.
func (b *blob) release() {
	if b.state.Add(-2) == 1 {
		unix.Close(b.fd)
	}
}

// Close closes the descriptor, or leaves it to the last read in progress.
func (b *blob) Close() error {
	for {
		s := b.state.Load()
		if s&1 != 0 {
			return &os.PathError{Op: "close", Path: b.path(), Err: os.ErrClosed}
		}
		if b.state.CompareAndSwap(s, s|1) {
			runtime.SetFinalizer(b, nil)
			if s == 0 {
				if err := unix.Close(b.fd); err != nil {
					return &os.PathError{Op: "close", Path: b.path(), Err: err}
				}
			}
			return nil
		}
	}
}

// errClosed is a read's error after Close.
func (b *blob) errClosed() error {
	return &os.PathError{Op: "read", Path: b.path(), Err: os.ErrClosed}
}

// pread reads into p from off with one read, as (*os.File).Read does with
// one read(2) (io.EOF when it returns nothing), or, for a read of
// handoffReadMin bytes or more, with preadAt (until p is full or the file
// ends).
func (b *blob) pread(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if !b.acquire() {
		return 0, b.errClosed()
	}
	n, err := b.preadHeld(p, off)
	b.release()
	return n, err
}

func (b *blob) preadHeld(p []byte, off int64) (int, error) {
	if len(p) >= handoffReadMin {
		n, err := preadAt(b.fd, p, off)
		if err != nil && err != io.EOF {
			err = &os.PathError{Op: "read", Path: b.path(), Err: err}
		}
		return n, err
	}
	cleared := false
	for {
		n, e := sysPread(b.fd, p, off)
		if e == unix.EINTR {
			continue
		}
		if e == unix.EAGAIN && !cleared {
			// O_NONBLOCK honoured for a regular file: see readsBlock.
			cleared = true
			if err := readsBlock(b.fd); err != nil {
				return 0, &os.PathError{Op: "fcntl", Path: b.path(), Err: err}
			}
			continue
		}
		if e != 0 {
			return 0, &os.PathError{Op: "read", Path: b.path(), Err: e}
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// ReadAt reads len(p) bytes from off, as (*os.File).ReadAt does: until p
// is full, io.EOF if the file ends first. A read that comes back short at
// or past the size the blob had when opened is its end: no further read
// asks for the nothing that follows (a blob is written whole and renamed
// into place, never grown).
func (b *blob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &os.PathError{Op: "readat", Path: b.path(), Err: errors.New("negative offset")}
	}
	if !b.acquire() {
		return 0, b.errClosed()
	}
	defer b.release()
	got := 0
	for got < len(p) {
		n, err := b.preadHeld(p[got:], off+int64(got))
		got += n
		if err != nil {
			return got, err
		}
		if got < len(p) && off+int64(got) >= b.size {
			return got, io.EOF
		}
	}
	return got, nil
}

// setFlags sets the descriptor's flags (F_SETFL), unless it is closed.
func (b *blob) setFlags(fl int) error {
	if !b.acquire() {
		return b.errClosed()
	}
	defer b.release()
	_, err := unix.FcntlInt(uintptr(b.fd), unix.F_SETFL, fl)
	return err
}

// fadvise gives the kernel advice on [off, off+n) of the blob.
func (b *blob) fadvise(off, n int64, advice int) {
	if b.acquire() {
		_ = unix.Fadvise(b.fd, off, n, advice)
		b.release()
	}
}

// Read reads from the blob's offset, with one read (see pread).
func (b *blob) Read(p []byte) (int, error) {
	n, err := b.pread(p, b.off)
	b.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

// Seek moves the offset Read reads from.
func (b *blob) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	default:
		offset = -1
	}
	if offset < 0 {
		return 0, &os.PathError{Op: "seek", Path: b.path(), Err: syscall.EINVAL}
	}
	b.off = offset
	return offset, nil
}

// Stat returns what the fstat at open said.
func (b *blob) Stat() (fs.FileInfo, error) { return blobInfo{b}, nil }

// blobInfo is a blob's fs.FileInfo, from its fstat at open.
type blobInfo struct{ b *blob }

func (i blobInfo) Name() string       { return filepath.Base(i.b.rel) }
func (i blobInfo) Size() int64        { return i.b.size }
func (i blobInfo) Mode() fs.FileMode  { return fs.FileMode(i.b.mode & 0o777) }
func (i blobInfo) ModTime() time.Time { return i.b.mtime }
func (i blobInfo) IsDir() bool        { return false }
func (i blobInfo) Sys() any           { return nil }
