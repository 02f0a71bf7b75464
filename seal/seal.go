// Package seal owns the symmetric cryptography of stored data: per-object data
// keys, the AES-256-GCM sealing of stripes, and the wrapping of data keys under
// key-encryption keys.
//
// A stripe is sealed with the part's own random data key. The nonce is the
// stripe index, which never repeats under one key because every part of every
// object version gets a fresh key. The associated data binds the object
// identity, the version, the part number, the stripe index and whether the
// stripe is the last one, so stripes cannot be reordered, swapped between
// objects or versions, or truncated without the open failing.
//
// Key bytes never leave this package except through [KEK.Wrap], which
// encrypts them. Callers hold opaque values.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
)

// KeySize is the size in bytes of data keys and key-encryption keys.
const KeySize = 32

// Overhead is the number of bytes sealing adds to a stripe (the GCM tag).
const Overhead = 16

// ErrOpen is returned when a sealed stripe or wrapped key fails
// authentication: the bytes were corrupted, tampered with, or belong to
// another object, version, stripe or key. The caller must treat the data as
// unreadable (and try parity, if it has any).
var ErrOpen = errors.New("seal: authentication failed")

// DataKey is a per-part AES-256 key. The zero value is not a valid key.
// It cannot be compared with == and redacts itself in logs.
type DataKey struct {
	_ [0]func() // not comparable
	k *[KeySize]byte
}

// NewDataKey returns a fresh random data key.
func NewDataKey() (DataKey, error) {
	var k [KeySize]byte
	if _, err := rand.Read(k[:]); err != nil {
		return DataKey{}, fmt.Errorf("seal: generate data key: %w", err)
	}
	return DataKey{k: &k}, nil
}

// Valid reports whether k holds a key.
func (k DataKey) Valid() bool { return k.k != nil }

// LogValue implements slog.LogValuer: a key never reaches a log.
func (k DataKey) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String redacts the key.
func (k DataKey) String() string { return "seal.DataKey(REDACTED)" }

// StripeContext identifies what a stripe belongs to. Every field is bound
// into the associated data of every stripe.
type StripeContext struct {
	ObjectID  [16]byte // derived from vault and key
	VersionID [16]byte
	Part      uint32
}

// Stripes seals and opens the stripes of one part.
// It is safe for concurrent use.
type Stripes struct {
	aead cipher.AEAD
	ctx  StripeContext
}

// NewStripes returns a stripe sealer for the part identified by ctx.
func NewStripes(k DataKey, ctx StripeContext) (*Stripes, error) {
	if !k.Valid() {
		return nil, errors.New("seal: invalid data key")
	}
	aead, err := newGCM(k.k[:])
	if err != nil {
		return nil, err
	}
	return &Stripes{aead: aead, ctx: ctx}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return cipher.NewGCM(b)
}

const stripeAADSize = 8 + 16 + 16 + 4 + 8 + 1

func (s *Stripes) aad(buf *[stripeAADSize]byte, index uint64, final bool) []byte {
	copy(buf[0:8], "EMBSTRv1")
	copy(buf[8:24], s.ctx.ObjectID[:])
	copy(buf[24:40], s.ctx.VersionID[:])
	binary.BigEndian.PutUint32(buf[40:44], s.ctx.Part)
	binary.BigEndian.PutUint64(buf[44:52], index)
	if final {
		buf[52] = 1
	} else {
		buf[52] = 0
	}
	return buf[:]
}

func nonce(buf *[12]byte, index uint64) []byte {
	binary.BigEndian.PutUint64(buf[0:8], index)
	return buf[:]
}

// Seal encrypts plaintext as stripe number index and appends the result to
// dst. To seal in place, pass plaintext[:0] as dst with Overhead bytes of
// spare capacity.
func (s *Stripes) Seal(dst, plaintext []byte, index uint64, final bool) []byte {
	var n [12]byte
	var a [stripeAADSize]byte
	return s.aead.Seal(dst, nonce(&n, index), plaintext, s.aad(&a, index, final))
}

// Open authenticates and decrypts sealed stripe number index, appending the
// plaintext to dst. In-place use is allowed with sealed[:0] as dst. A stripe
// that fails returns an error wrapping [ErrOpen].
func (s *Stripes) Open(dst, sealed []byte, index uint64, final bool) ([]byte, error) {
	var n [12]byte
	var a [stripeAADSize]byte
	out, err := s.aead.Open(dst, nonce(&n, index), sealed, s.aad(&a, index, final))
	if err != nil {
		return nil, fmt.Errorf("stripe %d: %w", index, ErrOpen)
	}
	return out, nil
}

// KEK is a key-encryption key: it wraps data keys. Only the key custody
// package constructs KEKs from key material.
type KEK struct {
	_    [0]func()
	aead cipher.AEAD
}

// NewKEK makes a key-encryption key from 32 bytes of key material. The caller
// should erase its copy afterwards.
func NewKEK(material []byte) (KEK, error) {
	if len(material) != KeySize {
		return KEK{}, fmt.Errorf("seal: key-encryption key must be %d bytes, got %d", KeySize, len(material))
	}
	aead, err := newGCM(material)
	if err != nil {
		return KEK{}, err
	}
	return KEK{aead: aead}, nil
}

// LogValue implements slog.LogValuer.
func (KEK) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// wrapVersion is the first byte of every wrapped key.
const wrapVersion = 1

// WrappedSize is the length of a wrapped data key.
const WrappedSize = 1 + 12 + KeySize + Overhead

// Wrap encrypts k under kek. aad must name what the key is for (vault,
// version, part): unwrapping with other aad fails.
func (kek KEK) Wrap(k DataKey, aad []byte) ([]byte, error) {
	if kek.aead == nil || !k.Valid() {
		return nil, errors.New("seal: wrap with invalid key")
	}
	out := make([]byte, 1+12, WrappedSize)
	out[0] = wrapVersion
	if _, err := rand.Read(out[1:13]); err != nil {
		return nil, fmt.Errorf("seal: wrap nonce: %w", err)
	}
	return kek.aead.Seal(out, out[1:13], k.k[:], wrapAAD(aad)), nil
}

// Unwrap reverses Wrap.
func (kek KEK) Unwrap(wrapped, aad []byte) (DataKey, error) {
	if kek.aead == nil {
		return DataKey{}, errors.New("seal: unwrap with invalid key")
	}
	if len(wrapped) != WrappedSize {
		return DataKey{}, fmt.Errorf("seal: wrapped key is %d bytes, want %d", len(wrapped), WrappedSize)
	}
	if wrapped[0] != wrapVersion {
		return DataKey{}, fmt.Errorf("seal: unknown wrapped key version %d", wrapped[0])
	}
	var k [KeySize]byte
	if _, err := kek.aead.Open(k[:0], wrapped[1:13], wrapped[13:], wrapAAD(aad)); err != nil {
		return DataKey{}, fmt.Errorf("unwrap data key: %w", ErrOpen)
	}
	return DataKey{k: &k}, nil
}

func wrapAAD(aad []byte) []byte {
	return append([]byte("EMBWRPv1"), aad...)
}
