package dir

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// A Close racing reads in other goroutines never closes the descriptor
// under them, nor lets a read reach the descriptor's number once another
// file may have it: every read returns the blob's bytes or os.ErrClosed,
// never the bytes of the files opened meanwhile, and the descriptor is
// closed once, when the last read ends (what an *os.File guarantees, kept
// by the driver's own descriptor).
func TestBlobCloseRacesReads(t *testing.T) {
	d := t.TempDir()
	const size = 3 * handoffReadMin
	mine, theirs := bytes.Repeat([]byte{'a'}, size), bytes.Repeat([]byte{'b'}, size)
	if err := os.WriteFile(filepath.Join(d, "mine"), mine, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "theirs"), theirs, 0o600); err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		b := openTestBlob(t, d, "mine")
		var st unix.Stat_t
		if err := unix.Fstat(b.fd, &st); err != nil {
			t.Fatal(err)
		}
		const readers = 8
		var started, done sync.WaitGroup
		var bad atomic.Value
		started.Add(readers)
		for w := range readers {
			done.Go(func() {
				n := 10 + w*handoffReadMin/4 // small reads and large ones
				buf := make([]byte, n)
				first := true
				for {
					got, err := b.ReadAt(buf, int64(w))
					if first {
						started.Done()
						first = false
					}
					if errors.Is(err, os.ErrClosed) {
						return
					}
					if err != nil && err != io.EOF {
						bad.Store(err)
						return
					}
					if !bytes.Equal(buf[:got], mine[w:w+got]) {
						bad.Store(errors.New("a read returned another file's bytes"))
						return
					}
				}
			})
		}
		started.Wait()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		// Files opened now may take the number the blob had, if it was
		// closed under the reads.
		var others []*os.File
		for range 4 {
			f, err := os.Open(filepath.Join(d, "theirs"))
			if err != nil {
				t.Fatal(err)
			}
			others = append(others, f)
		}
		done.Wait()
		if err, _ := bad.Load().(error); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// Closed, once: the number is free or names another file.
		var now unix.Stat_t
		if err := unix.Fstat(b.fd, &now); err == nil && now.Ino == st.Ino && now.Dev == st.Dev {
			t.Fatalf("round %d: the blob's descriptor is still open after Close and its reads", round)
		}
		for _, f := range others {
			if err := f.Close(); err != nil {
				t.Fatalf("round %d: a file opened after the blob's Close: %v (its descriptor closed by the blob)", round, err)
			}
		}
	}
}

// A blob dropped without Close has its descriptor closed when collected,
// as an *os.File has.
func TestBlobDroppedIsClosed(t *testing.T) {
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "a"), []byte("blob"), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, st := func() (int, unix.Stat_t) {
		b := openTestBlob(t, d, "a")
		var st unix.Stat_t
		if err := unix.Fstat(b.fd, &st); err != nil {
			t.Fatal(err)
		}
		return b.fd, st
	}()
	open := func() bool {
		var now unix.Stat_t
		return unix.Fstat(fd, &now) == nil && now.Ino == st.Ino && now.Dev == st.Dev
	}
	for i := 0; open(); i++ {
		if i == 1000 {
			t.Fatal("a blob dropped without Close kept its descriptor through 1,000 collections")
		}
		runtime.GC()
		runtime.Gosched()
	}
}

// A whole-blob Get (length -1) reads, seeks and stats as the *os.File it
// returned before did: the same bytes and counts from every offset and
// whence, io.EOF at the end, the size and a regular mode from Stat.
func TestBlobReaderIsAFile(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const name = "s/ab/abcdef"
	want := make([]byte, 2*handoffReadMin+333)
	for i := range want {
		want[i] = byte(i*31 + i>>8)
	}
	if err := s.Put(t.Context(), name, bytes.NewReader(want), int64(len(want))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.root, name)
	for _, off := range []int64{0, 1, handoffReadMin, int64(len(want)), int64(len(want)) + 5} {
		rc, err := s.Get(t.Context(), name, off, -1)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		// Reads of every size, seeks between them.
		steps := []struct {
			read          int
			seek          int64
			whence        int
			seekFirst     bool
			wantSeekError bool
		}{
			{read: 100}, {read: handoffReadMin}, {read: 1, seek: -50, whence: io.SeekCurrent, seekFirst: true},
			{read: 7, seek: -10, whence: io.SeekEnd, seekFirst: true}, {read: 3 * handoffReadMin},
			{read: 10, seek: 3, whence: io.SeekStart, seekFirst: true}, {read: 1 << 20},
			{read: 1, seek: -1, whence: io.SeekStart, seekFirst: true, wantSeekError: true},
		}
		for i, st := range steps {
			if st.seekFirst {
				gp, gerr := rc.(io.Seeker).Seek(st.seek, st.whence)
				wp, werr := f.Seek(st.seek, st.whence)
				if (gerr != nil) != (werr != nil) || (gerr != nil) != st.wantSeekError || gerr == nil && gp != wp {
					t.Fatalf("off %d step %d: Seek(%d, %d) = %d, %v; the file's %d, %v", off, i, st.seek, st.whence, gp, gerr, wp, werr)
				}
			}
			gb, wb := make([]byte, st.read), make([]byte, st.read)
			gn, gerr := io.ReadFull(rc, gb)
			wn, werr := io.ReadFull(f, wb)
			if gn != wn || gerr != werr || !bytes.Equal(gb[:gn], wb[:wn]) {
				t.Fatalf("off %d step %d: ReadFull(%d) = %d, %v; the file's %d, %v", off, i, st.read, gn, gerr, wn, werr)
			}
		}
		fi, err := rc.(interface{ Stat() (os.FileInfo, error) }).Stat()
		if err != nil || fi.Size() != int64(len(want)) || !fi.Mode().IsRegular() || fi.IsDir() || fi.Name() != "abcdef" {
			t.Fatalf("Stat: %v, %v; want %d bytes, a regular file named abcdef", fi, err, len(want))
		}
		f.Close()
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
