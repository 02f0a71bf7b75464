package e2e

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// TestAuditLogInterop verifies the audit log a node copied to a site with
// code that is not embassy's: x/mod's signed-note verifier for the
// checkpoints (with a key made from node.pub alone), and tessera's client
// for inclusion and consistency proofs built from the site's tiles. The
// embassy binary writes; nothing of embassy's log package is used to read.
func TestAuditLogInterop(t *testing.T) {
	work := t.TempDir()
	c := &client{t: t, bin: embassyBin, env: append(cleanEnv(), "EMBASSY_DIR="+filepath.Join(work, "node")), dir: work}
	c.run("init", "--nation", "EST")
	for _, s := range []struct{ id, j string }{{"est-1", "EST"}, {"lux-1", "LUX"}, {"fin-1", "FIN"}} {
		c.run("site", "add", s.id, "--path", filepath.Join(work, "sites", s.id), "--jurisdiction", s.j, "--provider", "gov-dc", "--control", "EST")
	}
	c.run("vault", "create", "registry", "--erasure", "2+1", "--survive", "sites=1")
	if err := os.WriteFile(filepath.Join(work, "minutes.txt"), []byte("minutes"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.run("put", "minutes.txt", "registry/minutes.txt")
	pub := c.run("identity", "export")

	// The checkpoint verifier key, from node.pub's lines alone.
	var nodeID string
	var edKey []byte
	for line := range strings.SplitSeq(pub, "\n") {
		if v, ok := strings.CutPrefix(line, "node "); ok {
			nodeID = v
		}
		if v, ok := strings.CutPrefix(line, "ed25519 "); ok {
			var err error
			if edKey, err = base64.StdEncoding.DecodeString(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if nodeID == "" || len(edKey) != ed25519.PublicKeySize {
		t.Fatalf("node.pub: no node id or Ed25519 key:\n%s", pub)
	}
	origin := "embassy/" + nodeID
	vkey, err := note.NewEd25519VerifierKey(origin, ed25519.PublicKey(edKey))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	site := tclient.FileFetcher{Root: filepath.Join(work, "sites", "fin-1", "log")}
	read := func() (*log.Checkpoint, []byte) {
		t.Helper()
		raw, err := site.ReadCheckpoint(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(raw, note.VerifierList(v))
		if err != nil {
			t.Fatalf("x/mod's note verifier refuses the site's checkpoint: %v\n%s", err, raw)
		}
		var cp log.Checkpoint
		if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || cp.Origin != origin {
			t.Fatalf("checkpoint: %v, origin %q", err, cp.Origin)
		}
		return &cp, raw
	}
	old, _ := read()

	// More history; the site's new checkpoint must be consistent with the
	// old one, and every entry must be included in it.
	for range 3 {
		c.run("put", "minutes.txt", "registry/minutes.txt")
	}
	cur, _ := read()
	if cur.Size <= old.Size {
		t.Fatalf("the site's checkpoint did not grow: %d then %d", old.Size, cur.Size)
	}
	pb, err := tclient.NewProofBuilder(t.Context(), cur.Size, site.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := pb.ConsistencyProof(t.Context(), old.Size, cur.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cur.Size, cons, old.Hash, cur.Hash); err != nil {
		t.Fatalf("checkpoints of %d and %d entries are not consistent: %v", old.Size, cur.Size, err)
	}
	for i := range cur.Size {
		b, err := tclient.GetEntryBundle(t.Context(), site.ReadEntryBundle, i/256, cur.Size)
		if err != nil {
			t.Fatal(err)
		}
		entry := b.Entries[i%256]
		if bytes.Contains(entry, []byte("minutes")) || bytes.Contains(entry, []byte("registry")) {
			t.Fatalf("entry %d shows a name in clear to the site", i)
		}
		incl, err := pb.InclusionProof(t.Context(), i)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cur.Size, rfc6962.DefaultHasher.HashLeaf(entry), incl, cur.Hash); err != nil {
			t.Fatalf("entry %d is not included in the checkpoint: %v", i, err)
		}
	}
}
