package benchutil

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/site/dir"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want Spread
		text string
	}{
		{name: "none", in: nil, want: Spread{}, text: "0.00"},
		{name: "one", in: []float64{0.9}, want: Spread{N: 1, Med: 0.9, Min: 0.9, Max: 0.9}, text: "0.90"},
		{name: "three unsorted", in: []float64{1.2, 0.8, 1.0}, want: Spread{N: 3, Med: 1.0, Min: 0.8, Max: 1.2}, text: "1.00 (0.80–1.20 over 3 rounds)"},
		{name: "an outlier does not move the median", in: []float64{0.95, 2.9, 0.9}, want: Spread{N: 3, Med: 0.95, Min: 0.9, Max: 2.9}, text: "0.95 (0.90–2.90 over 3 rounds)"},
		{name: "even: mean of the middle two", in: []float64{4, 1, 3, 2}, want: Spread{N: 4, Med: 2.5, Min: 1, Max: 4}, text: "2.50 (1.00–4.00 over 4 rounds)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got := Summarize(tt.in)
			if got != tt.want {
				t.Fatalf("Summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.text {
				t.Fatalf("String() = %q, want %q", got.String(), tt.text)
			}
			if !slices.Equal(in, tt.in) {
				t.Fatalf("Summarize reordered its input: %v", tt.in)
			}
		})
	}
}

// TestReferences: the disk references do the work they claim, through the
// dir driver, and leave nothing behind but SmallRef's blobs (which stay
// until the benchmark ends) and LargeRefs' blobs (which stay,
// lest the engine's writes reuse blocks the reference read).
func TestReferences(t *testing.T) {
	root := t.TempDir()
	w, r := LargeRefs(t, root, 8<<20, 4, 2)
	if w <= 0 || r <= 0 {
		t.Fatalf("LargeRefs = %v, %v", w, r)
	}
	// Two slices on one SmallRef write to the same sites.
	ref := NewSmallRef(t, root, 1700, 6)
	for range 2 {
		if ops := ref.Write(t, 10, 4); ops <= 0 {
			t.Fatalf("SmallRef.Write = %v", ops)
		}
	}
	// SmallRef's blobs stay too, until the benchmark removes root: a
	// mass removal between rounds would slow the next round's creations.
	small := 0
	filepath.WalkDir(filepath.Join(root, "ref-small"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "/m/") {
			small++
		}
		return nil
	})
	if small != 20*6 {
		t.Errorf("SmallRef left %d blobs, want its 120 (two slices of 10 objects on six sites)", small)
	}
	os.RemoveAll(filepath.Join(root, "ref-small"))
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "ref-large-") {
		t.Fatalf("references left %v behind; want LargeRefs' sites and SmallRef's blobs alone", ents)
	}
	var shards []string
	filepath.WalkDir(filepath.Join(root, ents[0].Name()), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "/s/") {
			if fi, _ := d.Info(); fi.Size() != 2<<20 {
				t.Errorf("%s: %d bytes, want a shard of 2 MiB", p, fi.Size())
			}
			shards = append(shards, p)
		}
		return nil
	})
	if len(shards) != 6 {
		t.Fatalf("LargeRefs left %d shard blobs, want 6: %v", len(shards), shards)
	}
	os.RemoveAll(filepath.Join(root, ents[0].Name()))

	// MeanBlob counts files and their mean size, not directories.
	d := filepath.Join(root, "blobs")
	os.MkdirAll(filepath.Join(d, "m", "ab"), 0o700)
	os.WriteFile(filepath.Join(d, "m", "ab", "x"), []byte(strings.Repeat("a", 100)), 0o600)
	os.WriteFile(filepath.Join(d, "m", "y"), []byte(strings.Repeat("a", 300)), 0o600)
	if n, mean := MeanBlob(d); n != 2 || mean != 200 {
		t.Fatalf("MeanBlob = %d files, %v mean; want 2, 200", n, mean)
	}
}

// sizeRecorder reads left bytes and records the size of every read asked
// of it.
type sizeRecorder struct {
	left  int
	sizes []int
}

func (r *sizeRecorder) Read(p []byte) (int, error) {
	r.sizes = append(r.sizes, len(p))
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.left)
	r.left -= n
	return n, nil
}

// TestDrainReadSize: LargeRefs' cold read asks the driver for reads of its
// buffer's size (1 MiB, as bench/README.md says), where io.CopyBuffer into
// io.Discard, which it used before, asks for 8 KiB whatever the buffer.
func TestDrainReadSize(t *testing.T) {
	const size = 3<<20 + 5
	r := &sizeRecorder{left: size}
	n, err := drain(r, make([]byte, 1<<20))
	if err != nil || n != size {
		t.Fatalf("drain = %d, %v; want %d bytes", n, err, size)
	}
	for i, s := range r.sizes {
		if s != 1<<20 {
			t.Fatalf("read %d asked for %d bytes, want 1 MiB (all %v)", i, s, r.sizes)
		}
	}
	// The trap drain avoids.
	old := &sizeRecorder{left: size}
	io.CopyBuffer(io.Discard, struct{ io.Reader }{old}, make([]byte, 1<<20))
	if old.sizes[0] == 1<<20 {
		t.Logf("io.CopyBuffer into io.Discard now reads with the buffer given (%d); drain may no longer be needed", old.sizes[0])
	}
}

