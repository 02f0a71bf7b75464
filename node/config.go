// Package node turns a node directory and its configuration into a running
// embassy node: it reads and validates the YAML configuration, opens the
// keys, the index and every site driver, builds the object engine, and saves
// configuration changes atomically. It is the one package that wires all the
// others together; only cmd/embassy imports it.
package node

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/catalog"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/s3site"
	"github.com/embassy-dev/embassy/taxii"
	"github.com/embassy-dev/embassy/vault"
)

// ConfigFile is the name of the configuration file in a node directory.
const ConfigFile = "node.yaml"

// Config is a node's configuration: one YAML file per node.
type Config struct {
	Node  NodeConfig  `yaml:"node" json:"node"`
	Index IndexConfig `yaml:"index,omitempty" json:"index,omitempty"`
	Keys  KeysConfig  `yaml:"keys,omitempty" json:"keys,omitempty"`
	// KeyUse bounds the encryptions under each key that encrypts with
	// random GCM nonces (the manifest key, the vault keys).
	KeyUse KeyUseConfig `yaml:"key_use,omitempty" json:"key_use,omitzero"`
	Log    LogConfig    `yaml:"log,omitempty" json:"log,omitempty"`
	S3     S3Config     `yaml:"s3,omitempty" json:"s3,omitempty"`
	// VaultDefaults is the policy of vaults created without one (S3
	// CreateBucket without x-embassy-* headers).
	VaultDefaults VaultDefaults `yaml:"vault_defaults,omitempty" json:"vault_defaults,omitempty"`
	// Policies are national classification policies, in addition to
	// NATO's, which is built in (see docs/labels.md).
	Policies []label.Policy `yaml:"policies,omitempty" json:"policies,omitempty"`
	// Principals are the people and services that use the node: nation,
	// clearances, categories and roles. S3 credentials name them.
	Principals []access.Principal `yaml:"principals,omitempty" json:"principals,omitempty"`
	// Metrics says how Prometheus reaches /_embassy/metrics.
	Metrics MetricsConfig `yaml:"metrics,omitempty" json:"metrics,omitempty"`
	// Scrub configures the background scrub of a serving node.
	Scrub ScrubConfig `yaml:"scrub,omitempty" json:"scrub,omitempty"`
	// TwoPerson tunes the two-person rule for dangerous operations.
	TwoPerson TwoPersonConfig `yaml:"two_person,omitempty" json:"two_person,omitempty"`
	// Audit configures the audit log.
	Audit  AuditConfig   `yaml:"audit,omitempty" json:"audit,omitempty"`
	Sites  []SiteConfig  `yaml:"sites,omitempty" json:"sites,omitempty"`
	Vaults []VaultConfig `yaml:"vaults,omitempty" json:"vaults,omitempty"`
	// TAXII configures the threat-intelligence collections and their
	// sync jobs (see docs/threat-intel.md).
	TAXII taxii.Config `yaml:"taxii,omitempty" json:"taxii,omitempty"`
	// Catalog is the node's data catalogue: its title, description and
	// publisher, and the dataset descriptions (docs/alliance.md).
	Catalog catalog.Config `yaml:"catalog,omitempty" json:"catalog,omitzero"`
	// Alliance is the node's federation: its peer listener, the allied
	// nodes it trusts and the shares it made (docs/alliance.md).
	Alliance AllianceConfig `yaml:"alliance,omitempty" json:"alliance,omitzero"`
}

// S3Config configures the S3 front end.
type S3Config struct {
	// Address to listen on (default 127.0.0.1:9000).
	Address string `yaml:"address,omitempty" json:"address,omitempty"`
	// Region reported and accepted in signatures (default us-east-1).
	Region string `yaml:"region,omitempty" json:"region,omitempty"`
	// Domain enables virtual-host-style requests (bucket.domain).
	Domain string `yaml:"domain,omitempty" json:"domain,omitempty"`
	// TLSCert and TLSKey enable TLS. A listener on a non-loopback address
	// needs them unless AllowInsecure is set.
	TLSCert       string `yaml:"tls_cert,omitempty" json:"tls_cert,omitempty"`
	TLSKey        string `yaml:"tls_key,omitempty" json:"tls_key,omitempty"`
	AllowInsecure bool   `yaml:"allow_insecure,omitempty" json:"allow_insecure,omitempty"`
	// Credentials map access keys to principals.
	Credentials []CredentialConfig `yaml:"credentials,omitempty" json:"credentials,omitempty"`
	// ListScan bounds the index records one listing request examines
	// (default 10000): a listing that meets many objects the caller may
	// not read returns a short, possibly empty, truncated page instead of
	// scanning without end.
	ListScan int `yaml:"list_scan,omitempty" json:"list_scan,omitempty"`
}

