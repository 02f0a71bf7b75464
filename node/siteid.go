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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/site/s3site"
)

// Site identity. Every site holds a marker (site.MarkerBlob) signed by the
// node, naming the node and the site. The node wraps every site in a
// site.Guarded whose check reads the marker: a site whose marker names
// another node or another site, or that has none, is unavailable, with the
// reason, so that nothing on it is ever read, written, listed or deleted.
// 'site add' writes the marker, 'site rm' of an empty site removes it, and
// a site made before markers existed is claimed on first open only when
// everything on it is this node's (claimLegacy).

// legacySample is how many manifests of a site without a marker are checked
// before it is claimed.
const legacySample = 100

// nodeSign signs msg, which starts with its record kind's domain-separation
// prefix (site.MarkerDomain, ...), with the node's signing function: the
// hybrid signature of the node identity (Ed25519 || ML-DSA-44), or, on a
// keyring without one (a node not yet unsealed since identities), the
// compact signature of the root-derived key. Every record the node signs
// for the sites goes through nodeSign and nodeVerify.
func nodeSign(k *custody.Keyring, msg []byte) ([]byte, error) {
	if k.Identity() != nil {
		return k.SignHybrid(msg)
	}
	return k.Sign(msg)
}

// nodeVerify checks a signature made by nodeSign.
func nodeVerify(k *custody.Keyring, msg, sig []byte) error { return k.Verify(msg, sig) }

// localKeysWithIdentity is localKeys with the node identity, when the node
// has one yet.
func localKeysWithIdentity(dirPath string) (*custody.Keyring, error) {
	keys, err := localKeys(dirPath)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dirPath, custody.IdentityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return keys, nil
	}
	if err != nil {
		return nil, err
	}
	id, err := keys.OpenIdentity(b)
	if err != nil {
		return nil, err
	}
	return keys.WithIdentity(id), nil
}

// encodeMarker returns the signed marker of site id of this node.
func encodeMarker(k *custody.Keyring, nodeID, id string) ([]byte, error) {
	m := site.Marker{Node: nodeID, Site: id}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	sig, err := nodeSign(k, m.SignedMessage())
	if err != nil {
		return nil, err
	}
	return m.Encode(sig)
}

// markerVerdict says what a marker blob means for site id of this node: ""
// when it is this node's marker of this site, else the reason it is not.
// keys may be nil (a sealed node): the signature is then not checked.
func markerVerdict(k *custody.Keyring, nodeID, id string, b []byte) string {
	m, sig, err := site.ParseMarker(b)
	switch {
	case err != nil:
		return "its marker (" + site.MarkerBlob + ") is damaged: " + err.Error()
	case m.Node != nodeID:
		return fmt.Sprintf("its marker names node %s (as its site %s): it belongs to another node", m.Node, m.Site)
	case m.Site != id:
		return fmt.Sprintf("its marker names site %s of this node: is it configured twice, or did a directory or bucket move?", m.Site)
	case k != nil && nodeVerify(k, m.SignedMessage(), sig) != nil:
		return "its marker names this node and site but is not signed by this node's key"
	}
	return ""
}

func refused(format string, args ...any) error {
	return &site.UnavailableError{Reason: fmt.Sprintf(format, args...)}
}

// readBlob reads a whole small blob.
func readBlob(ctx context.Context, s site.Site, name string, limit int64) ([]byte, error) {
	rc, err := s.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b, nil
}

// location is where a site keeps its blobs, for telling whether two sites
// overlap: a dir site's resolved absolute path, or an S3 endpoint and bucket
// with a prefix. One location contains another when its path is an ancestor
// of the other's.
type location struct {
	space string // "dir", or "s3:" endpoint/bucket
	path  string // "/"-separated, no trailing slash; "" is an S3 bucket's root
}

func (l location) String() string {
	if l.space == "dir" {
		return "directory " + l.path
	}
	where := strings.TrimPrefix(l.space, "s3:")
	if l.path != "" {
		where += "/" + l.path
	}
	return "bucket " + where
}

