package vault

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/seal"
	"github.com/embassy-dev/embassy/site"
)

// Sharing with an ally (package federation) needs two things of the
// engine. The owner node resolves a version exactly as a read would, as
// the ally's principal, and hands out its data keys for re-wrapping to the
// ally (ShareVersion); the ally's node reads the owner's ciphertext shards
// with those keys through the engine's own reader (ReadShared): blocks are
// checked, missing or corrupt ones rebuilt from parity and every stripe
// authenticated, as for a local object. Plaintext never crosses.

// ShareVersion resolves a version of vault/key (the latest if id is zero)
// as the context's principal may read it (the access decision of every
// read: label, clearance, releasability) and returns its manifest and
// each part's data key, in part order.
func (e *Engine) ShareVersion(ctx context.Context, vault, key string, id manifest.ID) (*manifest.Manifest, []seal.DataKey, error) {
	m, _, err := e.resolve(ctx, vault, key, id)
	if err != nil {
		return nil, nil, err
	}
	keys := make([]seal.DataKey, len(m.Parts))
	for i, p := range m.Parts {
		dk, err := e.k().UnwrapDataKey(e.vaultKeyName(m.Vault), partKeyGen(m, p), p.WrappedKey, partAAD(m.Version, p.Number, p.Blob))
		if err != nil {
			return nil, nil, fmt.Errorf("%s/%s part %d: %w", m.Vault, m.Key, p.Number, err)
		}
		keys[i] = dk
	}
	return m, keys, nil
}

// ReadShared opens a version of another node's vault for reading, from its
// manifest (validated here), its parts' data keys (in part order) and open,
// which returns the store through which a site of the manifest is read.
// The caller must Close the reader.
func ReadShared(ctx context.Context, m *manifest.Manifest, keys []seal.DataKey, open func(siteID string) site.Site, log *slog.Logger) (*Reader, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.DeleteMarker {
		return nil, &DeleteMarkerError{Version: m.Version}
	}
	if len(keys) != len(m.Parts) {
		return nil, fmt.Errorf("shared version %s: %d data keys for %d parts", m.Version, len(keys), len(m.Parts))
	}
	for _, k := range keys {
		if !k.Valid() {
			return nil, errors.New("shared version: a data key is missing")
		}
	}
	e := &Engine{log: cmp.Or(log, slog.New(slog.DiscardHandler)), sites: map[string]*Site{}}
	for _, p := range m.Parts {
		for _, id := range p.Sites {
			if _, ok := e.sites[id]; !ok {
				e.sites[id] = &Site{Descriptor: site.Descriptor{ID: id}, Store: open(id)}
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Reader{e: e, ctx: ctx, cancel: cancel, m: m, info: infoOf(m), end: m.Size, keys: keys}, nil
}
