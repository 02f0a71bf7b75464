package housekeeping

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// An index rebuild makes the index agree with the sites: every version
// whose newest verified manifest is on some site and that has at least k
// shards in every part is indexed at that revision. It does not start from
// an empty index: versions the index holds that no site copy verifies (every
// copy damaged) are kept when the index's own envelope verifies and their
// shards are there, so that a rebuild never drops a version whose data is
// intact while any verified copy of its manifest exists. Versions the
// sites record as deleted are never brought back.
//
// Memory: the rebuild keeps its per-version state (each version id found
// on the sites, which sites hold a copy, the revision the audit log
// records, whether it was indexed) on disk, in a rebuildScratch, and works
// through it in batches, and the node's deletion records in the same
// scratch space (records), so its heap does not grow with the number of
// versions or of deletions.

// RebuildStats reports an index rebuild.
type RebuildStats struct {
	Sites      int      `json:"sites"`             // sites listed
	SiteErrors []string `json:"site_errors"`       // sites that could not be listed, with the error
	Manifests  int      `json:"manifests"`         // manifest copies found
	Versions   int      `json:"versions"`          // versions indexed from the sites
	Markers    int      `json:"delete_markers"`    // of which delete markers
	Corrupt    int      `json:"corrupt"`           // manifest copies that failed verification
	Kept       int      `json:"kept_from_index"`   // versions no site copy verifies, kept from the index's verified envelope
	Deleted    int      `json:"deleted_by_record"` // versions found on the sites that the node recorded as deleted: not indexed
	Unreadable []string `json:"unreadable"`        // versions left out: fewer than k shards of some part (at most MaxListed)
	Unrestored int      `json:"unrestored"`        // how many versions were left out
	// RolledBack counts versions left out because the newest copy found
	// is older than the revision the audit log records.
	RolledBack   int `json:"rolled_back"`
	UnknownVault int `json:"unknown_vault"`
	// Meanwhile counts versions read from the sites that a change
	// committed while the rebuild ran (a newer revision indexed, or a
	// deletion) made the rebuild leave as the index holds them.
	Meanwhile int `json:"changed_meanwhile"`
}

// testHookRebuilding, when set, is called with each batch of versions the
// rebuild read from the sites, before it indexes them.
var testHookRebuilding func([]index.Version)

// rebuildMarker is implemented by indexes that can flag a rebuild in
// progress, so that an interrupted rebuild is noticed on the next start.
type rebuildMarker interface {
	SetRebuilding(bool) error
}

// maxSites bounds the sites a rebuild tracks per version.
const maxSites = 256

// RebuildIndex makes the index agree with the manifests on the sites.
// progress, if set, is called as versions are processed.
func (k *Keeper) RebuildIndex(ctx context.Context, progress func(done, total int)) (RebuildStats, error) {
	rep, err := k.rebuildIndex(ctx, progress)
	k.record(ctx, "index.rebuild", rep, err)
	return rep, err
}

