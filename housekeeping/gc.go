package housekeeping

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// Garbage collection removes a blob only when the node can show that it is
// garbage (DESIGN.md invariant 10):
//
//   - the node's signed deletion record of its version (a version delete
//     writes it to every site holding the version before it commits), for
//     the version's manifest copies and the shard blobs the record names;
//   - the node's signed record that the blob was abandoned: written by the
//     engine when its own write failed, when a multipart part was replaced
//     or left out of a completed upload, when an upload was aborted, and
//     when a repair or a drain moved a shard elsewhere (then for that site
//     only, and only while the newest revision of the version, from the
//     index and every copy on the sites, does not place the shard there);
//   - the node's intent record of a write older than the grace period whose
//     version has no manifest copy on any site (every site answering) and no
//     index entry: the write never committed. Collection first records the
//     abandonment, then removes the blobs.
//
// Nothing else is removed. "The index does not know it" is not evidence:
// indexes go stale, get restored from backups, and sites get mounted late.
// A manifest on the sites that the index does not hold is adopted into the
// index when it was written by a node that records deletions (the
// manifest's journaled flag), is not recorded as deleted or abandoned, is
// older than the grace period, and has at least k shards in every part; it
// is reported and kept otherwise (older data: 'embassy index adopt').
//
// Collection refuses to run when the index is older than the sites (its
// commit generations are below those the sites show, or an earlier check
// marked it stale): run 'embassy index rebuild' first. Sites that do not
// answer, or whose identity marker is wrong, are skipped: nothing on them
// is touched.

// DefaultGrace is how old a blob must be before garbage collection
// considers it unexplained by a record: a younger one may belong to a
// write still in flight.
const DefaultGrace = time.Hour

// removalsInFlight bounds the removals collection runs at once on one site.
const removalsInFlight = 16

// CollectOptions configure garbage collection.
type CollectOptions struct {
	// Grace: 0 means DefaultGrace.
	Grace time.Duration
}

// Collection reports what garbage collection found and did.
type Collection struct {
	Ran bool `json:"ran"`
	// Refused says why collection did not run, for a person; Reason says
	// it for programs (and the CLI's hints).
	Refused string        `json:"refused,omitempty"`
	Reason  RefusalReason `json:"refused_reason,omitempty"`
	// Removed counts blobs removed, each covered by a record.
	Removed int `json:"removed"`
	// Abandoned counts writes found abandoned (an intent older than the
	// grace period, no manifest anywhere) and recorded as such.
	Abandoned int `json:"abandoned_writes"`
	// Adopted counts versions found on the sites but not in the index,
	// and indexed.
	Adopted int `json:"adopted"`
	// Unindexed counts versions with a manifest on the sites that the
	// index does not hold and that were kept without being adopted;
	// Legacy counts those among them written before the node recorded
	// deletions ('embassy index adopt' takes them in).
	Unindexed         int      `json:"unindexed"`
	Legacy            int      `json:"legacy"`
	UnindexedVersions []string `json:"unindexed_versions"` // at most MaxListed, with why
	// Inconsistent lists versions the index holds although a record says
	// they were deleted (kept; at most MaxListed).
	Inconsistent []string `json:"inconsistent"`
	// SkippedSites lists sites not collected on, with why.
	SkippedSites []string `json:"skipped_sites"`
	// BadBatches counts journal batches that failed verification (not
	// evidence; reported).
	BadBatches int `json:"bad_journal_batches"`
	// Errors lists what went wrong, the first collectErrorsListed;
	// ErrorsNotListed counts the others (a site that fails every
	// removal fails one for each blob to remove there).
	Errors          []string `json:"errors"`
	ErrorsNotListed int      `json:"errors_not_listed"`
}

// RefusalReason says why garbage collection refused to run (Collection's
// Reason), in a form that does not change with the wording of Refused.
type RefusalReason string

