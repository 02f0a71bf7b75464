package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/site/s3site"
	"github.com/embassy-dev/embassy/vault"
)

// Node is an opened node directory.
type Node struct {
	mu     sync.Mutex // serialises configuration changes
	Dir    string
	Config *Config
	Engine *vault.Engine
	Index  *boltindex.Index
	Log    *slog.Logger
	Labels *label.Registry
	// keyring holds the node's keys, nil while it is sealed: read with
	// Keys, set with setKeys, never kept anywhere else.
	keyring atomic.Pointer[custody.Keyring]

	// Custody is the node's custody record when its root key is split
	// among custodians; nil for a local root key file.
	Custody *custody.Record
	sealMu  sync.Mutex
	shares  map[int][]byte // shares received towards unsealing, by share number
	sealed  bool
	readyC  chan struct{} // closed once unsealed (readyChan)
	reqMu   sync.Mutex    // serialises two-person requests

	opts OpenOptions
	// raw holds the node files as read (node.yaml and custody.json at
	// Open, requests.json at unseal), verified at unseal.
	raw   map[string]*nodeFile
	genMu sync.Mutex
	gens  map[string]uint64 // generation of each node file, as verified or last written

	// Restored names the node files replaced by the sites' copies
	// (OpenOptions.Restore); SetAside maps each to where the
	// local file that did not verify was kept.
	Restored []string
	SetAside map[string]string

	// audit is the node's audit log (open while the node is unsealed).
	audit atomic.Pointer[audit.Log]
	// auditSwap is held for reading while appending, and for writing
	// while the log is reopened (a configuration change), so that appends
	// wait for the reopened log instead of failing.
	auditSwap   sync.RWMutex
	witness     atomic.Pointer[audit.Witness]
	auditStores atomic.Pointer[map[string]site.Site]

	// LastRebuild reports the index rebuild done on opening, if any.
	LastRebuild housekeeping.RebuildStats

	descMu     sync.Mutex // serialises descriptor publishing
	descGen    uint64     // newest descriptor generation published or adopted
	descBehind string     // why the node does not publish, if it does not

	live     liveState // what a serving node changes in place (live.go)
	jobTable jobTable  // long operations (jobs.go)
	taxii    taxiiState
	ally     allianceState    // the alliance (alliance.go)
	peerWit  peerWitnessState // witnessing with the peers (peerwitness.go)
	host     hostState        // the guests' stores (hosting.go)
	sites    siteLocks        // held on the directory sites (sitelock.go)
	leases   siteLeases       // held on the S3 sites (sitelease.go)
	s3       s3Clients        // the engine's S3 site drivers (siteclients.go)
	seals    sealState        // encryptions counted per key (seals.go)

	// serveLoops are run by Serve beside its own background loops, until
	// its ctx is done (tests).
	serveLoops []func(context.Context)
}

// OpenOptions configure OpenWith.
type OpenOptions struct {
	// Logger defaults to one built from the configuration, on stderr.
	Logger *slog.Logger
	// Restore names node files (ConfigFile, CustodyFile, RequestsFile,
	// custody.IdentityFile) that, if they do not verify at unseal, are
	// replaced by the copies in the newest descriptor on the sites, the
	// local ones kept beside them as NAME.rejected-TIME ('embassy config
	// restore' names all, 'embassy config edit' node.yaml).
	Restore []string
}

// NodeFiles are the files OpenOptions.Restore can name.
var NodeFiles = []string{ConfigFile, CustodyFile, RequestsFile, custody.IdentityFile}

// InitOptions configures a new node.
type InitOptions struct {
	Nation string
	// Custodians, if set, split the root key among them with Threshold;
	// each custodian's sealed share file is passed to Share. No root key
	// is then stored: the node starts sealed.
	Custodians []custody.CustodianPublic
	Threshold  int
	Share      func(custodian string, file []byte) error
	// Configure, if set, changes the configuration before it is first
	// written (S3 address and credentials, sites, ...).
	Configure func(*Config)
}

// ErrNotInitialized means the directory holds no node; run 'embassy init'.
var ErrNotInitialized = errors.New("no embassy node here")

