package vault

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// Every removal of a blob by the engine is preceded by a record on the
// node's audit log saying why (package evidence): a deletion record before
// a version delete commits (durable on the sites holding the version
// first), an intent before shard blobs that do not describe themselves are
// written, an abandonment before the blobs of a failed write or of a
// superseded placement are removed. Garbage collection (package
// housekeeping) removes nothing else.

// Journal returns the engine's evidence journal.
func (e *Engine) Journal() *evidence.Journal { return e.journal }

// siteStores returns every configured site's driver, by id.
func (e *Engine) siteStores() map[string]site.Site {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make(map[string]site.Site, len(e.sites))
	for id, s := range e.sites {
		out[id] = s.Store
	}
	return out
}

// recordBlobs lists blobs by site as evidence blobs.
func recordBlobs(blobs map[string][]string) []evidence.Blob {
	var out []evidence.Blob
	for _, sid := range slices.Sorted(maps.Keys(blobs)) {
		for _, n := range blobs[sid] {
			out = append(out, evidence.Blob{Name: n, Site: sid})
		}
	}
	return out
}

// abandon records that blobs written by a write that will never commit
// (or superseded by a newer placement) are garbage, then removes them. The
// engine knows this first hand; the record lets garbage collection finish
// the job later if a removal fails now. rec names the version or upload.
func (e *Engine) abandon(ctx context.Context, rec evidence.Record, blobs map[string][]string) {
	if len(blobs) == 0 {
		return
	}
	rec.Kind = evidence.Abandon
	rec.Blobs = recordBlobs(blobs)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := e.journal.Append(rctx, nil, rec); err != nil {
		e.log.WarnContext(ctx, "abandonment not recorded; blobs left where removal fails are kept", "version", rec.Version, "err", err)
	}
	e.cleanup(ctx, blobs)
}

// intent records, before the blobs are written, that a write is about to
// create the shard blobs of a part.
func (e *Engine) intent(ctx context.Context, version manifest.ID, upload string, blob manifest.ID, sites []string) error {
	rec := evidence.Record{Kind: evidence.Intent, Version: version, Upload: upload}
	for i, sid := range sites {
		rec.Blobs = append(rec.Blobs, evidence.Blob{Name: manifest.ShardBlobName(blob, i), Site: sid})
	}
	return e.journal.Append(ctx, nil, rec)
}
