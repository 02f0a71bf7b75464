package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/vault"
)

// bindMount mounts dir over at (a bind mount: one directory under two
// names) until the test ends. Where the process may not mount (not root,
// or a container without CAP_SYS_ADMIN: a privilege, not something CI can
// install), it says so loudly and skips, in CI too; the symbolic-link
// cases still run. Any other failure to mount fails the test.
func bindMount(t *testing.T, dir, at string) {
	t.Helper()
	if err := unix.Mount(dir, at, "", unix.MS_BIND, ""); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			t.Skipf("SKIPPED: bind mount %s at %s: %v (needs root with CAP_SYS_ADMIN; the symbolic-link cases still run)", dir, at, err)
		}
		t.Fatalf("bind mount %s at %s: %v", dir, at, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(at, 0); err != nil {
			t.Errorf("unmount %s: %v", at, err)
		}
	})
}

// TestHostingDirApart: alliance.hosting.path must be a directory of its
// own ("two things pointing at one directory"). A hosting path that is,
// lies inside or contains the node directory or one of the node's sites
// (under another name too: a symbolic link, a bind mount), or lies inside
// another node's site or hosting directory, is refused, naming both
// users of the directory, and nothing is written to either.
func TestHostingDirApart(t *testing.T) {
	lux, est, fin := newAllyNode(t, "LUX"), newAllyNode(t, "EST"), newAllyNode(t, "FIN")
	trust(t, lux, est)
	admin := lux.As(t.Context(), "admin")
	var luxSite, estSite string
	for _, s := range lux.Config.Sites {
		luxSite = lux.path(s.Path)
	}
	for _, s := range est.Config.Sites {
		estSite = est.path(s.Path)
	}
	luxSiteID := lux.Config.Sites[len(lux.Config.Sites)-1].ID
	finMarker, err := encodeHostingMarker(fin.Keys(), fin.Config.Node.ID)
	if err != nil {
		t.Fatal(err)
	}
	siteSays := func(how string) string {
		return fmt.Sprintf("%s the directory of this node's site %s, %s: a site and the guests' stores must not share a directory", how, luxSiteID, luxSite)
	}
	nodeSays := func(how string) string {
		return fmt.Sprintf("%s this node's directory %s: the guests' stores and the node's own files must not share a directory", how, lux.Dir)
	}
	for _, tc := range []struct {
		name string
		// path returns the hosting path to try, and the directory of
		// the other user it would share.
		path func(t *testing.T) (hosting, other string)
		says string
	}{
		{"the node directory", func(*testing.T) (string, string) { return lux.Dir, lux.Dir }, nodeSays(sharesSame)},
		{"inside the node directory", func(t *testing.T) (string, string) {
			p := filepath.Join(lux.Dir, "hosted")
			mkdir(t, p)
			return p, lux.Dir
		}, nodeSays(sharesInside)},
		{"a symbolic link to the node directory", func(t *testing.T) (string, string) {
			p := filepath.Join(t.TempDir(), "hosted")
			if err := os.Symlink(lux.Dir, p); err != nil {
				t.Fatal(err)
			}
			return p, lux.Dir
		}, nodeSays(sharesSame)},
		{"holding the node directory", func(*testing.T) (string, string) { return filepath.Dir(lux.Dir), lux.Dir }, nodeSays(sharesHolds)},
		{"a site's directory", func(*testing.T) (string, string) { return luxSite, luxSite }, siteSays(sharesSame)},
		{"inside a site's directory", func(t *testing.T) (string, string) {
			p := filepath.Join(luxSite, "hosted")
			mkdir(t, p)
			return p, luxSite
		}, siteSays(sharesInside)},
		{"a symbolic link to a site", func(t *testing.T) (string, string) {
			p := filepath.Join(t.TempDir(), "hosted")
			if err := os.Symlink(luxSite, p); err != nil {
				t.Fatal(err)
			}
			return p, luxSite
		}, siteSays(sharesSame)},
		{"a bind mount of a site", func(t *testing.T) (string, string) {
			p := filepath.Join(t.TempDir(), "hosted")
			mkdir(t, p)
			bindMount(t, luxSite, p)
			return p, luxSite
		}, siteSays(sharesSame)},
		{"inside a bind mount of a site", func(t *testing.T) (string, string) {
			m := filepath.Join(t.TempDir(), "mnt")
			mkdir(t, m)
			bindMount(t, luxSite, m)
			p := filepath.Join(m, "hosted-below-a-mount")
			mkdir(t, p)
			return p, luxSite
		}, siteSays(sharesInside)},
		{"another node's site", func(t *testing.T) (string, string) {
			p := filepath.Join(estSite, "hosted")
			mkdir(t, p)
			return p, estSite
		}, fmt.Sprintf("lies inside the site at %s (it holds the marker of node %s's site", estSite, est.Config.Node.ID)},
		{"another node's hosting directory", func(t *testing.T) (string, string) {
			fins := filepath.Join(t.TempDir(), "fin-hosted")
			mkdir(t, fins)
			write(t, filepath.Join(fins, HostingMarkerFile), string(finMarker))
			p := filepath.Join(fins, "hosted")
			mkdir(t, p)
			return p, fins
		}, "(it holds the hosting marker of node " + fin.Config.Node.ID + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, other := tc.path(t)
			changeConfig(t, lux.Node, func(c *Config) {
				c.Alliance.Hosting = &HostingConfig{Path: path, Jurisdiction: "LUX", Provider: "lux-gov-dc", Control: "LUX"}
				c.Alliance.Guests = nil
			})
			before := tree(t, other)
			_, err := lux.Host(admin, HostRequest{Peer: "EST", Quota: "1MiB"})
			if err == nil || !strings.Contains(err.Error(), "hosting path "+path+" ") || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("host add: %v\nwant an error naming %s and saying %q", err, path, tc.says)
			}
			if len(lux.Guests()) != 0 {
				t.Fatalf("hosted all the same: %+v", lux.Guests())
			}
			for _, f := range []string{HostingMarkerFile, HostingLockFile, est.Config.Node.ID} {
				if _, err := os.Lstat(filepath.Join(path, f)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s written in %s: %v", f, path, err)
				}
			}
			if other != lux.Dir { // the node's own files change as it works
				// A serving node copies its audit log and descriptor to
				// its sites (log/, node/) as it works: the rest stays.
				if after := tree(t, other); !equalTrees(withoutNodeRecords(after), withoutNodeRecords(before)) {
					t.Errorf("%s changed: %v", other, treeDiff(withoutNodeRecords(before), withoutNodeRecords(after)))
				}
			}
		})
	}
}

