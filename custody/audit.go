package custody

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// The audit log (package audit) is signed by the node identity and its
// entries are sealed under the node's audit log key, which is kept with
// the identity (identity.json, wrapped under the root key): a root key
// rotation re-wraps it, an identity replacement carries it over, and
// `recover` finds it in the node descriptor on any site. Sites and
// witnesses never hold it.
//
// Each entry is sealed with AES-256-GCM under its own key,
// HMAC-SHA256(log key, "embassy audit entry key\x00" || id), where id is
// the entry's commitment (32 bytes, unique because it commits to a random
// salt); a key seals one message, so the nonce is zero.

// ErrNoAuditKey: the keyring has no node identity, so no audit log key.
var ErrNoAuditKey = errors.New("custody: the keyring has no node identity (and so no audit log key)")

func (k *Keyring) auditAEAD(id []byte) (cipher.AEAD, error) {
	if k.ident == nil || k.ident.id.logKey == nil {
		return nil, ErrNoAuditKey
	}
	if len(id) != sha256.Size {
		return nil, fmt.Errorf("custody: audit entry id of %d bytes", len(id))
	}
	m := hmac.New(sha256.New, k.ident.id.logKey[:])
	m.Write([]byte("embassy audit entry key\x00"))
	m.Write(id)
	key := m.Sum(nil)
	defer clear(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// SealAuditEntry seals plaintext under the key of the entry named id (its
// commitment) with aad.
func (k *Keyring) SealAuditEntry(id, aad, plaintext []byte) ([]byte, error) {
	a, err := k.auditAEAD(id)
	if err != nil {
		return nil, err
	}
	return a.Seal(nil, make([]byte, a.NonceSize()), plaintext, aad), nil
}

// OpenAuditEntry reverses SealAuditEntry.
func (k *Keyring) OpenAuditEntry(id, aad, sealed []byte) ([]byte, error) {
	a, err := k.auditAEAD(id)
	if err != nil {
		return nil, err
	}
	pt, err := a.Open(nil, make([]byte, a.NonceSize()), sealed, aad)
	if err != nil {
		return nil, errors.New("custody: audit entry does not open (damaged, or sealed by another node)")
	}
	return pt, nil
}

// noteSigner signs notes with the identity's Ed25519 key.
type noteSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s *noteSigner) Name() string                    { return s.name }
func (s *noteSigner) KeyHash() uint32                 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// Algorithm bytes of C2SP signed-note keys.
const (
	algCosignatureV1 = 0x04
	algMLDSA44       = 0x06
)

// CheckpointSigners returns the signers of the node's audit log
// checkpoints, both named origin: an Ed25519 signed-note signer by the
// identity (what every C2SP verifier, golang.org/x/mod's included, checks),
// and an ML-DSA-44 cosigner by the identity's ML-DSA-44 key (C2SP
// tlog-cosignature, for verifiers who want post-quantum assurance).
func (k *Keyring) CheckpointSigners(origin string) (note.Signer, note.Signer, error) {
	if k.ident == nil {
		return nil, nil, errors.New("custody: the keyring has no node identity to sign checkpoints with")
	}
	id := k.ident.id
	vkey, err := note.NewEd25519VerifierKey(origin, id.pub.Ed25519)
	if err != nil {
		return nil, nil, fmt.Errorf("custody: checkpoint key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("custody: checkpoint key: %w", err)
	}
	ed := &noteSigner{name: origin, hash: v.KeyHash(), key: id.ed}
	pqv, err := fnote.NewMLDSAVerifier(MLDSAVerifierKey(origin, id.pub))
	if err != nil {
		return nil, nil, fmt.Errorf("custody: checkpoint cosigning key: %w", err)
	}
	seed := append([]byte{algMLDSA44}, id.pq.Bytes()...)
	defer clear(seed)
	pq, err := fnote.NewSignerForCosignatureV1(fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", origin, pqv.KeyHash(), base64.StdEncoding.EncodeToString(seed)))
	if err != nil {
		return nil, nil, fmt.Errorf("custody: checkpoint cosigning key: %w", err)
	}
	return ed, pq, nil
}

// WitnessSigner returns the signer with which this node cosigns other
// nodes' checkpoints as their witness: a C2SP cosignature/v1 (Ed25519,
// timestamped) by the identity, named name.
func (k *Keyring) WitnessSigner(name string) (note.Signer, error) {
	if k.ident == nil {
		return nil, errors.New("custody: the keyring has no node identity to witness with")
	}
	v, err := fnote.NewVerifierForCosignatureV1(WitnessVerifierKey(name, k.ident.id.pub))
	if err != nil {
		return nil, fmt.Errorf("custody: witness key: %w", err)
	}
	seed := append([]byte{algCosignatureV1}, k.ident.id.ed.Seed()...)
	defer clear(seed)
	s, err := fnote.NewSignerForCosignatureV1(fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, v.KeyHash(), base64.StdEncoding.EncodeToString(seed)))
	if err != nil {
		return nil, fmt.Errorf("custody: witness key: %w", err)
	}
	return s, nil
}

// keyHash computes a C2SP signed-note key hash through the verifier that
// parses vkey, so that this package never formats one by hand.
func keyHash(vkey string, parse func(string) (note.Verifier, error)) uint32 {
	v, err := parse(vkey)
	if err != nil {
		return 0
	}
	return v.KeyHash()
}

// MLDSAVerifierKey is the C2SP verifier key (vkey) of p's ML-DSA-44
// cosignatures named name.
func MLDSAVerifierKey(name string, p PublicIdentity) string {
	key := base64.StdEncoding.EncodeToString(append([]byte{algMLDSA44}, p.MLDSA44.Bytes()...))
	h := keyHash(name+"+00000000+"+key, func(s string) (note.Verifier, error) { return fnote.NewMLDSAVerifier(s) })
	return fmt.Sprintf("%s+%08x+%s", name, h, key)
}

// WitnessVerifierKey is the C2SP verifier key (vkey, type 0x04: Ed25519
// cosignature/v1) of p's witness cosignatures named name: what a log puts
// in its witness policy to accept this node as a witness.
func WitnessVerifierKey(name string, p PublicIdentity) string {
	key := base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, p.Ed25519...))
	h := keyHash(name+"+00000000+"+key, fnote.NewVerifierForCosignatureV1)
	return fmt.Sprintf("%s+%08x+%s", name, h, key)
}
