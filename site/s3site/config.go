package s3site

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
	"go.yaml.in/yaml/v3"

	"github.com/embassy-dev/embassy/site"
)

// Config says where an S3 site keeps its blobs and how to reach it. It is
// meant to be read from the node's YAML file; check it with Validate.
type Config struct {
	// Endpoint is the provider's S3 endpoint as host:port (or a bare host
	// for the scheme's default port), without a scheme: Secure picks
	// https. Example: "s3.eu-central-1.amazonaws.com" or "10.0.0.5:9000".
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	// Region is the bucket's region. Empty asks the provider (one
	// GetBucketLocation request the first time the bucket is used).
	Region string `yaml:"region,omitempty" json:"region,omitempty"`
	// Bucket holds the site's blobs. Several sites may share a bucket if
	// their prefixes differ.
	Bucket string `yaml:"bucket" json:"bucket"`
	// Prefix, if set, is a folder inside the bucket under which every blob
	// of the site lives ("embassy/est-1"): blob name n is stored as the
	// key Prefix + "/" + n. Leading and trailing slashes are ignored.
	Prefix string `yaml:"prefix,omitempty" json:"prefix,omitempty"`
	// AccessKey and SecretKey are the S3 credential. The secret redacts
	// itself when printed or logged.
	AccessKey string `yaml:"access_key" json:"access_key"`
	SecretKey Secret `yaml:"secret_key" json:"secret_key"`
	// Secure makes requests over TLS (https). Leave it off only on a
	// loopback or otherwise encrypted network.
	Secure bool `yaml:"secure" json:"secure"`
	// CAFile, optional, is a PEM file of certificate authorities trusted
	// for the endpoint in addition to the system's (a provider with a
	// private CA). It requires Secure.
	CAFile string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	// CreateBucket makes New create the bucket if it does not exist (with
	// object lock enabled when ObjectLock is set). Without it New makes no
	// request at all, and a missing bucket is reported by every operation
	// as site.ErrUnavailable: a vanished bucket never looks empty. A node
	// honours it only in 'embassy site add' (and does not keep it in
	// node.yaml): opening a site never creates its bucket.
	CreateBucket bool `yaml:"create_bucket,omitempty" json:"create_bucket,omitempty"`
	// ObjectLock, optional, writes every blob with an S3 object-lock
	// retention, so that nobody holding the site's credential (a
	// compromised node included) can erase it before its date. The bucket
	// must have object lock enabled (which also turns on versioning).
	// Deleting a blob then fails with an error wrapping ErrRetained until
	// its retention has passed.
	ObjectLock *ObjectLock `yaml:"object_lock,omitempty" json:"object_lock,omitempty"`
	// Lease is how long the node's lease on the site (the blob node/lease)
	// must stay unrenewed before another copy of the node may take the site
	// over, from [MinLease] to [MaxLease] (default [DefaultLease]): what a
	// node restarted elsewhere after a crash waits for the site. Its
	// holder renews it every third of this time and stops writing once it
	// could not for two thirds.
	Lease Duration `yaml:"lease,omitempty" json:"lease,omitempty"`
}

// The bounds and default of Config.Lease.
const (
	DefaultLease = 30 * time.Second
	MinLease     = time.Second
	MaxLease     = time.Hour
)

// LeaseTime returns the effective lease time.
func (c *Config) LeaseTime() time.Duration {
	if c.Lease == 0 {
		return DefaultLease
	}
	return time.Duration(c.Lease)
}

// Duration is a time written as "30s" in YAML and JSON.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(value *yaml.Node) error {
	v, err := time.ParseDuration(value.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (such as 30s)", value.Line, value.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (such as 30s)", s)
	}
	*d = Duration(v)
	return nil
}

// ObjectLock is the retention every blob is written with.
type ObjectLock struct {
	// Mode is GOVERNANCE (a principal granted
	// s3:BypassGovernanceRetention at the provider can still delete; this
	// driver never asks to) or COMPLIANCE (nobody can, not even the
	// provider's root account, until the date).
	Mode string `yaml:"mode" json:"mode"`
	// Days is how long each blob is retained from the moment it is
	// written.
	Days int `yaml:"days" json:"days"`
}

