package custody

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/embassy-dev/embassy/custody/shamir"
	"github.com/embassy-dev/embassy/custody/sharefile"
)

// A custodian is a vetted person of the owning nation who holds one Shamir
// share of the root key and approves dangerous operations. Each custodian
// has a key of their own, generated on their own machine: a post-quantum
// hybrid key (MLKEM768-X25519) to which their share is encrypted, and an
// Ed25519 key with which they sign approvals. The node keeps only the
// public halves.

// CustodianPublic is a custodian's public identity, kept by the node.
type CustodianPublic struct {
	Name string `json:"name" yaml:"name"`
	// Recipient is the hybrid public key shares are sealed to.
	Recipient string `json:"recipient" yaml:"recipient"`
	// SignKey is the Ed25519 key approvals are verified with (base64).
	SignKey string `json:"sign_key" yaml:"sign_key"`
}

// Fingerprints returns the SHA-256 fingerprints of the custodian's two
// public keys, as "SHA256:…" (unpadded base64, the way SSH shows them): the
// hybrid key shares are sealed to, and the Ed25519 key approvals are
// verified with. Custodians compare them with their own key's (embassy
// custodian keygen prints them) before approving a change of custodians.
func (c CustodianPublic) Fingerprints() (recipient, sign string, err error) {
	r, err := sharefile.ParseHybridRecipient([]byte(c.Recipient))
	if err != nil {
		return "", "", fmt.Errorf("custodian %s: recipient: %w", c.Name, err)
	}
	k, err := base64.StdEncoding.DecodeString(c.SignKey)
	if err != nil || len(k) != ed25519.PublicKeySize {
		return "", "", fmt.Errorf("custodian %s: sign_key: not a base64 Ed25519 public key", c.Name)
	}
	sum := sha256.Sum256(k)
	return r.Fingerprint().String(), "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]), nil
}

// sameKeys reports which key two custodians share, or "".
func sameKeys(a, b CustodianPublic) string {
	switch {
	case a.SignKey == b.SignKey:
		return "signing key"
	case strings.TrimSpace(a.Recipient) == strings.TrimSpace(b.Recipient):
		return "share key"
	}
	ra, err1 := sharefile.ParseHybridRecipient([]byte(a.Recipient))
	rb, err2 := sharefile.ParseHybridRecipient([]byte(b.Recipient))
	if err1 == nil && err2 == nil && ra.Equal(rb) {
		return "share key"
	}
	return ""
}

