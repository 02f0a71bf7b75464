package housekeeping

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// Scrub verifies every shard block of every version against its checksum,
// verifies every manifest copy on every site (signature, identity and
// revision), checks every placement against the vault's current policy,
// and (with Repair) rebuilds missing, corrupt and misplaced shards from the
// others onto sites that keep the policy and rewrites missing, damaged or
// stale manifest copies from a verified one. Draining sites are treated as
// misplaced: their shards move off. Each repair writes the new shards
// first, then the new manifest to every site that holds the version, then
// the index, and only then removes what it replaced, so a version keeps a
// conforming placement at every moment and a crash at any point leaves
// either the old placement or the new one.
//
// Scrub tells apart what is degraded (fewer shards than k+m, or off
// policy, but readable and repairable) from what is lost (some part has
// fewer than k intact shards, or no copy of the manifest verifies): the
// second is data the node cannot serve, and is reported by name.

// ScrubOptions configure a scrub.
type ScrubOptions struct {
	// Vaults limits the scrub to these vaults (all if empty).
	Vaults []string
	// Repair rebuilds what is found wanting; otherwise scrub only reports.
	Repair bool
	// Rate limits the bytes read per second (0: no limit).
	Rate int64
	// RateNow, if set, is asked for the limit at every read instead, so
	// that it can change while the scrub runs (a job's rate).
	RateNow func() int64
	// Progress, if set, is called after each version.
	Progress func(ScrubReport)
	// Lost, for drills: sites whose shards count as gone. Nothing is
	// repaired onto or read from them.
	Lost map[string]bool

	// Deep also reads every part whose blocks' checksums are good as a
	// repair does: each stripe's data authenticated, each parity block
	// compared with the data coded again. It finds blocks replaced along
	// with valid checksums, which the checksums alone cannot; it costs
	// the decryption and the coding besides the reads, and reads each
	// part twice.
	Deep bool

	// Grace is how old a blob must be before garbage collection considers
	// it, since a younger one may belong to a write still in flight (0:
	// DefaultGrace; negative: no collection).
	Grace time.Duration

	avoid map[string]bool // unreachable now: not chosen for repairs
	depth int             // re-checks of one version after a repair
}

// ScrubReport says what a scrub found and did.
type ScrubReport struct {
	Versions  int   `json:"versions"`
	Bytes     int64 `json:"bytes"` // plaintext bytes of the versions scrubbed
	BytesRead int64 `json:"bytes_read"`
	// StripesAuthenticated counts the stripes a deep scrub (or the check
	// of a part with fewer than k whole shards) read from every shard,
	// authenticated and whose parity it coded again.
	StripesAuthenticated int64 `json:"stripes_authenticated,omitempty"`
	CorruptShards        int   `json:"corrupt_shards"`
	MissingShards        int   `json:"missing_shards"`
	MisplacedShards      int   `json:"misplaced_shards"`
	MissingCopies        int   `json:"missing_manifest_copies"`
	DamagedCopies        int   `json:"damaged_manifest_copies"` // copies that fail verification or name another version
	StaleCopies          int   `json:"stale_manifest_copies"`   // copies holding an older revision than the newest verified one
	// AtRisk counts versions found degraded, lost or unreachable;
	// Degraded those that were readable and repairable, Lost those that
	// were not, and Unreachable those that could not be read now only
	// because sites holding their shards did not answer (not lost: the
	// shards there may be intact; Errors names the sites).
	AtRisk        int      `json:"at_risk"`
	Degraded      int      `json:"degraded"`
	Lost          int      `json:"lost"`
	Unreachable   int      `json:"unreachable"`
	LostVersions  []string `json:"lost_versions"` // at most MaxListed, by name
	Repaired      int      `json:"repaired"`
	BytesRepaired int64    `json:"bytes_repaired"` // shard bytes written
	ShardsMoved   int      `json:"shards_moved"`
	// Unrepairable lists the versions a repairing scrub could not
	// repair, with why, and Errors what else went wrong, the first
	// scrubListed of each; UnrepairableNotListed and ErrorsNotListed
	// count the others (a site that fails every write fails one repair
	// for each version it holds).
	Unrepairable          []string `json:"unrepairable"`
	UnrepairableNotListed int      `json:"unrepairable_not_listed"`
	Errors                []string `json:"errors"`
	ErrorsNotListed       int      `json:"errors_not_listed"`
	// RemainingAtRisk counts versions still degraded or lost at the end.
	RemainingAtRisk int `json:"remaining_at_risk"`
	// Collection reports garbage collection (a repairing scrub over every
	// vault).
	Collection      *Collection `json:"collection,omitempty"`
	DurationSeconds float64     `json:"duration_seconds"`
}