// Init creates a node directory: configuration and a local root key.
func Init(dirPath string, o InitOptions) (*Config, error) {
	if err := site.ValidCountry(o.Nation); err != nil {
		return nil, fmt.Errorf("nation: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dirPath, ConfigFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a node (%s exists)", dirPath, ConfigFile)
	}
	if err := os.MkdirAll(dirPath, 0o700); err != nil {
		return nil, err
	}
	var id [8]byte
	rand.Read(id[:])
	c := &Config{
		Node:  NodeConfig{ID: hex.EncodeToString(id[:]), Nation: o.Nation},
		Index: IndexConfig{Driver: "bolt", Path: "index.db"},
		Keys:  KeysConfig{RootKeyFile: "root.key"},
		// The operator's own principal; restrict it to what the
		// operators are actually cleared for.
		Principals: []access.Principal{{Name: "admin", Nation: o.Nation, Clearances: map[string]string{"NATO": "COSMIC TOP SECRET"}, Roles: []string{"admin"}}},
	}
	if o.Configure != nil {
		o.Configure(c)
	}
	root, err := custody.GenerateRootKey()
	if err != nil {
		return nil, err
	}
	keys, err := custody.NewKeyring(root)
	if err != nil {
		return nil, err
	}
	ident, err := custody.NewIdentity(c.Node.ID)
	if err != nil {
		return nil, err
	}
	if err := writeIdentity(dirPath, keys, ident); err != nil {
		return nil, err
	}
	if len(o.Custodians) > 0 {
		if o.Share == nil {
			return nil, errors.New("init: custodians given but nowhere to deliver their shares")
		}
		rec, files, err := custody.SplitRoot(root, c.Node.ID, o.Custodians, o.Threshold)
		if err != nil {
			return nil, err
		}
		for _, cp := range o.Custodians {
			if err := o.Share(cp.Name, files[cp.Name]); err != nil {
				return nil, fmt.Errorf("deliver %s's share: %w", cp.Name, err)
			}
		}
		c.Keys = KeysConfig{}
		body, err := marshalCustody(&rec)
		if err != nil {
			return nil, err
		}
		if err := writeNodeFile(dirPath, keys, CustodyFile, 1, body); err != nil {
			return nil, err
		}
		return c, writeConfig(dirPath, keys, c, 1)
	}
	if err := custody.WriteKeyFile(filepath.Join(dirPath, c.Keys.RootKeyFile), root); err != nil {
		return nil, err
	}
	return c, writeConfig(dirPath, keys, c, 1)
}

// writeConfig validates c and writes it as generation gen of node.yaml,
// authenticated under keys.
func writeConfig(dirPath string, keys *custody.Keyring, c *Config, gen uint64) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	return writeNodeFile(dirPath, keys, ConfigFile, gen, b)
}

// SaveConfig writes dir/node.yaml, authenticated, on a node whose root
// key is a local file (a dev node, tests): it reads the key to do so. The
// node is not published to the sites; it is on its next start. A node with
// custodians changes its configuration through an unsealed Node or 'embassy
// config edit'.
func SaveConfig(dirPath string, c *Config) error {
	keys, err := localKeys(dirPath)
	if err != nil {
		return err
	}
	return writeConfig(dirPath, keys, c, nodeFileGen(dirPath, keys, ConfigFile)+1)
}

// WriteConfig writes body, exactly, as node.yaml of a node whose root key
// is a local file, after checking that it parses and validates.
func WriteConfig(dirPath string, body []byte) error {
	if _, err := ParseConfig(body); err != nil {
		return err
	}
	keys, err := localKeys(dirPath)
	if err != nil {
		return err
	}
	return writeNodeFile(dirPath, keys, ConfigFile, nodeFileGen(dirPath, keys, ConfigFile)+1, body)
}

// localKeys reads the local root key file of the node in dirPath.
func localKeys(dirPath string) (*custody.Keyring, error) {
	keyFile := "root.key"
	if f, err := readNodeFile(dirPath, ConfigFile); err == nil && f != nil {
		if c, err := ParseConfig(f.body); err == nil {
			keyFile = orDefault(c.Keys.RootKeyFile, keyFile)
		}
	}
	if !filepath.IsAbs(keyFile) {
		keyFile = filepath.Join(dirPath, keyFile)
	}
	root, err := custody.ReadKeyFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w (node files of a node with custodians are written through the unsealed node)", err)
	}
	return custody.NewKeyring(root)
}

func (n *Node) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(n.Dir, p)
}

