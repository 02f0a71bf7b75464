package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/vault"
)

// Whoever can write the node directory, but holds neither the root key
// nor custodians' shares, tries to change what the node does. Each attempt
// is refused at unseal: the node stays sealed, serves nothing, and writes
// nothing to any site.

// snapshotSites hashes every file under the node's sites.
func snapshotSites(t *testing.T, sitesDir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(sitesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[p] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// editFile applies change to a file in the node directory.
func editFile(t *testing.T, path string, change func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	nb := change(b)
	if bytes.Equal(nb, b) {
		t.Fatalf("%s: the attack changed nothing", path)
	}
	if err := os.WriteFile(path, nb, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestNodeFileAttacksRefusedAtUnseal(t *testing.T) {
	otherNode := newCustodyNode(t)
	otherConfig, _ := os.ReadFile(filepath.Join(otherNode.dir, ConfigFile))
	otherNode.n.Close()

	cases := []struct {
		name string
		// attack changes the node directory of the stopped node; it may
		// use the running node first (n) to prepare.
		attack func(t *testing.T, cn *custodyNode)
		// want appear in the error, beside the file's name
		file string
		want []string
	}{
		{"added principal", func(t *testing.T, cn *custodyNode) {
			editFile(t, filepath.Join(cn.dir, ConfigFile), func(b []byte) []byte {
				return bytes.Replace(b, []byte("principals:\n"), []byte("principals:\n  - name: mallory\n    nation: EST\n    clearances:\n      NATO: COSMIC TOP SECRET\n"), 1)
			})
		}, ConfigFile, []string{"does not verify", "principal mallory (nation EST; clearances NATO COSMIC TOP SECRET", "added (needs custodians"}},
		{"weakened policy", func(t *testing.T, cn *custodyNode) {
			editFile(t, filepath.Join(cn.dir, ConfigFile), func(b []byte) []byte {
				return bytes.Replace(b, []byte("survive: jurisdictions=1"), []byte("survive: sites=1"), 1)
			})
		}, ConfigFile, []string{"vault registry policy weakened: survives less"}},
		{"dropped vault", func(t *testing.T, cn *custodyNode) {
			editFile(t, filepath.Join(cn.dir, ConfigFile), func(b []byte) []byte {
				i := bytes.Index(b, []byte("vaults:\n"))
				j := bytes.Index(b, []byte("# embassy-authenticator"))
				return append(b[:i:i], b[j:]...)
			})
		}, ConfigFile, []string{"vault registry removed"}},
		{"truncated file", func(t *testing.T, cn *custodyNode) {
			// Cut at a line boundary so that it still parses: the last
			// vault and the authenticator are gone.
			editFile(t, filepath.Join(cn.dir, ConfigFile), func(b []byte) []byte {
				return b[:bytes.Index(b, []byte("vaults:\n"))]
			})
		}, ConfigFile, []string{"carries no authenticator", "vault registry removed"}},
		{"file from another node", func(t *testing.T, cn *custodyNode) {
			os.WriteFile(filepath.Join(cn.dir, ConfigFile), otherConfig, 0o600)
		}, ConfigFile, []string{"does not verify", "node.id "}},
		{"older generation", func(t *testing.T, cn *custodyNode) {
			old, _ := os.ReadFile(filepath.Join(cn.dir, ConfigFile))
			// A later change, published to the sites...
			cn.n = cn.open(t)
			cn.unseal(t, "alice", "bob")
			if err := cn.n.AddVault(VaultConfig{Name: "later", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
				t.Fatal(err)
			}
			cn.n.Close()
			// ...and the copy from before put back.
			os.WriteFile(filepath.Join(cn.dir, ConfigFile), old, 0o600)
		}, ConfigFile, []string{"older than the sites' generation", "vault later removed"}},
		{"swapped custodian sign_key", func(t *testing.T, cn *custodyNode) {
			mallory, _ := custody.GenerateCustodian("bob")
			editFile(t, filepath.Join(cn.dir, CustodyFile), func(b []byte) []byte {
				return bytes.Replace(b, []byte(cn.keys["bob"].Public().SignKey), []byte(mallory.Public().SignKey), 1)
			})
		}, CustodyFile, []string{"does not verify", "custodian bob's sign_key replaced"}},
		{"forged request", func(t *testing.T, cn *custodyNode) {
			editFile(t, filepath.Join(cn.dir, RequestsFile), func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"status": "pending"`), []byte(`"status": "executed"`), 1)
			})
		}, RequestsFile, []string{"does not verify", "status pending → executed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cn := newCustodyNode(t)
			fill(t, cn.n)
			cn.n.AddVault(VaultConfig{Name: "empty", Erasure: "4+2", Survive: "jurisdictions=1"})
			pendingID(t, cn.n.DeleteVault(cn.n.As(context.Background(), "admin"), "empty"))
			cn.n.Close()
			c.attack(t, cn)
			sitesDir := filepath.Join(cn.dir, "..", "sites")
			before := snapshotSites(t, sitesDir)

			n := cn.open(t)
			if _, err := n.Unseal(cn.share(t, "alice")); err != nil {
				t.Fatal(err)
			}
			_, err := n.Unseal(cn.share(t, "carol"))
			if !errors.Is(err, ErrNodeFile) {
				t.Fatalf("unseal: %v, want a node file error", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "\n  "+c.file+": ") {
				t.Errorf("the error does not name %s:\n%s", c.file, msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the error lacks %q:\n%s", w, msg)
				}
			}
			if !strings.Contains(msg, "way forward: restore the sites' copy with 'embassy config restore'") {
				t.Errorf("the error gives no way forward:\n%s", msg)
			}
			// Nothing served, nothing written.
			if !n.Sealed() || n.Keys() != nil || n.Engine != nil {
				t.Fatal("the node unsealed, or kept keys or an engine")
			}
			rec := newRecorder()
			n.Handler().ServeHTTP(rec, httptestRequest("GET", "/registry/2026/0.bin", ""))
			if rec.code != 503 {
				t.Errorf("S3 answered %d, want 503", rec.code)
			}
			if !sameSnapshot(before, snapshotSites(t, sitesDir)) {
				t.Error("the refused unseal changed the sites")
			}

			// The way forward works: restored from the sites, the node
			// opens, and the local file is kept aside.
			n.Close()
			r, err := OpenWith(t.Context(), cn.dir, OpenOptions{Logger: n.Log, Restore: NodeFiles})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.Unseal(cn.share(t, "alice"))
			if _, err := r.Unseal(cn.share(t, "bob")); err != nil {
				t.Fatalf("unseal after restoring: %v", err)
			}
			if len(r.Restored) != 1 || r.Restored[0] != c.file || r.SetAside[c.file] == "" {
				t.Fatalf("restored %v, set aside %v", r.Restored, r.SetAside)
			}
			if _, err := os.Stat(r.SetAside[c.file]); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Engine.Vault("registry"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLocalKeyNodeChecksToo: a node whose root key is a local file runs
// the same checks (against accidents: whoever reads the directory holds
// the key).
func TestLocalKeyNodeChecksToo(t *testing.T) {
	n := newNode(t)
	n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"})
	n.Close()
	editFile(t, filepath.Join(n.Dir, ConfigFile), func(b []byte) []byte {
		return bytes.Replace(b, []byte("survive: jurisdictions=1"), []byte("survive: sites=1"), 1)
	})
	before := snapshotSites(t, filepath.Join(n.Dir, "..", "sites"))
	_, err := Open(t.Context(), n.Dir, n.Log)
	if !errors.Is(err, ErrNodeFile) || !strings.Contains(err.Error(), "vault registry policy weakened") {
		t.Fatalf("open: %v", err)
	}
	if !sameSnapshot(before, snapshotSites(t, filepath.Join(n.Dir, "..", "sites"))) {
		t.Error("the refused open changed the sites")
	}
}

// TestCustodyTakeoverRefused: the attack that obtained the root key of a
// custodian-split node. Whoever can write the node directory replaces two
// custodians' keys in custody.json with keys they hold and adds a
// custody.resplit request (to recipients they hold) to requests.json, then
// approves it with their keys, hoping the node seals new shares to them.
func TestCustodyTakeoverRefused(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	fill(t, n)
	m1, _ := custody.GenerateCustodian("alice")
	m2, _ := custody.GenerateCustodian("bob")
	carol := cn.keys["carol"].Public()
	pubs, _ := json.Marshal([]custody.CustodianPublic{m1.Public(), m2.Public(), carol})

	forge := func() string {
		// custody.json: alice's and bob's keys replaced.
		editFile(t, filepath.Join(cn.dir, CustodyFile), func(b []byte) []byte {
			for name, m := range map[string]*custody.CustodianKey{"alice": m1, "bob": m2} {
				real := cn.keys[name].Public()
				b = bytes.Replace(b, []byte(real.SignKey), []byte(m.Public().SignKey), 1)
				rj, _ := json.Marshal(real.Recipient)
				mj, _ := json.Marshal(m.Public().Recipient)
				b = bytes.Replace(b, rj[1:len(rj)-1], mj[1:len(mj)-1], 1)
			}
			return b
		})
		// requests.json: a resplit request with a correct digest.
		r := &Request{ID: "00112233aabb", Op: vault.Operation{Kind: "custody.resplit", Summary: "routine share refresh",
			Params: map[string]string{"custodians": string(pubs), "threshold": "2"}}, Requester: "carol",
			Created: time.Now().UTC(), Expires: time.Now().UTC().Add(time.Hour), Needed: 2, Status: StatusPending}
		r.Digest = r.digest(n.Config.Node.ID)
		b, _ := json.MarshalIndent([]*Request{r}, "", "  ")
		os.WriteFile(filepath.Join(cn.dir, RequestsFile), append(b, '\n'), 0o600)
		return r.ID
	}
	approve := func(n *Node, id string) error {
		var last error
		for _, m := range []*custody.CustodianKey{m1, m2} {
			rs, err := n.Requests()
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.ID == id {
					body, _ := json.Marshal(map[string]string{"custodian": m.Name(), "signature": base64.StdEncoding.EncodeToString(m.Sign(ApprovalMessage(n.Config.Node.ID, r.ID, r.Digest, true)))})
					rec := newRecorder()
					// The attacker signs the request with the keys it put in
					// custody.json, as a custodian signs.
					req := httptestRequest("POST", "/_embassy/v1/custody/requests/"+id+"/approve", string(body))
					SignCustodianRequest(req, n.Config.Node.ID, m.Name(), body, m.Sign, time.Now())
					n.Handler().ServeHTTP(rec, req)
					if rec.code == 200 {
						return errors.New("approval accepted: " + rec.body.String())
					}
					last = errors.New(rec.body.String())
				}
			}
		}
		return last
	}
	noShares := func() {
		t.Helper()
		entries, _ := os.ReadDir(cn.dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "shares-") {
				t.Fatalf("the node wrote new share files (%s)", e.Name())
			}
		}
	}

	// 1. On the running, unsealed node: the forged request is refused with
	// requests.json, and the node keeps the custodians it verified.
	id := forge()
	// (The running node authenticates custodians with the custody record
	// it verified at unseal, so the signatures fail before requests.json
	// is even read.)
	if err := approve(n, id); err == nil || !strings.Contains(err.Error(), "requests.json") && !strings.Contains(err.Error(), "signature is not custodian") {
		t.Fatalf("approval on the running node: %v", err)
	}
	noShares()

	// 2. After a restart: the node is sealed, decides nothing, and the
	// real custodians' unseal is refused naming custody.json.
	n.Close()
	sitesDir := filepath.Join(cn.dir, "..", "sites")
	before := snapshotSites(t, sitesDir)
	n2 := cn.open(t)
	if err := approve(n2, id); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("approval on the sealed node: %v", err)
	}
	n2.Unseal(cn.share(t, "carol"))
	_, err := n2.Unseal(cn.share(t, "alice"))
	if !errors.Is(err, ErrNodeFile) || !strings.Contains(err.Error(), "custodian alice's sign_key replaced") || !strings.Contains(err.Error(), "requests.json: carries no authenticator") {
		t.Fatalf("unseal: %v", err)
	}
	if !n2.Sealed() {
		t.Fatal("unsealed")
	}
	if err := approve(n2, id); err == nil {
		t.Fatal("approved after the refused unseal")
	}
	noShares()
	if !sameSnapshot(before, snapshotSites(t, sitesDir)) {
		t.Error("the sites changed")
	}
}

// TestMissingCustodyFile: a node with custodians whose custody.json was
// deleted does not fall back to looking for a root key file silently: it
// says what is missing and how to get it back.
func TestMissingCustodyFile(t *testing.T) {
	cn := newCustodyNode(t)
	cn.n.Close()
	os.Remove(filepath.Join(cn.dir, CustodyFile))
	_, err := Open(t.Context(), cn.dir, cn.n.Log)
	if err == nil || !strings.Contains(err.Error(), "custody.json is missing") || !strings.Contains(err.Error(), "embassy recover") {
		t.Fatalf("open without custody.json: %v", err)
	}
}