const (
	// RefusedIndexBehind: the index is older than the sites (restored from
	// a backup, or copied from another machine): it may hold versions
	// deleted since it was current, which a scrub then lists as lost. Run
	// 'embassy index rebuild'.
	RefusedIndexBehind RefusalReason = "index_behind_sites"
	// RefusedIndexStale: the index is marked stale for another reason (it
	// was rebuilt while sites could not be listed). Run 'embassy index
	// rebuild' once every site answers.
	RefusedIndexStale RefusalReason = "index_stale"
	// RefusedIndexWithoutLookup: the index cannot find a version by its
	// id alone, which collection needs.
	RefusedIndexWithoutLookup RefusalReason = "index_without_lookup"
)

// collectErrorsListed bounds Collection.Errors (a variable for tests).
var collectErrorsListed = MaxListed

// addError adds an error to c.Errors, or counts it when the list is full.
// The caller holds any lock on c.
func (c *Collection) addError(format string, a ...any) {
	if len(c.Errors) < collectErrorsListed {
		c.Errors = append(c.Errors, fmt.Sprintf(format, a...))
	} else {
		c.ErrorsNotListed++
	}
}

// lookupIndex is implemented by indexes that find a version by id alone.
type lookupIndex interface {
	Lookup(ctx context.Context, id manifest.ID) (index.Version, error)
}

// loadEvidence reads every evidence record on the node's audit log, and
// every journal batch (written before the audit log took the records
// over) on every site that answers, into scratch files in sp.
func (k *Keeper) loadEvidence(ctx context.Context, sp *scratchSpace) (*records, error) {
	return k.loadRecords(ctx, sp, nil)
}

// loadRecords is loadEvidence for a rebuild when revision is set: it calls
// revision with every revision of a version the audit log records (a
// rebuild never takes an older one), and keeps only the deleted versions
// (what a rebuild asks of the records).
// Otherwise it keeps deletions, abandonments, intents and upload ends.
// Every byte of scratch the records take is written when it returns.
func (k *Keeper) loadRecords(ctx context.Context, sp *scratchSpace, revision func(id manifest.ID, rev int)) (*records, error) {
	ev, err := newRecords(sp, revision != nil)
	if err != nil {
		return nil, err
	}
	if err := k.readRecords(ctx, ev, revision); err != nil {
		ev.close()
		return nil, err
	}
	if err := ev.finish(); err != nil {
		ev.close()
		return nil, err
	}
	return ev, nil
}

func (k *Keeper) readRecords(ctx context.Context, ev *records, revision func(id manifest.ID, rev int)) error {
	var err error
	if l := k.e.AuditLog(); l != nil {
		err = l.Events(ctx, 0, func(i uint64, e audit.Event) error {
			ev.logNext = i + 1
			r, isRecord, rerr := evidence.FromEvent(e)
			switch {
			case rerr != nil:
				ev.bad++
				k.log.WarnContext(ctx, "audit log entry carries a damaged record; not evidence", "entry", i, "err", rerr)
			case isRecord:
				ev.add(r)
			case revision != nil && e.Outcome == "" && !e.Version.IsZero() && strings.HasPrefix(e.Kind, "object."):
				revision(e.Version, e.Revision)
			}
			return ev.failed()
		})
	}
	if err != nil {
		return fmt.Errorf("read the records on the audit log: %w", err)
	}
	var sites []legacySite
	for _, sid := range k.e.SiteIDs() {
		s, _ := k.e.Site(sid)
		sites = append(sites, legacySite{id: sid, store: s.Store})
	}
	return readLegacy(ctx, ev, sites, k.e.Keys(), k.e.NodeID(), k.log)
}