// NewLogger builds the node's logger from its configuration.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Open opens the node in dirPath: keys, index, sites and engine.
func Open(ctx context.Context, dirPath string, log *slog.Logger) (*Node, error) {
	return OpenWith(ctx, dirPath, OpenOptions{Logger: log})
}

// OpenWith opens the node in dirPath. A node whose root key is split among
// custodians is returned sealed: its node files are read as they are, to
// listen and know the custodians, and verified at Unseal. A node with a
// local root key file is verified and started at once.
func OpenWith(ctx context.Context, dirPath string, o OpenOptions) (*Node, error) {
	cf, err := readNodeFile(dirPath, ConfigFile)
	if err == nil && cf == nil {
		return nil, fmt.Errorf("%w: %s has no %s", ErrNotInitialized, dirPath, ConfigFile)
	}
	if err != nil {
		return nil, err
	}
	c, err := ParseConfigLines(cf.body)
	if err != nil {
		if cf.mac == nil {
			err = fmt.Errorf("%w (the file carries no authenticator: it was truncated or written by hand; restore it, or recover the node from a site with 'embassy recover')", err)
		}
		return nil, fmt.Errorf("%s: %w", filepath.Join(dirPath, ConfigFile), err)
	}
	log := o.Logger
	if log == nil {
		log = NewLogger(c.Log, os.Stderr)
	}
	n := &Node{Dir: dirPath, Config: c, Log: log, opts: o, raw: map[string]*nodeFile{ConfigFile: cf}, gens: map[string]uint64{}, SetAside: map[string]string{}}
	// In force from the start: conf never falls back to the Config field,
	// which the first change (setConfig) writes while the node serves.
	n.live.cfg.Store(c)
	for _, s := range c.Sites {
		if s.Driver == "dir" && !c.Node.Dev {
			if err := n.checkSiteOutside(s); err != nil {
				// Configured before this was refused: say so, keep working.
				log.Warn("a site lies inside the node directory (or holds it): losing one loses the other; drain it to a site of its own", "site", s.ID, "err", err)
			}
		}
	}
	custf, err := readNodeFile(dirPath, CustodyFile)
	if err != nil {
		return nil, err
	}
	n.raw[CustodyFile] = custf
	var rec *custody.Record
	if custf != nil {
		if rec, err = parseCustody(custf.body); err != nil {
			return nil, err
		}
	}
	if rec != nil {
		// The root key is split among custodians: start sealed.
		n.Custody, n.sealed, n.shares = rec, true, map[int][]byte{}
		return n, nil
	}
	root, err := custody.ReadKeyFile(n.path(orDefault(c.Keys.RootKeyFile, "root.key")))
	if errors.Is(err, fs.ErrNotExist) && c.Keys.RootKeyFile == "" {
		// A node with custodians has no keys section: its custody.json is
		// what went missing.
		return nil, fmt.Errorf("%s is missing, and this node (no keys.root_key_file) has its root key split among custodians: put custody.json back from a backup, or recover the node from any site with 'embassy recover --share …'", CustodyFile)
	}
	if err != nil {
		return nil, err
	}
	if err := n.start(root); err != nil {
		return nil, err
	}
	return n, nil
}

// Keys returns the node's keys, nil while it is sealed. Every read goes
// through it: the keys change while the node runs (start sets them under
// the seal lock when custodians unseal the node, root rotation and the
// identity's creation replace them), and code that serves a sealed node,
// such as the hosting directory's check, does not take that lock. Code
// that uses them more than once reads them once into a local (and tests
// that for nil, where the node may be sealed), so that it works with one
// keyring throughout; root rotation and identity replacement read them
// again after they set new ones.
func (n *Node) Keys() *custody.Keyring { return n.keyring.Load() }

// setKeys puts k in force as the node's keys (nil: sealed).
// Every keyring put in force counts its encryptions in the node's
// counter (seals.go).
func (n *Node) setKeys(k *custody.Keyring) { n.keyring.Store(n.countSeals(k)) }

