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
	"strings"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/internal/atomicfile"
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
func (n *Node) openHostingRoot(root string, hosted []GuestConfig, claim bool) (*os.Root, error) {
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
		ok = true
		return r, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("hosting path %s: %s: %w", root, HostingMarkerFile, err)
	}
	// No marker: a new hosting directory, one made before markers, or not
	// the hosting volume at all.
	d, err := r.Open(".")
	if err != nil {
		return nil, hostingPathError(root, err)
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return nil, hostingPathError(root, err)
	}
	var stores, others []string
	for _, e := range ents {
		switch {
		case e.Name() == "lost+found":
			// A fresh filesystem's: it holds nothing of anyone's.
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
		return nil, fmt.Errorf("hosting path %s is empty and has no hosting marker (%s), yet this node hosts %s there: is the hosting volume mounted? Nothing is made there until it is", root, HostingMarkerFile, guests)
	}
	if claim {
		if keys == nil {
			if len(stores) > 0 {
				// A hosting directory made before markers, read by a
				// sealed node: it is marked once the node is unsealed.
				ok = true
				return r, nil
			}
			return nil, fmt.Errorf("hosting path %s has no hosting marker yet, and a sealed node cannot sign one: unseal the node first", root)
		}
		if err := writeHostingMarker(keys, r, root, nodeID); err != nil {
			return nil, err
		}
		n.Log.Info("hosting directory marked as this node's", "path", root, "marker", HostingMarkerFile, "guest_stores_found", len(stores))
	}
	ok = true
	return r, nil
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