// shardState is what scrub found of one shard of one part.
type shardState struct {
	bad       bool // missing or corrupt
	corrupt   bool
	misplaced bool // on a draining or excluded site, or breaking the policy
	// notBlob: something that is not a blob stands at its name on its site
	// (site.ErrNotBlob, a FIFO put there): it cannot be written back there,
	// so a repair places it on another site.
	notBlob error
}

// rateLimiter paces reads to a byte rate. With now set, the rate is read
// at every wait, and a change takes effect at once (the pacing starts
// afresh from the change).
type rateLimiter struct {
	mu    sync.Mutex
	rate  int64
	now   func() int64
	start time.Time
	n     int64
}

func (l *rateLimiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if l.now != nil {
		if r := l.now(); r != l.rate {
			l.rate, l.start, l.n = r, time.Now(), 0
		}
	}
	if l.rate <= 0 {
		l.mu.Unlock()
		return nil
	}
	l.n += int64(n)
	due := l.start.Add(time.Duration(float64(l.n) / float64(l.rate) * float64(time.Second)))
	l.mu.Unlock()
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// scrubConcurrency is how many versions a scrub checks (and repairs) at
// once.
const scrubConcurrency = 8

// Scrub runs a scrub over the index's versions.
func (k *Keeper) Scrub(ctx context.Context, o ScrubOptions) (ScrubReport, error) {
	rep, err := k.scrub(ctx, o)
	k.record(ctx, "scrub", rep, err)
	return rep, err
}

func (k *Keeper) scrub(ctx context.Context, o ScrubOptions) (ScrubReport, error) {
	start := time.Now()
	var rep ScrubReport
	ctx = vault.AsSystem(ctx)
	// Sites that do not answer are not chosen for repairs (their shards
	// still count as missing only if reads fail).
	o.avoid = k.e.Unreachable(ctx)
	lim := &rateLimiter{rate: o.Rate, now: o.RateNow, start: start}
	vaults := o.Vaults
	if len(vaults) == 0 {
		for _, v := range k.e.Vaults() {
			vaults = append(vaults, v.Name)
		}
	}
	var mu sync.Mutex
	for _, vname := range vaults {
		v, err := k.e.Vault(vname)
		if err != nil {
			return rep, err
		}
		vo := index.VersionOptions{Max: 200}
		for {
			page, err := k.ix.Versions(ctx, vname, vo)
			if err != nil {
				return rep, err
			}
			// Versions are independent: check a few at once.
			sem := make(chan struct{}, scrubConcurrency)
			var wg sync.WaitGroup
			for _, listed := range page.Versions {
				if ctx.Err() != nil {
					break
				}
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					r := k.scrubVersion(ctx, v, listed, o, lim)
					mu.Lock()
					rep.add(r)
					if o.Progress != nil {
						o.Progress(rep)
					}
					mu.Unlock()
				})
			}
			wg.Wait()
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			if !page.Truncated {
				break
			}
			vo.KeyMarker, vo.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
		}
	}
	if o.Repair && o.Grace >= 0 && len(o.Vaults) == 0 && len(o.Lost) == 0 {
		c, err := k.collect(ctx, CollectOptions{Grace: o.Grace})
		if err != nil {
			rep.add(ScrubReport{Errors: []string{err.Error()}})
		}
		rep.Collection = &c
	}
	rep.DurationSeconds = time.Since(start).Seconds()
	k.e.Events.AtRisk.Store(int64(rep.RemainingAtRisk))
	k.e.Events.BytesRepaired.Add(rep.BytesRepaired)
	return rep, nil
}

// scrubListed bounds ScrubReport.Unrepairable and Errors (a variable for
// tests).
var scrubListed = MaxListed

// Unrepairables counts the versions a scrub could not repair, listed or
// not.
func (r ScrubReport) Unrepairables() int { return len(r.Unrepairable) + r.UnrepairableNotListed }

// listCapped appends more to list up to scrubListed entries and returns
// the list and how many of more did not fit.
func listCapped(list, more []string) ([]string, int) {
	n := min(len(more), max(scrubListed-len(list), 0))
	return append(list, more[:n]...), len(more) - n
}

