package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/internal/atomicfile"
	"github.com/embassy-dev/embassy/internal/lockfile"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
)

// The hosting directory's identity (docs/alliance.md, "Host an ally's
// site"). alliance.hosting.path holds the guests' stores, one directory
// per guest. The node never creates it, and marks it as its own: a file,
// HostingMarkerFile, naming the node and signed with its key, written
// when the first guest is hosted in an empty directory. A guest's store
// is made, or opened, only in a directory that carries this node's
// marker: a path that does not exist, an empty mount point (the hosting
// volume not mounted) and another node's volume are refused, naming the
// path and what to check, so that no guest's data lands on the disk
// beneath a missing volume, to be hidden when the volume is mounted over
// it. A hosting directory made before markers existed, which holds
// nothing but guests' stores, is marked when the node first uses it.

// HostingMarkerFile is the marker's name in the hosting directory.
const HostingMarkerFile = ".embassy-hosting"

const (
	// hostingMarkerDomain prefixes what the marker's signature covers.
	hostingMarkerDomain = "embassy/v1 hosting marker\x00"
	hostingMarkerHeader = "embassy hosting marker v1\n"
	maxHostingMarker    = 8 << 10
)

func hostingMarkerBody(nodeID string) []byte {
	return []byte(hostingMarkerHeader + "node " + nodeID + "\n")
}

func hostingMarkerSigned(nodeID string) []byte {
	return append([]byte(hostingMarkerDomain), hostingMarkerBody(nodeID)...)
}

