// Package custody is the only holder of the node's secret keys. It owns the
// root key, everything derived from it (vault key-encryption keys, the
// manifest key, the node's signing key) and, in later steps, the custodians'
// Shamir shares and the two-person rule. Other packages never see key bytes:
// they ask a [Keyring] to wrap, unwrap, seal, open, sign or verify.
//
// Derivation: every key is HKDF-SHA256 of the 32-byte root key with the salt
// "embassy/v1" and an info string naming its purpose:
//
//	manifest key        "manifest-key"
//	node signing seed   "node-signing-key" (Ed25519)
//	vault KEK           "vault-key/<vault>/<generation>"
package custody

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/embassy-dev/embassy/seal"
)

// RootKey is the node's root secret. It is opaque and incomparable.
type RootKey struct {
	_ [0]func()
	k *[32]byte
}

// GenerateRootKey returns a fresh random root key.
func GenerateRootKey() (RootKey, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return RootKey{}, fmt.Errorf("custody: generate root key: %w", err)
	}
	return RootKey{k: &k}, nil
}

// Valid reports whether r holds a key.
func (r RootKey) Valid() bool { return r.k != nil }

// LogValue implements slog.LogValuer.
func (RootKey) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String redacts the key.
func (RootKey) String() string { return "custody.RootKey(REDACTED)" }

func (r RootKey) derive(info string, n int) ([]byte, error) {
	return hkdf.Key(sha256.New, r.k[:], []byte("embassy/v1"), info, n)
}

// Keyring holds the keys derived from a root key and performs every
// operation that needs them. It is safe for concurrent use.
type Keyring struct {
	root     RootKey
	manifest cipher.AEAD
	keyID    [8]byte
	priv     ed25519.PrivateKey
	pub      ed25519.PublicKey

	mu   sync.Mutex
	keks map[string]seal.KEK

	// prev is the root being rotated away from: what it sealed, signed
	// or wrapped still opens until every manifest is rewritten.
	prev *Keyring
}

// WithPrevious returns a keyring that seals, signs and wraps with k and
// also opens, verifies and unwraps what prev did: the state of a root key
// rotation in progress.
func (k *Keyring) WithPrevious(prev *Keyring) *Keyring {
	c := &Keyring{root: k.root, manifest: k.manifest, keyID: k.keyID, priv: k.priv, pub: k.pub, keks: map[string]seal.KEK{}, prev: prev}
	return c
}

// Previous returns the root being rotated away from, or nil.
func (k *Keyring) Previous() *Keyring { return k.prev }

// ManifestKeyID identifies the key that seals new manifests.
func (k *Keyring) ManifestKeyID() [8]byte { return k.keyID }

// NewKeyring derives the node's working keys from root.
func NewKeyring(root RootKey) (*Keyring, error) {
	if !root.Valid() {
		return nil, errors.New("custody: invalid root key")
	}
	mk, err := root.derive("manifest-key", 32)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(mk)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	id := sha256.Sum256(append([]byte("embassy/v1 manifest key id\x00"), mk...))
	clear(mk)
	seed, err := root.derive("node-signing-key", ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	k := &Keyring{root: root, manifest: aead, priv: priv, pub: priv.Public().(ed25519.PublicKey), keks: map[string]seal.KEK{}}
	copy(k.keyID[:], id[:8])
	return k, nil
}

// LogValue implements slog.LogValuer.
func (k *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("signing_key", fmt.Sprintf("%x", k.pub[:8])))
}

// PublicKey returns the node's signing public key.
func (k *Keyring) PublicKey() ed25519.PublicKey { return k.pub }

// SameRoot reports whether other was derived from the same root key.
func (k *Keyring) SameRoot(other *Keyring) bool { return k.pub.Equal(other.pub) }

func (k *Keyring) kek(vault string, gen int) (seal.KEK, error) {
	name := vault + "/" + strconv.Itoa(gen)
	k.mu.Lock()
	defer k.mu.Unlock()
	if kek, ok := k.keks[name]; ok {
		return kek, nil
	}
	m, err := k.root.derive("vault-key/"+name, seal.KeySize)
	if err != nil {
		return seal.KEK{}, err
	}
	kek, err := seal.NewKEK(m)
	clear(m)
	if err != nil {
		return seal.KEK{}, err
	}
	k.keks[name] = kek
	return kek, nil
}

// WrapDataKey wraps a data key under the vault's key of generation gen.
// aad names what the key protects; unwrapping needs the same aad.
func (k *Keyring) WrapDataKey(vault string, gen int, dk seal.DataKey, aad []byte) ([]byte, error) {
	kek, err := k.kek(vault, gen)
	if err != nil {
		return nil, err
	}
	return kek.Wrap(dk, append([]byte(vault+"\x00"), aad...))
}

