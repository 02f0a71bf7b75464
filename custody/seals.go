package custody

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// The GCM nonce budget. The manifest key and each vault key-encryption key
// seal with random 96-bit nonces, so each may seal no more than 2^32
// messages (NIST SP 800-38D §8.3) before the chance of a repeated nonce,
// which gives away the key's authentication subkey and the XOR of two
// plaintexts, passes 2^-32. A [SealCounter] counts every seal under each
// such key, by key id, and keeps the count durable without a write per
// seal: before it hands out a seal beyond what is recorded it records a
// block of seals ahead ([SealStore]), so a crash or a kill loses only
// seals it never made (the count is an upper bound, over by at most a
// block per key for each restart). It logs a warning as a key crosses each
// threshold and refuses to seal past the limit ([ErrSealLimit]).

// DefaultSealLimit is NIST SP 800-38D's bound on messages sealed under one
// key with random 96-bit nonces; a configured limit may be lower, never
// higher.
const DefaultSealLimit = 1 << 32

// DefaultSealWarn are the counts at which a key's use is logged as a
// warning by default: a quarter and half of the limit.
var DefaultSealWarn = []uint64{1 << 30, 1 << 31}

// maxSealCount caps a stored count as Merge takes it: far past any limit
// (so a key there seals nothing), and low enough that adding the seals
// and blocks of a process cannot wrap a uint64 round to a count under
// the limit (a seals.json edited by hand to 2^64-1 once let seals
// through).
const maxSealCount = 1 << 62

// DefaultSealBlock is how many seals are recorded ahead in one durable
// write.
const DefaultSealBlock = 1 << 16

// SealLimits configures a SealCounter. Zero fields take the defaults.
type SealLimits struct {
	Limit uint64   // refuse the seal that would pass this count
	Warn  []uint64 // log a warning as a key's count reaches each
	Block uint64   // seals recorded ahead per durable write
}

func (l SealLimits) withDefaults() SealLimits {
	if l.Limit == 0 || l.Limit > DefaultSealLimit {
		l.Limit = DefaultSealLimit
	}
	if l.Warn == nil {
		l.Warn = DefaultSealWarn
	}
	l.Warn = slices.Sorted(slices.Values(l.Warn))
	if l.Block == 0 {
		l.Block = DefaultSealBlock
	}
	// A block past the limit reserves nothing more, and one near 2^64
	// would wrap the reservation below the seal it is for.
	l.Block = min(l.Block, l.Limit)
	return l
}

// SealKey names a counted key: the manifest key (Vault empty) or the
// key-encryption key of generation Gen of a vault (Vault is the name its
// keys are derived under: the vault's name, and its incarnation after a
// '/' when it has one). ID is the key's id, which changes with the root
// key and the generation, so a rotated key starts a count of its own.
type SealKey struct {
	ID    [8]byte
	Vault string
	Gen   int
}

// String names the key for a person.
func (k SealKey) String() string {
	if k.Vault == "" {
		return fmt.Sprintf("the manifest key %x", k.ID)
	}
	return fmt.Sprintf("the key of vault %s generation %d (key %x)", k.vaultName(), k.Gen, k.ID)
}

func (k SealKey) vaultName() string {
	name, _, _ := strings.Cut(k.Vault, "/")
	return name
}

// Rotation is the command that replaces the key.
func (k SealKey) Rotation() string {
	if k.Vault == "" {
		return "embassy key rotate-root"
	}
	return "embassy key rotate " + k.vaultName()
}

// ErrSealLimit: a key has sealed as many messages as its limit allows. The
// caller must not retry with the same key: the key must be rotated (the
// error names it and the command).
var ErrSealLimit = errors.New("key reached its seal limit")

// SealLimitError is the error a seal past the limit returns.
type SealLimitError struct {
	Key   SealKey
	Limit uint64
}

func (e *SealLimitError) Error() string {
	return fmt.Sprintf("%s has sealed its limit of %d messages under random 96-bit GCM nonces (NIST SP 800-38D): it seals nothing more until it is rotated with '%s'", e.Key, e.Limit, e.Key.Rotation())
}