// encodeHostingMarker returns the signed hosting marker of node nodeID.
func encodeHostingMarker(k *custody.Keyring, nodeID string) ([]byte, error) {
	if !validNodeID(nodeID) {
		return nil, fmt.Errorf("hosting marker: %q is not a node id", nodeID)
	}
	sig, err := nodeSign(k, hostingMarkerSigned(nodeID))
	if err != nil {
		return nil, err
	}
	b := hostingMarkerBody(nodeID)
	b = append(b, "sig "...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	return append(b, '\n'), nil
}

// parseHostingMarker decodes a hosting marker strictly: the node it names
// and its signature, which the caller verifies.
func parseHostingMarker(b []byte) (string, []byte, error) {
	if len(b) > maxHostingMarker {
		return "", nil, fmt.Errorf("%d bytes is larger than a hosting marker's %d", len(b), maxHostingMarker)
	}
	rest, ok := bytes.CutPrefix(b, []byte(hostingMarkerHeader))
	if !ok {
		return "", nil, fmt.Errorf("its first line is not %q", strings.TrimSpace(hostingMarkerHeader))
	}
	line, rest, ok := bytes.Cut(rest, []byte("\n"))
	id, isNode := bytes.CutPrefix(line, []byte("node "))
	if !ok || !isNode || !validNodeID(string(id)) {
		return "", nil, errors.New("its second line is not 'node NODE-ID'")
	}
	line, rest, ok = bytes.Cut(rest, []byte("\n"))
	enc, isSig := bytes.CutPrefix(line, []byte("sig "))
	if !ok || !isSig || len(rest) != 0 {
		return "", nil, errors.New("its third and last line is not 'sig SIGNATURE'")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(string(enc))
	if err != nil || len(sig) == 0 {
		return "", nil, errors.New("its signature is not base64")
	}
	return string(id), sig, nil
}

// hostingMarkerVerdict says what a hosting marker means for this node: ""
// when it is this node's, else why it is not. k may be nil (a sealed
// node): the signature is then not checked.
func hostingMarkerVerdict(k *custody.Keyring, nodeID string, b []byte) string {
	id, sig, err := parseHostingMarker(b)
	switch {
	case err != nil:
		return "its hosting marker (" + HostingMarkerFile + ") is damaged: " + err.Error()
	case id != nodeID:
		return fmt.Sprintf("its hosting marker (%s) names node %s: it is that node's hosting directory, not this one's", HostingMarkerFile, id)
	case k != nil && nodeVerify(k, hostingMarkerSigned(id), sig) != nil:
		return "its hosting marker (" + HostingMarkerFile + ") names this node but is not signed by this node's key"
	}
	return ""
}

// hostingPathError says why the hosting directory root cannot be opened.
func hostingPathError(root string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("hosting path %s does not exist: is the hosting volume mounted? The node never creates this directory, so that a missing volume is never taken for it: mount the volume there, or, for a new hosting directory, create it on the disk meant to hold the guests' data", root)
	}
	return fmt.Errorf("hosting path %s: %w", root, err)
}

// openHostingRoot opens root, alliance.hosting.path, as this node's
// hosting directory, for the guests in force (hosted): it must exist and
// carry this node's marker. One that has no marker is taken (with claim,
// the marker is written; without, the caller only learns it would be)
// when it is empty and no guest is hosted yet, or when it holds nothing
// but guests' stores (a hosting directory made before markers); any
// other is refused, naming the path and what to check.
//
// With claim, the temporary files of marker writes that never finished
// (removeMarkerLeftovers) are removed from a directory it takes; they are
// otherwise ignored, never taken for something else than the node's.
func (n *Node) openHostingRoot(root string, hosted []GuestConfig, claim bool) (*os.Root, error) {
	n.host.markerMu.Lock()
	defer n.host.markerMu.Unlock()
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, hostingPathError(root, err)
	}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	if err := n.checkHostingApart(root); err != nil {
		return nil, err
	}
	nodeID := n.conf().Node.ID
	// The keys are read once: this check works on a sealed node too (nil
	// keys), and one read gives one answer should custodians unseal the
	// node meanwhile.
	keys := n.Keys()
	b, err := r.ReadFile(HostingMarkerFile)
	switch {
	case err == nil:
		if why := hostingMarkerVerdict(keys, nodeID, b); why != "" {
			return nil, fmt.Errorf("hosting path %s: %s: is the right volume mounted there? Nothing is written to it", root, why)
		}
		if err := n.lockHostingDir(r, root, claim); err != nil {
			return nil, err
		}
		if claim {
			// A crash after the link, before the temporary file's removal.
			if ents, err := readHostingDir(r); err != nil {
				n.Log.Warn("hosting directory not listed: leftovers of its marker's write, if any, are kept", "path", root, "err", err)
			} else {
				n.removeMarkerLeftovers(r, root, ents)
			}
		}
		ok = true
		return r, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("hosting path %s: %s: %w", root, HostingMarkerFile, err)
	}
	// No marker: a new hosting directory, one made before markers, or not
	// the hosting volume at all.
	ents, err := readHostingDir(r)
	if err != nil {
		return nil, hostingPathError(root, err)
	}
	var stores, others, ignored []string
	for _, e := range ents {
		switch {
		case e.Name() == "lost+found":
			// A fresh filesystem's: it holds nothing of anyone's.
			ignored = append(ignored, e.Name())
		case e.Name() == HostingLockFile && e.Type().IsRegular():
			// Holds only who used the directory (lockHostingDir).
			ignored = append(ignored, e.Name())
		case isMarkerLeftover(e):
			// This node's own (removeMarkerLeftovers).
			ignored = append(ignored, e.Name())
		case e.IsDir() && isDirStore(filepath.Join(root, e.Name())):
			stores = append(stores, e.Name())
		default:
			others = append(others, e.Name())
		}
	}
	switch {
	case len(others) > 0:
		return nil, fmt.Errorf("hosting path %s has no hosting marker (%s) and holds %q, which is not a guest's store: it is not this node's hosting directory (the wrong path, or another volume mounted there?): give alliance.hosting.path an empty directory on the hosting volume", root, HostingMarkerFile, others[0])
	case len(stores) == 0 && len(hosted) > 0:
		guests := fmt.Sprintf("%d guests whose stores live", len(hosted))
		if len(hosted) == 1 {
			guests = "a guest whose store lives"
		}
		state := "is empty"
		if len(ignored) > 0 {
			// Not empty: say what is there, so that an operator who
			// lists the directory is not told something untrue.
			state = fmt.Sprintf("holds no guest's store (only %s)", strings.Join(ignored, ", "))
		}
		return nil, fmt.Errorf("hosting path %s %s and has no hosting marker (%s), yet this node hosts %s there: is the hosting volume mounted? Nothing is made there until it is", root, state, HostingMarkerFile, guests)
	}
	if claim {
		if keys == nil {
			if len(stores) > 0 {
				// A hosting directory made before markers, read by a
				// sealed node: it is marked once the node is unsealed.
				n.removeMarkerLeftovers(r, root, ents)
				ok = true
				return r, nil
			}
			return nil, fmt.Errorf("hosting path %s has no hosting marker yet, and a sealed node cannot sign one: unseal the node first", root)
		}
		// A crash before the link: the marker is written again.
		n.removeMarkerLeftovers(r, root, ents)
		if err := n.checkHostingOutsideSites(root); err != nil {
			return nil, err
		}
		if err := writeHostingMarker(keys, r, root, nodeID); err != nil {
			return nil, err
		}
		if err := n.lockHostingDir(r, root, true); err != nil {
			return nil, err
		}
		n.Log.Info("hosting directory marked as this node's", "path", root, "marker", HostingMarkerFile, "guest_stores_found", len(stores))
	}
	ok = true
	return r, nil
}

