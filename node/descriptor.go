package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/site"
)

// The node descriptor makes the sites the source of truth for the node
// itself (DESIGN.md §3 invariant 3): the node's configuration (sites and
// their credentials, vaults and policies, principals), its custody record,
// its two-person requests and its identity (wrapped under the root key),
// sealed with a key derived from the root key and signed by the node
// identity, on every site. From any one site and the root key (or T
// custodian shares), `embassy recover` rebuilds the node on a fresh
// machine; at every unseal the node compares its own files with the newest
// descriptor on the sites (verifyNodeFiles).
//
// Layout: "EMBD", format (1 or 2), 8-byte key id, 4-byte big-endian
// length, the sealed JSON body (nonce || AES-256-GCM), and a signature over
// everything before it: format 2, a hybrid signature by the node identity
// (Ed25519 || ML-DSA-44, custody.HybridSignatureSize bytes); format 1
// (written before node identities), an Ed25519 signature by the
// root-derived key. Format 2's body carries a generation: a number the node
// raises on every publish and keeps in its directory (GenerationFile), so
// that the newest descriptor can be told from older ones that sites missed
// or kept after they left the node; a descriptor without one (format 1, or
// format 2 written before generations) reads as generation 0.

// DescriptorBlob is the blob name of the node descriptor on every site.
const DescriptorBlob = "node/descriptor"

// DescriptorCopyFile is the node's own copy of the descriptor it last
// published, in the node directory. At unseal it names the sites to compare
// with even when node.yaml itself was replaced, and it is compared with
// like any site's.
const DescriptorCopyFile = "descriptor"

type descriptor struct {
	Format int    `json:"format"`
	NodeID string `json:"node_id"`
	// Generation is raised on every publish (format 2; 0 in format 1).
	Generation uint64    `json:"generation,omitempty"`
	Written    time.Time `json:"written"`
	Config     []byte    `json:"config"`            // node.yaml
	Custody    []byte    `json:"custody,omitempty"` // custody.json
	// Requests is requests.json (format 2).
	Requests []byte `json:"requests,omitempty"`
	// Identity is identity.json: the node identity, wrapped under the
	// root key (format 2).
	Identity []byte `json:"identity,omitempty"`
	// Rotation is rotation.json while a root key rotation is in progress:
	// the old root, sealed under the current one.
	Rotation []byte `json:"rotation,omitempty"`
	// PeerKeys is peerkeys.json: the peer listener's TLS key and the HPKE
	// recipient key allies wrap shared data keys to, wrapped under the
	// root key (made on first use).
	PeerKeys []byte `json:"peer_keys,omitempty"`
}

const descriptorHeader = 4 + 1 + 8 + 4

func descriptorAAD(format byte) []byte { return []byte{'E', 'M', 'B', 'D', format} }

