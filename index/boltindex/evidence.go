package boltindex

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// What housekeeping asks of the index beyond index.Index: per-vault commit
// generations (a counter that moves in the same transaction as every
// commit, compared with the one the node keeps on the sites so that an
// index older than the sites is noticed), a mark that the index was found
// older than the sites, lookups by version id alone, and the vaults the
// index holds versions of.

var (
	keyGenPrefix = []byte("gen/")
	keyStale     = []byte("stale")
	keyStaleKind = []byte("stale-kind")
)

func genKey(vault string) []byte { return append(bytes.Clone(keyGenPrefix), vault...) }

// bumpGeneration moves a vault's generation on by one (inside a write).
func bumpGeneration(tx *bolt.Tx, vault string) error {
	m := tx.Bucket(bucketMeta)
	var g uint64
	if b := m.Get(genKey(vault)); len(b) == 8 {
		g = binary.BigEndian.Uint64(b)
	}
	return m.Put(genKey(vault), binary.BigEndian.AppendUint64(nil, g+1))
}

// Generations returns every vault's commit generation.
func (ix *Index) Generations(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := ix.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMeta).Cursor()
		for k, v := c.Seek(keyGenPrefix); k != nil && bytes.HasPrefix(k, keyGenPrefix); k, v = c.Next() {
			if len(v) == 8 {
				out[string(k[len(keyGenPrefix):])] = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return out, err
}

// SetGenerations raises vaults' generations to at least the values given
// and clears the stale mark (after a rebuild from the sites).
func (ix *Index) SetGenerations(ctx context.Context, gens map[string]uint64) error {
	return ix.update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		for vault, g := range gens {
			if b := m.Get(genKey(vault)); len(b) == 8 && binary.BigEndian.Uint64(b) >= g {
				continue
			}
			if err := m.Put(genKey(vault), binary.BigEndian.AppendUint64(nil, g)); err != nil {
				return err
			}
		}
		if err := m.Delete(keyStaleKind); err != nil {
			return err
		}
		return m.Delete(keyStale)
	})
}

// MarkStale records that the index was found stale (older than the sites,
// or rebuilt without all of them), with the kind and the reason. Only
// SetGenerations (a rebuild) clears it.
func (ix *Index) MarkStale(ctx context.Context, kind index.StaleKind, reason string) error {
	return ix.update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if err := m.Put(keyStaleKind, []byte(kind)); err != nil {
			return err
		}
		return m.Put(keyStale, []byte(reason))
	})
}

// Stale returns the kind of the stale mark and its reason, or "" for the
// reason when the index is not marked. A mark written before marks had
// kinds is taken as index.StaleBehind, what a mark meant then.
func (ix *Index) Stale(ctx context.Context) (index.StaleKind, string, error) {
	var kind index.StaleKind
	var reason string
	err := ix.db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		reason, kind = string(m.Get(keyStale)), index.StaleKind(m.Get(keyStaleKind))
		return nil
	})
	if reason != "" && kind == "" {
		kind = index.StaleBehind
	}
	return kind, reason, err
}

// Lookup finds a version by id alone, in any vault. It returns
// index.ErrNotFound when no vault holds it.
func (ix *Index) Lookup(ctx context.Context, id manifest.ID) (index.Version, error) {
	var vault, key string
	err := ix.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, v *bolt.Bucket) error {
			if vault != "" || !bytes.HasPrefix(name, []byte("v/")) {
				return nil
			}
			b, ok := readBuckets(tx, string(name[2:]))
			if !ok {
				return nil
			}
			if rec := b.ids.Get(id[:]); len(rec) >= 8 {
				vault, key = string(name[2:]), string(rec[8:])
			}
			return nil
		})
	})
	if err != nil {
		return index.Version{}, err
	}
	if vault == "" {
		return index.Version{}, index.ErrNotFound
	}
	return ix.Get(ctx, vault, key, id)
}

// VaultNames returns the vaults the index holds versions of.
func (ix *Index) VaultNames(ctx context.Context) ([]string, error) {
	var out []string
	err := ix.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if n, ok := strings.CutPrefix(string(name), "v/"); ok {
				out = append(out, n)
			}
			return nil
		})
	})
	return out, err
}
