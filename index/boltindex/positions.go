package boltindex

import (
	"bytes"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/manifest"
)

// Positions of deleted versions. A client that lists versions page by page
// and deletes what each page shows (aws s3 rb --force, every bucket
// emptier) hands back, as version-id-marker, a version it has just deleted.
// The position of a version in the listing is its key, its inverted
// creation time and its id; the id alone names it, so Delete keeps the
// inverted time of each version it removes for PositionTTL, and Versions
// resumes after that position as if the version were still there.
//
// Top-level bucket "gone": "p/" vault NUL id -> inverted time (8 bytes)
// and key; "t/" deletion time (8 bytes) vault NUL id -> nothing, in time
// order, so that expired positions are dropped from the front.
var bucketGone = []byte("gone")

// PositionTTL is how long the position of a deleted version is kept.
const PositionTTL = 24 * time.Hour

// pruneBatch bounds the expired positions one Delete drops.
const pruneBatch = 64

func goneKey(vault string, id manifest.ID) []byte {
	b := make([]byte, 0, 2+len(vault)+1+16)
	b = append(b, "p/"...)
	b = append(b, vault...)
	b = append(b, 0)
	return append(b, id[:]...)
}

// keepPosition records where version id of key was (inv, its inverted
// creation time) when it was deleted at now, and drops positions older
// than PositionTTL.
func keepPosition(tx *bolt.Tx, vault, key string, inv []byte, id manifest.ID, now time.Time) error {
	g, err := tx.CreateBucketIfNotExists(bucketGone)
	if err != nil {
		return err
	}
	pk := goneKey(vault, id)
	if err := g.Put(pk, append(bytes.Clone(inv[:8]), key...)); err != nil {
		return err
	}
	tk := binary.BigEndian.AppendUint64([]byte("t/"), uint64(now.UnixNano()))
	if err := g.Put(append(tk, pk[2:]...), nil); err != nil {
		return err
	}
	limit := binary.BigEndian.AppendUint64([]byte("t/"), uint64(now.Add(-PositionTTL).UnixNano()))
	c := g.Cursor()
	var expired [][]byte
	for k, _ := c.Seek([]byte("t/")); k != nil && bytes.HasPrefix(k, []byte("t/")) && bytes.Compare(k[:10], limit) < 0 && len(expired) < pruneBatch; k, _ = c.Next() {
		expired = append(expired, bytes.Clone(k))
	}
	for _, k := range expired {
		if err := g.Delete(k); err != nil {
			return err
		}
		if err := g.Delete(append([]byte("p/"), k[10:]...)); err != nil {
			return err
		}
	}
	return nil
}

// position returns the inverted creation time of a deleted version of
// vault, or nil if none is kept.
func position(tx *bolt.Tx, vault string, id manifest.ID) []byte {
	g := tx.Bucket(bucketGone)
	if g == nil {
		return nil
	}
	v := g.Get(goneKey(vault, id))
	if len(v) < 8 {
		return nil
	}
	return v[:8]
}
