package node

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/embassy-dev/embassy/internal/lockfile"
)

// One process per site directory. Two copies of one node directory (a
// restored backup started beside the node, a standby started by mistake)
// carry the same identity: the sites' markers name them both, and both
// would write to the same directories, each with its own index and audit
// log (a fork of the log under one key). A node holds a flock on each of
// its directory sites while it is open (internal/lockfile: taken when the
// site is first checked, released when the node closes or the site leaves
// its configuration; a crash releases it too), and a site whose directory
// another process holds is unavailable, naming that process. The lock is
// on the directory itself: nothing is written to the site for it.
// S3 sites cannot be locked: the node holds a lease on each instead
// (sitelease.go).

// siteLocks are the locks a node holds on its directory sites.
type siteLocks struct {
	mu   sync.Mutex
	held map[string]*siteLock // by site id
}

type siteLock struct {
	f  *os.File
	id dirID
}

// lockSiteDir takes, unless it holds it already, the lock on site id's
// directory root. Another process holding it makes the site unavailable,
// naming that process; a filesystem without locks is said in the log.
func (n *Node) lockSiteDir(id, root string) error {
	fi, err := os.Stat(root)
	if err != nil {
		return err // the directory is not there: the site's own check says so
	}
	did, _ := idOf(fi)
	n.sites.mu.Lock()
	defer n.sites.mu.Unlock()
	if l := n.sites.held[id]; l != nil && l.id == did {
		return nil
	}
	f, err := os.Open(root)
	if err != nil {
		return err
	}
	err = lockfile.TryLock(f)
	switch {
	case errors.Is(err, lockfile.ErrUnsupported):
		f.Close()
		n.Log.Warn("a site directory's filesystem has no locks: another process using it could not be told", "site", id, "path", root, "err", err)
		return nil
	case errors.Is(err, lockfile.ErrHeld):
		who := lockfile.HolderOfFile(f)
		f.Close()
		return refused("its directory %s is in use by %s: this node (node directory %s) cannot use it too: two copies of one node directory (a restored backup, a standby), or two nodes, must never use one site directory. Stop the other ('ps' shows it), or give this node its own sites", root, who, absDir(n.Dir))
	case err != nil:
		f.Close()
		return fmt.Errorf("lock the site directory: %w", err)
	}
	if old := n.sites.held[id]; old != nil {
		old.f.Close()
	}
	if n.sites.held == nil {
		n.sites.held = map[string]*siteLock{}
	}
	n.sites.held[id] = &siteLock{f: f, id: did}
	return nil
}

// keepSiteLocks lets go of the locks of sites no longer configured, or
// of all of them (Close) when keep is nil.
func (n *Node) keepSiteLocks(keep []SiteConfig) {
	n.sites.mu.Lock()
	defer n.sites.mu.Unlock()
	for id, l := range n.sites.held {
		configured := false
		for _, s := range keep {
			configured = configured || (s.ID == id && s.Driver == "dir")
		}
		if !configured {
			l.f.Close()
			delete(n.sites.held, id)
		}
	}
}

// sitesInUse refuses, before anything is written, to recover a node whose
// directory sites another process holds: most likely the node itself,
// still running. A recovered copy beside it would be a second user of
// every site (lockSiteDir).
func sitesInUse(n *Node, sites []SiteConfig) error {
	for _, sc := range sites {
		if sc.Driver != "dir" {
			continue
		}
		p := n.path(sc.Path)
		f, err := os.Open(p)
		if err != nil {
			continue // not reached: the report says so
		}
		err = lockfile.TryLock(f)
		who := lockfile.HolderOfFile(f)
		f.Close()
		if errors.Is(err, lockfile.ErrHeld) {
			return fmt.Errorf("site %s: its directory %s is in use by %s, most likely the node being recovered, still running: stop it before recovering it (two copies of one node must never use one site directory); nothing was written", sc.ID, p, who)
		}
	}
	return nil
}
