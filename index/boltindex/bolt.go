// Package boltindex is the embedded metadata index, a single bbolt file.
//
// Layout: one top-level bucket per vault ("v/<vault>") holding four
// buckets. "latest" maps key to a summary of the key's newest version.
// "versions" maps key, NUL, inverted creation time and version id to the
// version's summary and the number of its manifest envelope, so a cursor
// walks keys in order and each key's versions newest first. "envelopes"
// maps that number to the envelope: numbers are handed out in increasing
// order, so envelopes fill their pages (record.go). "ids" maps version id
// to the rest of its "versions" key. Writes from concurrent callers are
// group-committed: one transaction and one fsync serve every write waiting
// when it starts.
package boltindex

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

var (
	bucketMeta     = []byte("meta")
	bucketLatest   = []byte("latest")
	bucketVersions = []byte("versions")
	bucketIDs      = []byte("ids")
	bucketEnv      = []byte("envelopes")
	keyRebuilding  = []byte("rebuilding")
	keyFormat      = []byte("format")
	keyMigrate     = []byte("migrate")
)

// Index file formats. Format 4 writes records compact (record.go) and
// reads those of format 3 (whose "ids" values carry the key after the
// inverted time, as format 4's do): a format 3 file is upgraded where it
// is opened, and its records are rewritten as their versions are written
// or by MigrateRecords.
const (
	format     = 4
	formatFull = 3
)

// Index is a bbolt-backed index.Index.
type Index struct {
	db     *bolt.DB
	path   string
	writes chan *write
	done   chan struct{}
	closed sync.Once
	fresh  bool
	// What Open did with a compaction's leftover (Leftover).
	leftover    string
	leftoverErr error
	// wmu guards writes against Close: a write after Close fails
	// (the audit log's drain may outlive the index).
	wmu      sync.RWMutex
	isClosed bool

	// What the committer did (CommitStats).
	nWrites, nBatches, waitNs, busyNs atomic.Uint64
}

// CommitStats implements index.Committer.
func (ix *Index) CommitStats() index.CommitStats {
	return index.CommitStats{
		Writes:  ix.nWrites.Load(),
		Batches: ix.nBatches.Load(),
		Wait:    time.Duration(ix.waitNs.Load()),
		Busy:    time.Duration(ix.busyNs.Load()),
	}
}

// Leftover reports what Open found beside the index under the name of a
// compaction's temporary copy: removed is its path if Open removed it (a
// copy an interrupted compaction left); kept says why a file there was
// left alone (nil if none was).
func (ix *Index) Leftover() (removed string, kept error) { return ix.leftover, ix.leftoverErr }

// Fresh reports whether Open created the file: a new index is empty
// whatever the sites hold, and should be rebuilt from them.
func (ix *Index) Fresh() bool { return ix.fresh }

type write struct {
	fn  func(*bolt.Tx) error
	res chan error
}

// ErrIncomplete is returned by Open for an index whose rebuild was
// interrupted: it must be rebuilt (embassy index rebuild) before use.
var ErrIncomplete = errors.New("index rebuild was interrupted; run 'embassy index rebuild'")

// ErrFormat: the index file was written by another version of embassy.
// The index is a cache: move the file aside and rebuild it from the sites.
var ErrFormat = errors.New("index file format not supported")