// Unwrap returns ErrSealLimit.
func (e *SealLimitError) Unwrap() error { return ErrSealLimit }

// SealRecord is one key's count as it is stored: an upper bound on the
// seals made under the key.
type SealRecord struct {
	KeyID      string `json:"key_id"`
	Vault      string `json:"vault,omitempty"`
	Generation int    `json:"generation,omitempty"`
	Seals      uint64 `json:"seals"`
}

func (r SealRecord) key() (SealKey, error) {
	var k SealKey
	b, err := hex.DecodeString(r.KeyID)
	if err != nil || len(b) != 8 || r.KeyID != hex.EncodeToString(b) {
		return k, fmt.Errorf("key id %.40q is not 16 lowercase hexadecimal digits", r.KeyID)
	}
	copy(k.ID[:], b)
	switch {
	case r.Vault == "" && r.Generation != 0:
		return k, fmt.Errorf("key %s: a generation without a vault", r.KeyID)
	case r.Vault != "" && r.Generation < 1:
		return k, fmt.Errorf("key %s: vault %.70q with generation %d (generations start at 1)", r.KeyID, r.Vault, r.Generation)
	case len(r.Vault) > 200:
		return k, fmt.Errorf("key %s: vault name of %d bytes", r.KeyID, len(r.Vault))
	}
	k.Vault, k.Gen = r.Vault, r.Generation
	return k, nil
}

// SealState is a key's count as status and metrics show it.
type SealState struct {
	SealRecord
	Limit uint64 `json:"limit"`
	// Fraction is Seals/Limit.
	Fraction float64 `json:"fraction"`
}

// Key returns the record's key.
func (s SealState) Key() SealKey { k, _ := s.key(); return k }

const sealsFormat = 1

// MaxSealRecords bounds the keys one encoded table may hold.
const MaxSealRecords = 100_000

type sealTable struct {
	Format int          `json:"format"`
	Keys   []SealRecord `json:"keys"`
}

// MarshalSealRecords encodes counts as stored in the node directory and
// (sealed) on the sites.
func MarshalSealRecords(recs []SealRecord) []byte {
	b, _ := json.Marshal(sealTable{Format: sealsFormat, Keys: recs})
	return append(b, '\n')
}

// ParseSealRecords decodes what MarshalSealRecords wrote, strictly:
// unknown fields, another format, a malformed key id or vault, and a key
// listed twice are errors.
func ParseSealRecords(b []byte) ([]SealRecord, error) {
	if len(b) > MaxSealRecords*300 {
		return nil, fmt.Errorf("seal counts: %d bytes", len(b))
	}
	var t sealTable
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("seal counts: %w", err)
	}
	if dec.More() {
		return nil, errors.New("seal counts: trailing data")
	}
	if t.Format != sealsFormat {
		return nil, fmt.Errorf("seal counts: format %d, want %d", t.Format, sealsFormat)
	}
	if len(t.Keys) > MaxSealRecords {
		return nil, fmt.Errorf("seal counts: %d keys (at most %d)", len(t.Keys), MaxSealRecords)
	}
	seen := map[string]bool{}
	for _, r := range t.Keys {
		if _, err := r.key(); err != nil {
			return nil, fmt.Errorf("seal counts: %w", err)
		}
		if seen[r.KeyID] {
			return nil, fmt.Errorf("seal counts: key %s listed twice", r.KeyID)
		}
		seen[r.KeyID] = true
	}
	return t.Keys, nil
}

// SealStore keeps a SealCounter's records durably. SaveSeals returns only
// once recs are durable, and is called with the counter's lock held: it
// must not seal (a copy for the sites, sealed, is written afterwards).
type SealStore interface {
	SaveSeals(recs []SealRecord) error
}

// SealCounter counts seals per key. It is safe for concurrent use; one
// counter serves every keyring of a node (Keyring.WithSealCounter).
type SealCounter struct {
	store  SealStore
	limits SealLimits
	log    *slog.Logger

	mu   sync.Mutex
	keys map[[8]byte]*sealCount
}

type sealCount struct {
	key      SealKey
	base     uint64 // the highest count a stored copy held (Merge)
	made     uint64 // seals this counter handed out
	reserved uint64 // what the store holds: base+made never passes it
	warned   int    // thresholds logged
}

