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
// sites (the id and which sites hold a copy: about 56 bytes on a node of
// up to 63 sites, see foundSets) and works through them in batches, so it
// does not hold envelopes or results for all versions at once.

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

// wideSet is a set of up to maxSites site indexes, plus a flag for
// "indexed".
type wideSet struct {
	bits    [maxSites / 64]uint64
	indexed bool
}

// foundSets maps each version id found on the sites to the set of sites
// holding a copy of its manifest, and whether the rebuild indexed it. On
// a node of up to 63 sites (nearly all) an entry is one word beside its
// id: a million versions take about 56 MB with the map's overhead
// (TestRebuildStateAtAMillion); larger nodes about 134 MB.
type foundSets struct {
	narrow map[manifest.ID]uint64 // bit 63: indexed
	wide   map[manifest.ID]wideSet
}

const narrowIndexed = 1 << 63

func newFoundSets(sites int) *foundSets {
	if sites < 64 {
		return &foundSets{narrow: map[manifest.ID]uint64{}}
	}
	return &foundSets{wide: map[manifest.ID]wideSet{}}
}

func (f *foundSets) len() int {
	if f.narrow != nil {
		return len(f.narrow)
	}
	return len(f.wide)
}

func (f *foundSets) add(id manifest.ID, i int) {
	if f.narrow != nil {
		f.narrow[id] |= 1 << i
		return
	}
	s := f.wide[id]
	s.bits[i/64] |= 1 << (i % 64)
	f.wide[id] = s
}

// sites returns the sites holding a copy of id's manifest, and whether id
// was found at all.
func (f *foundSets) sites(id manifest.ID, ids []string) ([]string, bool) {
	var out []string
	if f.narrow != nil {
		b, ok := f.narrow[id]
		for i, sid := range ids {
			if b&(1<<i) != 0 {
				out = append(out, sid)
			}
		}
		return out, ok
	}
	s, ok := f.wide[id]
	for i, sid := range ids {
		if s.bits[i/64]&(1<<(i%64)) != 0 {
			out = append(out, sid)
		}
	}
	return out, ok
}

func (f *foundSets) setIndexed(id manifest.ID) {
	if f.narrow != nil {
		f.narrow[id] |= narrowIndexed
		return
	}
	s := f.wide[id]
	s.indexed = true
	f.wide[id] = s
}

func (f *foundSets) indexed(id manifest.ID) bool {
	if f.narrow != nil {
		return f.narrow[id]&narrowIndexed != 0
	}
	return f.wide[id].indexed
}

// all yields every id found. Values may be changed while it runs.
func (f *foundSets) all(yield func(manifest.ID) bool) {
	if f.narrow != nil {
		for id := range f.narrow {
			if !yield(id) {
				return
			}
		}
		return
	}
	for id := range f.wide {
		if !yield(id) {
			return
		}
	}
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
	done, total := 0, found.len()
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
		ok         bool
	}
	// The ids are taken from the set in batches as they come (no second
	// copy of them is held); marking one indexed does not disturb the walk.
	batch := make([]manifest.ID, 0, chunk)
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
					id := batch[i]
					r := &results[i]
					if ev.deleted(id) {
						r.deleted = true
						continue
					}
					onSites, _ := found.sites(id, siteIDs)
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
				found.setIndexed(batch[i])
			}
		}
		if err := k.ix.PutMany(ctx, vs); err != nil {
			return err
		}
		done += len(batch)
		if progress != nil {
			progress(done, total)
		}
		batch = batch[:0]
		return nil
	}
	for id := range found.all {
		if batch = append(batch, id); len(batch) == chunk {
			if err := process(); err != nil {
				return st, err
			}
		}
	}
	if len(batch) > 0 {
		if err := process(); err != nil {
			return st, err
		}
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
func (k *Keeper) reconcileIndex(ctx context.Context, found *foundSets, siteIDs []string, ev *records, st *RebuildStats) error {
	for _, vname := range k.indexedVaults(ctx) {
		vo := index.VersionOptions{Max: index.MaxList}
		for {
			page, err := k.ix.Versions(ctx, vname, vo)
			if err != nil {
				return err
			}
			for _, x := range page.Versions {
				if found.indexed(x.ID) {
					continue
				}
				onSites, _ := found.sites(x.ID, siteIDs)
				keep := false
				why := "no copy of its manifest verifies on any site"
				if ev.deleted(x.ID) {
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
func (k *Keeper) scanManifests(ctx context.Context, siteIDs []string, st *RebuildStats) (*foundSets, error) {
	found := newFoundSets(len(siteIDs))
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