// withoutNodeRecords is a site's tree without what the node writes there
// in the background (its audit log's copy and its records, and the
// temporary files those writes go through before their rename: a copy
// round in flight when the tree is read leaves one in .tmp/).
func withoutNodeRecords(tr map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range tr {
		inFlight := strings.HasPrefix(k, ".tmp/") && k != ".tmp/"
		if !strings.HasPrefix(k, "log/") && !strings.HasPrefix(k, "node/") && !inFlight {
			out[k] = v
		}
	}
	return out
}

// withoutLogCopies is a tree of sites without the copies of the audit log
// a node keeps there.
func withoutLogCopies(tr map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range tr {
		// A copy round in flight leaves its temporary file in a
		// site's .tmp/ until its rename.
		inFlight := strings.Contains("/"+k, "/.tmp/") && !strings.HasSuffix(k, ".tmp/")
		if !strings.Contains("/"+k, "/log/") && !inFlight {
			out[k] = v
		}
	}
	return out
}

// copyDir copies a directory as an operator does, cp -a.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", from, to, err, out)
	}
}

// TestHostingDirOfACopy: two copies of one node directory (a restored
// backup started beside the node, a standby started by mistake) carry
// the same identity, so the hosting directory's marker is both's. Only
// one may use it: the other is refused, naming the process that holds
// it and its node directory, nothing is written to the hosting
// directory, and the guest's store stays as the first left it. The lock
// goes with its holder: once the first copy is closed, the other may use
// the directory.
func TestHostingDirOfACopy(t *testing.T) {
	lux, est := newAllyNode(t, "LUX"), newAllyNode(t, "EST")
	trust(t, lux, est)
	hosted := mkHostingDir(t)
	changeConfig(t, lux.Node, func(c *Config) {
		c.Alliance.Hosting = &HostingConfig{Path: hosted, Jurisdiction: "LUX", Provider: "lux-gov-dc", Control: "LUX"}
	})
	if _, err := lux.Host(lux.As(t.Context(), "admin"), HostRequest{Peer: "EST", Quota: "1MiB"}); err != nil {
		t.Fatal(err)
	}
	estID := est.Config.Node.ID
	lux.stop()
	lux.Close()
	copyOf := filepath.Join(t.TempDir(), "lux-copy")
	copyDir(t, lux.Dir, copyOf)
	open := func(dir string) *Node {
		t.Helper()
		n, err := Open(t.Context(), dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	first, second := open(lux.Dir), open(copyOf)
	if _, err := first.guestStoreOf(t.Context(), estID); err != nil {
		t.Fatal(err)
	}
	before := tree(t, hosted)
	_, err := second.guestStoreOf(t.Context(), estID)
	want := fmt.Sprintf("hosting path %s is in use by process %d (", hosted, os.Getpid())
	holder := fmt.Sprintf("node %s with node directory %q: this node (node directory %s) cannot use it too", lux.Config.Node.ID, lux.Dir, copyOf)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), holder) {
		t.Fatalf("the copy opening the guest's store: %v\nwant %q… and %q", err, want, holder)
	}
	usage, down := second.hostedUsage(t.Context())
	if e := down[estID]; e == nil || !strings.Contains(e.Error(), want) {
		t.Errorf("host ls on the copy: %v %v", usage, down)
	}
	if err := second.canMakeGuestStore("0123456789abcdef"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("the copy hosting another guest: %v", err)
	}
	if after := tree(t, hosted); !equalTrees(after, before) {
		t.Errorf("the hosting directory changed: %v, was %v", after, before)
	}

	first.Close()
	if _, err := second.guestStoreOf(t.Context(), estID); err != nil {
		t.Fatalf("once the first copy is closed: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(hosted, HostingLockFile)); !strings.Contains(string(b), "dir "+copyOf+"\n") {
		t.Errorf("the lock file names %q, not its holder %s", b, copyOf)
	}
}

// TestOverlap: two names of directories are compared by what they name.
func TestOverlap(t *testing.T) {
	d := t.TempDir()
	a, b := filepath.Join(d, "a"), filepath.Join(d, "b")
	sub := filepath.Join(a, "sub")
	for _, p := range []string{a, b, sub, filepath.Join(d, "mnt"), filepath.Join(d, "mnt-sub")} {
		mkdir(t, p)
	}
	if err := os.Symlink(a, filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	bindOf := func(t *testing.T, dir, at string) string {
		bindMount(t, dir, filepath.Join(d, at))
		return filepath.Join(d, at)
	}
	for _, tc := range []struct {
		name string
		x, y func(t *testing.T) string
		want string
	}{
		{"apart", func(*testing.T) string { return a }, func(*testing.T) string { return b }, sharesNothing},
		{"one directory", func(*testing.T) string { return a }, func(*testing.T) string { return a + "/." }, sharesSame},
		{"a subdirectory", func(*testing.T) string { return sub }, func(*testing.T) string { return a }, sharesInside},
		{"its parent", func(*testing.T) string { return a }, func(*testing.T) string { return sub }, sharesHolds},
		{"not made yet, inside", func(*testing.T) string { return filepath.Join(sub, "new") }, func(*testing.T) string { return a }, sharesInside},
		{"not made yet, apart", func(*testing.T) string { return filepath.Join(b, "new") }, func(*testing.T) string { return a }, sharesNothing},
		{"a symbolic link", func(*testing.T) string { return filepath.Join(d, "link") }, func(*testing.T) string { return a }, sharesSame},
		{"below a symbolic link", func(*testing.T) string { return filepath.Join(d, "link", "sub") }, func(*testing.T) string { return a }, sharesInside},
		{"a bind mount", func(t *testing.T) string { return bindOf(t, a, "mnt") }, func(*testing.T) string { return a }, sharesSame},
		{"a bind mount of a subdirectory", func(t *testing.T) string { return bindOf(t, sub, "mnt-sub") }, func(*testing.T) string { return a }, sharesInside},
		{"holding a bind-mounted subdirectory", func(*testing.T) string { return a }, func(t *testing.T) string { return bindOf(t, sub, "mnt-sub") }, sharesHolds},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, y := tc.x(t), tc.y(t)
			if got := overlap(x, y); got != tc.want {
				t.Errorf("overlap(%s, %s) = %q, want %q", x, y, got, tc.want)
			}
		})
	}
}

