package boltindex

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index"
)

// Upload state lives beside the versions of each vault: "uploads" maps key
// NUL id to the upload record, "upload-ids" maps id to key, and each upload
// has a bucket "parts/<id>" mapping part number (BE32) to its record.
var (
	bucketUploads   = []byte("uploads")
	bucketUploadIDs = []byte("upload-ids")
)

func partsBucket(id string) []byte { return []byte("parts/" + id) }

func encodeUpload(u index.Upload) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(u.Created))
	return append(b, u.Data...)
}

func decodeUpload(vault, key, id string, b []byte) (index.Upload, error) {
	if len(b) < 8 {
		return index.Upload{}, fmt.Errorf("upload record corrupt")
	}
	return index.Upload{Vault: vault, Key: key, ID: id, Created: int64(binary.BigEndian.Uint64(b)), Data: bytes.Clone(b[8:])}, nil
}

// PutUpload implements index.Uploads.
func (ix *Index) PutUpload(ctx context.Context, u index.Upload) error {
	return ix.update(func(tx *bolt.Tx) error {
		v, err := tx.CreateBucketIfNotExists(vaultBucket(u.Vault))
		if err != nil {
			return err
		}
		ups, err := v.CreateBucketIfNotExists(bucketUploads)
		if err != nil {
			return err
		}
		ids, err := v.CreateBucketIfNotExists(bucketUploadIDs)
		if err != nil {
			return err
		}
		if _, err := v.CreateBucketIfNotExists(partsBucket(u.ID)); err != nil {
			return err
		}
		if err := ids.Put([]byte(u.ID), []byte(u.Key)); err != nil {
			return err
		}
		return ups.Put([]byte(u.Key+"\x00"+u.ID), encodeUpload(u))
	})
}

func uploadNotFound(vault, id string) error {
	return fmt.Errorf("%w: upload %s in %s", index.ErrNotFound, id, vault)
}

// GetUpload implements index.Uploads.
func (ix *Index) GetUpload(ctx context.Context, vault, id string) (index.Upload, error) {
	var u index.Upload
	err := ix.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(vaultBucket(vault))
		if v == nil || v.Bucket(bucketUploadIDs) == nil {
			return uploadNotFound(vault, id)
		}
		key := v.Bucket(bucketUploadIDs).Get([]byte(id))
		if key == nil {
			return uploadNotFound(vault, id)
		}
		rec := v.Bucket(bucketUploads).Get([]byte(string(key) + "\x00" + id))
		if rec == nil {
			return uploadNotFound(vault, id)
		}
		var err error
		u, err = decodeUpload(vault, string(key), id, rec)
		return err
	})
	return u, err
}

// DeleteUpload implements index.Uploads.
func (ix *Index) DeleteUpload(ctx context.Context, vault, id string) error {
	return ix.update(func(tx *bolt.Tx) error {
		v := tx.Bucket(vaultBucket(vault))
		if v == nil || v.Bucket(bucketUploadIDs) == nil {
			return nil
		}
		key := v.Bucket(bucketUploadIDs).Get([]byte(id))
		if key == nil {
			return nil
		}
		if err := v.Bucket(bucketUploads).Delete([]byte(string(key) + "\x00" + id)); err != nil {
			return err
		}
		if err := v.Bucket(bucketUploadIDs).Delete([]byte(id)); err != nil {
			return err
		}
		if v.Bucket(partsBucket(id)) != nil {
			return v.DeleteBucket(partsBucket(id))
		}
		return nil
	})
}

// PutUploadPart implements index.Uploads.
func (ix *Index) PutUploadPart(ctx context.Context, vault, id string, p index.UploadPart) ([]byte, error) {
	var prev []byte
	err := ix.update(func(tx *bolt.Tx) error {
		v := tx.Bucket(vaultBucket(vault))
		if v == nil || v.Bucket(partsBucket(id)) == nil {
			return uploadNotFound(vault, id)
		}
		parts := v.Bucket(partsBucket(id))
		k := binary.BigEndian.AppendUint32(nil, uint32(p.Number))
		prev = bytes.Clone(parts.Get(k))
		return parts.Put(k, p.Data)
	})
	return prev, err
}

// UploadParts implements index.Uploads.
func (ix *Index) UploadParts(ctx context.Context, vault, id string) ([]index.UploadPart, error) {
	var out []index.UploadPart
	err := ix.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(vaultBucket(vault))
		if v == nil || v.Bucket(partsBucket(id)) == nil {
			return uploadNotFound(vault, id)
		}
		return v.Bucket(partsBucket(id)).ForEach(func(k, val []byte) error {
			out = append(out, index.UploadPart{Number: int(binary.BigEndian.Uint32(k)), Data: bytes.Clone(val)})
			return nil
		})
	})
	return out, err
}

// ListUploads implements index.Uploads.
func (ix *Index) ListUploads(ctx context.Context, vault string, o index.UploadOptions) (index.UploadPage, error) {
	var page index.UploadPage
	max := index.PageSize(o.Max)
	err := ix.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(vaultBucket(vault))
		if v == nil || v.Bucket(bucketUploads) == nil {
			return nil
		}
		c := v.Bucket(bucketUploads).Cursor()
		start := o.Prefix
		if o.KeyMarker != "" && o.KeyMarker >= o.Prefix {
			if o.IDMarker != "" {
				start = o.KeyMarker + "\x00" + o.IDMarker + "\x00"
			} else {
				start = o.KeyMarker + "\x01"
			}
			// A key marker that is a whole common prefix (as
			// NextKeyMarker is after one) skips everything under it.
			if o.Delimiter != "" && o.IDMarker == "" && strings.HasPrefix(o.KeyMarker, o.Prefix) {
				if i := strings.Index(o.KeyMarker[len(o.Prefix):], o.Delimiter); i >= 0 && len(o.Prefix)+i+len(o.Delimiter) == len(o.KeyMarker) {
					start = index.Successor(o.KeyMarker)
					if start == "" {
						return nil
					}
				}
			}
		}
		n := 0
		for k, val := c.Seek([]byte(start)); k != nil; {
			key, id, _ := strings.Cut(string(k), "\x00")
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
					page.NextKeyMarker, page.NextIDMarker = cp, ""
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
			u, err := decodeUpload(vault, key, id, val)
			if err != nil {
				return err
			}
			page.Uploads = append(page.Uploads, u)
			page.NextKeyMarker, page.NextIDMarker = key, id
			n++
			k, val = c.Next()
		}
		return nil
	})
	if !page.Truncated {
		page.NextKeyMarker, page.NextIDMarker = "", ""
	}
	return page, err
}

// VaultEmpty implements index.Index.
func (ix *Index) VaultEmpty(ctx context.Context, vault string) (bool, error) {
	empty := true
	err := ix.db.View(func(tx *bolt.Tx) error {
		b, ok := readBuckets(tx, vault)
		if !ok {
			return nil
		}
		if k, _ := b.versions.Cursor().First(); k != nil {
			empty = false
		}
		return nil
	})
	return empty, err
}