func (r *ScrubReport) add(o ScrubReport) {
	r.Versions += o.Versions
	r.Bytes += o.Bytes
	r.BytesRead += o.BytesRead
	r.StripesAuthenticated += o.StripesAuthenticated
	r.CorruptShards += o.CorruptShards
	r.MissingShards += o.MissingShards
	r.MisplacedShards += o.MisplacedShards
	r.MissingCopies += o.MissingCopies
	r.DamagedCopies += o.DamagedCopies
	r.StaleCopies += o.StaleCopies
	r.AtRisk += o.AtRisk
	r.Degraded += o.Degraded
	r.Lost += o.Lost
	r.Unreachable += o.Unreachable
	for _, l := range o.LostVersions {
		if len(r.LostVersions) < MaxListed {
			r.LostVersions = append(r.LostVersions, l)
		}
	}
	r.Repaired += o.Repaired
	r.BytesRepaired += o.BytesRepaired
	r.ShardsMoved += o.ShardsMoved
	r.RemainingAtRisk += o.RemainingAtRisk
	var left int
	r.Unrepairable, left = listCapped(r.Unrepairable, o.Unrepairable)
	r.UnrepairableNotListed += left + o.UnrepairableNotListed
	r.Errors, left = listCapped(r.Errors, o.Errors)
	r.ErrorsNotListed += left + o.ErrorsNotListed
}

// copyState is what scrub found of one site's copy of a manifest.
type copyState int

const (
	copyOK copyState = iota
	copyMissing
	copyDamaged
	copyStale
	copyUnknown // the site did not answer
)

// checkCopies reads and verifies every copy of a version's manifest. It
// returns each copy's state by site, and the newest verified manifest it
// saw (which may be newer than the indexed one: the index is then behind),
// and why each copy that a site holds but could not read (copyUnknown, the
// site answering) was not read: an I/O error, a file that is not a blob
// (dir.ErrNotRegular: a FIFO at its name), for the report.
func (k *Keeper) checkCopies(ctx context.Context, m *manifest.Manifest, lost func(string) bool) (map[string]copyState, *manifest.Manifest, []byte, map[string]error) {
	sites := manifestSites(m)
	states := make(map[string]copyState, len(sites))
	var unread map[string]error
	var newest *manifest.Manifest
	var newestEnv []byte
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, sid := range sites {
		if lost(sid) {
			continue
		}
		s, ok := k.e.Site(sid)
		if !ok {
			states[sid] = copyMissing
			continue
		}
		wg.Go(func() {
			st := copyOK
			env, err := vault.ReadEnvelope(ctx, s.Store, manifest.BlobName(m.Version))
			var cm *manifest.Manifest
			switch {
			case errors.Is(err, site.ErrNotFound):
				st = copyMissing
			case errors.Is(err, site.ErrUnavailable):
				st = copyUnknown
			case err != nil && !errors.Is(err, manifest.ErrCorrupt):
				st = copyUnknown
				mu.Lock()
				if unread == nil {
					unread = map[string]error{}
				}
				unread[sid] = err
				mu.Unlock()
			case err != nil:
				st = copyDamaged
			default:
				cm, err = k.e.OpenEnvelope(env)
				switch {
				case err != nil || cm.Version != m.Version || cm.Vault != m.Vault || cm.Key != m.Key:
					st = copyDamaged
				case cm.Revision < m.Revision:
					st = copyStale
				}
			}
			mu.Lock()
			defer mu.Unlock()
			states[sid] = st
			if st == copyOK && cm != nil && (newest == nil || cm.Revision > newest.Revision) {
				newest, newestEnv = cm, env
			}
		})
	}
	wg.Wait()
	return states, newest, newestEnv, unread
}

// takeUp puts revision m (env) of listed, read from the sites, into the
// index (vault.Engine.IndexNewer: under the version's lock, not over a
// revision as new, and not back after a delete). done says scrubVersion
// returns again: the version was deleted meanwhile (an empty report: it
// is not indexed again, nor reported), it changed and was checked again,
// or the write failed (named in rep, as what).
func (k *Keeper) takeUp(ctx context.Context, v vault.Vault, listed index.Version, o ScrubOptions, lim *rateLimiter, m *manifest.Manifest, env []byte, rep *ScrubReport, what string) (again ScrubReport, done bool) {
	err := k.e.IndexNewer(ctx, m, indexVersion(m, env))
	switch {
	case err == nil:
		return ScrubReport{}, false
	case errors.Is(err, index.ErrNotFound):
		return ScrubReport{}, true
	case errors.Is(err, vault.ErrChanged) && o.depth < 2:
		o.depth++
		return k.scrubVersion(ctx, v, listed, o, lim), true
	}
	rep.Errors = append(rep.Errors, fmt.Sprintf("%s/%s version %s: %s: %v", listed.Vault, listed.Key, listed.ID, what, err))
	return *rep, true
}

