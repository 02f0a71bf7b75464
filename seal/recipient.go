package seal

import (
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
)

// Data keys are handed to another party (an allied node reading a shared
// object) wrapped to that party's HPKE public key: MLKEM768-X25519 (X-Wing),
// HKDF-SHA256 and AES-256-GCM, so the key stays confidential as long as
// either ML-KEM-768 or X25519 holds. The wrapped form is the 2-byte KEM id,
// the encapsulation and the sealed key; info binds what the key is for (the
// caller's choice: grant, object version, part, recipient).

// RecipientKEM is the KEM of recipient keys.
func RecipientKEM() hpke.KEM { return hpke.MLKEM768X25519() }

// WrapTo wraps k to the recipient public key pub, bound to info.
func WrapTo(pub hpke.PublicKey, k DataKey, info []byte) ([]byte, error) {
	if !k.Valid() {
		return nil, errors.New("seal: wrap an invalid data key")
	}
	if pub.KEM().ID() != RecipientKEM().ID() {
		return nil, fmt.Errorf("seal: recipient key uses KEM %#04x, not MLKEM768-X25519", pub.KEM().ID())
	}
	ct, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), info, k.k[:])
	if err != nil {
		return nil, fmt.Errorf("seal: wrap to recipient: %w", err)
	}
	return append(binary.BigEndian.AppendUint16(nil, pub.KEM().ID()), ct...), nil
}

// UnwrapWith opens a key wrapped by WrapTo with the recipient's private
// key and the same info. Any change to wrapped or info fails with ErrOpen.
func UnwrapWith(priv hpke.PrivateKey, wrapped, info []byte) (DataKey, error) {
	if len(wrapped) < 2 || binary.BigEndian.Uint16(wrapped) != RecipientKEM().ID() {
		return DataKey{}, fmt.Errorf("%w: not a data key wrapped to an MLKEM768-X25519 recipient", ErrOpen)
	}
	pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), info, wrapped[2:])
	if err != nil || len(pt) != KeySize {
		return DataKey{}, ErrOpen
	}
	var k [KeySize]byte
	copy(k[:], pt)
	clear(pt)
	return DataKey{k: &k}, nil
}
