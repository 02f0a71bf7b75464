package vault

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
)

// inlineDamage are the ways a site's copy of an inline object is damaged
// in the tests below, given the copy and its envelope's length.
var inlineDamage = []struct {
	name    string
	damage  func(b []byte, envLen int) []byte
	corrupt bool // reported as a corrupt block (erasure.ErrChecksum)
}{
	{"cut in the header", func(b []byte, _ int) []byte { return b[:5] }, false},
	{"empty", func(b []byte, _ int) []byte { return b[:0] }, false},
	{"cut in the envelope", func(b []byte, envLen int) []byte { return b[:envLen-10] }, true},
	{"cut at the block", func(b []byte, envLen int) []byte { return b[:envLen] }, true},
	{"cut in the block", func(b []byte, envLen int) []byte { return b[:envLen+100] }, true},
	{"block flipped", func(b []byte, envLen int) []byte { b[envLen+50] ^= 0x10; return b }, true},
}

// damageCopy rewrites the manifest copy at path (a test node's dir site's
// file) as damage returns it, given a clone of the copy and its envelope's
// length, and returns the copy as it was.
func damageCopy(t *testing.T, path string, damage func(b []byte, envLen int) []byte) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	envLen, err := manifest.EnvelopeLen(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, damage(bytes.Clone(b), envLen), 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInlineCopyDamaged: a GET of an inline object one of whose data
// copies is cut short or corrupt returns the object (from the others and
// parity) and reports the damage once, at that shard, as a corrupt block
// unless the copy has no envelope header to find the block by. The read
// no longer takes the whole copy into memory, so it finds a short copy as
// a short read of its block. A scrub, which still reads the copy whole,
// finds the same; a copy cut inside its envelope made both panic (the
// node stopped) before.
func TestInlineCopyDamaged(t *testing.T) {
	n := newTestNode(t)
	const shard = 2
	for _, c := range inlineDamage {
		t.Run(c.name, func(t *testing.T) {
			key := "inline/" + c.name
			want := content(key, 2000)
			n.put(key, want)
			locs, err := n.e.Locate(t.Context(), "registry", key, manifest.ID{})
			if err != nil {
				t.Fatal(err)
			}
			l := locs[shard]
			if !l.Inline || l.Parity {
				t.Fatalf("location %+v: want an inline data shard", l)
			}
			damageCopy(t, filepath.Join(n.dirs[l.Site], filepath.FromSlash(l.Blob)), c.damage)
			r, err := n.e.Get(t.Context(), "registry", key, GetOptions{Length: -1})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read: %d bytes, equal %v, %v", len(got), bytes.Equal(got, want), err)
			}
			problems := r.Problems()
			if len(problems) != 1 || problems[0].Shard != shard {
				t.Fatalf("problems %v, want one at shard %d", problems, shard)
			}
			if corrupt := errors.Is(problems[0].Err, erasure.ErrChecksum); corrupt != c.corrupt {
				t.Errorf("problem %v: corrupt block %v, want %v", problems[0].Err, corrupt, c.corrupt)
			}
			// A scrub finds the same, ordinary and deep, and the others
			// intact.
			m, _, err := n.e.resolve(t.Context(), "registry", key, manifest.ID{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range m.Parts[0].Sites {
				_, err := n.e.VerifyShard(t.Context(), m, m.Parts[0], i, nil)
				if i != shard && err != nil {
					t.Errorf("scrub of intact shard %d: %v", i, err)
				}
				if i == shard && (err == nil || errors.Is(err, ErrShardDamaged) != c.corrupt) {
					t.Errorf("scrub of the damaged shard: %v, want damaged %v", err, c.corrupt)
				}
			}
			pc, err := n.e.VerifyPartDeep(t.Context(), m, m.Parts[0], nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, bad := range pc.Bad {
				if bad != (i == shard) {
					t.Errorf("deep scrub: shard %d bad %v", i, bad)
				}
			}
		})
	}
}

// noSeek hides a site's reader's Seek, as an S3 site's body has none.
type noSeek struct{ site.Site }

func (s noSeek) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	rc, err := s.Site.Get(ctx, name, off, length)
	if err != nil {
		return nil, err
	}
	return struct{ io.ReadCloser }{rc}, nil
}

// TestInlineReader: inlineReader positions a dir site's copy (skipping by
// Seek) and a site's without Seek (skipping by reading) at each shard's
// block (from its first read, across its end, after it), and both give what reading the whole copy gives; on a copy that
// ends early both read short, and on one whose header is cut both fail.
func TestInlineReader(t *testing.T) {
	n := newTestNode(t)
	want := content("held twice", 3000)
	n.put("held twice", want)
	m, _, err := n.e.resolve(t.Context(), "registry", "held twice", manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	p := m.Parts[0]
	g := partGeometry(m, p)
	name := manifest.BlobName(m.Version)
	copyOf, err := os.ReadFile(filepath.Join(n.dirs[p.Sites[0]], filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	envLen, err := manifest.EnvelopeLen(copyOf)
	if err != nil {
		t.Fatal(err)
	}
	// One site with every shard's block after the envelope, in shard
	// order (as a site holding several shards of the part has): each
	// shard's block is at its rank.
	blocks := make([][]byte, len(p.Sites))
	for i, sid := range p.Sites {
		b, err := os.ReadFile(filepath.Join(n.dirs[sid], filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		el, err := manifest.EnvelopeLen(b)
		if err != nil {
			t.Fatal(err)
		}
		blocks[i] = b[el:]
		if len(blocks[i]) != g.blockSize(0) {
			t.Fatalf("site %d's copy holds %d bytes of blocks, want one block of %d", i, len(blocks[i]), g.blockSize(0))
		}
	}
	// inlineReader serves a block from its first read, from that read and
	// the site, or from the site after a skip: here shards 0-3 lie in the
	// first inlineHead bytes, 4 across their end and 5 beyond.
	if bs := g.blockSize(0); envLen+5*bs <= inlineHead || envLen+4*bs >= inlineHead || envLen+5*bs+bs <= inlineHead {
		t.Fatalf("envelope %d bytes, blocks of %d: the copy no longer covers the three ways of reading a block", envLen, bs)
	}
	whole := append([]byte(nil), copyOf[:envLen]...)
	for _, b := range blocks {
		whole = append(whole, b...)
	}
	one := p
	one.Sites = make([]string, len(p.Sites))
	for i := range one.Sites {
		one.Sites[i] = "all"
	}
	ds, err := dir.New(filepath.Join(t.TempDir(), "all"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		name string
		site site.Site
	}{{"dir", ds}, {"no seek", noSeek{ds}}} {
		t.Run(s.name, func(t *testing.T) {
			put := func(b []byte) {
				t.Helper()
				if err := ds.Put(t.Context(), name, bytes.NewReader(b), int64(len(b))); err != nil {
					t.Fatal(err)
				}
			}
			put(whole)
			for i := range one.Sites {
				rc, err := inlineReader(t.Context(), s.site, name, i, one, g)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]byte, g.blockSize(0))
				_, err = io.ReadFull(rc, got)
				rc.Close()
				if err != nil || !bytes.Equal(got, blocks[i]) {
					t.Fatalf("shard %d: %v, equal %v", i, err, bytes.Equal(got, blocks[i]))
				}
			}
			for _, cut := range []int{envLen + 3*g.blockSize(0) + 7, envLen + 2*g.blockSize(0), envLen - 1, manifest.HeaderSize} {
				put(whole[:cut])
				rc, err := inlineReader(t.Context(), s.site, name, 3, one, g)
				if err != nil {
					t.Fatalf("cut at %d: %v", cut, err)
				}
				got := make([]byte, g.blockSize(0))
				_, err = io.ReadFull(rc, got)
				rc.Close()
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("shard 3 of a copy cut at %d: %v, want a short read", cut, err)
				}
			}
			put(whole[:manifest.HeaderSize-1])
			if _, err := inlineReader(t.Context(), s.site, name, 0, one, g); !errors.Is(err, manifest.ErrCorrupt) {
				t.Fatalf("a copy cut in its header: %v, want %v", err, manifest.ErrCorrupt)
			}
		})
	}
}