// TestSiteDirUnderAnotherName: two sites of one node on one directory are
// one disk counted twice by the survivability proof. 'site add' refuses a
// directory that is a site's under another name (a bind mount), lies
// inside one through a bind mount of its subdirectory, or is, lies inside
// or holds a hosting directory (this node's, or another's); a site edited
// into node.yaml on a bind mount of another site's subdirectory is
// unavailable, with the reason. Nothing is written to either directory.
func TestSiteDirUnderAnotherName(t *testing.T) {
	n := newNode(t)
	est1 := sitePath(n, "est-1")
	hosted := mkHostingDir(t)
	changeConfig(t, n, func(c *Config) {
		c.Alliance.Hosting = &HostingConfig{Path: hosted, Jurisdiction: "EST", Provider: "gov-dc", Control: "EST"}
	})
	other := newNode(t)
	fins := filepath.Join(t.TempDir(), "fin-hosted")
	mkdir(t, fins)
	finMarker, err := encodeHostingMarker(other.Keys(), other.Config.Node.ID)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(fins, HostingMarkerFile), string(finMarker))
	mnt := func(t *testing.T, dir string) string {
		p := filepath.Join(t.TempDir(), "mnt")
		mkdir(t, p)
		bindMount(t, dir, p)
		return p
	}
	for _, tc := range []struct {
		name  string
		path  func(t *testing.T) string
		other string // the directory of the other user
		says  string
	}{
		{"a bind mount of a site", func(t *testing.T) string { return mnt(t, est1) }, est1,
			"is already site est-1's, directory " + est1 + ", under another name (a symbolic link or a bind mount): two sites on one directory are one disk counted twice"},
		{"a bind mount of a site's subdirectory", func(t *testing.T) string {
			sub := filepath.Join(est1, "below")
			mkdir(t, sub)
			t.Cleanup(func() { os.Remove(sub) })
			return mnt(t, sub)
		}, est1, "lies inside site est-1's directory " + est1},
		{"the hosting directory", func(*testing.T) string { return hosted }, hosted,
			"is the same directory as this node's hosting directory " + hosted + " (alliance.hosting.path), where allies' stores live"},
		{"inside the hosting directory", func(*testing.T) string { return filepath.Join(hosted, "site") }, hosted,
			"lies inside this node's hosting directory " + hosted},
		{"holding the hosting directory", func(*testing.T) string { return filepath.Dir(hosted) }, hosted,
			"contains this node's hosting directory " + hosted},
		{"inside another node's hosting directory", func(*testing.T) string { return filepath.Join(fins, "site") }, fins,
			"lies inside the hosting directory " + fins + " (it holds the hosting marker of node " + other.Config.Node.ID + "), where allies' stores live"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path(t)
			before := tree(t, tc.other)
			err := n.AddSite(SiteConfig{Descriptor: site.Descriptor{ID: "new-1", Jurisdiction: "EST", Provider: "p", Control: "EST"}, Driver: "dir", Path: path})
			if err == nil || !strings.Contains(err.Error(), "site new-1: directory "+path+" ") || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("site add: %v\nwant %q", err, tc.says)
			}
			if slices.ContainsFunc(n.Config.Sites, func(s SiteConfig) bool { return s.ID == "new-1" }) {
				t.Fatal("a refused site was added")
			}
			// The node's own records on est-1 (its audit log's copies,
			// its commit generations) are written in the node's own
			// time, a copy round's possibly during the add: not the
			// add's.
			if after := tree(t, tc.other); !equalTrees(withoutNodeRecords(after), withoutNodeRecords(before)) {
				t.Errorf("%s changed: %v, was %v", tc.other, after, before)
			}
		})
	}

	// By hand: fin-2 pointed at a bind mount of a new directory in est-1.
	sub := filepath.Join(est1, "below")
	mkdir(t, sub)
	at := mnt(t, sub)
	c := *n.Config
	c.Sites = slices.Clone(c.Sites)
	for i := range c.Sites {
		if c.Sites[i].ID == "fin-2" {
			c.Sites[i].Path = at
		}
	}
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	n = reopen(t, n)
	if s := states(t, n)["fin-2"]; s.State != "unavailable" || !strings.Contains(s.Reason, "its directory "+at+" lies inside site est-1's directory "+est1) {
		t.Errorf("fin-2 on a bind mount inside est-1: %+v", s)
	}
	if s := states(t, n)["est-1"]; s.State != "ok" {
		t.Errorf("est-1: %+v", s)
	}
	if ents, err := os.ReadDir(sub); err != nil || len(ents) != 0 {
		t.Errorf("written in est-1/below through the mount: %v %v", ents, err)
	}
}

