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
// Memory: the rebuild holds one small entry per version id found on the
// sites (the id and which sites hold a copy, about 60 bytes) and works
// through them in sorted batches, so it does not hold envelopes or results
// for all versions at once.

// RebuildStats reports an index rebuild.
type RebuildStats struct {
	Sites        int      `json:"sites"`             // sites listed
	SiteErrors   []string `json:"site_errors"`       // sites that could not be listed, with the error
	Manifests    int      `json:"manifests"`         // manifest copies found
	Versions     int      `json:"versions"`          // versions indexed from the sites
	Markers      int      `json:"delete_markers"`    // of which delete markers
	Corrupt      int      `json:"corrupt"`           // manifest copies that failed verification
	Kept         int      `json:"kept_from_index"`   // versions no site copy verifies, kept from the index's verified envelope
	Deleted      int      `json:"deleted_by_record"` // versions found on the sites that the node recorded as deleted: not indexed
	Unreadable   []string `json:"unreadable"`        // versions left out: fewer than k shards of some part (at most MaxListed)
	Unrestored   int      `json:"unrestored"`        // how many versions were left out
	UnknownVault int      `json:"unknown_vault"`
}

// rebuildMarker is implemented by indexes that can flag a rebuild in
// progress, so that an interrupted rebuild is noticed on the next start.
type rebuildMarker interface {
	SetRebuilding(bool) error
}

// maxSites bounds the sites a rebuild tracks per version.
const maxSites = 256

// siteSet is a set of site indexes, plus a flag for "indexed".
type siteSet struct {
	bits    [maxSites / 64]uint64
	indexed bool
}

func (s *siteSet) add(i int)      { s.bits[i/64] |= 1 << (i % 64) }
func (s *siteSet) has(i int) bool { return s.bits[i/64]&(1<<(i%64)) != 0 }
func (s *siteSet) sites(ids []string) []string {
	var out []string
	for i, id := range ids {
		if s.has(i) {
			out = append(out, id)
		}
	}
	return out
}

// RebuildIndex makes the index agree with the manifests on the sites.
// progress, if set, is called as versions are processed.
func (k *Keeper) RebuildIndex(ctx context.Context, progress func(done, total int)) (RebuildStats, error) {
	ctx = vault.AsSystem(ctx)
	var st RebuildStats
	siteIDs := k.e.SiteIDs()
	if len(siteIDs) > maxSites {
		return st, fmt.Errorf("rebuild: %d sites configured; at most %d supported", len(siteIDs), maxSites)
	}
	found, err := k.scanManifests(ctx, siteIDs, &st)
	if err != nil {
		return st, err
	}
	ev, err := k.loadEvidence(ctx)
	if err != nil {
		return st, err
	}
	if rm, ok := k.ix.(rebuildMarker); ok {
		if err := rm.SetRebuilding(true); err != nil {
			return st, err
		}
	}
	ids := make([]manifest.ID, 0, len(found))
	for id := range found {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b manifest.ID) int { return slices.Compare(a[:], b[:]) })

	done := 0
	const chunk = 2000
	type result struct {
		v          index.Version
		unreadable string
		corrupt    int
		deleted    bool
		fromIndex  bool
		ok         bool
	}
	for lo := 0; lo < len(ids); lo += chunk {
		batch := ids[lo:min(lo+chunk, len(ids))]
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
					id := batch[i]
					r := &results[i]
					if ev.deleted(id) {
						r.deleted = true
						continue
					}
					set := found[id]
					m, env, corrupt, err := k.newestManifest(ctx, id, set.sites(siteIDs))
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
					if why := k.readable(ctx, m, set.sites(siteIDs)); why != "" {
						r.unreadable = fmt.Sprintf("%s/%s version %s: %s", m.Vault, m.Key, id, why)
						continue
					}
					r.ok, r.v = true, indexVersion(m, env)
				}
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return st, err
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
				s := found[batch[i]]
				s.indexed = true
				found[batch[i]] = s
			}
		}
		if err := k.ix.PutMany(ctx, vs); err != nil {
			return st, err
		}
		done += len(batch)
		if progress != nil {
			progress(done, len(ids))
		}
	}
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
			if err := gi.MarkStale(ctx, why); err != nil {
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
func (k *Keeper) reconcileIndex(ctx context.Context, found map[manifest.ID]siteSet, siteIDs []string, ev *records, st *RebuildStats) error {
	for _, vname := range k.indexedVaults(ctx) {
		vo := index.VersionOptions{Max: index.MaxList}
		for {
			page, err := k.ix.Versions(ctx, vname, vo)
			if err != nil {
				return err
			}
			for _, x := range page.Versions {
				set, onSites := found[x.ID]
				if onSites && set.indexed {
					continue
				}
				keep := false
				why := "no copy of its manifest verifies on any site"
				if ev.deleted(x.ID) {
					why = "deleted by the node's record"
				} else if m, _, err := k.manifest(ctx, x); err == nil {
					if r := k.readable(ctx, m, set.sites(siteIDs)); r == "" {
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
				if !ev.deleted(x.ID) {
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

// scanManifests lists every site's manifest blobs.
func (k *Keeper) scanManifests(ctx context.Context, siteIDs []string, st *RebuildStats) (map[manifest.ID]siteSet, error) {
	found := map[manifest.ID]siteSet{}
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
					set := found[id]
					set.add(si)
					found[id] = set
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
		return nil, err
	}
	slices.Sort(st.SiteErrors)
	if len(st.SiteErrors) == st.Sites && st.Sites > 0 {
		return nil, fmt.Errorf("rebuild: no site could be listed: %v", st.SiteErrors)
	}
	return found, nil
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