// MetricsConfig says how /_embassy/metrics is reached. Without either
// setting the metrics are not served.
type MetricsConfig struct {
	// TokenFile holds the bearer token (at least 16 characters) that
	// GET /_embassy/metrics on the S3 listener needs, relative to the node
	// directory. Prometheus sends it with bearer_token_file.
	TokenFile string `yaml:"token_file,omitempty" json:"token_file,omitempty"`
	// Address, if set, is a listener of its own, on a loopback address
	// only, serving /metrics without a token.
	Address string `yaml:"address,omitempty" json:"address,omitempty"`
}

// CredentialConfig is one S3 access key. The file holding it must be
// readable only by the node's operators.
type CredentialConfig struct {
	Principal string `yaml:"principal" json:"principal"`
	AccessKey string `yaml:"access_key" json:"access_key"`
	SecretKey string `yaml:"secret_key" json:"secret_key"`
}

// VaultDefaults is the default placement policy for new vaults.
type VaultDefaults struct {
	Erasure     string `yaml:"erasure,omitempty" json:"erasure,omitempty"`
	Survive     string `yaml:"survive,omitempty" json:"survive,omitempty"`
	OutsideHome bool   `yaml:"outside_home,omitempty" json:"outside_home,omitempty"`
}

// NodeConfig identifies the node.
type NodeConfig struct {
	// ID is a random identifier chosen at init.
	ID string `yaml:"id" json:"id"`
	// Nation owns the node and, by default, its vaults (ISO 3166-1 alpha-3).
	Nation string `yaml:"nation" json:"nation"`
	// Dev marks a development node: its root key is a local file and
	// principals not configured act as fully cleared nationals. Never set
	// it on a node holding real data.
	Dev bool `yaml:"dev,omitempty" json:"dev,omitempty"`
}

// IndexConfig chooses the metadata index.
type IndexConfig struct {
	// Driver is "bolt" (embedded, the default).
	Driver string `yaml:"driver,omitempty" json:"driver,omitempty"`
	// Path is the bolt file, relative to the node directory (default index.db).
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
}

// KeysConfig says where the root key comes from.
type KeysConfig struct {
	// RootKeyFile is a local root key file, relative to the node directory
	// (default root.key). It holds the whole root key in one place.
	RootKeyFile string `yaml:"root_key_file,omitempty" json:"root_key_file,omitempty"`
}

// KeyUseConfig bounds how many messages each key that seals with random
// 96-bit GCM nonces (the manifest key, each vault key generation) may
// encrypt: NIST SP 800-38D allows 2^32. It takes effect at the node's
// next start.
type KeyUseConfig struct {
	// Limit is the count past which a key encrypts nothing more, until
	// it is rotated (default and maximum 2^32 = 4294967296).
	Limit uint64 `yaml:"limit,omitempty" json:"limit,omitempty"`
	// Warn lists the counts at which a warning is logged (default 2^30
	// and 2^31: a quarter and half of the default limit).
	Warn []uint64 `yaml:"warn,omitempty" json:"warn,omitempty"`
	// Block is how many encryptions are counted ahead in one durable
	// write of the counts (default 65536): a restart can over-count a
	// key by at most this much, never under-count it.
	Block uint64 `yaml:"block,omitempty" json:"block,omitempty"`
}

// limits returns the counter's limits.
func (k KeyUseConfig) limits() custody.SealLimits {
	return custody.SealLimits{Limit: k.Limit, Warn: k.Warn, Block: k.Block}
}

func (k KeyUseConfig) validate() error {
	if k.Limit > custody.DefaultSealLimit {
		return fmt.Errorf("key_use.limit: %d is above NIST SP 800-38D's 2^32 (%d) for random 96-bit GCM nonces", k.Limit, uint64(custody.DefaultSealLimit))
	}
	limit := cmp.Or(k.Limit, custody.DefaultSealLimit)
	for _, w := range k.Warn {
		if w == 0 || w >= limit {
			return fmt.Errorf("key_use.warn: %d is not between 1 and the limit %d", w, limit)
		}
	}
	if len(k.Warn) > 16 {
		return fmt.Errorf("key_use.warn: %d thresholds (at most 16)", len(k.Warn))
	}
	return nil
}

