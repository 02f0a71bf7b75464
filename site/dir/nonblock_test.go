package dir

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeReads replaces the driver's reads of a blob's descriptor for the
// test: pread (both kinds) and preadv2 with RWF_NOWAIT go through
// wait and nowait, which may answer an errno instead of reading.
func fakeReads(t *testing.T, wait, nowait func(fd int) syscall.Errno) {
	t.Helper()
	pread, preadWait, preadNowait := sysPread, sysPreadWait, sysPreadNowait
	refused := nowaitRefused.Load()
	t.Cleanup(func() {
		sysPread, sysPreadWait, sysPreadNowait = pread, preadWait, preadNowait
		nowaitRefused.Store(refused)
	})
	nowaitRefused.Store(false)
	if wait != nil {
		sysPread = func(fd int, p []byte, off int64) (int, syscall.Errno) {
			if e := wait(fd); e != 0 {
				return 0, e
			}
			return pread(fd, p, off)
		}
		sysPreadWait = func(fd int, p []byte, off int64) (int, syscall.Errno) {
			if e := wait(fd); e != 0 {
				return 0, e
			}
			return preadWait(fd, p, off)
		}
	}
	if nowait != nil {
		sysPreadNowait = func(fd int, p []byte, off int64) (int, syscall.Errno) {
			if e := nowait(fd); e != 0 {
				return 0, e
			}
			return preadNowait(fd, p, off)
		}
	}
}

// nonblocking reports whether fd has O_NONBLOCK.
func nonblocking(t *testing.T, fd int) bool {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatalf("F_GETFL: %v", err)
	}
	return fl&unix.O_NONBLOCK != 0
}

// TestNonblockingRegularFile: a blob read through the page cache keeps the
// O_NONBLOCK it was opened with, which Linux ignores for a regular file.
// open(2)'s manual warns that a kernel might honour it; its reads that
// must wait for the disk would then answer EAGAIN. That cannot be made to
// happen on this kernel, so the test answers the driver's reads as such a
// kernel would (fakeReads: EAGAIN from pread while the descriptor has
// O_NONBLOCK, and from preadv2's RWF_NOWAIT, nothing being cached): every
// read, small (pread) and large (preadv2, then the pread that gives up the
// P), whole blob and range, still returns the blob's bytes, having cleared
// the flag once. Without the clearing (readsBlock) each of these reads
// failed with EAGAIN. preadv2's own EAGAIN (not all cached) is not taken
// for the flag's: with only that one answered, the descriptor keeps
// O_NONBLOCK (no fcntl made). And an EAGAIN that clearing does not end is
// an error, not a loop.
func TestNonblockingRegularFile(t *testing.T) {
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	small, large := bytes.Repeat([]byte("nonblock"), 512), bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	for name, b := range map[string][]byte{"s/sm/small": small, "s/la/large": large} {
		if err := s.Put(ctx, name, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("honoured", func(t *testing.T) {
		var waits, nowaits atomic.Int64
		fakeReads(t, func(fd int) syscall.Errno {
			if nonblocking(t, fd) {
				waits.Add(1)
				return syscall.EAGAIN
			}
			return 0
		}, func(int) syscall.Errno {
			nowaits.Add(1)
			return syscall.EAGAIN
		})
		for _, c := range []struct {
			what       string
			name       string
			off, n     int64
			want       []byte
			readBuffer int // the reader's reads: small ones pread, large ones preadAt
		}{
			{"a whole small blob", "s/sm/small", 0, -1, small, 512},
			{"a small range", "s/sm/small", 100, 1000, small[100:1100], 4096},
			{"a whole large blob, large reads", "s/la/large", 0, -1, large, 1 << 20},
			{"a large range, large reads", "s/la/large", 4096, 1<<20 - 4096, large[4096:], 256 << 10},
			{"a large range, small reads", "s/la/large", 1 << 19, 1 << 19, large[1<<19:], 8192},
		} {
			waits.Store(0)
			rc, err := s.Get(ctx, c.name, c.off, c.n)
			if err != nil {
				t.Fatalf("%s: get: %v", c.what, err)
			}
			var got bytes.Buffer
			_, err = io.CopyBuffer(struct{ io.Writer }{&got}, struct{ io.Reader }{rc}, make([]byte, c.readBuffer))
			rc.Close()
			if err != nil {
				t.Errorf("%s: read: %v", c.what, err)
				continue
			}
			if !bytes.Equal(got.Bytes(), c.want) {
				t.Errorf("%s: %d bytes read, not the blob's %d", c.what, got.Len(), len(c.want))
			}
			if waits.Load() != 1 {
				t.Errorf("%s: %d reads answered EAGAIN, want 1 (the first, before the flag was cleared)", c.what, waits.Load())
			}
		}
		if nowaits.Load() == 0 {
			t.Error("no large read asked preadv2 first")
		}
		// ReadAt straight on the blob too, and the flag is gone after.
		b := openTestBlob(t, root, "s/la/large")
		defer b.Close()
		buf := make([]byte, len(large))
		if n, err := b.ReadAt(buf, 0); n != len(large) || err != nil || !bytes.Equal(buf, large) {
			t.Errorf("ReadAt: %d, %v", n, err)
		}
		if nonblocking(t, b.fd) {
			t.Error("O_NONBLOCK still set after a read answered EAGAIN")
		}
	})

	t.Run("RWF_NOWAIT's EAGAIN", func(t *testing.T) {
		// Only preadv2 answers EAGAIN (the range not cached), as this
		// kernel may: the read waits for the disk, and the descriptor
		// keeps its flag: no fcntl for what is not the flag's doing.
		var nowaits atomic.Int64
		fakeReads(t, nil, func(int) syscall.Errno {
			nowaits.Add(1)
			return syscall.EAGAIN
		})
		b := openTestBlob(t, root, "s/la/large")
		defer b.Close()
		buf := make([]byte, len(large))
		if n, err := b.ReadAt(buf, 0); n != len(large) || err != nil || !bytes.Equal(buf, large) {
			t.Errorf("ReadAt: %d, %v", n, err)
		}
		if nowaits.Load() == 0 {
			t.Error("preadv2 not asked")
		}
		if !nonblocking(t, b.fd) {
			t.Error("O_NONBLOCK cleared though only preadv2 answered EAGAIN")
		}
		if nowaitRefused.Load() {
			t.Error("preadv2's EAGAIN taken for a refusal of RWF_NOWAIT")
		}
	})

	t.Run("EAGAIN that clearing does not end", func(t *testing.T) {
		var waits atomic.Int64
		fakeReads(t, func(int) syscall.Errno {
			waits.Add(1)
			return syscall.EAGAIN
		}, func(int) syscall.Errno { return syscall.EAGAIN })
		for _, c := range []struct {
			name string
			size int
		}{{"s/sm/small", 4096}, {"s/la/large", 1 << 20}} {
			waits.Store(0)
			b := openTestBlob(t, root, c.name)
			n, err := b.ReadAt(make([]byte, c.size), 0)
			b.Close()
			var pe *os.PathError
			if n != 0 || !errors.Is(err, syscall.EAGAIN) || !errors.As(err, &pe) || pe.Path != filepath.Join(root, c.name) {
				t.Errorf("%s: %d, %v: want EAGAIN naming the blob", c.name, n, err)
			}
			if waits.Load() != 2 {
				t.Errorf("%s: %d reads, want 2 (one more after clearing the flag)", c.name, waits.Load())
			}
		}
	})
}
