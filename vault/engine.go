// Package vault is the object engine: it turns puts, gets, listings and
// deletes of named objects in vaults into sealed, erasure-coded shards on
// sites and signed manifests, and keeps the index in step.
//
// A put reads the object in stripes. Each stripe is sealed with the part's
// fresh data key (package seal), coded into k data and m parity shards with
// a checksum per shard block (package erasure), and shard i of every stripe
// is streamed to the site placement chose for it (package placement). Reading,
// sealing, coding and writing overlap, and the k+m sites are written in
// parallel. An object that fits in one stripe is written "inline": each
// site's shard blocks ride in the same blob as its copy of the manifest, so
// a small object costs one blob per site.
//
// Commit order keeps invariant 4 of the design (nothing is half-visible):
// shard blobs first, then a manifest copy on every site holding a shard,
// then the index entry. A crash before the index entry leaves nothing
// visible; a later index rebuild may surface a version whose manifests were
// all written, which is then complete.
//
// A get fetches the k data shards, verifies each block's checksum, brings
// in parity shards when blocks are missing or corrupt, reconstructs,
// authenticates and decrypts. Every problem found is counted and logged.
package vault

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/seal"
	"github.com/embassy-dev/embassy/site"
)

// Keys is what the engine needs from key custody.
type Keys interface {
	manifest.Keys
	// ManifestKeyID identifies the key sealing new manifests: a manifest
	// sealed under another (an older root) is rewritten by a root rotation.
	ManifestKeyID() [8]byte
	WrapDataKey(vault string, gen int, dk seal.DataKey, aad []byte) ([]byte, error)
	UnwrapDataKey(vault string, gen int, wrapped, aad []byte) (seal.DataKey, error)
}

// Site is a configured site: its attributes and its driver.
type Site struct {
	site.Descriptor
	Store site.Site
	// Rank is the accreditation rank of Descriptor.Accredited.
	Rank int
}

// Vault is a vault's configuration.
type Vault struct {
	Name   string
	Owner  string // nation, ISO 3166-1 alpha-3
	Policy placement.Policy
	// StripeSize is the plaintext bytes per stripe; 0 means DefaultStripeSize.
	StripeSize int
	// DefaultLabel is the label (text form) of objects put without one.
	DefaultLabel string
	// KeyGen is the generation of the vault key that wraps new data keys
	// (0 means 1).
	KeyGen int
	// Incarnation, if set, is part of the vault keys' derivation, so that
	// a vault re-created under an old name gets new keys.
	Incarnation string
}

// keyName is the name a vault's keys are derived under: its name, and its
// incarnation when it has one ('/' cannot occur in a vault name, so no
// other vault's keys are derived under it).
func (v Vault) keyName() string {
	if v.Incarnation == "" {
		return v.Name
	}
	return v.Name + "/" + v.Incarnation
}

// vaultKeyName returns the key name of a configured vault.
func (e *Engine) vaultKeyName(name string) string {
	if v, err := e.Vault(name); err == nil {
		return v.keyName()
	}
	return name
}

// DefaultStripeSize is the stripe size of vaults that do not set one.
const DefaultStripeSize = 1 << 20

// MinStripeSize is the smallest stripe size a vault may have; the largest
// is manifest.MaxStripeSize.
const MinStripeSize = 4096

// Config configures an Engine.
type Config struct {
	NodeID string
	Keys   Keys
	Index  index.Index
	Sites  []Site
	Vaults []Vault
	Logger *slog.Logger
	// Labels, if set, enables confidentiality labels: objects carry a
	// label (given on put or the vault's default) bound to their content by
	// a node signature made with Signer and checked with Verifier.
	Labels   *label.Registry
	Signer   label.Signer
	Verifier label.Verifier
	// Decider, if set, enforces the access decision on every read and
	// write: requests must carry a principal (WithPrincipal).
	Decider *access.Decider
	// Approver, if set, gates dangerous operations behind the two-person
	// rule.
	Approver Approver
	// Audit is the node's audit log: every commit is recorded on it, and
	// it is the journal of the evidence records that let garbage be
	// collected. Without one the engine records nothing, and collection
	// finds no evidence (tests only).
	Audit AuditLog
	// AuditFailClosed refuses a change the audit log cannot record.
	AuditFailClosed bool
}

