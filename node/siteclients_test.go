package node

import (
	"testing"
	"time"
)

// TestS3SiteConnectionsClosed: a node closed keeps no connection to its S3
// sites' provider open. Before, none of its S3 drivers' HTTP clients was
// ever closed: those of the sites' engine (opened again at every
// configuration change), of the leases, and of the drivers opened for one
// look (adding a site: its bucket, its prefix and the prefixes above it
// checked, its marker written). Their idle connections stayed open in the
// process to the transport's idle timeout, a minute (the test fails it
// after 30 s).
func TestS3SiteConnectionsClosed(t *testing.T) {
	conns := newConnCounter()
	p := alliedProviderCounted(t, conns)
	n, _ := mixedNode(t, p)
	putAll(t, n, "before", 4)
	// A configuration change opens every site's driver again.
	if err := n.AddVault(VaultConfig{Name: "other", Erasure: "4+2", Survive: "jurisdictions=1", OutsideHome: true}); err != nil {
		t.Fatal(err)
	}
	putAll(t, n, "after", 4)
	if conns.seen() == 0 {
		t.Fatal("no connection to the provider: the test no longer shows anything")
	}
	n.Close()
	conns.waitClosedSince(t, 0, 30*time.Second)
}