func sealDescriptor(k *custody.Keyring, d descriptor) ([]byte, error) {
	format := byte(2)
	if k.Identity() == nil {
		format = 1
		d.Generation = 0 // format 1 has none
	}
	d.Format = int(format)
	plain, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	keyID, body, err := k.SealManifest(descriptorAAD(format), plain)
	if err != nil {
		return nil, err
	}
	out := append([]byte("EMBD"), format)
	out = append(out, keyID[:]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	var sig []byte
	if format == 2 {
		sig, err = k.SignHybrid(out)
	} else {
		sig, err = k.Sign(out)
	}
	if err != nil {
		return nil, err
	}
	return append(out, sig...), nil
}

// ErrDescriptor: the descriptor is missing, damaged, or sealed with
// another root key (the key or shares given are not this node's).
var ErrDescriptor = errors.New("node descriptor unusable")

// splitDescriptor checks the layout and returns the format, the signed
// bytes and the signature.
func splitDescriptor(b []byte) (byte, []byte, []byte, error) {
	if len(b) < descriptorHeader || string(b[:4]) != "EMBD" || (b[4] != 1 && b[4] != 2) {
		return 0, nil, nil, fmt.Errorf("%w: not a node descriptor", ErrDescriptor)
	}
	sigLen := ed25519.SignatureSize
	if b[4] == 2 {
		sigLen = custody.HybridSignatureSize
	}
	n := binary.BigEndian.Uint32(b[13:17])
	if int64(n) != int64(len(b))-descriptorHeader-int64(sigLen) {
		return 0, nil, nil, fmt.Errorf("%w: length mismatch", ErrDescriptor)
	}
	return b[4], b[:len(b)-sigLen], b[len(b)-sigLen:], nil
}

// openDescriptor verifies and opens a descriptor with the root key's
// keyring. A format 2 descriptor is signed by the identity it carries,
// which only the root key unwraps.
func openDescriptor(k *custody.Keyring, b []byte) (descriptor, error) {
	var d descriptor
	format, signed, sig, err := splitDescriptor(b)
	if err != nil {
		return d, err
	}
	var keyID [8]byte
	copy(keyID[:], b[5:13])
	// A descriptor sealed under this root that fails to verify was
	// altered on the site: that is not the key's fault.
	damaged := fmt.Errorf("%w: damaged: it is sealed under this key but does not verify (altered or corrupted on the site); recover from another site", ErrDescriptor)
	if !k.SealsWith(keyID) {
		return d, fmt.Errorf("%w: sealed by another node: the key or shares given are not this node's (wrong key or shares?)", ErrDescriptor)
	}
	if format == 1 {
		if err := k.Verify(signed, sig); err != nil {
			return d, damaged
		}
	}
	plain, err := k.OpenManifest(keyID, descriptorAAD(format), signed[descriptorHeader:])
	if err != nil {
		return d, damaged
	}
	if err := json.Unmarshal(plain, &d); err != nil || d.Format != int(format) || (format == 1 && d.Generation != 0) {
		return d, fmt.Errorf("%w: malformed body", ErrDescriptor)
	}
	if format == 2 {
		id, err := k.OpenIdentity(d.Identity)
		if err != nil {
			return d, fmt.Errorf("%w: identity: %v", ErrDescriptor, err)
		}
		if err := id.Public().Verify(signed, sig); err != nil {
			return d, fmt.Errorf("%w: damaged: not signed by the node identity it carries (altered on the site); recover from another site", ErrDescriptor)
		}
	}
	return d, nil
}

// VerifyDescriptor checks that a node descriptor (format 2) is signed by
// the node identity pub, as pinned from node.pub. It needs no key: the
// descriptor's body stays sealed.
func VerifyDescriptor(b []byte, pub custody.PublicIdentity) error {
	format, signed, sig, err := splitDescriptor(b)
	if err != nil {
		return err
	}
	if format != 2 {
		return fmt.Errorf("%w: format %d is not signed by a node identity", ErrDescriptor, format)
	}
	return pub.Verify(signed, sig)
}

// GenerationFile, in the node directory, holds the generation of the
// newest node descriptor the node has published (or adopted), in decimal.
const GenerationFile = "descriptor-generation"

func readGeneration(dirPath string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dirPath, GenerationFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	g, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not a generation number: %w", GenerationFile, err)
	}
	return g, nil
}

func writeGeneration(dirPath string, g uint64) error {
	return writeFileAtomic(filepath.Join(dirPath, GenerationFile), []byte(strconv.FormatUint(g, 10)+"\n"))
}

// seenDescriptor is the node descriptor read from one site.
type seenDescriptor struct {
	site string
	d    descriptor
	err  error // missing, damaged, or not this node's
}

// readDescriptor reads and opens the descriptor on one site.
func readDescriptor(ctx context.Context, k *custody.Keyring, s site.Site) (descriptor, error) {
	b, err := readBlob(ctx, s, DescriptorBlob, 16<<20)
	if err != nil {
		return descriptor{}, fmt.Errorf("read the node descriptor from the site: %w", err)
	}
	return openDescriptor(k, b)
}

