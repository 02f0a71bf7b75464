package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/audit/audittest"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/site/fault"
)

// testNode is an engine over six directory sites in three jurisdictions
// (EST, LUX, FIN) on two providers, each wrapped in a fault injector.
type testNode struct {
	t      *testing.T
	e      *Engine
	keys   *custody.Keyring
	ix     *boltindex.Index
	dirs   map[string]string
	faults map[string]*fault.Site
	sites  []Site
	root   string
	audit  AuditLog
}

// testAudit opens an audit log copying to sites, closed when the test
// ends.
func testAudit(t testing.TB, sites []Site) AuditLog {
	t.Helper()
	stores := map[string]site.Site{}
	for _, s := range sites {
		stores[s.ID] = s.Store
	}
	return audittest.Open(t, "test", func() map[string]site.Site { return stores })
}

var topology = []site.Descriptor{
	{ID: "est-1", Jurisdiction: "EST", Provider: "gov-dc", Control: "EST"},
	{ID: "est-2", Jurisdiction: "EST", Provider: "cloudco", Control: "USA"},
	{ID: "lux-1", Jurisdiction: "LUX", Provider: "gov-dc", Control: "EST"},
	{ID: "lux-2", Jurisdiction: "LUX", Provider: "cloudco", Control: "USA"},
	{ID: "fin-1", Jurisdiction: "FIN", Provider: "gov-dc", Control: "EST"},
	{ID: "fin-2", Jurisdiction: "FIN", Provider: "cloudco", Control: "USA"},
}

const testStripe = 4096

func newTestNode(t *testing.T, extra ...site.Descriptor) *testNode {
	t.Helper()
	root := t.TempDir()
	n := &testNode{t: t, dirs: map[string]string{}, faults: map[string]*fault.Site{}, root: root}
	for i, d := range append(append([]site.Descriptor(nil), topology...), extra...) {
		p := filepath.Join(root, "sites", d.ID)
		ds, err := dir.New(p)
		if err != nil {
			t.Fatal(err)
		}
		f := fault.New(ds, uint64(i+1))
		n.dirs[d.ID], n.faults[d.ID] = p, f
		n.sites = append(n.sites, Site{Descriptor: d, Store: f})
	}
	rk, err := custody.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	if n.keys, err = custody.NewKeyring(rk); err != nil {
		t.Fatal(err)
	}
	n.open(filepath.Join(root, "index.db"))
	return n
}