// scrubVersion checks (and repairs) one version.
func (k *Keeper) scrubVersion(ctx context.Context, v vault.Vault, listed index.Version, o ScrubOptions, lim *rateLimiter) (rep ScrubReport) {
	rep.Versions = 1
	name := fmt.Sprintf("%s/%s version %s", listed.Vault, listed.Key, listed.ID)
	lostVersion := func(why string) ScrubReport {
		rep.AtRisk, rep.Lost, rep.RemainingAtRisk = 1, 1, 1
		rep.LostVersions = append(rep.LostVersions, name+": "+why)
		return rep
	}
	iv, err := k.ix.Get(ctx, listed.Vault, listed.Key, listed.ID)
	if errors.Is(err, index.ErrNotFound) {
		// Deleted since it was listed: nothing to check (its copies,
		// which its removal may not have reached yet, are not a
		// damaged index entry's stand-in).
		return ScrubReport{}
	}
	var m *manifest.Manifest
	env := iv.Envelope
	if err == nil {
		m, err = k.openIndexed(listed, env)
	}
	if err != nil {
		// The index's envelope is damaged: a verified copy on the sites
		// can stand in for it.
		fm, fenv, _, ferr := k.newestManifest(ctx, listed.ID, k.e.SiteIDs())
		if ferr != nil || fm.Vault != listed.Vault || fm.Key != listed.Key {
			if _, err := k.e.Indexed(ctx, listed.Vault, listed.Key, listed.ID); errors.Is(err, index.ErrNotFound) {
				return ScrubReport{} // deleted meanwhile, its copies with it
			}
			return lostVersion("the indexed manifest fails verification (" + err.Error() + ") and no copy on the sites verifies")
		}
		rep.DamagedCopies++
		if !o.Repair {
			rep.AtRisk, rep.Degraded, rep.RemainingAtRisk = 1, 1, 1
			return rep
		}
		if again, done := k.takeUp(ctx, v, listed, o, lim, fm, fenv, &rep, "restore the index entry from a verified copy"); done {
			return again
		}
		m, env = fm, fenv
	}
	rep.Bytes = m.Size
	lost := func(sid string) bool { return o.Lost[sid] }
	// Manifest copies.
	copies, newest, newestEnv, unread := k.checkCopies(ctx, m, lost)
	for _, sid := range slices.Sorted(maps.Keys(unread)) {
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s: manifest copy on site %s unreadable (not rewritten): %v", name, sid, unread[sid]))
	}
	moved := false
	if (newest == nil || newest.Revision <= m.Revision) && slices.ContainsFunc(slices.Collect(maps.Values(copies)), func(st copyState) bool { return st != copyOK && st != copyUnknown }) {
		// A site m names holds no copy of its revision or a newer one,
		// and none a newer: the version may have moved off them since
		// the index's revision (an index restored from a backup taken
		// before a repair or a drain), a copy of m's revision perhaps
		// left behind on one of them by the move's failed clean-up
		// (until the twentieth pass such a copy kept the other sites
		// from being read). The other sites may hold the newer
		// revision, which says where its shards are: without it every
		// shard would look gone, and the version lost.
		named := manifestSites(m)
		var others []string
		for _, sid := range k.e.SiteIDs() {
			if !slices.Contains(named, sid) && !lost(sid) {
				others = append(others, sid)
			}
		}
		if fm, fenv, _, err := k.newestManifest(ctx, listed.ID, others); err == nil && fm.Vault == m.Vault && fm.Key == m.Key && fm.Revision > m.Revision {
			newest, newestEnv, moved = fm, fenv, true
		}
	}
	if newest != nil && newest.Revision > m.Revision {
		// A site holds a newer revision than the index: the index is
		// behind (a failed recommit, or a restored backup). Take it and
		// check again.
		if o.Repair && o.depth < 2 {
			if again, done := k.takeUp(ctx, v, listed, o, lim, newest, newestEnv, &rep, "index the newer revision found on the sites"); done {
				return again
			}
			o.depth++
			return k.scrubVersion(ctx, v, listed, o, lim)
		}
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s: the sites hold revision %d, the index %d (a repairing scrub or an index rebuild takes the newer)", name, newest.Revision, m.Revision))
		if moved {
			// Its shards are where the newer revision says, not where
			// the index's does: checking them against it would call
			// the version lost.
			rep.AtRisk, rep.RemainingAtRisk = 1, 1
			return rep
		}
	}
	var badCopies []string
	for sid, st := range copies {
		switch st {
		case copyMissing, copyUnknown:
			// A copy on a site that does not answer counts as missing
			// too, but cannot be rewritten there now.
			rep.MissingCopies++
			if st == copyUnknown || o.avoid[sid] {
				continue
			}
		case copyDamaged:
			rep.DamagedCopies++
		case copyStale:
			rep.StaleCopies++
		default:
			continue
		}
		badCopies = append(badCopies, sid)
	}
	if m.DeleteMarker {
		// A marker's copies on a site being drained (or lost, or no
		// longer configured) move off it, as shards do.
		if moving := k.e.MisplacedCopies(m, o.Lost); len(moving) > 0 {
			rep.MisplacedShards += len(moving)
			rep.AtRisk, rep.Degraded = 1, 1
			if !o.Repair {
				rep.RemainingAtRisk = 1
				return rep
			}
			n, err := k.e.MoveMarker(ctx, m, o.Lost)
			if errors.Is(err, vault.ErrChanged) && o.depth < 2 {
				o.depth++
				return k.scrubVersion(ctx, v, listed, o, lim)
			}
			if err != nil {
				rep.Unrepairable = append(rep.Unrepairable, name+": move its copies: "+err.Error())
				rep.RemainingAtRisk = 1
				return rep
			}
			rep.ShardsMoved += n
			rep.Repaired = 1
			return rep
		}
		if len(badCopies) > 0 {
			rep.AtRisk, rep.Degraded = 1, 1
			if !o.Repair {
				rep.RemainingAtRisk = 1
			} else if err := k.e.RestoreCopies(ctx, m, env, badCopies); errors.Is(err, vault.ErrChanged) && o.depth < 2 {
				o.depth++
				return k.scrubVersion(ctx, v, listed, o, lim)
			} else if err != nil {
				rep.Errors = append(rep.Errors, name+": restore manifest copies: "+err.Error())
				rep.RemainingAtRisk = 1
			} else {
				rep.Repaired = 1
			}
		}
		return rep
	}
	// Shards.
	sites := k.e.SiteDescriptors()
	policy, lbl := k.e.Placement(v, m)
	states := make([][]shardState, len(m.Parts))
	needs, unreadable := false, ""
	for pi, p := range m.Parts {
		quick := false
		if o.Repair && !p.Inline {
			// A part that will be rebuilt anyway (a shard blob is gone
			// or on a site being left) is not read twice: the rebuild
			// verifies every block it reads, and what it did not read
			// is verified by the next scrub.
			var ok bool
			states[pi], ok = k.quickCheck(ctx, m, p, lost)
			quick = !ok
			for i, st := range states[pi] {
				if st.notBlob != nil {
					rep.Errors = append(rep.Errors, fmt.Sprintf("%s part %d shard %d on site %s unreadable, placed on another site: %v", name, p.Number, i, p.Sites[i], st.notBlob))
				}
			}
		}
		readAsWhole := false // the part was read stripe by stripe (deepCheck)
		switch {
		case quick:
		case o.Deep:
			var msg string
			states[pi], msg = k.deepCheck(ctx, m, p, lost, lim, &rep)
			if msg != "" && unreadable == "" {
				unreadable = msg
			}
			readAsWhole = true
		default:
			states[pi] = k.checkPart(ctx, m, p, lost, lim, &rep)
		}
		if p.Inline {
			// An inline shard lives in its site's manifest copy, after
			// the envelope: a copy whose envelope is damaged or stale
			// (its blocks were checked above) is rewritten with its
			// blocks by the repair.
			for _, sid := range p.Sites {
				if st, ok := copies[sid]; ok && st != copyOK && st != copyUnknown {
					needs = true
				}
			}
		}
		var descs []site.Descriptor
		for _, sid := range p.Sites {
			descs = append(descs, sites[sid])
		}
		if len(placement.Check(policy, descs)) > 0 {
			// The placement breaks the current policy (it changed, or a
			// site's attributes did): every shard is up for a move, and
			// Complete keeps those it can.
			for i := range states[pi] {
				states[pi][i].misplaced = true
			}
		}
		good := 0
		for i, sid := range p.Sites {
			st := &states[pi][i]
			if k.e.IsDraining(sid) || lost(sid) || !k.e.SiteAccredited(sid, lbl) {
				st.misplaced = true
			}
			if st.bad {
				needs = true
				if st.corrupt {
					rep.CorruptShards++
				} else {
					rep.MissingShards++
				}
			} else {
				good++
				if st.misplaced {
					needs = true
					rep.MisplacedShards++
				}
			}
		}
		if good < m.K && unreadable == "" && !readAsWhole {
			// Fewer than k shards are wholly intact, but a stripe needs
			// only k intact blocks: damage scattered over more shards
			// than the parity, at most m blocks a stripe, loses nothing.
			// Only a read stripe by stripe tells; the repair reads the
			// damaged shards' good blocks too (vault.Relocate).
			_, _, err := k.readWhole(ctx, m, p, lost, lim, &rep)
			switch {
			case errors.Is(err, vault.ErrUnreadable):
				unreadable = fmt.Sprintf("part %d has %d of the %d intact shards it needs", p.Number, good, m.K)
				k.log.WarnContext(ctx, "scrub: part unreadable", "vault", m.Vault, "version", m.Version, "part", p.Number, "why", err)
			case err != nil:
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s part %d: %d of the %d intact shards it needs, and could not be read stripe by stripe: %v", name, p.Number, good, m.K, err))
				rep.AtRisk, rep.RemainingAtRisk = 1, 1
				return rep
			}
		}
	}
	if unreadable != "" || needs || len(badCopies) > 0 {
		// A move of this version (a drain, another scrub's repair: jobs
		// run side by side) may have committed a new revision while this
		// one was read, and removed the blobs read. Look at the index
		// again before calling the version lost or at risk, or repairing
		// it from the revision it replaced.
		// Under the version's lock (vault.Indexed): a delete under way
		// has recorded the deletion, from which collection may already
		// have removed the shards, and not yet committed it.
		cur, err := k.indexedLocked(ctx, listed)
		if errors.Is(err, index.ErrNotFound) {
			// Deleted meanwhile: what its removal took is not lost.
			return ScrubReport{}
		}
		if err == nil && cur.Revision != m.Revision && o.depth < 2 {
			o.depth++
			again := k.scrubVersion(ctx, v, listed, o, lim)
			again.BytesRead += rep.BytesRead
			again.StripesAuthenticated += rep.StripesAuthenticated
			return again
		}
	}
	if unreadable != "" {
		if away := k.unanswering(ctx, m, lost); len(away) > 0 {
			// Shards on sites that do not answer may be intact: the
			// version cannot be read now, which does not make it lost.
			which := "site " + away[0] + " does not answer: unreadable until it does"
			if len(away) > 1 {
				which = "sites " + strings.Join(away, ", ") + " do not answer: unreadable until they do"
			}
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %s, and %s, not lost", name, unreadable, which))
			rep.AtRisk, rep.Unreachable, rep.RemainingAtRisk = 1, 1, 1
			return rep
		}
		return lostVersion(unreadable)
	}
	if !needs && len(badCopies) == 0 {
		return rep
	}
	rep.AtRisk, rep.Degraded = 1, 1
	if !o.Repair {
		rep.RemainingAtRisk = 1
		return rep
	}
	if !needs {
		// Only copies of a version without inline parts need rewriting.
		if err := k.e.RestoreCopies(ctx, m, env, badCopies); errors.Is(err, vault.ErrChanged) && o.depth < 2 {
			// A change committed a new revision meanwhile: check that one.
			o.depth++
			return k.scrubVersion(ctx, v, listed, o, lim)
		} else if err != nil {
			rep.Errors = append(rep.Errors, name+": restore manifest copies: "+err.Error())
			rep.RemainingAtRisk = 1
		} else {
			rep.Repaired = 1
		}
		return rep
	}
	res, err := k.repairVersion(ctx, m, policy, lbl, states, o)
	rep.BytesRepaired += res.BytesWritten
	rep.ShardsMoved += res.ShardsMoved
	if errors.Is(err, vault.ErrChanged) && o.depth < 2 {
		// A change (a lock set, another move) committed a new revision
		// while this one was checked: check that one.
		o.depth++
		again := k.scrubVersion(ctx, v, listed, o, lim)
		again.BytesRead += rep.BytesRead
		again.StripesAuthenticated += rep.StripesAuthenticated
		return again
	}
	if errors.Is(err, index.ErrNotFound) {
		// Deleted while it was checked (Relocate found it gone from the
		// index under its lock): nothing to repair.
		return ScrubReport{}
	}
	if err != nil {
		rep.Unrepairable = append(rep.Unrepairable, name+": "+err.Error())
		rep.RemainingAtRisk = 1
		return rep
	}
	rep.Repaired = 1
	if res.Problems > 0 && o.depth < 2 {
		// The rebuild met damage in shards it kept: check again.
		o.depth++
		rep.recheck(k.scrubVersion(ctx, v, listed, o, lim))
	}
	return rep
}