// TestMirrorAndRead: the repair's read reference mirrors shard blobs name
// for name and size for size on fresh sites, and reads every byte of them (and no more) in the engine's
// block reads, whatever the stride and the readers.
func TestMirrorAndRead(t *testing.T) {
	root := t.TempDir()
	var like [][]Blob // the shard blobs, one list a site: what a repair reads
	var total int64
	for si := range 2 {
		sd := filepath.Join(root, "site", fmt.Sprint(si))
		s, err := dir.New(sd)
		if err != nil {
			t.Fatal(err)
		}
		var q []Blob
		for i, size := range []int64{1000, 3 << 20, 5000} {
			name := fmt.Sprintf("s/%02x/%s.%d", si*16+i, strings.Repeat(fmt.Sprintf("%02x", si*16+i), 16), si)
			if err := s.Put(t.Context(), name, &Gen{Left: size, State: 1}, size); err != nil {
				t.Fatal(err)
			}
			q = append(q, Blob{s, name, size})
			total += size
		}
		like = append(like, q)
	}
	m := NewMirror(t, filepath.Join(root, "mirror"), len(like))
	m.Copy(t, like, 2)
	mirror, wrate := m.Blobs, m.WriteRate()
	if wrate <= 0 || len(mirror) != len(like) {
		t.Fatalf("mirror: %d sites at %v B/s", len(mirror), wrate)
	}
	for si, q := range mirror {
		for i, b := range q {
			if b.Name != like[si][i].Name || b.Size != like[si][i].Size || b.Site.Root() == like[si][i].Site.Root() {
				t.Fatalf("mirror %d/%d = %s (%d B) on %s; want %s (%d B) on a new site", si, i, b.Name, b.Size, b.Site.Root(), like[si][i].Name, like[si][i].Size)
			}
			if info, err := b.Site.Stat(t.Context(), b.Name); err != nil || info.Size != b.Size {
				t.Fatalf("mirror %s: %+v, %v", b.Name, info, err)
			}
		}
	}
	// Copied object by object, a mirror accumulates every object's blobs.
	acc := NewMirror(t, filepath.Join(root, "acc"), len(like))
	for i := range like[0] {
		one := make([][]Blob, len(like))
		for si := range like {
			one[si] = like[si][i : i+1]
		}
		acc.Copy(t, one, 1)
	}
	for si := range like {
		if len(acc.Blobs[si]) != len(like[si]) || acc.WriteRate() <= 0 {
			t.Fatalf("mirror copied object by object: site %d holds %d blobs, want %d (%v B/s)", si, len(acc.Blobs[si]), len(like[si]), acc.WriteRate())
		}
	}
	for _, tc := range []struct{ perSite, stride int }{{1, 1 << 20}, {3, 256<<10 + 16}, {8, 4096}} {
		rate, n, _ := ReadBlobs(t, mirror, tc.perSite, tc.stride)
		if rate <= 0 || n != total {
			t.Fatalf("ReadBlobs(%d readers, stride %d) = %v B/s, %d bytes; want the %d of the shard blobs", tc.perSite, tc.stride, rate, n, total)
		}
	}
}

// TestEvict: eviction flushes and drops a tree's pages, dirty ones
// included, and says honestly when the filesystem keeps them (tmpfs).
func TestEvict(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "a", "f")
	os.MkdirAll(filepath.Dir(p), 0o700)
	// Written through the page cache and not synced: dirty pages, which
	// posix_fadvise alone leaves in place.
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := Resident(d)
	if err != nil || before == 0 {
		t.Fatalf("Resident after a write = %d, %v; want the pages just written", before, err)
	}
	left := Evict(d)
	after, err := Resident(d)
	if err != nil || after != left {
		t.Fatalf("Evict says %d bytes left, Resident %d (%v)", left, after, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(d, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC {
		// tmpfs: the pages are the storage; Evict must not claim a cold read.
		if left == 0 {
			t.Fatalf("Evict on tmpfs reports nothing resident")
		}
		t.Logf("tmpfs: %d bytes stay resident, as they must", left)
		return
	}
	if left != 0 {
		t.Fatalf("Evict left %d of %d bytes in the page cache", left, before)
	}
}

// TestGenBytes: Gen yields the bytes of its generator written out byte by
// byte, big-endian, a step of the state every 8 bytes, with 0x5a past the
// last whole 8 of a read, whatever the reads' sizes; and its state carries
// from read to read.
func TestGenBytes(t *testing.T) {
	want := func(state uint64, sizes []int) []byte {
		var out []byte
		for _, n := range sizes {
			for i := 0; i+8 <= n; i += 8 {
				state = state*6364136223846793005 + 1442695040888963407
				for k := 7; k >= 0; k-- {
					out = append(out, byte(state>>(8*k)))
				}
			}
			for range n % 8 {
				out = append(out, 0x5a)
			}
		}
		return out
	}
	for _, sizes := range [][]int{{4096}, {1 << 20, 13, 64}, {7, 8, 9}} {
		total := 0
		for _, n := range sizes {
			total += n
		}
		var h bytes.Buffer
		g := &Gen{Left: int64(total), State: 42, Hash: &h}
		var got []byte
		for _, n := range sizes {
			p := make([]byte, n)
			k, err := g.Read(p)
			if err != nil || k != n {
				t.Fatalf("read %d: %d, %v", n, k, err)
			}
			got = append(got, p...)
		}
		if w := want(42, sizes); !bytes.Equal(got, w) || !bytes.Equal(h.Bytes(), w) {
			t.Fatalf("reads %v: the bytes differ from the generator's", sizes)
		}
		if n, err := g.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("after %d bytes: %d, %v", total, n, err)
		}
	}
}