func (n *testNode) open(indexPath string) {
	t := n.t
	t.Helper()
	if n.ix != nil {
		n.ix.Close()
	}
	ix, err := boltindex.Open(indexPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	n.ix = ix
	if n.audit == nil {
		n.audit = testAudit(t, n.sites)
	}
	e, err := New(Config{NodeID: "test", Keys: n.keys, Index: ix, Sites: n.sites, Audit: n.audit, Vaults: []Vault{{
		Name: "registry", Owner: "EST", StripeSize: testStripe,
		Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1, Sites: 1}, OutsideHome: true},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	// Its last write of the commit generations lands before the sites'
	// directories are removed.
	t.Cleanup(func() { e.Close(context.Background()) })
	n.e = e
}

func content(name string, size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(size)))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	// Make the start recognisable for the plaintext scan.
	copy(b, "PLAINTEXT-MARKER:"+name)
	return b
}

func (n *testNode) put(key string, data []byte) ObjectInfo {
	n.t.Helper()
	info, err := n.e.Put(n.t.Context(), "registry", key, bytes.NewReader(data), PutOptions{Size: int64(len(data))})
	if err != nil {
		n.t.Fatalf("put %s: %v", key, err)
	}
	return info
}

func (n *testNode) read(key string, o GetOptions) ([]byte, *Reader, error) {
	r, err := n.e.Get(n.t.Context(), "registry", key, o)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return b, r, err
}

func (n *testNode) mustRead(key string) []byte {
	n.t.Helper()
	b, _, err := n.read(key, GetOptions{Length: -1})
	if err != nil {
		n.t.Fatalf("read %s: %v", key, err)
	}
	return b
}

var sizes = []int{0, 1, 100, testStripe - 1, testStripe, testStripe + 1, 3*testStripe + 17, 10 * testStripe}

func TestRoundTripSizes(t *testing.T) {
	n := newTestNode(t)
	for _, size := range sizes {
		key := fmt.Sprintf("objects/size-%d", size)
		want := content(key, size)
		info := n.put(key, want)
		if info.Size != int64(size) {
			t.Fatalf("size %d: info.Size = %d", size, info.Size)
		}
		if got := n.mustRead(key); !bytes.Equal(got, want) {
			t.Fatalf("size %d: read back %d bytes that differ", size, len(got))
		}
	}
}

func TestUnknownSizeStream(t *testing.T) {
	n := newTestNode(t)
	want := content("stream", 5*testStripe+3)
	_, err := n.e.Put(t.Context(), "registry", "stream", io.MultiReader(bytes.NewReader(want)), PutOptions{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.mustRead("stream"); !bytes.Equal(got, want) {
		t.Fatal("streamed object differs")
	}
}

func TestRanges(t *testing.T) {
	n := newTestNode(t)
	size := 5*testStripe + 123
	want := content("ranged", size)
	n.put("ranged", want)
	cases := []struct {
		name     string
		off, len int64
	}{
		{"first byte", 0, 1},
		{"inside a stripe", 10, 100},
		{"across a stripe boundary", testStripe - 5, 10},
		{"middle stripes", testStripe + 7, 2 * testStripe},
		{"last bytes", int64(size) - 3, -1},
		{"whole", 0, -1},
		{"past the end clamps", int64(size) - 10, 1000},
		{"empty at end", int64(size), -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := n.read("ranged", GetOptions{Offset: tc.off, Length: tc.len})
			if err != nil {
				t.Fatal(err)
			}
			end := int64(size)
			if tc.len >= 0 && tc.off+tc.len < end {
				end = tc.off + tc.len
			}
			if !bytes.Equal(got, want[tc.off:end]) {
				t.Fatalf("range %d+%d: got %d bytes, want %d", tc.off, tc.len, len(got), end-tc.off)
			}
		})
	}
	if _, err := n.e.Get(t.Context(), "registry", "ranged", GetOptions{Offset: int64(size) + 1}); !errors.Is(err, ErrInvalidRange) {
		t.Fatalf("range past the end: %v", err)
	}
}

func TestRangedReadTouchesOnlyNeededStripes(t *testing.T) {
	n := newTestNode(t)
	n.put("big", content("big", 50*testStripe))
	// Corrupt every stripe but the 20th on every site: a read of the
	// 20th stripe must not notice.
	locs, err := n.e.Locate(t.Context(), "registry", "big", manifest.ID{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range locs {
		p := filepath.Join(n.dirs[l.Site], filepath.FromSlash(l.Blob))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		stride := len(b) / 50
		for j := range 50 {
			if j != 20 {
				b[j*stride] ^= 0xff
			}
		}
		os.WriteFile(p, b, 0o600)
	}
	got, r, err := n.read("big", GetOptions{Offset: 20*testStripe + 5, Length: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content("big", 50*testStripe)[20*testStripe+5:20*testStripe+105]) {
		t.Fatal("ranged read returned wrong bytes")
	}
	if p := r.Problems(); len(p) != 0 {
		t.Fatalf("ranged read touched other stripes: %v", p)
	}
}

// TestSitesSeeOnlyCiphertext is invariant 1: no plaintext, object name or
// user metadata reaches a site.
func TestSitesSeeOnlyCiphertext(t *testing.T) {
	n := newTestNode(t)
	secrets := []string{"PLAINTEXT-MARKER", "population-register", "classified-meta-value", "x-origin-ria"}
	for i, size := range sizes {
		key := fmt.Sprintf("population-register/%d", i)
		data := content(key, size)
		_, err := n.e.Put(t.Context(), "registry", key, bytes.NewReader(data), PutOptions{
			Size: int64(size), ContentType: "text/x-origin-ria", Meta: map[string]string{"classification": "classified-meta-value"},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	n.e.Delete(t.Context(), "registry", "population-register/1", DeleteOptions{})
	files := 0
	for id, d := range n.dirs {
		filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			files++
			b, _ := os.ReadFile(p)
			for _, s := range append(secrets, filepath.Base(p)) {
				if s == filepath.Base(p) {
					continue
				}
				if bytes.Contains(b, []byte(s)) || strings.Contains(p, s) {
					t.Errorf("site %s file %s contains %q", id, p, s)
				}
			}
			return nil
		})
	}
	if files < len(sizes)*6 {
		t.Fatalf("scanned only %d files", files)
	}
}

// loseSite takes a site down and removes its directory. The site is down
// first, so the audit log's copier (asynchronous) stops writing to it; a
// copy already under way can still add a file while the directory is
// being removed, so removal is repeated until it finds nothing left.
func (n *testNode) loseSite(id string) {
	n.t.Helper()
	n.faults[id].Set(fault.Config{Down: true})
	var err error
	for range 100 {
		if err = os.RemoveAll(n.dirs[id]); err == nil {
			return
		}
	}
	n.t.Fatal(err)
}

// TestJurisdictionLoss: with every site of one jurisdiction gone, every
// object still reads byte-identical.
func TestJurisdictionLoss(t *testing.T) {
	for _, lost := range []string{"EST", "LUX", "FIN"} {
		t.Run(lost, func(t *testing.T) {
			n := newTestNode(t)
			want := map[string][]byte{}
			for _, size := range sizes {
				key := fmt.Sprintf("k/%d", size)
				want[key] = content(key, size)
				n.put(key, want[key])
			}
			for _, d := range topology {
				if d.Jurisdiction == lost {
					n.loseSite(d.ID)
				}
			}
			for key, w := range want {
				if got := n.mustRead(key); !bytes.Equal(got, w) {
					t.Fatalf("%s differs after losing %s", key, lost)
				}
			}
		})
	}
}

// TestCorruptionRepairedAndReported flips random bytes in shard blobs.
func TestCorruptionRepairedAndReported(t *testing.T) {
	n := newTestNode(t)
	rng := rand.New(rand.NewPCG(7, 7))
	want := map[string][]byte{}
	for _, size := range sizes[1:] {
		key := fmt.Sprintf("c/%d", size)
		want[key] = content(key, size)
		n.put(key, want[key])
	}
	for key := range want {
		locs, _ := n.e.Locate(t.Context(), "registry", key, manifest.ID{})
		// Damage up to M=2 shards of each object at random offsets.
		for _, li := range rng.Perm(len(locs))[:2] {
			l := locs[li]
			p := filepath.Join(n.dirs[l.Site], filepath.FromSlash(l.Blob))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			lo := 0
			if l.Inline {
				env, _ := manifest.EnvelopeLen(b)
				lo = env // corrupt the shard data, not the manifest copy
			}
			if len(b) > lo {
				b[lo+rng.IntN(len(b)-lo)] ^= byte(1 + rng.IntN(255))
			}
			os.WriteFile(p, b, 0o600)
		}
	}
	before := n.e.Events.CorruptBlocks.Load()
	problems := 0
	for key, w := range want {
		got, r, err := n.read(key, GetOptions{Length: -1})
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("%s: wrong bytes after corruption", key)
		}
		problems += len(r.Problems())
	}
	if problems == 0 || n.e.Events.CorruptBlocks.Load() == before {
		t.Fatalf("corruption not reported: %d problems, %d corrupt blocks counted", problems, n.e.Events.CorruptBlocks.Load()-before)
	}
}

// A block replaced together with a matching checksum passes the checksum
// but not authentication; the reader must find and exclude it.
func TestForgedBlockWithValidChecksum(t *testing.T) {
	// Both block checksum algorithms: parts written before XXH3 (BLAKE3)
	// and since. Neither has a key: the forger computes it as the node
	// does, and only the stripe's AEAD tag tells.
	for _, sum := range []erasure.Checksum{erasure.BLAKE3, erasure.XXH3} {
		t.Run(sum.String(), func(t *testing.T) {
			n := newTestNode(t)
			if err := n.e.SetBlockChecksum(sum); err != nil {
				t.Fatal(err)
			}
			want := content("forged", 3*testStripe)
			n.put("forged", want)
			locs, _ := n.e.Locate(t.Context(), "registry", "forged", manifest.ID{})
			m, _, _ := n.e.resolve(t.Context(), "registry", "forged", manifest.ID{})
			if m.Parts[0].BlockSum != sum {
				t.Fatalf("part written with %v, want %v", m.Parts[0].BlockSum, sum)
			}
			l := locs[1] // a data shard
			p := filepath.Join(n.dirs[l.Site], filepath.FromSlash(l.Blob))
			b, _ := os.ReadFile(p)
			g := partGeometry(m, m.Parts[0])
			if int64(len(b)) != g.blobSize() {
				t.Fatalf("shard blob of %d bytes, geometry says %d", len(b), g.blobSize())
			}
			ss := g.shardSize(0)
			b[3] ^= 0x55
			forgeSum(sum, b[:ss], m.Parts[0].Blob, 1, 0, 1, b[ss:ss+sum.Size()])
			os.WriteFile(p, b, 0o600)
			got, r, err := n.read("forged", GetOptions{Length: -1})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("forged block changed the data")
			}
			if len(r.Problems()) == 0 {
				t.Fatal("forged block not reported")
			}
			// A ranged read within the forged stripe recovers too.
			got, _, err = n.read("forged", GetOptions{Offset: 10, Length: 100})
			if err != nil || !bytes.Equal(got, want[10:110]) {
				t.Fatalf("ranged read over the forged stripe: %v", err)
			}
		})
	}
}

// Blocks forged in one stripe, each with a valid checksum: the reader
// leaves out up to m of them at a time, fewest first, and reports exactly
// the forged ones, however the decode used them (two data shards; a data
// shard and the parity shard its reconstruction reads first). More than m
// is unreadable, and says so.
func TestForgedBlocksInOneStripe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		forged []int
	}{
		{"two data shards", []int{1, 2}},
		{"a data shard and a parity shard", []int{1, 4}},
		{"a parity shard and a data shard", []int{0, 5}},
		{"three, more than m", []int{0, 2, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNode(t)
			// Eight stripes, the forgery in stripe 2: a read that
			// meets it part way (decoding ahead, tried in the
			// fifteenth pass and reverted, stopped there).
			want := content("forged", 8*testStripe)
			const stripe = 2
			n.put("forged", want)
			locs, _ := n.e.Locate(t.Context(), "registry", "forged", manifest.ID{})
			m, _, _ := n.e.resolve(t.Context(), "registry", "forged", manifest.ID{})
			g := partGeometry(m, m.Parts[0])
			sum := m.Parts[0].BlockSum
			for _, x := range tc.forged {
				p := filepath.Join(n.dirs[locs[x].Site], filepath.FromSlash(locs[x].Blob))
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				ss, off := g.shardSize(stripe), stripe*g.blockStride()
				blk := b[off : off+int64(ss)+int64(sum.Size())]
				blk[7] ^= 0x3c // the stripe's block of shard x, and a checksum to match
				forgeSum(sum, blk[:ss], m.Parts[0].Blob, 1, stripe, uint8(x), blk[ss:])
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, r, err := n.read("forged", GetOptions{Length: -1})
			if len(tc.forged) > g.m {
				if !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), "every combination") {
					t.Fatalf("%d forged blocks in a stripe of m=%d: %v, want ErrUnreadable", len(tc.forged), g.m, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("forged blocks changed the data")
			}
			var blamed []int
			for _, p := range r.Problems() {
				if p.Stripe != stripe || p.Site != locs[p.Shard].Site {
					t.Errorf("problem %+v: not stripe %d of the shard's site", p, stripe)
				}
				blamed = append(blamed, p.Shard)
			}
			slices.Sort(blamed)
			if !slices.Equal(blamed, tc.forged) {
				t.Fatalf("blocks reported %v, forged %v", blamed, tc.forged)
			}
		})
	}
}

func TestTooMuchLossFailsLoudly(t *testing.T) {
	n := newTestNode(t)
	n.put("x", content("x", 2*testStripe))
	locs, _ := n.e.Locate(t.Context(), "registry", "x", manifest.ID{})
	for _, l := range locs[:3] {
		os.Remove(filepath.Join(n.dirs[l.Site], filepath.FromSlash(l.Blob)))
	}
	_, _, err := n.read("x", GetOptions{Length: -1})
	if !errors.Is(err, ErrUnreadable) {
		t.Fatalf("read with 3 of 6 shards gone: %v, want ErrUnreadable", err)
	}
}

func (n *testNode) checkPlacement(key string) {
	n.t.Helper()
	locs, err := n.e.Locate(n.t.Context(), "registry", key, manifest.ID{})
	if err != nil {
		n.t.Fatal(err)
	}
	v, _ := n.e.Vault("registry")
	var descs []site.Descriptor
	for _, l := range locs {
		for _, d := range topology {
			if d.ID == l.Site {
				descs = append(descs, d)
			}
		}
	}
	if viol := placement.Check(v.Policy, descs); len(viol) > 0 {
		n.t.Fatalf("%s placed against policy: %v", key, viol)
	}
}

func (n *testNode) blobCount() int {
	c := 0
	for _, d := range n.dirs {
		filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(d, p)
			if err == nil && !de.IsDir() && (strings.HasPrefix(rel, "s/") || strings.HasPrefix(rel, "m/")) {
				c++
			}
			return nil
		})
	}
	return c
}

// TestSiteFailsMidWrite: a site dying mid-write leaves either a
// policy-conforming object or no visible object.
func TestSiteFailsMidWrite(t *testing.T) {
	for _, size := range []int{100, 20 * testStripe} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			n := newTestNode(t)
			want := content("m", size)
			for _, f := range n.faults {
				f.Set(fault.Config{})
			}
			n.faults["lux-1"].Set(fault.Config{FailPutAfter: 1000})
			n.faults["est-2"].Set(fault.Config{FailPutAfter: 1000})

			// Seekable: retried on other sites, and conforming.
			if _, err := n.e.Put(t.Context(), "registry", "seekable", bytes.NewReader(want), PutOptions{Size: int64(size)}); err != nil {
				t.Fatalf("seekable put: %v", err)
			}
			if got := n.mustRead("seekable"); !bytes.Equal(got, want) {
				t.Fatal("retried object differs")
			}
			n.checkPlacement("seekable")
		})
	}
	t.Run("not seekable", func(t *testing.T) {
		n := newTestNode(t)
		blobs := n.blobCount()
		for _, f := range n.faults {
			f.Set(fault.Config{FailPutAfter: 5000})
		}
		want := content("ns", 20*testStripe)
		_, err := n.e.Put(t.Context(), "registry", "unseekable", io.MultiReader(bytes.NewReader(want)), PutOptions{Size: -1})
		if err == nil {
			t.Fatal("put succeeded although every site failed")
		}
		if _, err := n.e.Stat(t.Context(), "registry", "unseekable", manifest.ID{}); !errors.Is(err, ErrNoSuchKey) {
			t.Fatalf("failed put is visible: %v", err)
		}
		if got := n.blobCount(); got != blobs {
			t.Fatalf("failed put left %d blobs behind", got-blobs)
		}
	})
}

