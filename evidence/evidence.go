// Package evidence keeps the node's signed records of why blobs may be
// removed (DESIGN.md invariant 10: nothing is deleted without evidence).
//
// The node removes a blob only when it can show that the blob is garbage:
//
//   - a deletion record (kind "delete") says a version was deleted, so its
//     manifest copies and the shard blobs it names are garbage. Records are
//     kept, compactly, so that a site restored from a backup cannot bring
//     the version back: a rebuild never indexes a version deleted by record;
//   - an intent record (kind "intent") is written before a write creates
//     blobs that do not describe themselves (the shard blobs of a streamed
//     object or of a multipart part); it names the blobs and the version or
//     upload they are for, so that the node can later show they belong to a
//     write that never committed;
//   - an abandonment record (kind "abandon") says blobs will never be part
//     of a committed version: the node's own failed write, a part replaced
//     or left out of a completed upload, or a shard a repair moved elsewhere
//     (then the record names the site, since the same blob name is live on
//     the new site);
//   - an upload-end record says a multipart upload completed (as a version)
//     or was aborted, so that parts of it no record names otherwise are
//     known to be garbage.
//
// Records are entries of the node's audit log (package audit): the log is
// their journal, sealed (sites learn nothing from them), signed through its
// checkpoints and copied to every site. A deletion record is durable on
// the sites holding the version before the delete commits (Append with the
// sites that need it waits for the log's copy on them); the other records
// are durable in the node's local log when Append returns and reach the
// sites with the next copy. Garbage collection and rebuilds read them back
// from the log ([Journal.Records]), which `recover` restores from any one
// site.
//
// Before the audit log, records were written as sealed, signed batches
// "j/<time>-<random>" to every site. Nothing writes those any more; they
// are still read ([ReadSite]) so that what they record keeps counting.
package evidence

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// Kind is a record's kind.
type Kind string

// The record kinds.
const (
	Intent    Kind = "intent"
	Abandon   Kind = "abandon"
	Delete    Kind = "delete"
	UploadEnd Kind = "upload-end"
)

// Record is one piece of evidence.
type Record struct {
	Kind Kind  `json:"kind"`
	Time int64 `json:"time"` // Unix nanoseconds, set by Append when zero
	// Version is the version concerned (the version written, deleted or
	// abandoned; for an upload-end, the version it completed as).
	Version manifest.ID `json:"version,omitzero"`
	// Revision, on an abandonment of blobs superseded by a repair or a
	// move, is the manifest revision that superseded them.
	Revision int `json:"revision,omitempty"`
	// Upload is the multipart upload concerned.
	Upload string `json:"upload,omitempty"`
	// Blobs are the blobs concerned.
	Blobs []Blob `json:"blobs,omitempty"`
}

// Blob names a blob, on one site or (Site empty) wherever it is.
type Blob struct {
	Name string `json:"name"`
	Site string `json:"site,omitempty"`
}

// Keys seals, opens, signs and verifies journal batches (the node's key
// custody implements it; see manifest.Keys).
type Keys = manifest.Keys

// Prefix is the blob name prefix of journal batches.
const Prefix = "j/"

const (
	magic     = "EMBJ"
	format    = 1
	headerLen = 4 + 1 + 8 + 4
	sigLen    = 64
	// MaxBatch bounds a batch blob.
	MaxBatch = 16 << 20
)

// ErrBatch: a journal batch is malformed, forged, or sealed with a key the
// node does not hold. It is not evidence; another site's copy may be.
var ErrBatch = errors.New("evidence: unusable journal batch")

type body struct {
	Node    string   `json:"node"`
	Records []Record `json:"records"`
}

