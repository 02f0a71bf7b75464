package node

import (
	"encoding/json"
	"strings"
	"testing"
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
