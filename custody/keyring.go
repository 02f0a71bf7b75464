// Package custody is the only holder of the node's secret keys. It owns the
// root key, everything derived from it (vault key-encryption keys, the
// manifest key, the key that authenticates node files), the node's
// identity key (wrapped under the root key, see identity.go) and the
// custodians' Shamir shares. Other packages never see key bytes: they ask a
// [Keyring] to wrap, unwrap, seal, open, sign, verify or authenticate.
//
// Derivation: every key is HKDF-SHA256 of the 32-byte root key with the salt
// "embassy/v1" and an info string naming its purpose:
//
//	manifest key        "manifest-key"
//	legacy signing seed "node-signing-key" (Ed25519; signed before identities)
//	vault KEK           "vault-key/<vault>/<generation>" (the engine names a
//	                    vault with an incarnation "<vault>/<incarnation>")
//	identity wrap key   "identity-wrap"
//	node file MAC key   "node-file-mac"
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
	// priv and pub are the root-derived (legacy) signing key: it signs
	// only when the keyring has no identity.
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	// ident is the node identity, once attached (WithIdentity): it signs
	// everything, and its previous and legacy keys still verify.
	ident *Identity

	mu   sync.Mutex
	keks map[string]kekEntry

	// seals counts what the manifest key and the vault keys seal (nil:
	// not counted). Every keyring made from this one shares it.
	seals *SealCounter

	// prev is the root being rotated away from: what it sealed, signed
	// or wrapped still opens until every manifest is rewritten.
	prev *Keyring
}

// WithPrevious returns a keyring that seals, signs and wraps with k and
// also opens, verifies and unwraps what prev did: the state of a root key
// rotation in progress.
func (k *Keyring) WithPrevious(prev *Keyring) *Keyring {
	c := &Keyring{root: k.root, manifest: k.manifest, keyID: k.keyID, priv: k.priv, pub: k.pub, ident: k.ident, keks: map[string]kekEntry{}, prev: prev, seals: k.seals}
	return c
}

// WithIdentity returns a keyring that signs with the identity id and
// verifies signatures by it, by the identities it replaced, by its legacy
// root-derived keys and by this keyring's own root-derived key.
func (k *Keyring) WithIdentity(id *Identity) *Keyring {
	return &Keyring{root: k.root, manifest: k.manifest, keyID: k.keyID, priv: k.priv, pub: k.pub, ident: id, keks: map[string]kekEntry{}, prev: k.prev, seals: k.seals}
}

// Identity returns the attached identity record, or nil.
func (k *Keyring) Identity() *Identity { return k.ident }

// LegacyPublicKey is the root-derived signing key: what signed manifests,
// bindings and descriptors before the node had an identity. Record it in
// the identity (Identity.AddLegacy) so that those signatures still verify
// after the root key is rotated.
func (k *Keyring) LegacyPublicKey() ed25519.PublicKey { return k.pub }

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
	k := &Keyring{root: root, manifest: aead, priv: priv, pub: priv.Public().(ed25519.PublicKey), keks: map[string]kekEntry{}}
	copy(k.keyID[:], id[:8])
	return k, nil
}

// LogValue implements slog.LogValuer.
func (k *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("signing_key", fmt.Sprintf("%x", k.PublicKey()[:8])))
}

// PublicKey returns the Ed25519 key new signatures are made with: the
// identity's, or the root-derived one on a keyring without an identity.
func (k *Keyring) PublicKey() ed25519.PublicKey {
	if k.ident != nil {
		return k.ident.id.pub.Ed25519
	}
	return k.pub
}

// SameRoot reports whether other was derived from the same root key.
func (k *Keyring) SameRoot(other *Keyring) bool { return k.pub.Equal(other.pub) }

// kekEntry is a derived vault key and its id.
type kekEntry struct {
	kek seal.KEK
	id  [8]byte
}