// sealBlob encodes v as a sealed, signed blob: magic, format 1, key id,
// length, nonce||AES-256-GCM(JSON), Ed25519 signature over a domain
// prefix and everything before it.
func sealBlob(keys Keys, magic, domain string, v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	keyID, sealed, err := keys.SealManifest([]byte(magic+"\x01"), plain)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, headerLen+len(sealed)+sigLen)
	out = append(out, magic...)
	out = append(out, format)
	out = append(out, keyID[:]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(sealed)))
	out = append(out, sealed...)
	sig, err := keys.Sign(append([]byte(domain+"\x00"), out...))
	if err != nil {
		return nil, err
	}
	if len(sig) != sigLen {
		return nil, fmt.Errorf("evidence: signature of %d bytes", len(sig))
	}
	if len(out)+sigLen > MaxBatch {
		return nil, fmt.Errorf("evidence: blob of %d bytes exceeds %d", len(out)+sigLen, MaxBatch)
	}
	return append(out, sig...), nil
}

// openBlob reverses sealBlob into v, refusing unknown fields.
func openBlob(keys Keys, magic, domain string, b []byte, v any) error {
	if len(b) < headerLen+sigLen || string(b[:4]) != magic || b[4] != format {
		return fmt.Errorf("%w: not a %s blob", ErrBatch, domain)
	}
	n := binary.BigEndian.Uint32(b[13:17])
	if int64(n) != int64(len(b)-headerLen-sigLen) {
		return fmt.Errorf("%w: length mismatch", ErrBatch)
	}
	signed, sig := b[:len(b)-sigLen], b[len(b)-sigLen:]
	if err := keys.Verify(append([]byte(domain+"\x00"), signed...), sig); err != nil {
		return fmt.Errorf("%w: signature does not verify", ErrBatch)
	}
	var keyID [8]byte
	copy(keyID[:], b[5:13])
	plain, err := keys.OpenManifest(keyID, []byte(magic+"\x01"), b[headerLen:len(b)-sigLen])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBatch, err)
	}
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrBatch, err)
	}
	return nil
}

const batchDomain = "embassy journal batch"

// seal encodes a batch.
func seal(keys Keys, node string, recs []Record) ([]byte, error) {
	return sealBlob(keys, magic, batchDomain, body{Node: node, Records: recs})
}

// Open verifies and decodes a journal batch written for node.
func Open(keys Keys, node string, b []byte) ([]Record, error) {
	var bd body
	if err := openBlob(keys, magic, batchDomain, b, &bd); err != nil {
		return nil, err
	}
	if bd.Node != node {
		return nil, fmt.Errorf("%w: written for node %q, not %q", ErrBatch, bd.Node, node)
	}
	for i, r := range bd.Records {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrBatch, i, err)
		}
	}
	return bd.Records, nil
}

func (r Record) validate() error {
	switch r.Kind {
	case Intent, Abandon, Delete, UploadEnd:
	default:
		return fmt.Errorf("unknown kind %q", r.Kind)
	}
	if r.Kind == Delete && r.Version.IsZero() {
		return errors.New("deletion record without a version")
	}
	if r.Kind == UploadEnd && r.Upload == "" {
		return errors.New("upload-end record without an upload")
	}
	for _, b := range r.Blobs {
		if err := site.CheckName(b.Name); err != nil {
			return err
		}
	}
	return nil
}

// Log is the audit log as the journal uses it (package audit implements
// it).
type Log interface {
	Append(ctx context.Context, evs ...audit.Event) (uint64, error)
	Sync(ctx context.Context, size uint64, sites []string) error
	Events(ctx context.Context, from uint64, fn func(i uint64, e audit.Event) error) error
}

// Journal appends records to the node's audit log. It is safe for
// concurrent use: concurrent appends share the log's group commit.
type Journal struct {
	log Log
}

// NewJournal returns a journal writing to the audit log l. A nil
// *Journal records nothing and reads no records (an engine without an
// audit log, in tests: nothing is then ever collected).
func NewJournal(l Log) *Journal { return &Journal{log: l} }

// kindPrefix starts the audit log kind of every evidence record.
const kindPrefix = "evidence."