// LogConfig sets logging.
type LogConfig struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level,omitempty" json:"level,omitempty"`
	// Format is text (default) or json.
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
}

// SiteConfig is one site: its attributes and its driver settings.
type SiteConfig struct {
	site.Descriptor `yaml:",inline"`
	// Driver is "dir" (a local directory), "s3" (a bucket) or "peer" (a
	// site an allied node hosts for this one).
	Driver string `yaml:"driver" json:"driver"`
	// Path is the dir driver's directory (absolute, or relative to the
	// node directory).
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// S3 configures the s3 driver: a bucket (and prefix) at any
	// S3-compatible provider, another embassy node included.
	S3 *s3site.Config `yaml:"s3,omitempty" json:"s3,omitempty"`
	// Peer is the peer driver's host: the allied node's id. The site's
	// jurisdiction, provider, control and accreditation are what that
	// node's card states.
	Peer string `yaml:"peer,omitempty" json:"peer,omitempty"`
	// Quota is the room the host agreed to give this node's hosted site
	// (e.g. "10TiB"); the host enforces its own.
	Quota string `yaml:"quota,omitempty" json:"quota,omitempty"`
	// Draining marks a site being emptied ('embassy site drain'): new
	// writes avoid it and scrub moves its shards to other sites.
	Draining bool `yaml:"draining,omitempty" json:"draining,omitempty"`
}

// AuditConfig configures the node's audit log (docs/audit.md).
type AuditConfig struct {
	// FailClosed refuses a change the audit log cannot record, as audit
	// devices do in Vault (default true; false on a dev node).
	FailClosed *bool `yaml:"fail_closed,omitempty" json:"fail_closed,omitempty"`
	// Witnesses cosign this node's checkpoints (C2SP tlog-witness) before
	// they are published.
	Witnesses []WitnessConfig `yaml:"witnesses,omitempty" json:"witnesses,omitempty"`
	// Quorum is how many of the witnesses must cosign (default: all).
	Quorum int `yaml:"quorum,omitempty" json:"quorum,omitempty"`
	// WitnessFailOpen publishes a checkpoint the quorum did not cosign in
	// time, so that writes go on (default true); false holds it back, and
	// deletes, which wait for a checkpoint on the sites, fail.
	WitnessFailOpen *bool `yaml:"witness_fail_open,omitempty" json:"witness_fail_open,omitempty"`
	// Witnessed are other nodes' logs this node witnesses.
	Witnessed []WitnessedLogConfig `yaml:"witnessed,omitempty" json:"witnessed,omitempty"`
	// CopyInterval is the time between copies of the log to the sites
	// that nothing urges (default 1s, from MinCopyInterval to
	// MaxCopyInterval): each round writes a few small durable files on
	// every site, and a longer interval writes them less often while the
	// sites hold the newest entries later.
	CopyInterval *copyIntervalYAML `yaml:"copy_interval,omitempty" json:"copy_interval,omitempty"`
}

// The bounds of audit.copy_interval: the log publishes a checkpoint at
// most every 200ms (a copy more often finds nothing new), and a node lost
// loses from the sites' copies what it appended within the interval.
const (
	MinCopyInterval = 200 * time.Millisecond
	MaxCopyInterval = time.Minute
)

// copyIntervalYAML is audit.copy_interval, written as "5s".
type copyIntervalYAML time.Duration

func (d copyIntervalYAML) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d *copyIntervalYAML) UnmarshalYAML(value *yaml.Node) error {
	v, err := time.ParseDuration(value.Value)
	if err != nil {
		return fmt.Errorf("line %d: audit.copy_interval %q is not a duration: want one from %s to %s, such as 5s", value.Line, value.Value, MinCopyInterval, MaxCopyInterval)
	}
	*d = copyIntervalYAML(v)
	return nil
}

// copyInterval reports the effective audit.copy_interval.
func (c *Config) copyInterval() time.Duration {
	if c.Audit.CopyInterval == nil {
		return audit.DefaultCopyInterval
	}
	return time.Duration(*c.Audit.CopyInterval)
}