// siteDescriptors reads the descriptor on every site of the engine.
func (n *Node) siteDescriptors(ctx context.Context) []seenDescriptor {
	sites := n.Engine.Sites()
	out := make([]seenDescriptor, len(sites))
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Go(func() {
			d, err := readDescriptor(ctx, n.Keys(), s.Store)
			if err == nil && d.NodeID != n.conf().Node.ID {
				err = fmt.Errorf("%w: it is node %s's", ErrDescriptor, d.NodeID)
			}
			out[i] = seenDescriptor{site: s.ID, d: d, err: err}
		})
	}
	wg.Wait()
	return out
}

// newest returns the newest valid descriptor among seen: the highest
// generation, then the latest written.
func newest(seen []seenDescriptor) (seenDescriptor, bool) {
	var best seenDescriptor
	found := false
	for _, s := range seen {
		if s.err != nil {
			continue
		}
		if !found || s.d.Generation > best.d.Generation || (s.d.Generation == best.d.Generation && s.d.Written.After(best.d.Written)) {
			best, found = s, true
		}
	}
	return best, found
}

// syncGeneration, on opening, finds the newest descriptor generation the
// node has published: the larger of the node directory's and the sites'
// (the directory's may be behind when it was restored from a copy, which
// verifyNodeFiles has checked by then, or lost). The next publish goes
// above both, so a generation never goes backwards.
// It returns what it read from the sites.
func (n *Node) syncGeneration(ctx context.Context) []seenDescriptor {
	local, err := readGeneration(n.Dir)
	if err != nil {
		n.Log.Warn("node descriptor generation unreadable; taking the sites'", "err", err)
	}
	n.descMu.Lock()
	defer n.descMu.Unlock()
	seen := n.siteDescriptors(ctx)
	if best, ok := newest(seen); ok && best.d.Generation > local {
		local = best.d.Generation
	}
	n.descGen = local
	n.descBehind = ""
	return seen
}

// refreshDescriptor, on opening, publishes the descriptor unless every
// site already holds the newest generation and it carries the node's
// files as they are: opening a node (every CLI command) changes nothing,
// so it writes no new generation and no audit entry. A site that missed
// the last publish, or files changed while the node was closed (a
// restored or hand-edited node directory), are published as before.
func (n *Node) refreshDescriptor(ctx context.Context, seen []seenDescriptor) {
	if n.Keys() == nil || n.Engine == nil {
		return
	}
	if n.descriptorCurrent(seen) {
		n.Log.Debug("node descriptor unchanged on every site; not published again", "generation", n.Descriptor().Generation)
		return
	}
	n.PublishDescriptor(ctx)
}

// descriptorCurrent reports whether seen has, for every site the engine
// has, a descriptor of the current generation holding the node's files.
func (n *Node) descriptorCurrent(seen []seenDescriptor) bool {
	n.descMu.Lock()
	gen := n.descGen
	n.descMu.Unlock()
	if gen == 0 || len(seen) != len(n.Engine.Sites()) {
		return false
	}
	files, err := n.descriptorFiles()
	if err != nil {
		return false
	}
	for _, s := range seen {
		if s.err != nil || s.d.Generation != gen || !files.sameFiles(s.d) {
			return false
		}
	}
	return true
}

// descriptorFiles reads the node files a descriptor carries.
func (n *Node) descriptorFiles() (descriptor, error) {
	cfg, err := os.ReadFile(filepath.Join(n.Dir, ConfigFile))
	if err != nil {
		return descriptor{}, err
	}
	d := descriptor{NodeID: n.conf().Node.ID, Config: cfg}
	for _, f := range []struct {
		name string
		to   *[]byte
	}{{CustodyFile, &d.Custody}, {RequestsFile, &d.Requests}, {custody.IdentityFile, &d.Identity}, {RotationFile, &d.Rotation}, {custody.PeerKeysFile, &d.PeerKeys}} {
		if b, err := os.ReadFile(filepath.Join(n.Dir, f.name)); err == nil {
			*f.to = b
		}
	}
	return d, nil
}

