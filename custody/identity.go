package custody

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"filippo.io/mldsa"
)

// A node's identity is a signing key pair that does not depend on the root
// key: Ed25519, with ML-DSA-44 beside it for signatures that must outlive a
// quantum computer. It is generated once (at init, or on the first unseal
// of a node made before identities existed), stored wrapped under the root
// key, re-wrapped (never replaced) by a root key rotation, and replaced only
// by a two-person operation that leaves a transition statement signed by
// the old and the new key. Whatever others pin (node.pub) therefore stays
// valid across root rotations.
//
// Signatures come in two forms, told apart by their length:
//
//	compact  64 bytes: Ed25519 (manifests, label bindings: one per object)
//	hybrid   64 + 2420 bytes: Ed25519 || ML-DSA-44 (context
//	         "embassy node identity v1"); both must verify
//
// The private halves never leave this package.

// HybridSignatureSize is the length of a hybrid signature.
const HybridSignatureSize = ed25519.SignatureSize + mldsa.MLDSA44SignatureSize

const mldsaContext = "embassy node identity v1"

// PublicIdentity is the public half of a node identity: what others pin.
type PublicIdentity struct {
	Ed25519 ed25519.PublicKey
	MLDSA44 *mldsa.PublicKey
}

// Equal reports whether p and o are the same identity.
func (p PublicIdentity) Equal(o PublicIdentity) bool {
	return p.Ed25519 != nil && p.Ed25519.Equal(o.Ed25519) && p.MLDSA44 != nil && o.MLDSA44 != nil && p.MLDSA44.Equal(o.MLDSA44)
}

func fingerprint(b []byte) string {
	h := sha256.Sum256(b)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}

// Ed25519Fingerprint is "SHA256:" and the unpadded base64 of the SHA-256 of
// the Ed25519 public key.
func (p PublicIdentity) Ed25519Fingerprint() string { return fingerprint(p.Ed25519) }

// MLDSAFingerprint is the same for the ML-DSA-44 public key encoding.
func (p PublicIdentity) MLDSAFingerprint() string { return fingerprint(p.MLDSA44.Bytes()) }

// KeyID names the identity in label bindings: "node:" and the first 8
// bytes of the Ed25519 public key in hex.
func (p PublicIdentity) KeyID() string { return edKeyID(p.Ed25519) }

func edKeyID(pub ed25519.PublicKey) string { return fmt.Sprintf("node:%x", pub[:8]) }

// Verify checks a compact (Ed25519) or hybrid signature by this identity.
// A hybrid signature verifies only if both halves do.
func (p PublicIdentity) Verify(msg, sig []byte) error {
	switch len(sig) {
	case ed25519.SignatureSize:
		if ed25519.Verify(p.Ed25519, msg, sig) {
			return nil
		}
	case HybridSignatureSize:
		if ed25519.Verify(p.Ed25519, msg, sig[:ed25519.SignatureSize]) &&
			mldsa.Verify(p.MLDSA44, msg, sig[ed25519.SignatureSize:], &mldsa.Options{Context: mldsaContext}) == nil {
			return nil
		}
	default:
		return fmt.Errorf("a signature of %d bytes is neither compact (%d) nor hybrid (%d)", len(sig), ed25519.SignatureSize, HybridSignatureSize)
	}
	return errors.New("signature is not the node's")
}

type publicJSON struct {
	Ed25519 string `json:"ed25519"`
	MLDSA44 string `json:"ml_dsa_44"`
}

func (p PublicIdentity) toJSON() publicJSON {
	return publicJSON{Ed25519: base64.StdEncoding.EncodeToString(p.Ed25519), MLDSA44: base64.StdEncoding.EncodeToString(p.MLDSA44.Bytes())}
}