// checkFresh returns why the index is stale (older than the sites, or
// rebuilt without all of them) and the kind of it, or "".
func (k *Keeper) checkFresh(ctx context.Context) (index.StaleKind, string, error) {
	gi, ok := k.ix.(vault.GenerationIndex)
	if !ok {
		return "", "", nil
	}
	if kind, why, err := gi.Stale(ctx); err != nil || why != "" {
		return kind, why, err
	}
	ix, err := gi.Generations(ctx)
	if err != nil {
		return "", "", err
	}
	stores := map[string]site.Site{}
	for _, sid := range k.e.SiteIDs() {
		s, _ := k.e.Site(sid)
		stores[sid] = s.Store
	}
	onSites, where := evidenceGenerations(ctx, stores, k)
	if behind := vault.Behind(ix, onSites, where); behind != "" {
		why := "the index is older than the sites (" + behind + ")"
		if err := gi.MarkStale(ctx, index.StaleBehind, why); err != nil {
			return index.StaleBehind, why, err
		}
		return index.StaleBehind, why, nil
	}
	return "", "", nil
}

func evidenceGenerations(ctx context.Context, stores map[string]site.Site, k *Keeper) (map[string]uint64, map[string]string) {
	return evidence.ReadGenerations(ctx, stores, k.e.Keys(), k.e.NodeID())
}

// Collect runs garbage collection over every site that answers.
func (k *Keeper) Collect(ctx context.Context, o CollectOptions) (Collection, error) {
	rep, err := k.collect(ctx, o)
	k.record(ctx, "gc.collect", rep, err)
	return rep, err
}

func (k *Keeper) collect(ctx context.Context, o CollectOptions) (Collection, error) {
	ctx = vault.AsSystem(ctx)
	var c Collection
	grace := o.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	lk, ok := k.ix.(lookupIndex)
	if !ok {
		c.Refused, c.Reason = "the index cannot find versions by id", RefusedIndexWithoutLookup
		return c, nil
	}
	kind, why, err := k.checkFresh(ctx)
	if err != nil {
		return c, err
	}
	if why != "" {
		c.Refused = why + "; run 'embassy index rebuild' first"
		c.Reason = RefusedIndexStale
		if kind == index.StaleBehind {
			c.Reason = RefusedIndexBehind
		}
		return c, nil
	}
	unreachable := k.e.Unreachable(ctx)
	for _, sid := range slices.Sorted(maps.Keys(unreachable)) {
		c.SkippedSites = append(c.SkippedSites, sid+": does not answer or is not this node's site")
	}
	// The records, the manifests the index does not hold and the blobs
	// to remove are kept in scratch files: their heap does not grow with
	// them. Each step writes its scratch before it changes anything: a
	// full disk fails the collection, naming the directory, before it
	// removes a blob or adopts a version.
	sp, done, err := k.scratch("collect")
	if err != nil {
		return c, err
	}
	defer done()
	ev, err := k.loadEvidence(ctx, sp)
	if err != nil {
		return c, err
	}
	defer ev.close()
	c.BadBatches = ev.bad
	c.Ran = true
	now := time.Now()
	indexed := func(id manifest.ID) (index.Version, bool) {
		v, err := lk.Lookup(ctx, id)
		return v, err == nil
	}
	// Writes whose intent is older than the grace period and that left
	// no manifest anywhere never committed: record them abandoned.
	if err := k.resolveIntents(ctx, ev, indexed, unreachable, now.Add(-grace), &c); err != nil {
		return c, err
	}
	// The abandonments it recorded are sorted into files as they grow:
	// nothing is decided on them if one could not be written.
	if err := ev.failed(); err != nil {
		return c, err
	}

	// Every site is listed, and every scratch file written, before the
	// first removal; the manifests the index does not hold are adopted or
	// reported last.
	siteIDs := k.e.SiteIDs()
	unknown, doomed, err := k.listSites(ctx, sp, ev, siteIDs, unreachable, indexed, now, grace, &c)
	defer func() {
		if unknown != nil {
			unknown.close()
		}
		for _, d := range doomed {
			d.close()
		}
	}()
	if err != nil {
		return c, err
	}
	if err := k.removeDoomed(ctx, siteIDs, doomed, &c); err != nil {
		return c, err
	}
	return c, k.adoptUnknown(ctx, unknown, siteIDs, ev.logNext, &c)
}

