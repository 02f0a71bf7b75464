package custody

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

func testIdentity(t *testing.T, k *Keyring) (*Keyring, *Identity) {
	t.Helper()
	id, err := NewIdentity("0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	return k.WithIdentity(id), id
}

func TestIdentitySealRoundTrip(t *testing.T) {
	k := testKeyring(t)
	_, id := testIdentity(t, k)
	id.AddLegacy(k.LegacyPublicKey())
	b, err := k.SealIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	back, err := k.OpenIdentity(b)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Public().Equal(id.Public()) || back.NodeID != id.NodeID || len(back.Legacy) != 1 || !back.Created.Equal(id.Created) {
		t.Fatalf("round trip: %+v, want %+v", back, id)
	}
	// What it signs verifies with what was sealed.
	msg := []byte("embassy test\x00hello")
	sig, _ := k.WithIdentity(back).SignHybrid(msg)
	if err := id.Public().Verify(msg, sig); err != nil {
		t.Fatal(err)
	}
	// Unverified public read.
	node, pub, err := ReadPublicIdentity(b)
	if err != nil || node != id.NodeID || !pub.Equal(id.Public()) {
		t.Fatalf("ReadPublicIdentity: %s %v", node, err)
	}
	// Another root does not open it.
	if _, err := testKeyring(t).OpenIdentity(b); !errors.Is(err, ErrIdentity) {
		t.Fatalf("another root: %v", err)
	}
}

// TestIdentityFileTamper: every field of identity.json is covered, so
// whoever cannot unwrap it cannot change the public key, add a legacy or
// previous key, or move it to another node.
func TestIdentityFileTamper(t *testing.T) {
	k := testKeyring(t)
	_, id := testIdentity(t, k)
	b, _ := k.SealIdentity(id)
	_, other := testIdentity(t, k)
	ob, _ := k.SealIdentity(other)
	otherPub := between(string(ob), `"ed25519": "`, `"`)
	cases := map[string]string{
		"node id":          strings.Replace(string(b), id.NodeID, "fedcba9876543210", 1),
		"created":          strings.Replace(string(b), `"created": "`, `"created": "1`, 1),
		"public key":       strings.Replace(string(b), between(string(b), `"ed25519": "`, `"`), otherPub, 1),
		"legacy key":       strings.Replace(string(b), `"legacy_keys": []`, `"legacy_keys": ["`+otherPub+`"]`, 1),
		"previous":         strings.Replace(string(b), `"previous": []`, `"previous": [{"ed25519": "`+otherPub+`", "ml_dsa_44": ""}]`, 1),
		"unknown field":    strings.Replace(string(b), `"format"`, `"extra": 1, "format"`, 1),
		"truncated":        string(b[:len(b)/2]),
		"wrapped of other": strings.Replace(string(b), between(string(b), `"wrapped": "`, `"`), between(string(ob), `"wrapped": "`, `"`), 1),
	}
	for name, c := range cases {
		if c == string(b) {
			t.Fatalf("%s: no change made", name)
		}
		if _, err := k.OpenIdentity([]byte(c)); !errors.Is(err, ErrIdentity) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func between(s, a, b string) string {
	_, after, _ := strings.Cut(s, a)
	v, _, _ := strings.Cut(after, b)
	return v
}

// TestRootRotationKeepsIdentity: a root rotation re-wraps the identity
// under the new root; what it signed before verifies after with the same
// public identity, and the legacy root-derived key still verifies.
func TestRootRotationKeepsIdentity(t *testing.T) {
	old := testKeyring(t)
	legacySig, _ := old.Sign([]byte("written before identities"))
	oldID, id := testIdentity(t, old)
	id.AddLegacy(old.LegacyPublicKey())
	sealed, _ := old.SealIdentity(id)
	before, _ := oldID.SignHybrid([]byte("statement"))
	compact, _ := oldID.Sign([]byte("manifest"))

	next := testKeyring(t)
	// Mid-rotation, the new keyring opens the identity sealed under the old root.
	mid, err := next.WithPrevious(old).OpenIdentity(sealed)
	if err != nil {
		t.Fatal(err)
	}
	resealed, _ := next.SealIdentity(mid)
	after, err := next.OpenIdentity(resealed)
	if err != nil {
		t.Fatal(err)
	}
	if !after.Public().Equal(id.Public()) {
		t.Fatal("rotation changed the identity")
	}
	nk := next.WithIdentity(after)
	for name, c := range map[string]struct{ msg, sig []byte }{
		"hybrid statement": {[]byte("statement"), before},
		"compact manifest": {[]byte("manifest"), compact},
		"legacy":           {[]byte("written before identities"), legacySig},
	} {
		if err := nk.Verify(c.msg, c.sig); err != nil {
			t.Errorf("%s after rotation: %v", name, err)
		}
	}
	if err := id.Public().Verify([]byte("statement"), before); err != nil {
		t.Error(err)
	}
	// The old root's own key without the legacy record does not verify
	// on a keyring of the new root: the record is what carries it.
	if err := next.Verify([]byte("written before identities"), legacySig); err == nil {
		t.Error("a keyring without the identity accepted the old root's key")
	}
}

func TestSignVerify(t *testing.T) {
	k, id := testIdentity(t, testKeyring(t))
	msg := []byte("embassy test\x00message")
	compact, _ := k.Sign(msg)
	hybrid, _ := k.SignHybrid(msg)
	if len(compact) != ed25519.SignatureSize || len(hybrid) != HybridSignatureSize {
		t.Fatalf("sizes %d, %d", len(compact), len(hybrid))
	}
	for name, sig := range map[string][]byte{"compact": compact, "hybrid": hybrid} {
		if err := k.Verify(msg, sig); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := id.Public().Verify(msg, sig); err != nil {
			t.Errorf("%s with the public identity: %v", name, err)
		}
		if err := k.Verify([]byte("another message"), sig); err == nil {
			t.Errorf("%s verified another message", name)
		}
	}
	// A hybrid signature needs both halves: a valid Ed25519 half with a
	// broken ML-DSA half fails, and the other way round.
	for _, i := range []int{10, ed25519.SignatureSize + 10} {
		bad := bytes.Clone(hybrid)
		bad[i] ^= 1
		if err := k.Verify(msg, bad); err == nil {
			t.Errorf("hybrid with byte %d flipped verified", i)
		}
	}
	// Another identity's signature is not the node's.
	other, _ := testIdentity(t, testKeyring(t))
	s, _ := other.Sign(msg)
	if err := k.Verify(msg, s); !errors.Is(err, ErrNotNodeSignature) {
		t.Errorf("another node's signature: %v", err)
	}
	// Bindings name the identity and verify with it.
	bk := k.BindingKeys()
	if bk.KeyID() != id.Public().KeyID() {
		t.Errorf("binding key id %s, identity %s", bk.KeyID(), id.Public().KeyID())
	}
	bs, _ := bk.Sign(msg)
	if err := bk.Verify(bk.KeyID(), msg, bs); err != nil {
		t.Error(err)
	}
	if err := bk.Verify(other.BindingKeys().KeyID(), msg, bs); err == nil {
		t.Error("a binding naming another key verified")
	}
}

func TestPublicFile(t *testing.T) {
	_, id := testIdentity(t, testKeyring(t))
	b, err := id.ExportPublic()
	if err != nil {
		t.Fatal(err)
	}
	node, pub, err := ParsePublic(b)
	if err != nil || node != id.NodeID || !pub.Equal(id.Public()) {
		t.Fatalf("ParsePublic: %s, %v", node, err)
	}
	_, other := testIdentity(t, testKeyring(t))
	ob, _ := other.ExportPublic()
	lines := strings.SplitAfter(string(b), "\n")
	olines := strings.SplitAfter(string(ob), "\n")
	for name, c := range map[string]string{
		"node changed":      strings.Replace(string(b), id.NodeID, "fedcba9876543210", 1),
		"ed25519 swapped":   lines[0] + lines[1] + olines[2] + lines[3] + lines[4],
		"signature swapped": lines[0] + lines[1] + lines[2] + lines[3] + olines[4],
		"truncated":         string(b[:len(b)-10]),
		"trailing line":     string(b) + "extra\n",
		"missing header":    strings.Join(lines[1:], ""),
		"empty":             "",
	} {
		if _, _, err := ParsePublic([]byte(c)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTransition(t *testing.T) {
	k := testKeyring(t)
	_, id := testIdentity(t, k)
	msg := []byte("signed before the replacement")
	before, _ := k.WithIdentity(id).SignHybrid(msg)
	next, stmt, err := id.Replace(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ParseTransition(stmt)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Old.Equal(id.Public()) || !tr.New.Equal(next.Public()) || tr.NodeID != id.NodeID || tr.New.Equal(tr.Old) {
		t.Fatalf("transition %+v", tr)
	}
	// The new keyring signs with the new key and still verifies the old.
	nk := k.WithIdentity(next)
	if err := nk.Verify(msg, before); err != nil {
		t.Errorf("signature by the replaced identity: %v", err)
	}
	s, _ := nk.SignHybrid(msg)
	if err := id.Public().Verify(msg, s); err == nil {
		t.Error("the old identity verifies the new one's signature")
	}
	// The record survives sealing with its history.
	b, _ := k.SealIdentity(next)
	back, err := k.OpenIdentity(b)
	if err != nil || len(back.Previous) != 1 || len(back.Transitions) != 1 || !bytes.Equal(back.Transitions[0], stmt) {
		t.Fatalf("sealed replacement: %+v, %v", back, err)
	}
	// A statement naming another new key, or with a signature by someone
	// else, fails.
	_, other := testIdentity(t, k)
	_, ostmt, _ := other.Replace(time.Now())
	sl := strings.SplitAfter(string(stmt), "\n")
	ol := strings.SplitAfter(string(ostmt), "\n")
	for name, c := range map[string]string{
		"new key swapped":       strings.Join(sl[:5], "") + ol[5] + strings.Join(sl[6:], ""),
		"old signature swapped": strings.Join(sl[:7], "") + ol[7] + sl[8],
		"new signature swapped": strings.Join(sl[:8], "") + ol[8],
		"time changed":          strings.Replace(string(stmt), "2026-11-25", "2026-11-26", 1),
	} {
		if _, err := ParseTransition([]byte(c)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFileMAC(t *testing.T) {
	k := testKeyring(t)
	body := []byte("node:\n  id: x\n")
	mac, _ := k.FileMAC("node.yaml", 3, body)
	if prev, err := k.VerifyFileMAC("node.yaml", 3, body, mac); err != nil || prev {
		t.Fatalf("verify: %v %v", prev, err)
	}
	for name, c := range map[string]struct {
		file string
		gen  uint64
		body []byte
	}{
		"other file":       {"custody.json", 3, body},
		"other generation": {"node.yaml", 2, body},
		"other body":       {"node.yaml", 3, []byte("node:\n  id: y\n")},
	} {
		if _, err := k.VerifyFileMAC(c.file, c.gen, c.body, mac); !errors.Is(err, ErrFileMAC) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := testKeyring(t).VerifyFileMAC("node.yaml", 3, body, mac); !errors.Is(err, ErrFileMAC) {
		t.Errorf("another root: %v", err)
	}
	// Mid-rotation the previous root's authenticator is accepted, and
	// reported as such.
	next := testKeyring(t).WithPrevious(k)
	if prev, err := next.VerifyFileMAC("node.yaml", 3, body, mac); err != nil || !prev {
		t.Fatalf("previous root: %v %v", prev, err)
	}
}

func FuzzParsePublic(f *testing.F) {
	r, _ := GenerateRootKey()
	k, _ := NewKeyring(r)
	id, _ := NewIdentity("0123456789abcdef")
	b, _ := id.ExportPublic()
	f.Add(b)
	_, stmt, _ := id.Replace(time.Now())
	f.Add(stmt)
	sealed, _ := k.SealIdentity(id)
	f.Add(sealed)
	f.Fuzz(func(t *testing.T, b []byte) {
		if node, p, err := ParsePublic(b); err == nil {
			if node == "" || p.Ed25519 == nil {
				t.Fatal("accepted an empty identity")
			}
		}
		if tr, err := ParseTransition(b); err == nil && tr.New.Ed25519 == nil {
			t.Fatal("accepted an empty transition")
		}
		ReadPublicIdentity(b)
		if _, err := k.OpenIdentity(b); err == nil && !bytes.Equal(b, sealed) {
			// Only whitespace may differ from what was sealed.
			if !bytes.Equal(bytes.Join(bytes.Fields(b), nil), bytes.Join(bytes.Fields(sealed), nil)) {
				t.Fatalf("opened a changed identity file:\n%s", b)
			}
		}
	})
}
