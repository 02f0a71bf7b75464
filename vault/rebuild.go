package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
)

// RebuildStats reports an index rebuild.
type RebuildStats struct {
	Sites        int      `json:"sites"`                   // sites listed
	SiteErrors   []string `json:"site_errors,omitempty"`   // sites that could not be listed, with the error
	Manifests    int      `json:"manifests"`               // manifest copies found
	Versions     int      `json:"versions"`                // versions indexed
	Markers      int      `json:"delete_markers"`          // of which delete markers
	Corrupt      int      `json:"corrupt"`                 // manifest copies that failed verification
	Unreadable   []string `json:"unreadable,omitempty"`    // versions left out: fewer than k shards of some part
	UnknownVault int      `json:"unknown_vault,omitempty"` // versions indexed for vaults not configured
}

// rebuildMarker is implemented by indexes that can flag a rebuild in
// progress, so that an interrupted rebuild is noticed on the next start.
type rebuildMarker interface {
	SetRebuilding(bool) error
}

// RebuildIndex throws the index away and rebuilds it from the manifests on
// the sites alone. progress, if set, is called as versions are processed.
func (e *Engine) RebuildIndex(ctx context.Context, progress func(done, total int)) (RebuildStats, error) {
	var st RebuildStats
	found, err := e.scanManifests(ctx, &st)
	if err != nil {
		return st, err
	}
	if rm, ok := e.index.(rebuildMarker); ok {
		if err := rm.SetRebuilding(true); err != nil {
			return st, err
		}
	}
	if err := e.index.Reset(ctx); err != nil {
		return st, err
	}
	ids := make([]manifest.ID, 0, len(found))
	for id := range found {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b manifest.ID) int { return slices.Compare(a[:], b[:]) })

	type result struct {
		v          index.Version
		unreadable string
		corrupt    int
		ok         bool
		unknown    bool
	}
	results := make([]result, len(ids))
	var next, done int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(ids) || ctx.Err() != nil {
					return
				}
				id := ids[i]
				m, env, corrupt := e.fetchManifest(ctx, id, found[id])
				r := result{corrupt: corrupt}
				if m != nil {
					if why := e.readable(ctx, m, found[id]); why != "" {
						r.unreadable = fmt.Sprintf("%s/%s version %s: %s", m.Vault, m.Key, id, why)
					} else {
						r.ok = true
						r.v = index.Version{Vault: m.Vault, Key: m.Key, ID: m.Version, Created: m.Created,
							DeleteMarker: m.DeleteMarker, Size: m.Size, ETag: m.ETag, Label: m.Label, Envelope: env}
						_, verr := e.Vault(m.Vault)
						r.unknown = verr != nil
					}
				} else {
					r.unreadable = fmt.Sprintf("version %s: no copy of its manifest verifies", id)
				}
				results[i] = r
				mu.Lock()
				done++
				if progress != nil {
					progress(done, len(ids))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return st, err
	}
	batch := make([]index.Version, 0, 2000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := e.index.PutMany(ctx, batch)
		batch = batch[:0]
		return err
	}
	for _, r := range results {
		st.Corrupt += r.corrupt
		if !r.ok {
			st.Unreadable = append(st.Unreadable, r.unreadable)
			continue
		}
		st.Versions++
		if r.v.DeleteMarker {
			st.Markers++
		}
		if r.unknown {
			st.UnknownVault++
		}
		batch = append(batch, r.v)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	if rm, ok := e.index.(rebuildMarker); ok {
		if err := rm.SetRebuilding(false); err != nil {
			return st, err
		}
	}
	e.Events.ManifestErrors.Add(int64(st.Corrupt))
	return st, nil
}