// Engine is the object engine. It is safe for concurrent use.
type Engine struct {
	node   string
	keysMu sync.RWMutex
	keys   Keys
	// keysGen counts SetKeys; sigs remembers signatures verified under
	// the keys of one generation.
	keysGen uint64
	sigs    *sigCache
	index   index.Index
	log     *slog.Logger
	clock   clock
	Events  Events
	labelState
	approver   Approver
	journal    *evidence.Journal
	audit      AuditLog
	failClosed bool
	gens       genState
	genFlush   sync.Mutex
	removals   struct {
		wg    sync.WaitGroup
		slots chan struct{}
	}

	// gate orders commits of new versions against configuration
	// changes (gate.go).
	gate sync.RWMutex
	// versions serializes the changes of one version's manifest
	// (versionlock.go).
	versions versionLocks

	mu       sync.RWMutex
	retired  bool // replaced by another engine: commits are refused (gate.go)
	sites    map[string]*Site
	vaults   map[string]Vault
	down     map[string]time.Time // site id -> until when it is avoided for writes
	full     map[string]time.Time // site id -> until when it is avoided for having answered full
	draining map[string]bool      // sites being emptied: avoided for writes, moved off by scrub

	// blockSum is the erasure.Checksum new parts are written with
	// (SetBlockChecksum).
	blockSum atomic.Uint32
}

// Events counts what the engine has seen go wrong and put right.
type Events struct {
	CorruptBlocks  atomic.Int64 // shard blocks that failed their checksum
	MissingBlocks  atomic.Int64 // shard blocks that could not be fetched
	Reconstructed  atomic.Int64 // stripes rebuilt from parity
	WriteRetries   atomic.Int64 // puts retried on other sites after a site failed
	ManifestErrors atomic.Int64 // manifest copies that failed to open
	BindingErrors  atomic.Int64 // label bindings that failed verification
	AtRisk         atomic.Int64 // versions below full redundancy or off policy at the last scrub
	BytesRepaired  atomic.Int64 // shard bytes written by repairs
	Reconfigured   atomic.Int64 // writes refused because the configuration changed under them (gate.go)
}

// SetBlockChecksum sets the algorithm of the shard block checksums of
// parts written from now on (erasure.Current unless set). Parts keep the
// algorithm they were written with for their life, repairs included. It
// is for tests and tools that must write what an older node wrote
// (erasure.BLAKE3); a node has no reason to call it.
func (e *Engine) SetBlockChecksum(c erasure.Checksum) error {
	if !c.Known() {
		return fmt.Errorf("vault: %w %d", erasure.ErrUnknownChecksum, uint8(c))
	}
	e.blockSum.Store(uint32(c))
	return nil
}

// writeSum is the block checksum of a part being written now.
func (e *Engine) writeSum() erasure.Checksum { return erasure.Checksum(e.blockSum.Load()) }

