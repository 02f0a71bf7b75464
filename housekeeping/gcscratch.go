package housekeeping

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// records is the node's evidence, as read from the audit log and the
// sites, kept on disk so that its heap does not grow with the records
// (TestCollectScratchHeapFlat): deletions, abandonments and upload ends
// in a sortScratch, looked up by key; intents in a spool, read back in
// the order they were recorded. The abandonments a collection records
// itself, after the sort, are held in memory up to addedMax blobs, then
// sorted into files too (spilled).
type records struct {
	sp      *scratchSpace
	sorted  *sortScratch
	intents *spool // nil when onlyDeletions
	// sites names the sites of abandonment records by number; 0 is ""
	// (anywhere).
	sites  []string
	siteNo map[string]int
	seq    uint64 // upload ends: the later record wins
	// logNext is the audit log entry after the last one read: an
	// adoption checks under the version's lock that no deletion was
	// recorded from there on (vault.IndexAdopted).
	logNext uint64
	done    bool // sorted: what is added now goes to added
	bad     int

	mu     sync.Mutex
	added  map[string][]evidenceBlob // abandonments recorded after the sort, not spilled
	addedN int                       // blobs in added
	// spilled: the other abandonments recorded after the sort, in
	// sorted files, each holding more than twice as many records as the
	// next (so there are at most log2 of them).
	spilled []*sortScratch
	err     error // first error reading the scratch
	// onlyDeletions: keep only the deleted versions (rebuilds need
	// nothing else; intents are recorded for every streamed part and
	// would grow with the versions stored).
	onlyDeletions bool
}

type evidenceBlob struct {
	site     string // "" anywhere
	version  manifest.ID
	revision int
}

// A record in records.sorted: a key of evKey bytes, then an entry kind
// (entryDeleted, entryAbandoned), a site number (uint16), a version id and
// a revision or sequence number (uint64).
const (
	evKey = 26
	evRec = evKey + 1 + 2 + 16 + 8

	// The key's first byte: what it names.
	keyVersion = 'v' // a deleted version: its id
	keyBlob    = 'b' // a blob: blobKey
	keyUpload  = 'u' // an upload's end: uploadKey

	entryDeleted   = 1 // the blob was recorded deleted (version)
	entryAbandoned = 2 // the blob was recorded abandoned (site, version, revision)
)

// blobKey writes the key of blob name into k: its version or blob id and
// shard number as they are when name is a manifest or shard blob name the
// engine makes (every name it records), and 23 bytes of its SHA-256
// otherwise.
func blobKey(k []byte, name string) {
	clear(k[:evKey])
	k[0] = keyBlob
	if id, ok := manifest.ParseBlobName(name); ok && manifest.BlobName(id) == name {
		k[1] = 1
		copy(k[2:], id[:])
		return
	}
	if id, n, ok := manifest.ParseShardBlobName(name); ok {
		k[1] = 2
		copy(k[2:], id[:])
		binary.BigEndian.PutUint16(k[18:], uint16(n))
		return
	}
	h := sha256.Sum256([]byte(name))
	copy(k[3:], h[:])
}

// uploadKey writes the key of upload id u into k: its 24 bytes when it is
// 48 lowercase hex digits (every id made since upload ids carry the
// version), 24 bytes of its SHA-256 otherwise.
func uploadKey(k []byte, u string) {
	clear(k[:evKey])
	k[0] = keyUpload
	if len(u) == 48 {
		if b, err := hex.DecodeString(u); err == nil && hex.EncodeToString(b) == u {
			k[1] = 1
			copy(k[2:], b)
			return
		}
	}
	h := sha256.Sum256([]byte(u))
	copy(k[2:], h[:24])
}

func versionKey(k []byte, id manifest.ID) {
	clear(k[:evKey])
	k[0] = keyVersion
	copy(k[2:], id[:])
}

// mergeEvidence folds record b into a (same key): one record says a
// version is deleted, the later upload end wins, and an entry recorded
// twice is kept once.
func mergeEvidence(a, b []byte) bool {
	switch a[0] {
	case keyVersion:
		return true
	case keyUpload:
		if binary.LittleEndian.Uint64(b[evKey+19:]) > binary.LittleEndian.Uint64(a[evKey+19:]) {
			copy(a[evKey:], b[evKey:])
		}
		return true
	}
	return bytes.Equal(a[evKey:], b[evKey:])
}