// listSites lists every site that answers, in parallel, and sorts what it
// finds into scratch files in sp: each site's blobs the records show are
// garbage (doomed, by site; nil for a site not listed to the end, where
// nothing is removed), and the manifests the index does not hold
// (unknown: the sites holding a copy, and whether one is younger than
// grace). Every file is written when it returns without an error. The
// files are the caller's to close, error or not.
func (k *Keeper) listSites(ctx context.Context, sp *scratchSpace, ev *records, siteIDs []string, unreachable map[string]bool,
	indexed func(manifest.ID) (index.Version, bool), now time.Time, grace time.Duration, c *Collection) (*rebuildScratch, []*spool, error) {
	// Manifests the index does not hold, with the sites holding them.
	unknown, err := newSiteScratch(sp, len(siteIDs))
	if err != nil {
		return nil, nil, err
	}
	// Each site's blobs to remove.
	doomed := make([]*spool, len(siteIDs))
	for i, sid := range siteIDs {
		if !unreachable[sid] {
			if doomed[i], err = sp.newSpool(); err != nil {
				return unknown, doomed, err
			}
		}
	}
	var mu sync.Mutex
	var fatal error // a scratch file could not be written or read
	k.onSites(siteIDs, doomed, func(si int, sid string, s site.Site, d *spool) {
		for _, prefix := range []string{manifest.ManifestPrefix, manifest.ShardPrefix} {
			var ferr error
			err := s.List(ctx, prefix, func(i site.Info) error {
				br := ev.about(i.Name, sid)
				if k.garbage(ctx, br, sid, i.Name, indexed) {
					ferr = d.add([]byte(i.Name))
				} else if br.manifest && !br.deleted && len(br.abandoned) == 0 {
					if _, ok := indexed(br.version); !ok {
						var flags byte
						if now.Sub(i.Modified) < grace {
							flags = recYoung
						}
						mu.Lock()
						unknown.addFlags(br.version, si, flags)
						ferr = unknown.err
						mu.Unlock()
					}
				}
				if ferr == nil {
					ferr = ev.failed()
				}
				return ferr
			})
			if ferr != nil {
				err = ferr
			}
			if err != nil {
				mu.Lock()
				if ferr != nil {
					fatal = cmp.Or(fatal, ferr)
				} else {
					c.addError("list %s on site %s: %v (nothing removed there)", prefix, sid, err)
				}
				mu.Unlock()
				d.close()
				doomed[si] = nil
				return
			}
		}
		if err := d.finish(); err != nil {
			mu.Lock()
			fatal = cmp.Or(fatal, err)
			mu.Unlock()
		}
	})
	if fatal != nil {
		return unknown, doomed, fatal
	}
	return unknown, doomed, unknown.finish()
}

// removeDoomed removes each site's blobs in doomed (in parallel, several
// at once on each site), counting them in c and naming in c.Errors those
// that could not be removed.
func (k *Keeper) removeDoomed(ctx context.Context, siteIDs []string, doomed []*spool, c *Collection) error {
	var mu sync.Mutex
	var fatal error // a scratch file could not be read
	k.onSites(siteIDs, doomed, func(_ int, sid string, s site.Site, d *spool) {
		// Several removals at once: a dir site makes each durable
		// with an fsync of its directory, shared by the removals
		// waiting on it.
		var removed atomic.Int64
		var dw sync.WaitGroup
		sem := make(chan struct{}, removalsInFlight)
		err := d.each(func(b []byte) error {
			name := string(b)
			sem <- struct{}{}
			dw.Go(func() {
				defer func() { <-sem }()
				if err := s.Delete(ctx, name); err == nil {
					removed.Add(1)
				} else if !errors.Is(err, site.ErrRetained) {
					mu.Lock()
					c.addError("remove %s on site %s: %v", name, sid, err)
					mu.Unlock()
				}
			})
			return nil
		})
		dw.Wait()
		mu.Lock()
		c.Removed += int(removed.Load())
		if err != nil {
			fatal = cmp.Or(fatal, err)
		}
		mu.Unlock()
	})
	slices.Sort(c.Errors)
	return fatal
}

