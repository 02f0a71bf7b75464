package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/custody/shamir"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// siteBlob reads one blob from a node's first site.
func siteBlob(t *testing.T, n *Node, name string) []byte {
	t.Helper()
	s := n.Engine.Sites()[0]
	rc, err := s.Store.Get(context.Background(), name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// anyManifest returns the envelope of some manifest blob on the node's
// first site.
func anyManifest(t *testing.T, n *Node) []byte {
	t.Helper()
	var name string
	n.Engine.Sites()[0].Store.List(context.Background(), manifest.ManifestPrefix, func(i site.Info) error {
		name = i.Name
		return errors.New("stop")
	})
	b := siteBlob(t, n, name)
	l, err := manifest.EnvelopeLen(b)
	if err != nil {
		t.Fatal(err)
	}
	return b[:l]
}

// verifyEnvelopeSignature checks the node signature of a manifest
// envelope with keys, without opening it.
func verifyEnvelopeSignature(keys *custody.Keyring, env []byte) error {
	return keys.Verify(env[:len(env)-64], env[len(env)-64:])
}

// TestRootRotationKeepsIdentity: a site marker, a descriptor and a signed
// statement made before a root key rotation verify after it with the same
// node.pub, the
// node.pub exported after it is the same identity, and the node reopens
// with the new shares under the same identity.
func TestRootRotationKeepsIdentity(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	fill(t, n)
	pubBefore, err := n.Keys().Identity().ExportPublic()
	if err != nil {
		t.Fatal(err)
	}
	_, pinned, err := custody.ParsePublic(pubBefore)
	if err != nil {
		t.Fatal(err)
	}
	statement := []byte("embassy test statement v1\nthe node held 3 objects\n")
	sig, err := n.Keys().SignHybrid(statement)
	if err != nil {
		t.Fatal(err)
	}
	descBefore := siteBlob(t, n, DescriptorBlob)
	envBefore := anyManifest(t, n)
	markerBefore := siteBlob(t, n, site.MarkerBlob)
	if err := VerifyDescriptor(descBefore, pinned); err != nil {
		t.Fatalf("descriptor before rotation: %v", err)
	}

	id := pendingID(t, func() error { _, _, err := n.RotateRootKey(n.As(context.Background(), "admin")); return err }())
	cn.decide(t, id, "alice", true)
	r, err := cn.decide(t, id, "bob", true)
	if err != nil || r.Status != StatusExecuted {
		t.Fatalf("rotation: %+v, %v", r, err)
	}
	if n.Keys().ManifestKeyID() == [8]byte{} {
		t.Fatal("no keys after rotation")
	}
	// What was made before verifies after, with the node.pub pinned before.
	if err := pinned.Verify(statement, sig); err != nil {
		t.Errorf("statement: %v", err)
	}
	if err := VerifyDescriptor(descBefore, pinned); err != nil {
		t.Errorf("descriptor from before the rotation: %v", err)
	}
	for name, b := range map[string][]byte{"before": markerBefore, "after": siteBlob(t, n, site.MarkerBlob)} {
		m, msig, err := site.ParseMarker(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := pinned.Verify(m.SignedMessage(), msig); err != nil {
			t.Errorf("site marker written %s the rotation: %v", name, err)
		}
	}
	if err := VerifyDescriptor(siteBlob(t, n, DescriptorBlob), pinned); err != nil {
		t.Errorf("descriptor after the rotation: %v", err)
	}
	if err := verifyEnvelopeSignature(n.Keys(), envBefore); err != nil {
		t.Errorf("manifest signed before the rotation: %v", err)
	}
	pubAfter, _ := n.Keys().Identity().ExportPublic()
	if _, p, err := custody.ParsePublic(pubAfter); err != nil || !p.Equal(pinned) {
		t.Fatalf("node.pub changed with the root: %v", err)
	}

	// Reopened with the new shares, the node has the same identity.
	dir := r.Result[strings.Index(r.Result, "in ")+3:]
	for _, name := range []string{"alice", "bob", "carol"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".share"))
		if err != nil {
			t.Fatal(err)
		}
		cn.shares[name] = b
	}
	n.Close()
	cn.n = cn.open(t)
	cn.unseal(t, "carol", "bob")
	if !cn.n.Keys().Identity().Public().Equal(pinned) {
		t.Fatal("identity changed across a restart after the rotation")
	}
}

// legacyCustody is custody.json as nodes wrote it before this version: the
// share set with Go field names and byte arrays, no authenticator.
func legacyCustody(t *testing.T, rec *custody.Record) []byte {
	t.Helper()
	type oldSet struct {
		ID         shamir.SetID
		Threshold  int
		Total      int
		Commitment [32]byte
	}
	b, err := json.MarshalIndent(struct {
		Set        oldSet                    `json:"set"`
		Custodians []custody.CustodianPublic `json:"custodians"`
	}{oldSet(rec.Set), rec.Custodians}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makeLegacy turns an open custodian node into what a node of the previous
// version left behind: data signed with the root-derived key, node files
// without authenticators (custody.json in its old form), no identity, and
// a format 1 descriptor on every site. It returns the data written and one
// manifest envelope signed with the legacy key.
func makeLegacy(t *testing.T, cn *custodyNode) (objectSet, []byte) {
	t.Helper()
	n := cn.n
	lk, err := custody.NewKeyring(n.Keys().Root())
	if err != nil {
		t.Fatal(err)
	}
	n.setKeys(lk)
	n.switchKeys()
	want := fill(t, n)
	ctx := n.As(context.Background(), "admin")
	if _, err := n.Engine.Put(ctx, "registry", "labelled", strings.NewReader("secret minutes"), vault.PutOptions{Size: 14, Label: "NATO SECRET//REL TO EST"}); err != nil {
		t.Fatal(err)
	}
	want["labelled"] = []byte("secret minutes")
	env := anyManifest(t, n)
	// A pending request, in requests.json as it was written then (no
	// authenticator line).
	n.AddVault(VaultConfig{Name: "empty", Erasure: "4+2", Survive: "jurisdictions=1"})
	pendingID(t, n.DeleteVault(n.As(context.Background(), "admin"), "empty"))
	reqs, err := readNodeFile(n.Dir, RequestsFile)
	if err != nil || reqs == nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{
		ConfigFile:   configBody(t, readConfigFile(t, n.Dir)),
		CustodyFile:  legacyCustody(t, n.Custody),
		RequestsFile: reqs.body,
	} {
		if err := os.WriteFile(filepath.Join(n.Dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(n.Dir, custody.IdentityFile))
	n.PublishDescriptor(context.Background())
	os.Remove(filepath.Join(n.Dir, DescriptorCopyFile)) // the previous version kept none
	// Nor had it site markers: the upgrade claims the sites.
	for _, s := range n.Engine.Sites() {
		if err := s.Store.Delete(context.Background(), site.MarkerBlob); err != nil {
			t.Fatal(err)
		}
	}
	if d := siteBlob(t, n, DescriptorBlob); d[4] != 1 {
		t.Fatalf("descriptor format %d, want the legacy 1", d[4])
	}
	n.Close()
	return want, env
}

// TestUpgradeFromBeforeIdentities: a node written by the previous version
// opens: its first unseal makes an identity (recording the root-derived
// key, so what it signed still verifies), authenticates its files and
// rewrites custody.json in snake_case; everything reads, before and after a
// root rotation.
func TestUpgradeFromBeforeIdentities(t *testing.T) {
	cn := newCustodyNode(t)
	want, legacyEnv := makeLegacy(t, cn)
	legacyKey := custody.RootlessCopy(cn.n.Keys()).LegacyPublicKey()

	cn.n = cn.open(t)
	cn.unseal(t, "alice", "carol")
	n := cn.n
	id := n.Keys().Identity()
	if id == nil || len(id.Legacy) != 1 || !id.Legacy[0].Equal(legacyKey) {
		t.Fatalf("upgraded identity %+v does not record the legacy key", id)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, custody.IdentityFile)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ConfigFile, CustodyFile} {
		f, err := readNodeFile(n.Dir, name)
		if err != nil || f == nil || f.mac == nil {
			t.Fatalf("%s not authenticated after the upgrade: %v", name, err)
		}
	}
	cust, _ := os.ReadFile(filepath.Join(n.Dir, CustodyFile))
	if !bytes.Contains(cust, []byte(`"threshold": 2`)) || bytes.Contains(cust, []byte(`"Threshold"`)) {
		t.Errorf("custody.json not rewritten in snake_case:\n%s", cust)
	}
	if d := siteBlob(t, n, DescriptorBlob); d[4] != 2 {
		t.Errorf("descriptor format %d after the upgrade, want 2", d[4])
	}
	checkObjects(t, n, want)
	if err := verifyEnvelopeSignature(n.Keys(), legacyEnv); err != nil {
		t.Fatalf("legacy manifest: %v", err)
	}
	// The request made before the upgrade is still there, and decided.
	rs, err := n.Requests()
	if err != nil || len(rs) != 1 || rs[0].Op.Kind != "vault.delete" {
		t.Fatalf("requests after the upgrade: %v, %v", rs, err)
	}
	cn.decide(t, rs[0].ID, "bob", true)
	if r, err := cn.decide(t, rs[0].ID, "carol", true); err != nil || r.Status != StatusExecuted {
		t.Fatalf("a request from before the upgrade: %+v, %v", r, err)
	}

	// After a root rotation the legacy key still verifies.
	rid := pendingID(t, func() error { _, _, err := n.RotateRootKey(n.As(context.Background(), "admin")); return err }())
	cn.decide(t, rid, "alice", true)
	if r, err := cn.decide(t, rid, "bob", true); err != nil || r.Status != StatusExecuted {
		t.Fatalf("rotation: %+v, %v", r, err)
	}
	if err := verifyEnvelopeSignature(n.Keys(), legacyEnv); err != nil {
		t.Errorf("legacy manifest after a root rotation: %v", err)
	}
	checkObjects(t, n, want)
	if !n.Keys().Identity().Public().Equal(id.Public()) {
		t.Error("rotation changed the identity")
	}
}

// TestUpgradeRefusesChangedFiles: before the upgrade a node's files carry
// no authenticator, so they are compared with the sites' (format 1)
// descriptor instead: a principal added by hand since the node last ran is
// refused.
func TestUpgradeRefusesChangedFiles(t *testing.T) {
	cn := newCustodyNode(t)
	makeLegacy(t, cn)
	path := filepath.Join(cn.dir, ConfigFile)
	b, _ := os.ReadFile(path)
	b = bytes.Replace(b, []byte("principals:\n"), []byte("principals:\n  - name: mallory\n    nation: EST\n    clearances:\n      NATO: COSMIC TOP SECRET\n"), 1)
	os.WriteFile(path, b, 0o600)
	cn.n = cn.open(t)
	_, err := cn.n.Unseal(cn.share(t, "alice"))
	if err == nil {
		_, err = cn.n.Unseal(cn.share(t, "bob"))
	}
	if !errors.Is(err, ErrNodeFile) || !strings.Contains(err.Error(), "principal mallory (nation EST") {
		t.Fatalf("unseal with a hand-added principal: %v", err)
	}
	if !cn.n.Sealed() {
		t.Fatal("the node unsealed")
	}
	if _, err := os.Stat(filepath.Join(cn.dir, custody.IdentityFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused upgrade made an identity")
	}
}

// TestDowngradeRefused: a node that has an identity cannot be made to look
// like one from before identities: with identity.json deleted and the
// authenticators stripped, the sites' descriptor still names the identity.
func TestDowngradeRefused(t *testing.T) {
	cn := newCustodyNode(t)
	fill(t, cn.n)
	cn.n.Close()
	os.Remove(filepath.Join(cn.dir, custody.IdentityFile))
	path := filepath.Join(cn.dir, ConfigFile)
	b, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(configBody(t, b), []byte("principals:\n"), []byte("principals:\n  - name: mallory\n    nation: EST\n    roles: [admin]\n"), 1), 0o600)
	cn.n = cn.open(t)
	cn.n.Unseal(cn.share(t, "alice"))
	_, err := cn.n.Unseal(cn.share(t, "bob"))
	if !errors.Is(err, ErrNodeFile) || !strings.Contains(err.Error(), "identity.json: missing") || !strings.Contains(err.Error(), "node.yaml: carries no authenticator") {
		t.Fatalf("unseal of a downgraded node: %v", err)
	}
}

// TestReplaceIdentity: two custodians replace the identity; the statement
// links the old to the new; what the old key signed still reads; the new
// descriptor verifies with the new key only; the replacement survives a
// restart.
func TestReplaceIdentity(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	want := fill(t, n)
	old := n.Keys().Identity().Public()
	id := pendingID(t, func() error { _, err := n.ReplaceIdentity(n.As(context.Background(), "admin")); return err }())
	cn.decide(t, id, "alice", true)
	if !n.Keys().Identity().Public().Equal(old) {
		t.Fatal("replaced with one approval")
	}
	r, err := cn.decide(t, id, "carol", true)
	if err != nil || r.Status != StatusExecuted {
		t.Fatalf("replace: %+v, %v", r, err)
	}
	next := n.Keys().Identity().Public()
	if next.Equal(old) {
		t.Fatal("identity not replaced")
	}
	stmt, err := os.ReadFile(strings.TrimPrefix(r.Result, "transition statement in "))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := custody.ParseTransition(stmt)
	if err != nil || !tr.Old.Equal(old) || !tr.New.Equal(next) {
		t.Fatalf("statement: %+v, %v", tr, err)
	}
	checkObjects(t, n, want)
	desc := siteBlob(t, n, DescriptorBlob)
	if err := VerifyDescriptor(desc, next); err != nil {
		t.Errorf("new descriptor with the new key: %v", err)
	}
	if err := VerifyDescriptor(desc, old); err == nil {
		t.Error("the new descriptor verifies with the replaced key")
	}
	n.Close()
	cn.n = cn.open(t)
	cn.unseal(t, "bob", "carol")
	if got := cn.n.Keys().Identity(); !got.Public().Equal(next) || len(got.Previous) != 1 || !got.Previous[0].Equal(old) || len(got.Transitions) != 1 {
		t.Fatalf("after a restart: %+v", got)
	}
	checkObjects(t, cn.n, want)
}
