package taxii

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
)

// Config is the taxii section of node.yaml.
type Config struct {
	// Collections are the TAXII collections of the node's API root.
	Collections []CollectionConfig `yaml:"collections,omitempty" json:"collections"`
	// StatusRetention is how long a status resource is kept after its
	// request (default 168h, a week).
	StatusRetention string `yaml:"status_retention,omitempty" json:"status_retention,omitempty"`
	// MaxContentLength is the largest request body accepted, in bytes
	// (default 16 MiB; at most 256 MiB).
	MaxContentLength int64 `yaml:"max_content_length,omitempty" json:"max_content_length,omitempty"`
	// Sync are the sync jobs with other TAXII servers.
	Sync []SyncConfig `yaml:"sync,omitempty" json:"sync"`
}

// CollectionConfig is one collection.
type CollectionConfig struct {
	// ID is the collection's TAXII id, a UUID.
	ID string `yaml:"id" json:"id"`
	// Alias is a short name, usable in URLs in place of the id.
	Alias       string `yaml:"alias,omitempty" json:"alias,omitempty"`
	Title       string `yaml:"title,omitempty" json:"title,omitempty"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Vault holds the collection's objects, each a versioned object under
	// taxii2/<id>/ in it.
	Vault string `yaml:"vault" json:"vault"`
	// Classification is the label every object starts from, without
	// releasability (default NATO UNCLASSIFIED).
	Classification string `yaml:"classification,omitempty" json:"classification,omitempty"`
	// Community are the nations TLP:GREEN reaches; Amber those TLP:AMBER
	// reaches (GREEN reaches them too).
	Community []string `yaml:"community,omitempty,flow" json:"community"`
	Amber     []string `yaml:"amber,omitempty,flow" json:"amber"`
	// DefaultTLP is the level of objects without a TLP marking (default
	// amber+strict).
	DefaultTLP string `yaml:"default_tlp,omitempty" json:"default_tlp,omitempty"`
	// Statements are the marking definitions besides TLP (statement
	// markings) the collection accepts.
	Statements []string `yaml:"statements,omitempty" json:"statements"`
	// AllowUnknownMarkings accepts any other marking definition.
	AllowUnknownMarkings bool `yaml:"allow_unknown_markings,omitempty" json:"allow_unknown_markings,omitempty"`
}

// Defaults.
const (
	DefaultStatusRetention  = 7 * 24 * time.Hour
	DefaultMaxContentLength = 16 << 20
	maxMaxContentLength     = 256 << 20
	DefaultClassification   = "NATO UNCLASSIFIED"
)

// KeyPrefix is where a collection's objects live in its vault.
func KeyPrefix(collectionID string) string { return "taxii2/" + collectionID + "/" }

// Retention returns the status retention.
func (c *Config) Retention() time.Duration {
	if d, err := time.ParseDuration(c.StatusRetention); err == nil && d > 0 {
		return d
	}
	return DefaultStatusRetention
}

// ContentLimit returns the largest request body accepted.
func (c *Config) ContentLimit() int64 {
	if c.MaxContentLength > 0 {
		return c.MaxContentLength
	}
	return DefaultMaxContentLength
}

// Validate checks the section against the node's label registry;
// vaultExists says whether a vault is configured. Errors name the field.
func (c *Config) Validate(reg *label.Registry, vaultExists func(string) bool) error {
	if c.StatusRetention != "" {
		if d, err := time.ParseDuration(c.StatusRetention); err != nil || d <= 0 {
			return fmt.Errorf("status_retention: %q is not a positive duration such as 168h", c.StatusRetention)
		}
	}
	if c.MaxContentLength < 0 || c.MaxContentLength > maxMaxContentLength {
		return fmt.Errorf("max_content_length: %d is not from 0 (the default) to %d", c.MaxContentLength, maxMaxContentLength)
	}
	ids := map[string]bool{}
	for i, col := range c.Collections {
		if err := col.validate(reg, vaultExists); err != nil {
			return fmt.Errorf("collections[%d]: %w", i, err)
		}
		for _, name := range []string{col.ID, col.Alias} {
			if name == "" {
				continue
			}
			if ids[name] {
				return fmt.Errorf("collections[%d]: %s names another collection already", i, name)
			}
			ids[name] = true
		}
	}
	names := map[string]bool{}
	for i, s := range c.Sync {
		if err := s.validate(c); err != nil {
			return fmt.Errorf("sync[%d]: %w", i, err)
		}
		if names[s.Name] {
			return fmt.Errorf("sync[%d].name: %s is configured twice", i, s.Name)
		}
		names[s.Name] = true
	}
	return nil
}

func (col *CollectionConfig) validate(reg *label.Registry, vaultExists func(string) bool) error {
	if err := validUUID(col.ID); err != nil {
		return fmt.Errorf("id: %q: %v", col.ID, err)
	}
	if col.Alias != "" {
		if err := validAlias(col.Alias); err != nil {
			return fmt.Errorf("alias: %w", err)
		}
	}
	if err := manifest.ValidVault(col.Vault); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	if vaultExists != nil && !vaultExists(col.Vault) {
		return fmt.Errorf("vault: %s is not a vault of this node", col.Vault)
	}
	if _, err := col.base(reg); err != nil {
		return fmt.Errorf("classification: %w", err)
	}
	for field, list := range map[string][]string{"community": col.Community, "amber": col.Amber} {
		for j, n := range list {
			if !label.IsNationCode(n) {
				return fmt.Errorf("%s[%d]: %q is not an ISO 3166-1 alpha-3 code (three upper-case letters)", field, j, n)
			}
			if slices.Contains(list[:j], n) {
				return fmt.Errorf("%s[%d]: %s repeated", field, j, n)
			}
		}
	}
	if _, err := col.defaultTLP(); err != nil {
		return fmt.Errorf("default_tlp: %w", err)
	}
	for j, s := range col.Statements {
		if t, err := identifierType(s); err != nil || t != "marking-definition" {
			return fmt.Errorf("statements[%d]: %q is not a marking definition id", j, s)
		}
		if MarkingTLP(s) != TLPNone {
			return fmt.Errorf("statements[%d]: %s is a TLP marking, not a statement", j, s)
		}
	}
	return nil
}

// validAlias: 1 to 64 characters of a-z, 0-9, '-', '_' and '.', not a UUID
// (so that it never shadows an id).
func validAlias(a string) error {
	if len(a) == 0 || len(a) > 64 {
		return fmt.Errorf("%q: an alias has 1 to 64 characters", a)
	}
	for _, c := range a {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%q: an alias has only a-z, 0-9, '-', '_' and '.'", a)
		}
	}
	if validUUID(a) == nil {
		return fmt.Errorf("%q: an alias is not a UUID", a)
	}
	return nil
}

func (col *CollectionConfig) base(reg *label.Registry) (label.Label, error) {
	text := col.Classification
	if text == "" {
		text = DefaultClassification
	}
	l, err := reg.ParseText(text)
	if err != nil {
		return label.Label{}, err
	}
	if err := CheckBase(reg, l); err != nil {
		return label.Label{}, err
	}
	return l, nil
}

func (col *CollectionConfig) defaultTLP() (TLP, error) {
	if col.DefaultTLP == "" {
		return TLPAmberStrict, nil
	}
	return ParseTLP(col.DefaultTLP)
}

// Markings returns what the collection accepts as markings.
func (col *CollectionConfig) Markings() Markings {
	d, _ := col.defaultTLP()
	return Markings{Default: d, Statements: col.Statements, AllowUnknown: col.AllowUnknownMarkings}
}

// Name is the alias, or the id.
func (col *CollectionConfig) Name() string {
	if col.Alias != "" {
		return col.Alias
	}
	return col.ID
}

// Find returns the collection an id or alias names.
func (c *Config) Find(name string) (CollectionConfig, bool) {
	for _, col := range c.Collections {
		if col.ID == name || col.Alias != "" && col.Alias == name {
			return col, true
		}
	}
	return CollectionConfig{}, false
}

// ErrNoCollection: no collection of that id or alias.
var ErrNoCollection = errors.New("no such collection")

// NewCollectionID returns a random UUID (version 4) for a collection.
func NewCollectionID() string {
	id := manifest.NewID()
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	h := strings.ToLower(id.String())
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
