package taxii

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/embassy-dev/embassy/internal/lockfile"
	"github.com/embassy-dev/embassy/manifest"
)

// The secondary index of the TAXII collections: what the filters need (by
// date added, by id and version, by type) for every object version stored
// in a collection, with the vault version that holds it. Like the node's
// main index it is a cache: everything in it is in the object versions'
// metadata in the vault, and Rebuild makes it again from there. It also
// keeps node-local state that is not a cache: status resources (kept for
// a set period) and sync cursors (which, if lost, only make a sync start
// over; the receiving side drops what it already has).
//
// Layout (one bbolt file, taxii.db in the node directory):
//
//	c/<collection>/added   date added (µs, big-endian) → entry (JSON)
//	c/<collection>/ids     id, NUL, version (ns, big-endian) → date added
//	c/<collection>/types   type, NUL, date added → nothing
//	c/<collection>         "built" → time the index was complete
//	status                 status id → status (JSON)
//	status-age             created (ns), status id → nothing

var (
	bucketAdded     = []byte("added")
	bucketIDs       = []byte("ids")
	bucketTypes     = []byte("types")
	bucketStatus    = []byte("status")
	bucketStatusAge = []byte("status-age")
	keyBuilt        = []byte("built")
)

// Entry is the index's record of one object version.
type Entry struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	SpecVersion string `json:"spec_version"`
	// Version is the STIX version (modified, else created) in Unix
	// nanoseconds, or Added×1000 for an object with neither.
	Version int64 `json:"version"`
	// Added is the date added in Unix microseconds, unique within the
	// collection.
	Added int64 `json:"added"`
	// Label is the version's label (text form), so that listings can
	// leave out what a principal may not read; TLP its level.
	Label string `json:"label"`
	TLP   string `json:"tlp"`
	// VaultVersion is the vault version holding the object.
	VaultVersion string `json:"vault_version"`
}

// AddedTime returns the date added.
func (e Entry) AddedTime() time.Time { return time.UnixMicro(e.Added).UTC() }

// VersionTime returns the STIX version.
func (e Entry) VersionTime() time.Time { return time.Unix(0, e.Version).UTC() }

// Index is the secondary index file.
type Index struct {
	db *bolt.DB
}

// OpenIndex opens or creates the index at path. Only one process may hold
// it open.
func OpenIndex(path string) (*Index, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open TAXII index %s: in use by %s, which has this node directory open (another embassy command, or 'embassy serve'): wait for it to finish, or stop it", path, lockfile.Holder(path))
		}
		return nil, fmt.Errorf("open TAXII index %s: %w", path, err)
	}
	return &Index{db: db}, nil
}

// Close closes the file.
func (x *Index) Close() error { return x.db.Close() }

func collKey(coll string) []byte { return []byte("c/" + coll) }

func be64(v int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return b[:]
}

func idKey(id string, version int64) []byte {
	return append(append([]byte(id), 0), be64(version)...)
}

func typeKey(typ string, added int64) []byte {
	return append(append([]byte(typ), 0), be64(added)...)
}

// Built reports whether a collection's index is complete (it was built,
// or made empty with the collection).
func (x *Index) Built(coll string) bool {
	built := false
	x.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(collKey(coll)); b != nil {
			built = b.Get(keyBuilt) != nil
		}
		return nil
	})
	return built
}

// Reset empties a collection's index and marks it not built.
func (x *Index) Reset(coll string) error {
	return x.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(collKey(coll)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		b, err := tx.CreateBucket(collKey(coll))
		if err != nil {
			return err
		}
		for _, n := range [][]byte{bucketAdded, bucketIDs, bucketTypes} {
			if _, err := b.CreateBucket(n); err != nil {
				return err
			}
		}
		return nil
	})
}

// MarkBuilt records that a collection's index is complete.
func (x *Index) MarkBuilt(coll string) error {
	return x.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(collKey(coll))
		if b == nil {
			return fmt.Errorf("TAXII index: collection %s not there", coll)
		}
		return b.Put(keyBuilt, be64(time.Now().UnixNano()))
	})
}

// Add records entries, group-committed with concurrent callers.
func (x *Index) Add(coll string, es ...Entry) error {
	return x.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(collKey(coll))
		if b == nil {
			return fmt.Errorf("TAXII index: collection %s not there", coll)
		}
		added, ids, types := b.Bucket(bucketAdded), b.Bucket(bucketIDs), b.Bucket(bucketTypes)
		for _, e := range es {
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := added.Put(be64(e.Added), v); err != nil {
				return err
			}
			if err := ids.Put(idKey(e.ID, e.Version), be64(e.Added)); err != nil {
				return err
			}
			if err := types.Put(typeKey(e.Type, e.Added), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// Remove forgets an entry.
func (x *Index) Remove(coll string, e Entry) error {
	return x.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(collKey(coll))
		if b == nil {
			return nil
		}
		if err := b.Bucket(bucketAdded).Delete(be64(e.Added)); err != nil {
			return err
		}
		if err := b.Bucket(bucketIDs).Delete(idKey(e.ID, e.Version)); err != nil {
			return err
		}
		return b.Bucket(bucketTypes).Delete(typeKey(e.Type, e.Added))
	})
}

// LastAdded returns the latest date added in a collection (0 if empty).
func (x *Index) LastAdded(coll string) int64 {
	var last int64
	x.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(collKey(coll)); b != nil {
			if k, _ := b.Bucket(bucketAdded).Cursor().Last(); k != nil {
				last = int64(binary.BigEndian.Uint64(k))
			}
		}
		return nil
	})
	return last
}

