package dir

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/sitetest"
)

// coldSite is a dir site whose Gets all carry site.WithColdRead's hint.
type coldSite struct{ *Site }

func (s coldSite) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	return s.Site.Get(site.WithColdRead(ctx), name, off, length)
}

func TestConformanceColdRead(t *testing.T) {
	sitetest.Run(t, func(t *testing.T) site.Site {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return coldSite{s}
	})
}

// directSupported reports whether the filesystem of dir takes O_DIRECT.
func directSupported(t *testing.T, dir string) bool {
	f, err := os.CreateTemp(dir, "probe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return setDirect(f, true) == nil
}

// coldBlob puts a blob of size pseudo-random bytes and returns them.
func coldBlob(t testing.TB, s *Site, name string, size int) []byte {
	want := make([]byte, size)
	x := uint32(size) | 1
	for i := range want {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		want[i] = byte(x)
	}
	if err := s.Put(context.Background(), name, bytes.NewReader(want), int64(size)); err != nil {
		t.Fatal(err)
	}
	return want
}

// readCold reads [off, off+length) with the cold-read hint, in reads of
// step bytes, and reports whether the reader was the O_DIRECT one.
func readCold(t testing.TB, s *Site, name string, off, length int64, step int) ([]byte, bool) {
	rc, err := s.Get(site.WithColdRead(context.Background()), name, off, length)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, direct := rc.(*directReader)
	var got []byte
	buf := make([]byte, step)
	for {
		n, err := rc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			return got, direct
		}
		if err != nil {
			t.Fatalf("read %d+%d: %v", off, length, err)
		}
	}
}

// TestColdReadRanges reads ranges of a blob with the cold-read hint, at
// odd offsets and lengths, across chunk boundaries and past the end, in
// reads of several sizes, and checks the bytes against the blob's; large
// ranges are read with O_DIRECT where the filesystem takes it, small ones
// through the page cache.
func TestColdReadRanges(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	direct := directSupported(t, dir)
	const size = 3<<20 + 4133
	want := coldBlob(t, s, "s/aa/blob", size)
	cases := [][2]int64{
		{0, size}, {0, 1 << 20}, {1, 1 << 20}, {4095, 1<<20 + 2}, {4096, 2 << 20},
		{1<<20 - 1, 1<<20 + 7}, {262164 * 3, 262164 * 8}, {size - 1<<20, 1 << 20},
		{size - 1<<20 + 5, 1 << 20}, {2 << 20, 4 << 20}, {0, 1<<20 - 1}, {size - 10, 1 << 20},
	}
	for _, c := range cases {
		for _, step := range []int{1 << 20, 262164 + 64, 4096, 1000} {
			got, wasDirect := readCold(t, s, "s/aa/blob", c[0], c[1], step)
			end := min(c[0]+c[1], size)
			if !bytes.Equal(got, want[c[0]:end]) {
				t.Fatalf("range %d+%d in reads of %d: %d bytes, not the blob's %d", c[0], c[1], step, len(got), end-c[0])
			}
			if wantDirect := direct && c[1] >= directMin; wasDirect != wantDirect {
				t.Fatalf("range %d+%d: read with O_DIRECT %v, want %v", c[0], c[1], wasDirect, wantDirect)
			}
		}
	}
	// A range past the end of the blob yields nothing.
	if got, _ := readCold(t, s, "s/aa/blob", size+5, 1<<20, 4096); len(got) != 0 {
		t.Fatalf("range past the end: %d bytes", len(got))
	}
}

// TestColdReadRefused: a filesystem that takes O_DIRECT but refuses its
// reads (EINVAL) is read through the page cache instead, same bytes.
func TestColdReadRefused(t *testing.T) {
	dir := t.TempDir()
	if !directSupported(t, dir) {
		t.Skip("the filesystem takes no O_DIRECT")
	}
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := coldBlob(t, s, "s/aa/blob", 2<<20+77)
	calls := 0
	directPread = func(*blob, []byte, int64) (int, error) { calls++; return 0, unix.EINVAL }
	defer func() { directPread = preadFull }()
	got, wasDirect := readCold(t, s, "s/aa/blob", 3, 2<<20, 262164)
	if !wasDirect || calls != 1 {
		t.Fatalf("O_DIRECT reader %v, its reads tried %d times: the refusal was not exercised", wasDirect, calls)
	}
	if !bytes.Equal(got, want[3:3+2<<20]) {
		t.Fatalf("after the refusal: %d bytes, not the blob's %d", len(got), 2<<20)
	}
}

// FuzzColdRead compares a range read with the cold-read hint with the same
// range read without it.
func FuzzColdRead(f *testing.F) {
	dir := f.TempDir()
	s, err := New(dir)
	if err != nil {
		f.Fatal(err)
	}
	const size = 2<<20 + 999
	want := coldBlob(f, s, "s/aa/blob", size)
	f.Add(int64(0), int64(size), 4096)
	f.Add(int64(4097), int64(1<<20+3), 262164)
	f.Fuzz(func(t *testing.T, off, length int64, step int) {
		if off < 0 || off > size+8192 || length < 0 || length > 4<<20 || step < 1 || step > 2<<20 {
			t.Skip()
		}
		got, _ := readCold(t, s, "s/aa/blob", off, length, step)
		end := max(off, min(off+length, size))
		if off > size {
			end = off
		}
		if !bytes.Equal(got, want[min(off, size):min(end, size)]) {
			t.Fatalf("range %d+%d in reads of %d: %d bytes, want %d", off, length, step, len(got), min(end, size)-min(off, size))
		}
	})
}