// sameFiles reports whether d and o carry the same node and files.
func (d descriptor) sameFiles(o descriptor) bool {
	return d.NodeID == o.NodeID && bytes.Equal(d.Config, o.Config) && bytes.Equal(d.Custody, o.Custody) &&
		bytes.Equal(d.Requests, o.Requests) && bytes.Equal(d.Identity, o.Identity) &&
		bytes.Equal(d.Rotation, o.Rotation) && bytes.Equal(d.PeerKeys, o.PeerKeys)
}

// DescriptorState is what the node knows of its descriptor on the sites.
type DescriptorState struct {
	// Generation is the newest published (or adopted).
	Generation uint64 `json:"generation"`
	// Behind, when set, says which site holds a newer descriptor than the
	// node published last, and so was not written.
	Behind string `json:"behind,omitempty"`
}

// Descriptor reports the descriptor's state.
func (n *Node) Descriptor() DescriptorState {
	n.descMu.Lock()
	defer n.descMu.Unlock()
	return DescriptorState{Generation: n.descGen, Behind: n.descBehind}
}

// PublishDescriptor writes the sealed node descriptor, with the next
// generation, to every reachable site, and keeps a copy in the node
// directory. It never replaces a newer descriptor: a site holding a higher
// generation (another copy of this node directory at work) keeps it, and
// Descriptor().Behind says so. It returns the sites that were not written.
func (n *Node) PublishDescriptor(ctx context.Context) []string {
	keys := n.Keys()
	if keys == nil || n.Engine == nil {
		// Sealed: nothing can be signed, so no site is written.
		var ids []string
		for _, s := range n.conf().Sites {
			ids = append(ids, s.ID)
		}
		return ids
	}
	n.descMu.Lock()
	defer n.descMu.Unlock()
	all := func() []string {
		var ids []string
		for _, s := range n.Engine.Sites() {
			ids = append(ids, s.ID)
		}
		return ids
	}
	d, err := n.descriptorFiles()
	if err != nil {
		n.Log.Error("descriptor: read config", "err", err)
		return all()
	}
	gen := n.descGen + 1
	d.Generation, d.Written = gen, time.Now().UTC()
	blob, err := sealDescriptor(keys, d)
	if err != nil {
		n.Log.Error("descriptor: seal", "err", err)
		return all()
	}
	// The generation is spent before any site sees it, so that it is
	// never used twice.
	if err := writeGeneration(n.Dir, gen); err != nil {
		n.Log.Error("descriptor: save its generation", "err", err)
		return all()
	}
	n.descGen = gen
	n.descBehind = ""
	n.recordBestEffort(ctx, audit.Event{Kind: KindDescriptor, Actor: "node", Detail: map[string]string{"generation": strconv.FormatUint(gen, 10)}})
	if err := writeFileAtomic(filepath.Join(n.Dir, DescriptorCopyFile), blob); err != nil {
		n.Log.Warn("descriptor: keep a copy in the node directory", "err", err)
	}
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	for _, s := range n.Engine.Sites() {
		wg.Go(func() {
			err := func() error {
				if cur, err := readDescriptor(ctx, keys, s.Store); err == nil && cur.NodeID == d.NodeID && cur.Generation > gen {
					mu.Lock()
					n.descBehind = fmt.Sprintf("site %s holds a newer node descriptor (generation %d) than this node published (%d), and keeps it: is another copy of this node directory in use?", s.ID, cur.Generation, gen)
					mu.Unlock()
					return errors.New("it holds a newer descriptor")
				}
				return s.Store.Put(ctx, DescriptorBlob, bytes.NewReader(blob), int64(len(blob)))
			}()
			if err != nil {
				mu.Lock()
				failed = append(failed, s.ID)
				mu.Unlock()
				n.Log.Warn("descriptor not written to site; it will be on the next change", "site", s.ID, "err", err)
			}
		})
	}
	wg.Wait()
	if n.descBehind != "" {
		n.Log.Error("node descriptor not published everywhere", "reason", n.descBehind)
	}
	return failed
}

