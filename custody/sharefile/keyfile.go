package sharefile

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// encryptedKeyLabel labels a private key file protected by a passphrase.
const encryptedKeyLabel = "EMBASSY CUSTODIAN ENCRYPTED PRIVATE KEY"

// The body of an encrypted private key file: a 38-byte header, then the
// sealed private key encoding.
const (
	encryptedKeyVersion   = 1
	encryptedKeyHeaderLen = 1 + 4 + 4 + 1 + saltLen + nonceLen
	encryptedKeyLen       = encryptedKeyHeaderLen + privateKeyLen + tagLen
)

// EncryptedPrivateKeyFile returns the private key as armoured text
// encrypted with a passphrase, for a custodian who wants the key file to be
// useless without something they know. Open it with DecryptHybridIdentity.
func (id *HybridIdentity) EncryptedPrivateKeyFile(r *PassphraseRecipient) ([]byte, error) {
	if r == nil || r.passphrase == nil {
		return nil, errors.New("encrypt custodian private key: passphrase recipient not made by NewPassphraseRecipient")
	}
	seed, err := id.sk.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encrypt custodian private key: %w", err)
	}
	// seed is the key's own copy (crypto/hpke does not clone it): never
	// wipe it, or the key can no longer be exported.
	pt := binary.BigEndian.AppendUint16(make([]byte, 0, privateKeyLen), hybridKEM.ID())
	pt = append(pt, seed...)
	defer clear(pt)

	hdr := make([]byte, 0, encryptedKeyLen)
	hdr = append(hdr, encryptedKeyVersion)
	hdr = binary.BigEndian.AppendUint32(hdr, r.params.Time)
	hdr = binary.BigEndian.AppendUint32(hdr, r.params.MemoryKiB)
	hdr = append(hdr, r.params.Threads)
	salt := make([]byte, saltLen)
	nonce := make([]byte, nonceLen)
	rand.Read(salt)
	rand.Read(nonce)
	hdr = append(hdr, salt...)
	hdr = append(hdr, nonce...)
	aead, err := passphraseAEAD(r.passphrase, salt, r.params)
	if err != nil {
		return nil, fmt.Errorf("encrypt custodian private key: %w", err)
	}
	body := append(hdr, aead.Seal(nil, nonce, pt, hdr)...)
	return armor(encryptedKeyLabel, []string{
		"Embassy custodian private key, encrypted with a passphrase (" + r.params.String() + ").",
		"It opens every share sealed to public key " + id.pub.fp.String() + ".",
	}, body), nil
}

// DecryptHybridIdentity reads a private key file written by
// EncryptedPrivateKeyFile, decrypting it with the passphrase. A wrong
// passphrase or an altered file gives an error wrapping ErrDecrypt.
func DecryptHybridIdentity(file []byte, p *PassphraseIdentity) (*HybridIdentity, error) {
	if p == nil || p.passphrase == nil {
		return nil, errors.New("read custodian private key: passphrase identity not made by NewPassphraseIdentity")
	}
	b, err := dearmor(encryptedKeyLabel, file)
	if err != nil {
		if isArmored(privateKeyLabel, file) {
			return nil, errors.New("read custodian private key: the file is not encrypted; use ParseHybridIdentity")
		}
		return nil, fmt.Errorf("read custodian private key: %w", err)
	}
	if len(b) != encryptedKeyLen {
		return nil, fmt.Errorf("read custodian private key: it is %d bytes, not %d", len(b), encryptedKeyLen)
	}
	if b[0] != encryptedKeyVersion {
		return nil, fmt.Errorf("read custodian private key: version %d is not supported (this program reads version %d)", b[0], encryptedKeyVersion)
	}
	params := Argon2Params{
		Time:      binary.BigEndian.Uint32(b[1:5]),
		MemoryKiB: binary.BigEndian.Uint32(b[5:9]),
		Threads:   b[9],
	}
	if err := params.check(); err != nil {
		return nil, fmt.Errorf("read custodian private key: %w", err)
	}
	if err := params.checkCost(); err != nil {
		return nil, fmt.Errorf("read custodian private key: %w", err)
	}
	salt := b[10 : 10+saltLen]
	nonce := b[10+saltLen : encryptedKeyHeaderLen]
	aead, err := passphraseAEAD(p.passphrase, salt, params)
	if err != nil {
		return nil, fmt.Errorf("read custodian private key: %w", err)
	}
	pt, err := aead.Open(nil, nonce, b[encryptedKeyHeaderLen:], b[:encryptedKeyHeaderLen])
	if err != nil {
		return nil, fmt.Errorf("read custodian private key: %w: the passphrase is wrong, or the file was altered", ErrDecrypt)
	}
	defer clear(pt)
	return parsePrivateKey(pt)
}