func (j publicJSON) parse() (PublicIdentity, error) {
	ed, err := base64.StdEncoding.DecodeString(j.Ed25519)
	if err != nil || len(ed) != ed25519.PublicKeySize {
		return PublicIdentity{}, errors.New("ed25519: not a base64 Ed25519 public key")
	}
	pq, err := base64.StdEncoding.DecodeString(j.MLDSA44)
	if err != nil {
		return PublicIdentity{}, errors.New("ml_dsa_44: not base64")
	}
	pk, err := mldsa.NewPublicKey(mldsa.MLDSA44(), pq)
	if err != nil {
		return PublicIdentity{}, fmt.Errorf("ml_dsa_44: %w", err)
	}
	return PublicIdentity{Ed25519: ed, MLDSA44: pk}, nil
}

// identity is the private half. It is opaque and incomparable.
type identity struct {
	_   [0]func()
	ed  ed25519.PrivateKey
	pq  *mldsa.PrivateKey
	pub PublicIdentity
	// logKey seals the audit log's entries (see audit.go). It is not a
	// signing key: it belongs to the node, not to one identity, and an
	// identity replacement carries it over.
	logKey *[32]byte
}

func newIdentity(edSeed, pqSeed []byte) (*identity, error) {
	if len(edSeed) != ed25519.SeedSize || len(pqSeed) != mldsa.PrivateKeySize {
		return nil, errors.New("custody: identity seeds have the wrong size")
	}
	pq, err := mldsa.NewPrivateKey(mldsa.MLDSA44(), pqSeed)
	if err != nil {
		return nil, fmt.Errorf("custody: identity: %w", err)
	}
	ed := ed25519.NewKeyFromSeed(edSeed)
	return &identity{ed: ed, pq: pq, pub: PublicIdentity{Ed25519: ed.Public().(ed25519.PublicKey), MLDSA44: pq.PublicKey()}}, nil
}

func generateIdentity() (*identity, error) {
	var s [ed25519.SeedSize + mldsa.PrivateKeySize]byte
	if _, err := rand.Read(s[:]); err != nil {
		return nil, fmt.Errorf("custody: generate identity: %w", err)
	}
	defer clear(s[:])
	id, err := newIdentity(s[:ed25519.SeedSize], s[ed25519.SeedSize:])
	if err != nil {
		return nil, err
	}
	id.logKey = new([32]byte)
	if _, err := rand.Read(id.logKey[:]); err != nil {
		return nil, fmt.Errorf("custody: generate audit log key: %w", err)
	}
	return id, nil
}

// derivedLogKey is the audit log key of an identity sealed before
// identities carried one: derived from its seeds, so that every opening of
// the same file gives the same key.
func derivedLogKey(seeds []byte) (*[32]byte, error) {
	k, err := hkdf.Key(sha256.New, seeds, []byte("embassy/v1"), "audit-log-key", 32)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return (*[32]byte)(bytes.Clone(k)), nil
}

func (id *identity) signHybrid(msg []byte) ([]byte, error) {
	return id.sign(msg, false)
}

// sign makes a hybrid signature; deterministic, the ML-DSA half is too
// (the Ed25519 half always is), so the same message gives the same bytes.
func (id *identity) sign(msg []byte, deterministic bool) ([]byte, error) {
	var pq []byte
	var err error
	if deterministic {
		pq, err = id.pq.SignDeterministic(msg, &mldsa.Options{Context: mldsaContext})
	} else {
		pq, err = id.pq.Sign(nil, msg, &mldsa.Options{Context: mldsaContext})
	}
	if err != nil {
		return nil, fmt.Errorf("custody: ml-dsa-44 sign: %w", err)
	}
	return append(ed25519.Sign(id.ed, msg), pq...), nil
}

// Identity is a node's identity record: the identity key (private halves
// held here only), the identities it replaced and the root-derived keys
// that signed data before identities existed, all of which still verify.
// It is stored in the node directory (identity.json) and in the node
// descriptor, sealed under the root key.
type Identity struct {
	_       [0]func()
	NodeID  string
	Created time.Time
	id      *identity
	// Previous are identities this one replaced, oldest first. Their
	// signatures on data written before still verify.
	Previous []PublicIdentity
	// Legacy are root-derived Ed25519 keys that signed manifests, bindings
	// and descriptors before the node had an identity.
	Legacy []ed25519.PublicKey
	// Transitions are the statements, signed by the old and the new key,
	// of every replacement, oldest first.
	Transitions [][]byte
}