// onSites runs fn, in parallel, for each site of siteIDs whose spool in
// doomed is set (s is its store), and waits for them.
func (k *Keeper) onSites(siteIDs []string, doomed []*spool, fn func(si int, sid string, s site.Site, d *spool)) {
	var wg sync.WaitGroup
	for si, sid := range siteIDs {
		if d := doomed[si]; d != nil {
			s, _ := k.e.Site(sid)
			wg.Go(func() { fn(si, sid, s.Store, d) })
		}
	}
	wg.Wait()
}

// adoptUnknown adopts or reports, in id order, the manifests the index
// does not hold (unknown), leaving those with a young copy: a write may
// still be in flight.
func (k *Keeper) adoptUnknown(ctx context.Context, unknown *rebuildScratch, siteIDs []string, since uint64, c *Collection) error {
	return unknown.batches(500, func(recs []byte, _ int64) error {
		for r := range slices.Chunk(recs, unknown.rec) {
			if r[unknown.rec-1]&recYoung != 0 {
				continue // a write may still be in flight
			}
			res := k.adoptOne(ctx, manifest.ID(r[:16]), unknown.sitesOf(r, siteIDs), false, since)
			switch {
			case res.adopted:
				c.Adopted++
			default:
				c.Unindexed++
				if res.legacy {
					c.Legacy++
				}
				if len(c.UnindexedVersions) < MaxListed {
					c.UnindexedVersions = append(c.UnindexedVersions, res.why)
				}
			}
		}
		return nil
	})
}

// blobRecords is what the records say of a blob listed on a site.
type blobRecords struct {
	manifest bool        // a manifest blob
	version  manifest.ID // its version
	// deleted: the version (a manifest blob) or the blob (any other) is
	// recorded as deleted.
	deleted bool
	// deletedBy: for a blob other than a manifest, the versions whose
	// deletion records name it.
	deletedBy []manifest.ID
	// abandoned: the records saying the blob is abandoned on the site.
	abandoned []evidenceBlob
}

// about returns what the records say of blob name on site sid.
func (ev *records) about(name, sid string) blobRecords {
	var br blobRecords
	delBy, abandoned := ev.blob(name)
	br.abandoned = onSite(abandoned, sid)
	if id, ok := manifest.ParseBlobName(name); ok {
		br.manifest, br.version, br.deleted = true, id, ev.deleted(id)
	} else {
		br.deleted, br.deletedBy = len(delBy) > 0, delBy
	}
	return br
}

// garbage reports whether the records (br) show that blob name on site
// sid is garbage.
func (k *Keeper) garbage(ctx context.Context, br blobRecords, sid, name string, indexed func(manifest.ID) (index.Version, bool)) bool {
	if br.manifest {
		if br.deleted {
			if _, live := indexed(br.version); live {
				k.log.ErrorContext(ctx, "version recorded as deleted is still in the index; kept", "version", br.version)
				return false
			}
			return true
		}
	} else if br.deleted {
		// A delete records the deletion before it commits it to the
		// index: one under way, or one whose index write failed (it was
		// answered with an error), leaves the version listed, and its
		// shards are not garbage yet (until the twenty-first pass they
		// were removed on the record alone).
		for _, id := range br.deletedBy {
			if _, live := indexed(id); live {
				k.log.ErrorContext(ctx, "version recorded as deleted is still in the index; its shard kept", "version", id, "site", sid, "blob", name)
				return false
			}
		}
		return true
	}
	for _, b := range br.abandoned {
		switch {
		case b.version.IsZero():
			return true
		case b.revision == 0:
			// A write that failed: garbage unless the version was
			// committed after all (a multipart completion retried with
			// the same version). Left-over copies of the failed write
			// on other sites do not count: the record is about them.
			v, ok := indexed(b.version)
			if !ok {
				return true
			}
			if m, err := k.e.OpenEnvelope(v.Envelope); err == nil && !uses(m, sid, name) {
				return true
			}
		case !k.stillPlaced(ctx, b.version, sid, name, indexed):
			// A placement a repair or move superseded, and the newest
			// revision does not place it there again.
			return true
		}
	}
	return false
}