// New returns an engine. Vault policies are checked against the sites.
func New(cfg Config) (*Engine, error) {
	if cfg.Keys == nil || cfg.Index == nil {
		return nil, errors.New("vault: Keys and Index are required")
	}
	e := &Engine{
		node:   cfg.NodeID,
		keys:   cfg.Keys,
		sigs:   newSigCache(sigCacheSize),
		index:  cfg.Index,
		log:    cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		sites:  map[string]*Site{},
		vaults: map[string]Vault{},
		down:   map[string]time.Time{},
		full:   map[string]time.Time{},
	}
	e.removals.slots = make(chan struct{}, maxRemovals)
	e.blockSum.Store(uint32(erasure.Current))
	e.audit, e.failClosed = cfg.Audit, cfg.AuditFailClosed
	if e.audit != nil {
		e.journal = evidence.NewJournal(e.audit)
		// A log that takes entries from the index drains this one's
		// (audit.Log; a node attaches its own, audit.go in node).
		if a, ok := e.audit.(interface {
			AttachIndex(context.Context, audit.Pending) error
		}); ok {
			if p, ok := cfg.Index.(audit.Pending); ok {
				if err := a.AttachIndex(context.Background(), p); err != nil {
					return nil, err
				}
			}
		}
	}
	e.labels, e.decider, e.signer, e.verifier = cfg.Labels, cfg.Decider, cfg.Signer, cfg.Verifier
	e.approver = cfg.Approver
	if e.labels != nil && (e.signer == nil || e.verifier == nil) {
		return nil, errors.New("vault: labels need a Signer and a Verifier")
	}
	for i := range cfg.Sites {
		s := cfg.Sites[i]
		if err := s.Validate(); err != nil {
			return nil, err
		}
		if _, dup := e.sites[s.ID]; dup {
			return nil, fmt.Errorf("vault: site %s configured twice", s.ID)
		}
		e.sites[s.ID] = &s
	}
	for _, v := range cfg.Vaults {
		if err := e.SetVault(v); err != nil {
			return nil, err
		}
	}
	// Before any commit: a restored index is found behind the sites only
	// while its generations are still those it was restored with.
	e.checkGenerationsAtOpen()
	return e, nil
}

// SetVault adds or replaces a vault's configuration after checking that
// its policy can be kept on the configured sites.
func (e *Engine) SetVault(v Vault) error {
	if err := manifest.ValidVault(v.Name); err != nil {
		return err
	}
	if v.StripeSize == 0 {
		v.StripeSize = DefaultStripeSize
	}
	if v.StripeSize < MinStripeSize || v.StripeSize > manifest.MaxStripeSize {
		return fmt.Errorf("vault %s: stripe size %d must be 4 KiB to 64 MiB", v.Name, v.StripeSize)
	}
	v.Policy.Home = v.Owner
	if err := v.Policy.Validate(); err != nil {
		return fmt.Errorf("vault %s: %w", v.Name, err)
	}
	if v.DefaultLabel != "" {
		if e.labels == nil {
			return fmt.Errorf("vault %s: default label set but the node has no label policies", v.Name)
		}
		l, err := e.labels.ParseText(v.DefaultLabel)
		if err != nil {
			return fmt.Errorf("vault %s: default label: %w", v.Name, err)
		}
		v.DefaultLabel = l.String()
		if err := placement.Feasible(withLabel(v.Policy), e.candidates(nil, &l)); err != nil {
			return fmt.Errorf("vault %s: %w", v.Name, err)
		}
	}
	if err := placement.Feasible(v.Policy, e.candidates(nil, nil)); err != nil {
		return fmt.Errorf("vault %s: %w", v.Name, err)
	}
	e.mu.Lock()
	e.vaults[v.Name] = v
	e.mu.Unlock()
	return nil
}

// RemoveVault forgets a vault's configuration. It does not delete data.
func (e *Engine) RemoveVault(name string) {
	e.mu.Lock()
	delete(e.vaults, name)
	e.mu.Unlock()
}

// Vault returns a vault's configuration.
func (e *Engine) Vault(name string) (Vault, error) {
	e.mu.RLock()
	v, ok := e.vaults[name]
	e.mu.RUnlock()
	if !ok {
		return Vault{}, fmt.Errorf("%w: %s", ErrNoSuchVault, name)
	}
	return v, nil
}

// Vaults returns every vault's configuration, by name.
func (e *Engine) Vaults() []Vault {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]Vault, 0, len(e.vaults))
	for _, v := range e.vaults {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Vault) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Sites returns the configured sites, by id.