// WitnessConfig is a witness of this node's log.
type WitnessConfig struct {
	// Key is the witness's C2SP verifier key (its cosignature/v1 vkey:
	// 'embassy audit key' on an embassy node prints it as witness).
	Key string `yaml:"key" json:"key"`
	// URL is the witness's tlog-witness URL prefix (add-checkpoint is
	// below it): an embassy node's is https://HOST:PORT/_embassy/v1/witness.
	URL string `yaml:"url" json:"url"`
}

// WitnessedLogConfig is another node's log this node witnesses.
type WitnessedLogConfig struct {
	// Origin is the log's origin (embassy/NODE-ID).
	Origin string `yaml:"origin" json:"origin"`
	// Key is the C2SP verifier key of its checkpoints ('embassy audit key'
	// on that node prints it as ed25519).
	Key string `yaml:"key" json:"key"`
}

// witnessFailOpen reports the effective witness_fail_open setting.
func (c *Config) witnessFailOpen() bool {
	return c.Audit.WitnessFailOpen == nil || *c.Audit.WitnessFailOpen
}

// witnessQuorum reports the effective quorum.
func (c *Config) witnessQuorum() int {
	if c.Audit.Quorum > 0 {
		return c.Audit.Quorum
	}
	return len(c.Audit.Witnesses)
}

// validateAudit checks the audit settings.
func (c *Config) validateAudit() error {
	seen := map[string]bool{}
	for i, w := range c.Audit.Witnesses {
		v, err := fnote.NewVerifier(w.Key)
		if err != nil {
			return fmt.Errorf("audit.witnesses[%d].key: %v", i, err)
		}
		if seen[v.Name()] {
			return fmt.Errorf("audit.witnesses[%d]: witness %q named twice", i, v.Name())
		}
		seen[v.Name()] = true
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("audit.witnesses[%d].url %q: want an http or https URL", i, w.URL)
		}
	}
	if iv := c.Audit.CopyInterval; iv != nil {
		switch d := time.Duration(*iv); {
		case d < MinCopyInterval:
			return fmt.Errorf("audit.copy_interval: %s is shorter than %s, the least (the log publishes a checkpoint at most every %s: a copy more often finds nothing new)", d, MinCopyInterval, MinCopyInterval)
		case d > MaxCopyInterval:
			return fmt.Errorf("audit.copy_interval: %s is longer than %s, the most (the sites would hold the log's newest entries that much later, and a node lost meanwhile takes them with it)", d, MaxCopyInterval)
		}
	}
	if c.Audit.Quorum < 0 || c.Audit.Quorum > len(c.Audit.Witnesses) {
		return fmt.Errorf("audit.quorum %d: want 0 (all) to %d (the witnesses listed)", c.Audit.Quorum, len(c.Audit.Witnesses))
	}
	seen = map[string]bool{}
	for i, l := range c.Audit.Witnessed {
		v, err := note.NewVerifier(l.Key)
		if err != nil {
			return fmt.Errorf("audit.witnessed[%d].key: %v", i, err)
		}
		if v.Name() != l.Origin || l.Origin == "" {
			return fmt.Errorf("audit.witnessed[%d]: the key is named %q, the origin is %q", i, v.Name(), l.Origin)
		}
		if seen[l.Origin] {
			return fmt.Errorf("audit.witnessed[%d]: log %q named twice", i, l.Origin)
		}
		seen[l.Origin] = true
	}
	return nil
}

// failClosed reports the effective fail_closed setting of c.
func (c *Config) failClosed() bool {
	if c.Audit.FailClosed != nil {
		return *c.Audit.FailClosed
	}
	return !c.Node.Dev
}