func (k *Keyring) kek(vault string, gen int) (kekEntry, error) {
	name := vault + "/" + strconv.Itoa(gen)
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.keks[name]; ok {
		return e, nil
	}
	m, err := k.root.derive("vault-key/"+name, seal.KeySize)
	if err != nil {
		return kekEntry{}, err
	}
	id := sha256.Sum256(append([]byte("embassy/v1 vault key id\x00"), m...))
	kek, err := seal.NewKEK(m)
	clear(m)
	if err != nil {
		return kekEntry{}, err
	}
	e := kekEntry{kek: kek, id: [8]byte(id[:8])}
	k.keks[name] = e
	return e, nil
}

// WithSealCounter returns a keyring that counts its seals under the
// manifest key and the vault keys in c (see SealCounter); keyrings made
// from it count in c too.
func (k *Keyring) WithSealCounter(c *SealCounter) *Keyring {
	return &Keyring{root: k.root, manifest: k.manifest, keyID: k.keyID, priv: k.priv, pub: k.pub, ident: k.ident, keks: map[string]kekEntry{}, prev: k.prev, seals: c}
}

// SealCounter returns the counter the keyring counts its seals in, or nil.
func (k *Keyring) SealCounter() *SealCounter { return k.seals }

// VaultKeyID returns the id of generation gen of a vault's key (vault as
// WrapDataKey takes it): what its seals are counted under.
func (k *Keyring) VaultKeyID(vault string, gen int) ([8]byte, error) {
	e, err := k.kek(vault, gen)
	return e.id, err
}

// WrapDataKey wraps a data key under the vault's key of generation gen.
// aad names what the key protects; unwrapping needs the same aad. It
// fails with ErrSealLimit once that key has wrapped its limit.
func (k *Keyring) WrapDataKey(vault string, gen int, dk seal.DataKey, aad []byte) ([]byte, error) {
	e, err := k.kek(vault, gen)
	if err != nil {
		return nil, err
	}
	if k.seals != nil {
		if err := k.seals.take(SealKey{ID: e.id, Vault: vault, Gen: gen}); err != nil {
			return nil, err
		}
	}
	return e.kek.Wrap(dk, append([]byte(vault+"\x00"), aad...))
}

// UnwrapDataKey reverses WrapDataKey.
func (k *Keyring) UnwrapDataKey(vault string, gen int, wrapped, aad []byte) (seal.DataKey, error) {
	e, err := k.kek(vault, gen)
	if err != nil {
		return seal.DataKey{}, err
	}
	dk, err := e.kek.Unwrap(wrapped, append([]byte(vault+"\x00"), aad...))
	if err != nil && k.prev != nil {
		return k.prev.UnwrapDataKey(vault, gen, wrapped, aad)
	}
	return dk, err
}