// start derives the keys from root, verifies the node files, and opens the
// index and the engine. On error nothing was written to any site and the
// node holds no keys.
func (n *Node) start(root custody.RootKey) (err error) {
	keys, err := custody.NewKeyring(root)
	if err != nil {
		return err
	}
	// Counted from the first encryption: the node directory's counts
	// now, the sites' once they are open.
	if err := n.loadSealCounts(); err != nil {
		return err
	}
	n.setKeys(keys)
	defer func() {
		if err != nil {
			n.setKeys(nil)
		}
	}()
	if err := n.loadRotation(); err != nil {
		return err
	}
	if err := n.verifyNodeFiles(context.Background()); err != nil {
		return err
	}
	ipath := n.path(orDefault(n.conf().Index.Path, "index.db"))
	n.Index, err = boltindex.Open(ipath)
	if errors.Is(err, boltindex.ErrFormat) {
		// The index is a cache: set the old one aside and rebuild.
		aside := ipath + ".old-" + time.Now().UTC().Format("20060102T150405Z")
		n.Log.Warn("index written by another version; setting it aside and rebuilding from the sites", "old", aside)
		if rerr := os.Rename(ipath, aside); rerr != nil {
			return err
		}
		n.Index, err = boltindex.Open(ipath)
	}
	if err != nil {
		return err
	}
	if removed, kept := n.Index.Leftover(); removed != "" {
		n.Log.Warn("removed the temporary copy an interrupted 'embassy index compact' left beside the index", "path", removed)
	} else if kept != nil {
		n.Log.Warn("a file beside the index has the name of a compaction's temporary copy but may be something else, so it was left: move it away", "err", kept)
	}
	if err := n.rebuildEngine(); err != nil {
		n.closeAudit()
		n.Index.Close()
		return err
	}
	n.loadSealCountsFromSites(context.Background())
	incomplete := n.Index.CheckComplete() != nil
	if incomplete {
		n.Log.Warn("the last index rebuild was interrupted: rebuilding the index from the sites")
	}
	if incomplete || (n.Index.Fresh() && n.sitesHoldManifests()) {
		n.Log.Warn("the index is new but the sites hold manifests: rebuilding it from the sites")
		st, err := n.Keeper().RebuildIndex(context.Background(), nil)
		if err != nil {
			return fmt.Errorf("rebuild a new index: %w", err)
		}
		n.LastRebuild = st
		n.Log.Info("index rebuilt", "versions", st.Versions, "left_out", len(st.Unreadable))
	}
	if err := n.baselineAudit(context.Background()); err != nil {
		n.Log.Error("audit log: the versions the index holds are not recorded as its beginning", "err", err)
	}
	n.flushSealed(context.Background())
	// requests.json is a cache of the log's request entries: one that
	// disagrees with the log (a restored backup, a decision taken out) is
	// rebuilt from it before any request is decided.
	if _, err := n.checkRequests(context.Background()); err != nil {
		return fmt.Errorf("check requests.json against the audit log: %w", err)
	}
	n.refreshDescriptor(context.Background(), n.syncGeneration(context.Background()))
	return nil
}