// Count returns the number of entries of a collection.
func (x *Index) Count(coll string) int {
	n := 0
	x.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(collKey(coll)); b != nil {
			n = b.Bucket(bucketAdded).Stats().KeyN
		}
		return nil
	})
	return n
}

func decodeEntry(v []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(v, &e); err != nil {
		return Entry{}, fmt.Errorf("TAXII index: damaged entry (rebuild it: embassy taxii index rebuild): %w", err)
	}
	return e, nil
}

// query selects candidate entries in date-added order.
type query struct {
	after, before int64 // exclusive bounds on Added (before 0: none)
	ids, types    []string
	max           int
}

// candidates returns up to q.max entries with after < Added < before that
// match q's ids and types, in date-added order, and whether more might
// follow.
func (x *Index) candidates(coll string, q query) ([]Entry, bool, error) {
	var out []Entry
	more := false
	inRange := func(a int64) bool { return a > q.after && (q.before == 0 || a < q.before) }
	err := x.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(collKey(coll))
		if b == nil {
			return nil
		}
		added := b.Bucket(bucketAdded)
		get := func(a int64) error {
			v := added.Get(be64(a))
			if v == nil {
				return nil
			}
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		}
		switch {
		case len(q.ids) > 0:
			var keys []int64
			c := b.Bucket(bucketIDs).Cursor()
			for _, id := range q.ids {
				prefix := append([]byte(id), 0)
				for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
					if a := int64(binary.BigEndian.Uint64(v)); inRange(a) && (len(q.types) == 0 || slices.Contains(q.types, typeOf(id))) {
						keys = append(keys, a)
					}
				}
			}
			slices.Sort(keys)
			if len(keys) > q.max {
				keys, more = keys[:q.max], true
			}
			for _, a := range keys {
				if err := get(a); err != nil {
					return err
				}
			}
		case len(q.types) > 0:
			var keys []int64
			c := b.Bucket(bucketTypes).Cursor()
			for _, t := range q.types {
				prefix := append([]byte(t), 0)
				n := 0
				for k, _ := c.Seek(typeKey(t, q.after+1)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
					a := int64(binary.BigEndian.Uint64(k[len(prefix):]))
					if !inRange(a) {
						break
					}
					if n == q.max {
						more = true
						break
					}
					keys = append(keys, a)
					n++
				}
			}
			slices.Sort(keys)
			if len(keys) > q.max {
				keys, more = keys[:q.max], true
			}
			for _, a := range keys {
				if err := get(a); err != nil {
					return err
				}
			}
		default:
			c := added.Cursor()
			for k, v := c.Seek(be64(q.after + 1)); k != nil; k, v = c.Next() {
				a := int64(binary.BigEndian.Uint64(k))
				if !inRange(a) {
					break
				}
				if len(out) == q.max {
					more = true
					break
				}
				e, err := decodeEntry(v)
				if err != nil {
					return err
				}
				out = append(out, e)
			}
		}
		return nil
	})
	return out, more, err
}

// versions returns every entry of one object, oldest version first.
func (x *Index) versions(coll, id string) ([]Entry, error) {
	var out []Entry
	err := x.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(collKey(coll))
		if b == nil {
			return nil
		}
		added := b.Bucket(bucketAdded)
		prefix := append([]byte(id), 0)
		c := b.Bucket(bucketIDs).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			ev := added.Get(v)
			if ev == nil {
				continue
			}
			e, err := decodeEntry(ev)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// putJSON stores v under key in a top-level bucket.
func (x *Index) putJSON(bucket, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return x.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return bk.Put(key, b)
	})
}

// getJSON reads key from a top-level bucket into v, reporting whether it
// was there.
func (x *Index) getJSON(bucket, key []byte, v any) (bool, error) {
	var raw []byte
	x.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket); b != nil {
			raw = bytes.Clone(b.Get(key))
		}
		return nil
	})
	if raw == nil {
		return false, nil
	}
	return true, json.Unmarshal(raw, v)
}

// manifestID parses an entry's vault version.
func (e Entry) manifestID() (manifest.ID, error) {
	return manifest.ParseID(e.VaultVersion)
}

// typeOf returns the type part of an identifier.
func typeOf(id string) string {
	t, _, _ := strings.Cut(id, "--")
	return t
}
