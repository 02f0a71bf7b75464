package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
)

// Scrub verifies every shard block of every version against its checksum,
// checks every manifest copy and every placement against the vault's
// current policy, and (with Repair) rebuilds missing, corrupt and misplaced
// shards from the others onto sites that keep the policy. Draining sites
// are treated as misplaced: their shards move off. Each repair writes the
// new shards first, then the new manifest to every site that holds the
// version, then the index, and only then removes what it replaced, so a
// version keeps a conforming placement at every moment and a crash at any
// point leaves either the old placement or the new one.

// ScrubOptions configure a scrub.
type ScrubOptions struct {
	// Vaults limits the scrub to these vaults (all if empty).
	Vaults []string
	// Repair rebuilds what is found wanting; otherwise scrub only reports.
	Repair bool
	// Rate limits the bytes read per second (0: no limit).
	Rate int64
	// Progress, if set, is called after each version.
	Progress func(ScrubReport)
	// Lost, for drills: sites whose shards count as gone. Nothing is
	// repaired onto or read from them.
	Lost map[string]bool

	// OrphanGrace is how old an unreferenced blob must be before a
	// repairing scrub removes it (0: DefaultOrphanGrace; negative: never).
	OrphanGrace time.Duration

	avoid map[string]bool // unreachable now: not chosen for repairs
	depth int             // re-checks of one version after a repair
}

// ScrubReport says what a scrub found and did.
type ScrubReport struct {
	Versions        int      `json:"versions"`
	Bytes           int64    `json:"bytes"` // plaintext bytes of the versions scrubbed
	BytesRead       int64    `json:"bytes_read"`
	CorruptShards   int      `json:"corrupt_shards"`
	MissingShards   int      `json:"missing_shards"`
	MisplacedShards int      `json:"misplaced_shards"`
	MissingCopies   int      `json:"missing_manifest_copies"`
	OrphansRemoved  int      `json:"orphans_removed"`
	AtRisk          int      `json:"at_risk"` // versions found below full redundancy or off policy
	Repaired        int      `json:"repaired"`
	BytesRepaired   int64    `json:"bytes_repaired"` // shard bytes written
	ShardsMoved     int      `json:"shards_moved"`
	Unrepairable    []string `json:"unrepairable,omitempty"`
	Errors          []string `json:"errors,omitempty"`
	DurationSeconds float64  `json:"duration_seconds"`
	RemainingAtRisk int      `json:"remaining_at_risk"`
}

// shardState is what scrub found of one shard of one part.
type shardState struct {
	bad       bool // missing or corrupt
	corrupt   bool
	misplaced bool // on a draining or excluded site, or breaking the policy
}

// SetDraining marks sites as draining: new writes avoid them and scrub
// moves their shards off.
func (e *Engine) SetDraining(ids []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.draining = map[string]bool{}
	for _, id := range ids {
		e.draining[id] = true
	}
}

func (e *Engine) isDraining(id string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.draining[id]
}

// rateLimiter paces reads to a byte rate.
type rateLimiter struct {
	rate  int64
	start time.Time
	n     atomic.Int64
}