// scanManifests lists every site's manifest blobs.
func (e *Engine) scanManifests(ctx context.Context, st *RebuildStats) (map[manifest.ID][]string, error) {
	found := map[manifest.ID][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, sid := range e.siteIDs() {
		s, _ := e.site(sid)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var ids []manifest.ID
			err := s.Store.List(ctx, manifest.ManifestPrefix, func(i site.Info) error {
				if id, ok := manifest.ParseBlobName(i.Name); ok {
					ids = append(ids, id)
				}
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			st.Sites++
			if err != nil {
				st.SiteErrors = append(st.SiteErrors, fmt.Sprintf("%s: %v", sid, err))
				return
			}
			st.Manifests += len(ids)
			for _, id := range ids {
				found[id] = append(found[id], sid)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.Sort(st.SiteErrors)
	if len(st.SiteErrors) == st.Sites && st.Sites > 0 {
		return nil, fmt.Errorf("rebuild: no site could be listed: %v", st.SiteErrors)
	}
	return found, nil
}

// fetchManifest reads and verifies a version's manifest from the first of
// sites that holds an intact copy.
func (e *Engine) fetchManifest(ctx context.Context, id manifest.ID, sites []string) (*manifest.Manifest, []byte, int) {
	corrupt := 0
	for _, sid := range sites {
		s, ok := e.site(sid)
		if !ok {
			continue
		}
		env, err := readEnvelope(ctx, s.Store, manifest.BlobName(id))
		if err == nil {
			var m *manifest.Manifest
			m, err = manifest.Open(env, e.k())
			if err == nil && m.Version != id {
				err = fmt.Errorf("%w: blob %s holds version %s", manifest.ErrCorrupt, id, m.Version)
			}
			if err == nil {
				// A copy elsewhere may be a newer revision (a lock,
				// label or key change), or this one a replayed older
				// one: take the highest revision among all copies.
				return e.newestCopy(ctx, id, sites, m, env, corrupt)
			}
		}
		if errors.Is(err, manifest.ErrCorrupt) {
			corrupt++
		}
		e.log.WarnContext(ctx, "manifest copy unusable", "site", sid, "version", id, "err", err)
	}
	return nil, nil, corrupt
}

// readEnvelope reads the envelope at the start of a manifest blob.
func readEnvelope(ctx context.Context, s site.Site, name string) ([]byte, error) {
	const guess = 16 << 10
	rc, err := s.Get(ctx, name, 0, guess)
	if err != nil {
		return nil, err
	}
	head, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	n, err := manifest.EnvelopeLen(head)
	if err != nil {
		return nil, err
	}
	if n <= len(head) {
		return head[:n], nil
	}
	rc, err = s.Get(ctx, name, 0, int64(n))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	env, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if len(env) != n {
		return nil, fmt.Errorf("%w: manifest blob %s truncated", manifest.ErrCorrupt, name)
	}
	return env, nil
}

// readable returns why a version cannot be read from the sites, or "".
// withManifest lists the sites holding a copy of its manifest.
func (e *Engine) readable(ctx context.Context, m *manifest.Manifest, withManifest []string) string {
	if m.DeleteMarker {
		return ""
	}
	for _, p := range m.Parts {
		have := 0
		for i, sid := range p.Sites {
			if p.Inline {
				if slices.Contains(withManifest, sid) {
					have++
				}
				continue
			}
			s, ok := e.site(sid)
			if !ok {
				continue
			}
			g := geometry{k: m.K, m: m.M, stripe: m.StripeSize, size: p.Size}
			if info, err := s.Store.Stat(ctx, manifest.ShardBlobName(p.Blob, i)); err == nil && info.Size == g.blobSize() {
				have++
			}
		}
		if have < m.K {
			return fmt.Sprintf("part %d has %d of %d needed shards", p.Number, have, m.K)
		}
	}
	return ""
}

// newestCopy reads every copy of a rewritten manifest and returns the one
// with the highest revision.
func (e *Engine) newestCopy(ctx context.Context, id manifest.ID, sites []string, best *manifest.Manifest, bestEnv []byte, corrupt int) (*manifest.Manifest, []byte, int) {
	for _, sid := range sites {
		s, ok := e.site(sid)
		if !ok {
			continue
		}
		env, err := readEnvelope(ctx, s.Store, manifest.BlobName(id))
		if err != nil {
			continue
		}
		m, err := manifest.Open(env, e.k())
		if err != nil {
			if errors.Is(err, manifest.ErrCorrupt) {
				corrupt++
			}
			continue
		}
		if m.Version == id && m.Revision > best.Revision {
			best, bestEnv = m, env
		}
	}
	return best, bestEnv, corrupt
}