// VaultConfig is one vault and its placement policy.
type VaultConfig struct {
	Name string `yaml:"name" json:"name"`
	// Owner is the owning nation; default the node's nation.
	Owner string `yaml:"owner,omitempty" json:"owner,omitempty"`
	// Erasure is "k+m", e.g. "4+2".
	Erasure string `yaml:"erasure" json:"erasure"`
	// Survive names the losses every object survives, e.g.
	// "jurisdictions=1,providers=1". Default: sites=M.
	Survive string `yaml:"survive,omitempty" json:"survive,omitempty"`
	// OutsideHome: the data survives the loss of the owner's whole
	// jurisdiction (at least k shards sit abroad).
	OutsideHome bool `yaml:"outside_home,omitempty" json:"outside_home,omitempty"`
	// Jurisdictions, if set, are the only places shards may sit.
	Jurisdictions []string `yaml:"jurisdictions,omitempty,flow" json:"jurisdictions"`
	// StripeSize is the plaintext stripe size, e.g. "1MiB" (default).
	StripeSize string `yaml:"stripe_size,omitempty" json:"stripe_size,omitempty"`
	// DefaultLabel is the label (text form, e.g. "NATO RESTRICTED//REL TO
	// EST, LUX") of objects put without one.
	DefaultLabel string `yaml:"default_label,omitempty" json:"default_label,omitempty"`
	// KeyGen is the current generation of the vault's key (rotation
	// increments it).
	KeyGen int `yaml:"key_gen,omitempty" json:"key_gen,omitempty"`
	// Incarnation distinguishes this vault from any earlier vault of the
	// same name: it is part of the derivation of the vault's keys, so a
	// vault deleted and created again under its old name does not get its
	// old keys back. Chosen at random when the vault is created; vaults made
	// before it existed have none (their keys are derived from the name).
	Incarnation string `yaml:"incarnation,omitempty" json:"incarnation,omitempty"`
	// Created is when the vault was created.
	Created time.Time `yaml:"created,omitempty" json:"created,omitempty"`
	// ObjectLock enables S3 object lock, with an optional default
	// retention for new versions.
	ObjectLock *ObjectLockConfig `yaml:"object_lock,omitempty" json:"object_lock,omitempty"`
}

// ObjectLockConfig is a vault's object lock setting.
type ObjectLockConfig struct {
	// Mode of default retention: GOVERNANCE or COMPLIANCE; empty for none.
	Mode  string `yaml:"mode,omitempty" json:"mode,omitempty"`
	Days  int    `yaml:"days,omitempty" json:"days,omitempty"`
	Years int    `yaml:"years,omitempty" json:"years,omitempty"`
}

// Policy returns the vault's placement policy.
func (v VaultConfig) Policy(nation string) (placement.Policy, error) {
	k, m, err := placement.ParseErasure(v.Erasure)
	if err != nil {
		return placement.Policy{}, err
	}
	var loss placement.Loss
	if v.Survive == "" {
		loss = placement.Loss{Sites: m}
	} else if loss, err = placement.ParseLoss(v.Survive); err != nil {
		return placement.Policy{}, err
	}
	owner := v.Owner
	if owner == "" {
		owner = nation
	}
	return placement.Policy{K: k, M: m, Survive: loss, OutsideHome: v.OutsideHome, Home: owner, Allowed: v.Jurisdictions}, nil
}