func (l *rateLimiter) wait(ctx context.Context, n int) error {
	if l == nil || l.rate <= 0 {
		return nil
	}
	total := l.n.Add(int64(n))
	due := l.start.Add(time.Duration(float64(total) / float64(l.rate) * float64(time.Second)))
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

// Scrub runs a scrub over the index's versions.
func (e *Engine) Scrub(ctx context.Context, o ScrubOptions) (ScrubReport, error) {
	start := time.Now()
	var rep ScrubReport
	ctx = AsSystem(ctx)
	// Sites that do not answer are not chosen for repairs (their shards
	// still count as missing only if reads fail).
	unreachable := e.probeSites(ctx)
	if len(unreachable) > 0 {
		if o.Lost == nil {
			o.Lost = map[string]bool{}
		}
		o.avoid = unreachable
	}
	lim := &rateLimiter{rate: o.Rate, start: start}
	vaults := o.Vaults
	if len(vaults) == 0 {
		for _, v := range e.Vaults() {
			vaults = append(vaults, v.Name)
		}
	}
	var mu sync.Mutex
	for _, vname := range vaults {
		v, err := e.Vault(vname)
		if err != nil {
			return rep, err
		}
		vo := index.VersionOptions{Max: 200}
		for {
			page, err := e.index.Versions(ctx, vname, vo)
			if err != nil {
				return rep, err
			}
			// Versions are independent: check a few at once.
			sem := make(chan struct{}, 8)
			var wg sync.WaitGroup
			for _, listed := range page.Versions {
				if ctx.Err() != nil {
					break
				}
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					r := e.scrubVersion(ctx, v, listed, o, lim)
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
	if o.Repair && o.OrphanGrace >= 0 && len(o.Vaults) == 0 && len(o.Lost) == 0 {
		grace := o.OrphanGrace
		if grace == 0 {
			grace = DefaultOrphanGrace
		}
		n, err := e.collectGarbage(ctx, grace)
		rep.OrphansRemoved = n
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	rep.DurationSeconds = time.Since(start).Seconds()
	e.Events.AtRisk.Store(int64(rep.RemainingAtRisk))
	e.Events.BytesRepaired.Add(rep.BytesRepaired)
	return rep, nil
}

func (r *ScrubReport) add(o ScrubReport) {
	r.Versions += o.Versions
	r.Bytes += o.Bytes
	r.BytesRead += o.BytesRead
	r.CorruptShards += o.CorruptShards
	r.MissingShards += o.MissingShards
	r.MisplacedShards += o.MisplacedShards
	r.MissingCopies += o.MissingCopies
	r.AtRisk += o.AtRisk
	r.Repaired += o.Repaired
	r.BytesRepaired += o.BytesRepaired
	r.ShardsMoved += o.ShardsMoved
	r.RemainingAtRisk += o.RemainingAtRisk
	r.Unrepairable = append(r.Unrepairable, o.Unrepairable...)
	r.Errors = append(r.Errors, o.Errors...)
}

func (e *Engine) siteDescriptors() map[string]site.Descriptor {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := map[string]site.Descriptor{}
	for id, s := range e.sites {
		out[id] = s.Descriptor
	}
	return out
}

// scrubVersion checks (and repairs) one version.
func (e *Engine) scrubVersion(ctx context.Context, v Vault, listed index.Version, o ScrubOptions, lim *rateLimiter) (rep ScrubReport) {
	rep.Versions = 1
	name := fmt.Sprintf("%s/%s version %s", listed.Vault, listed.Key, listed.ID)
	iv, err := e.index.Get(ctx, listed.Vault, listed.Key, listed.ID)
	if err != nil {
		rep.Errors = append(rep.Errors, name+": "+err.Error())
		return rep
	}
	m, err := manifest.Open(iv.Envelope, e.k())
	if err != nil {
		rep.Errors = append(rep.Errors, name+": "+err.Error())
		return rep
	}
	rep.Bytes = m.Size
	lost := func(sid string) bool { return o.Lost[sid] }
	// Manifest copies.
	copies := manifestSites(m)
	var missingCopies []string
	for _, sid := range copies {
		if lost(sid) {
			continue
		}
		s, ok := e.site(sid)
		if !ok {
			missingCopies = append(missingCopies, sid)
			continue
		}
		if _, err := s.Store.Stat(ctx, manifest.BlobName(m.Version)); err != nil {
			missingCopies = append(missingCopies, sid)
		}
	}
	rep.MissingCopies = len(missingCopies)
	if m.DeleteMarker {
		if len(missingCopies) > 0 && o.Repair {
			if err := e.writeCopies(ctx, m.Version, iv.Envelope, missingCopies, nil); err != nil {
				rep.Errors = append(rep.Errors, name+": restore manifest copies: "+err.Error())
			}
		}
		return rep
	}
	// Shards.
	sites := e.siteDescriptors()
	policy := v.Policy
	var lbl = (*labelRef)(nil)
	if m.Label != "" && e.labels != nil {
		if l, err := e.labelOf(m.Label); err == nil {
			lbl = &labelRef{l}
			policy = withLabel(policy)
		}
	}
	states := make([][]shardState, len(m.Parts))
	needs := false
	for pi, p := range m.Parts {
		quick := false
		if o.Repair && !p.Inline {
			// A part that will be rebuilt anyway (a shard blob is gone
			// or on a site being left) is not read twice: the rebuild
			// verifies every block it reads, and what it did not read
			// is verified by the next scrub.
			var ok bool
			states[pi], ok = e.quickCheck(ctx, m, p, lost)
			quick = !ok
		}
		if !quick {
			states[pi] = e.checkPart(ctx, m, p, lost, lim, &rep)
		}
		var descs []site.Descriptor
		for _, sid := range p.Sites {
			descs = append(descs, sites[sid])
		}
		partPolicy := policy
		partPolicy.K, partPolicy.M = m.K, m.M
		if len(placement.Check(partPolicy, descs)) > 0 {
			// The placement breaks the current policy (it changed, or a
			// site's attributes did): every shard is up for a move, and
			// Complete keeps those it can.
			for i := range states[pi] {
				states[pi][i].misplaced = true
			}
		}
		for i, sid := range p.Sites {
			st := &states[pi][i]
			if e.isDraining(sid) || lost(sid) {
				st.misplaced = true
			}
			if lbl != nil {
				if s, ok := e.site(sid); !ok || !e.accredited(s.Accredited, &lbl.l) {
					st.misplaced = true
				}
			}
			if st.bad {
				needs = true
				if st.corrupt {
					rep.CorruptShards++
				} else {
					rep.MissingShards++
				}
			} else if st.misplaced {
				needs = true
				rep.MisplacedShards++
			}
		}
	}
	if needs || len(missingCopies) > 0 {
		rep.AtRisk = 1
	}
	if !o.Repair || (!needs && len(missingCopies) == 0) {
		if needs {
			rep.RemainingAtRisk = 1
		}
		return rep
	}
	if !needs {
		// Only manifest copies are missing (and no inline part, whose
		// copies are shards and would have shown as bad).
		if err := e.writeCopies(ctx, m.Version, iv.Envelope, missingCopies, nil); err != nil {
			rep.Errors = append(rep.Errors, name+": restore manifest copies: "+err.Error())
			rep.RemainingAtRisk = 1
		} else {
			rep.Repaired = 1
		}
		return rep
	}
	problems, err := e.repairVersion(ctx, v, m, policy, lbl, states, o, &rep)
	if err != nil {
		rep.Unrepairable = append(rep.Unrepairable, name+": "+err.Error())
		rep.RemainingAtRisk = 1
		return rep
	}
	rep.Repaired = 1
	if problems > 0 && o.depth < 2 {
		// The rebuild met damage in shards it kept: check again.
		o.depth++
		again := e.scrubVersion(ctx, v, listed, o, lim)
		rep.CorruptShards += again.CorruptShards
		rep.BytesRepaired += again.BytesRepaired
		rep.ShardsMoved += again.ShardsMoved
		rep.Unrepairable = append(rep.Unrepairable, again.Unrepairable...)
		rep.RemainingAtRisk = again.RemainingAtRisk
	}
	return rep
}

type labelRef struct{ l label.Label }

// checkPart reads every shard of a part and verifies every block.
func (e *Engine) checkPart(ctx context.Context, m *manifest.Manifest, p manifest.Part, lost func(string) bool, lim *rateLimiter, rep *ScrubReport) []shardState {
	g := geometry{k: m.K, m: m.M, stripe: m.StripeSize, size: p.Size}
	out := make([]shardState, len(p.Sites))
	var wg sync.WaitGroup
	var read atomic.Int64
	for i, sid := range p.Sites {
		if lost(sid) {
			out[i].bad = true
			continue
		}
		wg.Go(func() {
			n, err := e.verifyShard(ctx, m, p, g, i, lim)
			read.Add(n)
			if err != nil {
				out[i].bad = true
				out[i].corrupt = errors.Is(err, erasure.ErrChecksum)
				e.log.WarnContext(ctx, "scrub: shard damaged", "vault", m.Vault, "version", m.Version, "part", p.Number, "shard", i, "site", sid, "err", err)
			}
		})
	}
	wg.Wait()
	rep.BytesRead += read.Load()
	return out
}

// verifyShard reads shard i of a part and checks every block.
func (e *Engine) verifyShard(ctx context.Context, m *manifest.Manifest, p manifest.Part, g geometry, i int, lim *rateLimiter) (int64, error) {
	s, ok := e.site(p.Sites[i])
	if !ok {
		return 0, fmt.Errorf("site %s not configured: %w", p.Sites[i], site.ErrNotFound)
	}
	var rc io.ReadCloser
	var err error
	if p.Inline {
		rc, err = inlineBlocks(ctx, s.Store, manifest.BlobName(m.Version), i, p, g)
	} else {
		name := manifest.ShardBlobName(p.Blob, i)
		info, serr := s.Store.Stat(ctx, name)
		if serr != nil {
			return 0, serr
		}
		if info.Size != g.blobSize() {
			return 0, fmt.Errorf("%w: blob %s is %d bytes, want %d", erasure.ErrChecksum, name, info.Size, g.blobSize())
		}
		rc, err = s.Store.Get(ctx, name, 0, -1)
	}
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	stripes := g.stripes()
	if p.Inline {
		stripes = 1
	}
	buf := getBlock(int(g.blockStride()))
	defer putBlock(buf)
	var n int64
	for j := range stripes {
		size := g.shardSize(j) + erasure.SumSize
		b := (*buf)[:size]
		if err := lim.wait(ctx, size); err != nil {
			return n, err
		}
		if _, err := io.ReadFull(rc, b); err != nil {
			return n, fmt.Errorf("%w: stripe %d: %v", erasure.ErrChecksum, j, err)
		}
		n += int64(size)
		if _, err := erasure.Verify(erasure.BlockID{Version: p.Blob, Part: uint32(p.Number), Stripe: uint64(j), Shard: uint8(i)}, b); err != nil {
			return n, err
		}
	}
	return n, nil
}

// repairVersion rebuilds and moves shards, then switches the version to
// the new placement.
func (e *Engine) repairVersion(ctx context.Context, v Vault, m *manifest.Manifest, policy placement.Policy, lbl *labelRef, states [][]shardState, o ScrubOptions, rep *ScrubReport) (problems int, err error) {
	defer func() {
		if err != nil {
			problems = 0
		}
	}()
	policy.K, policy.M = m.K, m.M
	exclude := maps.Clone(o.Lost)
	if exclude == nil {
		exclude = map[string]bool{}
	}
	maps.Copy(exclude, o.avoid)
	var l *label.Label
	if lbl != nil {
		l = &lbl.l
	}
	cands := e.candidates(exclude, l)
	for i := range cands {
		if e.isDraining(cands[i].ID) {
			cands[i].Down = true
		}
	}
	sites := e.siteDescriptors()
	newM := *m
	newM.Parts = slices.Clone(m.Parts)
	oldBlobs := map[string][]string{}
	tails := map[string][]byte{}
	shell := &Reader{e: e, ctx: ctx, m: m, skip: map[[2]int]bool{}, exclude: o.Lost, readAll: true}
	for pi, p := range m.Parts {
		fixed := make([]string, len(p.Sites))
		anyChange := false
		for i, sid := range p.Sites {
			st := states[pi][i]
			if !st.bad && !st.misplaced {
				fixed[i] = sid
			} else {
				anyChange = true
			}
			if st.bad {
				shell.skip[[2]int{p.Number, i}] = true
			}
		}
		if !anyChange && !p.Inline {
			continue
		}
		next := p.Sites
		if anyChange {
			var err error
			next, err = placement.Complete(policy, cands, p.Blob[:], fixed, sites)
			if err != nil {
				// Keeping every intact shard in place cannot satisfy the
				// policy: place the part afresh.
				next, err = placement.Complete(policy, cands, p.Blob[:], make([]string, len(p.Sites)), sites)
				if err != nil {
					return 0, err
				}
			}
		}
		changed := map[int]bool{}
		for i := range next {
			if next[i] != p.Sites[i] || states[pi][i].bad {
				changed[i] = true
			}
		}
		g := geometry{k: m.K, m: m.M, stripe: m.StripeSize, size: p.Size}
		if p.Inline {
			full, err := e.rebuildInline(ctx, shell, p, g)
			if err != nil {
				return 0, err
			}
			for i, sid := range next {
				tails[sid] = append(tails[sid], full[i]...)
			}
			rep.BytesRepaired += int64(len(changed)) * int64(g.shardSize(0)+erasure.SumSize)
		} else if len(changed) > 0 {
			n, err := e.rebuildShards(ctx, shell, p, g, next, changed)
			if err != nil {
				return 0, err
			}
			rep.BytesRepaired += n
			for i := range changed {
				if p.Sites[i] != next[i] {
					oldBlobs[p.Sites[i]] = append(oldBlobs[p.Sites[i]], manifest.ShardBlobName(p.Blob, i))
				}
			}
		}
		for i := range changed {
			if p.Sites[i] != next[i] {
				rep.ShardsMoved++
			}
		}
		newM.Parts[pi].Sites = next
	}
	newM.Revision++
	env, err := manifest.Seal(&newM, e.k())
	if err != nil {
		return 0, err
	}
	newCopies := manifestSites(&newM)
	var oldTails map[string][]byte
	if len(tails) > 0 {
		// Inline: the old copies are rebuilt from the same shards, to
		// restore them if a new copy cannot be written everywhere.
		oldTails = map[string][]byte{}
		for pi, p := range m.Parts {
			if !p.Inline {
				continue
			}
			full, err := e.rebuildInline(ctx, shell, p, geometry{k: m.K, m: m.M, stripe: m.StripeSize, size: p.Size})
			if err != nil {
				return 0, err
			}
			_ = pi
			for i, sid := range p.Sites {
				oldTails[sid] = append(oldTails[sid], full[i]...)
			}
		}
	}
	oldEnv, err := e.index.Get(ctx, m.Vault, m.Key, m.Version)
	if err != nil {
		return 0, err
	}
	if err := e.replaceCopies(ctx, m.Version, env, newCopies, tails, oldEnv.Envelope, manifestSites(m), oldTails); err != nil {
		return 0, err
	}
	if _, err := e.recommit(ctx, &newM, env); err != nil {
		return 0, err
	}
	// Only now remove what was replaced.
	for _, sid := range manifestSites(m) {
		if !slices.Contains(newCopies, sid) {
			oldBlobs[sid] = append(oldBlobs[sid], manifest.BlobName(m.Version))
		}
	}
	for sid := range oldBlobs {
		if o.Lost[sid] {
			delete(oldBlobs, sid)
		}
	}
	e.cleanup(ctx, oldBlobs)
	e.log.InfoContext(ctx, "scrub: version repaired", "vault", m.Vault, "version", m.Version)
	return len(shell.Problems()), nil
}

// fullStripe reads stripe j through pr (which authenticates it) and returns
// all k+m shards of it, reconstructing the missing ones.
func (pr *partReader) fullStripe(j int64) ([][]byte, error) {
	n := pr.g.k + pr.g.m
	ss := pr.g.shardSize(j)
	full := make([][]byte, n)
	have := 0
	_, err := pr.stripeWith(j, func(shards [][]byte) {
		for i, sh := range shards {
			if sh != nil {
				full[i] = append(make([]byte, 0, ss+erasure.SumSize), sh...)
				have++
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if have < n {
		if err := pr.coder.Reconstruct(full); err != nil {
			return nil, err
		}
	}
	return full, nil
}

// rebuildInline returns every shard block (data and checksum) of an inline
// part's single stripe.
func (e *Engine) rebuildInline(ctx context.Context, shell *Reader, p manifest.Part, g geometry) ([][]byte, error) {
	pr, err := e.newPartReader(ctx, shell, p, g, 0, 0)
	if err != nil {
		return nil, err
	}
	defer pr.close()
	full, err := pr.fullStripe(0)
	if err != nil {
		return nil, err
	}
	for i := range full {
		var sum [erasure.SumSize]byte
		erasure.Sum(&sum, erasure.BlockID{Version: p.Blob, Part: uint32(p.Number), Stripe: 0, Shard: uint8(i)}, full[i])
		full[i] = append(full[i], sum[:]...)
	}
	return full, nil
}

// rebuildShards streams the shards in changed, rebuilt stripe by stripe
// from the intact ones, to their sites in next. It returns the bytes
// written.
func (e *Engine) rebuildShards(ctx context.Context, shell *Reader, p manifest.Part, g geometry, next []string, changed map[int]bool) (int64, error) {
	pr, err := e.newPartReader(ctx, shell, p, g, 0, g.stripes()-1)
	if err != nil {
		return 0, err
	}
	defer pr.close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pipes := map[int]*io.PipeWriter{}
	errs := make(chan error, len(changed))
	var wg sync.WaitGroup
	for i := range changed {
		s, ok := e.site(next[i])
		if !ok {
			return 0, fmt.Errorf("site %s not configured", next[i])
		}
		rd, pw := io.Pipe()
		pipes[i] = pw
		wg.Go(func() {
			err := s.Store.Put(ctx, manifest.ShardBlobName(p.Blob, i), rd, g.blobSize())
			if err != nil {
				rd.CloseWithError(err)
				cancel(err)
				errs <- fmt.Errorf("site %s: %w", next[i], err)
			}
		})
	}
	var written int64
	var werr error
	for j := range g.stripes() {
		full, err := pr.fullStripe(j)
		if err != nil {
			werr = err
			break
		}
		for i, pw := range pipes {
			var sum [erasure.SumSize]byte
			erasure.Sum(&sum, erasure.BlockID{Version: p.Blob, Part: uint32(p.Number), Stripe: uint64(j), Shard: uint8(i)}, full[i])
			if _, err := pw.Write(full[i]); err != nil {
				werr = err
				break
			}
			if _, err := pw.Write(sum[:]); err != nil {
				werr = err
				break
			}
			written += int64(len(full[i]) + erasure.SumSize)
		}
		if werr != nil {
			break
		}
	}
	for _, pw := range pipes {
		if werr != nil {
			pw.CloseWithError(werr)
		} else {
			pw.Close()
		}
	}
	wg.Wait()
	close(errs)
	if werr != nil {
		return written, werr
	}
	for err := range errs {
		return written, err
	}
	return written, nil
}

// Unreachable returns the sites that do not answer now.
func (e *Engine) Unreachable(ctx context.Context) map[string]bool { return e.probeSites(ctx) }

// probeSites returns the sites that do not answer a stat.
func (e *Engine) probeSites(ctx context.Context) map[string]bool {
	out := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range e.siteIDs() {
		s, _ := e.site(id)
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := s.Store.Stat(pctx, "probe/embassy")
			if err != nil && !errors.Is(err, site.ErrNotFound) {
				mu.Lock()
				out[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// replaceCopies writes a new revision of a version's manifest copies (with
// inline tails) to sites. If any write fails, sites already written get
// their old copy back (oldEnv with oldTails) or lose the new one, so the
// version stays as it was.
func (e *Engine) replaceCopies(ctx context.Context, id manifest.ID, env []byte, sites []string, tails map[string][]byte, oldEnv []byte, oldSites []string, oldTails map[string][]byte) error {
	name := manifest.BlobName(id)
	errs := e.putCopies(ctx, name, env, sites, tails)
	first := errors.Join(errs...)
	if first == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for i, sid := range sites {
		if errs[i] != nil {
			continue
		}
		s, _ := e.site(sid)
		if slices.Contains(oldSites, sid) {
			body := append(append([]byte(nil), oldEnv...), oldTails[sid]...)
			if err := s.Store.Put(rctx, name, bytes.NewReader(body), int64(len(body))); err != nil {
				e.log.ErrorContext(ctx, "repair rollback failed; scrub again", "site", sid, "version", id, "err", err)
			}
		} else {
			s.Store.Delete(rctx, name)
		}
	}
	return first
}

// quickCheck stats a part's shard blobs. It reports false, with the
// states it found, when a blob is missing or sits on a site being drained
// or lost, so that the part needs a rebuild whatever its blocks hold.
func (e *Engine) quickCheck(ctx context.Context, m *manifest.Manifest, p manifest.Part, lost func(string) bool) ([]shardState, bool) {
	g := geometry{k: m.K, m: m.M, stripe: m.StripeSize, size: p.Size}
	out := make([]shardState, len(p.Sites))
	ok := true
	for i, sid := range p.Sites {
		if lost(sid) {
			out[i].bad, ok = true, false
			continue
		}
		if e.isDraining(sid) {
			out[i].misplaced, ok = true, false
		}
		s, found := e.site(sid)
		if !found {
			out[i].bad, ok = true, false
			continue
		}
		info, err := s.Store.Stat(ctx, manifest.ShardBlobName(p.Blob, i))
		if err != nil || info.Size != g.blobSize() {
			out[i].bad, ok = true, false
		}
	}
	return out, ok
}

// DefaultOrphanGrace is how old an unreferenced blob must be before scrub
// removes it: younger ones may belong to a put still in flight.
const DefaultOrphanGrace = time.Hour

// collectGarbage removes blobs no indexed version (or upload in progress)
// refers to: shards of puts abandoned by a crash, copies left behind by an
// interrupted repair or drain. On draining sites nothing is written any
// more, so everything unreferenced goes at once; elsewhere only what is
// older than grace.
func (e *Engine) collectGarbage(ctx context.Context, grace time.Duration) (int, error) {
	ref := map[string]map[string]bool{} // site -> blob names in use
	use := func(sid, name string) {
		if ref[sid] == nil {
			ref[sid] = map[string]bool{}
		}
		ref[sid][name] = true
	}
	markParts := func(m *manifest.Manifest) {
		for _, sid := range manifestSites(m) {
			use(sid, manifest.BlobName(m.Version))
		}
		for _, p := range m.Parts {
			if p.Inline {
				continue
			}
			for i, sid := range p.Sites {
				use(sid, manifest.ShardBlobName(p.Blob, i))
			}
		}
	}
	for _, v := range e.Vaults() {
		vo := index.VersionOptions{Max: 1000}
		for {
			page, err := e.index.Versions(ctx, v.Name, vo)
			if err != nil {
				return 0, err
			}
			for _, x := range page.Versions {
				iv, err := e.index.Get(ctx, v.Name, x.Key, x.ID)
				if err != nil {
					return 0, err
				}
				m, err := manifest.Open(iv.Envelope, e.k())
				if err != nil {
					// Without knowing what this version uses, collect nothing.
					return 0, fmt.Errorf("garbage collection stopped: %s/%s version %s: %w", v.Name, x.Key, x.ID, err)
				}
				markParts(m)
			}
			if !page.Truncated {
				break
			}
			vo.KeyMarker, vo.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
		}
		uo := index.UploadOptions{Max: 1000}
		for {
			up, err := e.index.ListUploads(ctx, v.Name, uo)
			if err != nil {
				return 0, err
			}
			for _, u := range up.Uploads {
				parts, err := e.parts(ctx, v.Name, u.ID)
				if err != nil {
					// Without knowing what the upload uses, collect nothing.
					return 0, fmt.Errorf("garbage collection stopped: upload %s: %w", u.ID, err)
				}
				for _, p := range parts {
					for i, sid := range p.Part.Sites {
						use(sid, manifest.ShardBlobName(p.Part.Blob, i))
					}
				}
			}
			if !up.Truncated {
				break
			}
			uo.KeyMarker, uo.IDMarker = up.NextKeyMarker, up.NextIDMarker
		}
	}
	removed := 0
	now := time.Now()
	for _, sid := range e.siteIDs() {
		s, _ := e.site(sid)
		draining := e.isDraining(sid)
		var doomed []string
		for _, prefix := range []string{manifest.ShardPrefix, manifest.ManifestPrefix} {
			err := s.Store.List(ctx, prefix, func(i site.Info) error {
				if ref[sid][i.Name] {
					return nil
				}
				if draining || now.Sub(i.Modified) > grace {
					doomed = append(doomed, i.Name)
				}
				return nil
			})
			if err != nil {
				e.log.WarnContext(ctx, "garbage collection: cannot list site", "site", sid, "err", err)
			}
		}
		for _, name := range doomed {
			if err := s.Store.Delete(ctx, name); err == nil {
				removed++
			}
		}
	}
	return removed, nil
}
