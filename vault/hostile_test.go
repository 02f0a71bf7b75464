package vault

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// TestLockOnDamagedCopy: a lock change (legal hold, retention) rewrites
// every manifest copy, keeping an inline object's blocks after the
// envelope. A site's copy cut inside its envelope, or with a garbled
// header, made the rewrite slice past the copy's end in a goroutine: the
// node stopped (sixteenth pass and before); then the change of an inline
// version failed until a scrub rebuilt the copy (seventeenth pass). Now
// every copy is written from the good ones, the damaged one included, with
// the blocks it held, and the change goes through; a version without
// inline blocks (whose copies are the envelope alone) writes the new
// envelope over the damaged copy.
func TestLockOnDamagedCopy(t *testing.T) {
	damage := []struct {
		name   string
		damage func(b []byte, envLen int) []byte
	}{
		{"cut in the header", func(b []byte, _ int) []byte { return b[:5] }},
		{"empty", func(b []byte, _ int) []byte { return b[:0] }},
		{"cut in the envelope", func(b []byte, envLen int) []byte { return b[:envLen-10] }},
		{"cut in the block", func(b []byte, envLen int) []byte { return b[:envLen+10] }},
		{"longer", func(b []byte, envLen int) []byte { return append(b, 0xee) }},
		{"length garbled", func(b []byte, _ int) []byte { b[14] ^= 0x40; return b }},
		{"magic garbled", func(b []byte, _ int) []byte { b[0] = 'X'; return b }},
		{"missing", nil},
	}
	for _, inline := range []bool{true, false} {
		for _, c := range damage {
			name := c.name
			if inline {
				name = "inline/" + name
			}
			t.Run(name, func(t *testing.T) {
				n := newTestNode(t)
				ctx := t.Context()
				size := 2000
				if !inline {
					size = 3 * testStripe
				}
				key := "lock/" + name
				want := content(key, size)
				info := n.put(key, want)
				m, _, err := n.e.resolve(ctx, "registry", key, manifest.ID{})
				if err != nil {
					t.Fatal(err)
				}
				if m.Parts[0].Inline != inline {
					t.Fatalf("part inline %v, want %v", m.Parts[0].Inline, inline)
				}
				sid := manifestSites(m)[1]
				p := filepath.Join(n.dirs[sid], filepath.FromSlash(manifest.BlobName(m.Version)))
				var b []byte
				if c.damage == nil {
					if b, err = os.ReadFile(p); err != nil {
						t.Fatal(err)
					}
					os.Remove(p)
				} else {
					b = damageCopy(t, p, c.damage)
				}
				if _, err = n.e.SetLegalHold(ctx, "registry", key, info.VersionID, true); err != nil {
					t.Fatalf("lock change with the copy on site %s damaged: %v", sid, err)
				}
				st, err := n.e.Stat(ctx, "registry", key, info.VersionID)
				if err != nil || st.Lock == nil || !st.Lock.LegalHold {
					t.Fatalf("stat after the change: %+v, %v", st.Lock, err)
				}
				if got := n.mustRead(key); !bytes.Equal(got, want) {
					t.Fatal("object differs after the lock change")
				}
				checkCopiesLocked(t, n, m, func(l *manifest.Lock) bool { return l != nil && l.LegalHold })
				// The damaged copy holds its blocks again, as they were.
				got, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				oldLen, _ := manifest.EnvelopeLen(b)
				newLen, err := manifest.EnvelopeLen(got)
				if err != nil || !bytes.Equal(got[newLen:], b[oldLen:]) {
					t.Fatalf("site %s's copy after the change: %d bytes of blocks, want its %d as they were (%v)", sid, len(got)-newLen, len(b)-oldLen, err)
				}
			})
		}
	}
}

// checkCopiesLocked fails t unless every copy of m's manifest verifies, is
// m's version and has a lock that ok accepts.
func checkCopiesLocked(t *testing.T, n *testNode, m *manifest.Manifest, ok func(*manifest.Lock) bool) {
	t.Helper()
	for _, s := range manifestSites(m) {
		st, _ := n.e.Site(s)
		env, err := ReadEnvelope(t.Context(), st.Store, manifest.BlobName(m.Version))
		if err != nil {
			t.Fatalf("site %s: %v", s, err)
		}
		cm, err := manifest.Open(env, n.keys)
		if err != nil {
			t.Fatalf("site %s: %v", s, err)
		}
		if cm.Version != m.Version || !ok(cm.Lock) {
			t.Errorf("site %s: copy of version %s, lock %+v", s, cm.Version, cm.Lock)
		}
	}
}