// sitesHoldManifests reports whether any reachable site holds a manifest.
func (n *Node) sitesHoldManifests() bool {
	found := errors.New("found")
	for _, s := range n.Engine.Sites() {
		err := s.Store.List(context.Background(), manifest.ManifestPrefix, func(site.Info) error { return found })
		if errors.Is(err, found) {
			return true
		}
	}
	return false
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// OpenSite opens a configured site's driver.
func (n *Node) OpenSite(s SiteConfig) (site.Site, error) {
	switch s.Driver {
	case "dir":
		s.Path = n.path(s.Path)
	case "peer":
		return n.hostedSiteOf(s), nil
	}
	return OpenSiteConfig(context.Background(), s)
}

// OpenSiteConfig opens a site's driver from its configuration; relative
// dir paths are taken as they are.
func OpenSiteConfig(ctx context.Context, s SiteConfig) (site.Site, error) {
	switch s.Driver {
	case "dir":
		return dir.Open(s.Path)
	case "s3":
		if s.S3 == nil {
			return nil, fmt.Errorf("site %s: s3 driver without settings", s.ID)
		}
		// Opening a site never creates its bucket: a bucket that
		// vanished must be reported, not recreated empty.
		cfg := *s.S3
		cfg.CreateBucket = false
		return s3site.New(ctx, cfg)
	case "peer":
		return nil, fmt.Errorf("site %s: a hosted site is reached over the node's peer link: open it through the node", s.ID)
	default:
		return nil, fmt.Errorf("site %s: driver %q not supported", s.ID, s.Driver)
	}
}

func (n *Node) rebuildEngine() error {
	var sites []vault.Site
	stores := map[string]site.Site{}
	conflicts := n.conflicts(n.conf().Sites)
	n.keepSiteLocks(n.conf().Sites)
	n.releaseLeases(n.conf().Sites)
	var s3s []*s3site.Site
	for _, sc := range n.conf().Sites {
		st, err := n.OpenSite(sc)
		if err != nil {
			for _, ss := range s3s {
				ss.Close()
			}
			return fmt.Errorf("site %s: %w", sc.ID, err)
		}
		if ss, ok := st.(*s3site.Site); ok {
			s3s = append(s3s, ss)
		}
		sites = append(sites, vault.Site{Descriptor: sc.Descriptor, Store: n.guardSite(sc, st, conflicts[sc.ID])})
		stores[sc.ID] = sites[len(sites)-1].Store
	}
	n.auditStores.Store(&stores)
	// The drivers replaced are used no more (the log's stores are these
	// now; an engine changed in place or replaced takes these below).
	n.keepS3Clients(s3s)
	if n.Audit() == nil {
		if err := n.openAudit(context.Background()); err != nil {
			return err
		}
	} else if err := n.reconfigureAudit(); err != nil {
		return err
	}
	var vaults []vault.Vault
	for _, vc := range n.conf().Vaults {
		v, err := n.vault(vc)
		if err != nil {
			return err
		}
		vaults = append(vaults, v)
	}
	if n.Engine != nil && n.live.samePolicies(n.conf().Policies) {
		// A running node changes in place: the front ends keep the
		// engine they hold, and see the change.
		if err := n.Engine.Reconfigure(sites, vaults); err != nil {
			return err
		}
		n.setDraining()
		n.live.changed()
		return nil
	}
	reg, err := label.NewRegistry(n.conf().Policies...)
	if err != nil {
		return err
	}
	n.Labels = reg
	keys := n.Keys()
	bk := keys.BindingKeys()
	defer func() {
		if n.Engine != nil {
			n.setDraining()
		}
	}()
	e, err := vault.New(vault.Config{NodeID: n.conf().Node.ID, Keys: keys, Index: n.Index, Sites: sites, Vaults: vaults, Logger: n.Log,
		Labels: reg, Signer: bk, Verifier: bk, Decider: access.NewDecider(reg), Approver: n,
		Audit: n.engineAudit(), AuditFailClosed: n.conf().failClosed()})
	if err != nil {
		return err
	}
	if n.Engine != nil {
		// Writes in flight on the old engine are refused at their
		// commit (503 SlowDown): they were placed under the old
		// configuration. Its pending write of commit generations goes
		// to the sites it knew, now.
		n.Engine.Retire()
		n.Engine.Close(context.Background())
	}
	n.Engine = e
	n.live.rebuilt(n.conf().Policies)
	return nil
}

// engineAudit is the audit log the engine records its changes on: the
// node's, always. The one exception is a benchmark binary built with
// -tags embassy_bench_nolog (benchaudit_nolog.go), which gives a
// development node's engine none so that bench/s3.sh can measure what the
// log costs a PUT; in an ordinary build benchNoAuditLog is the constant
// false and nothing can turn the log off.
func (n *Node) engineAudit() vault.AuditLog {
	if benchNoAuditLog && n.conf().Node.Dev {
		n.Log.Warn("embassy_bench_nolog: this benchmark build gives the engine no audit log; the changes it makes are NOT recorded (not for real use)")
		return nil
	}
	return auditProxy{n}
}

func (n *Node) vault(vc VaultConfig) (vault.Vault, error) {
	p, err := vc.Policy(n.conf().Node.Nation)
	if err != nil {
		return vault.Vault{}, fmt.Errorf("vault %s: %w", vc.Name, err)
	}
	stripe := 0
	if vc.StripeSize != "" {
		if stripe, err = ParseSize(vc.StripeSize); err != nil {
			return vault.Vault{}, fmt.Errorf("vault %s: %w", vc.Name, err)
		}
	}
	return vault.Vault{Name: vc.Name, Owner: p.Home, Policy: p, StripeSize: stripe, DefaultLabel: vc.DefaultLabel, KeyGen: vc.KeyGen, Incarnation: vc.Incarnation}, nil
}

// Close closes the node.
func (n *Node) Close() error {
	n.stopJobs()
	n.closePeerClients()
	n.unlockHostingDir()
	n.keepSiteLocks(nil)
	if n.Index == nil {
		n.releaseLeases(nil)
		n.keepS3Clients(nil)
		return nil
	}
	n.closeSealCounts()
	if n.Engine != nil {
		n.Engine.Close(context.Background())
	}
	n.closeTAXII()
	n.closeAudit()
	// The engine's and the log's last writes are done: let go of the S3
	// sites, and close their clients' connections.
	n.releaseLeases(nil)
	n.keepS3Clients(nil)
	return n.Index.Close()
}

// closePeerClients closes the idle connections of the node's clients to
// its peers: a closed node keeps none open in a process that goes on.
func (n *Node) closePeerClients() {
	n.ally.mu.Lock()
	defer n.ally.mu.Unlock()
	for _, c := range n.ally.clients {
		c.CloseIdleConnections()
	}
}

// AddSite adds a site to the configuration and saves it. The site's
// directory, bucket or prefix must be its own: not inside or around another
// configured site, not inside another node's site, and empty unless it holds
// this node's marker of this very site (one removed and added again). Adding
// creates the directory (or, with create_bucket, the bucket) and writes the
// site's marker; opening a site never creates anything.
func (n *Node) AddSite(s SiteConfig) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.Keys() == nil {
		return ErrSealed
	}
	for _, o := range n.conf().Sites {
		if o.ID == s.ID {
			return fmt.Errorf("site %s already exists", s.ID)
		}
	}
	if s.Driver == "peer" {
		if err := n.hostedSiteFromCard(&s); err != nil {
			return err
		}
	}
	createBucket := false
	if s.S3 != nil {
		cfg := *s.S3
		createBucket, cfg.CreateBucket = cfg.CreateBucket, false
		s.S3 = &cfg
	}
	c := *n.Config
	c.Sites = append(append([]SiteConfig(nil), c.Sites...), s)
	if err := c.Validate(); err != nil {
		return err
	}
	if s.Driver == "dir" && !n.conf().Node.Dev {
		if err := n.checkSiteOutside(s); err != nil {
			return err
		}
	}
	ctx := context.Background()
	st, err := n.prepareSite(ctx, s, createBucket)
	if err != nil {
		return err
	}
	defer closeSite(st)
	if err := n.apply(&c); err != nil {
		n.removeMarker(ctx, s.ID, st)
		return err
	}
	return nil
}

