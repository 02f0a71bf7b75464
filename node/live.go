package node

import (
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/site"
)

// A serving node changes its configuration in place. Sites, vaults and
// their policies change inside the running engine (vault.Engine.Reconfigure),
// so the S3 front end, which holds the engine, sees every change at once; a
// change of the label policies (config edit) needs a new engine, and the S3
// front end is rebuilt on the next request after it. Credentials and
// principals are read by a front end rebuilt after every configuration
// change, so a credential added or removed is in force for the next request.

// liveState tracks what a serving node's front ends were built from.
type liveState struct {
	mu sync.Mutex
	// policies are the label policies the engine was built with.
	policies []label.Policy
	built    bool
	// version counts configuration changes; a front end built at an older
	// version is rebuilt.
	version atomic.Uint64
	// cfg is the configuration in force (setConfig, conf).
	cfg atomic.Pointer[Config]
	// metrics are the node's instruments (prommetrics.go).
	metrics *nodeMetrics
	// space holds the sites whose driver reports free space.
	spaceMu sync.Mutex
	space   map[string]site.SpaceReporter
}

func (l *liveState) setSpace(id string, sr site.SpaceReporter) {
	l.spaceMu.Lock()
	defer l.spaceMu.Unlock()
	if l.space == nil {
		l.space = map[string]site.SpaceReporter{}
	}
	l.space[id] = sr
}

func (l *liveState) spaceOf(id string) (site.SpaceReporter, bool) {
	l.spaceMu.Lock()
	defer l.spaceMu.Unlock()
	sr, ok := l.space[id]
	return sr, ok
}

// samePolicies reports whether an engine exists built with policies p.
func (l *liveState) samePolicies(p []label.Policy) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.built && reflect.DeepEqual(l.policies, p)
}

// rebuilt records an engine built with policies p.
func (l *liveState) rebuilt(p []label.Policy) {
	l.mu.Lock()
	l.policies, l.built = append([]label.Policy(nil), p...), true
	l.mu.Unlock()
	l.version.Add(1)
}

// changed records a configuration change made in place.
func (l *liveState) changed() { l.version.Add(1) }

// setDraining marks the configured draining sites in the engine.
func (n *Node) setDraining() {
	var draining []string
	for _, sc := range n.conf().Sites {
		if sc.Draining {
			draining = append(draining, sc.ID)
		}
	}
	n.Engine.SetDraining(draining)
}

// s3Front is the S3 front end of a serving node, rebuilt after every
// configuration change (so that credentials and a rebuilt engine are in
// force for the next request).
type s3Front struct {
	n       *Node
	extra   []s3.Credential
	mu      sync.Mutex
	h       http.Handler
	version uint64
}

// handler returns the front end for the node's configuration now.
func (f *s3Front) handler() (http.Handler, error) {
	v := f.n.live.version.Load()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.h != nil && f.version == v {
		return f.h, nil
	}
	f.n.mu.Lock()
	h, err := f.n.S3Handler(f.extra...)
	f.n.mu.Unlock()
	if err != nil {
		return nil, err
	}
	h = f.n.countingS3(h)
	f.h, f.version = h, v
	return h, nil
}

// setConfig puts c in force as the node's configuration. Code that runs
// while the node serves reads it with conf, not the Config field.
func (n *Node) setConfig(c *Config) {
	n.Config = c
	n.live.cfg.Store(c)
}

// conf returns the configuration in force; safe while it changes.
func (n *Node) conf() *Config {
	if c := n.live.cfg.Load(); c != nil {
		return c
	}
	return n.Config
}