// uses reports whether manifest m places blob name on site sid.
func uses(m *manifest.Manifest, sid, name string) bool {
	if name == manifest.BlobName(m.Version) {
		return slices.Contains(manifestSites(m), sid)
	}
	for _, p := range m.Parts {
		for i, s := range p.Sites {
			if !p.Inline && s == sid && manifest.ShardBlobName(p.Blob, i) == name {
				return true
			}
		}
	}
	return false
}

// stillPlaced reports whether the newest revision of version id — from the
// index and every copy on the sites — still uses blob name on site sid.
// When it cannot tell, it says yes.
func (k *Keeper) stillPlaced(ctx context.Context, id manifest.ID, sid, name string, indexed func(manifest.ID) (index.Version, bool)) bool {
	var newest *manifest.Manifest
	if v, ok := indexed(id); ok {
		m, err := k.e.OpenEnvelope(v.Envelope)
		if err != nil {
			return true
		}
		newest = m
	}
	m, _, _, err := k.newestManifest(ctx, id, k.e.SiteIDs())
	if err == nil && (newest == nil || m.Revision > newest.Revision) {
		newest = m
	}
	if newest == nil {
		// No verified manifest anywhere it can see. Only when every site
		// answers and none holds a copy at all did the version never
		// commit; a site that does not answer, or a copy that does not
		// verify, might hold the revision that uses the blob.
		return !k.nowhere(ctx, id, k.e.Unreachable(ctx))
	}
	return uses(newest, sid, name)
}

// resolveIntents records as abandoned the writes whose intent is older
// than cutoff and that never committed.
func (k *Keeper) resolveIntents(ctx context.Context, ev *records, indexed func(manifest.ID) (index.Version, bool), unreachable map[string]bool, cutoff time.Time, c *Collection) error {
	return ev.eachIntent(func(in evidence.Record) error {
		if time.Unix(0, in.Time).After(cutoff) {
			return nil
		}
		if ev.deleted(in.Version) {
			return nil
		}
		// Only the blobs no record covers yet.
		var open []evidence.Blob
		for _, b := range in.Blobs {
			if deleted, abandoned := ev.blob(b.Name); len(deleted) == 0 && len(onSite(abandoned, b.Site)) == 0 {
				open = append(open, b)
			}
		}
		if len(open) == 0 {
			return nil
		}
		var blobs []evidence.Blob
		if in.Revision > 0 {
			// A move of a live version's shards: whichever revision is in
			// force, the blobs it does not use are garbage.
			for _, b := range open {
				if !k.stillPlaced(ctx, in.Version, b.Site, b.Name, indexed) {
					blobs = append(blobs, b)
				}
			}
		} else if in.Upload != "" {
			// A multipart part: garbage once its upload ended, unless the
			// completed version uses it.
			ver, ended := ev.uploadEnd(in.Upload)
			if !ended {
				return nil
			}
			for _, b := range open {
				if ver.IsZero() || !k.stillPlaced(ctx, ver, b.Site, b.Name, indexed) {
					blobs = append(blobs, b)
				}
			}
		} else {
			if _, ok := indexed(in.Version); ok {
				return nil
			}
			if !k.nowhere(ctx, in.Version, unreachable) {
				return nil
			}
			blobs = open
		}
		if len(blobs) == 0 {
			return nil
		}
		rec := evidence.Record{Kind: evidence.Abandon, Version: in.Version, Upload: in.Upload, Blobs: blobs}
		// The record goes to every site; it must be durable where the
		// blobs are, among the sites that answer (nothing is removed on
		// the others).
		need := map[string]bool{}
		for _, b := range blobs {
			if !unreachable[b.Site] {
				need[b.Site] = true
			}
		}
		// Nothing is decided on records that could not be read.
		if err := ev.failed(); err != nil {
			return err
		}
		if err := k.e.Journal().Append(ctx, slices.Collect(maps.Keys(need)), rec); err != nil {
			c.addError("record write %s abandoned: %v", in.Version, err)
			return nil
		}
		ev.add(rec)
		c.Abandoned++
		return nil
	})
}

