package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/site"
)

// What is trusted before unseal (DESIGN.md §7): a sealed node reads
// node.yaml and custody.json as they are, only to listen, present TLS and
// know its custodians. At unseal, before anything is served or written to
// a site, verifyNodeFiles checks node.yaml, custody.json, requests.json
// and identity.json against the root key and against the newest node
// descriptor on the sites, and refuses to start on any mismatch with a
// *FilesError that names each file, what differs from the sites' copy and
// the way forward.

// FileProblem is one node file that does not verify.
type FileProblem struct {
	File   string
	Reason string
	// Differences lists what differs from the sites' copy, one change a
	// line; empty when the sites hold no copy to compare with.
	Differences []string
	// Sites says which copy Differences compare with ("the sites'
	// descriptor, generation 7").
	Sites string
	// Forward is the way forward.
	Forward string
}

// FilesError: node files do not verify; the node serves nothing.
type FilesError struct {
	Problems []FileProblem
}

// oneLine keeps what a file says (a request summary, a principal's
// name) on its line of the message: line breaks and other control
// characters are shown escaped.
func oneLine(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func (e *FilesError) Error() string {
	var b strings.Builder
	b.WriteString("node files do not verify; the node serves nothing until they do:")
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s: %s", p.File, oneLine(p.Reason))
		if len(p.Differences) > 0 {
			fmt.Fprintf(&b, "\n    compared with %s:", p.Sites)
			for _, d := range p.Differences {
				fmt.Fprintf(&b, "\n      - %s", oneLine(d))
			}
		} else if p.Sites != "" {
			fmt.Fprintf(&b, "\n    %s", p.Sites)
		}
		if p.Forward != "" {
			fmt.Fprintf(&b, "\n    way forward: %s", p.Forward)
		}
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNodeFile) true.
func (e *FilesError) Is(target error) bool { return target == ErrNodeFile }

// sitesCopy is the newest copy of each node file among the descriptors
// the sites hold.
type sitesCopy struct {
	files    map[string]*nodeFile
	written  map[string]time.Time
	identity []byte // identity.json of the newest format 2 descriptor
	idAt     time.Time
	read     int      // descriptors read and opened
	failed   []string // sites that could not be read, with the reason
}

// readSitesCopy reads the node descriptor on the node's sites (what is
// read is verified; see below for which sites) and the node's own copy of
// the last descriptor it wrote (DescriptorCopyFile). It writes nothing.
func (n *Node) readSitesCopy(ctx context.Context, keys *custody.Keyring) *sitesCopy {
	sc := &sitesCopy{files: map[string]*nodeFile{}, written: map[string]time.Time{}}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	take := func(d descriptor) {
		mu.Lock()
		defer mu.Unlock()
		sc.read++
		for name, b := range map[string][]byte{ConfigFile: d.Config, CustodyFile: d.Custody, RequestsFile: d.Requests} {
			if len(b) == 0 {
				continue
			}
			f, err := splitNodeFile(name, b)
			if err != nil {
				continue
			}
			if cur := sc.files[name]; cur == nil || f.gen > cur.gen || (f.gen == cur.gen && d.Written.After(sc.written[name])) {
				sc.files[name], sc.written[name] = &f, d.Written
			}
		}
		if len(d.Identity) > 0 && d.Written.After(sc.idAt) {
			sc.identity, sc.idAt = d.Identity, d.Written
		}
	}
	// The sites to read: those of node.yaml when its authenticator
	// verifies, and those of the node's own last descriptor. node.yaml's
	// sites are used unverified only when there is nothing better (a node
	// from before authenticators, or without a descriptor copy), so that a
	// node.yaml pointed elsewhere is not what is compared with.
	var sites []SiteConfig
	addSites := func(ss []SiteConfig) {
		for _, s := range ss {
			if !slices.ContainsFunc(sites, func(o SiteConfig) bool { return reflect.DeepEqual(o, s) }) {
				sites = append(sites, s)
			}
		}
	}
	if f := n.raw[ConfigFile]; f != nil {
		if _, err := f.verify(keys); err == nil {
			addSites(n.conf().Sites)
		}
	}
	haveCopy := false
	if b, err := os.ReadFile(filepath.Join(n.Dir, DescriptorCopyFile)); err == nil {
		if d, err := openDescriptor(keys, b); err == nil {
			take(d)
			if f, err := splitNodeFile(ConfigFile, d.Config); err == nil {
				if c, err := ParseConfig(f.body); err == nil {
					addSites(c.Sites)
					haveCopy = true
				}
			}
		} else {
			n.Log.Warn("the node's own copy of its descriptor does not open; comparing with the sites only", "file", DescriptorCopyFile, "err", err)
		}
	}
	if !haveCopy {
		addSites(n.conf().Sites)
	}
	// Reading a descriptor must change nothing: no bucket is created.
	for i := range sites {
		if sites[i].S3 != nil {
			c := *sites[i].S3
			c.CreateBucket = false
			sites[i].S3 = &c
		}
	}
	var wg sync.WaitGroup
	for _, s := range sites {
		if s.Driver == "peer" && (keys == nil || keys.Identity() == nil) {
			// A hosted site is reached over the peer link, signed by the
			// node identity, which is not open yet: the other sites'
			// copies decide.
			continue
		}
		wg.Go(func() {
			st, err := n.OpenSite(s)
			var d descriptor
			if err == nil {
				d, err = readDescriptor(ctx, keys, st)
				closeSite(st)
			}
			if err != nil {
				if !errors.Is(err, site.ErrNotFound) {
					mu.Lock()
					sc.failed = append(sc.failed, s.ID+": "+err.Error())
					mu.Unlock()
				}
				return
			}
			take(d)
		})
	}
	wg.Wait()
	slices.Sort(sc.failed)
	return sc
}

func (sc *sitesCopy) describe(name string) string {
	f := sc.files[name]
	if f == nil {
		if sc.read == 0 {
			return "no site's descriptor could be read to compare with"
		}
		return "the sites' descriptor holds no copy of it"
	}
	if f.mac == nil {
		return fmt.Sprintf("the sites' descriptor (written %s, before files were authenticated)", sc.written[name].Format(time.RFC3339))
	}
	return fmt.Sprintf("the sites' descriptor (generation %d, written %s)", f.gen, sc.written[name].Format(time.RFC3339))
}

const forwardRestore = "restore the sites' copy with 'embassy config restore' (the local file is kept beside it as %s.rejected-TIME)"

func forward(name string) string {
	switch name {
	case ConfigFile:
		return fmt.Sprintf(forwardRestore, name) + "; or, if the change is wanted, 'embassy config edit' starts from the local file and asks custodians where the change needs them"
	case CustodyFile:
		return fmt.Sprintf(forwardRestore, name) + "; custody changes only through 'embassy custody resplit'"
	}
	return fmt.Sprintf(forwardRestore, name)
}

// differences describes how local differs from the sites' copy of a node
// file, for people.
func differences(name string, sites, local []byte) []string {
	switch name {
	case ConfigFile:
		return configDifferences(sites, local)
	case CustodyFile:
		return custodyDifferences(sites, local)
	case RequestsFile:
		return requestsDifferences(sites, local)
	}
	return nil
}

// checkFile verifies one node file against the root key and the sites'
// copy. reauth says the file verified but must be authenticated again
// under the current root (written before authenticators, or under the
// previous root of a rotation).
func checkFile(keys *custody.Keyring, name string, local *nodeFile, sc *sitesCopy, upgrading bool) (p *FileProblem, reauth bool) {
	site := sc.files[name]
	problem := func(reason string) *FileProblem {
		p := &FileProblem{File: name, Reason: reason, Sites: sc.describe(name), Forward: forward(name)}
		if site != nil {
			var body []byte
			if local != nil {
				body = local.body
			}
			p.Differences = differences(name, site.body, body)
		}
		return p
	}
	if local == nil {
		if site != nil {
			return problem("missing, but the sites hold it"), false
		}
		return nil, false
	}
	if local.mac == nil {
		if !upgrading {
			return problem("carries no authenticator: it was written by hand, truncated, or comes from a node of an earlier version"), false
		}
		if site != nil && !bytes.Equal(site.body, local.body) {
			return problem("differs from the sites' copy, and it carries no authenticator (it was written before files were authenticated): it changed since the node last ran"), false
		}
		return nil, true
	}
	previous, err := local.verify(keys)
	if err != nil {
		return problem("does not verify under this node's root key: it was changed outside the node (by hand, or by someone without the key), or comes from another node"), false
	}
	if site != nil {
		if site.gen > local.gen {
			return problem(fmt.Sprintf("is generation %d, older than the sites' generation %d: a restored backup, or a copy of an earlier state", local.gen, site.gen)), false
		}
		if site.gen == local.gen && !bytes.Equal(site.body, local.body) {
			return problem(fmt.Sprintf("differs from the sites' copy of the same generation %d", local.gen)), false
		}
	}
	return nil, previous
}

// verifyNodeFiles runs at unseal, before the index, the engine or any
// site write: see the comment at the top of this file. On success n.Keys()
// carries the node identity (made now for a node that had none) and every
// node file is authenticated under the current root.
func (n *Node) verifyNodeFiles(ctx context.Context) error {
	keys := n.Keys()
	sc := n.readSitesCopy(ctx, keys)
	for _, f := range sc.failed {
		n.Log.Warn("node descriptor not read from a site; node files compared with the others", "site", f)
	}
	var problems []FileProblem
	restorable := map[string]bool{}

	// The identity.
	var id *custody.Identity
	rewrap, upgrading := false, false
	idb, err := os.ReadFile(filepath.Join(n.Dir, custody.IdentityFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if sc.identity != nil {
			_, pub, _ := custody.ReadPublicIdentity(sc.identity)
			problems = append(problems, FileProblem{File: custody.IdentityFile, Reason: "missing, but the sites' descriptor holds the node identity (" + pub.Ed25519Fingerprint() + ")",
				Forward: fmt.Sprintf(forwardRestore, custody.IdentityFile)})
			restorable[custody.IdentityFile] = true
		} else {
			upgrading = true
		}
	case err != nil:
		return err
	default:
		if id, err = custody.RootlessCopy(keys).OpenIdentity(idb); err != nil {
			id, err = keys.OpenIdentity(idb)
			rewrap = err == nil
		}
		if err != nil {
			problems = append(problems, FileProblem{File: custody.IdentityFile, Reason: err.Error() + ": changed, or from another node", Forward: fmt.Sprintf(forwardRestore, custody.IdentityFile)})
			restorable[custody.IdentityFile] = sc.identity != nil
		} else if sc.identity != nil {
			if sid, err := keys.OpenIdentity(sc.identity); err == nil && !sid.Public().Equal(id.Public()) {
				reason := "differs from the identity in the sites' descriptor (" + sid.Public().Ed25519Fingerprint() + ")"
				if slices.ContainsFunc(sid.Previous, id.Public().Equal) {
					reason = "is an identity the node has since replaced (the sites hold " + sid.Public().Ed25519Fingerprint() + "): an older copy"
				}
				problems = append(problems, FileProblem{File: custody.IdentityFile, Reason: reason, Forward: fmt.Sprintf(forwardRestore, custody.IdentityFile)})
				restorable[custody.IdentityFile] = true
			}
		}
	}

	// The node files.
	if _, ok := n.raw[RequestsFile]; !ok {
		f, err := readNodeFile(n.Dir, RequestsFile)
		if err != nil {
			problems = append(problems, FileProblem{File: RequestsFile, Reason: err.Error(), Forward: forward(RequestsFile)})
		}
		n.raw[RequestsFile] = f
	}
	reauth := map[string]bool{}
	for _, name := range []string{ConfigFile, CustodyFile, RequestsFile} {
		p, again := checkFile(keys, name, n.raw[name], sc, upgrading)
		if p != nil {
			problems = append(problems, *p)
			restorable[name] = sc.files[name] != nil
		}
		reauth[name] = again
	}
	if len(problems) > 0 && len(n.opts.Restore) > 0 {
		var left []FileProblem
		for _, p := range problems {
			if !restorable[p.File] || !slices.Contains(n.opts.Restore, p.File) {
				left = append(left, p)
				continue
			}
			if err := n.restoreFromSites(p.File, sc); err != nil {
				return err
			}
			reauth[p.File] = false
			if p.File == custody.IdentityFile {
				upgrading, rewrap = false, false
				if id, err = keys.OpenIdentity(sc.identity); err != nil {
					return err
				}
			}
		}
		problems = left
	}
	if len(problems) > 0 {
		return &FilesError{Problems: problems}
	}

	// Everything verifies: bring the identity and the files up to date.
	if upgrading {
		id, err = custody.NewIdentity(n.conf().Node.ID, keys.LegacyPublicKey())
		if err != nil {
			return err
		}
		if p := keys.Previous(); p != nil {
			id.AddLegacy(p.LegacyPublicKey())
		}
		n.Log.Info("node identity created (first unseal of a node from before identities)", "identity", id)
		rewrap = true
	}
	if rewrap {
		if err := writeIdentity(n.Dir, custody.RootlessCopy(keys), id); err != nil {
			return err
		}
	}
	n.setKeys(keys.WithIdentity(id))
	n.genMu.Lock()
	for name, f := range n.raw {
		if f != nil {
			n.gens[name] = f.gen
		}
	}
	n.genMu.Unlock()
	for _, name := range []string{ConfigFile, CustodyFile, RequestsFile} {
		f := n.raw[name]
		if f == nil || !reauth[name] {
			continue
		}
		body := f.body
		if name == CustodyFile && n.Custody != nil {
			// Written in its current form (snake_case) from now on.
			if body, err = marshalCustody(n.Custody); err != nil {
				return err
			}
		}
		if err := n.saveNodeFile(name, body); err != nil {
			return err
		}
	}
	return nil
}

// writeIdentity seals id under keys' root into dir/identity.json.
func writeIdentity(dir string, keys *custody.Keyring, id *custody.Identity) error {
	b, err := keys.SealIdentity(id)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, custody.IdentityFile), b)
}

