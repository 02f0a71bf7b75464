package custody

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/embassy-dev/embassy/seal"
)

// A node's peer keys are what allied nodes need beside its identity: the
// TLS key of its peer listener (Ed25519; allies pin the SHA-256 of its
// public key) and an HPKE recipient key (MLKEM768-X25519) that owners wrap
// shared data keys to. Like the identity they are random, not derived from
// the root key, and stored wrapped under it (peerkeys.json, carried in the
// node descriptor), so a root key rotation re-wraps them and changes
// nothing that allies pinned. The private halves never leave this package.

// PeerKeysFile is the name of the peer keys in a node directory.
const PeerKeysFile = "peerkeys.json"

const peerKeysFormat = "embassy peer keys v1"

// ErrPeerKeys: peerkeys.json is damaged, changed, or sealed under another
// root key.
var ErrPeerKeys = errors.New("peer keys do not open")

// PeerKeys is a node's peer listener TLS key and HPKE recipient key. It is
// opaque and redacts itself.
type PeerKeys struct {
	_      [0]func()
	seed   []byte // 32 bytes TLS Ed25519 seed || 32 bytes X-Wing seed
	tls    ed25519.PrivateKey
	hpke   hpke.PrivateKey
	hpkePK []byte // KEM id || public key
}

// LogValue implements slog.LogValuer: only the public pin is shown.
func (p *PeerKeys) LogValue() slog.Value { return slog.StringValue("peer keys " + p.TLSPin()) }

// GeneratePeerKeys makes fresh peer keys.
func GeneratePeerKeys() (*PeerKeys, error) {
	seed := make([]byte, 64)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("custody: generate peer keys: %w", err)
	}
	return newPeerKeys(seed)
}

func newPeerKeys(seed []byte) (*PeerKeys, error) {
	if len(seed) != 64 {
		return nil, fmt.Errorf("%w: wrong seed size", ErrPeerKeys)
	}
	sk, err := seal.RecipientKEM().NewPrivateKey(seed[32:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPeerKeys, err)
	}
	pk := binary.BigEndian.AppendUint16(nil, sk.KEM().ID())
	pk = append(pk, sk.PublicKey().Bytes()...)
	return &PeerKeys{seed: bytes.Clone(seed), tls: ed25519.NewKeyFromSeed(seed[:32]), hpke: sk, hpkePK: pk}, nil
}

// HPKEPublicKey returns the recipient key's encoding: the 2-byte KEM id
// (0x647a) then the MLKEM768-X25519 public key.
func (p *PeerKeys) HPKEPublicKey() []byte { return bytes.Clone(p.hpkePK) }

// ParseHPKEPublicKey reads an encoding made by HPKEPublicKey.
func ParseHPKEPublicKey(b []byte) (hpke.PublicKey, error) {
	if len(b) < 2 || binary.BigEndian.Uint16(b) != seal.RecipientKEM().ID() {
		return nil, errors.New("not an MLKEM768-X25519 public key (KEM id 0x647a)")
	}
	return seal.RecipientKEM().NewPublicKey(b[2:])
}

// UnwrapDataKey opens a data key wrapped to this node's recipient key
// (seal.WrapTo) with info.
func (p *PeerKeys) UnwrapDataKey(wrapped, info []byte) (seal.DataKey, error) {
	return seal.UnwrapWith(p.hpke, wrapped, info)
}

// SPKIPin is "SHA256:" and the unpadded base64 of the SHA-256 of a DER
// SubjectPublicKeyInfo: what allies pin of a TLS key.
func SPKIPin(spki []byte) string { return fingerprint(spki) }

// TLSPin is the pin of the peer listener's TLS public key.
func (p *PeerKeys) TLSPin() string {
	spki, _ := x509.MarshalPKIXPublicKey(p.tls.Public())
	return SPKIPin(spki)
}

// TLSCertificate returns a self-signed certificate of the TLS key, valid
// around now. Nothing in it but the key matters: allies check the pin.
func (p *PeerKeys) TLSCertificate(nodeID string, now time.Time) (tls.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.Unix()),
		Subject:      pkix.Name{CommonName: "embassy peer " + nodeID},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"embassy-peer-" + nodeID},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, p.tls.Public(), p.tls)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("custody: peer certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: p.tls}, nil
}

type peerKeysFile struct {
	Format string `json:"format"`
	NodeID string `json:"node_id"`
	TLSPin string `json:"tls_pin"`
	HPKE   string `json:"hpke"`
	// Wrapped is nonce || AES-256-GCM(seeds) under HKDF(root,
	// "peer-keys-wrap"); everything else is its AAD.
	Wrapped string `json:"wrapped,omitempty"`
}

func (f peerKeysFile) aad() []byte {
	f.Wrapped = ""
	b, _ := json.Marshal(f)
	return append([]byte("embassy peer keys wrap v1\x00"), b...)
}

// SealPeerKeys encodes p as peerkeys.json, wrapped under k's root key.
func (k *Keyring) SealPeerKeys(nodeID string, p *PeerKeys) ([]byte, error) {
	f := peerKeysFile{Format: peerKeysFormat, NodeID: nodeID, TLSPin: p.TLSPin(), HPKE: base64.StdEncoding.EncodeToString(p.hpkePK)}
	aead, err := k.aead("peer-keys-wrap")
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	f.Wrapped = base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, p.seed, f.aad()))
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// OpenPeerKeys decodes peerkeys.json with k's root key or, during a root
// rotation, the previous one.
func (k *Keyring) OpenPeerKeys(nodeID string, b []byte) (*PeerKeys, error) {
	p, err := k.openPeerKeys(nodeID, b)
	if err != nil && k.prev != nil {
		if p2, err2 := k.prev.openPeerKeys(nodeID, b); err2 == nil {
			return p2, nil
		}
	}
	return p, err
}

func (k *Keyring) openPeerKeys(nodeID string, b []byte) (*PeerKeys, error) {
	var f peerKeysFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPeerKeys, err)
	}
	if f.Format != peerKeysFormat {
		return nil, fmt.Errorf("%w: format %q is not %q", ErrPeerKeys, f.Format, peerKeysFormat)
	}
	if f.NodeID != nodeID {
		return nil, fmt.Errorf("%w: they are node %s's, not %s's", ErrPeerKeys, f.NodeID, nodeID)
	}
	aead, err := k.aead("peer-keys-wrap")
	if err != nil {
		return nil, err
	}
	w, err := base64.StdEncoding.DecodeString(f.Wrapped)
	if err != nil || len(w) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: wrapped key malformed", ErrPeerKeys)
	}
	seed, err := aead.Open(nil, w[:aead.NonceSize()], w[aead.NonceSize():], f.aad())
	if err != nil {
		return nil, fmt.Errorf("%w: not sealed under this root key, or changed since", ErrPeerKeys)
	}
	defer clear(seed)
	p, err := newPeerKeys(seed)
	if err != nil {
		return nil, err
	}
	if p.TLSPin() != f.TLSPin || base64.StdEncoding.EncodeToString(p.hpkePK) != f.HPKE {
		return nil, fmt.Errorf("%w: public keys do not match the private keys", ErrPeerKeys)
	}
	return p, nil
}

// aead is AES-256-GCM under HKDF(root, info).
func (k *Keyring) aead(info string) (cipher.AEAD, error) {
	key, err := k.root.derive(info, 32)
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
