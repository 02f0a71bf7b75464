package sharefile

import (
	"crypto/hpke"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/embassy-dev/embassy/custody/shamir"
)

// magic starts every binary share file.
const magic = "EMBSHARE"

// formatVersion is the version of the share file format this package writes
// and reads.
const formatVersion = 1

// Sizes of the fixed fields.
const (
	saltLen        = 16
	nonceLen       = 12 // AES-GCM
	tagLen         = 16 // AES-GCM and HPKE's AES-256-GCM
	fingerprintLen = 32
	hybridEncLen   = 1120 // MLKEM768-X25519 encapsulated key
)

// Ciphertext bounds: an encoded share set share plus the AEAD tag.
const (
	minCiphertext = tagLen + shamir.MaxEncodedLen - shamir.MaxSecretLen + shamir.MinSetSecretLen
	maxCiphertext = tagLen + shamir.MaxEncodedLen
)

// A Method is how a share file's contents are encrypted to its custodian.
type Method byte

// The methods.
const (
	// MethodPassphrase derives an AES-256-GCM key from the custodian's
	// passphrase with Argon2id.
	MethodPassphrase Method = 1
	// MethodHybrid encrypts to the custodian's public key with HPKE
	// (RFC 9180) using the post-quantum hybrid KEM MLKEM768-X25519
	// (X-Wing), HKDF-SHA256 and AES-256-GCM.
	MethodHybrid Method = 2
)

// String names the method for people.
func (m Method) String() string {
	switch m {
	case MethodPassphrase:
		return "passphrase (Argon2id, AES-256-GCM)"
	case MethodHybrid:
		return "custodian key (HPKE MLKEM768-X25519, HKDF-SHA256, AES-256-GCM)"
	}
	return fmt.Sprintf("unknown method %d", byte(m))
}

// HPKE algorithm identifiers of MethodHybrid, stored in every file that uses
// it.
var (
	hybridKEM  = hpke.MLKEM768X25519()
	hybridKDF  = hpke.HKDFSHA256()
	hybridAEAD = hpke.AES256GCM()
)

// A Fingerprint identifies a custodian public key: the SHA-256 of its
// binary encoding (see the package documentation).
type Fingerprint [32]byte

// String returns "SHA256:" and the fingerprint in unpadded base64, the way
// SSH shows key fingerprints.
func (f Fingerprint) String() string {
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(f[:])
}

// A Header is the plain, unencrypted part of a share file: whose share it
// is and how it is sealed. It is authenticated: Open fails if any byte of
// it was changed. ParseHeader reads it without any key.
type Header struct {
	Node      string       // the node whose secret the share is part of
	Custodian string       // the custodian who holds the share
	SetID     shamir.SetID // the share set (split) the share belongs to
	Threshold int          // shares needed to recover the secret
	Total     int          // shares in the set
	Index     int          // which share this is, 1..Total (its Shamir x)

	Method Method // how the share is encrypted; set by Seal

	// Argon2 is the key derivation cost of a MethodPassphrase file; set by
	// Seal.
	Argon2 Argon2Params
	// Recipient identifies the custodian key a MethodHybrid file is sealed
	// to; set by Seal.
	Recipient Fingerprint
}

// String summarises the header on one line.
func (h Header) String() string {
	return fmt.Sprintf("share %d of %d (%d needed) of share set %s, node %q, custodian %q, sealed to %s",
		h.Index, h.Total, h.Threshold, h.SetID, h.Node, h.Custodian, h.sealedTo())
}

func (h Header) sealedTo() string {
	switch h.Method {
	case MethodPassphrase:
		return "a passphrase (" + h.Argon2.String() + ")"
	case MethodHybrid:
		return "custodian key " + h.Recipient.String()
	}
	return h.Method.String()
}

// fileHeader is a Header with the per-file values that the encryption
// needs. Its encoding is the associated data of the encryption.
type fileHeader struct {
	Header
	salt  [saltLen]byte      // MethodPassphrase
	nonce [nonceLen]byte     // MethodPassphrase
	enc   [hybridEncLen]byte // MethodHybrid
}

// checkName checks a node id or custodian name: 1..255 bytes of printable
// UTF-8, since both are shown to people.
func checkName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > 255:
		return fmt.Errorf("%s is %d bytes, more than 255", what, len(s))
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%s %q contains the unprintable character %U", what, s, r)
		}
	}
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%s %q starts or ends with a space", what, s)
	}
	return nil
}

// check validates the header fields that every method shares.
func (h Header) check() error {
	if err := checkName("node id", h.Node); err != nil {
		return err
	}
	if err := checkName("custodian name", h.Custodian); err != nil {
		return err
	}
	if h.Threshold < shamir.MinThreshold || h.Threshold > h.Total || h.Total > shamir.MaxShares {
		return fmt.Errorf("threshold %d of %d is impossible", h.Threshold, h.Total)
	}
	if h.Index < 1 || h.Index > h.Total {
		return fmt.Errorf("share %d is outside a set of %d", h.Index, h.Total)
	}
	return nil
}

