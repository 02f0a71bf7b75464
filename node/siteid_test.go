package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// TestTopDirsCoverEveryPrefix: every kind of blob the node writes lies
// under one of site.TopDirs, which a directory site creates once and never
// again.
func TestTopDirsCoverEveryPrefix(t *testing.T) {
	for _, name := range []string{manifest.ShardPrefix, manifest.ManifestPrefix, evidence.Prefix, DescriptorBlob, site.MarkerBlob} {
		top, _, _ := strings.Cut(name, "/")
		if !slices.Contains(site.TopDirs(), top) {
			t.Errorf("%s is not under one of site.TopDirs %v", name, site.TopDirs())
		}
	}
}

// reopen closes n and opens its directory again.
func reopen(t *testing.T, n *Node) *Node {
	t.Helper()
	n.Close()
	m, err := Open(t.Context(), n.Dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func states(t *testing.T, n *Node) map[string]SiteState {
	t.Helper()
	out := map[string]SiteState{}
	for _, s := range n.SiteStates(t.Context(), 10e9) {
		out[s.ID] = s
	}
	return out
}

func sitePath(n *Node, id string) string {
	for _, s := range n.Config.Sites {
		if s.ID == id {
			return n.path(s.Path)
		}
	}
	return ""
}

func marker(t *testing.T, path string) site.Marker {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(path, "node", "marker"))
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := site.ParseMarker(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSiteAddRefusesClaimedPlaces: 'site add' refuses a directory that is
// another site's, lies inside or around one, lies inside another node's
// site, or is not empty without this node's marker of the site; and says
// which. An empty site removed with 'site rm' loses its marker.
func TestSiteAddRefusesClaimedPlaces(t *testing.T) {
	n := newNode(t)
	est1 := sitePath(n, "est-1")
	if m := marker(t, est1); m.Node != n.Config.Node.ID || m.Site != "est-1" {
		t.Fatalf("marker of est-1 = %+v", m)
	}
	junk := filepath.Join(t.TempDir(), "junk")
	os.MkdirAll(junk, 0o700)
	os.WriteFile(filepath.Join(junk, "holiday.jpg"), []byte("x"), 0o600)
	other := newNode(t) // another node, with its own six sites
	otherLux := sitePath(other, "lux-1")
	for _, tc := range []struct {
		name, path, want string
	}{
		{"same directory", est1, "directory " + est1 + " is already site est-1's"},
		{"same directory by another name", est1 + "/../est-1/", "is already site est-1's"},
		{"inside a site", filepath.Join(est1, "s", "inner"), "lies inside site est-1's directory " + est1},
		{"around a site", filepath.Dir(est1), "contains site est-1's directory " + est1},
		{"not empty, no marker", junk, "is not empty (it holds holiday.jpg) and has no site marker"},
		{"another node's site", otherLux, "is already claimed: names node " + other.Config.Node.ID + " (as its site lux-1): it belongs to another node"},
		{"inside another node's site", filepath.Join(otherLux, "m", "x"), "lies inside the site at " + otherLux + " (it holds the marker of node " + other.Config.Node.ID + "'s site lux-1)"},
	} {
		err := n.AddSite(SiteConfig{Descriptor: site.Descriptor{ID: "new-1", Jurisdiction: "EST", Provider: "p", Control: "EST"}, Driver: "dir", Path: tc.path})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if slices.ContainsFunc(n.Config.Sites, func(s SiteConfig) bool { return s.ID == "new-1" }) {
		t.Fatal("a refused site was added")
	}
	if m := marker(t, otherLux); m.Node != other.Config.Node.ID {
		t.Fatal("a refused add touched the other node's marker")
	}
	// An empty site removed loses its marker; the directory can then be
	// given to another site.
	if err := n.AddSite(SiteConfig{Descriptor: site.Descriptor{ID: "spare", Jurisdiction: "EST", Provider: "p", Control: "EST"}, Driver: "dir", Path: filepath.Join(filepath.Dir(est1), "spare")}); err != nil {
		t.Fatal(err)
	}
	spare := sitePath(n, "spare")
	if err := n.RemoveSite(t.Context(), "spare"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(spare, "node", "marker")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("site rm of an empty site left its marker: %v", err)
	}
	// What it still holds (its layout, an old descriptor) is not given to
	// another site until the operator empties it.
	spare2 := SiteConfig{Descriptor: site.Descriptor{ID: "spare-2", Jurisdiction: "EST", Provider: "p", Control: "EST"}, Driver: "dir", Path: spare}
	if err := n.AddSite(spare2); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Fatalf("a removed site's directory, not emptied: %v", err)
	}
	// A copy of the audit log that was under way when the site was
	// removed may still add a file while the directory is emptied.
	var err error
	for range 100 {
		if err = os.RemoveAll(spare); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := n.AddSite(spare2); err != nil {
		t.Fatalf("a removed site's emptied directory refused: %v", err)
	}
	if m := marker(t, spare); m.Site != "spare-2" {
		t.Fatalf("marker names %s, want spare-2", m.Site)
	}
}

// TestSharedDirectoryByHandIsUnavailable: node.yaml edited so that two
// sites share one directory: the one the marker does not name is
// unavailable, with the reason, and nothing reaches it; every object
// still reads. Pointed at another node's site, a site is unavailable too.
func TestSharedDirectoryByHandIsUnavailable(t *testing.T) {
	n := newNode(t)
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	want := fill(t, n)
	other := newNode(t)
	c := *n.Config
	c.Sites = slices.Clone(c.Sites)
	for i := range c.Sites {
		switch c.Sites[i].ID {
		case "fin-2":
			c.Sites[i].Path = sitePath(n, "est-1")
		case "lux-2":
			c.Sites[i].Path = sitePath(other, "lux-2")
		}
	}
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	n = reopen(t, n)
	st := states(t, n)
	for id, want := range map[string]string{
		"fin-2": "its marker names site est-1 of this node",
		"lux-2": "its marker names node " + other.Config.Node.ID + " (as its site lux-2): it belongs to another node",
	} {
		if st[id].State != "unavailable" || !strings.Contains(st[id].Reason, want) {
			t.Errorf("%s: %+v, want unavailable: %q", id, st[id], want)
		}
	}
	for _, id := range []string{"est-1", "est-2", "lux-1", "fin-1"} {
		if st[id].State != "ok" {
			t.Errorf("%s: %+v", id, st[id])
		}
	}
	for _, s := range n.Engine.Sites() {
		if s.ID != "fin-2" {
			continue
		}
		err := s.Store.List(t.Context(), "", func(site.Info) error { return errors.New("listed") })
		if !errors.Is(err, site.ErrUnavailable) || !strings.Contains(err.Error(), "site fin-2 unavailable: its marker names site est-1") {
			t.Fatalf("list of the refused site: %v", err)
		}
	}
	checkObjects(t, n, want)
	// The same, found by the key-less inspection of 'site ls'.
	ins, err := InspectSites(t.Context(), n.Dir, 10e9)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ins {
		if (s.ID == "fin-2" || s.ID == "lux-2") != (s.State == "unavailable") || !s.Verified {
			t.Errorf("InspectSites: %+v", s)
		}
	}
	// A site configured inside another's directory is refused outright.
	c = *n.Config
	c.Sites = slices.Clone(c.Sites)
	for i := range c.Sites {
		if c.Sites[i].ID == "fin-2" {
			c.Sites[i].Path = filepath.Join(sitePath(n, "est-1"), "m")
		}
	}
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	n = reopen(t, n)
	if s := states(t, n)["fin-2"]; s.State != "unavailable" || !strings.Contains(s.Reason, "lies inside site est-1's directory") {
		t.Errorf("fin-2 inside est-1: %+v", s)
	}
}

// stripMarkers makes n's sites look like those of a node from before
// markers: no marker, and no j/ (an older layout).
func stripMarkers(t *testing.T, n *Node) {
	t.Helper()
	for _, s := range n.Config.Sites {
		p := n.path(s.Path)
		if err := os.Remove(filepath.Join(p, "node", "marker")); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(p, "j")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUpgradeClaimsOwnSites: a node from before markers opens and claims
// its sites (their descriptor and manifests are its own), making the top
// directories the older layout lacked; everything reads.
func TestUpgradeClaimsOwnSites(t *testing.T) {
	n := newNode(t)
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	want := fill(t, n)
	n.Close()
	stripMarkers(t, n)
	n = reopen(t, n)
	checkObjects(t, n, want)
	for id, s := range states(t, n) {
		if s.State != "ok" {
			t.Errorf("%s after the upgrade: %+v", id, s)
		}
		p := sitePath(n, id)
		if m := marker(t, p); m.Node != n.Config.Node.ID || m.Site != id {
			t.Errorf("%s claimed with marker %+v", id, m)
		}
		if _, err := os.Stat(filepath.Join(p, "j")); err != nil {
			t.Errorf("%s: the claim did not make j/: %v", id, err)
		}
	}
}

// TestUpgradeLeavesForeignSitesUnclaimed: a site without a marker that
// holds another node's descriptor, or whose manifests are another node's,
// is left unclaimed: unavailable with the reason, and written nothing.
func TestUpgradeLeavesForeignSitesUnclaimed(t *testing.T) {
	a := newNode(t)
	if err := a.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	fill(t, a)
	b := newNode(t)
	if err := b.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	fill(t, b)
	aLux, bFin := sitePath(a, "lux-1"), sitePath(b, "fin-1")
	// b's fin-1 gets one of a's manifests (its own descriptor stays).
	var one string
	filepath.WalkDir(filepath.Join(aLux, "m"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && one == "" {
			one = p
		}
		return nil
	})
	blob, _ := os.ReadFile(one)
	rel, _ := filepath.Rel(aLux, one)
	os.MkdirAll(filepath.Dir(filepath.Join(bFin, rel)), 0o700)
	if err := os.WriteFile(filepath.Join(bFin, rel), blob, 0o600); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	stripMarkers(t, a)
	stripMarkers(t, b)
	// b is pointed at a's lux-1 (for its lux-2).
	c := *b.Config
	c.Sites = slices.Clone(c.Sites)
	for i := range c.Sites {
		if c.Sites[i].ID == "lux-2" {
			c.Sites[i].Path = aLux
		}
	}
	keys, err := localKeysWithIdentity(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeConfig(b.Dir, keys, &c, nodeFileGen(b.Dir, keys, ConfigFile)+1); err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b)
	st := states(t, b)
	for id, want := range map[string]string{
		"lux-2": "it has no marker (node/marker) and the node descriptor on it does not open with this node's key: left unclaimed",
		"fin-1": "it has no marker (node/marker) and manifest " + filepath.ToSlash(rel) + " on it does not open with this node's key: left unclaimed",
	} {
		if st[id].State != "unavailable" || st[id].Reason != want {
			t.Errorf("%s: %+v, want unavailable: %q", id, st[id], want)
		}
	}
	for _, p := range []string{aLux, bFin} {
		if _, err := os.Stat(filepath.Join(p, "node", "marker")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was claimed: %v", p, err)
		}
	}
	// a, opened again, claims its own lux-1: b never wrote there.
	a = reopen(t, a)
	if s := states(t, a)["lux-1"]; s.State != "ok" {
		t.Errorf("a's lux-1: %+v", s)
	}
}

// TestSiteRemovedWhileWriting: a site's directory is removed while puts
// run through the node. The directory is never recreated and nothing is
// written anywhere outside the sites; the puts go on to the other sites.
func TestSiteRemovedWhileWriting(t *testing.T) {
	n := newNode(t)
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "2+1", Survive: "sites=1"}); err != nil {
		t.Fatal(err)
	}
	parent := filepath.Dir(sitePath(n, "est-1"))
	before, _ := os.ReadDir(parent)
	ctx := n.As(context.Background(), "admin")
	var puts atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := bytes.Repeat([]byte{byte(w), byte(i)}, 1000+i%5000)
				if _, err := n.Engine.Put(ctx, "registry", fmt.Sprintf("w%d/%d", w, i), bytes.NewReader(body), vault.PutOptions{Size: int64(len(body))}); err != nil {
					failed.Store(err)
				}
				puts.Add(1)
			}
		})
	}
	for puts.Load() < 20 {
		runtime.Gosched() // let the writers get going
	}
	est1 := sitePath(n, "est-1")
	for os.RemoveAll(est1) != nil {
	}
	after := puts.Load()
	for puts.Load() < after+100 {
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Errorf("a put failed although five sites remained: %v", err)
	}
	if _, err := os.Lstat(est1); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the removed site directory was recreated: %v", err)
	}
	now, _ := os.ReadDir(parent)
	if len(now) != len(before)-1 {
		t.Fatalf("the sites' parent held %d entries, now %d", len(before), len(now))
	}
	for _, s := range n.Engine.Sites() {
		if g, ok := s.Store.(*site.Guarded); ok && s.ID == "est-1" {
			// A fresh check (the last one may have seen the directory
			// half removed).
			if err := g.Check(t.Context()); !errors.Is(err, site.ErrUnavailable) || !strings.Contains(err.Error(), "directory missing") {
				t.Errorf("est-1: %v", err)
			}
		}
	}
}
