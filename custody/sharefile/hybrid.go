package sharefile

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
)

// Lengths of the binary key encodings: a 2-byte KEM id, then the key.
const (
	publicKeyLen  = 2 + 1216
	privateKeyLen = 2 + 32
)

// A HybridRecipient is a custodian's public key: share files sealed to it
// open only with the matching HybridIdentity. The key is hybrid
// post-quantum: MLKEM768-X25519 (X-Wing), so a file stays confidential as
// long as either ML-KEM-768 or X25519 holds.
type HybridRecipient struct {
	pk  hpke.PublicKey
	enc []byte // binary encoding: KEM id || public key
	fp  Fingerprint
}

// A HybridIdentity is a custodian's private key. It is opaque: its key bytes
// leave it only through PrivateKeyFile and EncryptedPrivateKeyFile, and it
// redacts itself when printed or logged.
type HybridIdentity struct {
	_   [0]func() // not comparable
	sk  hpke.PrivateKey
	pub *HybridRecipient
}

// GenerateKey makes a new custodian key pair. Give the recipient (the public
// key) to whoever seals shares; the custodian keeps the identity, written
// out with PrivateKeyFile.
func GenerateKey() (*HybridRecipient, *HybridIdentity, error) {
	sk, err := hybridKEM.GenerateKey()
	if err != nil {
		return nil, nil, fmt.Errorf("generate custodian key: %w", err)
	}
	id, err := newHybridIdentity(sk)
	if err != nil {
		return nil, nil, err
	}
	return id.pub, id, nil
}

func newHybridIdentity(sk hpke.PrivateKey) (*HybridIdentity, error) {
	pub, err := newHybridRecipient(sk.PublicKey())
	if err != nil {
		return nil, err
	}
	return &HybridIdentity{sk: sk, pub: pub}, nil
}

func newHybridRecipient(pk hpke.PublicKey) (*HybridRecipient, error) {
	if pk.KEM().ID() != hybridKEM.ID() {
		return nil, fmt.Errorf("custodian key uses KEM %#04x, not MLKEM768-X25519", pk.KEM().ID())
	}
	enc := binary.BigEndian.AppendUint16(nil, hybridKEM.ID())
	enc = append(enc, pk.Bytes()...)
	return &HybridRecipient{pk: pk, enc: enc, fp: sha256.Sum256(enc)}, nil
}

// ParseHybridRecipient reads a custodian public key, either as the armoured
// text that MarshalText writes or as its binary encoding.
func ParseHybridRecipient(data []byte) (*HybridRecipient, error) {
	b := data
	if isArmored(publicKeyLabel, data) {
		var err error
		if b, err = dearmor(publicKeyLabel, data); err != nil {
			return nil, fmt.Errorf("read custodian public key: %w", err)
		}
	}
	if len(b) != publicKeyLen {
		return nil, fmt.Errorf("read custodian public key: it is %d bytes, not %d", len(b), publicKeyLen)
	}
	if id := binary.BigEndian.Uint16(b); id != hybridKEM.ID() {
		return nil, fmt.Errorf("read custodian public key: KEM %#04x is not MLKEM768-X25519 (%#04x)", id, hybridKEM.ID())
	}
	pk, err := hybridKEM.NewPublicKey(b[2:])
	if err != nil {
		return nil, fmt.Errorf("read custodian public key: %w", err)
	}
	return newHybridRecipient(pk)
}

func (r *HybridRecipient) method() Method { return MethodHybrid }

// Fingerprint identifies the key; share files sealed to it name it.
func (r *HybridRecipient) Fingerprint() Fingerprint { return r.fp }

// Bytes returns the binary encoding of the key: the 2-byte KEM id 0x647a
// then the 1,216-byte MLKEM768-X25519 public key.
func (r *HybridRecipient) Bytes() []byte { return clone(r.enc) }

// MarshalText returns the key as armoured text, for a file or a message.
func (r *HybridRecipient) MarshalText() ([]byte, error) {
	return armor(publicKeyLabel, []string{
		"Embassy custodian public key",
		"Fingerprint: " + r.fp.String(),
	}, r.enc), nil
}