// RecoverOptions configure a recovery.
type RecoverOptions struct {
	// Dir is the new node directory: it must not exist, or be empty.
	Dir string
	// From is the site to start from: its descriptor names the node's
	// sites, whose descriptors are read in turn.
	From site.Site
	// RootKey, or Shares (custodians' decrypted shares, at least T), opens it.
	RootKey *custody.RootKey
	Shares  [][]byte
	// SitePaths overrides the directory of dir sites on this machine.
	SitePaths map[string]string
	// AcceptStale takes the newest descriptor found even when the sites'
	// audit log records a newer generation (the sites that held it are
	// lost for good). Without it such a recovery is refused.
	AcceptStale bool
	Logger      func(msg string, args ...any)
}

// DescriptorSeen is what recovery found on one site.
type DescriptorSeen struct {
	// Site is the site's id, or StartingSite for the one named.
	Site string `json:"site"`
	// Generation of its descriptor, when it could be read.
	Generation uint64 `json:"generation"`
	// Problem says why the site's descriptor was not used: it is older
	// than the newest, or unreadable (with the error). Empty for the
	// newest.
	Problem string `json:"problem,omitempty"`
}

// RecoverReport says what a recovery found and did.
type RecoverReport struct {
	// Generation of the descriptor restored: the newest valid one on the
	// sites reached.
	Generation uint64 `json:"generation"`
	// Source names the site it came from.
	Source string `json:"source"`
	// Sites lists every site consulted, in the order of the newest
	// configuration (the starting site first when it is not in it).
	Sites []DescriptorSeen `json:"sites"`
	// LogGeneration is the newest descriptor generation the audit log on
	// the sites records (LogSite holds the copy read, LogEntries long); 0
	// when no site holds a log copy that verifies (LogProblem says why).
	LogGeneration uint64 `json:"log_generation"`
	LogSite       string `json:"log_site,omitempty"`
	LogEntries    uint64 `json:"log_entries"`
	LogProblem    string `json:"log_problem,omitempty"`
	// Rebuild is the index rebuild.
	Rebuild housekeeping.RebuildStats `json:"rebuild"`
	// SiteStates is the state of each site of the recovered node: a site
	// whose marker names another node or site is unavailable.
	SiteStates []SiteState `json:"site_states"`
	// WitnessLogs is how many logs this node witnesses whose memory (the
	// latest checkpoint it cosigned) came back from the sites;
	// WitnessProblem why it could not be read back.
	WitnessLogs    int    `json:"witness_logs"`
	WitnessProblem string `json:"witness_problem,omitempty"`
}

// DescriptorReport is the descriptor part of a recovery's report, for
// printing.
type DescriptorReport struct {
	Generation    uint64           `json:"generation"`
	Source        string           `json:"source"`
	Sites         []DescriptorSeen `json:"sites"`
	LogGeneration uint64           `json:"log_generation"`
	LogSite       string           `json:"log_site,omitempty"`
	LogEntries    uint64           `json:"log_entries"`
	LogProblem    string           `json:"log_problem,omitempty"`
}

// Descriptor returns the descriptor part of the report.
func (r RecoverReport) Descriptor() DescriptorReport {
	return DescriptorReport{Generation: r.Generation, Source: r.Source, Sites: append([]DescriptorSeen{}, r.Sites...),
		LogGeneration: r.LogGeneration, LogSite: r.LogSite, LogEntries: r.LogEntries, LogProblem: r.LogProblem}
}

// ErrStaleDescriptor: the newest node descriptor the sites reached hold
// is older than the generation the audit log records. Recover from a site
// that holds the newest (or mount the sites not reached); only if those
// are lost for good, accept the older one (RecoverOptions.AcceptStale).
var ErrStaleDescriptor = errors.New("stale node descriptor")

