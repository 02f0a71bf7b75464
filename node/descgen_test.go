package node

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/site/dir"
)

func siteGeneration(t *testing.T, n *Node, path string) uint64 {
	t.Helper()
	s, err := dir.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := readDescriptor(t.Context(), n.Keys(), s)
	if err != nil {
		t.Fatal(err)
	}
	return d.Generation
}

// TestDescriptorGenerations: every publish raises the generation, kept in
// the node directory; a node directory that lost it (or is behind) takes
// the sites' on opening, so a generation never goes backwards; and a site
// holding a newer descriptor than the one published keeps it.
func TestDescriptorGenerations(t *testing.T) {
	n := newNode(t)
	g1 := n.Descriptor().Generation
	if g1 == 0 || siteGeneration(t, n, sitePath(n, "est-1")) != g1 {
		t.Fatalf("generation %d after six site adds, est-1 holds %d", g1, siteGeneration(t, n, sitePath(n, "est-1")))
	}
	if local, err := readGeneration(n.Dir); err != nil || local != g1 {
		t.Fatalf("%s holds %d, %v; want %d", GenerationFile, local, err, g1)
	}
	if err := n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	g2 := n.Descriptor().Generation
	if g2 != g1+1 || siteGeneration(t, n, sitePath(n, "fin-2")) != g2 {
		t.Fatalf("after a change: generation %d, want %d", g2, g1+1)
	}
	// Reopened with nothing changed, the node publishes nothing: no new
	// generation, no audit entry.
	entries := descriptorEntries(t, n)
	n = reopen(t, n)
	if g := n.Descriptor().Generation; g != g2 || siteGeneration(t, n, sitePath(n, "fin-2")) != g2 {
		t.Fatalf("generation %d after reopening unchanged, fin-2 holds %d; want %d", g, siteGeneration(t, n, sitePath(n, "fin-2")), g2)
	}
	if e := descriptorEntries(t, n); e != entries {
		t.Fatalf("reopening unchanged logged %d descriptor.publish entries, want none", e-entries)
	}
	// The generation file is lost: the next open takes the sites', and
	// the next publish goes above them.
	n.Close()
	os.Remove(filepath.Join(n.Dir, GenerationFile))
	n = reopen(t, n)
	if g := n.Descriptor().Generation; g != g2 {
		t.Fatalf("generation %d after reopening without the file, want the sites' %d", g, g2)
	}
	// A site that lost its descriptor gets it again on the next open,
	// above every generation seen.
	n.Close()
	if err := os.Remove(filepath.Join(sitePath(n, "fin-2"), filepath.FromSlash(DescriptorBlob))); err != nil {
		t.Fatal(err)
	}
	n = reopen(t, n)
	if g := n.Descriptor().Generation; g != g2+1 || siteGeneration(t, n, sitePath(n, "fin-2")) != g2+1 {
		t.Fatalf("after reopening with fin-2's descriptor gone: generation %d, fin-2 holds %d; want %d", g, siteGeneration(t, n, sitePath(n, "fin-2")), g2+1)
	}
	// A site holding a newer descriptor (another copy of this node at work)
	// keeps it, and the node says so.
	est1 := sitePath(n, "est-1")
	newer := n.Descriptor().Generation + 10
	id, err := os.ReadFile(filepath.Join(n.Dir, custody.IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	d := descriptor{NodeID: n.Config.Node.ID, Generation: newer, Config: readConfigFile(t, n.Dir), Identity: id}
	blob, err := sealDescriptor(n.Keys(), d)
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := dir.Open(est1)
	if err := ds.Put(t.Context(), DescriptorBlob, bytes.NewReader(blob), int64(len(blob))); err != nil {
		t.Fatal(err)
	}
	failed := n.PublishDescriptor(context.Background())
	if len(failed) != 1 || failed[0] != "est-1" {
		t.Fatalf("publish over a newer descriptor: not written to %v, want [est-1]", failed)
	}
	if g := siteGeneration(t, n, est1); g != newer {
		t.Fatalf("est-1's newer descriptor (generation %d) was replaced by generation %d", newer, g)
	}
	if b := n.Descriptor().Behind; !strings.Contains(b, "site est-1 holds a newer node descriptor") {
		t.Fatalf("Behind = %q", b)
	}
	// Reopened, the node goes above it.
	n = reopen(t, n)
	if g := n.Descriptor().Generation; g != newer+1 || siteGeneration(t, n, est1) != newer+1 {
		t.Fatalf("after reopening: generation %d, est-1 %d; want %d", g, siteGeneration(t, n, est1), newer+1)
	}
}

// TestDescriptorFormat1ReadsAsGeneration0: a descriptor written before
// generations opens, with generation 0; format 1 cannot claim one.
func TestDescriptorFormat1ReadsAsGeneration0(t *testing.T) {
	n := newNode(t)
	legacy, err := localKeys(n.Dir) // no identity: format 1
	if err != nil {
		t.Fatal(err)
	}
	b, err := sealDescriptor(legacy, descriptor{NodeID: n.Config.Node.ID, Generation: 7, Config: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if b[4] != 1 {
		t.Fatalf("format %d", b[4])
	}
	d, err := openDescriptor(n.Keys(), b)
	if err != nil || d.Generation != 0 {
		t.Fatalf("format 1: %+v, %v", d, err)
	}
}

// descriptorEntries counts the descriptor.publish entries in n's audit log.
func descriptorEntries(t *testing.T, n *Node) int {
	t.Helper()
	count := 0
	err := n.Audit().Events(t.Context(), 0, func(_ uint64, e audit.Event) error {
		if e.Kind == KindDescriptor {
			count++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return count
}
