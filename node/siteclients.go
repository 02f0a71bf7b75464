package node

import (
	"sync"
	"time"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/s3site"
)

// The S3 sites' HTTP clients. Each S3 site's driver has an HTTP client of
// its own transport, whose idle connections stay open to the provider, in
// a process that goes on, until the transport's idle timeout (a minute):
// after the node closed, after a configuration change replaced the
// engine's drivers (every change opens them again), and after every look
// at a site through a driver opened for it (a site added, checked,
// inspected, its descriptor read). The node closes them (s3site's Close
// closes the idle connections; one in use is left to finish its call): the
// engine's when they are replaced, again at each later change for ten
// minutes, and when the node closes; a lease's when it is released; the
// others when the look is done.

// s3Clients are the S3 site drivers the engine was last built with, and
// those it was built with before (retired), whose calls under way when
// they were replaced (an audit log copy, a read) put their connections
// back in the pool after it was closed: a retired driver is closed again
// at each change and at Close, and forgotten retireFor after it was
// replaced.
type s3Clients struct {
	mu      sync.Mutex
	sites   []*s3site.Site
	retired []retiredS3
}

type retiredS3 struct {
	ss *s3site.Site
	at time.Time
}

// retireFor is how long a replaced driver is closed again at each change:
// a call under way on it longer than that leaves its connection idle for
// the transport's idle timeout (a minute) once it returns.
const retireFor = 10 * time.Minute

// keepS3Clients makes sites the engine's S3 drivers and closes the idle
// connections of those they replace and of those retired before; nil
// (Close) closes them all and forgets them.
func (n *Node) keepS3Clients(sites []*s3site.Site) {
	now := time.Now()
	n.s3.mu.Lock()
	for _, ss := range n.s3.sites {
		n.s3.retired = append(n.s3.retired, retiredS3{ss, now})
	}
	n.s3.sites = sites
	closing := make([]*s3site.Site, 0, len(n.s3.retired))
	kept := n.s3.retired[:0]
	for _, r := range n.s3.retired {
		closing = append(closing, r.ss)
		if sites != nil && now.Sub(r.at) < retireFor {
			kept = append(kept, r)
		}
	}
	clear(n.s3.retired[len(kept):])
	n.s3.retired = kept
	n.s3.mu.Unlock()
	for _, ss := range closing {
		ss.Close()
	}
}

// closeSite closes the idle connections of st, a site driver opened for a
// look, when it keeps some (an S3 site's).
func closeSite(st site.Site) {
	if ss, ok := st.(*s3site.Site); ok {
		ss.Close()
	}
}

// closeSites is closeSite of each.
func closeSites(sites map[string]site.Site) {
	for _, st := range sites {
		closeSite(st)
	}
}