// nowhere reports whether no site holds a manifest copy of version id. It
// says no when some site does not answer.
func (k *Keeper) nowhere(ctx context.Context, id manifest.ID, unreachable map[string]bool) bool {
	if len(unreachable) > 0 {
		return false
	}
	for _, sid := range k.e.SiteIDs() {
		s, _ := k.e.Site(sid)
		_, err := s.Store.Stat(ctx, manifest.BlobName(id))
		if !errors.Is(err, site.ErrNotFound) {
			return false
		}
	}
	return true
}

// adoptResult says what became of a version found on the sites but not in
// the index.
type adoptResult struct {
	adopted bool
	legacy  bool
	why     string
}

// testHookAdopting, when set, is called when an adoption has read and
// checked a version and is about to index it.
var testHookAdopting func(manifest.ID)

// adoptOne indexes version id, found on sites, if it may be: its newest
// verified copy names a configured vault, it was written by a node that
// records deletions (or legacy is allowed), and every part has k shards.
// The index is written under the version's lock, and only if the version
// was neither indexed nor recorded deleted (on the audit log from entry
// since) while this read it (vault.IndexAdopted).
func (k *Keeper) adoptOne(ctx context.Context, id manifest.ID, sites []string, legacy bool, since uint64) adoptResult {
	m, env, _, err := k.newestManifest(ctx, id, sites)
	if err != nil {
		return adoptResult{why: fmt.Sprintf("version %s: kept: no copy of its manifest verifies", id)}
	}
	name := fmt.Sprintf("%s/%s version %s", m.Vault, m.Key, id)
	if _, err := k.e.Vault(m.Vault); err != nil {
		return adoptResult{why: name + ": kept: its vault is not configured (restore the configuration, then 'embassy index rebuild')"}
	}
	if !m.Journaled && !legacy {
		return adoptResult{legacy: true, why: name + ": kept: written before deletions were recorded, so it may be a deleted version's remains; adopt it with 'embassy index adopt' if it should be there"}
	}
	if why := k.readable(ctx, m, sites); why != "" {
		return adoptResult{why: name + ": kept: " + why + " (mount the missing sites, then 'embassy index rebuild')"}
	}
	if testHookAdopting != nil {
		testHookAdopting(id)
	}
	if err := k.e.IndexAdopted(ctx, m, indexVersion(m, env), since); err != nil {
		return adoptResult{why: name + ": kept: " + err.Error()}
	}
	k.log.InfoContext(ctx, "version adopted into the index", "vault", m.Vault, "key", m.Key, "version", id)
	return adoptResult{adopted: true, why: name}
}

// AdoptOptions select versions for Adopt.
type AdoptOptions struct {
	// Versions, if set, limits adoption to these versions; otherwise
	// every version on the sites that the index does not hold.
	Versions []manifest.ID
	// Vault, if set, limits adoption to one vault.
	Vault string
}

// AdoptReport says what Adopt did.
type AdoptReport struct {
	// Adopted and Kept list the versions adopted and kept, with why, the
	// first MaxListed of each; AdoptedCount and KeptCount count them all.
	Adopted      []string `json:"adopted"`
	Kept         []string `json:"kept"`
	AdoptedCount int      `json:"adopted_count"`
	KeptCount    int      `json:"kept_count"`
	Examined     int      `json:"examined"`
}