// ParseSize parses a byte size such as "1MiB", "512KiB", "4096".
func ParseSize(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	for _, u := range []struct {
		suffix string
		m      int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.m
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > (1<<31)/mult {
		return 0, fmt.Errorf("size %q: want a number with an optional KiB, MiB or GiB suffix", s)
	}
	return n * mult, nil
}

// Stripe sizes a vault may have (vault.New refuses others).
const (
	MinStripeSize = vault.MinStripeSize
	MaxStripeSize = manifest.MaxStripeSize
)

// validStripeSize checks a stripe_size: a size from 4KiB to 64MiB, or 0 for
// the default.
func validStripeSize(s string) error {
	n, err := ParseSize(s)
	if err != nil {
		return err
	}
	if n != 0 && (n < MinStripeSize || n > MaxStripeSize) {
		return fmt.Errorf("size %q: must be from 4KiB to 64MiB (or 0 for the default 1MiB)", s)
	}
	return nil
}

// Validate checks the configuration; errors name the offending field.
func (c *Config) Validate() error {
	if c.Node.ID == "" {
		return errors.New("node.id: must be set")
	}
	if err := site.ValidCountry(c.Node.Nation); err != nil {
		return fmt.Errorf("node.nation: %w", err)
	}
	switch c.Index.Driver {
	case "", "bolt":
	default:
		return fmt.Errorf("index.driver: %q is not supported (want bolt)", c.Index.Driver)
	}
	if err := c.validateAudit(); err != nil {
		return err
	}
	if err := c.KeyUse.validate(); err != nil {
		return err
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return fmt.Errorf("log.format: %q is not text or json", c.Log.Format)
	}
	ids := map[string]bool{}
	for i, s := range c.Sites {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("sites[%d]: %w", i, err)
		}
		if ids[s.ID] {
			return fmt.Errorf("sites[%d].id: %s is configured twice", i, s.ID)
		}
		ids[s.ID] = true
		switch s.Driver {
		case "dir":
			if s.Path == "" {
				return fmt.Errorf("sites[%d].path: the dir driver needs a path", i)
			}
		case "s3":
			if s.S3 == nil {
				return fmt.Errorf("sites[%d].s3: the s3 driver needs its settings (endpoint, bucket, credentials)", i)
			}
			if err := s.S3.Validate(); err != nil {
				return fmt.Errorf("sites[%d].s3: %w", i, err)
			}
		case "peer":
			if err := c.checkHostedSite(i, s); err != nil {
				return err
			}
		default:
			return fmt.Errorf("sites[%d].driver: %q is not supported (want dir, s3 or peer)", i, s.Driver)
		}
	}
	reg, err := label.NewRegistry(c.Policies...)
	if err != nil {
		return fmt.Errorf("policies: %w", err)
	}
	pnames := map[string]bool{}
	for i, p := range c.Principals {
		if err := p.Validate(reg); err != nil {
			return fmt.Errorf("principals[%d]: %w", i, err)
		}
		if pnames[p.Name] {
			return fmt.Errorf("principals[%d].name: %s is configured twice", i, p.Name)
		}
		pnames[p.Name] = true
	}
	for i, s := range c.Sites {
		if s.Accredited != "" {
			if _, err := reg.ParseText(s.Accredited); err != nil {
				return fmt.Errorf("sites[%d].accredited: %w", i, err)
			}
		}
	}
	keys := map[string]bool{}
	for i, cr := range c.S3.Credentials {
		if cr.Principal == "" {
			return fmt.Errorf("s3.credentials[%d].principal: must be set", i)
		}
		if err := s3.ValidAccessKey(cr.AccessKey); err != nil {
			return fmt.Errorf("s3.credentials[%d].access_key: %w", i, err)
		}
		if err := s3.ValidSecretKey(cr.SecretKey); err != nil {
			return fmt.Errorf("s3.credentials[%d].secret_key: %w", i, err)
		}
		if keys[cr.AccessKey] {
			return fmt.Errorf("s3.credentials[%d].access_key: %s is configured twice", i, cr.AccessKey)
		}
		keys[cr.AccessKey] = true
	}
	if a := c.Metrics.Address; a != "" {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("metrics.address: %q: %w", a, err)
		}
		if !isLoopback(host) {
			return fmt.Errorf("metrics.address: %s is not a loopback address; metrics without a token are served on loopback only (use metrics.token_file for the S3 listener)", a)
		}
	}
	if c.S3.ListScan < 0 {
		return fmt.Errorf("s3.list_scan: %d is negative", c.S3.ListScan)
	}
	if c.Scrub.Grace != nil && *c.Scrub.Grace <= 0 {
		return fmt.Errorf("scrub.grace: must be positive, got %s", time.Duration(*c.Scrub.Grace))
	}
	if c.Scrub.Rate != "" {
		if _, err := ParseSize(c.Scrub.Rate); err != nil {
			return fmt.Errorf("scrub.rate: %w", err)
		}
	}
	if iv := c.Scrub.Interval; iv != nil && *iv < 0 {
		return fmt.Errorf("scrub.interval: %s is negative (0s turns the background scrub off)", time.Duration(*iv))
	}
	if err := c.TwoPerson.validate(); err != nil {
		return fmt.Errorf("two_person.%w", err)
	}
	if (c.S3.TLSCert == "") != (c.S3.TLSKey == "") {
		return errors.New("s3.tls_cert, s3.tls_key: set both or neither")
	}
	if d := c.VaultDefaults; d.Erasure != "" || d.Survive != "" {
		if _, err := (VaultConfig{Erasure: cmpOr(d.Erasure, "4+2"), Survive: d.Survive}).Policy(c.Node.Nation); err != nil {
			return fmt.Errorf("vault_defaults: %w", err)
		}
	}
	names := map[string]bool{}
	for i, v := range c.Vaults {
		if err := manifest.ValidVault(v.Name); err != nil {
			return fmt.Errorf("vaults[%d].name: %w", i, err)
		}
		if names[v.Name] {
			return fmt.Errorf("vaults[%d].name: %s is configured twice", i, v.Name)
		}
		names[v.Name] = true
		if v.Owner != "" {
			if err := site.ValidCountry(v.Owner); err != nil {
				return fmt.Errorf("vaults[%d].owner: %w", i, err)
			}
		}
		if _, err := v.Policy(c.Node.Nation); err != nil {
			return fmt.Errorf("vaults[%d] (%s): %w", i, v.Name, err)
		}
		for j, jur := range v.Jurisdictions {
			if err := site.ValidCountry(jur); err != nil {
				return fmt.Errorf("vaults[%d].jurisdictions[%d]: %w", i, j, err)
			}
		}
		if v.DefaultLabel != "" {
			if _, err := reg.ParseText(v.DefaultLabel); err != nil {
				return fmt.Errorf("vaults[%d].default_label: %w", i, err)
			}
		}
		if v.StripeSize != "" {
			if err := validStripeSize(v.StripeSize); err != nil {
				return fmt.Errorf("vaults[%d].stripe_size: %w", i, err)
			}
		}
		if l := v.ObjectLock; l != nil && l.Mode != "" {
			if l.Mode != "GOVERNANCE" && l.Mode != "COMPLIANCE" {
				return fmt.Errorf("vaults[%d].object_lock.mode: %q is not GOVERNANCE or COMPLIANCE", i, l.Mode)
			}
			if (l.Days > 0) == (l.Years > 0) || l.Days < 0 || l.Years < 0 {
				return fmt.Errorf("vaults[%d].object_lock: default retention needs exactly one positive days or years", i)
			}
		}
	}
	if err := c.TAXII.Validate(reg, func(v string) bool { return names[v] }); err != nil {
		return fmt.Errorf("taxii.%w", err)
	}
	if err := c.Catalog.Validate(reg); err != nil {
		return fmt.Errorf("catalog.%w", err)
	}
	if err := c.Alliance.validate(c.Node.ID); err != nil {
		return fmt.Errorf("alliance.%w", err)
	}
	return nil
}