// contains reports whether l is o or an ancestor of it.
func (l location) contains(o location) bool {
	if l.space != o.space {
		return false
	}
	return l.path == o.path || l.path == "" || strings.HasPrefix(o.path, l.path+"/") || (l.space == "dir" && l.path == "/")
}

// siteLocation returns where a configured site keeps its blobs.
func (n *Node) siteLocation(s SiteConfig) location {
	switch s.Driver {
	case "dir":
		return location{space: "dir", path: resolvePath(n.path(s.Path))}
	case "s3":
		if s.S3 == nil {
			return location{}
		}
		return location{space: "s3:" + strings.ToLower(s.S3.Endpoint) + "/" + s.S3.Bucket, path: strings.Trim(s.S3.Prefix, "/")}
	case "peer":
		return location{space: "peer:" + s.Peer}
	}
	return location{}
}

// resolvePath returns p absolute and clean, with the symbolic links of its
// longest existing ancestor resolved, so that two names of one directory
// compare equal.
func resolvePath(p string) string {
	p, _ = filepath.Abs(p)
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// siteConflict is how a site's location clashes with other configured
// sites: nested is the reason it lies inside another site (or "") and
// shared names the sites configured on the very same place.
type siteConflict struct {
	nested string
	shared []string
}

// conflicts finds, among the configured sites, those whose locations
// overlap. A site inside another's location is refused outright; sites on
// the same location are told apart by their markers.
func (n *Node) conflicts(sites []SiteConfig) map[string]siteConflict {
	locs := make([]location, len(sites))
	for i, s := range sites {
		locs[i] = n.siteLocation(s)
	}
	out := map[string]siteConflict{}
	for i, a := range sites {
		c := siteConflict{}
		for j, b := range sites {
			if i == j || locs[i].space == "" {
				continue
			}
			how := sharesNothing
			switch {
			case locs[i] == locs[j]:
				how = sharesSame
			case locs[j].contains(locs[i]):
				how = sharesInside
			case locs[i].space == "dir" && locs[j].space == "dir":
				// Another name of one directory: a bind mount.
				how = overlap(locs[i].path, locs[j].path)
			}
			switch how {
			case sharesSame:
				c.shared = append(c.shared, b.ID)
			case sharesInside:
				c.nested = fmt.Sprintf("its %s lies inside site %s's %s: give each site a place of its own in %s", locs[i], b.ID, locs[j], ConfigFile)
			}
		}
		if c.nested != "" || len(c.shared) > 0 {
			out[a.ID] = c
		}
	}
	return out
}

// guardSite wraps a configured site's driver in the identity check.
func (n *Node) guardSite(sc SiteConfig, st site.Site, c siteConflict) *site.Guarded {
	inner := st
	if _, ok := st.(*s3site.Site); ok {
		// Writes go through only while the node holds the site's lease.
		inner = &leaseFence{Site: st, n: n, id: sc.ID}
	}
	g := site.Guard(sc.ID, n.instrumentSite(sc.ID, inner), func(ctx context.Context) error {
		if c.nested != "" {
			return refused("%s", c.nested)
		}
		return n.checkSite(ctx, sc, st, c.shared)
	})
	if inner != st {
		n.leases.mu.Lock()
		if n.leases.guards == nil {
			n.leases.guards = map[string]*site.Guarded{}
		}
		n.leases.guards[sc.ID] = g
		n.leases.mu.Unlock()
	}
	return g
}

// checkSite accepts a site whose marker is this node's marker of it, and
// claims a site made before markers when everything on it is this node's.
func (n *Node) checkSite(ctx context.Context, sc SiteConfig, st site.Site, shared []string) error {
	keys := n.Keys()
	var missing []string
	ds, isDir := st.(*dir.Site)
	if isDir {
		var err error
		if missing, err = ds.MissingTopDirs(); err != nil {
			return err // the directory is not there: try again later
		}
	}
	var b []byte
	err := fs.ErrNotExist
	if !slices.Contains(missing, "node") {
		b, err = readBlob(ctx, st, site.MarkerBlob, 64<<10)
		if errors.Is(err, site.ErrNotFound) {
			err = fs.ErrNotExist
		} else if err != nil {
			return fmt.Errorf("read the site marker: %w", err)
		}
	}
	if err == nil {
		if why := markerVerdict(keys, n.conf().Node.ID, sc.ID, b); why != "" {
			return refused("%s", why)
		}
		if isDir {
			// This node's: no other process may use it.
			if err := n.lockSiteDir(sc.ID, ds.Root()); err != nil {
				return err
			}
		}
		if len(missing) > 0 && isDir && !slices.ContainsFunc(missing, func(d string) bool { return !slices.Contains(site.AddedTopDirs(), d) }) {
			// A site made before these directories existed: create them,
			// as long as the marker read through the same directory
			// handle is still the one that verified.
			err := ds.MakeTopDirs(func(m []byte, err error) error {
				if err != nil || !bytes.Equal(m, b) {
					return errors.New("the site marker changed while the new top directories were being made: check again")
				}
				return nil
			})
			if err != nil {
				return err
			}
			n.Log.Info("site given the top directories added since it was made", "site", sc.ID, "directories", missing)
			missing = nil
		}
		if len(missing) > 0 {
			return refused("top directory %s/ is missing (damaged, or the wrong volume mounted?): nothing is recreated on a site; restore it, or recreate the empty directory if its data is lost", strings.Join(missing, "/, "))
		}
		if ss, ok := st.(*s3site.Site); ok && sc.S3 != nil {
			// This node's: no other copy of it may use it.
			return n.checkLease(ctx, sc, ss)
		}
		return nil
	}
	return n.claimLegacy(ctx, sc, st, missing, shared)
}

// claimLegacy decides about a site without a marker. It is claimed (its
// marker written) only if it is not shared with another configured site
// and either it holds this node's descriptor and the first manifests
// listed on it are all this node's, or it is empty. Otherwise it is left
// unclaimed, and so unavailable.
func (n *Node) claimLegacy(ctx context.Context, sc SiteConfig, st site.Site, missing, shared []string) error {
	if len(shared) > 0 {
		return refused("it has no marker, and site %s is configured on the same place: give each site its own in %s", strings.Join(shared, ", "), ConfigFile)
	}
	if sc.Driver == "dir" {
		if err := n.checkSiteOutsideHosting(sc.ID, n.path(sc.Path)); err != nil {
			return refused("it has no marker, and %s", strings.TrimPrefix(err.Error(), "site "+sc.ID+": "))
		}
	}
	if why, err := n.legacyForeign(ctx, st, missing); err != nil {
		return err
	} else if why != "" {
		return refused("it has no marker (%s) and %s: left unclaimed", site.MarkerBlob, why)
	}
	mk, err := encodeMarker(n.Keys(), n.conf().Node.ID, sc.ID)
	if err != nil {
		return err
	}
	if ds, ok := st.(*dir.Site); ok {
		if err := n.lockSiteDir(sc.ID, ds.Root()); err != nil {
			return err
		}
		err := ds.MakeTopDirs(func(_ []byte, err error) error {
			if !errors.Is(err, fs.ErrNotExist) {
				return errors.New("a marker appeared while the site was being claimed: check again")
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if ss, ok := st.(*s3site.Site); ok && sc.S3 != nil {
		if err := n.checkLease(ctx, sc, ss); err != nil {
			return err
		}
	}
	if err := st.Put(ctx, site.MarkerBlob, bytes.NewReader(mk), int64(len(mk))); err != nil {
		return fmt.Errorf("write the site marker: %w", err)
	}
	n.Log.Warn("site had no marker (made by an earlier version, or emptied): claimed, since everything on it that was checked is this node's", "site", sc.ID)
	return nil
}

// legacyForeign returns why a site without a marker may hold what is not
// this node's, or "" if it may be claimed.
func (n *Node) legacyForeign(ctx context.Context, st site.Site, missing []string) (string, error) {
	var desc []byte
	err := fs.ErrNotExist
	if !slices.Contains(missing, "node") {
		desc, err = readBlob(ctx, st, DescriptorBlob, 16<<20)
		if errors.Is(err, site.ErrNotFound) {
			err = fs.ErrNotExist
		} else if err != nil {
			return "", fmt.Errorf("read the node descriptor: %w", err)
		}
	}
	if err != nil {
		// No descriptor: only an empty site may be claimed.
		for _, t := range site.TopDirs() {
			if slices.Contains(missing, t) {
				continue
			}
			var found string
			stop := errors.New("stop")
			err := st.List(ctx, t+"/", func(i site.Info) error { found = i.Name; return stop })
			if err != nil && !errors.Is(err, stop) {
				return "", err
			}
			if found != "" {
				return fmt.Sprintf("holds data (%s) but no node descriptor", found), nil
			}
		}
		return "", nil
	}
	d, err := openDescriptor(n.Keys(), desc)
	if err != nil {
		return "the node descriptor on it does not open with this node's key", nil
	}
	if d.NodeID != n.conf().Node.ID {
		return fmt.Sprintf("the node descriptor on it is node %s's", d.NodeID), nil
	}
	if slices.Contains(missing, "m") {
		return "", nil
	}
	var names []string
	stop := errors.New("stop")
	err = st.List(ctx, manifest.ManifestPrefix, func(i site.Info) error {
		names = append(names, i.Name)
		if len(names) == legacySample {
			return stop
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return "", err
	}
	for _, name := range names {
		m, err := n.readManifest(ctx, st, name)
		if err != nil {
			return fmt.Sprintf("manifest %s on it does not open with this node's key", name), nil
		}
		if m.Node != n.conf().Node.ID {
			return fmt.Sprintf("manifest %s on it is node %s's", name, m.Node), nil
		}
	}
	return "", nil
}

// readManifest reads and opens the manifest envelope at the start of a
// manifest blob.
func (n *Node) readManifest(ctx context.Context, st site.Site, name string) (*manifest.Manifest, error) {
	read := func(length int64) ([]byte, error) {
		rc, err := st.Get(ctx, name, 0, length)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		// A site may send more than asked: what it sends is outside input.
		return io.ReadAll(io.LimitReader(rc, length))
	}
	b, err := read(64 << 10)
	if err != nil {
		return nil, err
	}
	l, err := manifest.EnvelopeLen(b)
	if err != nil {
		return nil, err
	}
	if l > len(b) {
		if l > 16<<20 {
			return nil, fmt.Errorf("manifest envelope of %d bytes", l)
		}
		if b, err = read(int64(l)); err != nil {
			return nil, err
		}
	}
	if l > len(b) {
		return nil, errors.New("manifest envelope cut short")
	}
	return manifest.Open(b[:l], n.Keys())
}

// SiteState is what the node knows of a site's identity and reachability.
type SiteState struct {
	ID string `json:"id"`
	// State is "ok" or "unavailable".
	State string `json:"state"`
	// Reason says why a site is unavailable.
	Reason string `json:"reason,omitempty"`
	// Verified is false when the marker's signature could not be checked
	// (no key at hand: a sealed node, a key-less command).
	Verified bool `json:"verified"`
}

func stateOf(id string, err error, verified bool) SiteState {
	if err == nil {
		return SiteState{ID: id, State: "ok", Verified: verified}
	}
	reason := err.Error()
	var ue *site.UnavailableError
	if errors.As(err, &ue) {
		reason = ue.Reason
	}
	return SiteState{ID: id, State: "unavailable", Reason: reason, Verified: verified}
}

// SiteStates reports every configured site's state, checking those whose
// last check is stale (each within timeout).
func (n *Node) SiteStates(ctx context.Context, timeout time.Duration) []SiteState {
	if n.Engine == nil {
		return nil
	}
	sites := n.Engine.Sites()
	out := make([]SiteState, len(sites))
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Go(func() {
			var err error
			if g, ok := s.Store.(*site.Guarded); ok {
				cctx, cancel := context.WithTimeout(ctx, timeout)
				err = g.Status(cctx)
				cancel()
			}
			out[i] = stateOf(s.ID, err, true)
		})
	}
	wg.Wait()
	return out
}

// InspectSites reports the state of every site configured in a node
// directory without opening the node and without changing anything: it
// reads each site's marker. The marker's signature is checked when the
// node's root key is a local file; otherwise Verified is false. A site
// without a marker is reported unavailable (the node claims it when it
// next opens, if it may).
func InspectSites(ctx context.Context, dirPath string, timeout time.Duration) ([]SiteState, error) {
	c, err := LoadConfig(dirPath)
	if err != nil {
		return nil, err
	}
	n := &Node{Dir: dirPath, Config: c, Log: NewLogger(LogConfig{Level: "error"}, io.Discard)}
	var keys *custody.Keyring
	if _, err := os.Stat(filepath.Join(dirPath, CustodyFile)); errors.Is(err, fs.ErrNotExist) {
		// A local root key: the markers can be verified, and hosted
		// sites reached over the peer link.
		keys, _ = localKeysWithIdentity(dirPath)
		n.setKeys(keys)
	}
	conf := n.conflicts(c.Sites)
	out := make([]SiteState, len(c.Sites))
	var wg sync.WaitGroup
	for i, sc := range c.Sites {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out[i] = stateOf(sc.ID, n.inspectSite(cctx, sc, keys, conf[sc.ID]), keys != nil)
		})
	}
	wg.Wait()
	return out, nil
}

func (n *Node) inspectSite(ctx context.Context, sc SiteConfig, keys *custody.Keyring, c siteConflict) error {
	if c.nested != "" {
		return refused("%s", c.nested)
	}
	if sc.Driver == "peer" && n.Keys() == nil {
		return errors.New("a hosted site is checked over the peer link, with the node's keys: ask the running node ('embassy --node URL site ls')")
	}
	st, err := n.OpenSite(sc)
	if err != nil {
		return err
	}
	defer closeSite(st)
	var missing []string
	if ds, ok := st.(*dir.Site); ok {
		if missing, err = ds.MissingTopDirs(); err != nil {
			return err
		}
	}
	if slices.Contains(missing, "node") {
		return refused("it has no marker (%s): the node claims it when it next opens if everything on it is the node's", site.MarkerBlob)
	}
	b, err := readBlob(ctx, st, site.MarkerBlob, 64<<10)
	if errors.Is(err, site.ErrNotFound) {
		if len(c.shared) > 0 {
			return refused("it has no marker, and site %s is configured on the same place: give each site its own in %s", strings.Join(c.shared, ", "), ConfigFile)
		}
		return refused("it has no marker (%s): the node claims it when it next opens if everything on it is the node's", site.MarkerBlob)
	}
	if err != nil {
		return err
	}
	if why := markerVerdict(keys, n.conf().Node.ID, sc.ID, b); why != "" {
		return refused("%s", why)
	}
	if len(missing) > 0 {
		return refused("top directory %s/ is missing (damaged, or the wrong volume mounted?)", strings.Join(missing, "/, "))
	}
	return nil
}

// prepareSite checks that a new site's place is free, creates it, and
// writes its marker. A directory, bucket or prefix is refused when it lies
// inside or around another configured site, lies inside another site of
// any node, or is not empty and holds no marker of this node's site id.
func (n *Node) prepareSite(ctx context.Context, s SiteConfig, createBucket bool) (site.Site, error) {
	loc := n.siteLocation(s)
	for _, o := range n.conf().Sites {
		ol := n.siteLocation(o)
		how := sharesNothing
		switch {
		case ol == loc:
			how = sharesSame
		case ol.contains(loc):
			how = sharesInside
		case loc.contains(ol):
			how = sharesHolds
		case loc.space == "dir" && ol.space == "dir":
			// Under another name: a symbolic link, a bind mount.
			how = overlap(loc.path, ol.path)
		}
		switch how {
		case sharesSame:
			if ol == loc {
				return nil, fmt.Errorf("site %s: %s is already site %s's", s.ID, loc, o.ID)
			}
			return nil, fmt.Errorf("site %s: %s is already site %s's, %s, under another name (a symbolic link or a bind mount): two sites on one directory are one disk counted twice", s.ID, loc, o.ID, ol)
		case sharesInside:
			return nil, fmt.Errorf("site %s: %s lies inside site %s's %s", s.ID, loc, o.ID, ol)
		case sharesHolds:
			return nil, fmt.Errorf("site %s: %s contains site %s's %s", s.ID, loc, o.ID, ol)
		}
	}
	if s.Driver == "dir" {
		if err := n.checkSiteOutsideHosting(s.ID, loc.path); err != nil {
			return nil, err
		}
	}
	var st site.Site
	switch s.Driver {
	case "dir":
		if err := n.checkNewDir(s, loc.path); err != nil {
			return nil, err
		}
		ds, err := dir.New(n.path(s.Path))
		if err != nil {
			return nil, err
		}
		if err := n.lockSiteDir(s.ID, ds.Root()); err != nil {
			return nil, fmt.Errorf("site %s: %w", s.ID, err)
		}
		st = ds
	case "s3":
		cfg := *s.S3
		cfg.CreateBucket = false
		ss, err := s3site.New(ctx, cfg)
		if err != nil {
			return nil, err
		}
		if createBucket {
			if err := ss.EnsureBucket(ctx); err != nil {
				ss.Close()
				return nil, err
			}
		}
		if err := n.checkNewPrefix(ctx, s, cfg); err != nil {
			ss.Close()
			return nil, err
		}
		st = ss
	case "peer":
		hs, err := n.prepareHostedSite(ctx, s)
		if err != nil {
			return nil, err
		}
		st = hs
	default:
		return nil, fmt.Errorf("site %s: driver %q not supported", s.ID, s.Driver)
	}
	mk, err := encodeMarker(n.Keys(), n.conf().Node.ID, s.ID)
	if err != nil {
		return nil, err
	}
	if err := st.Put(ctx, site.MarkerBlob, bytes.NewReader(mk), int64(len(mk))); err != nil {
		closeSite(st)
		return nil, fmt.Errorf("site %s: write its marker: %w", s.ID, err)
	}
	return st, nil
}

// markerClaim describes a marker blob found where a site would go.
func markerClaim(b []byte) string {
	m, _, err := site.ParseMarker(b)
	if err != nil {
		return "a damaged site marker"
	}
	return fmt.Sprintf("the marker of node %s's site %s", m.Node, m.Site)
}

// checkNewDir refuses a directory for a new site that lies inside another
// site of any node (a directory above it holds a site marker), or that is
// not empty and holds no marker of this node's site s.ID.
func (n *Node) checkNewDir(s SiteConfig, path string) error {
	for p := filepath.Dir(path); ; p = filepath.Dir(p) {
		if b, err := os.ReadFile(filepath.Join(p, filepath.FromSlash(site.MarkerBlob))); err == nil {
			return fmt.Errorf("site %s: directory %s lies inside the site at %s (it holds %s)", s.ID, path, p, markerClaim(b))
		}
		if b, err := os.ReadFile(filepath.Join(p, HostingMarkerFile)); err == nil {
			return fmt.Errorf("site %s: directory %s lies inside the hosting directory %s (it holds %s), where allies' stores live: give the site a directory of its own", s.ID, path, p, hostingMarkerClaim(b))
		}
		if filepath.Dir(p) == p {
			break
		}
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("site %s: %w", s.ID, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("site %s: %s is not a directory", s.ID, path)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("site %s: %w", s.ID, err)
	}
	if len(ents) == 0 {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(path, filepath.FromSlash(site.MarkerBlob)))
	if err != nil {
		names := make([]string, 0, 3)
		for _, e := range ents[:min(3, len(ents))] {
			names = append(names, e.Name())
		}
		return fmt.Errorf("site %s: directory %s is not empty (it holds %s) and has no site marker: give the site an empty or new directory", s.ID, path, strings.Join(names, ", "))
	}
	if why := markerVerdict(n.Keys(), n.conf().Node.ID, s.ID, b); why != "" {
		return fmt.Errorf("site %s: directory %s is already claimed: %s", s.ID, path, strings.TrimPrefix(why, "its marker "))
	}
	return nil // this node's own site s.ID, added again
}

// checkNewPrefix is checkNewDir for a bucket and prefix.
func (n *Node) checkNewPrefix(ctx context.Context, s SiteConfig, cfg s3site.Config) error {
	prefix := strings.Trim(cfg.Prefix, "/")
	where := cfg.Bucket
	if prefix != "" {
		where += "/" + prefix
	}
	// Every ancestor prefix, the bucket's root included.
	var ancestors []string
	for p := prefix; p != ""; {
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			p = ""
		} else {
			p = p[:i]
		}
		ancestors = append(ancestors, p)
	}
	for _, a := range ancestors {
		c := cfg
		c.Prefix = a
		as, err := s3site.New(ctx, c)
		if err != nil {
			return err
		}
		b, err := readBlob(ctx, as, site.MarkerBlob, 64<<10)
		if err == nil {
			as.Close()
			return fmt.Errorf("site %s: bucket %s lies inside the site at prefix %q (it holds %s)", s.ID, where, a, markerClaim(b))
		}
		if !errors.Is(err, site.ErrNotFound) {
			as.Close()
			return fmt.Errorf("site %s: %w", s.ID, err)
		}
		_, err = as.Stat(ctx, DescriptorBlob)
		as.Close()
		if err == nil {
			return fmt.Errorf("site %s: bucket %s lies inside the site at prefix %q (it holds a node descriptor)", s.ID, where, a)
		}
	}
	ss, err := s3site.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer ss.Close()
	b, err := readBlob(ctx, ss, site.MarkerBlob, 64<<10)
	if err == nil {
		if why := markerVerdict(n.Keys(), n.conf().Node.ID, s.ID, b); why != "" {
			return fmt.Errorf("site %s: bucket %s is already claimed: %s", s.ID, where, strings.TrimPrefix(why, "its marker "))
		}
		return nil
	}
	if !errors.Is(err, site.ErrNotFound) {
		return fmt.Errorf("site %s: %w", s.ID, err)
	}
	var found string
	stop := errors.New("stop")
	if err := ss.List(ctx, "", func(i site.Info) error { found = i.Name; return stop }); err != nil && !errors.Is(err, stop) {
		return fmt.Errorf("site %s: %w", s.ID, err)
	}
	if found != "" {
		return fmt.Errorf("site %s: bucket %s is not empty (it holds %s) and has no site marker: give the site an empty bucket or a new prefix", s.ID, where, found)
	}
	return nil
}

// removeMarker deletes a site's marker if it is this node's marker of
// site id (an empty site leaving the node).
func (n *Node) removeMarker(ctx context.Context, id string, st site.Site) error {
	b, err := readBlob(ctx, st, site.MarkerBlob, 64<<10)
	if errors.Is(err, site.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if markerVerdict(n.Keys(), n.conf().Node.ID, id, b) != "" {
		return nil // not ours to remove
	}
	return st.Delete(ctx, site.MarkerBlob)
}