// Open opens or creates the index file at path. Only one process may hold
// it open.
//
// A temporary copy an interrupted compaction left beside the index
// (CompactTemp) is removed if it can be nothing else (removeLeftover), and
// otherwise left and reported: Leftover says which. With no index at path
// and something under that name, Open fails rather than create a new,
// empty index beside what may be the only copy of the old one.
func Open(path string) (*Index, error) {
	if of, ok := compactTempOf(path); ok {
		return nil, fmt.Errorf("open index %s: that is the name 'embassy index compact' gives its temporary copy of %s, and removes; name the index otherwise", path, of)
	}
	tmp := CompactTemp(path)
	_, statErr := os.Stat(path)
	fresh := errors.Is(statErr, os.ErrNotExist)
	if fresh {
		if _, err := os.Lstat(tmp); err == nil {
			return nil, fmt.Errorf("open index %s: there is no index, but %s is there, the name of an index compaction's copy: a compaction cannot leave it without the index, so the index was moved or deleted. If the index was lost, that file may be its only copy (complete only if the compaction got past its check): move it away to start with a new index, rebuilt from the sites, or move it to %s to use it", path, tmp, path)
		}
	}
	db, err := openLocked(path, openOrCreate)
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := m.Get(keyFormat); v == nil {
			return m.Put(keyFormat, []byte{format})
		} else if len(v) == 1 && v[0] == formatFull {
			if err := markMigrate(m); err != nil {
				return err
			}
			return m.Put(keyFormat, []byte{format})
		} else if len(v) != 1 || v[0] != format {
			return fmt.Errorf("%w: format %v, this build reads %d", ErrFormat, v, format)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	ix := &Index{db: db, path: path, writes: make(chan *write, 1024), done: make(chan struct{}), fresh: fresh}
	if fi, err := os.Stat(path); err == nil {
		if removed, err := removeLeftover(tmp, fi); removed {
			ix.leftover = tmp
		} else if err != nil {
			ix.leftoverErr = fmt.Errorf("index %s: %w", path, err)
		}
	}
	go ix.committer()
	return ix, nil
}

// CheckComplete returns ErrIncomplete if a rebuild was interrupted.
func (ix *Index) CheckComplete() error {
	return ix.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(keyRebuilding) != nil {
			return ErrIncomplete
		}
		return nil
	})
}

// SetRebuilding marks (or clears) an index rebuild in progress.
func (ix *Index) SetRebuilding(on bool) error {
	return ix.update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if on {
			return m.Put(keyRebuilding, []byte{1})
		}
		return m.Delete(keyRebuilding)
	})
}

// Close implements index.Index.
func (ix *Index) Close() error {
	err := errors.New("index already closed")
	ix.closed.Do(func() {
		ix.wmu.Lock()
		ix.isClosed = true
		close(ix.writes)
		ix.wmu.Unlock()
		<-ix.done
		err = ix.db.Close()
	})
	return err
}