func (k *Keeper) rebuildIndex(ctx context.Context, progress func(done, total int)) (RebuildStats, error) {
	ctx = vault.AsSystem(ctx)
	var st RebuildStats
	siteIDs := k.e.SiteIDs()
	if len(siteIDs) > maxSites {
		return st, fmt.Errorf("rebuild: %d sites configured; at most %d supported", len(siteIDs), maxSites)
	}
	sp, cleanup, err := k.scratch("rebuild")
	if err != nil {
		return st, err
	}
	defer cleanup()
	found, err := newSiteScratch(sp, len(siteIDs))
	if err != nil {
		return st, err
	}
	defer found.close()
	if err := k.scanManifests(ctx, siteIDs, found, &st); err != nil {
		return st, err
	}
	ev, err := k.loadRecords(ctx, sp, found.addRevision)
	if err != nil {
		return st, err
	}
	defer ev.close()
	// Everything the rebuild writes to its scratch space is written
	// here, before the index is touched: a full disk fails the rebuild
	// with the index as it was.
	if err := found.finish(); err != nil {
		return st, err
	}
	if rm, ok := k.ix.(rebuildMarker); ok {
		if err := rm.SetRebuilding(true); err != nil {
			return st, err
		}
	}
	done, total := 0, int(found.found)
	// A batch of 500 holds half the heap of one of 2,000 (bbolt's dirty
	// pages and the envelopes in flight) at the same rate (measured at
	// 30 000 versions: peak heap 31 against 60 MiB).
	const chunk = 500
	type result struct {
		v          index.Version
		unreadable string
		corrupt    int
		deleted    bool
		fromIndex  bool
		rolledBack bool
		ok         bool
	}
	// The records are read from the scratch a batch at a time, in id
	// order; batch holds the offsets of those found on some site, and
	// the "indexed" flags are written back in place.
	rec := found.rec
	buf := make([]byte, chunk*rec)
	var recs []byte
	batch := make([]int, 0, chunk)
	process := func() error {
		results := make([]result, len(batch))
		var next int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for {
					mu.Lock()
					i := next
					next++
					mu.Unlock()
					if i >= len(batch) || ctx.Err() != nil {
						return
					}
					fr := recs[batch[i] : batch[i]+rec]
					id := manifest.ID(fr[:16])
					r := &results[i]
					if ev.deleted(id) {
						r.deleted = true
						continue
					}
					onSites := found.sitesOf(fr, siteIDs)
					m, env, corrupt, err := k.newestManifest(ctx, id, onSites)
					r.corrupt = corrupt
					if err != nil {
						if lk, ok := k.ix.(lookupIndex); ok {
							if _, err := lk.Lookup(ctx, id); err == nil {
								// The index holds it: judged below, from
								// the index's envelope.
								r.deleted = false
								r.fromIndex = true
								continue
							}
						}
						r.unreadable = fmt.Sprintf("version %s: no copy of its manifest verifies", id)
						continue
					}
					// A newer revision in the index is kept; one older
					// than the audit log records is a rollback, never
					// indexed (it could hide a later hold, label or
					// rotation).
					if cur, err := k.ix.Get(ctx, m.Vault, m.Key, id); err == nil {
						if cm, err := k.e.OpenEnvelope(cur.Envelope); err == nil && cm.Version == id && cm.Revision > m.Revision {
							m, env = cm, cur.Envelope
						}
					}
					if want := found.revision(fr); m.Revision < want {
						r.unreadable = fmt.Sprintf("%s/%s version %s: ROLLED BACK: the audit log records revision %d, the newest copy found is revision %d (its blobs are kept; 'embassy audit verify' names the sites)", m.Vault, m.Key, id, want, m.Revision)
						r.rolledBack = true
						continue
					}
					if why := k.readable(ctx, m, onSites); why != "" {
						r.unreadable = fmt.Sprintf("%s/%s version %s: %s", m.Vault, m.Key, id, why)
						continue
					}
					r.ok, r.v = true, indexVersion(m, env)
				}
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
		// Nothing is indexed on records that could not be read.
		if err := ev.failed(); err != nil {
			return err
		}
		var vs []index.Version
		for i, r := range results {
			st.Corrupt += r.corrupt
			switch {
			case r.deleted:
				st.Deleted++
			case r.fromIndex:
			case !r.ok:
				st.Unrestored++
				if r.rolledBack {
					st.RolledBack++
				}
				if len(st.Unreadable) < MaxListed {
					st.Unreadable = append(st.Unreadable, r.unreadable)
				}
			default:
				st.Versions++
				if r.v.DeleteMarker {
					st.Markers++
				}
				if _, err := k.e.Vault(r.v.Vault); err != nil {
					st.UnknownVault++
				}
				vs = append(vs, r.v)
				recs[batch[i]+rec-1] |= recIndexed
			}
		}
		// Under the versions' locks: a change committed since they were
		// read is not undone (vault.IndexRebuilt).
		if testHookRebuilding != nil {
			testHookRebuilding(vs)
		}
		left, err := k.e.IndexRebuilt(ctx, vs, ev.logNext)
		if err != nil {
			return err
		}
		st.Meanwhile += left
		st.Versions -= left
		done += len(batch)
		if progress != nil {
			progress(done, total)
		}
		return nil
	}
	for from := int64(0); from < found.count; from += chunk {
		n := int(min(chunk, found.count-from))
		if recs, err = found.read(buf, from, n); err != nil {
			return st, err
		}
		batch = batch[:0]
		for i := range n {
			// Records of versions found on no site (named only by the
			// audit log) are not rebuilt from.
			if !allZero(found.siteBits(recs[i*rec:])) {
				batch = append(batch, i*rec)
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := process(); err != nil {
			return st, err
		}
		if err := found.write(recs, from); err != nil {
			return st, err
		}
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	slices.Sort(st.Unreadable)
	// What the index holds that no site copy gave: keep it when its own
	// envelope verifies, the node has no record of its deletion and its
	// shards are there; otherwise drop it.
	if err := k.reconcileIndex(ctx, found, siteIDs, ev, &st); err != nil {
		return st, err
	}
	// The index now agrees with the sites: it is as new as they are.
	if gi, ok := k.ix.(vault.GenerationIndex); ok {
		stores := map[string]site.Site{}
		for _, sid := range siteIDs {
			s, _ := k.e.Site(sid)
			stores[sid] = s.Store
		}
		onSites, _ := evidenceGenerations(ctx, stores, k)
		if err := gi.SetGenerations(ctx, onSites); err != nil {
			return st, err
		}
		if len(st.SiteErrors) > 0 {
			// What the unlisted sites hold is not in the index: it is not
			// a complete picture until a rebuild sees every site.
			why := fmt.Sprintf("the index was rebuilt while %d site(s) could not be listed (%s); rebuild it again once every site answers", len(st.SiteErrors), strings.Join(st.SiteErrors, "; "))
			if err := gi.MarkStale(ctx, index.StaleIncomplete, why); err != nil {
				return st, err
			}
		}
	}
	if rm, ok := k.ix.(rebuildMarker); ok {
		if err := rm.SetRebuilding(false); err != nil {
			return st, err
		}
	}
	k.e.Events.ManifestErrors.Add(int64(st.Corrupt))
	return st, nil
}

// reconcileIndex walks the index for versions the rebuild did not index
// from the sites.
func (k *Keeper) reconcileIndex(ctx context.Context, found *rebuildScratch, siteIDs []string, ev *records, st *RebuildStats) error {
	for _, vname := range k.indexedVaults(ctx) {
		vo := index.VersionOptions{Max: index.MaxList}
		for {
			page, err := k.ix.Versions(ctx, vname, vo)
			if err != nil {
				return err
			}
			for _, x := range page.Versions {
				fr, err := found.lookup(x.ID)
				if err != nil {
					return err
				}
				if fr != nil && fr[found.rec-1]&recIndexed != 0 {
					continue
				}
				var onSites []string
				if fr != nil {
					onSites = found.sitesOf(fr, siteIDs)
				}
				keep := false
				why := "no copy of its manifest verifies on any site"
				deleted := ev.deleted(x.ID)
				if err := ev.failed(); err != nil {
					return err
				}
				if deleted {
					why = "deleted by the node's record"
				} else if m, _, err := k.manifest(ctx, x); err == nil {
					if r := k.readable(ctx, m, onSites); r == "" {
						keep = true
					} else {
						why = r
					}
				}
				if keep {
					st.Kept++
					k.log.WarnContext(ctx, "rebuild: kept from the index, every site copy damaged or missing; scrub --repair rewrites them", "vault", x.Vault, "key", x.Key, "version", x.ID)
					continue
				}
				if err := k.ix.Delete(ctx, x.Vault, x.Key, x.ID); err != nil {
					return err
				}
				if !deleted {
					st.Unrestored++
					if len(st.Unreadable) < MaxListed {
						st.Unreadable = append(st.Unreadable, fmt.Sprintf("%s/%s version %s: %s", x.Vault, x.Key, x.ID, why))
					}
				}
			}
			if !page.Truncated {
				break
			}
			vo.KeyMarker, vo.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
		}
	}
	return nil
}

// vaultLister is implemented by indexes that can name every vault they
// hold versions of, configured or not.
type vaultLister interface {
	VaultNames(ctx context.Context) ([]string, error)
}

// indexedVaults returns the vaults the index holds versions of.
func (k *Keeper) indexedVaults(ctx context.Context) []string {
	var names []string
	if vl, ok := k.ix.(vaultLister); ok {
		if n, err := vl.VaultNames(ctx); err == nil {
			names = n
		}
	}
	for _, v := range k.e.Vaults() {
		if !slices.Contains(names, v.Name) {
			names = append(names, v.Name)
		}
	}
	slices.Sort(names)
	return names
}

// scanManifests lists every site's manifest blobs into found.
func (k *Keeper) scanManifests(ctx context.Context, siteIDs []string, found *rebuildScratch, st *RebuildStats) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for si, sid := range siteIDs {
		s, _ := k.e.Site(sid)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			n := 0
			var local []manifest.ID
			flush := func() {
				mu.Lock()
				for _, id := range local {
					found.add(id, si)
				}
				mu.Unlock()
				local = local[:0]
			}
			err := s.Store.List(ctx, manifest.ManifestPrefix, func(i site.Info) error {
				if id, ok := manifest.ParseBlobName(i.Name); ok {
					local = append(local, id)
					n++
					if len(local) == 4096 {
						flush()
					}
				}
				return nil
			})
			flush()
			mu.Lock()
			defer mu.Unlock()
			st.Sites++
			if err != nil {
				st.SiteErrors = append(st.SiteErrors, fmt.Sprintf("%s: %v", sid, err))
				return
			}
			st.Manifests += n
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if found.err != nil {
		return found.err
	}
	slices.Sort(st.SiteErrors)
	if len(st.SiteErrors) == st.Sites && st.Sites > 0 {
		return fmt.Errorf("rebuild: no site could be listed: %v", st.SiteErrors)
	}
	return nil
}

// errNoCopy: no copy of a manifest verifies.
var errNoCopy = errors.New("no copy of the manifest verifies")

// newestManifest reads every copy of a version's manifest on sites and
// returns the verified one with the highest revision, so that a site
// replaying an older revision cannot hide a later lock, relabel or
// rotation. It also returns how many copies were damaged.
func (k *Keeper) newestManifest(ctx context.Context, id manifest.ID, sites []string) (*manifest.Manifest, []byte, int, error) {
	var best *manifest.Manifest
	var bestEnv []byte
	corrupt := 0
	for _, sid := range sites {
		s, ok := k.e.Site(sid)
		if !ok {
			continue
		}
		env, err := vault.ReadEnvelope(ctx, s.Store, manifest.BlobName(id))
		if err != nil {
			if errors.Is(err, manifest.ErrCorrupt) {
				corrupt++
			}
			continue
		}
		m, err := k.e.OpenEnvelope(env)
		if err == nil && m.Version != id {
			err = fmt.Errorf("%w: blob %s holds version %s", manifest.ErrCorrupt, id, m.Version)
		}
		if err != nil {
			if errors.Is(err, manifest.ErrCorrupt) {
				corrupt++
			}
			k.log.WarnContext(ctx, "manifest copy unusable", "site", sid, "version", id, "err", err)
			continue
		}
		if best == nil || m.Revision > best.Revision {
			best, bestEnv = m, env
		}
	}
	if best == nil {
		return nil, nil, corrupt, errNoCopy
	}
	return best, bestEnv, corrupt, nil
}

// readable returns why a version cannot be read from the sites, or "".
// withManifest lists the sites holding a copy of its manifest.
func (k *Keeper) readable(ctx context.Context, m *manifest.Manifest, withManifest []string) string {
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
			s, ok := k.e.Site(sid)
			if !ok {
				continue
			}
			if info, err := s.Store.Stat(ctx, manifest.ShardBlobName(p.Blob, i)); err == nil && info.Size == vault.ShardBlobSize(m, p) {
				have++
			}
		}
		if have < m.K {
			return fmt.Sprintf("part %d has %d of %d needed shards", p.Number, have, m.K)
		}
	}
	return ""
}
