package custody

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"

	"github.com/embassy-dev/embassy/custody/sharefile"
)

// A custodian key file is protected by a passphrase unless its custodian
// chose otherwise: the key file above (MarshalPrivate), sealed with
// AES-256-GCM under a key derived from the passphrase with Argon2id. The
// parameters, salt and nonce are stored in the file and authenticated with
// it, so a file opens with the cost it was sealed with, within the limits
// of package sharefile.

const encryptedKeyFileFormat = "embassy custodian key v1, passphrase-protected"

// encryptedKeyFile is a passphrase-protected custodian key file.
type encryptedKeyFile struct {
	Format string `json:"format"`
	// Name is the custodian's name, in the clear, so that tools can say
	// whose key a file is before asking for its passphrase.
	Name       string      `json:"name"`
	KDF        argon2Param `json:"kdf"`
	Nonce      string      `json:"nonce"`
	Ciphertext string      `json:"ciphertext"`
}

type argon2Param struct {
	Algorithm string `json:"algorithm"` // argon2id
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      string `json:"salt"`
}

// ErrPassphrase: a key file did not open with the passphrase given (it is
// wrong, or the file was altered).
var ErrPassphrase = errors.New("the passphrase does not open this key file")

// ErrNeedPassphrase: the key file is protected by a passphrase and none was
// given.
var ErrNeedPassphrase = errors.New("the key file is protected by a passphrase")

// MarshalPrivateProtected encodes the private key file sealed under
// passphrase (at least sharefile.MinPassphraseLen bytes), with the default
// Argon2id cost.
func (k *CustodianKey) MarshalPrivateProtected(passphrase []byte) ([]byte, error) {
	if len(passphrase) < sharefile.MinPassphraseLen {
		return nil, fmt.Errorf("passphrase is %d bytes; it must be at least %d", len(passphrase), sharefile.MinPassphraseLen)
	}
	plain, err := k.MarshalPrivate()
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	p := sharefile.DefaultArgon2Params
	salt, nonce := make([]byte, 16), make([]byte, 12)
	rand.Read(salt)
	rand.Read(nonce)
	f := encryptedKeyFile{Format: encryptedKeyFileFormat, Name: k.name,
		KDF:   argon2Param{Algorithm: "argon2id", Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads, Salt: base64.StdEncoding.EncodeToString(salt)},
		Nonce: base64.StdEncoding.EncodeToString(nonce)}
	aead, err := keyFileAEAD(passphrase, salt, f.KDF)
	if err != nil {
		return nil, err
	}
	f.Ciphertext = base64.StdEncoding.EncodeToString(aead.Seal(nil, nonce, plain, f.aad()))
	return json.MarshalIndent(f, "", "  ")
}

// aad binds everything but the ciphertext.
func (f encryptedKeyFile) aad() []byte {
	return fmt.Appendf(nil, "%s\nname %s\nargon2id t=%d m=%d p=%d salt=%s\nnonce %s\n", f.Format, f.Name, f.KDF.Time, f.KDF.MemoryKiB, f.KDF.Threads, f.KDF.Salt, f.Nonce)
}

func keyFileAEAD(passphrase, salt []byte, p argon2Param) (cipher.AEAD, error) {
	if p.Algorithm != "argon2id" {
		return nil, fmt.Errorf("key derivation %q: want argon2id", p.Algorithm)
	}
	switch {
	case p.Time == 0 || p.Threads == 0 || p.MemoryKiB < 8*uint32(p.Threads):
		return nil, errors.New("key file: malformed argon2id parameters")
	case p.MemoryKiB > sharefile.MaxArgon2MemoryKiB || p.Time > sharefile.MaxArgon2Time:
		return nil, fmt.Errorf("key file: %w: argon2id %d KiB, %d passes", sharefile.ErrCostTooHigh, p.MemoryKiB, p.Time)
	}
	key := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, 32)
	defer clear(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// KeyFileProtected reports whether b is a passphrase-protected key file.
func KeyFileProtected(b []byte) bool {
	var f struct {
		Format string `json:"format"`
	}
	return json.Unmarshal(b, &f) == nil && f.Format == encryptedKeyFileFormat
}

// KeyFileName returns the custodian name a key file names, protected or
// not, without opening it.
func KeyFileName(b []byte) string {
	var f struct {
		Name string `json:"name"`
	}
	json.Unmarshal(b, &f)
	return f.Name
}

// OpenCustodianKey decodes a custodian key file: a protected one with the
// passphrase passphrase returns (called only for a protected file), a
// plain one (from before keys were protected, or made with
// --no-passphrase) as it is.
func OpenCustodianKey(b []byte, passphrase func() ([]byte, error)) (*CustodianKey, error) {
	if !KeyFileProtected(b) {
		return ParseCustodianKey(b)
	}
	var f encryptedKeyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, errors.New("not an embassy custodian key file")
	}
	salt, err1 := base64.StdEncoding.DecodeString(f.KDF.Salt)
	nonce, err2 := base64.StdEncoding.DecodeString(f.Nonce)
	ct, err3 := base64.StdEncoding.DecodeString(f.Ciphertext)
	if err := errors.Join(err1, err2, err3); err != nil || len(salt) < 16 || len(nonce) != 12 {
		return nil, errors.New("custodian key file: malformed")
	}
	if passphrase == nil {
		return nil, ErrNeedPassphrase
	}
	pass, err := passphrase()
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	aead, err := keyFileAEAD(pass, salt, f.KDF)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nonce, ct, f.aad())
	if err != nil {
		return nil, fmt.Errorf("custodian key %s: %w", f.Name, ErrPassphrase)
	}
	defer clear(plain)
	k, err := ParseCustodianKey(plain)
	if err != nil {
		return nil, err
	}
	if k.name != f.Name {
		return nil, errors.New("custodian key file: the name outside differs from the name inside")
	}
	return k, nil
}