func (e *Engine) Sites() []Site {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]Site, 0, len(e.sites))
	for _, s := range e.sites {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Site) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (e *Engine) site(id string) (*Site, bool) {
	e.mu.RLock()
	s, ok := e.sites[id]
	e.mu.RUnlock()
	return s, ok
}

// SetSiteDown marks a site as unavailable for writes for d (0 clears it).
// Placement then chooses other sites that keep each vault's policy.
func (e *Engine) SetSiteDown(id string, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d <= 0 {
		delete(e.down, id)
		delete(e.full, id)
		return
	}
	e.down[id] = time.Now().Add(d)
}

// siteDownFor is how long a site that failed a write is avoided.
const siteDownFor = 30 * time.Second

// avoid keeps a site that failed a write out of placement for a while,
// remembering when it failed for want of space. A site that refused the
// write saying when its refusal may change by itself (a lease another
// process holds, about to lapse or be taken over) is avoided only that
// long: a node that has just taken an S3 site's lease over writes to it at
// once, not siteDownFor after its last refused write.
func (e *Engine) avoid(se *siteError) {
	d := siteDownFor
	var ue *site.UnavailableError
	if errors.As(se.err, &ue) && ue.Recheck > 0 && ue.Recheck < d {
		d = ue.Recheck
	}
	e.SetSiteDown(se.site, d)
	if errors.Is(se.err, site.ErrFull) {
		e.mu.Lock()
		e.full[se.site] = time.Now().Add(siteDownFor)
		e.mu.Unlock()
	}
}

// fullNow lists the sites avoided now for having answered full.
func (e *Engine) fullNow() fullSites {
	e.mu.RLock()
	defer e.mu.RUnlock()
	now := time.Now()
	var out fullSites
	for id, until := range e.full {
		if now.Before(until) {
			out.ids = append(out.ids, id)
		}
	}
	slices.Sort(out.ids)
	return out
}

// withLabel marks a policy as requiring accredited sites (see candidates).
func withLabel(p placement.Policy) placement.Policy {
	p.MinRank = 1
	return p
}

