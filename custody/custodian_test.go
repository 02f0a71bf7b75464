package custody

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/custody/shamir"
)

func custodians(t *testing.T, names ...string) ([]*CustodianKey, []CustodianPublic) {
	t.Helper()
	var keys []*CustodianKey
	var pubs []CustodianPublic
	for _, n := range names {
		k, err := GenerateCustodian(n)
		if err != nil {
			t.Fatal(err)
		}
		// Round-trip the key files as a custodian would.
		priv, _ := k.MarshalPrivate()
		if k, err = ParseCustodianKey(priv); err != nil {
			t.Fatal(err)
		}
		pub, _ := k.Public().MarshalPublic()
		p, err := ParseCustodianPublic(pub)
		if err != nil {
			t.Fatal(err)
		}
		keys, pubs = append(keys, k), append(pubs, p)
	}
	return keys, pubs
}

func TestUnsealThreshold(t *testing.T) {
	keys, pubs := custodians(t, "alice", "bob", "carol", "dave", "erin")
	root, _ := GenerateRootKey()
	rec, files, err := SplitRoot(root, "node-1", pubs, 3)
	if err != nil {
		t.Fatal(err)
	}
	open := func(i int) []byte {
		_, s, err := keys[i].OpenShare(files[keys[i].Name()])
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// T-1 shares fail, and say how many are needed.
	if _, err := CombineRoot(rec, [][]byte{open(0), open(3)}); !errors.Is(err, shamir.ErrNotEnoughShares) {
		t.Fatalf("two of three shares: %v", err)
	}
	// Any T shares work.
	got, err := CombineRoot(rec, [][]byte{open(4), open(1), open(2)})
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := NewKeyring(root)
	k2, _ := NewKeyring(got)
	if !k1.SameRoot(k2) {
		t.Fatal("combined root differs")
	}
	// A share from another node's set fails.
	otherRoot, _ := GenerateRootKey()
	_, otherFiles, _ := SplitRoot(otherRoot, "node-2", pubs, 3)
	_, foreign, _ := keys[0].OpenShare(otherFiles["alice"])
	if _, err := CombineRoot(rec, [][]byte{foreign, open(1), open(2)}); !errors.Is(err, shamir.ErrForeignShare) {
		t.Fatalf("foreign share: %v", err)
	}
	// A custodian cannot open another's share.
	if _, _, err := keys[1].OpenShare(files["alice"]); err == nil {
		t.Fatal("bob opened alice's share")
	}
}

func TestSplitRootRefusesBadCustody(t *testing.T) {
	_, pubs := custodians(t, "alice", "bob")
	root, _ := GenerateRootKey()
	for name, f := range map[string]func() error{
		"threshold above count": func() error { _, _, err := SplitRoot(root, "n", pubs, 3); return err },
		"threshold one":         func() error { _, _, err := SplitRoot(root, "n", pubs, 1); return err },
		"duplicate name":        func() error { _, _, err := SplitRoot(root, "n", []CustodianPublic{pubs[0], pubs[0]}, 2); return err },
	} {
		if err := f(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestApprovalSignatures(t *testing.T) {
	keys, pubs := custodians(t, "alice", "bob")
	msg := []byte("embassy approval v1\nrequest 1")
	sig := keys[0].Sign(msg)
	if err := pubs[0].VerifySignature(msg, sig); err != nil {
		t.Fatal(err)
	}
	if err := pubs[1].VerifySignature(msg, sig); err == nil || !strings.Contains(err.Error(), "bob") {
		t.Fatalf("alice's signature verified as bob's: %v", err)
	}
	if err := pubs[0].VerifySignature([]byte("embassy approval v1\nrequest 2"), sig); err == nil {
		t.Fatal("signature verified for another request")
	}
}

// TestSplitRefusesDuplicateKeys: one custodian registered under two names
// (the same keys, or either key) is refused, so that one person cannot hold
// two shares and count twice.
func TestSplitRefusesDuplicateKeys(t *testing.T) {
	root, _ := GenerateRootKey()
	a, _ := GenerateCustodian("alice")
	b, _ := GenerateCustodian("bob")
	twin := a.Public()
	twin.Name = "alice2"
	sameSign := b.Public()
	sameSign.Name, sameSign.SignKey = "bob2", a.Public().SignKey
	sameShare := b.Public()
	sameShare.Name, sameShare.Recipient = "bob3", a.Public().Recipient
	for name, cs := range map[string][]CustodianPublic{
		"same keys":        {a.Public(), b.Public(), twin},
		"same signing key": {a.Public(), sameSign},
		"same share key":   {a.Public(), sameShare},
	} {
		if _, _, err := SplitRoot(root, "node", cs, 2); !errors.Is(err, ErrDuplicateKey) {
			t.Errorf("%s: %v, want ErrDuplicateKey", name, err)
		}
	}
	r, s, err := a.Public().Fingerprints()
	if err != nil || !strings.HasPrefix(r, "SHA256:") || !strings.HasPrefix(s, "SHA256:") || r == s {
		t.Fatalf("Fingerprints = %q, %q, %v", r, s, err)
	}
}

// TestProtectedKeyFile: a passphrase-protected key file opens with its
// passphrase only, is refused altered, and a plain one still loads.
func TestProtectedKeyFile(t *testing.T) {
	k, _ := GenerateCustodian("alice")
	pass := []byte("correct horse battery staple")
	b, err := k.MarshalPrivateProtected(pass)
	if err != nil {
		t.Fatal(err)
	}
	if !KeyFileProtected(b) || KeyFileName(b) != "alice" {
		t.Fatal("the protected file is not recognised")
	}
	plain, _ := k.MarshalPrivate()
	if bytes.Contains(b, plain[20:60]) {
		t.Fatal("the protected file holds the key in the clear")
	}
	got, err := OpenCustodianKey(b, func() ([]byte, error) { return append([]byte(nil), pass...), nil })
	if err != nil || got.Public() != k.Public() {
		t.Fatalf("open: %v", err)
	}
	if _, err := OpenCustodianKey(b, func() ([]byte, error) { return []byte("wrong horse battery staple"), nil }); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("a wrong passphrase: %v", err)
	}
	if _, err := OpenCustodianKey(b, nil); !errors.Is(err, ErrNeedPassphrase) {
		t.Fatalf("no passphrase: %v", err)
	}
	renamed := bytes.Replace(b, []byte(`"name": "alice"`), []byte(`"name": "mallory"`), 1)
	if _, err := OpenCustodianKey(renamed, func() ([]byte, error) { return append([]byte(nil), pass...), nil }); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("a file renamed outside: %v", err)
	}
	if _, err := k.MarshalPrivateProtected([]byte("short")); err == nil {
		t.Fatal("a short passphrase was accepted")
	}
	if got, err := OpenCustodianKey(plain, nil); err != nil || got.Public() != k.Public() {
		t.Fatalf("a plain key file: %v", err)
	}
}

// FuzzOpenCustodianKey: any bytes given as a custodian key file are
// decoded or refused, never a panic; a protected one is never opened
// without its passphrase.
func FuzzOpenCustodianKey(f *testing.F) {
	k, _ := GenerateCustodian("alice")
	plain, _ := k.MarshalPrivate()
	f.Add(plain)
	f.Add([]byte(`{"format": "embassy custodian key v1, passphrase-protected", "name": "alice", "kdf": {"algorithm": "argon2id", "time": 1, "memory_kib": 8, "threads": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="}, "nonce": "AAAAAAAAAAAAAAAA", "ciphertext": "AAAA"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := OpenCustodianKey(b, func() ([]byte, error) { return nil, errors.New("no passphrase in a fuzz test") })
		if err == nil && KeyFileProtected(b) {
			t.Fatalf("a protected file opened without its passphrase: %v", k)
		}
	})
}