// TestSitesOfACopy: two copies of one node directory (a restored backup
// started beside the node) carry the same identity, so the sites' markers
// name both. Only the first to use the sites keeps them: on the other
// every directory site is unavailable, naming the process that holds it
// and this node's directory, a write is refused, and nothing on the sites
// changes; once the first is closed, the other may use them.
func TestSitesOfACopy(t *testing.T) {
	n := newNode(t)
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	want := fill(t, n)
	n.Close()
	copyOf := filepath.Join(filepath.Dir(n.Dir), "node-copy")
	copyDir(t, n.Dir, copyOf)
	first := reopen(t, n)
	for id, s := range states(t, first) {
		if s.State != "ok" {
			t.Fatalf("the first copy's site %s: %+v", id, s)
		}
	}
	sites := filepath.Join(filepath.Dir(n.Dir), "sites")
	before := tree(t, sites)
	second, err := Open(t.Context(), copyOf, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	in := fmt.Sprintf("is in use by process %d (", os.Getpid())
	this := fmt.Sprintf("this node (node directory %s) cannot use it too", copyOf)
	for id, s := range states(t, second) {
		if s.State != "unavailable" || !strings.Contains(s.Reason, "its directory "+sitePath(second, id)+" "+in) || !strings.Contains(s.Reason, this) {
			t.Errorf("the copy's site %s: %+v\nwant unavailable: … %s… %s", id, s, in, this)
		}
	}
	ctx := second.As(t.Context(), "admin")
	if _, err := second.Engine.Put(ctx, "registry", "2026/copy.bin", strings.NewReader("written by the copy"), vault.PutOptions{Size: 19}); err == nil {
		t.Error("the copy wrote an object")
	}
	// (The first copy's audit log is copied to the sites, log/, every
	// second: everything else stays as it was.)
	if after := tree(t, sites); !equalTrees(withoutLogCopies(after), withoutLogCopies(before)) {
		t.Errorf("the sites changed under the copy: %v", treeDiff(withoutLogCopies(before), withoutLogCopies(after)))
	}
	checkObjects(t, first, want)

	// Nor is the node recovered beside itself from its sites.
	root, err := custody.ReadKeyFile(filepath.Join(n.Dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	from, _ := dir.Open(sitePath(first, "est-1"))
	rec := filepath.Join(t.TempDir(), "recovered")
	if _, _, err := Recover(t.Context(), RecoverOptions{Dir: rec, From: from, RootKey: &root}); err == nil ||
		!strings.Contains(err.Error(), "is in use by process "+fmt.Sprint(os.Getpid())+" (") || !strings.Contains(err.Error(), "most likely the node being recovered, still running: stop it before recovering it") {
		t.Errorf("recover beside the running node: %v", err)
	}
	if _, err := os.Stat(rec); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("recover beside the running node wrote %s: %v", rec, err)
	}

	first.Close()
	second = reopen(t, second)
	for id, s := range states(t, second) {
		if s.State != "ok" {
			t.Errorf("the copy's site %s once the first is closed: %+v", id, s)
		}
	}
	checkObjects(t, second, want)
}