// readHostingDir lists the hosting directory r.
func readHostingDir(r *os.Root) ([]fs.DirEntry, error) {
	d, err := r.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadDir(-1)
}

// isMarkerLeftover reports whether e is the temporary file of a write of
// the hosting marker: a regular file whose name is exactly of the form
// atomicfile.CreateIn gives it, ..embassy-hosting.tmp and 16 lowercase
// hexadecimal digits.
func isMarkerLeftover(e fs.DirEntry) bool {
	return e.Type().IsRegular() && atomicfile.IsTemp(HostingMarkerFile, e.Name())
}

// removeMarkerLeftovers removes, from the hosting directory r (root, whose
// entries are ents), the temporary files of marker writes that never
// finished: a crash between the temporary file's creation and its
// removal (atomicfile.CreateIn) leaves one, which would otherwise make the
// node refuse the whole directory, every guest's store with it. The
// evidence for deleting one is its name: exactly the pattern of the
// node's own temporary marker file, on a regular file, and no write of
// the marker running (the caller holds host.markerMu), so it is the
// unlinked leftover of an unfinished write of this node's, holding at
// most a copy of a marker and never a guest's data. Anything else, even
// of a similar name, is left where it is.
func (n *Node) removeMarkerLeftovers(r *os.Root, root string, ents []fs.DirEntry) {
	for _, e := range ents {
		if !isMarkerLeftover(e) {
			continue
		}
		if err := r.Remove(e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			n.Log.Warn("the leftover of an unfinished write of the hosting marker could not be removed", "path", root, "file", e.Name(), "err", err)
			continue
		}
		n.Log.Info("removed the leftover of an unfinished write of the hosting marker (a crash while it was written)", "path", root, "file", e.Name())
	}
}

// isDirStore reports whether p holds a directory site.
func isDirStore(p string) bool {
	s, err := dir.Open(p)
	if err != nil {
		return false
	}
	_, err = s.MissingTopDirs()
	return err == nil
}