// ErrSiteInNodeDir: a directory site of a production node lies inside the
// node directory, or holds it. The node directory's loss (a reinstall, a
// restored backup, 'rm -rf' of a broken node) would then take the site
// with it, and a site must fail apart from the node. Put the site on its
// own path; development nodes keep their sites in the node directory.
var ErrSiteInNodeDir = errors.New("site and node directory overlap")

// checkSiteOutside refuses a dir site inside the node directory or
// containing it.
func (n *Node) checkSiteOutside(s SiteConfig) error {
	nodeDir, err := realPath(n.Dir)
	if err != nil {
		return err
	}
	sitePath, err := realPath(n.path(s.Path))
	if err != nil {
		return err
	}
	// By path, and by what the paths name (a bind mount).
	if within(sitePath, nodeDir) || within(nodeDir, sitePath) || overlap(sitePath, nodeDir) != sharesNothing {
		return fmt.Errorf("site %s: %w: %s and the node directory %s; give the site a path of its own", s.ID, ErrSiteInNodeDir, sitePath, nodeDir)
	}
	return nil
}

// realPath is p made absolute, with the symbolic links of its longest
// existing ancestor resolved.
func realPath(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for dir := p; ; dir = filepath.Dir(dir) {
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(r, rest), nil
		}
		if dir == filepath.Dir(dir) {
			return p, nil
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// within reports whether path is dir or lies below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// RemoveSite removes a site. A site that still holds data is removed only
// with two custodians' approval.
func (n *Node) RemoveSite(ctx context.Context, id string) error {
	var found *SiteConfig
	for _, s := range n.conf().Sites {
		if s.ID == id {
			found = &s
		}
	}
	if found == nil {
		return fmt.Errorf("no site %s", id)
	}
	st, err := n.OpenSite(*found)
	if err != nil {
		return err
	}
	defer closeSite(st)
	// Data is shards and manifests; the node descriptor every site
	// carries does not count.
	blobs := 0
	errStop := errors.New("stop")
	for _, prefix := range []string{manifest.ShardPrefix, manifest.ManifestPrefix} {
		if err := st.List(ctx, prefix, func(site.Info) error { blobs++; return errStop }); err != nil && !errors.Is(err, errStop) {
			if !errors.Is(err, site.ErrUnavailable) {
				return fmt.Errorf("site %s: cannot check for data: %w", id, err)
			}
			// A destroyed or unreachable site may hold data: removing
			// it is then a two-person decision.
			blobs = -1
			break
		}
	}

	if blobs != 0 {
		// Refuse at once what custodians could approve but not carry out.
		for _, v := range n.Engine.Vaults() {
			var cands []placement.Candidate
			for _, s := range n.Engine.Sites() {
				if s.ID != id {
					cands = append(cands, placement.Candidate{Descriptor: s.Descriptor})
				}
			}
			if err := placement.Feasible(v.Policy, cands); err != nil {
				return fmt.Errorf("site %s cannot be removed: vault %s could no longer keep its policy: %w", id, v.Name, err)
			}
		}
		if err := n.Require(ctx, vault.Operation{Kind: "site.remove", Summary: "remove site " + id + ", which still holds shards (redundancy is lost until scrub repairs)",
			Params: map[string]string{"site": id}}); err != nil {
			return fmt.Errorf("site %s holds data (drain it first, or have two custodians approve): %w", id, err)
		}
	}
	if err := n.removeSite(id); err != nil {
		return err
	}
	if blobs == 0 {
		// An empty site leaves the node with its marker, so that the
		// place can be given to another site or node.
		if err := n.removeMarker(ctx, id, st); err != nil {
			return fmt.Errorf("site %s removed, but its marker could not be: %w", id, err)
		}
	}
	return nil
}

// AddVault adds a vault after checking its policy is feasible. It is safe
// to call while the node serves.
func (n *Node) AddVault(vc VaultConfig) error {
	if err := manifest.ValidNewVault(vc.Name); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, o := range n.conf().Vaults {
		if o.Name == vc.Name {
			return fmt.Errorf("vault %s: %w", vc.Name, ErrVaultExists)
		}
	}
	if vc.Created.IsZero() {
		vc.Created = time.Now().UTC().Truncate(time.Second)
	}
	if vc.Incarnation == "" {
		var inc [8]byte
		rand.Read(inc[:])
		vc.Incarnation = hex.EncodeToString(inc[:])
	}
	c := *n.Config
	c.Vaults = append(append([]VaultConfig(nil), c.Vaults...), vc)
	if err := c.Validate(); err != nil {
		return err
	}
	v, err := n.vault(vc)
	if err != nil {
		return err
	}
	if err := n.Engine.SetVault(v); err != nil {
		return err
	}
	if err := n.saveConfig(&c); err != nil {
		n.Engine.RemoveVault(vc.Name)
		return err
	}
	n.setConfig(&c)
	return nil
}

// ErrVaultExists is returned when a vault name is already in use.
var ErrVaultExists = errors.New("vault already exists")

// updateVault changes a vault's configuration in place.
func (n *Node) updateVault(name string, change func(*VaultConfig) error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := *n.Config
	c.Vaults = append([]VaultConfig(nil), c.Vaults...)
	for i := range c.Vaults {
		if c.Vaults[i].Name == name {
			if err := change(&c.Vaults[i]); err != nil {
				return err
			}
			if err := n.saveConfig(&c); err != nil {
				return err
			}
			n.setConfig(&c)
			return nil
		}
	}
	return fmt.Errorf("%w: %s", vault.ErrNoSuchVault, name)
}

// notEmpty explains why a vault cannot be removed: err from
// CheckPurge or Purge.
func notEmpty(name string, err error) error {
	if errors.Is(err, vault.ErrHasObjects) || errors.Is(err, vault.ErrLocked) {
		return fmt.Errorf("vault %s: %w: %w", name, ErrVaultNotEmpty, err)
	}
	return err
}

// removeVault removes a vault with its history and uploads (see
// DeleteVault), without asking custodians.
func (n *Node) removeVault(ctx context.Context, name string) error {
	if _, err := n.Engine.Vault(name); err != nil {
		return err
	}
	// Outside the node's lock, which every S3 request takes for a moment:
	// a long history takes a while to remove.
	if err := n.Engine.CheckPurge(ctx, name); err != nil {
		return notEmpty(name, err)
	}
	if err := n.Engine.Purge(ctx, name); err != nil {
		return notEmpty(name, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	found := false
	c := *n.Config
	c.Vaults = nil
	for _, v := range n.conf().Vaults {
		if v.Name == name {
			found = true
			continue
		}
		c.Vaults = append(c.Vaults, v)
	}
	if !found {
		return fmt.Errorf("%w: %s", vault.ErrNoSuchVault, name)
	}
	empty, err := n.Index.VaultEmpty(ctx, name)
	if err != nil {
		return err
	}
	if !empty {
		return fmt.Errorf("vault %s: %w", name, ErrVaultNotEmpty)
	}
	// Uploads still open would otherwise outlive the vault: abort them,
	// removing their parts' shards.
	sys := vault.AsSystem(ctx)
	for {
		page, err := n.Engine.ListUploads(sys, name, index.UploadOptions{})
		if err != nil {
			return err
		}
		for _, u := range page.Uploads {
			if err := n.Engine.AbortUpload(sys, name, u.Key, u.ID); err != nil {
				return fmt.Errorf("vault %s: abort upload %s: %w", name, u.ID, err)
			}
		}
		if !page.Truncated || len(page.Uploads) == 0 {
			break
		}
	}
	if err := n.saveConfig(&c); err != nil {
		return err
	}
	n.Engine.RemoveVault(name)
	n.setConfig(&c)
	return nil
}

// ErrVaultNotEmpty is returned when removing a vault that holds versions.
var ErrVaultNotEmpty = errors.New("vault holds objects or versions")

// apply checks a new configuration by building an engine from it, then
// saves it and switches to it.
func (n *Node) apply(c *Config) error {
	old := n.Config
	n.setConfig(c)
	if err := n.rebuildEngine(); err != nil {
		n.setConfig(old)
		n.rebuildEngine()
		return err
	}
	if err := n.saveConfig(c); err != nil {
		n.setConfig(old)
		n.rebuildEngine()
		return err
	}
	return nil
}

// Principal returns the principal named name. A name that is not
// configured, on any node (development nodes too), has no nation, no
// clearance and no role, and can neither read nor change anything: a
// credential outliving its principal (a --credentials-file line after
// 'principal rm', a hand-edited node.yaml) must not gain power by it.
func (n *Node) Principal(name string) access.Principal {
	for _, p := range n.conf().Principals {
		if p.Name == name {
			return p
		}
	}
	return access.Principal{Name: name}
}

// As returns ctx acting as the named principal.
func (n *Node) As(ctx context.Context, name string) context.Context {
	return vault.WithPrincipal(ctx, n.Principal(name))
}

// SaveConfig writes c as node.yaml, authenticated, and puts it in force
// in the node's configuration (not in an engine already built). It applies
// none of the two-person gates of 'embassy config edit' (ProposeConfig):
// the caller, holding the unsealed node, decides. For tests and tools.
func (n *Node) SaveConfig(c *Config) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.saveConfig(c); err != nil {
		return err
	}
	n.setConfig(c)
	return nil
}

// saveConfig saves a changed configuration, authenticated as the next
// generation of node.yaml, and publishes the node descriptor to the sites.
func (n *Node) saveConfig(c *Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	return n.saveConfigBytes(b)
}

// saveConfigBytes saves body, exactly, as the next generation of node.yaml
// and publishes the node descriptor.
func (n *Node) saveConfigBytes(body []byte) error {
	if n.Keys() != nil {
		var old []byte
		if nf, err := readNodeFile(n.Dir, ConfigFile); err == nil && nf != nil {
			old = nf.body
		}
		if ev, changed := configChangeEvent(context.Background(), old, body); changed {
			if err := n.record(context.Background(), ev); err != nil {
				return err
			}
		}
	}
	if err := n.saveNodeFile(ConfigFile, body); err != nil {
		return err
	}
	if n.Engine != nil {
		n.PublishDescriptor(context.Background())
	}
	return nil
}
