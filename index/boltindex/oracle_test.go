package boltindex

// The listings as they were before the eighth pass of issue 15 (which
// decodes only what a listing needs and allocates less), kept as the
// oracle that TestListingsMatchOracle compares them with.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// oracleList is List as it was before the eighth pass (issue 15): the
// reference the equivalence tests compare List with.
func (ix *Index) oracleList(ctx context.Context, vault string, o index.ListOptions) (index.ListPage, error) {
	var page index.ListPage
	max := index.PageSize(o.Max)
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
		n := 0
		// examined counts a record looked at; it reports whether the scan
		// bound is reached there. A key that is itself a whole common
		// prefix is not a place to stop: resuming after it would skip
		// everything under it.
		examined := func(key string) bool {
			page.Scanned++
			if o.Scan <= 0 || page.Scanned < o.Scan {
				return false
			}
			if o.Delimiter != "" && strings.HasPrefix(key, o.Prefix) {
				if i := strings.Index(key[len(o.Prefix):], o.Delimiter); i >= 0 && len(o.Prefix)+i+len(o.Delimiter) == len(key) {
					return false
				}
			}
			page.Truncated, page.Next = true, key
			return true
		}
		for k, val := c.Seek([]byte(start)); k != nil; {
			key := string(k)
			if !strings.HasPrefix(key, o.Prefix) {
				break
			}
			if o.Delimiter != "" {
				if i := strings.Index(key[len(o.Prefix):], o.Delimiter); i >= 0 {
					cp := key[:len(o.Prefix)+i+len(o.Delimiter)]
					// A prefix shows only if a live key is under it.
					live := false
					for ; k != nil && bytes.HasPrefix(k, []byte(cp)); k, val = c.Next() {
						if len(val) > 0 && val[0]&flagDeleteMarker == 0 {
							live = true
							break
						}
						if examined(string(k)) {
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
			v, err := oldDecodeSummary(val)
			if err != nil {
				return err
			}
			if !v.DeleteMarker {
				if n == max {
					page.Truncated = true
					return nil
				}
				v.Vault, v.Key = vault, key
				page.Entries = append(page.Entries, v)
				page.Next = key
				n++
			}
			if examined(key) {
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

// oracleVersions is Versions as it was before the eighth pass.
func (ix *Index) oracleVersions(ctx context.Context, vault string, o index.VersionOptions) (index.VersionPage, error) {
	var page index.VersionPage
	max := index.PageSize(o.Max)
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
		n := 0
		prevKey := ""
		for k != nil {
			key, _, _, ok := oldSplitVersionKey(k)
			if !ok {
				return fmt.Errorf("index record key corrupt; rebuild the index")
			}
			if !strings.HasPrefix(key, o.Prefix) {
				break
			}
			if o.Delimiter != "" {
				if i := strings.Index(key[len(o.Prefix):], o.Delimiter); i >= 0 {
					cp := key[:len(o.Prefix)+i+len(o.Delimiter)]
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
			v, _, err := oldDecodeRecord(k, val, false)
			if err != nil {
				return err
			}
			v.Vault, v.Key = vault, key
			if key != prevKey {
				if sum := b.latest.Get([]byte(key)); sum != nil {
					l, err := oldDecodeSummary(sum)
					if err != nil {
						return err
					}
					v.IsLatest = l.ID == v.ID
				}
			}
			prevKey = key
			page.Versions = append(page.Versions, v)
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

// The record decoders before the eighth pass.

// oldDecodeSummary is decodeSummary before the eighth pass: it reads a "latest" value of either encoding.
func oldDecodeSummary(b []byte) (index.Version, error) {
	if !isCompact(b) {
		return oldDecodeFull(b, false)
	}
	var v index.Version
	if len(b) < 1+16+8 {
		return v, corrupt("short record")
	}
	if b[0]&^flagsKnown != 0 {
		return v, corrupt("unknown flags")
	}
	v.DeleteMarker = b[0]&flagDeleteMarker != 0
	copy(v.ID[:], b[1:17])
	v.Created = int64(binary.BigEndian.Uint64(b[17:25]))
	rest, err := oldReadSummaryTail(&v, b[25:])
	if err != nil {
		return v, err
	}
	if len(rest) > 0 {
		return v, corrupt("trailing bytes")
	}
	return v, nil
}

// oldDecodeRecord reads a "versions" value of either encoding stored under
// key k. It returns the number of a compact record's envelope (which
// buckets.record fetches); withEnvelope copies out a full record's.
func oldDecodeRecord(k, b []byte, withEnvelope bool) (index.Version, uint64, error) {
	if !isCompact(b) {
		v, err := oldDecodeFull(b, withEnvelope)
		return v, 0, err
	}
	var v index.Version
	_, created, id, ok := oldSplitVersionKey(k)
	if !ok {
		return v, 0, corrupt("version key")
	}
	if b[0]&^flagsKnown != 0 {
		return v, 0, corrupt("unknown flags")
	}
	v.ID, v.Created = id, created
	v.DeleteMarker = b[0]&flagDeleteMarker != 0
	rest, err := oldReadSummaryTail(&v, b[1:])
	if err != nil {
		return v, 0, err
	}
	n, l := binary.Uvarint(rest)
	if l <= 0 || l != len(rest) {
		return v, 0, corrupt("envelope number")
	}
	return v, n, nil
}

func oldReadSummaryTail(v *index.Version, b []byte) ([]byte, error) {
	size, n := binary.Uvarint(b)
	if n <= 0 || size > math.MaxInt64 {
		return nil, corrupt("size")
	}
	v.Size = int64(size)
	etag, b, err := manifest.ReadETag(b[n:])
	if err != nil {
		return nil, corrupt("etag")
	}
	v.ETag = etag
	ll, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < ll {
		return nil, corrupt("label")
	}
	v.Label = string(b[n : n+int(ll)])
	return b[n+int(ll):], nil
}

// oldDecodeFull reads a value in the full encoding of index format 3.
func oldDecodeFull(b []byte, withEnvelope bool) (index.Version, error) {
	var v index.Version
	if len(b) < 1+16+8 {
		return v, corrupt("short record")
	}
	if b[0]&^flagDeleteMarker != 0 {
		return v, corrupt("unknown flags")
	}
	v.DeleteMarker = b[0]&flagDeleteMarker != 0
	copy(v.ID[:], b[1:17])
	v.Created = int64(binary.BigEndian.Uint64(b[17:25]))
	b = b[25:]
	size, n := binary.Uvarint(b)
	if n <= 0 || size > math.MaxInt64 {
		return v, corrupt("size")
	}
	v.Size = int64(size)
	b = b[n:]
	el, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < el {
		return v, corrupt("etag")
	}
	v.ETag = string(b[n : n+int(el)])
	b = b[n+int(el):]
	ll, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < ll {
		return v, corrupt("label")
	}
	v.Label = string(b[n : n+int(ll)])
	b = b[n+int(ll):]
	if withEnvelope {
		envLen, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) != envLen {
			return v, corrupt("envelope")
		}
		v.Envelope = bytes.Clone(b[n:])
	}
	return v, nil
}

func oldSplitVersionKey(k []byte) (key string, created int64, id manifest.ID, ok bool) {
	if len(k) < 1+8+16 || k[len(k)-25] != 0 {
		return "", 0, id, false
	}
	copy(id[:], k[len(k)-16:])
	created = int64(^binary.BigEndian.Uint64(k[len(k)-24 : len(k)-16]))
	return string(k[:len(k)-25]), created, id, true
}
