package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/custody/shamir"
	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// custodyNode is a node whose root key is split 2-of-3 among alice, bob
// and carol, unsealed, with six sites and a vault.
type custodyNode struct {
	n      *Node
	dir    string
	keys   map[string]*custody.CustodianKey
	shares map[string][]byte // share files
}

func newCustodyNode(t *testing.T) *custodyNode {
	t.Helper()
	cn := &custodyNode{dir: filepath.Join(t.TempDir(), "node"), keys: map[string]*custody.CustodianKey{}, shares: map[string][]byte{}}
	var pubs []custody.CustodianPublic
	for _, name := range []string{"alice", "bob", "carol"} {
		k, err := custody.GenerateCustodian(name)
		if err != nil {
			t.Fatal(err)
		}
		cn.keys[name] = k
		pubs = append(pubs, k.Public())
	}
	_, err := Init(cn.dir, InitOptions{Nation: "EST", Custodians: pubs, Threshold: 2, Share: func(c string, f []byte) error {
		cn.shares[c] = f
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cn.dir, "root.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a node with custodians keeps a root key file: %v", err)
	}
	cn.n = cn.open(t)
	cn.unseal(t, "alice", "bob")
	for _, s := range validConfig().Sites {
		s.Path = filepath.Join(cn.dir, "..", "sites", s.ID)
		s.Accredited = "NATO SECRET"
		if err := cn.n.AddSite(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := cn.n.AddVault(VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	return cn
}

func (cn *custodyNode) open(t *testing.T) *Node {
	t.Helper()
	n, err := Open(t.Context(), cn.dir, NewLogger(LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func (cn *custodyNode) share(t *testing.T, name string) []byte {
	t.Helper()
	_, s, err := cn.keys[name].OpenShare(cn.shares[name])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (cn *custodyNode) unseal(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := cn.n.Unseal(cn.share(t, name)); err != nil {
			t.Fatalf("unseal with %s: %v", name, err)
		}
	}
	if err := cn.n.Ready(); err != nil {
		t.Fatal(err)
	}
}

func TestUnsealNeedsThreshold(t *testing.T) {
	cn := newCustodyNode(t)
	cn.n.Close()
	n := cn.open(t)
	if err := n.Ready(); !errors.Is(err, ErrSealed) {
		t.Fatalf("reopened node not sealed: %v", err)
	}
	st, err := n.Unseal(cn.share(t, "carol"))
	if err != nil || !st.Sealed || st.Given != 1 || st.Threshold != 2 {
		t.Fatalf("after one share: %+v, %v", st, err)
	}
	// The same share twice does not count twice.
	if st, _ := n.Unseal(cn.share(t, "carol")); !st.Sealed || st.Given != 1 {
		t.Fatalf("a repeated share counted twice: %+v", st)
	}
	// A share of another node's key is refused outright.
	other := newCustodyNode(t)
	if _, err := n.Unseal(other.share(t, "alice")); !errors.Is(err, shamir.ErrForeignShare) {
		t.Fatalf("foreign share: %v", err)
	}
	if !n.Sealed() {
		t.Fatal("node unsealed by a foreign share")
	}
	if st, err := n.Unseal(cn.share(t, "bob")); err != nil || st.Sealed {
		t.Fatalf("threshold reached: %+v, %v", st, err)
	}
	// Unsealed with carol and bob, it reads what alice and bob's session wrote.
	if _, err := n.Engine.Vault("registry"); err != nil {
		t.Fatal(err)
	}
}

func TestSealedNodeServesOnlyStatus(t *testing.T) {
	cn := newCustodyNode(t)
	cn.n.Close()
	n := cn.open(t)
	h := n.Handler()
	rec := func(method, path, body string) (int, string) {
		req := httptestRequest(method, path, body)
		w := newRecorder()
		h.ServeHTTP(w, req)
		return w.code, w.body.String()
	}
	if code, body := rec("GET", "/", ""); code != 503 || !strings.Contains(body, "sealed") {
		t.Fatalf("S3 on a sealed node: %d %s", code, body)
	}
	if code, body := rec("GET", "/_embassy/status", ""); code != 200 || !strings.Contains(body, `"sealed": true`) {
		t.Fatalf("status on a sealed node: %d %s", code, body)
	}
	// The anonymous status says no more than that.
	if code, body := rec("GET", "/_embassy/status", ""); strings.Contains(body, n.Config.Node.ID) || strings.Contains(body, "shamir") || strings.Contains(body, "EST") {
		t.Fatalf("anonymous status tells more than sealed: %d %s", code, body)
	}
	signed := func(path, who string, body []byte) (int, string) {
		req := httptestRequest("POST", path, string(body))
		SignCustodianRequest(req, n.Config.Node.ID, who, body, cn.keys[who].Sign, time.Now())
		w := newRecorder()
		h.ServeHTTP(w, req)
		return w.code, w.body.String()
	}
	share := func(name string) []byte {
		b, _ := json.Marshal(map[string][]byte{"share": cn.share(t, name)})
		return b
	}
	// An unsigned share is refused, whatever its content.
	if code, body := rec("POST", "/_embassy/v1/custody/unseal", string(share("alice"))); code != 401 {
		t.Fatalf("unsigned share: %d %s", code, body)
	}
	if code, body := signed("/_embassy/v1/custody/unseal", "alice", share("alice")); code != 200 || !strings.Contains(body, `"given": 1`) {
		t.Fatalf("first share: %d %s", code, body)
	}
	// A custodian gives only their own share.
	if code, body := signed("/_embassy/v1/custody/unseal", "bob", share("carol")); code != 400 || !strings.Contains(body, "is not custodian bob's") {
		t.Fatalf("carol's share from bob: %d %s", code, body)
	}
	// The old path is an alias, with the same authentication.
	code, body := signed("/_embassy/unseal", "carol", share("carol"))
	if code != 200 || !strings.Contains(body, `"sealed": false`) {
		t.Fatalf("second share: %d %s", code, body)
	}
}

// TestSealedNodeListsRequests: a sealed node, which holds no keys,
// answers its custodians' request listing (requests.json read as it is,
// unverified) and refuses their decisions (409) without recording them;
// once unsealed it lists the same request, verified, still pending.
func TestSealedNodeListsRequests(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	if err := n.AddVault(VaultConfig{Name: "empty", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	id := pendingID(t, n.DeleteVault(n.As(context.Background(), "admin"), "empty"))
	n.Close()
	cn.n = cn.open(t)
	n = cn.n
	if !n.Sealed() || n.Keys() != nil {
		t.Fatalf("reopened: sealed %v, keys %v", n.Sealed(), n.Keys() != nil)
	}
	h := n.Handler()
	call := func(method, path, who string, body []byte) (int, string) {
		req := httptestRequest(method, path, string(body))
		SignCustodianRequest(req, n.Config.Node.ID, who, body, cn.keys[who].Sign, time.Now())
		w := newRecorder()
		h.ServeHTTP(w, req)
		return w.code, w.body.String()
	}
	listed := func(when string) Request {
		t.Helper()
		code, body := call("GET", "/_embassy/v1/custody/requests", "alice", nil)
		var rs []Request
		if code != 200 || json.Unmarshal([]byte(body), &rs) != nil || len(rs) != 1 || rs[0].ID != id {
			t.Fatalf("%s: custodian's request listing: %d %s", when, code, body)
		}
		return rs[0]
	}
	if r := listed("sealed"); r.Status != StatusPending || len(r.Approvals) != 0 {
		t.Fatalf("sealed: request %s is %s with %d approvals", id, r.Status, len(r.Approvals))
	}
	r := listed("sealed")
	sig := cn.keys["alice"].Sign(ApprovalMessage(n.Config.Node.ID, r.ID, r.Digest, true))
	body, _ := json.Marshal(map[string]string{"signature": base64.StdEncoding.EncodeToString(sig)})
	if code, resp := call("POST", "/_embassy/v1/custody/requests/"+id+"/approve", "alice", body); code != 409 || !strings.Contains(resp, "sealed") {
		t.Fatalf("approval on a sealed node: %d %s", code, resp)
	}
	cn.unseal(t, "alice", "bob")
	if r := listed("unsealed"); r.Status != StatusPending || len(r.Approvals) != 0 {
		t.Fatalf("unsealed: request %s is %s with %d approvals (a decision taken while sealed was kept?)", id, r.Status, len(r.Approvals))
	}
}

// approve signs and submits a decision as a custodian would.
func (cn *custodyNode) decide(t *testing.T, id, who string, approve bool) (*Request, error) {
	t.Helper()
	rs, err := cn.n.Requests()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.ID == id {
			sig := cn.keys[who].Sign(ApprovalMessage(cn.n.Config.Node.ID, r.ID, r.Digest, approve))
			return cn.n.Decide(t.Context(), id, who, approve, sig)
		}
	}
	t.Fatalf("no request %s", id)
	return nil, nil
}

func pendingID(t *testing.T, err error) string {
	t.Helper()
	var pe *vault.PendingError
	if !errors.As(err, &pe) {
		t.Fatalf("operation did not wait for approval: %v", err)
	}
	return pe.RequestID
}

// TestTwoPersonOperations: each dangerous operation does nothing with one
// approval and takes effect with two.
func TestTwoPersonOperations(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	ctx := n.As(context.Background(), "admin")
	put := func(key string, o vault.PutOptions) vault.ObjectInfo {
		o.Size = 5
		info, err := n.Engine.Put(ctx, "registry", key, bytes.NewReader([]byte("hello")), o)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	gov := put("gov", vault.PutOptions{Lock: &manifest.Lock{Mode: "GOVERNANCE", Until: time.Now().Add(time.Hour)}})
	secret := put("secret", vault.PutOptions{Label: "NATO SECRET//REL TO EST"})
	n.AddVault(VaultConfig{Name: "empty", Erasure: "4+2", Survive: "jurisdictions=1"})
	n.AddVault(VaultConfig{Name: "kept", Erasure: "4+2", Survive: "jurisdictions=1", ObjectLock: &ObjectLockConfig{Mode: "COMPLIANCE", Years: 10}})
	lockOf := func() ObjectLockConfig {
		for _, v := range n.Config.Vaults {
			if v.Name == "kept" && v.ObjectLock != nil {
				return *v.ObjectLock
			}
		}
		return ObjectLockConfig{}
	}

	ops := []struct {
		name   string
		start  func() error
		done   func() bool
		notyet func() bool
	}{
		{"delete vault",
			func() error { return n.DeleteVault(ctx, "empty") },
			func() bool { _, err := n.Engine.Vault("empty"); return err != nil },
			func() bool { _, err := n.Engine.Vault("empty"); return err == nil }},
		{"weaken policy",
			func() error {
				return n.SetVaultPolicy(ctx, "registry", VaultConfig{Erasure: "4+2", Survive: "sites=1"})
			},
			func() bool { v, _ := n.Engine.Vault("registry"); return v.Policy.Survive.Jurisdictions == 0 },
			func() bool { v, _ := n.Engine.Vault("registry"); return v.Policy.Survive.Jurisdictions == 1 }},
		{"bypass governance",
			func() error {
				_, err := n.Engine.Delete(ctx, "registry", "gov", vault.DeleteOptions{VersionID: gov.VersionID, BypassGovernance: true})
				return err
			},
			func() bool {
				_, err := n.Engine.Stat(ctx, "registry", "gov", gov.VersionID)
				return errors.Is(err, vault.ErrNoSuchVersion)
			},
			func() bool { _, err := n.Engine.Stat(ctx, "registry", "gov", gov.VersionID); return err == nil }},
		{"lower a label",
			func() error {
				_, err := n.Engine.SetLabel(ctx, "registry", "secret", secret.VersionID, "NATO UNCLASSIFIED//REL TO EST")
				return err
			},
			func() bool {
				i, _ := n.Engine.Stat(ctx, "registry", "secret", secret.VersionID)
				return strings.Contains(i.Label, "UNCLASSIFIED")
			},
			func() bool {
				i, _ := n.Engine.Stat(ctx, "registry", "secret", secret.VersionID)
				return strings.Contains(i.Label, "SECRET")
			}},
		{"rotate the vault key",
			func() error { _, err := n.RotateVaultKey(ctx, "registry"); return err },
			func() bool { v, _ := n.Engine.Vault("registry"); return v.KeyGen == 2 },
			func() bool { v, _ := n.Engine.Vault("registry"); return v.KeyGen <= 1 }},
		{"remove a cleared principal",
			func() error { return n.RemovePrincipal(ctx, "admin") },
			func() bool { return n.Principal("admin").Nation == "" },
			func() bool { return n.Principal("admin").Nation == "EST" }},
		{"add a cleared principal",
			func() error {
				return n.AddPrincipal(ctx, access.Principal{Name: "spy", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}})
			},
			func() bool { return n.Principal("spy").Nation == "EST" },
			func() bool { return n.Principal("spy").Nation == "" }},
		{"add an uncleared operator",
			func() error {
				return n.AddPrincipal(ctx, access.Principal{Name: "ops", Nation: "EST", Clearances: map[string]string{"NATO": "UNCLASSIFIED"}, VaultRoles: map[string][]string{"registry": {"operator"}}})
			},
			func() bool { return n.Principal("ops").Nation == "EST" },
			func() bool { return n.Principal("ops").Nation == "" }},
		{"copy under a label released to another nation",
			func() error {
				src, err := n.Engine.Stat(ctx, "registry", "secret", secret.VersionID)
				if err != nil {
					return err
				}
				return n.Engine.CheckCopy(ctx, src, "registry", "released", "NATO SECRET//REL TO EST, LUX", map[string]string{"content_type": "text/plain"})
			},
			func() bool {
				i, err := n.Engine.Stat(ctx, "registry", "released", manifest.ID{})
				return err == nil && strings.Contains(i.Label, "LUX") && i.ContentType == "text/plain"
			},
			func() bool {
				_, err := n.Engine.Stat(ctx, "registry", "released", manifest.ID{})
				return errors.Is(err, vault.ErrNoSuchKey)
			}},
		{"remove a vault's default retention",
			func() error { return n.SetObjectLock(ctx, "kept", ObjectLockConfig{}) },
			func() bool { return lockOf().Mode == "" },
			func() bool { return lockOf().Mode == "COMPLIANCE" && lockOf().Years == 10 }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			id := pendingID(t, op.start())
			if !op.notyet() {
				t.Fatal("took effect before any approval")
			}
			if r, err := cn.decide(t, id, "alice", true); err != nil || r.Status != StatusPending {
				t.Fatalf("first approval: %+v, %v", r, err)
			}
			if !op.notyet() {
				t.Fatal("took effect with one approval")
			}
			if _, err := cn.decide(t, id, "alice", true); !errors.Is(err, ErrReplay) {
				t.Fatalf("second approval by the same custodian: %v", err)
			}
			r, err := cn.decide(t, id, "carol", true)
			if err != nil || r.Status != StatusExecuted {
				t.Fatalf("second approval: %+v, %v", r, err)
			}
			if !op.done() {
				t.Fatal("did not take effect with two approvals")
			}
		})
	}
	// The key rotation re-wrapped every data key: objects still read.
	r, err := n.Engine.Get(ctx, "registry", "secret", vault.GetOptions{Length: -1})
	if err != nil {
		t.Fatalf("read after rotation: %v", err)
	}
	r.Close()
}

func TestApprovalAttacks(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	// A custodian who makes a request cannot approve it.
	aliceCtx := vault.WithPrincipal(context.Background(), access.Principal{Name: "alice", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}})
	n.AddVault(VaultConfig{Name: "empty", Erasure: "4+2", Survive: "jurisdictions=1"})
	id := pendingID(t, n.DeleteVault(aliceCtx, "empty"))
	if _, err := cn.decide(t, id, "alice", true); !errors.Is(err, ErrSelfApproval) {
		t.Fatalf("self-approval: %v", err)
	}
	rs, _ := n.Requests()
	r := rs[0]
	msg := ApprovalMessage(n.Config.Node.ID, r.ID, r.Digest, true)
	// A signature by one custodian presented as another's.
	if _, err := n.Decide(t.Context(), id, "bob", true, cn.keys["carol"].Sign(msg)); !errors.Is(err, ErrBadApproval) {
		t.Fatalf("carol's signature as bob's: %v", err)
	}
	// An approval of another request replayed here.
	other := pendingID(t, n.SetVaultPolicy(aliceCtx, "registry", VaultConfig{Erasure: "4+3"}))
	rs, _ = n.Requests()
	var or *Request
	for _, x := range rs {
		if x.ID == other {
			or = x
		}
	}
	replayed := cn.keys["bob"].Sign(ApprovalMessage(n.Config.Node.ID, or.ID, or.Digest, true))
	if _, err := n.Decide(t.Context(), id, "bob", true, replayed); !errors.Is(err, ErrBadApproval) {
		t.Fatalf("approval of another request replayed: %v", err)
	}
	// A rejection signature does not count as an approval.
	rej := cn.keys["bob"].Sign(ApprovalMessage(n.Config.Node.ID, r.ID, r.Digest, false))
	if _, err := n.Decide(t.Context(), id, "bob", true, rej); !errors.Is(err, ErrBadApproval) {
		t.Fatalf("rejection used as approval: %v", err)
	}
	// A request edited in requests.json by hand (here, its target) is
	// refused with the whole file: it no longer verifies.
	path := filepath.Join(cn.dir, RequestsFile)
	b, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(b, []byte(`"vault": "empty"`), []byte(`"vault": "registry"`), 1), 0o600)
	if _, err := n.Decide(t.Context(), id, "bob", true, cn.keys["bob"].Sign(msg)); !errors.Is(err, ErrNodeFile) {
		t.Fatalf("approval with a hand-edited requests.json: %v", err)
	}
	os.WriteFile(path, b, 0o600)
	// A request changed after it was made, even by the node itself (its
	// digest then no longer matches), no longer accepts approvals.
	rs, _ = n.Requests()
	for _, x := range rs {
		if x.ID == id {
			x.Op.Params["vault"] = "registry"
		}
	}
	if err := n.saveRequests(rs); err != nil {
		t.Fatal(err)
	}
	if _, err := cn.decide(t, id, "bob", true); !errors.Is(err, ErrBadApproval) {
		t.Fatalf("approval of a changed request: %v", err)
	}
	// A rejected request cannot then be approved.
	if r, err := cn.decide(t, other, "bob", false); err != nil || r.Status != StatusRejected {
		t.Fatalf("rejection: %+v, %v", r, err)
	}
	if _, err := cn.decide(t, other, "carol", true); !errors.Is(err, ErrNotPending) {
		t.Fatalf("approval after rejection: %v", err)
	}
	// An expired request is refused.
	n.Config.TwoPerson.TTL = durationYAML(time.Nanosecond)
	n.AddVault(VaultConfig{Name: "empty2", Erasure: "4+2", Survive: "jurisdictions=1"})
	exp := pendingID(t, n.DeleteVault(aliceCtx, "empty2"))
	time.Sleep(time.Millisecond)
	if _, err := cn.decide(t, exp, "bob", true); !errors.Is(err, ErrNotPending) {
		t.Fatalf("approval of an expired request: %v", err)
	}
}

// Lost shares: re-splitting needs the node unsealed (T existing shares)
// and two custodians' approval; afterwards old shares no longer work.
func TestResplitReplacesShares(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	dave, _ := custody.GenerateCustodian("dave")
	cn.keys["dave"] = dave
	pubs := []custody.CustodianPublic{cn.keys["alice"].Public(), cn.keys["bob"].Public(), dave.Public()}
	ctx := n.As(context.Background(), "admin")
	id := pendingID(t, func() error { _, err := n.Resplit(ctx, pubs, 2); return err }())
	cn.decide(t, id, "alice", true)
	r, err := cn.decide(t, id, "carol", true)
	if err != nil || r.Status != StatusExecuted || !strings.Contains(r.Result, "shares-") {
		t.Fatalf("resplit: %+v, %v", r, err)
	}
	dir := strings.TrimPrefix(r.Result, "new share files in ")
	oldCarol := cn.share(t, "carol")
	for _, name := range []string{"alice", "bob", "dave"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".share"))
		if err != nil {
			t.Fatal(err)
		}
		cn.shares[name] = b
	}
	n.Close()
	n2 := cn.open(t)
	if _, err := n2.Unseal(oldCarol); !errors.Is(err, shamir.ErrForeignShare) {
		t.Fatalf("a share from before the re-split: %v", err)
	}
	cn.n = n2
	cn.unseal(t, "dave", "bob")
}

// TestRootKeyRotation: two custodians approve; the new root's shares
// unseal, the old ones do not; everything reads; and a rotation interrupted
// after the switch resumes after a restart.
func TestRootKeyRotation(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	want := fill(t, n)
	oldKeyID := n.Keys().ManifestKeyID()
	ctx := n.As(context.Background(), "admin")
	// A delete marker is sealed and signed like any manifest: the rotation
	// must rewrite it too (it once did not, and the marker failed
	// verification under the new root).
	if _, err := n.Engine.Delete(ctx, "registry", "gone", vault.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	id := pendingID(t, func() error { _, _, err := n.RotateRootKey(ctx); return err }())
	cn.decide(t, id, "alice", true)
	if n.Keys().ManifestKeyID() != oldKeyID {
		t.Fatal("root rotated with one approval")
	}
	r, err := cn.decide(t, id, "bob", true)
	if err != nil || r.Status != StatusExecuted {
		t.Fatalf("rotation: %+v, %v", r, err)
	}
	if n.Keys().ManifestKeyID() == oldKeyID || n.RotationInProgress() {
		t.Fatal("root not rotated, or rotation left unfinished")
	}
	checkObjects(t, n, want)
	if rep, err := n.Keeper().Scrub(context.Background(), housekeeping.ScrubOptions{}); err != nil || rep.Lost != 0 || len(rep.Errors) > 0 {
		t.Fatalf("scrub after the rotation: %+v, %v", rep, err)
	}
	// The evidence journal (the marker's record among others) was sealed
	// again under the new root: every batch still verifies.
	if c, err := n.Keeper().Collect(context.Background(), housekeeping.CollectOptions{}); err != nil || !c.Ran || c.BadBatches != 0 {
		t.Fatalf("collection after the rotation: %+v, %v", c, err)
	}
	dir := r.Result[strings.Index(r.Result, "in ")+3:]
	oldCarol := cn.share(t, "carol")
	for _, name := range []string{"alice", "bob", "carol"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".share"))
		if err != nil {
			t.Fatal(err)
		}
		cn.shares[name] = b
	}
	// Interrupt a second rotation right after the switch.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := n.rotateRoot(cctx); err == nil {
		t.Fatal("a cancelled rotation reported success")
	}
	if !n.RotationInProgress() {
		t.Fatal("no rotation in progress after an interrupted one")
	}
	shares2 := ""
	entries, _ := os.ReadDir(cn.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "shares-") && filepath.Join(cn.dir, e.Name()) != dir {
			shares2 = filepath.Join(cn.dir, e.Name())
		}
	}
	for _, name := range []string{"alice", "bob", "carol"} {
		b, _ := os.ReadFile(filepath.Join(shares2, name+".share"))
		cn.shares[name] = b
	}
	n.Close()
	n2 := cn.open(t)
	if _, err := n2.Unseal(oldCarol); !errors.Is(err, shamir.ErrForeignShare) {
		t.Fatalf("a share from before the rotations: %v", err)
	}
	cn.n = n2
	cn.unseal(t, "carol", "alice")
	if !n2.RotationInProgress() {
		t.Fatal("restart lost the rotation in progress")
	}
	checkObjects(t, n2, want) // readable mid-rotation, old and new keys alike
	st, err := n2.ResumeRootRotation(context.Background())
	if err != nil || st.Rewrapped == 0 {
		t.Fatalf("resume: %+v, %v", st, err)
	}
	if n2.RotationInProgress() {
		t.Fatal("rotation still in progress after resuming")
	}
	checkObjects(t, n2, want)
	// A rebuild from the sites alone needs only the newest root.
	n2.Index.Reset(context.Background())
	if _, err := n2.Keeper().RebuildIndex(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	checkObjects(t, n2, want)
}

// Approvals written into requests.json by hand, and a lowered approval
// count, do not count: recorded approvals are verified again and the
// configuration sets how many are needed.
func TestRequestsFileIsNotTrusted(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	n.AddVault(VaultConfig{Name: "empty", Erasure: "4+2", Survive: "jurisdictions=1"})
	id := pendingID(t, n.DeleteVault(n.As(context.Background(), "admin"), "empty"))
	rs, _ := n.Requests()
	r := rs[0]
	// A forged approval (bob's name, carol's signature) and needed=1,
	// with the digest recomputed to match.
	r.Approvals = []Decision{{Custodian: "bob", At: time.Now(), Signature: cn.keys["carol"].Sign(ApprovalMessage(n.Config.Node.ID, r.ID, r.Digest, true))}}
	r.Needed = 1
	r.Digest = r.digest(n.Config.Node.ID)
	if err := n.saveRequests(rs); err != nil {
		t.Fatal(err)
	}
	got, err := cn.decide(t, id, "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusPending || len(got.Approvals) != 1 || got.Needed != 2 {
		t.Fatalf("after one real approval: status %s, %d approvals, needed %d", got.Status, len(got.Approvals), got.Needed)
	}
	if _, err := n.Engine.Vault("empty"); err != nil {
		t.Fatal("the vault was deleted on a forged approval")
	}
}

// On a node with custodians, deleting a vault that holds only history (a
// noncurrent version under a delete marker) and an open upload is a
// request: nothing goes until two custodians approve, and then the
// history and the upload go with the vault.
func TestDeleteVaultWithHistoryTwoPerson(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	ctx := vault.AsSystem(context.Background())
	aliceCtx := vault.WithPrincipal(context.Background(), access.Principal{Name: "alice", Nation: "EST", Clearances: map[string]string{"NATO": "SECRET"}})
	if err := n.AddVault(VaultConfig{Name: "hist", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	body := []byte("an old record")
	if _, err := n.Engine.Put(ctx, "hist", "k", bytes.NewReader(body), vault.PutOptions{Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Engine.Delete(ctx, "hist", "k", vault.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	up, err := n.Engine.CreateUpload(ctx, "hist", "open", vault.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	versions := func() int {
		p, err := n.Index.Versions(context.Background(), "hist", index.VersionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Versions)
	}
	id := pendingID(t, n.DeleteVault(aliceCtx, "hist"))
	if _, err := n.Engine.Vault("hist"); err != nil || versions() != 2 {
		t.Fatalf("before approval: vault %v, %d versions; want the vault and its 2 versions", err, versions())
	}
	for _, c := range []string{"bob", "carol"} {
		if _, err := cn.decide(t, id, c, true); err != nil {
			t.Fatalf("approval by %s: %v", c, err)
		}
	}
	rs, _ := n.Requests()
	for _, r := range rs {
		if r.ID == id && r.Status != StatusExecuted {
			t.Fatalf("request %s: %s (%s)", id, r.Status, r.Result)
		}
	}
	if _, err := n.Engine.Vault("hist"); !errors.Is(err, vault.ErrNoSuchVault) {
		t.Errorf("the vault is still there: %v", err)
	}
	if versions() != 0 {
		t.Errorf("%d versions of the deleted vault are left in the index", versions())
	}
	if _, err := n.Index.GetUpload(context.Background(), "hist", up.ID); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("the open upload outlived its vault: %v", err)
	}
}

// TestRequestsRebuiltFromTheLog: requests.json is a cache of the audit
// log's request entries. A requests.json from which an approval and a
// rejection were taken out (written with the node's keys, as a hand edit
// on a dev node or a restored backup re-authenticated would be) is found
// to disagree with the log when the node opens, and is rebuilt from it:
// the approval and the rejection are back, the rebuild is on the log, and
// the rejected request cannot be approved.
func TestRequestsRebuiltFromTheLog(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	var err error
	ctx := n.As(context.Background(), "admin")
	for _, v := range []string{"empty", "other"} {
		if err := n.AddVault(VaultConfig{Name: v, Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
			t.Fatal(err)
		}
	}
	id1 := pendingID(t, n.DeleteVault(ctx, "empty"))
	id2 := pendingID(t, n.DeleteVault(ctx, "other"))
	saved := map[string][]byte{}
	for _, f := range []string{RequestsFile, RequestsCheckedFile} {
		if saved[f], err = os.ReadFile(filepath.Join(n.Dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cn.decide(t, id1, "alice", true); err != nil {
		t.Fatal(err)
	}
	if _, err := cn.decide(t, id2, "bob", false); err != nil {
		t.Fatal(err)
	}
	// An opening that changes nothing reads only the log's tail.
	if rep, err := n.checkRequests(t.Context()); err != nil || rep.Full || len(rep.Differences) != 0 {
		t.Fatalf("a requests.json that agrees: %+v %v", rep, err)
	}
	rs, err := n.loadRequests()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		r.Approvals, r.Rejection, r.Status = []Decision{}, nil, StatusPending
	}
	b, _ := json.MarshalIndent(rs, "", "  ")
	if err := writeNodeFile(n.Dir, n.Keys(), RequestsFile, nodeFileGen(n.Dir, n.Keys(), RequestsFile)+1, append(b, '\n')); err != nil {
		t.Fatal(err)
	}
	n.Close()
	cn.n = cn.open(t)
	cn.unseal(t, "alice", "carol")
	n = cn.n
	got := map[string]*Request{}
	rs, err = n.Requests()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		got[r.ID] = r
	}
	if r := got[id1]; r == nil || r.Status != StatusPending || len(r.Approvals) != 1 || r.Approvals[0].Custodian != "alice" {
		t.Fatalf("request %s after the rebuild: %+v", id1, r)
	}
	if r := got[id2]; r == nil || r.Status != StatusRejected || r.Rejection == nil || r.Rejection.Custodian != "bob" {
		t.Fatalf("request %s after the rebuild: %+v", id2, r)
	}
	evs, err := n.AuditLogEvents(t.Context(), AuditQuery{Kind: KindRequestRebuild})
	if err != nil || len(evs) != 1 || !strings.Contains(evs[0].Detail["differences"], "approvals on the log missing from requests.json: alice") {
		t.Fatalf("the rebuild on the log: %+v %v", evs, err)
	}
	// Both files restored from a backup taken before the decisions (an
	// older generation than the sites' descriptor holds) are refused at
	// unseal by the node-file check, before the log is read; with the
	// current files back, the node opens.
	n.Close()
	current := map[string][]byte{}
	for f, b := range saved {
		if current[f], err = os.ReadFile(filepath.Join(n.Dir, f)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.Dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cn.n = cn.open(t)
	for _, name := range []string{"alice", "carol"} {
		_, err = cn.n.Unseal(cn.share(t, name))
	}
	if err == nil || !strings.Contains(err.Error(), "older than the sites' generation") {
		t.Fatalf("unseal over a restored requests.json: %v", err)
	}
	cn.n.Close()
	for f, b := range current {
		if err := os.WriteFile(filepath.Join(n.Dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cn.n = cn.open(t)
	cn.unseal(t, "alice", "carol")
	n = cn.n
	// The rejected request stays rejected; the approved one needs only
	// one more approval, which carries it out.
	if _, err := cn.decide(t, id2, "carol", true); !errors.Is(err, ErrNotPending) {
		t.Fatalf("approving the rejected request: %v", err)
	}
	if r, err := cn.decide(t, id1, "carol", true); err != nil || r.Status != StatusExecuted {
		t.Fatalf("the second approval: %+v %v", r, err)
	}
	if _, err := n.Engine.Vault("empty"); err == nil {
		t.Fatal("the vault was not deleted")
	}
}