// LogValue implements slog.LogValuer: only public fingerprints are shown.
func (r *Identity) LogValue() slog.Value {
	return slog.GroupValue(slog.String("node", r.NodeID), slog.String("ed25519", r.id.pub.Ed25519Fingerprint()))
}

// Public returns the current public identity.
func (r *Identity) Public() PublicIdentity { return r.id.pub }

// NewIdentity generates a fresh identity for node. legacy lists
// root-derived keys whose signatures must keep verifying (see
// [Keyring.LegacyPublicKey]); a new node has none.
func NewIdentity(nodeID string, legacy ...ed25519.PublicKey) (*Identity, error) {
	id, err := generateIdentity()
	if err != nil {
		return nil, err
	}
	return &Identity{NodeID: nodeID, Created: time.Now().UTC().Truncate(time.Second), id: id, Legacy: legacy}, nil
}

// AddLegacy records a root-derived key whose signatures must keep
// verifying; it reports whether it was new.
func (r *Identity) AddLegacy(pub ed25519.PublicKey) bool {
	for _, l := range r.Legacy {
		if l.Equal(pub) {
			return false
		}
	}
	r.Legacy = append(r.Legacy, pub)
	return true
}

// IdentityFile is the name of the identity record in a node directory.
const IdentityFile = "identity.json"

const identityFormat = "embassy node identity v1"

// identityFile is identity.json. Everything but Wrapped is the AAD of
// Wrapped, so none of it can be changed without the root key.
type identityFile struct {
	Format      string       `json:"format"`
	NodeID      string       `json:"node_id"`
	Created     string       `json:"created"`
	Public      publicJSON   `json:"public"`
	Previous    []publicJSON `json:"previous"`
	Legacy      []string     `json:"legacy_keys"`
	Transitions []string     `json:"transitions"`
	// Wrapped is nonce || AES-256-GCM(Ed25519 seed || ML-DSA-44 seed ||
	// audit log key) under HKDF(root, "identity-wrap"). A file from before
	// the audit log lacks the log key, which is then derived from the
	// seeds (HKDF, info "audit-log-key").
	Wrapped string `json:"wrapped,omitempty"`
}

func (f identityFile) aad() []byte {
	f.Wrapped = ""
	b, _ := json.Marshal(f)
	return append([]byte("embassy identity wrap v1\x00"), b...)
}

