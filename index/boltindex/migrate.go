package boltindex

import (
	"bytes"
	"context"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// Migration. An index upgraded from format 3 holds records in the full
// encoding, and an index rebuilt from sites that an older node wrote holds
// manifest envelopes of an older format: both read, and both take more
// room than they need. Either leaves a "migrate" mark in "meta", a counter
// moved on each time; MigrateRecords rewrites such records in bounded
// transactions while the node serves, and clears the mark if nothing moved
// it meanwhile.

// olderFormat reports whether env is an envelope of an older manifest
// format than this build writes.
func olderFormat(env []byte) bool {
	f := manifest.EnvelopeFormat(env)
	return f != 0 && f < manifest.Format
}

// markMigrate moves the migrate mark on (inside a write).
func markMigrate(m *bolt.Bucket) error {
	var g uint64
	if b := m.Get(keyMigrate); len(b) == 8 {
		g = binary.BigEndian.Uint64(b)
	}
	return m.Put(keyMigrate, binary.BigEndian.AppendUint64(nil, g+1))
}

// NeedsMigration reports whether records may remain that MigrateRecords
// would rewrite.
func (ix *Index) NeedsMigration() bool {
	var on bool
	ix.db.View(func(tx *bolt.Tx) error {
		on = tx.Bucket(bucketMeta).Get(keyMigrate) != nil
		return nil
	})
	return on
}

// Reseal is given an envelope of an older manifest format and returns the
// same manifest sealed in the current one, or false to keep the envelope
// as it is (it does not verify, or another pass must rewrite it).
type Reseal func(env []byte) ([]byte, bool)

// MigrateStats counts what MigrateRecords did.
type MigrateStats struct {
	Examined  int `json:"examined"`  // records looked at
	Rewritten int `json:"rewritten"` // records rewritten compact
	Resealed  int `json:"resealed"`  // envelopes replaced by reseal
	// Undecodable counts records that do not decode, left as they are
	// (reads of them fail and say so; a rebuild replaces them).
	Undecodable int `json:"undecodable"`
}

// migrateScan bounds the records one read transaction looks at.
const migrateScan = 5000

// testBeforeMigrateWrite, if set (by tests), runs between a step's read
// and its write.
var testBeforeMigrateWrite func()

// MigrateRecords rewrites every record in the full encoding compact and,
// when reseal is not nil, offers it every envelope of an older manifest
// format. It works in steps: a read transaction finds up to batch records
// to rewrite (looking at no more than a few thousand) and makes their new
// values, and one write, group-committed with the node's other writes,
// replaces each record that is still byte for byte what was read. A record
// written meanwhile is newer and is left alone. Writers therefore wait for
// at most one step's write, never for the walk.
// When every vault has been walked it clears the migrate mark, unless a
// write moved it on during the walk. progress, if not nil, is called after
// each step.
func (ix *Index) MigrateRecords(ctx context.Context, batch int, reseal Reseal, progress func(MigrateStats)) (MigrateStats, error) {
	var st MigrateStats
	batch = max(batch, 1)
	var mark []byte
	var vaults [][]byte
	err := ix.db.View(func(tx *bolt.Tx) error {
		mark = bytes.Clone(tx.Bucket(bucketMeta).Get(keyMigrate))
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if bytes.HasPrefix(name, []byte("v/")) {
				vaults = append(vaults, bytes.Clone(name))
			}
			return nil
		})
	})
	if err != nil || mark == nil {
		return st, err
	}
	// A change replaces the value old under k: a summary by sum, or a
	// version record by the record of v.
	type change struct {
		k, old, sum []byte
		v           *index.Version
	}
	for _, vault := range vaults {
		name := string(vault[len("v/"):])
		for _, bucket := range [][]byte{bucketLatest, bucketVersions} {
			var after []byte
			for done := false; !done; {
				if err := ctx.Err(); err != nil {
					return st, err
				}
				var changes []change
				err := ix.db.View(func(tx *bolt.Tx) error {
					bs, ok := readBuckets(tx, name)
					if !ok {
						done = true
						return nil
					}
					b := bs.latest
					if bytes.Equal(bucket, bucketVersions) {
						b = bs.versions
					}
					c := b.Cursor()
					k, val := c.First()
					if after != nil {
						if k, val = c.Seek(after); k != nil && bytes.Equal(k, after) {
							k, val = c.Next()
						}
					}
					for n := 0; ; k, val = c.Next() {
						if k == nil {
							done = true
							return nil
						}
						if n == migrateScan || len(changes) == batch {
							return nil
						}
						n++
						st.Examined++
						after = bytes.Clone(k)
						ch := change{k: bytes.Clone(k), old: bytes.Clone(val)}
						var err error
						if b == bs.latest {
							ch.sum, err = migratedSummary(val)
						} else {
							ch.v, err = migratedRecord(bs, k, val, reseal, &st)
						}
						if err != nil {
							// Left as it is, for a scrub or a
							// rebuild: reads report it.
							st.Undecodable++
							continue
						}
						if ch.sum != nil || ch.v != nil {
							changes = append(changes, ch)
						}
					}
				})
				if err != nil {
					return st, err
				}
				if len(changes) == 0 {
					continue
				}
				if testBeforeMigrateWrite != nil {
					testBeforeMigrateWrite()
				}
				err = ix.update(func(tx *bolt.Tx) error {
					if tx.Bucket(vault) == nil {
						return nil // the vault went meanwhile
					}
					bs, err := writeBuckets(tx, name)
					if err != nil {
						return err
					}
					for _, c := range changes {
						b := bs.versions
						if c.sum != nil {
							b = bs.latest
						}
						if cur := b.Get(c.k); !bytes.Equal(cur, c.old) {
							continue
						}
						if c.sum != nil {
							err = b.Put(c.k, c.sum)
						} else {
							_, err = bs.putRecord(c.k, *c.v)
						}
						if err != nil {
							return err
						}
						st.Rewritten++
					}
					return nil
				})
				if err != nil {
					return st, err
				}
				if progress != nil {
					progress(st)
				}
			}
		}
	}
	err = ix.update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if bytes.Equal(m.Get(keyMigrate), mark) {
			return m.Delete(keyMigrate)
		}
		return nil
	})
	return st, err
}

// migratedSummary returns the compact form of a full summary, or nil.
func migratedSummary(val []byte) ([]byte, error) {
	if isCompact(val) {
		return nil, nil
	}
	v, err := decodeSummary(val)
	if err != nil {
		return nil, err
	}
	return encodeSummary(v), nil
}

// migratedRecord returns the version a record must be rewritten with (a
// full record, or an envelope of an older manifest format that reseal
// replaces), or nil.
func migratedRecord(bs buckets, k, val []byte, reseal Reseal, st *MigrateStats) (*index.Version, error) {
	v, err := bs.record(k, val, true)
	if err != nil {
		return nil, err
	}
	changed := !isCompact(val)
	if reseal != nil && olderFormat(v.Envelope) {
		if env, ok := reseal(v.Envelope); ok {
			v.Envelope, changed = env, true
			st.Resealed++
		}
	}
	if !changed {
		return nil, nil
	}
	return &v, nil
}