// Event returns a record as an audit log event (kind "evidence." and the
// record's kind). Callers may add who and what (actor, vault, key) before
// appending it with [Journal.AppendEvents].
func Event(r Record) audit.Event {
	b, _ := json.Marshal(r)
	return audit.Event{Kind: kindPrefix + string(r.Kind), Time: r.Time, Version: r.Version, Revision: r.Revision, Record: b}
}

// FromEvent returns the record an audit log event carries, if it is an
// evidence record.
func FromEvent(e audit.Event) (Record, bool, error) {
	if !strings.HasPrefix(e.Kind, kindPrefix) {
		return Record{}, false, nil
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(e.Record))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, true, fmt.Errorf("%w: %v", ErrBatch, err)
	}
	if r.validate() != nil || kindPrefix+string(r.Kind) != e.Kind {
		return Record{}, true, fmt.Errorf("%w: record does not match its entry", ErrBatch)
	}
	return r, true, nil
}

// Append records recs. It returns once they are durable in the node's
// local log and, for every site in need, in that site's copy of the log.
// On an error the caller must not act on them.
func (j *Journal) Append(ctx context.Context, need []string, recs ...Record) error {
	evs := make([]audit.Event, len(recs))
	for i, r := range recs {
		evs[i] = Event(r)
	}
	return j.AppendEvents(ctx, need, evs...)
}

// AppendEvents is Append for records already made events (see [Event]).
func (j *Journal) AppendEvents(ctx context.Context, need []string, evs ...audit.Event) error {
	if j == nil {
		return nil
	}
	last, err := j.AppendLocal(ctx, evs...)
	if err != nil {
		return err
	}
	return j.AwaitSites(ctx, last+1, need)
}

// AppendLocal appends events (records made events, see [Event], and
// others) durably to the node's local log, and returns the index of the
// last. They reach the sites asynchronously: [Journal.AwaitSites] waits
// for that, which must come before anything a record covers is removed
// from a site.
func (j *Journal) AppendLocal(ctx context.Context, evs ...audit.Event) (uint64, error) {
	if j == nil {
		return 0, nil
	}
	now := time.Now().UnixNano()
	for i := range evs {
		r, ok, err := FromEvent(evs[i])
		if err != nil {
			return 0, fmt.Errorf("evidence: %w", err)
		}
		if !ok {
			continue
		}
		// The record and its entry carry the same time.
		if r.Time == 0 {
			r.Time = cmp.Or(evs[i].Time, now)
		}
		evs[i].Time = r.Time
		evs[i].Record, _ = json.Marshal(r)
	}
	last, err := j.log.Append(ctx, evs...)
	if err != nil {
		return 0, fmt.Errorf("evidence: record not durable: %w", err)
	}
	return last, nil
}

// AwaitSites waits until each of sites holds the first size entries of
// the log (size is one more than an index [Journal.AppendLocal] returned).
func (j *Journal) AwaitSites(ctx context.Context, size uint64, sites []string) error {
	if j == nil {
		return nil
	}
	if err := j.log.Sync(ctx, size, sites); err != nil {
		return fmt.Errorf("evidence: record not durable on the sites holding the blobs: %w", err)
	}
	return nil
}

// Records calls fn for every evidence record in the log, oldest first.
// Entries that carry a damaged record are passed to bad (if set) and
// skipped: they are not evidence.
func (j *Journal) Records(ctx context.Context, fn func(Record) error, bad func(i uint64, err error)) error {
	if j == nil {
		return nil
	}
	return j.log.Events(ctx, 0, func(i uint64, e audit.Event) error {
		r, ok, err := FromEvent(e)
		if !ok {
			return nil
		}
		if err != nil {
			if bad != nil {
				bad(i, err)
			}
			return nil
		}
		return fn(r)
	})
}

