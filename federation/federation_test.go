package federation

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/custody"
)

type testNode struct {
	keys *custody.Keyring
	peer *custody.PeerKeys
	card []byte
}

func newTestNode(t testing.TB, id, nation string) testNode {
	t.Helper()
	root, _ := custody.GenerateRootKey()
	k, err := custody.NewKeyring(root)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := custody.NewIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	k = k.WithIdentity(ident)
	pk, err := custody.GeneratePeerKeys()
	if err != nil {
		t.Fatal(err)
	}
	card, err := MakeCard(Card{NodeID: id, Nation: nation, Endpoint: "127.0.0.1:7443", Identity: ident.Public(), HPKE: pk.HPKEPublicKey(), TLSPin: pk.TLSPin()}, k.SignHybrid)
	if err != nil {
		t.Fatal(err)
	}
	return testNode{keys: k, peer: pk, card: card}
}

func TestCard(t *testing.T) {
	n := newTestNode(t, "est1", "EST")
	c, err := ParseCard(n.card)
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeID != "est1" || c.Nation != "EST" || c.TLSPin != n.peer.TLSPin() || !c.Identity.Equal(n.keys.Identity().Public()) {
		t.Errorf("card fields: %+v", c)
	}
	if !strings.HasPrefix(c.Fingerprint, "SHA256:") {
		t.Errorf("fingerprint %q", c.Fingerprint)
	}
	other := newTestNode(t, "lux1", "LUX")
	for name, forged := range map[string][]byte{
		"nation changed":   bytes.Replace(n.card, []byte("nation EST"), []byte("nation LUX"), 1),
		"endpoint changed": bytes.Replace(n.card, []byte("127.0.0.1:7443"), []byte("127.0.0.1:7444"), 1),
		// another node's keys under this card's signature
		"keys swapped": append(bytes.Clone(n.card[:bytes.Index(n.card, []byte("ed25519 "))]), other.card[bytes.Index(other.card, []byte("ed25519 ")):bytes.Index(other.card, []byte("signature "))]...),
		"truncated":    n.card[:len(n.card)-10],
		"empty":        nil,
	} {
		if name == "keys swapped" {
			forged = append(forged, n.card[bytes.Index(n.card, []byte("signature ")):]...)
		}
		if _, err := ParseCard(forged); !errors.Is(err, ErrCard) {
			t.Errorf("%s: %v, want ErrCard", name, err)
		}
	}
}

func TestGrant(t *testing.T) {
	est := newTestNode(t, "est1", "EST")
	lux := newTestNode(t, "lux1", "LUX")
	lc, _ := ParseCard(lux.card)
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	g, err := SignGrant(Grant{ID: NewGrantID(), Owner: "est1", OwnerNation: "EST", Vault: "registry", Prefix: "2026/", To: "LUX",
		Grantee: "lux1", GranteeCard: lc.Fingerprint, Level: LevelRead, Ceiling: "NATO SECRET", Issued: now, Expires: now.Add(180 * 24 * time.Hour)}, est.keys.SignHybrid)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseGrant(g.Raw, est.keys.Identity().Public())
	if err != nil {
		t.Fatal(err)
	}
	if got.Prefix != "2026/" || got.Ceiling != "NATO SECRET" || !got.Expires.Equal(g.Expires) || !got.Covers("registry", "2026/a") || got.Covers("registry", "2025/a") {
		t.Errorf("grant: %+v", got)
	}
	if _, err := ParseGrant(g.Raw, lux.keys.Identity().Public()); !errors.Is(err, ErrGrant) {
		t.Errorf("verified with another node's key: %v", err)
	}
	if _, err := ParseGrant(bytes.Replace(g.Raw, []byte(`"NATO SECRET"`), []byte(`"COSMIC TOP SECRET"`), 1), est.keys.Identity().Public()); !errors.Is(err, ErrGrant) {
		t.Errorf("ceiling raised: %v", err)
	}
	if _, err := SignGrant(Grant{ID: NewGrantID(), Owner: "est1", OwnerNation: "EST", Vault: "registry", To: "EST", Grantee: "lux1", GranteeCard: lc.Fingerprint,
		Level: LevelRead, Ceiling: "NATO SECRET", Issued: now, Expires: now.Add(time.Hour)}, est.keys.SignHybrid); !errors.Is(err, ErrGrant) {
		t.Errorf("grant to the owner's own nation: %v", err)
	}
	odrl, err := g.ODRL()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(odrl, &doc); err != nil {
		t.Fatal(err)
	}
	perm := doc["permission"].([]any)[0].(map[string]any)
	if doc["@type"] != "Agreement" || perm["action"] != "read" || !strings.Contains(string(odrl), g.Expires.Format(time.RFC3339)) {
		t.Errorf("ODRL: %s", odrl)
	}
}