func TestDownSiteAvoided(t *testing.T) {
	n := newTestNode(t)
	n.faults["fin-1"].Set(fault.Config{Down: true})
	for i := range 20 {
		key := fmt.Sprintf("d/%d", i)
		n.put(key, content(key, 100+i*testStripe/3))
		locs, _ := n.e.Locate(t.Context(), "registry", key, manifest.ID{})
		for _, l := range locs {
			if l.Site == "fin-1" {
				t.Fatalf("%s placed a shard on the down site", key)
			}
		}
		n.checkPlacement(key)
	}
	// Losing a second FIN site leaves two jurisdictions: the policy
	// cannot hold, so the write must fail and say why.
	n.faults["fin-2"].Set(fault.Config{Down: true})
	n.e.SetSiteDown("fin-1", siteDownFor)
	_, err := n.e.Put(t.Context(), "registry", "nowhere", bytes.NewReader([]byte("x")), PutOptions{Size: 1})
	if !errors.Is(err, placement.ErrInfeasible) {
		t.Fatalf("put with too few sites: %v, want ErrInfeasible", err)
	}
}

func TestVersionsAndDeletes(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	v1 := n.put("doc", []byte("version one"))
	v2 := n.put("doc", []byte("version two"))
	n.put("other", []byte("x"))
	if got := n.mustRead("doc"); string(got) != "version two" {
		t.Fatalf("latest = %q", got)
	}
	old, _, err := n.read("doc", GetOptions{VersionID: v1.VersionID, Length: -1})
	if err != nil || string(old) != "version one" {
		t.Fatalf("old version = %q, %v", old, err)
	}
	del, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{})
	if err != nil || !del.DeleteMarker {
		t.Fatalf("delete = %+v, %v", del, err)
	}
	if _, err := n.e.Stat(ctx, "registry", "doc", manifest.ID{}); !errors.Is(err, ErrNoSuchKey) || !errors.Is(err, ErrDeleteMarker) {
		t.Fatalf("stat after delete: %v", err)
	}
	page, _ := n.e.List(ctx, "registry", index.ListOptions{})
	if len(page.Entries) != 1 || page.Entries[0].Key != "other" {
		t.Fatalf("list after delete: %+v", page.Entries)
	}
	vp, _ := n.e.Versions(ctx, "registry", index.VersionOptions{Prefix: "doc"})
	if len(vp.Versions) != 3 || !vp.Versions[0].DeleteMarker || !vp.Versions[0].IsLatest || vp.Versions[1].ID != v2.VersionID {
		t.Fatalf("versions = %+v", vp.Versions)
	}
	// Removing the marker brings version two back.
	if _, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{VersionID: del.VersionID}); err != nil {
		t.Fatal(err)
	}
	if got := n.mustRead("doc"); string(got) != "version two" {
		t.Fatalf("after removing the marker: %q", got)
	}
	// Removing version two permanently makes version one the latest
	// and removes its blobs from the sites.
	if err := n.e.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	blobs := n.blobCount()
	if _, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{VersionID: v2.VersionID}); err != nil {
		t.Fatal(err)
	}
	if got := n.mustRead("doc"); string(got) != "version one" {
		t.Fatalf("after removing v2: %q", got)
	}
	if err := n.e.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.blobCount(); got != blobs-6 {
		t.Fatalf("removing an inline version removed %d blobs, want 6", blobs-got)
	}
	if _, _, err := n.read("doc", GetOptions{VersionID: v2.VersionID, Length: -1}); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatalf("read of removed version: %v", err)
	}
}

