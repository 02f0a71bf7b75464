// Package manifest owns the manifest format: the record that describes one
// object version (or delete marker) and that, stored on sites, makes the
// sites the source of truth.
//
// A manifest says which vault and key the version belongs to, its size and
// content digest, its stripe layout and erasure coding, which site holds
// which shard of each part, the wrapped data key of each part, user
// metadata, label and lock state. Object names and metadata are sensitive,
// so a manifest leaves the node only as an envelope: sealed with the node's
// manifest key and signed with the node's signing key.
//
// Envelope layout (all integers big-endian):
//
//	magic     4 bytes  "EMBM"
//	format    1 byte   2 (compact, binary.go), or 1 (JSON, still read)
//	key id    8 bytes  identifies the manifest key that sealed it
//	length    4 bytes  length of the sealed body
//	body      length   nonce || AES-256-GCM(manifest), magic and format as AAD
//	signature 64 bytes Ed25519 over everything before it
//
// The blob a site stores under a manifest name is the envelope followed,
// for inline objects, by the site's shard blocks of the single stripe.
package manifest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/embassy-dev/embassy/erasure"
)

// Manifest formats. FormatJSON (1) is the envelope plaintext as JSON,
// written until the compact encoding; FormatCompact (2) is the binary
// encoding of binary.go. Both are read; Format is written.
const (
	FormatJSON    = 1
	FormatCompact = 2
	Format        = FormatCompact
)

// ID is a random 128-bit identifier of a version or of a part's blobs.
type ID [16]byte

// NewID returns a random ID.
func NewID() ID {
	var id ID
	if _, err := rand.Read(id[:]); err != nil {
		panic("manifest: crypto/rand failed: " + err.Error())
	}
	return id
}

// String returns the lower-case hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is all zeros.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses the hex form.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 32 {
		return id, fmt.Errorf("invalid version id %q: want 32 hex digits", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("invalid version id %q: want 32 hex digits", s)
	}
	return id, nil
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Manifest describes one object version or delete marker.
type Manifest struct {
	Format       int               `json:"format"`
	Node         string            `json:"node"`
	Vault        string            `json:"vault"`
	Key          string            `json:"key"`
	Version      ID                `json:"version"`
	Created      int64             `json:"created"` // Unix nanoseconds; orders versions
	DeleteMarker bool              `json:"delete_marker,omitempty"`
	Size         int64             `json:"size"`
	Digest       []byte            `json:"digest,omitempty"` // BLAKE3-256 of the plaintext
	ETag         string            `json:"etag,omitempty"`
	ContentType  string            `json:"content_type,omitempty"`
	Meta         map[string]string `json:"meta,omitempty"`
	Label        string            `json:"label,omitempty"`
	// LabelBinding is the node-signed binding of Label to the content
	// (label.Binding JSON, after STANAG 4778).
	LabelBinding []byte `json:"label_binding,omitempty"`
	K            int    `json:"k,omitempty"`
	M            int    `json:"m,omitempty"`
	StripeSize   int    `json:"stripe_size,omitempty"` // plaintext bytes per stripe
	KeyGen       int    `json:"key_gen,omitempty"`     // vault key generation wrapping the data keys
	Parts        []Part `json:"parts,omitempty"`
	// Copies lists sites holding a copy of this manifest beyond the sites
	// of its parts (a delete marker's copies live only here).
	Copies []string `json:"copies,omitempty"`
	Lock   *Lock    `json:"lock,omitempty"`
	// Checksums holds the client's verified checksums of the content
	// (e.g. x-amz-checksum-crc32 → base64), returned on request.
	Checksums map[string]string `json:"checksums,omitempty"`
	// Revision counts rewrites of this version's manifest (lock and
	// legal-hold changes); the highest revision among copies wins.
	Revision int `json:"revision,omitempty"`
	// Journaled is set on versions written by a node that records every
	// deletion on the sites (package evidence): a copy of such a version
	// that the index does not know was not deleted, and may be adopted.
	// Versions written before have no such guarantee.
	Journaled bool `json:"journaled,omitempty"`
}

