package custody

import (
	"bytes"
	"testing"
	"time"
)

// The audit log key outlives a root rotation (identity.json re-sealed
// under another root) and an identity replacement, and never opens what
// another node sealed.
func TestAuditKeyOutlivesRotationAndReplacement(t *testing.T) {
	k, id := testIdentity(t, testKeyring(t))
	commit := bytes.Repeat([]byte{7}, 32)
	sealed, err := k.SealAuditEntry(commit, []byte("aad"), []byte("event"))
	if err != nil {
		t.Fatal(err)
	}
	opens := func(name string, k *Keyring) {
		t.Helper()
		pt, err := k.OpenAuditEntry(commit, []byte("aad"), sealed)
		if err != nil || string(pt) != "event" {
			t.Fatalf("%s: %q, %v", name, pt, err)
		}
	}
	opens("same keyring", k)
	// Root rotation: sealed under a new root, opened with it.
	next := testKeyring(t)
	b, err := next.SealIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	back, err := next.OpenIdentity(b)
	if err != nil {
		t.Fatal(err)
	}
	opens("after a root rotation", next.WithIdentity(back))
	// Identity replacement.
	repl, _, err := back.Replace(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	opens("after an identity replacement", next.WithIdentity(repl))
	// Another node.
	_, other := testIdentity(t, testKeyring(t))
	if _, err := k.WithIdentity(other).OpenAuditEntry(commit, []byte("aad"), sealed); err == nil {
		t.Fatal("another node's key opened the entry")
	}
	// Changed AAD or id.
	if _, err := k.OpenAuditEntry(commit, []byte("aaD"), sealed); err == nil {
		t.Fatal("opened with another AAD")
	}
	if _, err := k.OpenAuditEntry(bytes.Repeat([]byte{8}, 32), []byte("aad"), sealed); err == nil {
		t.Fatal("opened under another entry id")
	}
}

// An identity sealed before identities carried a log key gets one derived
// from its seeds: the same at every opening.
func TestAuditKeyOfOlderIdentity(t *testing.T) {
	k, id := testIdentity(t, testKeyring(t))
	id.id.logKey = nil // as sealed before the audit log
	b, err := k.SealIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	a1, err := k.OpenIdentity(b)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := k.OpenIdentity(b)
	commit := bytes.Repeat([]byte{1}, 32)
	sealed, err := k.WithIdentity(a1).SealAuditEntry(commit, nil, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.WithIdentity(a2).OpenAuditEntry(commit, nil, sealed); err != nil {
		t.Fatalf("derived log key differs between openings: %v", err)
	}
	// Sealed again, it now carries the key explicitly.
	b2, _ := k.SealIdentity(a1)
	a3, _ := k.OpenIdentity(b2)
	if _, err := k.WithIdentity(a3).OpenAuditEntry(commit, nil, sealed); err != nil {
		t.Fatalf("log key not kept when resealed: %v", err)
	}
}