// indexedLocked is manifest read under the version's lock (vault.Indexed).
func (k *Keeper) indexedLocked(ctx context.Context, listed index.Version) (*manifest.Manifest, error) {
	iv, err := k.e.Indexed(ctx, listed.Vault, listed.Key, listed.ID)
	if err != nil {
		return nil, err
	}
	return k.openIndexed(listed, iv.Envelope)
}

// recheck folds into rep, one version's report after its repair, what a
// second scrub of the version found: the damage it met and repaired, and
// what it could not do. Its outcome is the version's: a version the
// second look finds lost, or still at risk, is not counted repaired, and
// the errors and the lost version's name reach the report.
func (rep *ScrubReport) recheck(again ScrubReport) {
	rep.CorruptShards += again.CorruptShards
	rep.BytesRepaired += again.BytesRepaired
	rep.ShardsMoved += again.ShardsMoved
	rep.Unrepairable = append(rep.Unrepairable, again.Unrepairable...)
	rep.Errors = append(rep.Errors, again.Errors...)
	rep.RemainingAtRisk = again.RemainingAtRisk
	if again.Lost > 0 {
		rep.Degraded, rep.Lost = 0, again.Lost
		rep.LostVersions = append(rep.LostVersions, again.LostVersions...)
	}
	if again.Unreachable > 0 {
		rep.Degraded, rep.Unreachable = 0, again.Unreachable
	}
	if again.RemainingAtRisk > 0 {
		rep.Repaired = 0
	}
}