// descriptorOnLog reads the longest verified copy of the audit log on the
// sites of c (and the starting site) and fills in the newest descriptor
// generation it records.
func descriptorOnLog(ctx context.Context, keys *custody.Keyring, d descriptor, c *Config, tmp *Node, from site.Site, rep *RecoverReport) error {
	if len(d.Identity) == 0 {
		rep.LogProblem = "the descriptor carries no identity (a node from before the audit log)"
		return nil
	}
	id, err := keys.OpenIdentity(d.Identity)
	if err != nil {
		return fmt.Errorf("descriptor identity: %w", err)
	}
	origin := audit.Origin(d.NodeID)
	verifiers, _, err := audit.Verifiers(origin, append([]custody.PublicIdentity{id.Public()}, id.Previous...)...)
	if err != nil {
		return err
	}
	sites := map[string]site.Site{StartingSite: from}
	for _, sc := range c.Sites {
		if st, err := tmp.OpenSite(sc); err == nil {
			sites[sc.ID] = st
			defer closeSite(st)
		}
	}
	last, err := audit.LastEventOnSites(ctx, sites, origin, verifiers, keys.WithIdentity(id), KindDescriptor)
	if err != nil {
		if errors.Is(err, audit.ErrNoCopy) {
			rep.LogProblem = err.Error()
			return nil
		}
		return fmt.Errorf("the audit log on the sites: %w", err)
	}
	rep.LogSite, rep.LogEntries = last.Site, last.Size
	if last.Found {
		g, err := strconv.ParseUint(last.Event.Detail["generation"], 10, 64)
		if err != nil {
			return fmt.Errorf("the audit log on site %s: entry %d: descriptor generation %q", last.Site, last.Index, last.Event.Detail["generation"])
		}
		rep.LogGeneration = g
	}
	return nil
}

// StartingSite names the site recovery started from in its report.
const StartingSite = "the starting site"