// committer runs queued writes in shared transactions.
func (ix *Index) committer() {
	defer close(ix.done)
	for w := range ix.writes {
		batch := []*write{w}
	drain:
		for len(batch) < 1000 {
			select {
			case w, ok := <-ix.writes:
				if !ok {
					break drain
				}
				batch = append(batch, w)
			default:
				break drain
			}
		}
		start := time.Now()
		err := ix.db.Update(func(tx *bolt.Tx) error {
			for _, w := range batch {
				if err := w.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		ix.nBatches.Add(1)
		ix.busyNs.Add(uint64(time.Since(start)))
		if err == nil {
			for _, w := range batch {
				w.res <- nil
			}
			continue
		}
		// One write failed: run each alone so the others still commit
		// and each caller gets its own result.
		for _, w := range batch {
			start := time.Now()
			err := ix.db.Update(w.fn)
			ix.nBatches.Add(1)
			ix.busyNs.Add(uint64(time.Since(start)))
			w.res <- err
		}
	}
}

// errClosed: the index was closed.
var errClosed = errors.New("index closed")

func (ix *Index) update(fn func(*bolt.Tx) error) error {
	w := &write{fn: fn, res: make(chan error, 1)}
	ix.wmu.RLock()
	if ix.isClosed {
		ix.wmu.RUnlock()
		return errClosed
	}
	start := time.Now()
	ix.writes <- w
	ix.wmu.RUnlock()
	err := <-w.res
	ix.nWrites.Add(1)
	ix.waitNs.Add(uint64(time.Since(start)))
	return err
}

func vaultBucket(vault string) []byte { return []byte("v/" + vault) }

type buckets struct{ latest, versions, ids, env *bolt.Bucket }

func writeBuckets(tx *bolt.Tx, vault string) (buckets, error) {
	v, err := tx.CreateBucketIfNotExists(vaultBucket(vault))
	if err != nil {
		return buckets{}, err
	}
	var b buckets
	if b.latest, err = v.CreateBucketIfNotExists(bucketLatest); err != nil {
		return b, err
	}
	if b.versions, err = v.CreateBucketIfNotExists(bucketVersions); err != nil {
		return b, err
	}
	if b.ids, err = v.CreateBucketIfNotExists(bucketIDs); err != nil {
		return b, err
	}
	if b.env, err = v.CreateBucketIfNotExists(bucketEnv); err != nil {
		return b, err
	}
	// Envelopes are appended under increasing numbers: full pages.
	b.env.FillPercent = 1
	return b, nil
}

func readBuckets(tx *bolt.Tx, vault string) (buckets, bool) {
	v := tx.Bucket(vaultBucket(vault))
	if v == nil {
		return buckets{}, false
	}
	// env is nil in a vault upgraded from format 3 and not written since:
	// its records all hold their envelopes.
	b := buckets{v.Bucket(bucketLatest), v.Bucket(bucketVersions), v.Bucket(bucketIDs), v.Bucket(bucketEnv)}
	// A vault with only uploads has no version buckets yet.
	return b, b.latest != nil && b.versions != nil && b.ids != nil
}

// versionKey is key NUL ^created id.
func versionKey(key string, created int64, id manifest.ID) []byte {
	b := make([]byte, 0, len(key)+1+8+16)
	b = append(b, key...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, ^uint64(created))
	return append(b, id[:]...)
}

// versionKeyParts splits a "versions" key into the object's key (in k's
// bytes), creation time and version id.
func versionKeyParts(k []byte) (key []byte, created int64, id manifest.ID, ok bool) {
	if len(k) < 1+8+16 || k[len(k)-25] != 0 {
		return nil, 0, id, false
	}
	copy(id[:], k[len(k)-16:])
	created = int64(^binary.BigEndian.Uint64(k[len(k)-24 : len(k)-16]))
	return k[:len(k)-25], created, id, true
}

func putTx(tx *bolt.Tx, v index.Version) error {
	b, err := writeBuckets(tx, v.Vault)
	if err != nil {
		return err
	}
	if err := bumpGeneration(tx, v.Vault); err != nil {
		return err
	}
	vk := versionKey(v.Key, v.Created, v.ID)
	unchanged, err := b.putRecord(vk, v)
	if err != nil {
		return err
	}
	if err := putAuditEntry(tx, v.Audit); err != nil {
		return err
	}
	if olderFormat(v.Envelope) {
		// An older manifest format (a rebuild from sites an older node
		// wrote): MigrateRecords offers it to be sealed again.
		if err := markMigrate(tx.Bucket(bucketMeta)); err != nil {
			return err
		}
	}
	// ids: inverted time, then the key, so that a version can be found by
	// id alone (Lookup). Like the record, an entry that holds this
	// already is not written again (a write dirties its page).
	idv := append(bytes.Clone(vk[len(v.Key)+1:len(v.Key)+9]), v.Key...)
	if !unchanged || !bytes.Equal(b.ids.Get(v.ID[:]), idv) {
		if err := b.ids.Put(v.ID[:], idv); err != nil {
			return err
		}
	}
	var sum []byte
	if cur := b.latest.Get([]byte(v.Key)); cur != nil {
		if unchanged {
			if sum = encodeSummary(v); bytes.Equal(cur, sum) {
				return nil
			}
		}
		c, err := decodeSummary(cur)
		if err != nil {
			return err
		}
		if !v.Newer(c) && c.ID != v.ID {
			return nil
		}
	}
	if sum == nil {
		sum = encodeSummary(v)
	}
	return b.latest.Put([]byte(v.Key), sum)
}

// Put implements index.Index.
func (ix *Index) Put(ctx context.Context, v index.Version) error {
	return ix.update(func(tx *bolt.Tx) error { return putTx(tx, v) })
}

// PutIf implements index.Index.
func (ix *Index) PutIf(ctx context.Context, v index.Version, p index.Precondition) error {
	return ix.update(func(tx *bolt.Tx) error {
		var latest *index.Version
		if b, ok := readBuckets(tx, v.Vault); ok {
			if cur := b.latest.Get([]byte(v.Key)); cur != nil {
				c, err := decodeSummary(cur)
				if err != nil {
					return err
				}
				latest = &c
			}
		}
		if err := p.Check(latest); err != nil {
			return err
		}
		return putTx(tx, v)
	})
}

// PutMany implements index.Index: one transaction for all.
func (ix *Index) PutMany(ctx context.Context, vs []index.Version) error {
	return ix.update(func(tx *bolt.Tx) error {
		for _, v := range vs {
			if err := putTx(tx, v); err != nil {
				return err
			}
		}
		return nil
	})
}

func notFound(vault, key string) error {
	return fmt.Errorf("%w: %s/%s", index.ErrNotFound, vault, key)
}

// Get implements index.Index.
func (ix *Index) Get(ctx context.Context, vault, key string, id manifest.ID) (index.Version, error) {
	var v index.Version
	err := ix.db.View(func(tx *bolt.Tx) error {
		b, ok := readBuckets(tx, vault)
		if !ok {
			return notFound(vault, key)
		}
		inv := b.ids.Get(id[:])
		if len(inv) < 8 {
			return notFound(vault, key)
		}
		inv = inv[:8]
		vk := append(append(append([]byte(key), 0), inv...), id[:]...)
		rec := b.versions.Get(vk)
		if rec == nil {
			return notFound(vault, key)
		}
		var err error
		v, err = b.record(vk, rec, true)
		return err
	})
	v.Vault, v.Key = vault, key
	return v, err
}

// Latest implements index.Index.
func (ix *Index) Latest(ctx context.Context, vault, key string) (index.Version, error) {
	var v index.Version
	err := ix.db.View(func(tx *bolt.Tx) error {
		b, ok := readBuckets(tx, vault)
		if !ok {
			return notFound(vault, key)
		}
		sum := b.latest.Get([]byte(key))
		if sum == nil {
			return notFound(vault, key)
		}
		s, err := decodeSummary(sum)
		if err != nil {
			return err
		}
		vk := versionKey(key, s.Created, s.ID)
		rec := b.versions.Get(vk)
		if rec == nil {
			return fmt.Errorf("index inconsistent: latest version %s of %s/%s missing; rebuild the index", s.ID, vault, key)
		}
		v, err = b.record(vk, rec, true)
		return err
	})
	v.Vault, v.Key = vault, key
	return v, err
}

// LatestCreated implements index.LatestTimer: the time from the key's
// summary in "latest", without its record or envelope.
func (ix *Index) LatestCreated(ctx context.Context, vault, key string) (created int64, found bool, err error) {
	err = ix.db.View(func(tx *bolt.Tx) error {
		b, ok := readBuckets(tx, vault)
		if !ok {
			return nil
		}
		sum := b.latest.Get([]byte(key))
		if sum == nil {
			return nil
		}
		s, err := decodeSummary(sum)
		if err != nil {
			return err
		}
		created, found = s.Created, true
		return nil
	})
	return created, found, err
}

// Delete implements index.Index.
func (ix *Index) Delete(ctx context.Context, vault, key string, id manifest.ID) error {
	return ix.update(func(tx *bolt.Tx) error {
		b, ok := readBuckets(tx, vault)
		if !ok {
			return nil
		}
		inv := b.ids.Get(id[:])
		if len(inv) < 8 {
			return nil
		}
		inv = inv[:8]
		vk := append(append(append([]byte(key), 0), inv...), id[:]...)
		if err := b.deleteRecord(vk); err != nil {
			return err
		}
		if err := b.ids.Delete(id[:]); err != nil {
			return err
		}
		if err := keepPosition(tx, vault, key, inv, id, time.Now()); err != nil {
			return err
		}
		if err := bumpGeneration(tx, vault); err != nil {
			return err
		}
		cur := b.latest.Get([]byte(key))
		if cur == nil {
			return nil
		}
		c, err := decodeSummary(cur)
		if err != nil {
			return err
		}
		if c.ID != id {
			return nil
		}
		// Find the next newest version of the key.
		pfx := append([]byte(key), 0)
		k, rec := b.versions.Cursor().Seek(pfx)
		if k == nil || !bytes.HasPrefix(k, pfx) {
			return b.latest.Delete([]byte(key))
		}
		nv, _, err := decodeRecord(k, rec, false)
		if err != nil {
			return err
		}
		return b.latest.Put([]byte(key), encodeSummary(nv))
	})
}

// A page's versions are gathered in a scratch slice of MaxList taken from
// a pool (a page grown by append from nothing allocated and copied about
// twice its final size, in slices large enough to go to the heap's
// large-object path). A page that fills at least half of it gets the
// slice itself, and the pool makes a new one when next asked; a smaller
// page gets an exact copy, and the slice goes back to the pool.
type scratch struct{ v []index.Version }

var scratchPool = sync.Pool{New: func() any { return &scratch{v: make([]index.Version, 0, index.MaxList)} }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// putScratch hands what s gathered to *dst (nil if nothing).
func putScratch(s *scratch, dst *[]index.Version) {
	if 2*len(s.v) >= cap(s.v) {
		*dst = s.v
		return
	}
	if len(s.v) > 0 {
		*dst = append([]index.Version(nil), s.v...)
	}
	clear(s.v)
	s.v = s.v[:0]
	scratchPool.Put(s)
}

// hasPrefix is bytes.HasPrefix(k, []byte(p)) without the conversion.
func hasPrefix(k []byte, p string) bool { return len(k) >= len(p) && string(k[:len(p)]) == p }

// commonPrefixEnd returns the length of the common prefix (up to and
// including the first delimiter after prefix) of k, which has prefix, or
// -1 if k holds no delimiter after prefix.
func commonPrefixEnd(k []byte, prefix string, delim []byte) int {
	if i := bytes.Index(k[len(prefix):], delim); i >= 0 {
		return len(prefix) + i + len(delim)
	}
	return -1
}

// List implements index.Index. It decodes a record only to return it
// (a delete marker's is checked, not built), shares labels between
// entries (listDecoder) and converts a key to a string only to return it.
func (ix *Index) List(ctx context.Context, vault string, o index.ListOptions) (index.ListPage, error) {
	var page index.ListPage
	max := index.PageSize(o.Max)
	delim := []byte(o.Delimiter)
	err := ix.db.View(func(tx *bolt.Tx) error {
		b, ok := readBuckets(tx, vault)
		if !ok {
			return nil
		}
		c := b.latest.Cursor()
		start := o.Prefix
		if o.After >= start {
			start = o.After + "\x00"
			if o.Delimiter != "" && strings.HasPrefix(o.After, o.Prefix) {
				// Only a marker that is a whole common prefix (as
				// Next is) skips it; a key inside one does not, as in S3.
				if i := strings.Index(o.After[len(o.Prefix):], o.Delimiter); i >= 0 && len(o.Prefix)+i+len(o.Delimiter) == len(o.After) {
					start = index.Successor(o.After[:len(o.Prefix)+i+len(o.Delimiter)])
					if start == "" {
						return nil
					}
				}
			}
		}
		var d listDecoder
		scratch := getScratch()
		defer putScratch(scratch, &page.Entries)
		n := 0
		// examined counts a record looked at; it reports whether the scan
		// bound is reached there, and then ends the page at key k (key,
		// when it is not "", is k as a string). A key that is itself a
		// whole common prefix is not a place to stop: resuming after it
		// would skip everything under it.
		examined := func(k []byte, key string) bool {
			page.Scanned++
			if o.Scan <= 0 || page.Scanned < o.Scan {
				return false
			}
			if o.Delimiter != "" && hasPrefix(k, o.Prefix) && commonPrefixEnd(k, o.Prefix, delim) == len(k) {
				return false
			}
			if key == "" {
				key = string(k)
			}
			page.Truncated, page.Next = true, key
			return true
		}
		for k, val := c.Seek([]byte(start)); k != nil; {
			if !hasPrefix(k, o.Prefix) {
				break
			}
			if o.Delimiter != "" {
				if end := commonPrefixEnd(k, o.Prefix, delim); end >= 0 {
					cp := string(k[:end])
					// A prefix shows only if a live key is under it.
					live := false
					for ; k != nil && hasPrefix(k, cp); k, val = c.Next() {
						if len(val) > 0 && val[0]&flagDeleteMarker == 0 {
							live = true
							break
						}
						if examined(k, "") {
							return nil
						}
					}
					if live {
						if n == max {
							page.Truncated = true
							return nil
						}
						page.CommonPrefixes = append(page.CommonPrefixes, cp)
						page.Next = cp
						n++
					}
					next := index.Successor(cp)
					if next == "" {
						return nil
					}
					k, val = c.Seek([]byte(next))
					continue
				}
			}
			key := ""
			if len(val) > 0 && val[0]&flagDeleteMarker != 0 {
				// A delete marker: checked as it would be decoded.
				if _, err := summaryID(val); err != nil {
					return err
				}
			} else {
				var v index.Version
				d.key = k
				err := readSummary(&v, val, &d)
				d.key = nil
				if err != nil {
					return err
				}
				if n == max {
					page.Truncated = true
					return nil
				}
				if v.Key == "" {
					// A format 3 record: its ETag is a string of its own.
					v.Key = string(k)
				}
				key = v.Key
				v.Vault = vault
				scratch.v = append(scratch.v, v)
				page.Next = key
				n++
			}
			if examined(k, key) {
				return nil
			}
			k, val = c.Next()
		}
		return nil
	})
	if !page.Truncated {
		page.Next = ""
	}
	return page, err
}

// Versions implements index.Index. Like List it builds only what it
// returns: a key's versions share its string, and each key's latest
// version is found by a cursor of its own and read for its id alone.
func (ix *Index) Versions(ctx context.Context, vault string, o index.VersionOptions) (index.VersionPage, error) {
	var page index.VersionPage
	max := index.PageSize(o.Max)
	delim := []byte(o.Delimiter)
	err := ix.db.View(func(tx *bolt.Tx) error {
		b, ok := readBuckets(tx, vault)
		if !ok {
			return nil
		}
		c := b.versions.Cursor()
		var k, val []byte
		switch {
		case o.KeyMarker == "" || o.KeyMarker < o.Prefix:
			k, val = c.Seek([]byte(o.Prefix))
		case o.VersionMarker.IsZero():
			k, val = c.Seek(append([]byte(o.KeyMarker), 1))
		default:
			inv := b.ids.Get(o.VersionMarker[:])
			if len(inv) < 8 {
				// A version deleted since the marker was handed out
				// keeps its position for a while (see keepPosition).
				inv = position(tx, vault, o.VersionMarker)
			}
			if len(inv) >= 8 {
				vk := append(append(append([]byte(o.KeyMarker), 0), inv[:8]...), o.VersionMarker[:]...)
				k, val = c.Seek(vk)
				if k != nil && bytes.Equal(k, vk) {
					k, val = c.Next()
				}
			} else {
				// A version never known, or deleted too long ago: go
				// on from the key's first version. Versions listed
				// before may be listed again; none is skipped.
				k, val = c.Seek(append([]byte(o.KeyMarker), 0))
			}
		}
		if o.Delimiter != "" && o.KeyMarker != "" && strings.HasPrefix(o.KeyMarker, o.Prefix) {
			if i := strings.Index(o.KeyMarker[len(o.Prefix):], o.Delimiter); i >= 0 && len(o.Prefix)+i+len(o.Delimiter) == len(o.KeyMarker) {
				next := index.Successor(o.KeyMarker[:len(o.Prefix)+i+len(o.Delimiter)])
				if next == "" {
					return nil
				}
				k, val = c.Seek([]byte(next))
			}
		}
		var d listDecoder
		scratch := getScratch()
		defer putScratch(scratch, &page.Versions)
		// latestOf returns the "latest" value of key kb (nil if none).
		// Keys mostly come in increasing order (not always: "versions"
		// orders key NUL …, so a key holding a NUL can come before a
		// shorter one) and nearly every one has a value there, so its
		// cursor steps forward a few records to find kb, and seeks
		// when that does not land on it.
		latest := b.latest.Cursor()
		var lk, lv []byte
		latestOf := func(kb []byte) []byte {
			for i := 0; lk != nil && i < 4 && bytes.Compare(lk, kb) < 0; i++ {
				lk, lv = latest.Next()
			}
			if lk == nil || !bytes.Equal(lk, kb) {
				lk, lv = latest.Seek(kb)
			}
			if lk != nil && bytes.Equal(lk, kb) {
				return lv
			}
			return nil
		}
		n := 0
		prevKey := ""
		for k != nil {
			kb, _, _, ok := versionKeyParts(k)
			if !ok {
				return fmt.Errorf("index record key corrupt; rebuild the index")
			}
			if !hasPrefix(kb, o.Prefix) {
				break
			}
			if o.Delimiter != "" {
				if end := commonPrefixEnd(kb, o.Prefix, delim); end >= 0 {
					cp := string(kb[:end])
					if n == max {
						page.Truncated = true
						return nil
					}
					page.CommonPrefixes = append(page.CommonPrefixes, cp)
					page.NextKeyMarker, page.NextVersionMarker = cp, manifest.ID{}
					n++
					next := index.Successor(cp)
					if next == "" {
						return nil
					}
					k, val = c.Seek([]byte(next))
					continue
				}
			}
			if n == max {
				page.Truncated = true
				return nil
			}
			// A key's first version on the page gets its key in one
			// string with its ETag; the others share it.
			newKey := string(kb) != prevKey
			var v index.Version
			if newKey {
				d.key = kb
			}
			_, err := readRecord(&v, k, val, false, &d)
			d.key = nil
			if err != nil {
				return err
			}
			// Only a page's first version of each key is compared with
			// the key's latest (as before this pass).
			key := prevKey
			if newKey {
				key = v.Key
				if key == "" {
					key = string(kb) // a format 3 record
				}
				if sum := latestOf(kb); sum != nil {
					id, err := summaryID(sum)
					if err != nil {
						return err
					}
					v.IsLatest = id == v.ID
				}
			}
			v.Vault, v.Key = vault, key
			prevKey = key
			scratch.v = append(scratch.v, v)
			page.NextKeyMarker, page.NextVersionMarker = key, v.ID
			n++
			k, val = c.Next()
		}
		return nil
	})
	if !page.Truncated {
		page.NextKeyMarker, page.NextVersionMarker = "", manifest.ID{}
	}
	return page, err
}

// Reset implements index.Index.
func (ix *Index) Reset(ctx context.Context) error {
	return ix.update(func(tx *bolt.Tx) error {
		var names [][]byte
		tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			// Audit log entries not yet drained are not the sites'
			// to give back: they stay.
			if !bytes.Equal(name, bucketMeta) && !bytes.Equal(name, bucketAuditPending) {
				names = append(names, bytes.Clone(name))
			}
			return nil
		})
		for _, n := range names {
			if err := tx.DeleteBucket(n); err != nil {
				return err
			}
		}
		return nil
	})
}

// Stats implements index.Index.
func (ix *Index) Stats(ctx context.Context) (index.Stats, error) {
	var s index.Stats
	err := ix.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, v *bolt.Bucket) error {
			if !bytes.HasPrefix(name, []byte("v/")) {
				return nil
			}
			s.Versions += int64(v.Bucket(bucketVersions).Stats().KeyN)
			return v.Bucket(bucketLatest).ForEach(func(_, val []byte) error {
				if len(val) > 0 && val[0]&flagDeleteMarker == 0 {
					s.Keys++
				}
				return nil
			})
		})
	})
	if fi, err := os.Stat(ix.path); err == nil {
		s.Bytes = fi.Size()
	}
	return s, err
}