// checkPart reads every shard of a part and verifies every block.
func (k *Keeper) checkPart(ctx context.Context, m *manifest.Manifest, p manifest.Part, lost func(string) bool, lim *rateLimiter, rep *ScrubReport) []shardState {
	out := make([]shardState, len(p.Sites))
	var wg sync.WaitGroup
	var read atomic.Int64
	var mu sync.Mutex
	var unread []string
	for i, sid := range p.Sites {
		if lost(sid) {
			out[i].bad = true
			continue
		}
		wg.Go(func() {
			n, err := k.e.VerifyShard(ctx, m, p, i, lim.wait)
			read.Add(n)
			if err != nil {
				out[i].bad = true
				out[i].corrupt = errors.Is(err, vault.ErrShardDamaged)
				if !out[i].corrupt && !errors.Is(err, site.ErrNotFound) && !errors.Is(err, site.ErrUnavailable) && ctx.Err() == nil {
					// Neither damage nor absence: an I/O error, a file
					// that is not a blob (a FIFO at its name), named in
					// the report.
					mu.Lock()
					unread = append(unread, fmt.Sprintf("%s/%s version %s part %d shard %d on site %s unreadable: %v", m.Vault, m.Key, m.Version, p.Number, i, sid, err))
					mu.Unlock()
				}
				k.log.WarnContext(ctx, "scrub: shard damaged", "vault", m.Vault, "version", m.Version, "part", p.Number, "shard", i, "site", sid, "err", err)
			}
		})
	}
	wg.Wait()
	rep.BytesRead += read.Load()
	slices.Sort(unread)
	rep.Errors = append(rep.Errors, unread...)
	return out
}