// newRecords makes empty records in sp.
func newRecords(sp *scratchSpace, onlyDeletions bool) (*records, error) {
	ev := &records{sp: sp, sites: []string{""}, siteNo: map[string]int{"": 0}, added: map[string][]evidenceBlob{}, onlyDeletions: onlyDeletions}
	var err error
	if ev.sorted, err = newSortScratch(sp, evRec, evKey, mergeEvidence); err != nil {
		return nil, err
	}
	if !onlyDeletions {
		if ev.intents, err = sp.newSpool(); err != nil {
			ev.close()
			return nil, err
		}
	}
	return ev, nil
}

func (ev *records) close() {
	if ev == nil {
		return
	}
	ev.sorted.close()
	ev.intents.close()
	for _, s := range ev.spilled {
		s.close()
	}
}

// finish sorts what was added. Every byte of scratch the records take is
// written by then.
func (ev *records) finish() error {
	if ev.err != nil {
		return ev.err
	}
	if err := ev.sorted.finish(); err != nil {
		return err
	}
	if ev.intents != nil {
		if err := ev.intents.finish(); err != nil {
			return err
		}
	}
	ev.done = true
	return nil
}

// check keeps the first error reading the records.
func (ev *records) check(err error) {
	if err != nil {
		ev.mu.Lock()
		if ev.err == nil {
			ev.err = err
		}
		ev.mu.Unlock()
	}
}