// Recover rebuilds a node on a fresh machine from its sites and the root
// key or T custodians' shares. It reads the node descriptor on the site it
// is given, which names the node's sites; then it reads the descriptor on
// every one of them it can reach (and on those the newer descriptors name)
// and takes the newest valid one, so that a stale site (one that missed
// changes, or left the node long ago) cannot bring back an old
// configuration. It writes the node's configuration and custody record
// into a new directory, opens the node (which rebuilds the index from every
// reachable site), and returns it ready to serve. It never writes a
// descriptor older than what a site holds.
func Recover(ctx context.Context, o RecoverOptions) (*Node, RecoverReport, error) {
	var rep RecoverReport
	if ents, err := os.ReadDir(o.Dir); err == nil && len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(o.Dir, ConfigFile)); err == nil {
			return nil, rep, fmt.Errorf("%s already holds a node", o.Dir)
		}
		return nil, rep, fmt.Errorf("%s is not empty (it holds %s): recover writes a new node directory; name a new or empty one", o.Dir, ents[0].Name())
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, rep, err
	}
	var root custody.RootKey
	switch {
	case o.RootKey != nil:
		root = *o.RootKey
	case len(o.Shares) > 0:
		var err error
		if root, err = custody.CombineShares(o.Shares); err != nil {
			return nil, rep, err
		}
	default:
		return nil, rep, errors.New("recover: give the root key or custodians' shares")
	}
	keys, err := custody.NewKeyring(root)
	if err != nil {
		return nil, rep, err
	}
	first, err := readDescriptor(ctx, keys, o.From)
	if err != nil {
		return nil, rep, err
	}
	parse := func(d descriptor) (*Config, error) {
		cf, err := splitNodeFile(ConfigFile, d.Config)
		if err != nil {
			return nil, fmt.Errorf("descriptor config: %w", err)
		}
		c, err := ParseConfig(cf.body)
		if err != nil {
			return nil, fmt.Errorf("descriptor config: %w", err)
		}
		for i, s := range c.Sites {
			if p, ok := o.SitePaths[s.ID]; ok {
				c.Sites[i].Path = p
			}
		}
		return c, nil
	}
	c, err := parse(first)
	if err != nil {
		return nil, rep, err
	}
	// Read the descriptor on every site the newest configuration names,
	// until no newer one names a site not yet read.
	tmp := &Node{Dir: o.Dir, Config: c}
	seen := map[string]seenDescriptor{}
	best := seenDescriptor{site: StartingSite, d: first}
	for {
		var todo []SiteConfig
		for _, sc := range c.Sites {
			if _, ok := seen[sc.ID]; !ok {
				todo = append(todo, sc)
			}
		}
		if len(todo) == 0 {
			break
		}
		res := make([]seenDescriptor, len(todo))
		var wg sync.WaitGroup
		for i, sc := range todo {
			wg.Go(func() {
				res[i] = seenDescriptor{site: sc.ID}
				st, err := tmp.OpenSite(sc)
				if err != nil {
					res[i].err = err
					return
				}
				defer closeSite(st)
				res[i].d, res[i].err = readDescriptor(ctx, keys, st)
				if res[i].err == nil && res[i].d.NodeID != first.NodeID {
					res[i].err = fmt.Errorf("%w: it is node %s's", ErrDescriptor, res[i].d.NodeID)
				}
			})
		}
		wg.Wait()
		for _, r := range res {
			seen[r.site] = r
		}
		nb, _ := newest(append([]seenDescriptor{best}, res...)) // a tie keeps the one in hand
		if nb.site == best.site {
			break
		}
		best = nb
		if c, err = parse(best.d); err != nil {
			return nil, rep, err
		}
		tmp.Config = c
	}
	rep.Generation, rep.Source = best.d.Generation, best.site
	report := func(id string, s seenDescriptor) {
		ds := DescriptorSeen{Site: id, Generation: s.d.Generation}
		switch {
		case s.err != nil:
			ds.Problem = "unreadable: " + s.err.Error()
		case s.d.Generation < best.d.Generation:
			ds.Problem = fmt.Sprintf("older (generation %d < %d): not used", s.d.Generation, best.d.Generation)
		case !bytes.Equal(s.d.Config, best.d.Config) || !bytes.Equal(s.d.Custody, best.d.Custody) || !bytes.Equal(s.d.Identity, best.d.Identity):
			ds.Problem = fmt.Sprintf("differs from the newest at the same generation %d: not used", s.d.Generation)
		}
		rep.Sites = append(rep.Sites, ds)
	}
	if _, ok := seen[StartingSite]; !ok {
		inNewest := false
		if best.site != StartingSite {
			// The starting site is one of the newest configuration's
			// when one of them holds exactly its descriptor.
			for _, sc := range c.Sites {
				if s, ok := seen[sc.ID]; ok && s.err == nil && s.d.Generation == first.Generation && s.d.Written.Equal(first.Written) {
					inNewest = true
				}
			}
		} else {
			inNewest = true
		}
		if !inNewest {
			report(StartingSite, seenDescriptor{site: StartingSite, d: first})
		}
	}
	for _, sc := range c.Sites {
		if s, ok := seen[sc.ID]; ok {
			report(sc.ID, s)
		} else {
			report(sc.ID, seenDescriptor{site: sc.ID, err: errors.New("not reached")})
		}
	}
	d := best.d
	// The audit log records every descriptor generation published: one
	// newer than any found means the sites reached serve a stale one.
	if err := descriptorOnLog(ctx, keys, d, c, tmp, o.From, &rep); err != nil {
		return nil, rep, err
	}
	if rep.LogGeneration > d.Generation && !o.AcceptStale {
		return nil, rep, fmt.Errorf("%w: the newest node descriptor on the sites reached is generation %d (from %s), but the audit log (site %s, %d entries) records generation %d: those sites are stale (replayed, or the sites holding generation %d are not reached); nothing was written", ErrStaleDescriptor, d.Generation, best.site, rep.LogSite, rep.LogEntries, rep.LogGeneration, rep.LogGeneration)
	}
	// The node is not recovered beside itself still running on its sites.
	if err := sitesInUse(tmp, c.Sites); err != nil {
		return nil, rep, err
	}
	if err := leasesInUse(ctx, tmp, c.Sites); err != nil {
		return nil, rep, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, rep, err
	}
	if c, err = restoreFiles(o.Dir, keys, d, o.SitePaths); err != nil {
		return nil, rep, err
	}
	if len(d.Custody) == 0 {
		// A node with a local root key: keep it local here too.
		if err := custody.WriteKeyFile(filepath.Join(o.Dir, orDefault(c.Keys.RootKeyFile, "root.key")), root); err != nil {
			return nil, rep, err
		}
	}
	// Generations never go back: after an accepted stale descriptor the
	// next one published is above what the log records.
	if err := writeGeneration(o.Dir, max(d.Generation, rep.LogGeneration)); err != nil {
		return nil, rep, err
	}
	n, err := Open(ctx, o.Dir, nil)
	if err != nil {
		return nil, rep, err
	}
	if n.Sealed() {
		for _, s := range o.Shares {
			if _, err := n.Unseal(s); err != nil {
				n.Close()
				return nil, rep, err
			}
		}
		if err := n.Ready(); err != nil {
			n.Close()
			return nil, rep, err
		}
	}
	rep.Rebuild = n.LastRebuild
	rep.SiteStates = append([]SiteState{}, n.SiteStates(ctx, 30*time.Second)...)
	// The witness remembers what it cosigned of its peers' logs.
	if rep.WitnessLogs, err = n.restoreWitnessMemory(ctx); err != nil {
		rep.WitnessProblem = err.Error()
	}
	return n, rep, nil
}

