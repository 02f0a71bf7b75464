package housekeeping

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/audit/audittest"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/site/fault"
	"github.com/embassy-dev/embassy/vault"
)

// testNode is an engine over six directory sites in three jurisdictions
// (EST, LUX, FIN) on two providers, each wrapped in a fault injector, with
// its housekeeping.
type testNode struct {
	t      *testing.T
	e      *vault.Engine
	k      *Keeper
	keys   *custody.Keyring
	ix     *boltindex.Index
	dirs   map[string]string
	faults map[string]*fault.Site
	sites  []vault.Site
	root   string
	vaults []vault.Vault
	audit  vault.AuditLog
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

var registry = vault.Vault{
	Name: "registry", Owner: "EST", StripeSize: testStripe,
	Policy: placement.Policy{K: 4, M: 2, Survive: placement.Loss{Jurisdictions: 1, Sites: 1}, OutsideHome: true},
}

func newTestNode(t *testing.T, extra ...site.Descriptor) *testNode {
	t.Helper()
	root := t.TempDir()
	n := &testNode{t: t, dirs: map[string]string{}, faults: map[string]*fault.Site{}, root: root, vaults: []vault.Vault{registry}}
	for i, d := range append(append([]site.Descriptor(nil), topology...), extra...) {
		p := filepath.Join(root, "sites", d.ID)
		ds, err := dir.New(p)
		if err != nil {
			t.Fatal(err)
		}
		f := fault.New(ds, uint64(i+1))
		n.dirs[d.ID], n.faults[d.ID] = p, f
		n.sites = append(n.sites, vault.Site{Descriptor: d, Store: f})
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

// open (re)opens the engine over the index at indexPath.
func (n *testNode) open(indexPath string) {
	t := n.t
	t.Helper()
	if n.e != nil {
		n.e.Close(t.Context())
	}
	if n.ix != nil {
		n.ix.Close()
	}
	ix, err := boltindex.Open(indexPath)
	if err != nil {
		t.Fatal(err)
	}
	n.ix = ix
	if n.audit == nil {
		n.audit = testAudit(t, n.root, "test", n.sites)
	}
	e, err := vault.New(vault.Config{NodeID: "test", Keys: n.keys, Index: ix, Sites: n.sites, Vaults: n.vaults, Audit: n.audit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close(t.Context())
		ix.Close()
	})
	n.e, n.k = e, New(e, nil)
}

// testAudit opens the audit log of a test node in root (kept there, so
// that another process of the same test opens the same log), copying to
// sites; it is closed when the test ends.
func testAudit(t testing.TB, root, node string, sites []vault.Site) vault.AuditLog {
	t.Helper()
	stores := map[string]site.Site{}
	for _, s := range sites {
		stores[s.ID] = s.Store
	}
	return audittest.OpenConfig(t, audittest.Config(t, audittest.KeysIn(t, root, node), node, filepath.Join(root, "audit"), func() map[string]site.Site { return stores }))
}

func content(name string, size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(size)))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	copy(b, "PLAINTEXT-MARKER:"+name)
	return b
}

var sizes = []int{0, 1, 100, testStripe - 1, testStripe, testStripe + 1, 3*testStripe + 17, 10 * testStripe}

func (n *testNode) put(key string, data []byte) vault.ObjectInfo {
	n.t.Helper()
	info, err := n.e.Put(n.t.Context(), "registry", key, bytes.NewReader(data), vault.PutOptions{Size: int64(len(data))})
	if err != nil {
		n.t.Fatalf("put %s: %v", key, err)
	}
	return info
}

func (n *testNode) read(key string, o vault.GetOptions) ([]byte, *vault.Reader, error) {
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
	b, _, err := n.read(key, vault.GetOptions{Length: -1})
	if err != nil {
		n.t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func (n *testNode) fillSizes(prefix string) map[string][]byte {
	want := map[string][]byte{}
	for i, size := range sizes {
		key := fmt.Sprintf("%s/%d", prefix, i)
		want[key] = content(key, size)
		n.put(key, want[key])
	}
	return want
}

func (n *testNode) checkAll(want map[string][]byte) {
	n.t.Helper()
	for key, w := range want {
		got, r, err := n.read(key, vault.GetOptions{Length: -1})
		if err != nil {
			n.t.Fatalf("%s: %v", key, err)
		}
		if !bytes.Equal(got, w) {
			n.t.Fatalf("%s differs", key)
		}
		if p := r.Problems(); len(p) > 0 {
			n.t.Fatalf("%s read with problems after repair: %v", key, p)
		}
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

// blobCount counts the data blobs (manifests and shards) on every site.
func (n *testNode) blobCount() int {
	c := 0
	for _, d := range n.dirs {
		for _, prefix := range []string{"m", "s"} {
			filepath.WalkDir(filepath.Join(d, prefix), func(p string, de fs.DirEntry, err error) error {
				if err == nil && !de.IsDir() && !strings.Contains(p, "/.tmp/") {
					c++
				}
				return nil
			})
		}
	}
	return c
}

type snapshot struct{ list, versions []string }

func (n *testNode) snapshot() snapshot {
	ctx := n.t.Context()
	var s snapshot
	o := index.ListOptions{Max: 7}
	for {
		p, err := n.e.List(ctx, "registry", o)
		if err != nil {
			n.t.Fatal(err)
		}
		for _, e := range p.Entries {
			s.list = append(s.list, fmt.Sprintf("%s %s %d %s %d", e.Key, e.ID, e.Size, e.ETag, e.Created))
		}
		if !p.Truncated {
			break
		}
		o.After = p.Next
	}
	vp, err := n.e.Versions(ctx, "registry", index.VersionOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	for _, v := range vp.Versions {
		s.versions = append(s.versions, fmt.Sprintf("%s %s %v %v %d", v.Key, v.ID, v.DeleteMarker, v.IsLatest, v.Created))
	}
	return s
}
