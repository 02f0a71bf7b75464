package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/site/dir"
)

// TestAllianceRoutesWork: the alliance through the admin API of a node
// with custodians: its card once a listener is set, a peer's card checked
// and its trust sent to the custodians, a fingerprint that does not match
// refused, grants listed.
func TestAllianceRoutesWork(t *testing.T) {
	f := newOpFixture(t)
	n := f.cn.n
	if r := f.op(t, "GET", "/_embassy/v1/alliance/card", "aud", nil); r.status != 400 || !strings.Contains(r.body, "alliance.listen") {
		t.Errorf("card without a listener: %d %s", r.status, r.body)
	}
	c := *n.Config
	c.Alliance.Listen = "127.0.0.1:7443"
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	r := f.op(t, "GET", "/_embassy/v1/alliance/card", "aud", nil)
	var own PeerCardInfo
	if r.status != 200 || json.Unmarshal([]byte(r.body), &own) != nil || !strings.HasPrefix(own.Card, "embassy peer card v1\n") {
		t.Fatalf("card: %d %s", r.status, r.body)
	}
	// Another node's card.
	lux := newAllyNode(t, "LUX")
	card, fp := lux.card(t)
	if r := f.op(t, "POST", "/_embassy/v1/peers", "boss", PeerAddRequest{Card: string(card), Fingerprint: own.Fingerprint}); r.status != 400 || !strings.Contains(r.body, "fingerprint mismatch") {
		t.Errorf("wrong fingerprint: %d %s", r.status, r.body)
	}
	if r := f.op(t, "POST", "/_embassy/v1/peers", "boss", PeerAddRequest{Card: string(own.Card), Fingerprint: own.Fingerprint}); r.status != 400 || !strings.Contains(r.body, "own") {
		t.Errorf("its own card: %d %s", r.status, r.body)
	}
	if r := f.op(t, "POST", "/_embassy/v1/peers", "boss", PeerAddRequest{Card: string(card), Fingerprint: fp}); r.status != 409 || !strings.Contains(r.body, "approval_required") {
		t.Errorf("peer add on a node with custodians: %d %s", r.status, r.body)
	}
	if r := f.op(t, "GET", "/_embassy/v1/peers", "aud", nil); r.status != 200 || strings.TrimSpace(r.body) != "[]" {
		t.Errorf("peers before approval: %d %s", r.status, r.body)
	}
	if r := f.op(t, "POST", "/_embassy/v1/shares", "boss", GrantRequest{Scope: "registry", To: "LUX", Level: "read", Ceiling: "NATO RESTRICTED", Expires: "30d"}); r.status != 404 || !strings.Contains(r.body, "no trusted peer") {
		t.Errorf("grant to a nation with no peer: %d %s", r.status, r.body)
	}
	if r := f.op(t, "GET", "/_embassy/v1/shares", "aud", nil); r.status != 200 || strings.TrimSpace(r.body) != "[]" {
		t.Errorf("shares: %d %s", r.status, r.body)
	}
	if r := f.op(t, "POST", "/_embassy/v1/shares/00112233445566778899aabbccddeeff/revoke", "ops", nil); r.status != 404 {
		t.Errorf("revoke of no grant: %d %s", r.status, r.body)
	}
}

