package boltindex

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Audit log entries committed with the index writes they record.
//
// A write that carries an entry (index.Version.Audit) stores it in the
// bucket "auditpending", under the next number of the bucket's sequence,
// in the write's own transaction: the fsync that makes the version
// visible makes its audit log entry durable too, and neither is ever
// without the other. The audit log drains the bucket (audit.Pending): it
// appends the entries to its journal in the bucket's order and then
// removes them, storing beside the removal a watermark, the log's size
// before the first entry not yet removed could have been appended. Reset
// (a rebuild) leaves the bucket alone.

var (
	bucketAuditPending = []byte("auditpending")
	keyAuditWatermark  = []byte("audit-watermark")
)

// maxAuditEntry is the largest entry a log holds (tlog-tiles).
const maxAuditEntry = 65535

// putAuditEntry stores a write's audit log entry (inside the write).
func putAuditEntry(tx *bolt.Tx, entry []byte) error {
	if len(entry) == 0 {
		return nil
	}
	if len(entry) > maxAuditEntry {
		return fmt.Errorf("audit log entry of %d bytes, at most %d", len(entry), maxAuditEntry)
	}
	b, err := tx.CreateBucketIfNotExists(bucketAuditPending)
	if err != nil {
		return err
	}
	// Keys increase: entries fill their pages.
	b.FillPercent = 1
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	return b.Put(binary.BigEndian.AppendUint64(nil, n), entry)
}

// PendingAudit returns up to max pending entries with keys above after,
// in order, and their keys (audit.Pending).
func (ix *Index) PendingAudit(ctx context.Context, after uint64, max int) (keys []uint64, entries [][]byte, err error) {
	err = ix.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAuditPending)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, after+1)); k != nil && len(keys) < max; k, v = c.Next() {
			if len(k) != 8 {
				return errors.New("index: malformed pending audit log entry key")
			}
			keys = append(keys, binary.BigEndian.Uint64(k))
			entries = append(entries, bytes.Clone(v))
		}
		return nil
	})
	return keys, entries, err
}

// DrainedAudit removes the pending entries with keys up to through (the
// log holds them) and stores the watermark (audit.Pending). It goes with
// the next group commit of writes.
func (ix *Index) DrainedAudit(ctx context.Context, through, watermark uint64) error {
	return ix.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(keyAuditWatermark, binary.BigEndian.AppendUint64(nil, watermark)); err != nil {
			return err
		}
		b := tx.Bucket(bucketAuditPending)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= through; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// AuditWatermark returns the watermark DrainedAudit last stored, if any
// (audit.Pending).
func (ix *Index) AuditWatermark(ctx context.Context) (uint64, bool, error) {
	var w uint64
	var ok bool
	err := ix.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyAuditWatermark); len(v) == 8 {
			w, ok = binary.BigEndian.Uint64(v), true
		}
		return nil
	})
	return w, ok, err
}