// writeHostingMarker writes the marker of node nodeID, signed with keys,
// into the hosting directory r (root), durably, unless a marker appeared
// meanwhile, which must then be this node's.
func writeHostingMarker(keys *custody.Keyring, r *os.Root, root, nodeID string) error {
	b, err := encodeHostingMarker(keys, nodeID)
	if err != nil {
		return err
	}
	err = atomicfile.CreateIn(r, HostingMarkerFile, b, 0o600)
	if errors.Is(err, fs.ErrExist) {
		got, rerr := r.ReadFile(HostingMarkerFile)
		if rerr != nil {
			return fmt.Errorf("hosting path %s: %s: %w", root, HostingMarkerFile, rerr)
		}
		if why := hostingMarkerVerdict(keys, nodeID, got); why != "" {
			return fmt.Errorf("hosting path %s: %s", root, why)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("hosting path %s: write its marker: %w", root, err)
	}
	return nil
}

// checkHostedStores opens every guest's store when the node starts serving
// its peers, so that a hosting volume that is not mounted, or not this
// node's, is in the log from the start, naming the path and what to check,
// not only at a guest's first request (a hosting directory from before
// markers is marked then).
func (n *Node) checkHostedStores(ctx context.Context) {
	_, down := n.hostedUsage(ctx)
	for _, g := range n.conf().Alliance.Guests {
		if err := down[g.Node]; err != nil {
			n.Log.ErrorContext(ctx, "a guest's hosted store cannot be used: nothing is read from or written to it until it is back", "peer", g.Node, "nation", g.Nation, "err", err)
		}
	}
}

// checkHostingApart refuses a hosting directory that is, lies inside or
// contains the node directory or one of the node's directory sites
// (compared by device and inode: dirshare.go). Guests' stores there would
// mix with the node's own data: a site and the hosting volume counted as
// two places when they are one, a guest's store taken for a site or the
// other way round, and a restored backup of the node directory rolling
// the guests' data back with it.
func (n *Node) checkHostingApart(root string) error {
	if how := overlap(root, n.Dir); how != sharesNothing {
		return fmt.Errorf("hosting path %s %s this node's directory %s: the guests' stores and the node's own files must not share a directory: give alliance.hosting.path a directory of its own, on the hosting volume. Nothing is written to it", root, how, absDir(n.Dir))
	}
	for _, s := range n.conf().Sites {
		if s.Driver != "dir" {
			continue
		}
		p := n.path(s.Path)
		if how := overlap(root, p); how != sharesNothing {
			return fmt.Errorf("hosting path %s %s the directory of this node's site %s, %s: a site and the guests' stores must not share a directory: give alliance.hosting.path a directory of its own, on the hosting volume. Nothing is written to it", root, how, s.ID, p)
		}
	}
	return nil
}

// checkHostingOutsideSites refuses, before a directory is marked as this
// node's hosting directory, one that lies inside a site of any node (a
// directory above it holds a site marker) or inside another hosting
// directory (one above it holds a hosting marker).
func (n *Node) checkHostingOutsideSites(root string) error {
	for p := filepath.Dir(resolvePath(root)); ; p = filepath.Dir(p) {
		if b, err := os.ReadFile(filepath.Join(p, filepath.FromSlash(site.MarkerBlob))); err == nil {
			return fmt.Errorf("hosting path %s lies inside the site at %s (it holds %s): give alliance.hosting.path a directory of its own, outside every site. Nothing is written to it", root, p, markerClaim(b))
		}
		if b, err := os.ReadFile(filepath.Join(p, HostingMarkerFile)); err == nil {
			return fmt.Errorf("hosting path %s lies inside the hosting directory %s (it holds %s): give alliance.hosting.path a directory of its own. Nothing is written to it", root, p, hostingMarkerClaim(b))
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}

// HostingLockFile is the hosting directory's lock file. The node that
// uses the directory holds a flock on it for as long as it is open
// (internal/lockfile: the lock goes with the process, a crash included)
// and writes into it who it is, so that a second node on the directory,
// most likely a copy of the same node directory (a restored backup, a
// standby started by mistake), is refused, naming the first. The file is
// made only in a directory that carries this node's marker.
const HostingLockFile = ".embassy-hosting.lock"

// hostingLock is the lock this node holds on its hosting directory.
type hostingLock struct {
	f   *os.File
	dir os.FileInfo // the directory locked
}

// lockHostingDir takes, unless it holds it already, the lock on the
// hosting directory r (root), which carries this node's marker. Without
// create, a directory without a lock file is left as it is (nobody holds
// it). A lock held by another process is refused, naming it; on a
// filesystem without locks the node says in its log that it cannot tell.
// The caller holds host.markerMu.
func (n *Node) lockHostingDir(r *os.Root, root string, create bool) error {
	fi, err := r.Stat(".")
	if err != nil {
		return hostingPathError(root, err)
	}
	if l := n.host.lock; l != nil && os.SameFile(l.dir, fi) {
		return nil
	}
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE
	}
	f, err := r.OpenFile(HostingLockFile, flag, 0o600)
	if !create && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hosting path %s: %s: %w", root, HostingLockFile, err)
	}
	err = lockfile.TryLock(f)
	switch {
	case errors.Is(err, lockfile.ErrUnsupported):
		f.Close()
		n.Log.Warn("the hosting directory's filesystem has no locks: a second node using it could not be told", "path", root, "err", err)
		return nil
	case errors.Is(err, lockfile.ErrHeld):
		who := lockfile.HolderOfFile(f)
		b := make([]byte, 4<<10)
		k, _ := f.ReadAt(b, 0)
		f.Close()
		if node, dir := parseHostingLock(b[:k]); dir != "" {
			who += fmt.Sprintf(", node %s with node directory %s", node, dir)
		}
		return fmt.Errorf("hosting path %s is in use by %s: this node (node directory %s) cannot use it too: two nodes, or two copies of one node directory, must never share a hosting directory. Stop the other, or give this node a hosting directory of its own. Nothing is written to it", root, who, absDir(n.Dir))
	case err != nil:
		f.Close()
		return fmt.Errorf("hosting path %s: %w", root, err)
	}
	// Who holds it, for the one refused; only ever read for a message.
	if err := f.Truncate(0); err == nil {
		f.WriteAt(hostingLockBody(n.conf().Node.ID, n.Dir), 0)
	}
	if old := n.host.lock; old != nil {
		old.f.Close()
	}
	n.host.lock = &hostingLock{f: f, dir: fi}
	return nil
}

func hostingLockBody(nodeID, nodeDir string) []byte {
	return fmt.Appendf(nil, "embassy hosting lock\nnode %s\ndir %s\n", nodeID, absDir(nodeDir))
}

// absDir is a directory's path made absolute, for messages.
func absDir(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// parseHostingLock reads what hostingLockBody wrote, "" where it does not
// say; the directory is quoted, being shown as it is found.
func parseHostingLock(b []byte) (node, dir string) {
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "node "); ok && validNodeID(v) {
			node = v
		}
		if v, ok := strings.CutPrefix(line, "dir "); ok && v != "" {
			dir = strconv.Quote(v)
		}
	}
	if node == "" {
		node = "(unknown)"
	}
	return node, dir
}

// unlockHostingDir lets go of the hosting directory's lock (Close).
func (n *Node) unlockHostingDir() {
	n.host.markerMu.Lock()
	defer n.host.markerMu.Unlock()
	if l := n.host.lock; l != nil {
		l.f.Close()
		n.host.lock = nil
	}
}

// hostingMarkerClaim describes a hosting marker found where something
// else would go.
func hostingMarkerClaim(b []byte) string {
	id, _, err := parseHostingMarker(b)
	if err != nil {
		return "a damaged hosting marker"
	}
	return "the hosting marker of node " + id
}

// checkSiteOutsideHosting refuses a directory site, id at path, that is,
// lies inside or contains this node's hosting directory
// (alliance.hosting.path), where allies' stores live.
func (n *Node) checkSiteOutsideHosting(id, path string) error {
	h := n.conf().Alliance.Hosting
	if h == nil {
		return nil
	}
	root, err := n.hostingRoot(h)
	if err != nil {
		return nil
	}
	if how := overlap(path, root); how != sharesNothing {
		return fmt.Errorf("site %s: directory %s %s this node's hosting directory %s (alliance.hosting.path), where allies' stores live: give the site a directory of its own", id, path, how, root)
	}
	return nil
}