// UnwrapDataKey reverses WrapDataKey.
func (k *Keyring) UnwrapDataKey(vault string, gen int, wrapped, aad []byte) (seal.DataKey, error) {
	kek, err := k.kek(vault, gen)
	if err != nil {
		return seal.DataKey{}, err
	}
	dk, err := kek.Unwrap(wrapped, append([]byte(vault+"\x00"), aad...))
	if err != nil && k.prev != nil {
		return k.prev.UnwrapDataKey(vault, gen, wrapped, aad)
	}
	return dk, err
}

// SealManifest implements manifest.Keys.
func (k *Keyring) SealManifest(aad, plaintext []byte) ([8]byte, []byte, error) {
	out := make([]byte, 12, 12+len(plaintext)+k.manifest.Overhead())
	if _, err := rand.Read(out); err != nil {
		return [8]byte{}, nil, err
	}
	return k.keyID, k.manifest.Seal(out, out[:12], plaintext, aad), nil
}

// OpenManifest implements manifest.Keys.
func (k *Keyring) OpenManifest(keyID [8]byte, aad, sealed []byte) ([]byte, error) {
	if keyID != k.keyID {
		if k.prev != nil && keyID == k.prev.keyID {
			return k.prev.OpenManifest(keyID, aad, sealed)
		}
		return nil, fmt.Errorf("sealed with another node's key (key id %x, ours %x)", keyID, k.keyID)
	}
	if len(sealed) < 12+k.manifest.Overhead() {
		return nil, errors.New("sealed manifest too short")
	}
	pt, err := k.manifest.Open(nil, sealed[:12], sealed[12:], aad)
	if err != nil {
		return nil, errors.New("manifest authentication failed")
	}
	return pt, nil
}

// Sign implements manifest.Keys.
func (k *Keyring) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(k.priv, msg), nil }

// Verify implements manifest.Keys.
func (k *Keyring) Verify(msg, sig []byte) error {
	if !ed25519.Verify(k.pub, msg, sig) {
		if k.prev != nil && k.prev.Verify(msg, sig) == nil {
			return nil
		}
		return errors.New("signature is not the node's")
	}
	return nil
}

// BindingKeys signs and verifies label bindings with the node's signing
// key (it implements label.Signer and label.Verifier).
type BindingKeys struct{ k *Keyring }

// BindingKeys returns the keyring's label-binding signer and verifier.
func (k *Keyring) BindingKeys() BindingKeys { return BindingKeys{k} }

// KeyID names the node's signing key in bindings: "node:" and the first 8
// bytes of its public key in hex.
func (b BindingKeys) KeyID() string { return fmt.Sprintf("node:%x", b.k.pub[:8]) }

// Sign signs msg.
func (b BindingKeys) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(b.k.priv, msg), nil }

// Verify checks a signature by the key named keyID, which must be this
// node's.
func (b BindingKeys) Verify(keyID string, msg, sig []byte) error {
	if keyID != b.KeyID() && b.k.prev != nil {
		return b.k.prev.BindingKeys().Verify(keyID, msg, sig)
	}
	if keyID != b.KeyID() {
		return fmt.Errorf("signed by %s, not this node's key %s", keyID, b.KeyID())
	}
	if !ed25519.Verify(b.k.pub, msg, sig) {
		return errors.New("signature is not the node's")
	}
	return nil
}

// SealRoot seals another root key (the one being rotated away from) under
// k, so that a rotation interrupted by a crash can find it again with only
// the new root.
func (k *Keyring) SealRoot(other *Keyring) ([]byte, error) {
	if other == nil || !other.root.Valid() {
		return nil, errors.New("custody: no root to seal")
	}
	_, sealed, err := k.SealManifest([]byte("EMBROOT1"), other.root.k[:])
	return sealed, err
}

// OpenRoot reverses SealRoot and returns a keyring of the sealed root.
func (k *Keyring) OpenRoot(sealed []byte) (*Keyring, error) {
	b, err := k.OpenManifest(k.keyID, []byte("EMBROOT1"), sealed)
	if err != nil {
		return nil, fmt.Errorf("custody: open sealed root: %w", err)
	}
	if len(b) != 32 {
		return nil, errors.New("custody: sealed root has the wrong size")
	}
	var r [32]byte
	copy(r[:], b)
	clear(b)
	return NewKeyring(RootKey{k: &r})
}

// Root returns the keyring's root key, for splitting among custodians or
// writing a local key file; it stays an opaque value.
func (k *Keyring) Root() RootKey { return k.root }

// RootlessCopy returns k without the previous root it carried during a
// rotation.
func RootlessCopy(k *Keyring) *Keyring {
	if k.prev == nil {
		return k
	}
	return &Keyring{root: k.root, manifest: k.manifest, keyID: k.keyID, priv: k.priv, pub: k.pub, keks: map[string]seal.KEK{}}
}