// restoreFromSites replaces the local copy of a node file with the sites'
// copy, keeping the local one beside it as NAME.rejected-TIME.
func (n *Node) restoreFromSites(name string, sc *sitesCopy) error {
	path := filepath.Join(n.Dir, name)
	if b, err := os.ReadFile(path); err == nil {
		aside := path + ".rejected-" + time.Now().UTC().Format("20060102T150405Z")
		if err := writeFileAtomic(aside, b); err != nil {
			return err
		}
		n.SetAside[name] = aside
	}
	if name == custody.IdentityFile {
		n.Restored = append(n.Restored, name)
		return writeFileAtomic(path, sc.identity)
	}
	f := sc.files[name]
	// The sites' copy is authenticated by the descriptor; it is written
	// as it is if its own authenticator verifies, else authenticated anew.
	gen := f.gen
	raw := f.raw
	keys := n.Keys()
	if _, err := f.verify(keys); err != nil {
		gen++
		if raw, err = authenticated(keys, name, gen, f.body); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(path, raw); err != nil {
		return err
	}
	restored, err := splitNodeFile(name, raw)
	if err != nil {
		return err
	}
	n.raw[name] = &restored
	n.Restored = append(n.Restored, name)
	switch name {
	case ConfigFile:
		c, err := ParseConfig(restored.body)
		if err != nil {
			return fmt.Errorf("the sites' copy of %s: %w", name, err)
		}
		n.setConfig(c)
	case CustodyFile:
		rec, err := parseCustody(restored.body)
		if err != nil {
			return fmt.Errorf("the sites' copy of %s: %w", name, err)
		}
		// start runs with sealMu held (Unseal) or before the node is
		// shared (Open).
		n.Custody = rec
	}
	return nil
}
