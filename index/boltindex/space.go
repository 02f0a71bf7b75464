package boltindex

import (
	"bytes"
	"os"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// Space is how the index file's bytes are used, from bbolt's own
// statistics: what benchmarks and the design notes report of the index's
// size (docs/design.md, "What an index entry costs").
type Space struct {
	// File is the file's size. bbolt grows it in steps (doubling up to
	// 16 MiB, then 16 MiB at a time past the pages in use) and never
	// shrinks it.
	File int64
	// Disk is what the file takes on disk (its allocated blocks): the
	// part of it bbolt's growth steps added and no page was written to
	// yet is a hole, on filesystems that have them.
	Disk int64
	// HighWater is the bytes of every page bbolt has handed out: the
	// part of the file in use or free for reuse.
	HighWater int64
	PageSize  int
	// FreePages are free for reuse; PendingPages were freed by
	// transactions a reader may still see, and are free once it ends.
	FreePages, PendingPages int
	// Buckets sums each bucket's statistics over the vaults (by its name
	// in a vault: "latest", "versions", "ids", "envelopes", …); buckets
	// outside the vaults are under their own names.
	Buckets map[string]BucketSpace
}

// BucketSpace is a bucket's share of the file.
type BucketSpace struct {
	Keys int
	// Pages counts its pages (branch and leaf, overflow included).
	Pages int
	// Inuse is the bytes its entries take in those pages, Alloc the
	// bytes of the pages.
	Inuse, Alloc int64
}

// InUse is the high-water mark less the free and pending pages.
func (s Space) InUse() int64 {
	return s.HighWater - int64(s.FreePages+s.PendingPages)*int64(s.PageSize)
}

func bucketSpace(b *bolt.Bucket) BucketSpace {
	st := b.Stats()
	return BucketSpace{
		Keys:  st.KeyN,
		Pages: st.BranchPageN + st.BranchOverflowN + st.LeafPageN + st.LeafOverflowN,
		Inuse: int64(st.BranchInuse + st.LeafInuse),
		Alloc: int64(st.BranchAlloc + st.LeafAlloc),
	}
}

func (b BucketSpace) add(o BucketSpace) BucketSpace {
	return BucketSpace{b.Keys + o.Keys, b.Pages + o.Pages, b.Inuse + o.Inuse, b.Alloc + o.Alloc}
}

// Space reports how the file's bytes are used. It reads every page of
// the index: a benchmark's and an operator's question, not a request's.
func (ix *Index) Space() (Space, error) {
	s := Space{Buckets: map[string]BucketSpace{}, PageSize: ix.db.Info().PageSize}
	err := ix.db.View(func(tx *bolt.Tx) error {
		s.HighWater = tx.Size()
		st := ix.db.Stats()
		s.FreePages, s.PendingPages = st.FreePageN, st.PendingPageN
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if !bytes.HasPrefix(name, []byte("v/")) {
				s.Buckets[string(name)] = s.Buckets[string(name)].add(bucketSpace(b))
				return nil
			}
			return b.ForEachBucket(func(k []byte) error {
				s.Buckets[string(k)] = s.Buckets[string(k)].add(bucketSpace(b.Bucket(k)))
				return nil
			})
		})
	})
	if fi, statErr := os.Stat(ix.path); statErr == nil {
		s.File = fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s.Disk = st.Blocks * 512
		}
	} else if err == nil {
		err = statErr
	}
	return s, err
}