// unanswering returns the sites, not declared lost, holding a shard of m
// (a shard blob, or an inline part's manifest copy) that do not answer
// now (site.ErrUnavailable): a version short of shards is lost only when
// none of its shards is on one.
func (k *Keeper) unanswering(ctx context.Context, m *manifest.Manifest, lost func(string) bool) []string {
	var away []string
	for _, p := range m.Parts {
		for i, sid := range p.Sites {
			if lost(sid) || slices.Contains(away, sid) {
				continue
			}
			s, ok := k.e.Site(sid)
			if !ok {
				continue
			}
			name := manifest.ShardBlobName(p.Blob, i)
			if p.Inline {
				name = manifest.BlobName(m.Version)
			}
			if _, err := s.Store.Stat(ctx, name); errors.Is(err, site.ErrUnavailable) {
				away = append(away, sid)
			}
		}
	}
	slices.Sort(away)
	return away
}

// deepCheck is checkPart and more, in the same one pass over the part's
// shards: it reads the part as a repair does (vault.Engine.VerifyPartDeep),
// every block's checksum verified, each stripe authenticated, each parity
// block compared with the data coded again. A block replaced along with a
// valid checksum, which checkPart cannot see, marks its shard corrupt for
// the repair to rebuild from the others. It returns why the part is
// unreadable, if a stripe had fewer than k intact blocks or more forged
// than it can spare.
func (k *Keeper) deepCheck(ctx context.Context, m *manifest.Manifest, p manifest.Part, lost func(string) bool, lim *rateLimiter, rep *ScrubReport) ([]shardState, string) {
	out := make([]shardState, len(p.Sites))
	pc, skip, err := k.readWhole(ctx, m, p, lost, lim, rep)
	for i := range out {
		if i >= len(pc.Bad) || !pc.Bad[i] {
			continue
		}
		out[i].bad, out[i].corrupt = true, pc.Corrupt[i]
		switch {
		case skip[i]:
		case pc.Replaced[i]:
			k.log.WarnContext(ctx, "scrub: block replaced along with a valid checksum", "vault", m.Vault, "version", m.Version, "part", p.Number, "shard", i, "site", p.Sites[i])
		default:
			k.log.WarnContext(ctx, "scrub: shard damaged", "vault", m.Vault, "version", m.Version, "part", p.Number, "shard", i, "site", p.Sites[i])
		}
	}
	switch {
	case err == nil:
		return out, ""
	case errors.Is(err, vault.ErrUnreadable):
		return out, fmt.Sprintf("part %d: %v", p.Number, err)
	case ctx.Err() != nil:
		return out, ""
	default:
		// The part could not be read as a whole (its data key would not
		// unwrap, say): named in the report, and neither repaired nor
		// called lost on that ground.
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s/%s version %s part %d: deep check: %v", m.Vault, m.Key, m.Version, p.Number, err))
		return out, ""
	}
}