// ErrStaleIndex: the index is stale (older than the sites, or rebuilt
// while sites could not be listed), and Adopt refuses it, as collection
// does. Run 'embassy index rebuild' first: it takes in every version the
// sites hold; then adopt what collection still reports kept.
var ErrStaleIndex = errors.New("adoption refused on a stale index")

// Adopt indexes versions found on the sites that the index does not hold,
// including versions written before deletions were recorded: the
// operator's explicit decision that they belong. Versions recorded as
// deleted are never adopted. It refuses a stale index (ErrStaleIndex).
func (k *Keeper) Adopt(ctx context.Context, o AdoptOptions) (AdoptReport, error) {
	rep, err := k.adopt(ctx, o)
	k.record(ctx, "index.adopt", rep, err)
	return rep, err
}

func (k *Keeper) adopt(ctx context.Context, o AdoptOptions) (AdoptReport, error) {
	ctx = vault.AsSystem(ctx)
	rep := AdoptReport{Adopted: []string{}, Kept: []string{}}
	lk, ok := k.ix.(lookupIndex)
	if !ok {
		return rep, errors.New("adopt: the index cannot find versions by id")
	}
	// An index older than the sites still holds versions deleted since
	// and lacks what was written since: adopting into it decides which
	// versions belong on a picture known to be wrong, and leaves it stale.
	if _, why, err := k.checkFresh(ctx); err != nil {
		return rep, err
	} else if why != "" {
		return rep, fmt.Errorf("%w: %s", ErrStaleIndex, why)
	}
	sp, done, err := k.scratch("adopt")
	if err != nil {
		return rep, err
	}
	defer done()
	ev, err := k.loadEvidence(ctx, sp)
	if err != nil {
		return rep, err
	}
	defer ev.close()
	want := map[manifest.ID]bool{}
	for _, id := range o.Versions {
		want[id] = true
	}
	// The versions found, with the sites holding a copy, on disk (as
	// collection keeps the manifests the index does not hold).
	siteIDs := k.e.SiteIDs()
	found, err := newSiteScratch(sp, len(siteIDs))
	if err != nil {
		return rep, err
	}
	defer found.close()
	for si, sid := range siteIDs {
		s, _ := k.e.Site(sid)
		err := s.Store.List(ctx, manifest.ManifestPrefix, func(i site.Info) error {
			id, ok := manifest.ParseBlobName(i.Name)
			if !ok || (len(want) > 0 && !want[id]) || ev.deleted(id) || len(ev.abandonedOn(i.Name, sid)) > 0 {
				return nil
			}
			if _, err := lk.Lookup(ctx, id); err == nil {
				return nil
			}
			found.add(id, si)
			return found.err
		})
		if found.err != nil {
			return rep, found.err
		}
		if err != nil && ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	// Nothing is adopted on records that could not be read.
	if err := ev.failed(); err != nil {
		return rep, err
	}
	if err := found.finish(); err != nil {
		return rep, err
	}
	// In id order, a batch at a time.
	err = found.batches(500, func(recs []byte, _ int64) error {
		for r := range slices.Chunk(recs, found.rec) {
			id, sites := manifest.ID(r[:16]), found.sitesOf(r, siteIDs)
			rep.Examined++
			if o.Vault != "" {
				if m, _, _, err := k.newestManifest(ctx, id, sites); err != nil || m.Vault != o.Vault {
					continue
				}
			}
			res := k.adoptOne(ctx, id, sites, true, ev.logNext)
			if res.adopted {
				rep.AdoptedCount++
				if len(rep.Adopted) < MaxListed {
					rep.Adopted = append(rep.Adopted, res.why)
				}
			} else {
				rep.KeptCount++
				if len(rep.Kept) < MaxListed {
					rep.Kept = append(rep.Kept, res.why)
				}
			}
		}
		return nil
	})
	return rep, err
}