func (k *Keyring) identityAEAD() (cipher.AEAD, error) {
	key, err := k.root.derive("identity-wrap", 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// SealIdentity encodes r as identity.json, its private key wrapped under
// k's root key.
func (k *Keyring) SealIdentity(r *Identity) ([]byte, error) {
	if r == nil || r.id == nil {
		return nil, errors.New("custody: no identity to seal")
	}
	f := identityFile{Format: identityFormat, NodeID: r.NodeID, Created: r.Created.UTC().Format(time.RFC3339), Public: r.id.pub.toJSON(),
		Previous: []publicJSON{}, Legacy: []string{}, Transitions: []string{}}
	for _, p := range r.Previous {
		f.Previous = append(f.Previous, p.toJSON())
	}
	for _, l := range r.Legacy {
		f.Legacy = append(f.Legacy, base64.StdEncoding.EncodeToString(l))
	}
	for _, t := range r.Transitions {
		f.Transitions = append(f.Transitions, string(t))
	}
	aead, err := k.identityAEAD()
	if err != nil {
		return nil, err
	}
	seeds := append(r.id.ed.Seed(), r.id.pq.Bytes()...)
	if r.id.logKey != nil {
		seeds = append(seeds, r.id.logKey[:]...)
	}
	defer clear(seeds)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	f.Wrapped = base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, seeds, f.aad()))
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ErrIdentity: identity.json is damaged, changed, or sealed under another
// root key.
var ErrIdentity = errors.New("node identity does not open")

func parseIdentityFile(b []byte) (identityFile, error) {
	var f identityFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	if f.Format != identityFormat {
		return f, fmt.Errorf("%w: format %q is not %q", ErrIdentity, f.Format, identityFormat)
	}
	return f, nil
}

// OpenIdentity decodes identity.json and unwraps its private key with k's
// root key or, during a root rotation, the previous one. Any change to the
// file makes it fail.
func (k *Keyring) OpenIdentity(b []byte) (*Identity, error) {
	f, err := parseIdentityFile(b)
	if err != nil {
		return nil, err
	}
	r, err := k.openIdentity(f)
	if err != nil && k.prev != nil {
		if r2, err2 := k.prev.openIdentity(f); err2 == nil {
			return r2, nil
		}
	}
	return r, err
}

func (k *Keyring) openIdentity(f identityFile) (*Identity, error) {
	aead, err := k.identityAEAD()
	if err != nil {
		return nil, err
	}
	w, err := base64.StdEncoding.DecodeString(f.Wrapped)
	if err != nil || len(w) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: wrapped key malformed", ErrIdentity)
	}
	seeds, err := aead.Open(nil, w[:aead.NonceSize()], w[aead.NonceSize():], f.aad())
	if err != nil {
		return nil, fmt.Errorf("%w: not sealed under this root key, or changed since", ErrIdentity)
	}
	defer clear(seeds)
	const n = ed25519.SeedSize + mldsa.PrivateKeySize
	if len(seeds) != n && len(seeds) != n+32 {
		return nil, fmt.Errorf("%w: wrapped key has the wrong size", ErrIdentity)
	}
	id, err := newIdentity(seeds[:ed25519.SeedSize], seeds[ed25519.SeedSize:n])
	if err != nil {
		return nil, err
	}
	if len(seeds) == n+32 {
		id.logKey = (*[32]byte)(bytes.Clone(seeds[n:]))
	} else if id.logKey, err = derivedLogKey(seeds); err != nil {
		return nil, err
	}
	pub, err := f.Public.parse()
	if err != nil || !pub.Equal(id.pub) {
		return nil, fmt.Errorf("%w: public key does not match the private key", ErrIdentity)
	}
	created, err := time.Parse(time.RFC3339, f.Created)
	if err != nil {
		return nil, fmt.Errorf("%w: created: %v", ErrIdentity, err)
	}
	r := &Identity{NodeID: f.NodeID, Created: created, id: id}
	for _, p := range f.Previous {
		pp, err := p.parse()
		if err != nil {
			return nil, fmt.Errorf("%w: previous: %v", ErrIdentity, err)
		}
		r.Previous = append(r.Previous, pp)
	}
	for _, l := range f.Legacy {
		b, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: legacy key malformed", ErrIdentity)
		}
		r.Legacy = append(r.Legacy, ed25519.PublicKey(b))
	}
	for _, t := range f.Transitions {
		r.Transitions = append(r.Transitions, []byte(t))
	}
	return r, nil
}