// SealManifest implements manifest.Keys. It fails with ErrSealLimit once
// the manifest key has sealed its limit.
func (k *Keyring) SealManifest(aad, plaintext []byte) ([8]byte, []byte, error) {
	if k.seals != nil {
		if err := k.seals.take(SealKey{ID: k.keyID}); err != nil {
			return [8]byte{}, nil, err
		}
	}
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

// Sign is the node's signing function (it implements manifest.Keys): a
// compact Ed25519 signature by the node identity (by the root-derived key
// on a keyring without an identity). Callers put a domain-separation
// prefix of their own at the start of msg.
func (k *Keyring) Sign(msg []byte) ([]byte, error) {
	if k.ident != nil {
		return ed25519.Sign(k.ident.id.ed, msg), nil
	}
	return ed25519.Sign(k.priv, msg), nil
}

// SignHybrid signs msg with both halves of the node identity (Ed25519 ||
// ML-DSA-44, [HybridSignatureSize] bytes), for records others verify long
// after: the node descriptor, statements, markers. [Keyring.Verify] and
// [PublicIdentity.Verify] accept it.
func (k *Keyring) SignHybrid(msg []byte) ([]byte, error) {
	if k.ident == nil {
		return nil, errors.New("custody: the keyring has no node identity")
	}
	return k.ident.id.signHybrid(msg)
}

// ErrNotNodeSignature: a signature is by none of the node's keys.
var ErrNotNodeSignature = errors.New("signature is not the node's")

// Verify implements manifest.Keys. It accepts a compact or hybrid
// signature by the node identity or an identity it replaced, and a compact
// signature by a legacy root-derived key: this root's, one recorded in the
// identity, or (during a root rotation) the previous root's.
func (k *Keyring) Verify(msg, sig []byte) error {
	if len(sig) != ed25519.SignatureSize && len(sig) != HybridSignatureSize {
		return fmt.Errorf("%w: a signature of %d bytes", ErrNotNodeSignature, len(sig))
	}
	if id := k.ident; id != nil {
		if id.id.pub.Verify(msg, sig) == nil {
			return nil
		}
		for _, p := range id.Previous {
			if p.Verify(msg, sig) == nil {
				return nil
			}
		}
		if len(sig) == ed25519.SignatureSize {
			for _, l := range id.Legacy {
				if ed25519.Verify(l, msg, sig) {
					return nil
				}
			}
		}
	}
	if len(sig) == ed25519.SignatureSize && ed25519.Verify(k.pub, msg, sig) {
		return nil
	}
	if k.prev != nil && k.prev.Verify(msg, sig) == nil {
		return nil
	}
	return ErrNotNodeSignature
}

// verifier returns the Ed25519 key named by a binding key id among the
// keys Verify accepts.
func (k *Keyring) verifier(keyID string) (ed25519.PublicKey, bool) {
	if id := k.ident; id != nil {
		if keyID == edKeyID(id.id.pub.Ed25519) {
			return id.id.pub.Ed25519, true
		}
		for _, p := range id.Previous {
			if keyID == edKeyID(p.Ed25519) {
				return p.Ed25519, true
			}
		}
		for _, l := range id.Legacy {
			if keyID == edKeyID(l) {
				return l, true
			}
		}
	}
	if keyID == edKeyID(k.pub) {
		return k.pub, true
	}
	if k.prev != nil {
		return k.prev.verifier(keyID)
	}
	return nil, false
}

// BindingKeys signs and verifies label bindings with the node's signing
// key (it implements label.Signer and label.Verifier).
type BindingKeys struct{ k *Keyring }

// BindingKeys returns the keyring's label-binding signer and verifier.
func (k *Keyring) BindingKeys() BindingKeys { return BindingKeys{k} }

// KeyID names the node's signing key in bindings: "node:" and the first 8
// bytes of its Ed25519 public key in hex.
func (b BindingKeys) KeyID() string { return edKeyID(b.k.PublicKey()) }

// Sign signs msg with the node's signing function.
func (b BindingKeys) Sign(msg []byte) ([]byte, error) { return b.k.Sign(msg) }

// Verify checks a signature by the key named keyID, which must be one of
// the keys the keyring's Verify accepts.
func (b BindingKeys) Verify(keyID string, msg, sig []byte) error {
	pub, ok := b.k.verifier(keyID)
	if !ok {
		return fmt.Errorf("signed by %s, not this node's key %s", keyID, b.KeyID())
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return ErrNotNodeSignature
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
	return &Keyring{root: k.root, manifest: k.manifest, keyID: k.keyID, priv: k.priv, pub: k.pub, ident: k.ident, keks: map[string]kekEntry{}, seals: k.seals}
}

// SealsWith reports whether keyID names this keyring's manifest key (or,
// during a root rotation, the previous one's): whether a sealed record
// that fails to open was damaged, rather than sealed by another node.
func (k *Keyring) SealsWith(keyID [8]byte) bool {
	return keyID == k.keyID || (k.prev != nil && k.prev.SealsWith(keyID))
}