func TestRequestAuth(t *testing.T) {
	est := newTestNode(t, "est1", "EST")
	lux := newTestNode(t, "lux1", "LUX")
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	body := []byte(`{}`)
	r, _ := http.NewRequest(http.MethodPost, "https://x"+PathPrefix+"grants", bytes.NewReader(body))
	if err := SignRequest(r, body, "lux1", "est1", now, lux.keys.SignHybrid); err != nil {
		t.Fatal(err)
	}
	var replay ReplayCache
	a, err := ParseRequestAuth(r.Header)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(r.Method, r.URL.Path, "est1", lux.keys.Identity().Public(), body, now.Add(time.Second), &replay); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := a.Verify(r.Method, r.URL.Path, "est1", lux.keys.Identity().Public(), body, now.Add(2*time.Second), &replay); !errors.Is(err, ErrReplay) {
		t.Errorf("replay: %v, want ErrReplay", err)
	}
	var fresh ReplayCache
	for name, tc := range map[string]struct {
		path, self string
		key        custody.PublicIdentity
		body       []byte
		at         time.Time
	}{
		"other path":      {PathPrefix + "list", "est1", lux.keys.Identity().Public(), body, now},
		"other callee":    {r.URL.Path, "fin1", lux.keys.Identity().Public(), body, now},
		"other signer":    {r.URL.Path, "est1", est.keys.Identity().Public(), body, now},
		"body changed":    {r.URL.Path, "est1", lux.keys.Identity().Public(), []byte(`{"a":1}`), now},
		"too late":        {r.URL.Path, "est1", lux.keys.Identity().Public(), body, now.Add(MaxSkew + time.Second)},
		"from the future": {r.URL.Path, "est1", lux.keys.Identity().Public(), body, now.Add(-MaxSkew - time.Second)},
	} {
		if err := a.Verify(r.Method, tc.path, tc.self, tc.key, tc.body, tc.at, &fresh); !errors.Is(err, ErrRequest) || errors.Is(err, ErrReplay) {
			t.Errorf("%s: %v, want ErrRequest", name, err)
		}
	}
}

// TestCardHosting: a card carries the hosting commitment, signed like the
// rest; one without it is unchanged; lines out of order, half a
// commitment, or an altered one are refused.
func TestCardHosting(t *testing.T) {
	n := newTestNode(t, "lux1", "LUX")
	base, err := ParseCard(n.card)
	if err != nil || base.Hosting != nil {
		t.Fatalf("card without hosting: %+v %v", base.Hosting, err)
	}
	c := base
	for _, h := range []Hosting{
		{Jurisdiction: "LUX", Provider: "Government data centre", Control: "LUX"},
		{Jurisdiction: "BEL", Provider: "lux-gov-dc", Control: "LUX", Accredited: "NATO SECRET"},
	} {
		c.Hosting = &h
		b, err := MakeCard(c, n.keys.SignHybrid)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseCard(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Hosting == nil || *got.Hosting != h || got.Fingerprint == base.Fingerprint {
			t.Fatalf("hosting %+v read back as %+v (fingerprint %s, without %s)", h, got.Hosting, got.Fingerprint, base.Fingerprint)
		}
		altered := bytes.Replace(b, []byte("hosting-jurisdiction "+h.Jurisdiction), []byte("hosting-jurisdiction EST"), 1)
		if _, err := ParseCard(altered); !errors.Is(err, ErrCard) {
			t.Errorf("altered hosting jurisdiction: %v", err)
		}
		reordered := bytes.Replace(b, []byte("hosting-provider "+h.Provider+"\nhosting-control "+h.Control+"\n"), []byte("hosting-control "+h.Control+"\nhosting-provider "+h.Provider+"\n"), 1)
		if _, err := ParseCard(reordered); !errors.Is(err, ErrCard) {
			t.Errorf("hosting lines out of order: %v", err)
		}
	}
	for _, bad := range []Hosting{{Jurisdiction: "Lux", Provider: "x", Control: "LUX"}, {Jurisdiction: "LUX", Control: "LUX"}, {Jurisdiction: "LUX", Provider: "a\nnode x", Control: "LUX"}} {
		c.Hosting = &bad
		if _, err := MakeCard(c, n.keys.SignHybrid); !errors.Is(err, ErrCard) {
			t.Errorf("hosting %+v: %v", bad, err)
		}
	}
}
