package custody

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/seal"
)

func testKeyring(t *testing.T) *Keyring {
	t.Helper()
	r, err := GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKeyring(r)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.key")
	r, _ := GenerateRootKey()
	if err := WriteKeyFile(path, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, r); err == nil {
		t.Fatal("WriteKeyFile overwrote an existing key file")
	}
	back, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := NewKeyring(r)
	k2, _ := NewKeyring(back)
	if !k1.SameRoot(k2) {
		t.Fatal("key file did not round-trip the root key")
	}
}

func TestWrapBindsVaultAndGeneration(t *testing.T) {
	k := testKeyring(t)
	dk, _ := seal.NewDataKey()
	w, err := k.WrapDataKey("registry", 1, dk, []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.UnwrapDataKey("registry", 1, w, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"other vault":      func() error { _, err := k.UnwrapDataKey("archive", 1, w, []byte("v1")); return err },
		"other generation": func() error { _, err := k.UnwrapDataKey("registry", 2, w, []byte("v1")); return err },
		"other context":    func() error { _, err := k.UnwrapDataKey("registry", 1, w, []byte("v2")); return err },
		"other node":       func() error { _, err := testKeyring(t).UnwrapDataKey("registry", 1, w, []byte("v1")); return err },
	} {
		if err := f(); !errors.Is(err, seal.ErrOpen) {
			t.Errorf("%s: %v, want seal.ErrOpen", name, err)
		}
	}
}

func TestManifestKeysAreNodeBound(t *testing.T) {
	a, b := testKeyring(t), testKeyring(t)
	id, sealed, err := a.SealManifest([]byte("aad"), []byte("secret names"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret names")) {
		t.Fatal("sealed manifest holds plaintext")
	}
	if _, err := b.OpenManifest(id, []byte("aad"), sealed); err == nil || !strings.Contains(err.Error(), "another node") {
		t.Fatalf("other node opened manifest: %v", err)
	}
	sig, _ := a.Sign([]byte("m"))
	if err := b.Verify([]byte("m"), sig); err == nil {
		t.Fatal("other node's key verified our signature")
	}
	if err := a.Verify([]byte("n"), sig); err == nil {
		t.Fatal("signature verified for another message")
	}
}

func TestReadKeyFileRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"no header": "AAAA\n",
		"short key": keyFileHeader + "AAAA\n",
		"not b64":   keyFileHeader + "!!!!\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := writeFile(p, content); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadKeyFile(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