// Part is a run of stripes with its own data key and shard blobs. A
// single put has one part; a multipart upload has one per uploaded part.
type Part struct {
	Number int      `json:"number"`
	Size   int64    `json:"size"`
	ETag   string   `json:"etag,omitempty"`
	Blob   ID       `json:"blob"`
	Sites  []string `json:"sites"`            // site id of each shard, in shard order
	Inline bool     `json:"inline,omitempty"` // the single stripe rides in the manifest blobs
	Digest []byte   `json:"digest,omitempty"` // BLAKE3-256 of the part's plaintext
	// KeyGen, if set, is the vault key generation that wrapped this
	// part's key (a part uploaded before a rotation); else the manifest's.
	KeyGen     int    `json:"key_gen,omitempty"`
	WrappedKey []byte `json:"wrapped_key"`
	// Checksums holds the client checksums of this part of a multipart
	// upload (e.g. x-amz-checksum-sha256 → base64): the parts of the
	// object's composite checksum, returned on request.
	Checksums map[string]string `json:"checksums,omitempty"`
	// BlockSum is the algorithm of the checksums on this part's shard
	// blocks: erasure.BLAKE3 (the zero value, not written) for parts
	// written before XXH3, erasure.XXH3 since. It fixes the block size
	// and so the shard blobs' layout; a part never mixes two.
	BlockSum erasure.Checksum `json:"block_sum,omitempty"`
}

// Lock is an object version's retention state (S3 object lock).
type Lock struct {
	Mode      string    `json:"mode,omitempty"` // GOVERNANCE or COMPLIANCE
	Until     time.Time `json:"until,omitzero"`
	LegalHold bool      `json:"legal_hold,omitempty"`
}

// Limits on decoded manifests.
const (
	MaxKeyLen     = 1024
	MaxParts      = 10000
	MaxStripeSize = 64 << 20
	MaxEnvelope   = 16 << 20
	MaxMetaBytes  = 8 << 10
)

// Stripes returns the number of stripes of a part of size n with the given
// stripe size. An empty part has one (empty) stripe.
func Stripes(n int64, stripeSize int) int64 {
	if n == 0 {
		return 1
	}
	return (n + int64(stripeSize) - 1) / int64(stripeSize)
}

// ValidVault checks a vault name: S3 bucket naming rules.
func ValidVault(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("vault name %q: must be 3 to 63 characters", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("vault name %q: only lower-case letters, digits, '-' and '.' are allowed", name)
		}
	}
	if !isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return fmt.Errorf("vault name %q: must begin and end with a letter or digit", name)
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("vault name %q: must not contain \"..\"", name)
	}
	return nil
}