// restoreFiles writes the node files a descriptor carries into dir (a new
// node directory), with dir sites moved to sitePaths. A file whose own
// authenticator verifies under keys is written as it is; one that was
// moved, or written before authenticators or under a previous root, is
// authenticated anew as its next generation: the descriptor, sealed and
// signed, vouches for it.
func restoreFiles(dir string, keys *custody.Keyring, d descriptor, sitePaths map[string]string) (*Config, error) {
	cf, err := splitNodeFile(ConfigFile, d.Config)
	if err != nil {
		return nil, fmt.Errorf("descriptor config: %w", err)
	}
	c, err := ParseConfig(cf.body)
	if err != nil {
		return nil, fmt.Errorf("descriptor config: %w", err)
	}
	moved := false
	for i, s := range c.Sites {
		if p, ok := sitePaths[s.ID]; ok && p != s.Path {
			c.Sites[i].Path, moved = p, true
		}
	}
	body := cf.body
	if moved {
		if body, err = c.Marshal(); err != nil {
			return nil, err
		}
	}
	write := func(name string, f nodeFile, body []byte) error {
		if f.mac != nil && bytes.Equal(body, f.body) {
			if _, err := f.verify(keys); err == nil {
				return writeFileAtomic(filepath.Join(dir, name), f.raw)
			}
		}
		return writeNodeFile(dir, keys, name, f.gen+1, body)
	}
	if err := write(ConfigFile, cf, body); err != nil {
		return nil, err
	}
	for name, b := range map[string][]byte{CustodyFile: d.Custody, RequestsFile: d.Requests} {
		if len(b) == 0 {
			continue
		}
		f, err := splitNodeFile(name, b)
		if err != nil {
			return nil, fmt.Errorf("descriptor: %w", err)
		}
		if err := write(name, f, f.body); err != nil {
			return nil, err
		}
	}
	for name, b := range map[string][]byte{custody.IdentityFile: d.Identity, RotationFile: d.Rotation, custody.PeerKeysFile: d.PeerKeys} {
		if len(b) > 0 {
			if err := writeFileAtomic(filepath.Join(dir, name), b); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}