// ParseConfig decodes and validates a configuration. Unknown fields are
// errors, so a misspelt setting is never silently ignored.
func ParseConfig(b []byte) (*Config, error) {
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("config: %d bytes is larger than the 1 MiB limit", len(b))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config: the file is empty (or only comments): it needs at least node.id and node.nation, see docs/configuration.md")
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}

// LoadConfig reads dir/node.yaml.
func LoadConfig(dir string) (*Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	c, err := ParseConfigLines(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ConfigFile), err)
	}
	return c, nil
}

const configHeader = `# embassy node configuration. See docs/configuration.md.
# Change it with 'embassy config edit' (or 'embassy site add', 'embassy vault
# create' and friends): the last line authenticates the file, and a node whose
# node.yaml was edited by hand refuses to start until it is restored or
# re-authenticated.
`

// Marshal encodes the configuration as YAML.
func (c *Config) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(configHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	enc.Close()
	return b.Bytes(), nil
}

func cmpOr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// ScrubConfig configures the background scrub.
type ScrubConfig struct {
	// Interval between scrubs of everything (default 24h; "0s" disables).
	Interval *durationYAML `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Rate limits the bytes read per second, e.g. "50MiB" (default 50MiB).
	Rate string `yaml:"rate,omitempty" json:"rate,omitempty"`
	// ReportOnly finds damage without repairing it.
	ReportOnly bool `yaml:"report_only,omitempty" json:"report_only,omitempty"`
	// Deep has every background scrub also authenticate every stripe and
	// check every parity block against the data coded again, in the same
	// read, which finds blocks replaced along with valid checksums
	// (housekeeping.ScrubOptions.Deep). On unless set false (DeepOr): a
	// site's provider can replace a block and its keyless checksum, and
	// the background scrub's rate bounds the CPU it adds.
	Deep *bool `yaml:"deep,omitempty" json:"deep,omitempty"`
	// Grace is how old a blob must be before garbage collection judges
	// it by the absence of a write in flight (default 1h): a write older
	// than this whose intent left no manifest anywhere is abandoned, and
	// a version on the sites the index lacks may be adopted.
	Grace *durationYAML `yaml:"grace,omitempty" json:"grace,omitempty"`
}

// DeepOr reports whether background scrubs are deep: true unless
// scrub.deep is set false.
func (s ScrubConfig) DeepOr() bool { return s.Deep == nil || *s.Deep }

// GraceOr returns the configured garbage-collection grace period, or 0
// (the default).
func (s ScrubConfig) GraceOr() time.Duration {
	if s.Grace == nil {
		return 0
	}
	return time.Duration(*s.Grace)
}