func (c *sealCount) seals() uint64 { return c.base + c.made }

// NewSealCounter returns a counter that records to store (nil: nowhere,
// for tests and tools that keep no count) and logs to log.
func NewSealCounter(store SealStore, limits SealLimits, log *slog.Logger) *SealCounter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SealCounter{store: store, limits: limits.withDefaults(), log: log, keys: map[[8]byte]*sealCount{}}
}

// Limits returns the counter's limits, defaults filled in.
func (c *SealCounter) Limits() SealLimits { return c.limits }

func (c *SealCounter) entry(k SealKey) *sealCount {
	e := c.keys[k.ID]
	if e == nil {
		e = &sealCount{key: k}
		c.keys[k.ID] = e
	}
	if e.key.Vault == "" && k.Vault != "" {
		e.key = k
	}
	return e
}

// take counts one seal under k, recording a block ahead first when the
// seal would pass what the store holds. It refuses past the limit, and
// when the record cannot be written.
func (c *SealCounter) take(k SealKey) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entry(k)
	next := e.seals() + 1
	if next > c.limits.Limit {
		return &SealLimitError{Key: e.key, Limit: c.limits.Limit}
	}
	if next > e.reserved {
		prev := e.reserved
		e.reserved = min(e.seals()+c.limits.Block, c.limits.Limit)
		if c.store != nil {
			if err := c.store.SaveSeals(c.recordsLocked()); err != nil {
				e.reserved = prev
				return fmt.Errorf("custody: record the seal count of %s: %w", e.key, err)
			}
		}
	}
	e.made++
	c.warnLocked(e)
	return nil
}

func (c *SealCounter) warnLocked(e *sealCount) {
	for e.warned < len(c.limits.Warn) && e.seals() >= c.limits.Warn[e.warned] {
		c.log.Warn("a key has sealed many messages under random GCM nonces: rotate it before it reaches the limit, when it stops sealing",
			"key", e.key.String(), "seals", e.seals(), "limit", c.limits.Limit,
			"fraction", float64(e.seals())/float64(c.limits.Limit), "rotate_with", e.key.Rotation())
		e.warned++
	}
}

// recordsLocked returns what the store is to hold: each key's reserved
// count, in key id order.
func (c *SealCounter) recordsLocked() []SealRecord {
	out := make([]SealRecord, 0, len(c.keys))
	for _, e := range c.keys {
		out = append(out, SealRecord{KeyID: hex.EncodeToString(e.key.ID[:]), Vault: e.key.Vault, Generation: e.key.Gen, Seals: max(e.reserved, e.seals())})
	}
	slices.SortFunc(out, func(a, b SealRecord) int { return strings.Compare(a.KeyID, b.KeyID) })
	return out
}

// Records returns what the store holds (or is about to): for each key an
// upper bound on its seals.
func (c *SealCounter) Records() []SealRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recordsLocked()
}

// Merge raises the counts to those of a stored copy (the node directory's,
// the sites'): each key's count becomes the highest count a copy holds
// plus the seals this counter made since. Taking the maximum over every
// copy that survives an operator's mistake (a restored backup) keeps the
// count from going down. Records that do not parse are skipped and
// returned as an error.
func (c *SealCounter) Merge(recs []SealRecord) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, r := range recs {
		k, err := r.key()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e := c.entry(k)
		if s := min(r.Seals, maxSealCount); s > e.base {
			e.base = s
		}
		c.warnLocked(e)
	}
	return errors.Join(errs...)
}

// States returns every counted key's state, in key id order.
func (c *SealCounter) States() []SealState {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]SealState, 0, len(c.keys))
	for _, e := range c.keys {
		out = append(out, SealState{SealRecord: SealRecord{KeyID: hex.EncodeToString(e.key.ID[:]), Vault: e.key.Vault, Generation: e.key.Gen, Seals: e.seals()},
			Limit: c.limits.Limit, Fraction: float64(e.seals()) / float64(c.limits.Limit)})
	}
	slices.SortFunc(out, func(a, b SealState) int { return strings.Compare(a.KeyID, b.KeyID) })
	return out
}