// UnmarshalText reads a key written by MarshalText.
func (r *HybridRecipient) UnmarshalText(text []byte) error {
	v, err := ParseHybridRecipient(text)
	if err != nil {
		return err
	}
	*r = *v
	return nil
}

// Equal reports whether r and o are the same key.
func (r *HybridRecipient) Equal(o *HybridRecipient) bool { return bytes.Equal(r.enc, o.enc) }

// String names the key by its fingerprint.
func (r *HybridRecipient) String() string {
	if r == nil {
		return "custodian key <nil>"
	}
	return "custodian key " + r.fp.String()
}

// ParseHybridIdentity reads a custodian private key file written by
// PrivateKeyFile.
func ParseHybridIdentity(file []byte) (*HybridIdentity, error) {
	b, err := dearmor(privateKeyLabel, file)
	if err != nil {
		if isArmored(encryptedKeyLabel, file) {
			return nil, errors.New("read custodian private key: the file is encrypted; use DecryptHybridIdentity with its passphrase")
		}
		return nil, fmt.Errorf("read custodian private key: %w", err)
	}
	defer clear(b)
	return parsePrivateKey(b)
}

// parsePrivateKey decodes the binary encoding of a private key.
func parsePrivateKey(b []byte) (*HybridIdentity, error) {
	if len(b) != privateKeyLen {
		return nil, fmt.Errorf("read custodian private key: it is %d bytes, not %d", len(b), privateKeyLen)
	}
	if id := binary.BigEndian.Uint16(b); id != hybridKEM.ID() {
		return nil, fmt.Errorf("read custodian private key: KEM %#04x is not MLKEM768-X25519 (%#04x)", id, hybridKEM.ID())
	}
	sk, err := hybridKEM.NewPrivateKey(b[2:])
	if err != nil {
		return nil, fmt.Errorf("read custodian private key: %w", err)
	}
	return newHybridIdentity(sk)
}

// PrivateKeyFile returns the private key as armoured text for the
// custodian to keep. It and EncryptedPrivateKeyFile are the only ways key
// bytes leave a HybridIdentity. Whoever has this file can open every share
// sealed to the key: write it only where the custodian alone can read it, or
// prefer EncryptedPrivateKeyFile.
func (id *HybridIdentity) PrivateKeyFile() ([]byte, error) {
	seed, err := id.sk.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode custodian private key: %w", err)
	}
	// seed is the key's own copy (crypto/hpke does not clone it): never
	// wipe it, or the key can no longer be exported.
	b := binary.BigEndian.AppendUint16(make([]byte, 0, privateKeyLen), hybridKEM.ID())
	b = append(b, seed...)
	defer clear(b)
	return armor(privateKeyLabel, []string{
		"Embassy custodian private key. Keep it secret: it opens every share sealed to",
		"public key " + id.pub.fp.String() + ".",
	}, b), nil
}

// Recipient returns the public key of the identity.
func (id *HybridIdentity) Recipient() *HybridRecipient { return id.pub }

func (id *HybridIdentity) method() Method { return MethodHybrid }

// String names the identity by its public key's fingerprint.
func (id HybridIdentity) String() string {
	if id.pub == nil {
		return "custodian private key (empty)"
	}
	return "custodian private key for " + id.pub.fp.String()
}

// GoString is String, so that %#v does not print the key.
func (id HybridIdentity) GoString() string { return id.String() }

// LogValue keeps the key out of structured logs.
func (id HybridIdentity) LogValue() slog.Value { return slog.StringValue(id.String()) }

// hybridInfo is the HPKE info string of a file: it binds the encryption to
// the node, the custodian and the share set as well as the header (the
// AEAD's associated data) does.
func hybridInfo(h *Header) []byte {
	const label = "embassy custodian share v1"
	b := make([]byte, 0, len(label)+3+len(h.Node)+len(h.Custodian)+len(h.SetID))
	b = append(b, label...)
	b = append(b, 0)
	b = append(b, byte(len(h.Node)))
	b = append(b, h.Node...)
	b = append(b, byte(len(h.Custodian)))
	b = append(b, h.Custodian...)
	return append(b, h.SetID[:]...)
}