func TestComplianceLockBlocksDelete(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	until := timeNow().Add(24 * 3600e9)
	info, err := n.e.Put(ctx, "registry", "locked", bytes.NewReader([]byte("keep")), PutOptions{Size: 4, Lock: &manifest.Lock{Mode: "COMPLIANCE", Until: until}})
	if err != nil {
		t.Fatal(err)
	}
	for _, bypass := range []bool{false, true} {
		if _, err := n.e.Delete(ctx, "registry", "locked", DeleteOptions{VersionID: info.VersionID, BypassGovernance: bypass}); !errors.Is(err, ErrLocked) {
			t.Fatalf("delete of COMPLIANCE-locked version (bypass=%v): %v", bypass, err)
		}
	}
	g, _ := n.e.Put(ctx, "registry", "gov", bytes.NewReader([]byte("keep")), PutOptions{Size: 4, Lock: &manifest.Lock{Mode: "GOVERNANCE", Until: until}})
	if _, err := n.e.Delete(ctx, "registry", "gov", DeleteOptions{VersionID: g.VersionID}); !errors.Is(err, ErrLocked) {
		t.Fatalf("delete of GOVERNANCE-locked version without bypass: %v", err)
	}
	if _, err := n.e.Delete(ctx, "registry", "gov", DeleteOptions{VersionID: g.VersionID, BypassGovernance: true}); err != nil {
		t.Fatalf("delete with governance bypass: %v", err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	n := newTestNode(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			key := fmt.Sprintf("par/%d", i)
			if _, err := n.e.Put(context.Background(), "registry", key, bytes.NewReader(content(key, i*testStripe/2)), PutOptions{Size: int64(i * testStripe / 2)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range 16 {
		key := fmt.Sprintf("par/%d", i)
		if got := n.mustRead(key); !bytes.Equal(got, content(key, i*testStripe/2)) {
			t.Fatalf("%s differs", key)
		}
	}
}

func TestSizeMismatchLeavesNothing(t *testing.T) {
	n := newTestNode(t)
	for _, tc := range []struct {
		actual, declared int
	}{{100, 200}, {200, 100}, {10 * testStripe, 12 * testStripe}, {12 * testStripe, 10 * testStripe}} {
		_, err := n.e.Put(t.Context(), "registry", "mismatch", bytes.NewReader(content("m", tc.actual)), PutOptions{Size: int64(tc.declared)})
		if err == nil {
			t.Fatalf("put of %d bytes declared as %d succeeded", tc.actual, tc.declared)
		}
	}
	if _, err := n.e.Stat(t.Context(), "registry", "mismatch", manifest.ID{}); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("mismatched put visible: %v", err)
	}
	if c := n.blobCount(); c != 0 {
		t.Fatalf("%d blobs left behind", c)
	}
}

func TestSwappedManifestCopyRejected(t *testing.T) {
	// An index entry for one key holding another key's manifest (a
	// swapped or replayed entry) must not be served.
	n := newTestNode(t)
	a := n.put("a", []byte("alpha"))
	n.put("b", []byte("bravo"))
	va, _ := n.ix.Get(t.Context(), "registry", "a", a.VersionID)
	vb, _ := n.ix.Latest(t.Context(), "registry", "b")
	vb.Envelope = va.Envelope
	vb.Created++
	n.ix.Put(t.Context(), vb)
	if _, _, err := n.read("b", GetOptions{Length: -1}); !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("swapped manifest: %v, want ErrCorrupt", err)
	}
}

func TestRetentionRules(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	until := timeNow().Add(48 * time.Hour)
	for _, size := range []int{10, 3 * testStripe} { // inline and streamed
		key := fmt.Sprintf("ret/%d", size)
		want := content(key, size)
		info := n.put(key, want)
		if _, err := n.e.SetRetention(ctx, "registry", key, info.VersionID, Compliance, until, false); err != nil {
			t.Fatal(err)
		}
		if _, err := n.e.SetRetention(ctx, "registry", key, info.VersionID, Compliance, until.Add(-time.Hour), true); !errors.Is(err, ErrLocked) {
			t.Fatalf("shortening COMPLIANCE: %v", err)
		}
		if _, err := n.e.SetRetention(ctx, "registry", key, info.VersionID, Governance, until.Add(time.Hour), true); !errors.Is(err, ErrLocked) {
			t.Fatalf("COMPLIANCE to GOVERNANCE: %v", err)
		}
		if _, err := n.e.SetRetention(ctx, "registry", key, info.VersionID, Compliance, until.Add(time.Hour), false); err != nil {
			t.Fatalf("extending COMPLIANCE: %v", err)
		}
		if _, err := n.e.Delete(ctx, "registry", key, DeleteOptions{VersionID: info.VersionID, BypassGovernance: true}); !errors.Is(err, ErrLocked) {
			t.Fatalf("delete under COMPLIANCE: %v", err)
		}
		// The rewritten manifest still reads, with the inline blocks intact.
		if got := n.mustRead(key); !bytes.Equal(got, want) {
			t.Fatal("object differs after its manifest was rewritten")
		}
		st, _ := n.e.Stat(ctx, "registry", key, info.VersionID)
		if st.Lock == nil || !st.Lock.Until.Equal(until.Add(time.Hour)) {
			t.Fatalf("lock after extension = %+v", st.Lock)
		}
	}
	// GOVERNANCE: shortening needs the bypass; legal hold blocks deletes.
	g := n.put("gov", []byte("g"))
	n.e.SetRetention(ctx, "registry", "gov", g.VersionID, Governance, until, false)
	if _, err := n.e.SetRetention(ctx, "registry", "gov", g.VersionID, "", time.Time{}, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("removing GOVERNANCE without bypass: %v", err)
	}
	if _, err := n.e.SetRetention(ctx, "registry", "gov", g.VersionID, "", time.Time{}, true); err != nil {
		t.Fatalf("removing GOVERNANCE with bypass: %v", err)
	}
	n.e.SetLegalHold(ctx, "registry", "gov", g.VersionID, true)
	if _, err := n.e.Delete(ctx, "registry", "gov", DeleteOptions{VersionID: g.VersionID}); !errors.Is(err, ErrLocked) {
		t.Fatalf("delete under legal hold: %v", err)
	}
	n.e.SetLegalHold(ctx, "registry", "gov", g.VersionID, false)
	if _, err := n.e.Delete(ctx, "registry", "gov", DeleteOptions{VersionID: g.VersionID}); err != nil {
		t.Fatalf("delete after lifting the hold: %v", err)
	}
}

// failingIndex makes every Put fail, as a full disk would.
type failingIndex struct {
	*boltindex.Index
	fail bool
}

func (f *failingIndex) Put(ctx context.Context, v index.Version) error {
	if f.fail {
		return errors.New("index write failed")
	}
	return f.Index.Put(ctx, v)
}

// A failed index write while rewriting an existing version (a lock change)
// must not destroy the version.
func TestFailedRecommitKeepsVersion(t *testing.T) {
	n := newTestNode(t)
	fi := &failingIndex{Index: n.ix}
	e, err := New(Config{Keys: n.keys, Index: fi, Sites: n.sites, Vaults: n.e.Vaults(), Audit: n.audit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	n.e = e
	want := content("r", 100)
	info := n.put("r", want)
	fi.fail = true
	if _, err := e.SetLegalHold(t.Context(), "registry", "r", info.VersionID, true); err == nil {
		t.Fatal("lock change succeeded with a failing index")
	}
	fi.fail = false
	if got := n.mustRead("r"); !bytes.Equal(got, want) {
		t.Fatal("version destroyed by a failed index write")
	}
}

// TestDeleteRemovesOnlyWhatTheSitesRecord: a permanent delete is
// acknowledged once its record is durable in the node's log and the index
// forgets the version; nothing of the version leaves a site before the
// record is on every site holding it. With one site refusing the log's
// copies, the delete succeeds and every blob stays; once the site takes
// copies again, later deletes remove their versions.
func TestDeleteRemovesOnlyWhatTheSitesRecord(t *testing.T) {
	ctx := context.Background()
	n := newTestNode(t)
	a := n.put("a", content("a", 20*testStripe))
	b := n.put("b", content("b", 20*testStripe))
	if err := n.e.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	before := n.blobCount()
	n.faults["lux-2"].Set(fault.Config{PutErr: errors.New("log copies refused")})
	if _, err := n.e.Delete(ctx, "registry", "a", DeleteOptions{VersionID: a.VersionID}); err != nil {
		t.Fatalf("delete with a site refusing the log: %v", err)
	}
	if _, _, err := n.read("a", GetOptions{VersionID: a.VersionID, Length: -1}); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatalf("read of the deleted version: %v", err)
	}
	if err := n.e.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.blobCount(); got != before {
		t.Fatalf("%d blobs removed before the deletion record reached every site holding the version", before-got)
	}
	n.faults["lux-2"].Set(fault.Config{})
	if _, err := n.e.Delete(ctx, "registry", "b", DeleteOptions{VersionID: b.VersionID}); err != nil {
		t.Fatal(err)
	}
	if err := n.e.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	// b's six manifest copies and six shards go; a's stay for garbage
	// collection, which finds a's record on the sites now.
	if got := n.blobCount(); got != before-12 {
		t.Fatalf("removing b removed %d blobs, want 12", before-got)
	}
}