// marshal encodes the header as described in the package documentation.
func (h *fileHeader) marshal() ([]byte, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 128+len(h.Node)+len(h.Custodian)+hybridEncLen)
	b = append(b, magic...)
	b = append(b, formatVersion, byte(h.Method))
	b = append(b, byte(len(h.Node)))
	b = append(b, h.Node...)
	b = append(b, byte(len(h.Custodian)))
	b = append(b, h.Custodian...)
	b = append(b, h.SetID[:]...)
	b = append(b, byte(h.Threshold), byte(h.Total), byte(h.Index))
	switch h.Method {
	case MethodPassphrase:
		if err := h.Argon2.check(); err != nil {
			return nil, err
		}
		b = binary.BigEndian.AppendUint32(b, h.Argon2.Time)
		b = binary.BigEndian.AppendUint32(b, h.Argon2.MemoryKiB)
		b = append(b, h.Argon2.Threads)
		b = append(b, h.salt[:]...)
		b = append(b, h.nonce[:]...)
	case MethodHybrid:
		b = binary.BigEndian.AppendUint16(b, hybridKEM.ID())
		b = binary.BigEndian.AppendUint16(b, hybridKDF.ID())
		b = binary.BigEndian.AppendUint16(b, hybridAEAD.ID())
		b = append(b, h.Recipient[:]...)
		b = append(b, h.enc[:]...)
	default:
		return nil, fmt.Errorf("unknown method %d", byte(h.Method))
	}
	return b, nil
}

// errTruncated is what reader reports when a field runs past the end.
var errTruncated = errors.New("file is truncated")

// reader consumes a byte slice field by field; the first failure sticks.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) next(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n {
		r.err = fmt.Errorf("%w: it ends inside the %s (at byte %d)", errTruncated, field, len(r.b))
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) byte(field string) byte {
	if v := r.next(1, field); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) uint16(field string) uint16 {
	if v := r.next(2, field); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) uint32(field string) uint32 {
	if v := r.next(4, field); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

// parseHeader decodes the header at the start of a binary share file and
// returns it with its length. It checks the header's structure and values
// but not the cost limits on Argon2 parameters, which Open enforces.
func parseHeader(b []byte) (fileHeader, int, error) {
	var h fileHeader
	r := &reader{b: b}
	if m := r.next(len(magic), "magic"); r.err != nil || string(m) != magic {
		return h, 0, errors.New("not a custodian share file: it does not start with " + magic)
	}
	if v := r.byte("version"); r.err == nil && v != formatVersion {
		return h, 0, fmt.Errorf("share file version %d is not supported (this program reads version %d; or the file was altered)", v, formatVersion)
	}
	// From here on the file is a version 1 file: what no version 1 file
	// holds was put there by a change, or by damage.
	h, n, err := parseV1(r)
	if err != nil {
		return h, 0, fmt.Errorf("%w: %w", ErrAltered, err)
	}
	return h, n, nil
}

// parseV1 decodes the rest of a version 1 header, after its version byte.
func parseV1(r *reader) (fileHeader, int, error) {
	var h fileHeader
	h.Method = Method(r.byte("method"))
	h.Node = string(r.next(int(r.byte("node id length")), "node id"))
	h.Custodian = string(r.next(int(r.byte("custodian name length")), "custodian name"))
	copy(h.SetID[:], r.next(len(h.SetID), "share-set id"))
	h.Threshold = int(r.byte("threshold"))
	h.Total = int(r.byte("total"))
	h.Index = int(r.byte("share index"))
	if r.err != nil {
		return h, 0, r.err
	}
	if err := h.check(); err != nil {
		return h, 0, err
	}
	switch h.Method {
	case MethodPassphrase:
		h.Argon2.Time = r.uint32("Argon2id time")
		h.Argon2.MemoryKiB = r.uint32("Argon2id memory")
		h.Argon2.Threads = r.byte("Argon2id threads")
		copy(h.salt[:], r.next(saltLen, "salt"))
		copy(h.nonce[:], r.next(nonceLen, "nonce"))
		if r.err != nil {
			return h, 0, r.err
		}
		if err := h.Argon2.check(); err != nil {
			return h, 0, err
		}
	case MethodHybrid:
		kem, kdf, aead := r.uint16("KEM id"), r.uint16("KDF id"), r.uint16("AEAD id")
		copy(h.Recipient[:], r.next(fingerprintLen, "recipient fingerprint"))
		copy(h.enc[:], r.next(hybridEncLen, "encapsulated key"))
		if r.err != nil {
			return h, 0, r.err
		}
		if kem != hybridKEM.ID() || kdf != hybridKDF.ID() || aead != hybridAEAD.ID() {
			return h, 0, fmt.Errorf("its header names HPKE suite KEM %#04x, KDF %#04x, AEAD %#04x, which no version %d file has (they all use %#04x, %#04x, %#04x)",
				kem, kdf, aead, formatVersion, hybridKEM.ID(), hybridKDF.ID(), hybridAEAD.ID())
		}
	default:
		return h, 0, fmt.Errorf("its header names method %d, which no version %d file has", byte(h.Method), formatVersion)
	}
	return h, r.off, nil
}