// Object-lock modes.
const (
	Governance = "GOVERNANCE"
	Compliance = "COMPLIANCE"
)

// maxLockDays bounds ObjectLock.Days: a century is certainly a typo for
// something shorter, and a COMPLIANCE lock cannot be undone.
const maxLockDays = 36500

// Secret is a credential that redacts itself when printed or logged. Its
// YAML form is the plain value.
type Secret string

// String redacts the secret.
func (Secret) String() string { return "REDACTED" }

// GoString redacts the secret.
func (Secret) GoString() string { return "REDACTED" }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// Validate checks the configuration and names the first field that is
// wrong.
func (c *Config) Validate() error {
	if err := validEndpoint(c.Endpoint); err != nil {
		return fmt.Errorf("s3 site: endpoint: %w", err)
	}
	if c.Bucket == "" {
		return errors.New("s3 site: bucket: must be set")
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return fmt.Errorf("s3 site: bucket %q: %v", c.Bucket, lower(err.Error()))
	}
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		if len(p)+1+site.MaxNameLen > 1024 {
			return fmt.Errorf("s3 site: prefix %q: too long: S3 keys are at most 1024 bytes and blob names up to %d", c.Prefix, site.MaxNameLen)
		}
		if err := site.CheckName(p); err != nil {
			return fmt.Errorf("s3 site: prefix %q: must be segments of letters, digits, '.', '_' and '-' separated by single slashes", c.Prefix)
		}
	}
	for _, r := range c.Region {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("s3 site: region %q: must be lower-case letters, digits, '-' and '_'", c.Region)
		}
	}
	if c.AccessKey == "" {
		return errors.New("s3 site: access_key: must be set")
	}
	if c.SecretKey == "" {
		return errors.New("s3 site: secret_key: must be set")
	}
	if c.CAFile != "" && !c.Secure {
		return fmt.Errorf("s3 site: ca_file %s: set secure too: a CA is only used for TLS", c.CAFile)
	}
	if l := c.ObjectLock; l != nil {
		if l.Mode != Governance && l.Mode != Compliance {
			return fmt.Errorf("s3 site: object_lock.mode %q: must be %s or %s", l.Mode, Governance, Compliance)
		}
		if l.Days < 1 || l.Days > maxLockDays {
			return fmt.Errorf("s3 site: object_lock.days %d: must be 1 to %d", l.Days, maxLockDays)
		}
	}
	if l := c.Lease; l != 0 && (time.Duration(l) < MinLease || time.Duration(l) > MaxLease) {
		return fmt.Errorf("s3 site: lease %s: must be from %s to %s (default %s)", l, MinLease, MaxLease, DefaultLease)
	}
	return nil
}

func validEndpoint(e string) error {
	if e == "" {
		return errors.New("must be set (host:port)")
	}
	if strings.Contains(e, "://") {
		return fmt.Errorf("%q: give host:port without a scheme; secure selects https", e)
	}
	if strings.ContainsAny(e, "/?#@ ") {
		return fmt.Errorf("%q: must be host:port, without a path, user or spaces", e)
	}
	host := e
	if h, port, err := net.SplitHostPort(e); err == nil {
		host = h
		if port == "" {
			return fmt.Errorf("%q: empty port", e)
		}
		for _, r := range port {
			if r < '0' || r > '9' {
				return fmt.Errorf("%q: port must be a number", e)
			}
		}
	} else if strings.Contains(e, ":") {
		return fmt.Errorf("%q: must be host:port (an IPv6 address in brackets: [::1]:9000)", e)
	}
	if host == "" {
		return fmt.Errorf("%q: empty host", e)
	}
	return nil
}

func lower(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + strings.TrimSuffix(s[1:], ".")
}

// keyPrefix is the prefix of every key of the site: "" or "p/".
func (c *Config) keyPrefix() string {
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		return p + "/"
	}
	return ""
}

// MarshalJSON redacts the secret in JSON output (node.yaml keeps it).
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"REDACTED"`), nil }
