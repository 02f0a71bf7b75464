package taxii

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// SyncConfig is one sync job: a local collection kept in step with a
// collection of another TAXII 2.1 server, by pulling what it adds, pushing
// what is added here, or both.
type SyncConfig struct {
	// Name identifies the job (its cursor, its log lines).
	Name string `yaml:"name" json:"name"`
	// Collection is the local collection (id or alias).
	Collection string `yaml:"collection" json:"collection"`
	// URL is the remote collection's URL, e.g.
	// https://misp.example/taxii2/api/collections/ID/ (for --url jobs).
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// Peer is an allied embassy node reached over the alliance's peer
	// channel (for --peer jobs; not available yet).
	Peer string `yaml:"peer,omitempty" json:"peer,omitempty"`
	// Direction is pull, push or both.
	Direction string `yaml:"direction" json:"direction"`
	// User and Password are the remote server's HTTP Basic credentials.
	User     string `yaml:"user,omitempty" json:"user,omitempty"`
	Password string `yaml:"password,omitempty" json:"-"`
	// As is the local principal pulled objects are written as: its roles,
	// nation and clearance decide what may be stored.
	As string `yaml:"as,omitempty" json:"as,omitempty"`
	// Recipient is the local principal that stands for the remote side:
	// only what it may read is pushed (TLP:RED never is).
	Recipient string `yaml:"recipient,omitempty" json:"recipient,omitempty"`
	// Interval between runs of a serving node (default 5m).
	Interval string `yaml:"interval,omitempty" json:"interval,omitempty"`
	// AllowInsecure permits an http:// URL that is not on loopback (the
	// password and the data then cross the network in the clear).
	AllowInsecure bool `yaml:"allow_insecure,omitempty" json:"allow_insecure,omitempty"`
}

// DefaultSyncInterval is how often a serving node runs a sync job.
const DefaultSyncInterval = 5 * time.Minute

// ErrNoPeerChannel: a --peer sync job needs the alliance's peer channel
// between embassy nodes, which this build does not have.
var ErrNoPeerChannel = errors.New("sync with an allied node over the peer channel (--peer) needs the alliance's peer channel, which this build of embassy does not have yet; sync with its TAXII server with --url instead")

// Pulls and Pushes report the job's direction.
func (s *SyncConfig) Pulls() bool  { return s.Direction == "pull" || s.Direction == "both" }
func (s *SyncConfig) Pushes() bool { return s.Direction == "push" || s.Direction == "both" }

// Every returns the interval between runs.
func (s *SyncConfig) Every() time.Duration {
	if d, err := time.ParseDuration(s.Interval); err == nil && d > 0 {
		return d
	}
	return DefaultSyncInterval
}

func (s *SyncConfig) validate(c *Config) error {
	if err := validAlias(s.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if _, ok := c.Find(s.Collection); !ok {
		return fmt.Errorf("collection: %q is not a collection of this node", s.Collection)
	}
	switch {
	case s.Peer != "" && s.URL != "":
		return errors.New("url, peer: set one, not both")
	case s.Peer != "":
		return fmt.Errorf("peer: %w", ErrNoPeerChannel)
	case s.URL == "":
		return errors.New("url: must be set")
	}
	if err := checkSyncURL(s.URL, s.AllowInsecure); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	switch s.Direction {
	case "pull", "push", "both":
	default:
		return fmt.Errorf("direction: %q is not pull, push or both", s.Direction)
	}
	if s.Pulls() && s.As == "" {
		return errors.New("as: a job that pulls needs the local principal it writes as")
	}
	if s.Pushes() && s.Recipient == "" {
		return errors.New("recipient: a job that pushes needs the local principal that stands for the remote side")
	}
	if s.Interval != "" {
		if d, err := time.ParseDuration(s.Interval); err != nil || d < time.Second {
			return fmt.Errorf("interval: %q is not a duration of at least 1s", s.Interval)
		}
	}
	if (s.User == "") != (s.Password == "") {
		return errors.New("user, password: set both or neither")
	}
	return nil
}

// checkSyncURL checks a remote collection URL: http or https, a host, and
// https unless the host is loopback or insecure is allowed.
func checkSyncURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q: want an http or https URL", raw)
	}
	if u.Host == "" || u.User != nil {
		return fmt.Errorf("%q: want a host and no credentials in the URL (set user and password)", raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		return fmt.Errorf("%q: a TAXII collection URL ends with '/'", raw)
	}
	if u.Scheme == "http" && !insecure && !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%q: http to a host that is not loopback sends the password in the clear; use https (or set allow_insecure)", raw)
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