// ipLike matches names formatted as an IPv4 address, which AWS refuses as
// bucket names (virtual-host-style requests would address a host).
var ipLike = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$`)

// ValidNewVault checks the name of a vault being created: ValidVault, and
// not formatted as an IP address (192.168.1.1), as AWS requires of new
// buckets. Vaults that exist keep working whatever their name: only
// ValidVault applies to them.
func ValidNewVault(name string) error {
	if err := ValidVault(name); err != nil {
		return err
	}
	if ipLike.MatchString(name) {
		return fmt.Errorf("vault name %q: must not be formatted as an IP address", name)
	}
	if strings.Contains(name, "--") {
		return fmt.Errorf("vault name %q: names holding \"--\" are reserved for allies' shared vaults (OWNER--VAULT)", name)
	}
	return nil
}

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// ValidKey checks an object key: 1 to MaxKeyLen bytes of valid UTF-8
// without NUL. Keys are opaque names: "../../etc/passwd" is valid and never
// touches a filesystem.
func ValidKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("object key must be 1 to %d bytes, got %d", MaxKeyLen, len(key))
	}
	if !utf8.ValidString(key) {
		return errors.New("object key is not valid UTF-8")
	}
	if strings.IndexByte(key, 0) >= 0 {
		return errors.New("object key contains a NUL byte")
	}
	return nil
}

// Validate checks the manifest's internal consistency. Decoding calls it,
// so a manifest that opens is safe to act on.
func (m *Manifest) Validate() error {
	if m.Format != FormatJSON && m.Format != FormatCompact {
		return fmt.Errorf("manifest: unknown format %d", m.Format)
	}
	if err := ValidVault(m.Vault); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := ValidKey(m.Key); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if m.Version.IsZero() {
		return errors.New("manifest: zero version id")
	}
	metaBytes := 0
	for k, v := range m.Meta {
		metaBytes += len(k) + len(v)
	}
	if metaBytes > MaxMetaBytes {
		return fmt.Errorf("manifest: user metadata of %d bytes exceeds %d", metaBytes, MaxMetaBytes)
	}
	if m.K < 0 || m.M < 0 || m.StripeSize < 0 || m.KeyGen < 0 || m.Revision < 0 {
		return errors.New("manifest: negative coding, stripe size, key generation or revision")
	}
	for _, p := range m.Parts {
		if p.Number < 0 || p.KeyGen < 0 {
			return fmt.Errorf("manifest: part %d: negative number or key generation", p.Number)
		}
	}
	if m.DeleteMarker {
		if len(m.Parts) > 0 || m.Size != 0 {
			return errors.New("manifest: delete marker with data")
		}
		return nil
	}
	if m.K < 1 || m.M < 0 || m.K+m.M > 64 {
		return fmt.Errorf("manifest: invalid coding %d+%d", m.K, m.M)
	}
	if m.StripeSize < 1 || m.StripeSize > MaxStripeSize {
		return fmt.Errorf("manifest: stripe size %d out of range", m.StripeSize)
	}
	if len(m.Parts) == 0 || len(m.Parts) > MaxParts {
		return fmt.Errorf("manifest: %d parts, want 1 to %d", len(m.Parts), MaxParts)
	}
	if m.Size < 0 {
		return fmt.Errorf("manifest: negative size %d", m.Size)
	}
	var total int64
	for i, p := range m.Parts {
		if p.Size < 0 || p.Size > 5<<40 {
			return fmt.Errorf("manifest: part %d: size %d out of range", p.Number, p.Size)
		}
		if i > 0 && p.Number <= m.Parts[i-1].Number {
			return fmt.Errorf("manifest: part numbers not increasing at %d", p.Number)
		}
		if len(p.Sites) != m.K+m.M {
			return fmt.Errorf("manifest: part %d: %d shard sites, want %d", p.Number, len(p.Sites), m.K+m.M)
		}
		for _, s := range p.Sites {
			if s == "" {
				return fmt.Errorf("manifest: part %d: empty site id", p.Number)
			}
		}
		if p.Inline && p.Size > int64(m.StripeSize) {
			return fmt.Errorf("manifest: part %d: inline part larger than a stripe", p.Number)
		}
		if p.Blob.IsZero() {
			return fmt.Errorf("manifest: part %d: zero blob id", p.Number)
		}
		if len(p.WrappedKey) == 0 || len(p.WrappedKey) > 2048 {
			return fmt.Errorf("manifest: part %d: wrapped key of %d bytes", p.Number, len(p.WrappedKey))
		}
		if !p.BlockSum.Known() {
			return fmt.Errorf("manifest: part %d: %w %d (written by a newer node?)", p.Number, erasure.ErrUnknownChecksum, uint8(p.BlockSum))
		}
		total += p.Size
	}
	if total != m.Size {
		return fmt.Errorf("manifest: parts hold %d bytes, manifest says %d", total, m.Size)
	}
	return nil
}

// ShardBlobName is the site blob holding shard i of a part.
func ShardBlobName(blob ID, shard int) string {
	h := blob.String()
	return fmt.Sprintf("s/%s/%s.%d", h[:2], h, shard)
}

// BlobName is the site blob holding a version's manifest envelope.
func BlobName(version ID) string {
	h := version.String()
	return "m/" + h[:2] + "/" + h
}

// ManifestPrefix is the prefix of every manifest blob name.
const ManifestPrefix = "m/"

// ShardPrefix is the prefix of every shard blob name.
const ShardPrefix = "s/"

// ParseShardBlobName returns the blob id and shard number of a shard blob
// name exactly as ShardBlobName writes it.
func ParseShardBlobName(name string) (ID, int, bool) {
	// s/xx/<32 hex>.<n>
	if len(name) < 39 || name[:2] != ShardPrefix || name[37] != '.' {
		return ID{}, 0, false
	}
	id, err := ParseID(name[5:37])
	if err != nil {
		return ID{}, 0, false
	}
	n, err := strconv.Atoi(name[38:])
	if err != nil || n < 0 || n > 0xffff || ShardBlobName(id, n) != name {
		return ID{}, 0, false
	}
	return id, n, true
}

// ParseBlobName returns the version id of a manifest blob name exactly as
// BlobName writes it (in lower case: a name the node never writes is not a
// copy of any version's manifest).
func ParseBlobName(name string) (ID, bool) {
	rest, ok := strings.CutPrefix(name, ManifestPrefix)
	if !ok || len(rest) != 3+32 || rest[2] != '/' {
		return ID{}, false
	}
	id, err := ParseID(rest[3:])
	if err != nil || BlobName(id) != name {
		return ID{}, false
	}
	return id, true
}