// ReadPublicIdentity reads the node id and public identity from
// identity.json without the root key. Nothing it returns is verified: the
// file's integrity is checked only by [Keyring.OpenIdentity].
func ReadPublicIdentity(b []byte) (string, PublicIdentity, error) {
	f, err := parseIdentityFile(b)
	if err != nil {
		return "", PublicIdentity{}, err
	}
	p, err := f.Public.parse()
	if err != nil {
		return "", PublicIdentity{}, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	return f.NodeID, p, nil
}

// The public identity file (node.pub) others pin:
//
//	embassy node identity v1
//	node <node id>
//	ed25519 <base64>
//	ml-dsa-44 <base64>
//	signature <base64 hybrid signature over the lines above, newlines included>
const pubHeader = "embassy node identity v1\n"

func pubBody(node string, p PublicIdentity) []byte {
	return fmt.Appendf(nil, "%snode %s\ned25519 %s\nml-dsa-44 %s\n", pubHeader, node, base64.StdEncoding.EncodeToString(p.Ed25519), base64.StdEncoding.EncodeToString(p.MLDSA44.Bytes()))
}

// ExportPublic writes the pinnable public identity file: both public keys,
// signed by the identity itself (so the file proves possession). The
// signature is deterministic: the same identity always exports the same
// bytes, so a pinned copy can be compared byte for byte.
func (r *Identity) ExportPublic() ([]byte, error) {
	return SignLines(pubBody(r.NodeID, r.id.pub), func(body []byte) ([]byte, error) { return r.id.sign(body, true) })
}

// SignLines completes a record for ParseSignedLines: body followed by the
// "signature" line that sign makes over it (a hybrid signature).
func SignLines(body []byte, sign func([]byte) ([]byte, error)) ([]byte, error) {
	sig, err := sign(body)
	if err != nil {
		return nil, err
	}
	if len(sig) != HybridSignatureSize {
		return nil, errors.New("the signature is not a hybrid one")
	}
	return fmt.Appendf(body, "signature %s\n", base64.StdEncoding.EncodeToString(sig)), nil
}

// ParsePublic reads a node.pub file and checks its self-signature. It
// returns the node id and the identity.
func ParsePublic(b []byte) (string, PublicIdentity, error) {
	fields, body, err := ParseSignedLines(b, pubHeader, []string{"node", "ed25519", "ml-dsa-44", "signature"}, maxSignedLines)
	if err != nil {
		return "", PublicIdentity{}, fmt.Errorf("node public identity: %w", err)
	}
	p, err := publicJSON{Ed25519: fields["ed25519"], MLDSA44: fields["ml-dsa-44"]}.parse()
	if err != nil {
		return "", PublicIdentity{}, fmt.Errorf("node public identity: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(fields["signature"])
	if err != nil || len(sig) != HybridSignatureSize {
		return "", PublicIdentity{}, errors.New("node public identity: signature malformed")
	}
	if err := p.Verify(body, sig); err != nil {
		return "", PublicIdentity{}, fmt.Errorf("node public identity: self-signature: %w", err)
	}
	return fields["node"], p, nil
}

// ParseSignedLines reads a signed record of lines, "header\nkey value\n...",
// with exactly the keys given, in order, each with a non-empty value; the
// last key is the signature, and body is every byte before its line (what
// the signature covers). A record longer than limit bytes is refused
// before it is read. Node public keys and transitions here, and the
// federation's cards and grants, are all read by it.
func ParseSignedLines(b []byte, header string, keys []string, limit int) (map[string]string, []byte, error) {
	if len(b) > limit {
		return nil, nil, fmt.Errorf("larger than %d bytes", limit)
	}
	s := string(b)
	rest, ok := strings.CutPrefix(s, header)
	if !ok {
		return nil, nil, fmt.Errorf("does not start with %q", strings.TrimSpace(header))
	}
	fields := make(map[string]string, len(keys))
	var body []byte
	for i, key := range keys {
		line, after, ok := strings.Cut(rest, "\n")
		if !ok {
			return nil, nil, fmt.Errorf("line %q missing or unterminated", key)
		}
		v, ok := strings.CutPrefix(line, key+" ")
		if !ok || v == "" {
			return nil, nil, fmt.Errorf("want line %q, found %.60q", key, line)
		}
		if i == len(keys)-1 {
			body = b[:len(b)-len(rest)]
		}
		fields[key] = v
		rest = after
	}
	if rest != "" {
		return nil, nil, errors.New("trailing data after the signature")
	}
	return fields, body, nil
}

// maxSignedLines bounds a public key file or a transition statement.
const maxSignedLines = 64 << 10

// A transition statement records the replacement of a node identity:
//
//	embassy identity transition v1
//	node <node id>
//	at <RFC 3339 time>
//	old-ed25519 <base64>
//	old-ml-dsa-44 <base64>
//	new-ed25519 <base64>
//	new-ml-dsa-44 <base64>
//	old-signature <base64 hybrid signature by the old identity over the lines above>
//	new-signature <base64 hybrid signature by the new identity over the same lines>
const transitionHeader = "embassy identity transition v1\n"

var transitionKeys = []string{"node", "at", "old-ed25519", "old-ml-dsa-44", "new-ed25519", "new-ml-dsa-44", "old-signature", "new-signature"}

// Transition is a verified transition statement.
type Transition struct {
	NodeID   string
	At       time.Time
	Old, New PublicIdentity
}

// Replace makes a new identity for the node, returning the new record
// (which keeps the old public identity among those that verify) and the
// transition statement signed by the old and the new key.
func (r *Identity) Replace(at time.Time) (*Identity, []byte, error) {
	next, err := generateIdentity()
	if err != nil {
		return nil, nil, err
	}
	// The audit log key is the node's, not the identity's: entries sealed
	// before the replacement must still open.
	next.logKey = r.id.logKey
	body := fmt.Appendf(nil, "%snode %s\nat %s\nold-ed25519 %s\nold-ml-dsa-44 %s\nnew-ed25519 %s\nnew-ml-dsa-44 %s\n", transitionHeader, r.NodeID, at.UTC().Format(time.RFC3339),
		base64.StdEncoding.EncodeToString(r.id.pub.Ed25519), base64.StdEncoding.EncodeToString(r.id.pub.MLDSA44.Bytes()),
		base64.StdEncoding.EncodeToString(next.pub.Ed25519), base64.StdEncoding.EncodeToString(next.pub.MLDSA44.Bytes()))
	oldSig, err := r.id.signHybrid(body)
	if err != nil {
		return nil, nil, err
	}
	newSig, err := next.signHybrid(body)
	if err != nil {
		return nil, nil, err
	}
	stmt := fmt.Appendf(body, "old-signature %s\nnew-signature %s\n", base64.StdEncoding.EncodeToString(oldSig), base64.StdEncoding.EncodeToString(newSig))
	out := &Identity{NodeID: r.NodeID, Created: at.UTC().Truncate(time.Second), id: next,
		Previous: append(append([]PublicIdentity(nil), r.Previous...), r.id.pub), Legacy: r.Legacy,
		Transitions: append(append([][]byte(nil), r.Transitions...), stmt)}
	return out, stmt, nil
}

// ParseTransition verifies a transition statement: both signatures over
// its body. The caller checks that Old is the identity it pinned.
func ParseTransition(b []byte) (Transition, error) {
	fields, _, err := ParseSignedLines(b, transitionHeader, transitionKeys, maxSignedLines)
	if err != nil {
		return Transition{}, fmt.Errorf("transition statement: %w", err)
	}
	// Both signatures cover the lines before the first of them.
	i := bytes.Index(b, []byte("\nold-signature "))
	body := b[:i+1]
	at, err := time.Parse(time.RFC3339, fields["at"])
	if err != nil {
		return Transition{}, fmt.Errorf("transition statement: at: %w", err)
	}
	old, err := publicJSON{Ed25519: fields["old-ed25519"], MLDSA44: fields["old-ml-dsa-44"]}.parse()
	if err != nil {
		return Transition{}, fmt.Errorf("transition statement: old key: %w", err)
	}
	next, err := publicJSON{Ed25519: fields["new-ed25519"], MLDSA44: fields["new-ml-dsa-44"]}.parse()
	if err != nil {
		return Transition{}, fmt.Errorf("transition statement: new key: %w", err)
	}
	for _, s := range []struct {
		name string
		key  PublicIdentity
	}{{"old-signature", old}, {"new-signature", next}} {
		sig, err := base64.StdEncoding.DecodeString(fields[s.name])
		if err != nil || len(sig) != HybridSignatureSize {
			return Transition{}, fmt.Errorf("transition statement: %s malformed", s.name)
		}
		if err := s.key.Verify(body, sig); err != nil {
			return Transition{}, fmt.Errorf("transition statement: %s: %w", s.name, err)
		}
	}
	return Transition{NodeID: fields["node"], At: at, Old: old, New: next}, nil
}

// ParsePublicKeys reads an identity from the base64 of its Ed25519 and
// ML-DSA-44 public keys (as node.pub and peer cards carry them).
func ParsePublicKeys(ed25519B64, mldsaB64 string) (PublicIdentity, error) {
	return publicJSON{Ed25519: ed25519B64, MLDSA44: mldsaB64}.parse()
}
