package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

// Fetcher reads a log's tlog-tiles resources: the node's own log
// ([Log.Reader]), a site's copy ([SiteFetcher]), or a copy over HTTP
// (tessera's client.HTTPFetcher).
type Fetcher interface {
	ReadCheckpoint(ctx context.Context) ([]byte, error)
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

// TreeError says which resource of a log copy does not match the tree its
// checkpoint commits to.
type TreeError struct {
	// Resource is the tlog-tiles path ("tile/0/x001/234.p/12",
	// "tile/entries/005", "checkpoint").
	Resource string
	Reason   string
}

func (e *TreeError) Error() string { return e.Resource + ": " + e.Reason }

var rangeFactory = compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// emptyRoot is the root of the empty tree.
var emptyRoot = sha256.Sum256(nil)

// VerifyTree checks that a copy of a log holds the tree of size entries
// with the given root: it reads every entry bundle in order, hashes every
// entry, recomputes every tile and compares it with the copy's, and
// compares the root. It calls entry (if set) for each entry as it goes,
// and returns the root of the first at entries (if 0 < at <= size). Memory
// stays bounded whatever the size: one bundle and one tile per level.
func VerifyTree(ctx context.Context, f Fetcher, size uint64, root []byte, at uint64, entry func(i uint64, e []byte) error) ([]byte, error) {
	if size == 0 {
		if !bytes.Equal(root, emptyRoot[:]) {
			return nil, &TreeError{Resource: layout.CheckpointPath, Reason: "an empty tree with a root that is not the empty tree's"}
		}
		return nil, nil
	}
	r := rangeFactory.NewEmptyRange(0)
	// tiles[level] collects the hashes of the tile being filled.
	var tiles [][]byte
	var tileErr error
	check := func(level, index uint64, got []byte, partial uint8) {
		if tileErr != nil {
			return
		}
		name := layout.TilePath(level, index, partial)
		raw, err := f.ReadTile(ctx, level, index, partial)
		if err != nil {
			tileErr = &TreeError{Resource: name, Reason: "cannot be read: " + err.Error()}
			return
		}
		// A full tile may stand in for a partial one.
		if len(raw) < len(got) || (partial == 0 && len(raw) != len(got)) || len(raw)%sha256.Size != 0 || len(raw) > layout.TileWidth*sha256.Size {
			tileErr = &TreeError{Resource: name, Reason: fmt.Sprintf("holds %d bytes, the tree needs %d (truncated or changed)", len(raw), len(got))}
			return
		}
		if !bytes.Equal(raw[:len(got)], got) {
			tileErr = &TreeError{Resource: name, Reason: "its hashes differ from those of the entries below it (changed)"}
		}
	}
	visit := func(id compact.NodeID, h []byte) {
		if id.Level%layout.TileHeight != 0 {
			return
		}
		level := uint64(id.Level / layout.TileHeight)
		for uint64(len(tiles)) <= level {
			tiles = append(tiles, nil)
		}
		tiles[level] = append(tiles[level], h...)
		if len(tiles[level]) == layout.TileWidth*sha256.Size {
			check(level, id.Index/layout.TileWidth, tiles[level], 0)
			tiles[level] = tiles[level][:0]
		}
	}
	var rootAt []byte
	for ri := range layout.Range(0, size, size) {
		name := layout.EntriesPath(ri.Index, ri.Partial)
		raw, err := f.ReadEntryBundle(ctx, ri.Index, ri.Partial)
		if err != nil {
			return nil, &TreeError{Resource: name, Reason: "cannot be read: " + err.Error()}
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return nil, &TreeError{Resource: name, Reason: "malformed: " + err.Error()}
		}
		if uint(len(b.Entries)) < ri.First+ri.N || (ri.Partial == 0 && len(b.Entries) != layout.EntryBundleWidth) {
			return nil, &TreeError{Resource: name, Reason: fmt.Sprintf("holds %d entries, the tree needs %d (truncated?)", len(b.Entries), ri.First+ri.N)}
		}
		for k := ri.First; k < ri.First+ri.N; k++ {
			i := ri.Index*layout.EntryBundleWidth + uint64(k)
			if err := r.Append(rfc6962.DefaultHasher.HashLeaf(b.Entries[k]), visit); err != nil {
				return nil, err
			}
			if tileErr != nil {
				return nil, fmt.Errorf("%w (entry bundle %s is consistent with the others only if that tile is the one changed)", tileErr, name)
			}
			if entry != nil {
				if err := entry(i, b.Entries[k]); err != nil {
					return nil, err
				}
			}
			if r.End() == at {
				if rootAt, err = r.GetRootHash(nil); err != nil {
					return nil, err
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	// The partial tiles at the right edge.
	for level, got := range tiles {
		if len(got) > 0 {
			n := size >> (layout.TileHeight * uint64(level))
			check(uint64(level), (n-1)/layout.TileWidth, got, layout.PartialTileSize(uint64(level), (n-1)/layout.TileWidth, size))
		}
	}
	if tileErr != nil {
		return nil, tileErr
	}
	got, err := r.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got, root) {
		return nil, &TreeError{Resource: layout.CheckpointPath, Reason: fmt.Sprintf("the %d entries do not hash to the checkpoint's root (entries changed, or the checkpoint is another log's)", size)}
	}
	return rootAt, nil
}

// ErrNoCopy: no site holds a verifiable copy of the log.
var ErrNoCopy = errors.New("no site holds a copy of the audit log that verifies")