// Validate checks the public identity's encodings.
func (c CustodianPublic) Validate() error {
	if !validName(c.Name) {
		return fmt.Errorf("custodian name %q: use 1-64 letters, digits, '.', '_' or '-'", c.Name)
	}
	if _, err := sharefile.ParseHybridRecipient([]byte(c.Recipient)); err != nil {
		return fmt.Errorf("custodian %s: recipient: %w", c.Name, err)
	}
	if k, err := base64.StdEncoding.DecodeString(c.SignKey); err != nil || len(k) != ed25519.PublicKeySize {
		return fmt.Errorf("custodian %s: sign_key: not a base64 Ed25519 public key", c.Name)
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// CustodianKey is a custodian's private key. It never reaches the node.
type CustodianKey struct {
	_    [0]func()
	name string
	id   *sharefile.HybridIdentity
	sign ed25519.PrivateKey
}

// LogValue implements slog.LogValuer: only the name is shown.
func (k *CustodianKey) LogValue() slog.Value { return slog.StringValue("custodian key of " + k.name) }

// Name returns the custodian's name.
func (k *CustodianKey) Name() string { return k.name }

// GenerateCustodian makes a new custodian key.
func GenerateCustodian(name string) (*CustodianKey, error) {
	if !validName(name) {
		return nil, fmt.Errorf("custodian name %q: use 1-64 letters, digits, '.', '_' or '-'", name)
	}
	_, id, err := sharefile.GenerateKey()
	if err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &CustodianKey{name: name, id: id, sign: priv}, nil
}

// Public returns the custodian's public identity.
func (k *CustodianKey) Public() CustodianPublic {
	r, _ := k.id.Recipient().MarshalText()
	return CustodianPublic{Name: k.name, Recipient: string(r), SignKey: base64.StdEncoding.EncodeToString(k.sign.Public().(ed25519.PublicKey))}
}

type keyFile struct {
	Format   string `json:"format"`
	Name     string `json:"name"`
	Identity string `json:"identity"`
	SignSeed string `json:"sign_seed"`
}

const keyFileFormat = "embassy custodian key v1"

// MarshalPrivate encodes the private key file. Keep it offline, readable
// only by the custodian.
func (k *CustodianKey) MarshalPrivate() ([]byte, error) {
	idf, err := k.id.PrivateKeyFile()
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(keyFile{Format: keyFileFormat, Name: k.name, Identity: string(idf), SignSeed: base64.StdEncoding.EncodeToString(k.sign.Seed())}, "", "  ")
}

// ParseCustodianKey decodes a private key file.
func ParseCustodianKey(b []byte) (*CustodianKey, error) {
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil || f.Format != keyFileFormat {
		return nil, errors.New("not an embassy custodian key file")
	}
	id, err := sharefile.ParseHybridIdentity([]byte(f.Identity))
	if err != nil {
		return nil, fmt.Errorf("custodian key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(f.SignSeed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("custodian key: malformed signing seed")
	}
	if !validName(f.Name) {
		return nil, errors.New("custodian key: bad name")
	}
	return &CustodianKey{name: f.Name, id: id, sign: ed25519.NewKeyFromSeed(seed)}, nil
}

// MarshalPublic encodes the public identity (to hand to the node).
func (c CustodianPublic) MarshalPublic() ([]byte, error) { return json.MarshalIndent(c, "", "  ") }

// ParseCustodianPublic decodes a public identity file.
func ParseCustodianPublic(b []byte) (CustodianPublic, error) {
	var c CustodianPublic
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("custodian public key: %w", err)
	}
	return c, c.Validate()
}

// OpenShare decrypts a share file sealed to this custodian and returns the
// encoded share, to be handed to the node when unsealing.
func (k *CustodianKey) OpenShare(file []byte) (sharefile.Header, []byte, error) {
	return sharefile.Open(file, k.id)
}

// Sign signs an approval message.
func (k *CustodianKey) Sign(msg []byte) []byte { return ed25519.Sign(k.sign, msg) }

// VerifySignature checks a signature by this custodian.
func (c CustodianPublic) VerifySignature(msg, sig []byte) error {
	pub, err := base64.StdEncoding.DecodeString(c.SignKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("custodian %s: malformed signing key", c.Name)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("signature is not custodian %s's", c.Name)
	}
	return nil
}

// ErrDuplicateKey: two custodians were given the same key. One person under
// two names would hold two shares and approve twice; each custodian must
// generate a key of their own (embassy custodian keygen).
var ErrDuplicateKey = errors.New("custody: two custodians have the same key")

// Record is the node's non-secret record of its custody: the share set and
// its custodians.
type Record struct {
	Set        shamir.Set        `json:"set"`
	Custodians []CustodianPublic `json:"custodians"`
}

// Custodian finds a custodian by name.
func (r Record) Custodian(name string) (CustodianPublic, bool) {
	for _, c := range r.Custodians {
		if c.Name == name {
			return c, true
		}
	}
	return CustodianPublic{}, false
}

// ValidateCustodians checks a set of custodians: each identity valid, no
// name twice (ignoring case), and no key twice (ErrDuplicateKey).
func ValidateCustodians(custodians []CustodianPublic) error {
	seen := map[string]bool{}
	for i, c := range custodians {
		if err := c.Validate(); err != nil {
			return err
		}
		if seen[strings.ToLower(c.Name)] {
			return fmt.Errorf("custody: custodian %s named twice", c.Name)
		}
		seen[strings.ToLower(c.Name)] = true
		// One person under two names would hold two shares and count as
		// two custodians: the same key may not appear twice.
		for _, o := range custodians[:i] {
			if what := sameKeys(o, c); what != "" {
				return fmt.Errorf("%w: %s and %s have the same %s", ErrDuplicateKey, o.Name, c.Name, what)
			}
		}
	}
	return nil
}

// SplitRoot splits the root key into one share per custodian, threshold t,
// each sealed to its custodian's key, and returns the record and the
// armoured share files by custodian name.
func SplitRoot(root RootKey, node string, custodians []CustodianPublic, t int) (Record, map[string][]byte, error) {
	if !root.Valid() {
		return Record{}, nil, errors.New("custody: invalid root key")
	}
	if len(custodians) < 2 || t < 2 || t > len(custodians) {
		return Record{}, nil, fmt.Errorf("custody: threshold %d of %d custodians: need 2 <= threshold <= custodians", t, len(custodians))
	}
	if err := ValidateCustodians(custodians); err != nil {
		return Record{}, nil, err
	}
	set, shares, err := shamir.SplitSet(root.k[:], len(custodians), t)
	if err != nil {
		return Record{}, nil, err
	}
	files := map[string][]byte{}
	for i, c := range custodians {
		enc, err := shares[i].MarshalBinary()
		if err != nil {
			return Record{}, nil, err
		}
		rcpt, err := sharefile.ParseHybridRecipient([]byte(c.Recipient))
		if err != nil {
			return Record{}, nil, err
		}
		f, err := sharefile.Seal(enc, sharefile.Header{Node: node, Custodian: c.Name}, rcpt)
		clear(enc)
		if err != nil {
			return Record{}, nil, fmt.Errorf("custody: seal share for %s: %w", c.Name, err)
		}
		if files[c.Name], err = sharefile.Armor(f); err != nil {
			return Record{}, nil, err
		}
	}
	return Record{Set: set, Custodians: custodians}, files, nil
}

// CombineRoot recovers the root key from encoded shares of the record's
// set. Too few shares, a share of another node's set and a corrupt share
// each fail with an error that says so.
func CombineRoot(rec Record, encoded [][]byte) (RootKey, error) {
	return combine(encoded, rec.Set.Combine)
}

// combine parses encoded shares and turns what combineSet makes of them
// into a root key.
func combine(encoded [][]byte, combineSet func([]shamir.SetShare) ([]byte, error)) (RootKey, error) {
	var shares []shamir.SetShare
	for i, e := range encoded {
		s, err := shamir.ParseSetShare(e)
		if err != nil {
			return RootKey{}, fmt.Errorf("custody: share %d: %w", i+1, err)
		}
		shares = append(shares, s)
	}
	secret, err := combineSet(shares)
	if err != nil {
		return RootKey{}, fmt.Errorf("custody: %w", err)
	}
	if len(secret) != 32 {
		clear(secret)
		return RootKey{}, errors.New("custody: recovered secret is not a root key")
	}
	var k [32]byte
	copy(k[:], secret)
	clear(secret)
	return RootKey{k: &k}, nil
}

// Resplit splits the keyring's root key afresh among custodians with
// threshold t: a new share set, so every earlier share stops working. It is
// how lost shares are replaced and custodians added or removed; the node
// must be unsealed (that is, T existing shares were given) to do it.
func (k *Keyring) Resplit(node string, custodians []CustodianPublic, t int) (Record, map[string][]byte, error) {
	return SplitRoot(k.root, node, custodians, t)
}

// CombineShares recovers a root key from encoded shares alone, without the
// node's record (which is lost with the node): the share set is taken from
// the shares, and its commitment still catches corrupt or mixed shares.
func CombineShares(encoded [][]byte) (RootKey, error) {
	return combine(encoded, shamir.CombineSet)
}