// TestLockOnTooFewGoodCopies: an inline version whose good copies hold
// fewer than k blocks cannot have its copies rewritten (the blocks of the
// damaged ones cannot be rebuilt): the lock change fails, naming the
// damaged copies, and writes nothing, so every good copy keeps the old
// lock.
func TestLockOnTooFewGoodCopies(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	key := "lock/too-few"
	info := n.put(key, content(key, 2000))
	m, _, err := n.e.resolve(ctx, "registry", key, manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	sites := manifestSites(m)
	if len(sites) != m.K+m.M {
		t.Fatalf("%d copies for %d+%d shards: one block a copy expected", len(sites), m.K, m.M)
	}
	bad := sites[:m.M+1]
	for _, sid := range bad {
		damageCopy(t, filepath.Join(n.dirs[sid], filepath.FromSlash(manifest.BlobName(m.Version))), func(b []byte, envLen int) []byte { return b[:envLen-10] })
	}
	_, err = n.e.SetLegalHold(ctx, "registry", key, info.VersionID, true)
	if err == nil {
		t.Fatal("lock change with fewer than k good copies succeeded")
	}
	for _, sid := range bad {
		if !bytes.Contains([]byte(err.Error()), []byte("site "+sid+": damaged copy")) {
			t.Errorf("lock change: %v, does not name site %s's damaged copy", err, sid)
		}
	}
	if !errors.Is(err, manifest.ErrCorrupt) || !errors.Is(err, ErrUnreadable) {
		t.Errorf("lock change: %v, want manifest.ErrCorrupt and ErrUnreadable", err)
	}
	for _, sid := range sites[m.M+1:] {
		st, _ := n.e.Site(sid)
		env, err := ReadEnvelope(ctx, st.Store, manifest.BlobName(m.Version))
		if err != nil {
			t.Fatalf("site %s: %v", sid, err)
		}
		if cm, err := manifest.Open(env, n.keys); err != nil || cm.Lock != nil || cm.Revision != m.Revision {
			t.Fatalf("site %s's good copy after a refused change: revision %d, lock %+v, %v", sid, cm.Revision, cm.Lock, err)
		}
	}
}

// generous is a site whose Get ignores the length asked for and sends the
// blob, then 8 MiB more (bytes without end would do: this is enough to
// tell), counting what is read.
type generous struct {
	site.Site
	read *atomic.Int64
}

func (g generous) Get(ctx context.Context, name string, off, _ int64) (io.ReadCloser, error) {
	rc, err := g.Site.Get(ctx, name, off, -1)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{&counted{r: io.MultiReader(rc, io.LimitReader(endless{}, 8<<20)), n: g.read}, rc}, nil
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xee
	}
	return len(p), nil
}

type counted struct {
	r io.Reader
	n *atomic.Int64
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestReadEnvelopeBounded: ReadEnvelope (scrub, the index rebuild, audit
// verify) reads what it asked a site for and no more, whatever the site
// sends: it read each answer to its end, so a site (or a driver) that
// sent more than the range asked for made it allocate all of it, without
// end for an endless one.
func TestReadEnvelopeBounded(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	for _, size := range []int{2000, 3 * testStripe} { // inline, and not
		key := "bounded/" + strconv.Itoa(size)
		n.put(key, content(key, size))
		m, _, err := n.e.resolve(ctx, "registry", key, manifest.ID{})
		if err != nil {
			t.Fatal(err)
		}
		name := manifest.BlobName(m.Version)
		st, _ := n.e.Site(manifestSites(m)[0])
		want, err := ReadEnvelope(ctx, st.Store, name)
		if err != nil {
			t.Fatal(err)
		}
		var read atomic.Int64
		got, err := ReadEnvelope(ctx, generous{st.Store, &read}, name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, %v", key, len(got), err)
		}
		// The first read's 16 KiB, and what the reader had buffered.
		if max := int64(16<<10) + 64<<10; read.Load() > max {
			t.Errorf("%s: read %d bytes from the site, want at most %d", key, read.Load(), max)
		}
	}
}

// TestReadEnvelopeGuess: readEnvelope returns the envelope whatever length
// it asks for first (newestCopy asks for the index's envelope's, which a
// newer copy's may pass or fall short of), and a copy cut inside its
// envelope is damage (manifest.ErrCorrupt) whatever it asked for.
func TestReadEnvelopeGuess(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	for _, size := range []int{2000, 3 * testStripe} { // inline, and not
		key := "guess/" + strconv.Itoa(size)
		n.put(key, content(key, size))
		m, _, err := n.e.resolve(ctx, "registry", key, manifest.ID{})
		if err != nil {
			t.Fatal(err)
		}
		name := manifest.BlobName(m.Version)
		st, _ := n.e.Site(manifestSites(m)[0])
		want, err := ReadEnvelope(ctx, st.Store, name)
		if err != nil {
			t.Fatal(err)
		}
		guesses := []int{0, 1, manifest.HeaderSize, len(want) - 1, len(want), len(want) + 1, 2 * len(want), 16 << 10, 1 << 20}
		for _, guess := range guesses {
			got, err := readEnvelope(ctx, st.Store, name, guess)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s, asking for %d bytes first: %d bytes, %v; want the envelope's %d", key, guess, len(got), err, len(want))
			}
			// What callers keep: the envelope, not the buffer read
			// (a rebuild keeps a batch of them).
			if cap(got) > len(got)+envelopeSlack {
				t.Errorf("%s, asking for %d bytes first: the %d-byte envelope holds a buffer of %d", key, guess, len(got), cap(got))
			}
		}
		if err := st.Store.Put(ctx, name, bytes.NewReader(want[:len(want)-1]), int64(len(want)-1)); err != nil {
			t.Fatal(err)
		}
		for _, guess := range guesses {
			if got, err := readEnvelope(ctx, st.Store, name, guess); !errors.Is(err, manifest.ErrCorrupt) {
				t.Errorf("%s cut inside its envelope, asking for %d bytes first: %d bytes, %v; want manifest.ErrCorrupt", key, guess, len(got), err)
			}
		}
	}
}