// candidates lists the sites placement may choose. With a label, a site
// accredited for it has rank 1 and any other rank 0, so that a policy
// passed through withLabel never places a shard on a site accredited below
// the data.
func (e *Engine) candidates(exclude map[string]bool, l *label.Label) []placement.Candidate {
	e.mu.RLock()
	defer e.mu.RUnlock()
	now := time.Now()
	out := make([]placement.Candidate, 0, len(e.sites))
	for _, s := range e.sites {
		down := exclude[s.ID] || now.Before(e.down[s.ID]) || e.draining[s.ID]
		rank := s.Rank
		if l != nil {
			rank = 0
			if e.accredited(s.Accredited, l) {
				rank = 1
			}
		}
		out = append(out, placement.Candidate{Descriptor: s.Descriptor, Rank: rank, Down: down})
	}
	slices.SortFunc(out, func(a, b placement.Candidate) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// clock issues strictly increasing creation times.
type clock struct {
	mu   sync.Mutex
	last int64
}

func (c *clock) now(after int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := max(time.Now().UnixNano(), c.last+1, after+1)
	c.last = t
	return t
}

// Errors returned by the engine. Callers map them to their protocol's
// codes in one place (the S3 front end maps ErrNoSuchKey to NoSuchKey).
var (
	// ErrNoSuchVault: the vault is not configured.
	ErrNoSuchVault = errors.New("no such vault")
	// ErrNoSuchKey: the key has no versions, or its latest is a delete marker.
	ErrNoSuchKey = errors.New("no such key")
	// ErrNoSuchVersion: the version id does not exist for the key.
	ErrNoSuchVersion = errors.New("no such version")
	// ErrDeleteMarker: the requested version is a delete marker.
	ErrDeleteMarker = errors.New("version is a delete marker")
	// ErrInvalidRange: the requested range lies outside the object.
	ErrInvalidRange = errors.New("invalid range")
	// ErrUnreadable: fewer than k intact shards of some stripe could be
	// read. The object may return when a site returns; report it.
	ErrUnreadable = errors.New("object unreadable: too few intact shards")
	// ErrIncomplete: the body ended before its declared size.
	ErrIncomplete = errors.New("body shorter than its declared size")
)

// ObjectInfo describes an object version.
type ObjectInfo struct {
	Vault        string
	Key          string
	VersionID    manifest.ID
	Created      time.Time
	Size         int64
	ETag         string
	ContentType  string
	Meta         map[string]string
	Digest       []byte
	DeleteMarker bool
	Label        string
	K, M         int
	Parts        int
	Lock         *manifest.Lock
	Checksums    map[string]string
	PartSizes    []int64
	// PartChecksums are the checksums kept for each part of an object a
	// multipart upload made (nil where a part has none).
	PartChecksums []map[string]string
}

func infoOf(m *manifest.Manifest) ObjectInfo {
	sizes := make([]int64, len(m.Parts))
	var sums []map[string]string
	for i, p := range m.Parts {
		sizes[i] = p.Size
		if p.Checksums != nil {
			if sums == nil {
				sums = make([]map[string]string, len(m.Parts))
			}
			sums[i] = p.Checksums
		}
	}
	return ObjectInfo{PartSizes: sizes, PartChecksums: sums,
		Vault: m.Vault, Key: m.Key, VersionID: m.Version, Created: time.Unix(0, m.Created).UTC(),
		Size: m.Size, ETag: m.ETag, ContentType: m.ContentType, Meta: m.Meta, Digest: m.Digest,
		DeleteMarker: m.DeleteMarker, Label: m.Label, K: m.K, M: m.M, Parts: len(m.Parts), Lock: m.Lock, Checksums: m.Checksums,
	}
}

// objectID derives the identity bound into every stripe of an object.
func objectID(vault, key string) [16]byte {
	return digest16("embassy object id\x00" + vault + "\x00" + key)
}

// manifestSites lists the distinct sites of a manifest's parts and copies,
// in order of first appearance: the sites holding a copy of it.
func manifestSites(m *manifest.Manifest) []string {
	var all []string
	for _, p := range m.Parts {
		all = append(all, p.Sites...)
	}
	return distinct(append(all, m.Copies...))
}

// distinct returns sites without repeats, in order of first appearance.
func distinct(sites []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range sites {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// k returns the keys in force.
func (e *Engine) k() Keys {
	e.keysMu.RLock()
	defer e.keysMu.RUnlock()
	return e.keys
}

// readKeys is k() for reading indexed envelopes: a signature verified once
// under the keys in force is not verified again (sigcache.go).
func (e *Engine) readKeys() Keys {
	e.keysMu.RLock()
	defer e.keysMu.RUnlock()
	return cachedKeys{Keys: e.keys, c: e.sigs, gen: e.keysGen}
}

// sealKeys is k() for sealing and signing envelopes: the signatures it
// makes are remembered as verified (sigCache.remember), so that the first
// read of a version just written does not verify them again.
func (e *Engine) sealKeys() Keys { return e.readKeys() }

// SetKeys switches the engine to other keys (a root key rotation): new
// writes are sealed, signed and wrapped with them at once, and label
// bindings signed and checked with signer and verifier.
func (e *Engine) SetKeys(k Keys, signer label.Signer, verifier label.Verifier) {
	e.keysMu.Lock()
	e.keys, e.signer, e.verifier = k, signer, verifier
	e.keysGen++
	e.keysMu.Unlock()
}

func (e *Engine) bindingKeys() (label.Signer, label.Verifier) {
	e.keysMu.RLock()
	defer e.keysMu.RUnlock()
	return e.signer, e.verifier
}
