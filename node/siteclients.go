package node

import (
	"sync"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/s3site"
)

// The S3 sites' HTTP clients. Each S3 site's driver has an HTTP client of
// its own transport, whose idle connections stay open to the provider, in
// a process that goes on, until the transport's idle timeout (a minute):
// after the node closed, after a configuration change replaced the
// engine's drivers (every change opens them again), and after every look
// at a site through a driver opened for it (a site added, checked,
// inspected, its descriptor read). The node closes them: the engine's when
// they are replaced and when the node closes; a lease's when it is
// released; the others when the look is done. s3site's Close closes the
// idle connections, and those a call still running hands back when it
// ends, so a driver is closed once. (Until the twenty-first pass Close
// closed only the connections idle at that moment, and the node closed a
// replaced driver again at each later change for ten minutes: a call
// running longer than that left its connection idle for a minute.)

// s3Clients are the S3 site drivers the engine was last built with.
type s3Clients struct {
	mu    sync.Mutex
	sites []*s3site.Site
}

// keepS3Clients makes sites the engine's S3 drivers and closes those they
// replace; nil (Close) closes them all and forgets them.
func (n *Node) keepS3Clients(sites []*s3site.Site) {
	n.s3.mu.Lock()
	closing := n.s3.sites
	n.s3.sites = sites
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