// failed returns the first error reading the records: what they said
// since may be wrong, and nothing may be decided on it.
func (ev *records) failed() error {
	if ev == nil {
		return nil
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.err
}

func (ev *records) add(r evidence.Record) {
	if ev.done {
		// An abandonment collection recorded.
		if r.Kind == evidence.Abandon {
			ev.mu.Lock()
			for _, b := range r.Blobs {
				ev.added[b.Name] = append(ev.added[b.Name], evidenceBlob{site: b.Site, version: r.Version, revision: r.Revision})
			}
			ev.addedN += len(r.Blobs)
			full := ev.addedN >= addedMax
			ev.mu.Unlock()
			if full {
				ev.check(ev.spill())
			}
		}
		return
	}
	if ev.onlyDeletions {
		if r.Kind == evidence.Delete {
			ev.addVersion(r.Version)
		}
		return
	}
	var k [evKey]byte
	switch r.Kind {
	case evidence.Delete:
		ev.addVersion(r.Version)
		for _, b := range r.Blobs {
			blobKey(k[:], b.Name)
			if e := ev.sorted.next(k[:]); e != nil {
				e[evKey] = entryDeleted
				copy(e[evKey+3:], r.Version[:])
			}
		}
	case evidence.Abandon:
		for _, b := range r.Blobs {
			if err := ev.addAbandoned(ev.sorted, b.Name, evidenceBlob{site: b.Site, version: r.Version, revision: r.Revision}); err != nil {
				ev.check(err)
				return
			}
		}
	case evidence.Intent:
		b, err := json.Marshal(r)
		if err == nil {
			err = ev.intents.add(b)
		}
		ev.check(err)
	case evidence.UploadEnd:
		uploadKey(k[:], r.Upload)
		if e := ev.sorted.next(k[:]); e != nil {
			ev.seq++
			copy(e[evKey+3:], r.Version[:])
			binary.LittleEndian.PutUint64(e[evKey+19:], ev.seq)
		}
	}
	ev.check(ev.sorted.err)
}

// addAbandoned adds to s the record that blob name is abandoned (b). It
// returns an error when the records name too many sites; s keeps its own.
func (ev *records) addAbandoned(s *sortScratch, name string, b evidenceBlob) error {
	n, ok := ev.siteNo[b.site]
	if !ok {
		if len(ev.sites) > 0xffff {
			return fmt.Errorf("records name more than %d sites", 0xffff)
		}
		n = len(ev.sites)
		ev.sites = append(ev.sites, b.site)
		ev.siteNo[b.site] = n
	}
	var k [evKey]byte
	blobKey(k[:], name)
	if e := s.next(k[:]); e != nil {
		e[evKey] = entryAbandoned
		binary.LittleEndian.PutUint16(e[evKey+1:], uint16(n))
		copy(e[evKey+3:], b.version[:])
		binary.LittleEndian.PutUint64(e[evKey+19:], uint64(b.revision))
	}
	return nil
}

// addedMax bounds the blobs of the abandonments recorded after the sort
// that are held in memory (a variable for tests): about 200 bytes each,
// so about 1.6 MiB.
var addedMax = 1 << 13

// spill sorts the abandonments held in memory into a file, then merges
// the last two files while the one before holds at most twice as many
// records as the last.
func (ev *records) spill() error {
	s, err := newSortScratch(ev.sp, evRec, evKey, mergeEvidence)
	if err != nil {
		return err
	}
	ev.mu.Lock()
	s.size = ev.addedN // one sort in memory, of what is there
	for name, bs := range ev.added {
		for _, b := range bs {
			if err == nil {
				err = ev.addAbandoned(s, name, b)
			}
		}
	}
	clear(ev.added)
	ev.addedN = 0
	ev.mu.Unlock()
	if err == nil {
		err = s.finish()
	}
	for err == nil {
		n := len(ev.spilled)
		if n == 0 || ev.spilled[n-1].count > 2*s.count {
			break
		}
		var m *sortScratch
		m, err = mergeSorted(ev.sp, ev.spilled[n-1], s)
		s.close()
		ev.spilled[n-1].close()
		ev.mu.Lock()
		ev.spilled = ev.spilled[:n-1]
		ev.mu.Unlock()
		s = m
	}
	if err != nil {
		s.close()
		return err
	}
	ev.mu.Lock()
	ev.spilled = append(ev.spilled, s)
	ev.mu.Unlock()
	return nil
}

// mergeSortRecords records are sorted in memory at a time when spilled
// abandonments are merged (860 KiB).
const mergeSortRecords = 1 << 14

// mergeSorted returns a new sort of records in sp holding the records of
// a and b (finished sorts of evidence records).
func mergeSorted(sp *scratchSpace, a, b *sortScratch) (*sortScratch, error) {
	s, err := newSortScratch(sp, evRec, evKey, mergeEvidence)
	if err != nil {
		return nil, err
	}
	// A smaller sort buffer than the first sort's: more runs, each merged
	// through a 32 KiB buffer, for less heap.
	s.size = mergeSortRecords
	for _, from := range []*sortScratch{a, b} {
		err := from.batches(512, func(recs []byte, _ int64) error {
			for r := range slices.Chunk(recs, evRec) {
				e := s.next(r[:evKey])
				if e == nil {
					return s.err
				}
				copy(e, r)
			}
			return nil
		})
		if err != nil {
			s.close()
			return nil, err
		}
	}
	if err := s.finish(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (ev *records) addVersion(id manifest.ID) {
	var k [evKey]byte
	versionKey(k[:], id)
	ev.sorted.next(k[:])
}

// deleted reports whether the node recorded version id deleted.
func (ev *records) deleted(id manifest.ID) bool {
	if ev == nil {
		return false
	}
	var k [evKey]byte
	versionKey(k[:], id)
	found := false
	ev.check(ev.sorted.each(k[:], func([]byte) error {
		found = true
		return errStop
	}))
	return found
}

// blob returns what the records say of blob name: the versions whose
// deletion records name it, and the abandonments naming it, on any site.
func (ev *records) blob(name string) (deleted []manifest.ID, abandoned []evidenceBlob) {
	var k [evKey]byte
	blobKey(k[:], name)
	entry := func(r []byte) error {
		e := r[evKey:]
		switch e[0] {
		case entryDeleted:
			deleted = append(deleted, manifest.ID(e[3:19]))
		case entryAbandoned:
			abandoned = append(abandoned, evidenceBlob{site: ev.sites[binary.LittleEndian.Uint16(e[1:])],
				version: manifest.ID(e[3:19]), revision: int(binary.LittleEndian.Uint64(e[19:]))})
		}
		return nil
	}
	ev.check(ev.sorted.each(k[:], entry))
	ev.mu.Lock()
	spilled := ev.spilled
	abandoned = append(abandoned, ev.added[name]...)
	ev.mu.Unlock()
	for _, s := range spilled {
		ev.check(s.each(k[:], entry))
	}
	return deleted, abandoned
}

// abandonedOn returns the records saying name is abandoned on site.
func (ev *records) abandonedOn(name, sid string) []evidenceBlob {
	_, all := ev.blob(name)
	return onSite(all, sid)
}

// onSite returns the abandonments of bs that hold on site sid.
func onSite(bs []evidenceBlob, sid string) []evidenceBlob {
	var out []evidenceBlob
	for _, b := range bs {
		if b.site == "" || b.site == sid {
			out = append(out, b)
		}
	}
	return out
}

// uploadEnd returns the version upload ended as (zero: aborted), and
// whether it ended.
func (ev *records) uploadEnd(upload string) (manifest.ID, bool) {
	var k [evKey]byte
	uploadKey(k[:], upload)
	var v manifest.ID
	found := false
	ev.check(ev.sorted.each(k[:], func(r []byte) error {
		v, found = manifest.ID(r[evKey+3:evKey+19]), true
		return errStop
	}))
	return v, found
}

// eachIntent calls fn with every intent record, in the order read.
func (ev *records) eachIntent(fn func(evidence.Record) error) error {
	if ev.intents == nil {
		return nil
	}
	return ev.intents.each(func(b []byte) error {
		var r evidence.Record
		if err := json.Unmarshal(b, &r); err != nil {
			return ev.intents.sp.fail(err)
		}
		return fn(r)
	})
}

// legacySite is a site to read legacy journal batches from.
type legacySite struct {
	id    string
	store site.Site
}

// errSiteFailed ends the reading of one site's legacy batches.
var errSiteFailed = errors.New("the site failed")

// readLegacy adds to ev the records of the legacy journal batches ("j/…",
// written before the audit log took the records over) on each site in
// turn, skipping a batch read on an earlier site (as evidence.ReadSite
// with a set of names seen). The names, those listed and those read, are
// kept in scratch files: releases of the journal wrote a batch to every
// site for each group of records they committed (one for each streamed
// put or deletion that did not overlap another), so a node that ran them
// can have as many batches as it made writes then. A site whose batches
// cannot be listed or read is left (as before), unless ctx ended.
func readLegacy(ctx context.Context, ev *records, sites []legacySite, keys evidence.Keys, node string, log *slog.Logger) error {
	// The names read on each earlier site that had any, by SHA-256.
	var read []*sortScratch
	defer func() {
		for _, r := range read {
			r.close()
		}
	}()
	seen := func(name string) (bool, error) {
		if len(read) == 0 {
			return false, nil
		}
		key := sha256.Sum256([]byte(name))
		for _, r := range read {
			found := false
			if err := r.each(key[:], func([]byte) error { found = true; return errStop }); err != nil || found {
				return found, err
			}
		}
		return false, nil
	}
	for _, s := range sites {
		here, err := readLegacySite(ctx, ev, s, keys, node, log, seen)
		if here != nil {
			read = append(read, here)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readLegacySite is readLegacy on one site: it returns the names it read
// there (nil when none).
func readLegacySite(ctx context.Context, ev *records, s legacySite, keys evidence.Keys, node string, log *slog.Logger, seen func(string) (bool, error)) (*sortScratch, error) {
	names, err := ev.sp.newSpool()
	if err != nil {
		return nil, err
	}
	defer names.close()
	var ferr error // a scratch file could not be written or read
	lerr := s.store.List(ctx, evidence.Prefix, func(i site.Info) error {
		var dup bool
		if dup, ferr = seen(i.Name); ferr == nil && !dup {
			ferr = names.add([]byte(i.Name))
		}
		return ferr
	})
	switch {
	case ferr != nil:
		return nil, ferr
	case lerr != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case lerr != nil:
		return nil, nil
	}
	if err := names.finish(); err != nil {
		return nil, err
	}
	var here *sortScratch
	err = names.each(func(b []byte) error {
		name := string(b)
		if !strings.HasPrefix(name, evidence.Prefix) {
			return nil
		}
		recs, err := evidence.ReadBatch(ctx, s.store, keys, node, name)
		switch {
		case errors.Is(err, evidence.ErrBatch):
			ev.bad++
			log.WarnContext(ctx, "journal batch fails verification; not evidence", "site", s.id, "blob", name, "err", err)
			return nil
		case errors.Is(err, site.ErrNotFound):
			return nil
		case err != nil:
			return errSiteFailed
		}
		if here == nil {
			if here, err = newSortScratch(ev.sp, sha256.Size, sha256.Size, func(a, b []byte) bool { return true }); err != nil {
				return err
			}
		}
		key := sha256.Sum256(b)
		if here.next(key[:]) == nil {
			return here.err
		}
		for _, r := range recs {
			ev.add(r)
		}
		return ev.failed()
	})
	if here != nil {
		if ferr := here.finish(); ferr != nil && (err == nil || err == errSiteFailed) {
			err = ferr
		}
	}
	switch {
	case err == errSiteFailed && ctx.Err() != nil:
		return here, ctx.Err()
	case err == errSiteFailed:
		return here, nil
	}
	return here, err
}