// TestAllianceSurvivesRecover: peers, grants and the peer keys come back
// with 'embassy recover' from one site: the recovered node's card is the
// same (allies' pins hold), it still trusts its peer and its grants still
// verify.
func TestAllianceSurvivesRecover(t *testing.T) {
	est, lux := newAllyNode(t, "EST"), newAllyNode(t, "LUX")
	trust(t, est, lux)
	g, err := est.Grant(est.As(t.Context(), "admin"), GrantRequest{Scope: "registry/2026/", To: "LUX", Level: "read", Ceiling: "NATO SECRET", Expires: "30d"})
	if err != nil {
		t.Fatal(err)
	}
	card, fp := est.card(t)
	root, err := custody.ReadKeyFile(filepath.Join(est.Dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	sitePath := est.Config.Sites[2].Path
	est.stop()
	est.Close()
	if err := os.RemoveAll(est.Dir); err != nil {
		t.Fatal(err)
	}
	from, _ := dir.Open(sitePath)
	r, _, err := Recover(t.Context(), RecoverOptions{Dir: filepath.Join(t.TempDir(), "recovered"), From: from, RootKey: &root})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	again, err := r.PeerCard()
	if err != nil {
		t.Fatal(err)
	}
	c, err := federation.ParseCard(again)
	if err != nil || c.Fingerprint != fp || string(again[:bytes.Index(again, []byte("signature "))]) != string(card[:bytes.Index(card, []byte("signature "))]) {
		t.Errorf("the recovered node's card differs (%v):\n%s\nwas\n%s", err, again, card)
	}
	if ps := r.Peers(); len(ps) != 1 || ps[0].Card.NodeID != lux.Config.Node.ID {
		t.Errorf("recovered peers: %+v", ps)
	}
	if gs := r.Grants(); len(gs) != 1 || gs[0].ID != g.ID || gs[0].State != "active" {
		t.Errorf("recovered grants: %+v", gs)
	}
}

// TestServeStartsThePeerListener: a serving node with alliance.listen
// answers its peers there, pinned to its card.
func TestServeStartsThePeerListener(t *testing.T) {
	lux := newAllyNode(t, "LUX")
	n := newNode(t)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	c := *n.Config
	c.Alliance.Listen = addr
	c.S3.Credentials = []CredentialConfig{{Principal: "admin", AccessKey: "AKADMIN", SecretKey: "secret-of-admin"}}
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	card, err := n.PeerCard()
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := federation.ParseCard(card)
	if _, err := lux.AddPeer(lux.As(t.Context(), "admin"), card, pc.Fingerprint); err != nil {
		t.Fatal(err)
	}
	lc, lfp := lux.card(t)
	if _, err := n.AddPeer(n.As(t.Context(), "admin"), lc, lfp); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- n.Serve(ctx, ServeOptions{Address: "127.0.0.1:0", Ready: func(string, bool) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	var resp federation.GrantsResponse
	if err := lux.CallPeer(t.Context(), n.Config.Node.ID, federation.EndpointGrants, struct{}{}, &resp); err != nil {
		t.Fatalf("the peer listener of a serving node: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve ended: %v", err)
	}
}

// TestAllianceConfigGates: config edit keeps the gates of peer add and
// share grant, and never removes a grant or undoes a revocation.
func TestAllianceConfigGates(t *testing.T) {
	lux := newAllyNode(t, "LUX")
	card, fp := lux.card(t)
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	peer := PeerConfig{Card: string(card), Fingerprint: fp, Added: at}
	grant := GrantConfig{Grant: "embassy grant v1\nid …"}
	revoked := GrantConfig{Grant: grant.Grant, Revoked: &at, RevokedBy: "admin"}
	no := false
	optedOut := peer
	optedOut.Witness = &no
	// The same node's card with another endpoint: another key could be
	// on it just the same.
	changeConfig(t, lux.Node, func(c *Config) { c.Alliance.Endpoint = "127.0.0.1:1" })
	card2, fp2 := lux.card(t)
	replaced := PeerConfig{Card: string(card2), Fingerprint: fp2, Added: at}
	replacedOut := replaced
	replacedOut.Witness = &no
	with := func(a AllianceConfig) *Config { c := validConfig(); c.Alliance = a; return c }
	luxID := lux.Config.Node.ID
	guest := func(quota string) GuestConfig {
		return GuestConfig{Node: luxID, Nation: "LUX", Quota: quota, Added: at}
	}
	// hosting is an alliance section offering hosting, with peers and
	// guests.
	hosting := func(xs ...any) AllianceConfig {
		a := AllianceConfig{Hosting: &HostingConfig{Path: "hosted", Jurisdiction: "EST", Provider: "gov-dc", Control: "EST"}}
		for _, x := range xs {
			switch v := x.(type) {
			case PeerConfig:
				a.Peers = append(a.Peers, v)
			case GuestConfig:
				a.Guests = append(a.Guests, v)
			}
		}
		return a
	}
	for _, tc := range []struct {
		name      string
		old, next AllianceConfig
		want      Gate
	}{
		{"listen", AllianceConfig{}, AllianceConfig{Listen: "127.0.0.1:7443"}, Free},
		{"peer added", AllianceConfig{}, AllianceConfig{Peers: []PeerConfig{peer}}, Custodians},
		{"peer removed, a witness", AllianceConfig{Peers: []PeerConfig{peer}}, AllianceConfig{}, Custodians},
		{"peer removed, opted out of witnessing", AllianceConfig{Peers: []PeerConfig{optedOut}}, AllianceConfig{}, Free},
		{"peer's card replaced", AllianceConfig{Peers: []PeerConfig{peer}}, AllianceConfig{Peers: []PeerConfig{replaced}}, Custodians},
		{"peer's card replaced, opted out", AllianceConfig{Peers: []PeerConfig{optedOut}}, AllianceConfig{Peers: []PeerConfig{replacedOut}}, Custodians},
		{"peer opted out of witnessing", AllianceConfig{Peers: []PeerConfig{peer}}, AllianceConfig{Peers: []PeerConfig{optedOut}}, Custodians},
		{"peer witnessing again", AllianceConfig{Peers: []PeerConfig{optedOut}}, AllianceConfig{Peers: []PeerConfig{peer}}, Free},
		{"grant added", AllianceConfig{}, AllianceConfig{Grants: []GrantConfig{grant}}, Custodians},
		{"grant revoked", AllianceConfig{Grants: []GrantConfig{grant}}, AllianceConfig{Grants: []GrantConfig{revoked}}, Free},
		{"revocation undone", AllianceConfig{Grants: []GrantConfig{revoked}}, AllianceConfig{Grants: []GrantConfig{grant}}, Refused},
		{"grant removed", AllianceConfig{Grants: []GrantConfig{grant}}, AllianceConfig{}, Refused},
		{"guest added", hosting(peer), hosting(peer, guest("1MiB")), Custodians},
		{"guest added that is not a trusted peer", hosting(), hosting(guest("1MiB")), Refused},
		{"guest added of another nation than its card's", hosting(peer), hosting(peer, GuestConfig{Node: luxID, Nation: "FIN", Quota: "1MiB", Added: at}), Refused},
		{"guest's quota raised", hosting(peer, guest("1MiB")), hosting(peer, guest("2MiB")), Custodians},
		{"guest's quota lowered", hosting(peer, guest("2MiB")), hosting(peer, guest("1MiB")), Free},
		{"guest's quota lowered to 0", hosting(peer, guest("2MiB")), hosting(peer, guest("0")), Free},
		{"guest removed", hosting(peer, guest("1MiB")), hosting(peer), Refused},
		{"guest kept after its peer was removed", hosting(peer, guest("1MiB")), hosting(guest("1MiB")), Custodians},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chs := allianceChanges(with(tc.old), with(tc.next))
			if len(chs) != 1 || chs[0].Gate != tc.want {
				t.Errorf("changes %+v, want one %s", chs, tc.want)
			}
		})
	}
}

// TestRemovingAWitnessNeedsCustodians: a trusted peer witnesses the node's
// log by default, so removing it leaves one witness fewer, as removing one
// of audit.witnesses does. From the attacker's side, through the admin
// API: an operator's DELETE only makes a request; asking again, one
// custodian's approval, the same custodian approving twice, and a
// forged approval change nothing; the second custodian's approval removes
// the peer. A peer opted out of witnessing is removed at once.
func TestRemovingAWitnessNeedsCustodians(t *testing.T) {
	f := newOpFixture(t)
	n := f.cn.n
	ctx := t.Context()
	lux, fin := newAllyNode(t, "LUX"), newAllyNode(t, "FIN")
	for _, p := range []*allyNode{lux, fin} {
		card, fp := p.card(t)
		if err := n.addPeer(ctx, string(card), fp); err != nil {
			t.Fatal(err)
		}
	}
	luxID, finID := lux.Config.Node.ID, fin.Config.Node.ID
	trusted := func(id string) bool { _, ok := n.peer(id); return ok }
	var pending OpError
	r := f.op(t, "DELETE", "/_embassy/v1/peers/"+luxID, "ops", nil)
	if r.status != 409 || json.Unmarshal([]byte(r.body), &pending) != nil || pending.Code != "approval_required" {
		t.Fatalf("an operator removing a witnessing peer: %d %s", r.status, r.body)
	}
	rs, err := n.Requests()
	if err != nil || len(rs) == 0 || rs[0].Op.Kind != KindPeerRemove || rs[0].Op.Params["peer"] != luxID || !strings.Contains(rs[0].Op.Summary, "a witness of this node's audit log") {
		t.Fatalf("requests: %+v %v", rs, err)
	}
	id := rs[0].ID
	// Asking again is the same request, and removes nothing.
	if r := f.op(t, "DELETE", "/_embassy/v1/peers/"+luxID, "ops", nil); r.status != 409 || !strings.Contains(r.body, id) {
		t.Fatalf("asking again: %d %s", r.status, r.body)
	}
	if !trusted(luxID) {
		t.Fatal("the peer went before any approval")
	}
	decide := func(who string, key *custody.CustodianKey, sig []byte) adminResp {
		body, _ := json.Marshal(map[string]string{"signature": base64.StdEncoding.EncodeToString(sig)})
		return f.custodian(t, "POST", "/_embassy/v1/custody/requests/"+id+"/approve", who, key, body)
	}
	digest := rs[0].Digest
	alice, bob := f.cn.keys["alice"], f.cn.keys["bob"]
	// bob's name on alice's signature of the approval: refused.
	if r := decide("bob", bob, alice.Sign(ApprovalMessage(n.Config.Node.ID, id, digest, true))); r.status != 403 {
		t.Errorf("a forged approval: %d %s", r.status, r.body)
	}
	if r := decide("alice", alice, alice.Sign(ApprovalMessage(n.Config.Node.ID, id, digest, true))); r.status != 200 || !strings.Contains(r.body, `"status": "pending"`) {
		t.Fatalf("alice's approval: %d %s", r.status, r.body)
	}
	if r := decide("alice", alice, alice.Sign(ApprovalMessage(n.Config.Node.ID, id, digest, true))); r.status != 403 {
		t.Errorf("alice approving twice: %d %s", r.status, r.body)
	}
	if !trusted(luxID) {
		t.Fatal("one custodian removed a witnessing peer")
	}
	if r := decide("bob", bob, bob.Sign(ApprovalMessage(n.Config.Node.ID, id, digest, true))); r.status != 200 || !strings.Contains(r.body, `"status": "executed"`) {
		t.Fatalf("bob's approval: %d %s", r.status, r.body)
	}
	if trusted(luxID) {
		t.Fatal("the peer is still trusted after two approvals")
	}
	if k := auditKinds(t, n); k[KindPeerRemove] != 1 {
		t.Errorf("peer.remove on the log %d times", k[KindPeerRemove])
	}

	// Opted out of witnessing: removing it takes nothing away from the
	// log's witnesses.
	no := false
	c := *n.Config
	c.Alliance.Peers = slices.Clone(c.Alliance.Peers)
	for i := range c.Alliance.Peers {
		c.Alliance.Peers[i].Witness = &no
	}
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	if r := f.op(t, "DELETE", "/_embassy/v1/peers/"+finID, "ops", nil); r.status != 200 || trusted(finID) {
		t.Fatalf("removing a peer opted out of witnessing: %d %s", r.status, r.body)
	}
}

// TestApprovedPeerRemovalIsOfOneCard: an approval to stop trusting a
// peer's card does not remove the card that replaced it meanwhile.
func TestApprovedPeerRemovalIsOfOneCard(t *testing.T) {
	cn := newCustodyNode(t)
	n := cn.n
	lux := newAllyNode(t, "LUX")
	card, fp := lux.card(t)
	if err := n.addPeer(t.Context(), string(card), fp); err != nil {
		t.Fatal(err)
	}
	id := pendingID(t, n.RemovePeer(n.As(t.Context(), "admin"), lux.Config.Node.ID))
	// LUX's card changes (another endpoint), and is trusted anew.
	changeConfig(t, lux.Node, func(c *Config) { c.Alliance.Endpoint = "127.0.0.1:1" })
	card2, fp2 := lux.card(t)
	if err := n.removePeer(t.Context(), lux.Config.Node.ID, fp); err != nil {
		t.Fatal(err)
	}
	if err := n.addPeer(t.Context(), string(card2), fp2); err != nil {
		t.Fatal(err)
	}
	if _, err := cn.decide(t, id, "alice", true); err != nil {
		t.Fatal(err)
	}
	r, err := cn.decide(t, id, "bob", true)
	if err != nil || r.Status != StatusFailed || !strings.Contains(r.Result, "not the "+fp+" whose removal was asked for") {
		t.Fatalf("the approved removal of the old card: %+v %v", r, err)
	}
	if p, ok := n.peer(lux.Config.Node.ID); !ok || p.Card.Fingerprint != fp2 {
		t.Fatalf("the new card is not trusted: %+v %v", p, ok)
	}
}

// TestHostingThroughTheAdminAPI: 'embassy --node URL host add' on a node
// with custodians. Hosting a peer gives it room on this node: an operator
// may not ask (admin role), an admin's request waits for two custodians
// and hosts nothing meanwhile, and two approvals host it with its store
// made; more room is a request again, less room is not.
func TestHostingThroughTheAdminAPI(t *testing.T) {
	f := newOpFixture(t)
	n := f.cn.n
	lux := newAllyNode(t, "LUX")
	card, fp := lux.card(t)
	if err := n.addPeer(t.Context(), string(card), fp); err != nil {
		t.Fatal(err)
	}
	luxID := lux.Config.Node.ID
	hosted := mkHostingDir(t)
	c := *n.Config
	c.Alliance.Hosting = &HostingConfig{Path: hosted, Jurisdiction: "EST", Provider: "gov-dc", Control: "EST"}
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	if r := f.op(t, "POST", "/_embassy/v1/host/guests", "ops", HostRequest{Peer: "LUX", Quota: "1MiB"}); r.status != 403 {
		t.Errorf("an operator hosting a peer: %d %s", r.status, r.body)
	}
	r := f.op(t, "POST", "/_embassy/v1/host/guests", "boss", HostRequest{Peer: "LUX", Quota: "1MiB"})
	if r.status != 409 || !strings.Contains(r.body, "approval_required") {
		t.Fatalf("an admin hosting a peer: %d %s", r.status, r.body)
	}
	// approve has alice and bob approve the newest request; new: nothing
	// is hosted until the last approval.
	approve := func(new bool) {
		t.Helper()
		rs, err := n.Requests()
		if err != nil || len(rs) == 0 || rs[0].Op.Kind != KindHostAdd || rs[0].Status != StatusPending {
			t.Fatalf("requests: %+v %v", rs, err)
		}
		for _, who := range []string{"alice", "bob"} {
			if new && len(n.Guests()) != 0 {
				t.Fatalf("hosted before %s approved: %+v", who, n.Guests())
			}
			sig := f.cn.keys[who].Sign(ApprovalMessage(n.Config.Node.ID, rs[0].ID, rs[0].Digest, true))
			body, _ := json.Marshal(map[string]string{"signature": base64.StdEncoding.EncodeToString(sig)})
			if r := f.custodian(t, "POST", "/_embassy/v1/custody/requests/"+rs[0].ID+"/approve", who, f.cn.keys[who], body); r.status != 200 {
				t.Fatalf("%s's approval: %d %s", who, r.status, r.body)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(hosted, luxID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a store made before approval: %v", err)
	}
	approve(true)
	if gs := n.Guests(); len(gs) != 1 || gs[0].Node != luxID || gs[0].Quota != 1<<20 {
		t.Fatalf("guests after two approvals: %+v", gs)
	}
	if _, err := os.Stat(filepath.Join(hosted, luxID, "s")); err != nil {
		t.Fatalf("the guest's store: %v", err)
	}
	if r := f.op(t, "GET", "/_embassy/v1/host", "aud", nil); r.status != 200 || !strings.Contains(r.body, `"nation": "LUX"`) || !strings.Contains(r.body, `"quota": 1048576`) {
		t.Errorf("host ls: %d %s", r.status, r.body)
	}
	// More room: a request again; the quota stays until approved.
	if r := f.op(t, "POST", "/_embassy/v1/host/guests", "boss", HostRequest{Peer: "LUX", Quota: "2MiB"}); r.status != 409 {
		t.Fatalf("raising the quota: %d %s", r.status, r.body)
	}
	if gs := n.Guests(); gs[0].Quota != 1<<20 {
		t.Fatalf("quota raised without approval: %+v", gs)
	}
	approve(false)
	if gs := n.Guests(); gs[0].Quota != 2<<20 {
		t.Fatalf("quota after approval: %+v", gs)
	}
	// Less room: at once.
	if r := f.op(t, "POST", "/_embassy/v1/host/guests", "boss", HostRequest{Peer: "LUX", Quota: "0"}); r.status != 200 || n.Guests()[0].Quota != 0 {
		t.Fatalf("lowering the quota: %d %s", r.status, r.body)
	}
}