// readWhole reads part p stripe by stripe from every shard not on a lost
// site (vault.Engine.VerifyPartDeep), counting what it read in rep. skip
// marks the shards on lost sites.
func (k *Keeper) readWhole(ctx context.Context, m *manifest.Manifest, p manifest.Part, lost func(string) bool, lim *rateLimiter, rep *ScrubReport) (pc vault.PartCheck, skip []bool, err error) {
	skip = make([]bool, len(p.Sites))
	for i, sid := range p.Sites {
		skip[i] = lost(sid)
	}
	pc, err = k.e.VerifyPartDeep(ctx, m, p, skip, lim.wait)
	rep.BytesRead += pc.Read
	rep.StripesAuthenticated += pc.Stripes
	return pc, skip, err
}

// quickCheck stats a part's shard blobs. It reports false, with the
// states it found, when a blob is missing or sits on a site being drained
// or lost, so that the part needs a rebuild whatever its blocks hold.
func (k *Keeper) quickCheck(ctx context.Context, m *manifest.Manifest, p manifest.Part, lost func(string) bool) ([]shardState, bool) {
	out := make([]shardState, len(p.Sites))
	ok := true
	for i, sid := range p.Sites {
		if lost(sid) {
			out[i].bad, ok = true, false
			continue
		}
		if k.e.IsDraining(sid) {
			out[i].misplaced, ok = true, false
		}
		s, found := k.e.Site(sid)
		if !found {
			out[i].bad, ok = true, false
			continue
		}
		info, err := s.Store.Stat(ctx, manifest.ShardBlobName(p.Blob, i))
		if err != nil || info.Size != vault.ShardBlobSize(m, p) {
			out[i].bad, ok = true, false
		}
		if errors.Is(err, site.ErrNotBlob) {
			out[i].notBlob = err
		}
	}
	return out, ok
}

// repairVersion chooses where every bad or misplaced shard goes, keeping
// intact well-placed shards where they are, and has the engine move them.
func (k *Keeper) repairVersion(ctx context.Context, m *manifest.Manifest, policy placement.Policy, lbl *label.Label, states [][]shardState, o ScrubOptions) (vault.RelocateResult, error) {
	exclude := maps.Clone(o.Lost)
	if exclude == nil {
		exclude = map[string]bool{}
	}
	maps.Copy(exclude, o.avoid)
	cands := k.e.Candidates(exclude, lbl)
	sites := k.e.SiteDescriptors()
	r := vault.Relocation{Sites: make([][]string, len(m.Parts)), Bad: make([][]bool, len(m.Parts)), Lost: o.Lost}
	for pi, p := range m.Parts {
		fixed := make([]string, len(p.Sites))
		anyChange := false
		r.Bad[pi] = make([]bool, len(p.Sites))
		var notBlob map[string]bool // sites where a shard cannot be written back
		for i, sid := range p.Sites {
			st := states[pi][i]
			if !st.bad && !st.misplaced {
				fixed[i] = sid
			} else {
				anyChange = true
			}
			r.Bad[pi][i] = st.bad
			if st.notBlob != nil {
				if notBlob == nil {
					notBlob = maps.Clone(exclude)
				}
				notBlob[sid] = true
			}
		}
		if !anyChange {
			continue
		}
		cands := cands
		if notBlob != nil {
			// A FIFO stands at a shard's name there: the shard goes to
			// another site, as a move does, and the FIFO stays.
			cands = k.e.Candidates(notBlob, lbl)
		}
		next, err := placement.Complete(policy, cands, p.Blob[:], fixed, sites)
		if err != nil {
			// Keeping every intact shard in place cannot satisfy the
			// policy: place the part afresh.
			next, err = placement.Complete(policy, cands, p.Blob[:], make([]string, len(p.Sites)), sites)
			if err != nil {
				return vault.RelocateResult{}, err
			}
		}
		r.Sites[pi] = next
	}
	return k.e.Relocate(ctx, m, r)
}

// manifestSites lists the distinct sites of a manifest's parts and copies,
// in order of first appearance: the sites holding a copy of it.
func manifestSites(m *manifest.Manifest) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, p := range m.Parts {
		for _, s := range p.Sites {
			add(s)
		}
	}
	for _, s := range m.Copies {
		add(s)
	}
	return out
}

// indexVersion is the index record of a verified manifest.
func indexVersion(m *manifest.Manifest, env []byte) index.Version {
	return index.Version{Vault: m.Vault, Key: m.Key, ID: m.Version, Created: m.Created,
		DeleteMarker: m.DeleteMarker, Size: m.Size, ETag: m.ETag, Label: m.Label, Envelope: env}
}
