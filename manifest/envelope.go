package manifest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Keys seals, opens, signs and verifies envelopes. The node's key custody
// implements it; key bytes never reach this package.
type Keys interface {
	// SealManifest encrypts plaintext with aad and returns the id of the
	// key used and nonce||ciphertext.
	SealManifest(aad, plaintext []byte) (keyID [8]byte, sealed []byte, err error)
	// OpenManifest reverses SealManifest.
	OpenManifest(keyID [8]byte, aad, sealed []byte) ([]byte, error)
	// Sign signs msg with the node's signing key (Ed25519).
	Sign(msg []byte) ([]byte, error)
	// Verify checks a signature by the node's signing key.
	Verify(msg, sig []byte) error
}

const (
	magic      = "EMBM"
	headerSize = 4 + 1 + 8 + 4
	sigSize    = 64
)

// ErrCorrupt is returned for an envelope that is malformed, fails its
// signature or fails to open. The caller must not use it; another site's
// copy may be intact.
var ErrCorrupt = errors.New("manifest: corrupt or forged envelope")

// Seal encodes, seals and signs m in the current format (Format),
// returning the envelope.
func Seal(m *Manifest, keys Keys) ([]byte, error) {
	return SealFormat(m, keys, Format)
}

// SealFormat is Seal in a chosen format: FormatCompact, or FormatJSON as
// nodes wrote before the compact encoding (for compatibility tests and
// tools; the engine writes Format).
func SealFormat(m *Manifest, keys Keys, format int) ([]byte, error) {
	m.Format = format
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var plain []byte
	var err error
	switch format {
	case FormatCompact:
		plain, err = encodeBinary(m)
	case FormatJSON:
		plain, err = json.Marshal(m)
	default:
		err = fmt.Errorf("unknown format %d", format)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	// The header's key id and length are only known after sealing, so the
	// AAD is the fixed part: magic and format.
	keyID, body, err := keys.SealManifest(aad(byte(format)), plain)
	if err != nil {
		return nil, fmt.Errorf("manifest: seal: %w", err)
	}
	if len(body)+headerSize+sigSize > MaxEnvelope {
		return nil, fmt.Errorf("manifest: envelope of %d bytes exceeds %d", len(body)+headerSize+sigSize, MaxEnvelope)
	}
	env := make([]byte, headerSize, headerSize+len(body)+sigSize)
	copy(env, magic)
	env[4] = byte(format)
	copy(env[5:13], keyID[:])
	binary.BigEndian.PutUint32(env[13:17], uint32(len(body)))
	env = append(env, body...)
	sig, err := keys.Sign(env)
	if err != nil {
		return nil, fmt.Errorf("manifest: sign: %w", err)
	}
	if len(sig) != sigSize {
		return nil, fmt.Errorf("manifest: signature of %d bytes, want %d", len(sig), sigSize)
	}
	return append(env, sig...), nil
}

// aad is the associated data of a body of the given format.
func aad(format byte) []byte { return []byte{'E', 'M', 'B', 'M', format} }

// EnvelopeFormat returns the format byte of an envelope (0 when b is too
// short to have one). Open checks it; this only tells formats apart.
func EnvelopeFormat(b []byte) int {
	if len(b) < headerSize {
		return 0
	}
	return int(b[4])
}

// EnvelopeLen returns the length of the envelope at the start of b, which
// may be followed by other data (inline shard blocks). It needs only the
// header.
func EnvelopeLen(b []byte) (int, error) {
	if len(b) < headerSize {
		return 0, fmt.Errorf("%w: %d bytes is shorter than the header", ErrCorrupt, len(b))
	}
	if string(b[:4]) != magic {
		return 0, fmt.Errorf("%w: bad magic %q", ErrCorrupt, b[:4])
	}
	if b[4] != FormatJSON && b[4] != FormatCompact {
		return 0, fmt.Errorf("%w: unknown format %d", ErrCorrupt, b[4])
	}
	n := binary.BigEndian.Uint32(b[13:17])
	if int64(n) > MaxEnvelope-headerSize-sigSize {
		return 0, fmt.Errorf("%w: body length %d exceeds the limit", ErrCorrupt, n)
	}
	return headerSize + int(n) + sigSize, nil
}

// HeaderSize is the number of bytes EnvelopeLen needs.
const HeaderSize = headerSize

// Open verifies and decrypts an envelope (which must be exactly the
// envelope, see EnvelopeLen) and validates the manifest inside.
func Open(env []byte, keys Keys) (*Manifest, error) {
	n, err := EnvelopeLen(env)
	if err != nil {
		return nil, err
	}
	if n != len(env) {
		return nil, fmt.Errorf("%w: envelope is %d bytes, header says %d", ErrCorrupt, len(env), n)
	}
	signed, sig := env[:n-sigSize], env[n-sigSize:]
	if err := keys.Verify(signed, sig); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrCorrupt, err)
	}
	var keyID [8]byte
	copy(keyID[:], env[5:13])
	plain, err := keys.OpenManifest(keyID, aad(env[4]), signed[headerSize:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if env[4] == FormatCompact {
		return decodeBinary(plain)
	}
	return Decode(plain)
}

// Decode parses and validates a manifest's plaintext in format 1 (JSON).
func Decode(plain []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: decode: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after manifest", ErrCorrupt)
	}
	if m.Format != FormatJSON {
		return nil, fmt.Errorf("%w: format %d in a format 1 body", ErrCorrupt, m.Format)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return &m, nil
}