// Reseal rewrites, on one site, every journal batch and the generations
// blob that are sealed under another key than keys' current one (a root
// key rotation: keys must still open the old ones, through the previous
// root), so that the records outlive the old root. It returns the blobs
// rewritten.
func Reseal(ctx context.Context, s site.Site, keys Keys, current [8]byte, node string) (int, error) {
	var names []string
	if err := s.List(ctx, Prefix, func(i site.Info) error { names = append(names, i.Name); return nil }); err != nil {
		return 0, err
	}
	names = append(names, GenerationsBlob)
	n := 0
	for _, name := range names {
		rc, err := s.Get(ctx, name, 0, MaxBatch+1)
		if errors.Is(err, site.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		b, err := io.ReadAll(io.LimitReader(rc, MaxBatch+1))
		rc.Close()
		if err != nil {
			return n, err
		}
		if len(b) < headerLen || [8]byte(b[5:13]) == current {
			continue
		}
		var out []byte
		if name == GenerationsBlob {
			g, err := OpenGenerations(keys, node, b)
			if err != nil {
				continue // not evidence; nothing to carry over
			}
			out, err = SealGenerations(keys, node, g)
			if err != nil {
				return n, err
			}
		} else {
			recs, err := Open(keys, node, b)
			if err != nil {
				continue
			}
			if out, err = seal(keys, node, recs); err != nil {
				return n, err
			}
		}
		if err := s.Put(ctx, name, bytes.NewReader(out), int64(len(out))); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ReadSite calls fn for every verified batch on a site, with the batch's
// blob name. Batches that fail verification are passed to bad (if set)
// and skipped: they are not evidence.
func ReadSite(ctx context.Context, s site.Site, keys Keys, node string, seen func(name string) bool, fn func(name string, recs []Record) error, bad func(name string, err error)) error {
	var names []string
	err := s.List(ctx, Prefix, func(i site.Info) error {
		if seen == nil || !seen(i.Name) {
			names = append(names, i.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		if !strings.HasPrefix(name, Prefix) {
			continue
		}
		recs, err := ReadBatch(ctx, s, keys, node, name)
		switch {
		case errors.Is(err, ErrBatch):
			if bad != nil {
				bad(name, err)
			}
			continue
		case errors.Is(err, site.ErrNotFound):
			continue
		case err != nil:
			return err
		}
		if err := fn(name, recs); err != nil {
			return err
		}
	}
	return nil
}

// ReadBatch reads journal batch name from s and verifies it. An error
// wrapping ErrBatch says the batch is not evidence (another site's copy
// may be); one wrapping site.ErrNotFound, that it is not there; any
// other, that the site failed.
func ReadBatch(ctx context.Context, s site.Site, keys Keys, node, name string) ([]Record, error) {
	rc, err := s.Get(ctx, name, 0, MaxBatch+1)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(rc, MaxBatch+1))
	rc.Close()
	if err != nil {
		return nil, err
	}
	return Open(keys, node, b)
}

// SealBatch encodes recs as a journal batch of node, as releases before
// the audit log wrote them to "j/…" on every site. Nothing in the node
// writes batches any more; tests use it to make a node of those releases.
func SealBatch(keys Keys, node string, recs []Record) ([]byte, error) {
	for _, r := range recs {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("evidence: %w", err)
		}
	}
	return seal(keys, node, recs)
}

// GenerationsBlob is the blob, on every site, holding the node's per-vault
// commit generations: each moves on every commit to the index, so a site
// showing a higher generation than the index proves the index older than
// the sites (restored from a backup), and collection refuses to run.
const GenerationsBlob = "node/generations"

const genMagic, genDomain = "EMBG", "embassy commit generations"

type generations struct {
	Node        string            `json:"node"`
	Generations map[string]uint64 `json:"generations"`
}

// SealGenerations encodes the generations blob.
func SealGenerations(keys Keys, node string, gens map[string]uint64) ([]byte, error) {
	return sealBlob(keys, genMagic, genDomain, generations{Node: node, Generations: gens})
}

// OpenGenerations verifies and decodes a generations blob written for node.
func OpenGenerations(keys Keys, node string, b []byte) (map[string]uint64, error) {
	var g generations
	if err := openBlob(keys, genMagic, genDomain, b, &g); err != nil {
		return nil, err
	}
	if g.Node != node {
		return nil, fmt.Errorf("%w: generations of node %q, not %q", ErrBatch, g.Node, node)
	}
	return g.Generations, nil
}

// ReadGenerations reads the generations blob from every site given and
// returns, for each vault, the highest generation any of them shows, with
// the site that shows it. Sites that do not answer or hold no valid blob
// are skipped.
func ReadGenerations(ctx context.Context, sites map[string]site.Site, keys Keys, node string) (map[string]uint64, map[string]string) {
	out, where, _ := ReadGenerationsHeard(ctx, sites, keys, node)
	return out, where
}

// ReadGenerationsHeard is ReadGenerations, saying also which sites
// answered: none when each was unavailable (not mounted yet) or the
// context ended, and the empty generations returned then say nothing of
// what the sites hold: taken for theirs, they would have an index
// restored from a backup pass for current, and be written over the
// sites' higher ones. Nor do they say anything of a site that did not
// answer: its generations must be read before it is written. A site that
// answers that it holds no blob, or with one that does not verify, has
// answered.
func ReadGenerationsHeard(ctx context.Context, sites map[string]site.Site, keys Keys, node string) (gens map[string]uint64, where map[string]string, answered map[string]bool) {
	out := map[string]uint64{}
	where, answered = map[string]string{}, map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, s := range sites {
		wg.Go(func() {
			rc, err := s.Get(ctx, GenerationsBlob, 0, MaxBatch+1)
			if err != nil {
				if errors.Is(err, site.ErrNotFound) {
					mu.Lock()
					answered[id] = true
					mu.Unlock()
				}
				return
			}
			b, err := io.ReadAll(io.LimitReader(rc, MaxBatch+1))
			rc.Close()
			if err != nil {
				return
			}
			g, err := OpenGenerations(keys, node, b)
			mu.Lock()
			defer mu.Unlock()
			answered[id] = true
			if err != nil {
				return
			}
			for v, n := range g {
				if n > out[v] {
					out[v], where[v] = n, id
				}
			}
		})
	}
	wg.Wait()
	return out, where, answered
}

// SealsBlob is the blob, on every site, holding the node's count of the
// seals made under each of its GCM keys with random nonces (the manifest
// key, the vault keys: custody.SealCounter), as custody encodes them: a
// node directory restored from a backup, or a node recovered onto a new
// machine, takes the highest count it finds here or in the node
// directory, so that a key's count does not go down.
const SealsBlob = "node/seals"

const sealsMagic, sealsDomain = "EMBN", "embassy seal counts"

type sealCounts struct {
	Node   string          `json:"node"`
	Counts json.RawMessage `json:"counts"`
}

// SealSealCounts encodes the seal counts blob; counts is custody's
// encoding (custody.MarshalSealRecords), which must be JSON.
func SealSealCounts(keys Keys, node string, counts []byte) ([]byte, error) {
	if !json.Valid(counts) {
		return nil, errors.New("evidence: seal counts are not JSON")
	}
	return sealBlob(keys, sealsMagic, sealsDomain, sealCounts{Node: node, Counts: counts})
}

// OpenSealCounts verifies a seal counts blob written for node and returns
// the counts, for custody.ParseSealRecords to decode.
func OpenSealCounts(keys Keys, node string, b []byte) ([]byte, error) {
	var c sealCounts
	if err := openBlob(keys, sealsMagic, sealsDomain, b, &c); err != nil {
		return nil, err
	}
	if c.Node != node {
		return nil, fmt.Errorf("%w: seal counts of node %q, not %q", ErrBatch, c.Node, node)
	}
	return c.Counts, nil
}
