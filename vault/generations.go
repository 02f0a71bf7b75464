package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/site"
)

// The index moves a per-vault generation on every commit, in the same
// transaction (indexes that implement GenerationIndex). The engine keeps a
// copy on every site (evidence.GenerationsBlob), written in batches shortly
// after commits and never lowered. An index whose generation is below the
// sites' is older than the sites — restored from a backup, or a copy from
// another machine — and is marked stale until an index rebuild: garbage
// collection refuses to run on it.

// GenerationIndex is implemented by indexes that keep commit generations.
type GenerationIndex interface {
	Generations(ctx context.Context) (map[string]uint64, error)
	// SetGenerations raises the generations and clears the stale mark
	// (after a rebuild from the sites).
	SetGenerations(ctx context.Context, gens map[string]uint64) error
	// MarkStale marks the index stale, of a kind and with a reason for
	// the operator, until SetGenerations.
	MarkStale(ctx context.Context, kind index.StaleKind, reason string) error
	// Stale returns the mark's kind and reason; reason "" when unmarked.
	Stale(ctx context.Context) (index.StaleKind, string, error)
}

// generationDelay is how long after a commit the sites' copy is written:
// commits within it share one write.
const generationDelay = time.Second

type genState struct {
	mu        sync.Mutex
	scheduled bool
	closed    bool
	timer     *time.Timer
	// loaded: sites holds what the sites were read to hold (set under
	// the engine's genFlush).
	loaded atomic.Bool
	sites  map[string]uint64 // what the sites hold, as far as this engine knows
	// heard are the sites whose generations were read (under genFlush):
	// only those are written. A site that did not answer when the others
	// were read (its disk not mounted yet) may hold more than the index,
	// restored from a backup: it is read, and the index checked against
	// it, before it is first written.
	heard map[string]bool
}

// noteCommit schedules a write of the generations to the sites.
func (e *Engine) noteCommit() {
	if _, ok := e.index.(GenerationIndex); !ok {
		return
	}
	e.gens.mu.Lock()
	defer e.gens.mu.Unlock()
	if e.gens.scheduled || e.gens.closed {
		return
	}
	e.gens.scheduled = true
	e.gens.timer = time.AfterFunc(generationDelay, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.FlushGenerations(ctx); err != nil {
			e.log.Warn("commit generations not written to the sites", "err", err)
		}
	})
}

// FlushGenerations writes the index's commit generations to every site
// (never lowering what a site shows). The first time, it reads what the
// sites hold, and marks the index stale when it is behind them.
func (e *Engine) FlushGenerations(ctx context.Context) error {
	gi, ok := e.index.(GenerationIndex)
	if !ok {
		return nil
	}
	e.gens.mu.Lock()
	e.gens.scheduled = false
	e.gens.mu.Unlock()
	// One flush at a time.
	e.genFlush.Lock()
	defer e.genFlush.Unlock()
	if !e.gens.loaded.Load() {
		// Until the sites were read, what they hold is unknown: written,
		// the index's generations would lower theirs.
		if err := e.loadGenerations(ctx, gi); err != nil {
			return err
		}
	}
	sites := e.siteStores()
	if err := e.readUnheardGenerations(ctx, gi, sites); err != nil {
		return err
	}
	ix, err := gi.Generations(ctx)
	if err != nil {
		return err
	}
	out := maps.Clone(e.gens.sites)
	for v, g := range ix {
		out[v] = max(out[v], g)
	}
	blob, err := evidence.SealGenerations(e.k(), e.node, out)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for id, s := range sites {
		if !e.gens.heard[id] {
			continue // read first, at the next flush
		}
		wg.Go(func() { s.Put(ctx, evidence.GenerationsBlob, bytes.NewReader(blob), int64(len(blob))) })
	}
	wg.Wait()
	e.gens.sites = out
	return nil
}

// readUnheardGenerations reads the generations of the sites in sites not
// heard yet (they did not answer at the first read, or were added since),
// marks the index stale when it is behind what they hold, takes that into
// what the sites hold, and marks those that answer heard. Called under
// genFlush, once the generations were loaded.
func (e *Engine) readUnheardGenerations(ctx context.Context, gi GenerationIndex, sites map[string]site.Site) error {
	unheard := map[string]site.Site{}
	for id, s := range sites {
		if !e.gens.heard[id] {
			unheard[id] = s
		}
	}
	if len(unheard) == 0 {
		return nil
	}
	onSites, where, answered := evidence.ReadGenerationsHeard(ctx, unheard, e.k(), e.node)
	if len(answered) == 0 {
		return nil
	}
	// Read after the sites', as at open (loadGenerations).
	if err := e.markIfBehind(ctx, gi, onSites, where); err != nil {
		return err
	}
	if e.gens.sites == nil {
		e.gens.sites = map[string]uint64{}
	}
	for v, g := range onSites {
		e.gens.sites[v] = max(e.gens.sites[v], g)
	}
	if e.gens.heard == nil {
		e.gens.heard = map[string]bool{}
	}
	for id := range answered {
		e.gens.heard[id] = true
	}
	return nil
}

// markIfBehind reads the index's generations (after the sites' onSites,
// read from where: see loadGenerations) and marks the index stale when it
// is behind them.
func (e *Engine) markIfBehind(ctx context.Context, gi GenerationIndex, onSites map[string]uint64, where map[string]string) error {
	ix, err := gi.Generations(ctx)
	if err != nil {
		return err
	}
	if behind := Behind(ix, onSites, where); behind != "" {
		if err := gi.MarkStale(ctx, index.StaleBehind, "the index is older than the sites ("+behind+")"); err != nil {
			return err
		}
		e.log.Error("the index is older than the sites; garbage collection is off until 'embassy index rebuild'", "why", behind)
	}
	return nil
}

// loadGenerations reads the commit generations the sites hold and marks
// the index stale when its own are behind them. It must run before the
// engine's first commit (New does it): each commit raises the index's
// generation of its vault, so a restored index that took as many commits
// as it had lost before the sites were read would match them, and its
// staleness, and the deletions it does not know of, would go unseen
// (until the nineteenth pass it ran at the first write of the
// generations, a second after the first commit).
//
// The index's generations are read after the sites': a site never holds
// more than the index held when the site was written, and the index's
// only grow, so a current index is never found behind. Read before (until
// the twentieth pass), they let an engine made beside a running one
// (Reconfigure's trial engine, a replacement after a change of label
// policies) find a current index behind when the running one committed
// and wrote its generations to a site between the two reads: the index
// was marked stale, and collection refused, until a rebuild.
//
// When no site answered (all unavailable at New, not mounted yet), it
// marks nothing and returns errGenerationsUnread: the sites are read again
// before the next commit or write of the generations (generationsChecked,
// FlushGenerations). Until the twentieth pass they were taken to hold
// none: the first flush then wrote the index's generations over the
// sites' (a restored index's, lower), and the restored index was never
// found behind.
//
// An engine with no sites configured (a node before its first `site add`)
// has no generations to read and none to overwrite: that is not a site
// failing to answer, and is not reported as one.
func (e *Engine) loadGenerations(ctx context.Context, gi GenerationIndex) error {
	stores := e.siteStores()
	onSites, where, answered := evidence.ReadGenerationsHeard(ctx, stores, e.k(), e.node)
	if len(answered) == 0 && len(stores) > 0 {
		return errGenerationsUnread
	}
	if err := e.markIfBehind(ctx, gi, onSites, where); err != nil {
		return err
	}
	e.gens.sites, e.gens.heard = onSites, answered
	e.gens.loaded.Store(true)
	return nil
}

// errGenerationsUnread: no site's commit generations could be read.
var errGenerationsUnread = errors.New("the sites' commit generations could not be read: no site answered")

// generationsChecked reads the sites' commit generations, as New does,
// when they have not been read yet (no site answered then): before a
// commit, which raises the index's, so that a restored index is found
// behind the sites before it takes as many commits as it lost. It costs
// nothing once they were read; a failure is left to the next commit or
// flush.
func (e *Engine) generationsChecked(ctx context.Context) {
	if e.gens.loaded.Load() {
		return
	}
	gi, ok := e.index.(GenerationIndex)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, generationsAtOpen)
	defer cancel()
	e.genFlush.Lock()
	defer e.genFlush.Unlock()
	if e.gens.loaded.Load() {
		return
	}
	if err := e.loadGenerations(ctx, gi); err != nil {
		e.log.WarnContext(ctx, "the sites' commit generations not checked before a commit; checked at the next", "err", err)
	}
}

// checkGenerationsAtOpen is loadGenerations at New, within
// generationsAtOpen. A failure (no site answering) is logged and left to
// the first commit or write of the generations to try again.
func (e *Engine) checkGenerationsAtOpen() {
	gi, ok := e.index.(GenerationIndex)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), generationsAtOpen)
	defer cancel()
	e.genFlush.Lock()
	defer e.genFlush.Unlock()
	if err := e.loadGenerations(ctx, gi); err != nil {
		e.log.Warn("the sites' commit generations not checked at open; checked before the first commit", "err", err)
	}
}

// generationsAtOpen bounds New's read of the sites' commit generations.
const generationsAtOpen = 30 * time.Second

// Close writes the commit generations to the sites one last time and stops
// scheduling writes. The engine must not commit afterwards.
func (e *Engine) Close(ctx context.Context) error {
	// Removals of deleted versions finish first (each waits at most a
	// few minutes for its records to reach the sites).
	e.Settle(ctx)
	e.gens.mu.Lock()
	e.gens.closed = true
	pending := e.gens.scheduled
	if e.gens.timer != nil && e.gens.timer.Stop() {
		e.gens.scheduled = false
	}
	e.gens.mu.Unlock()
	if !pending {
		// Wait for a flush already running.
		e.genFlush.Lock()
		defer e.genFlush.Unlock()
		return nil
	}
	return e.FlushGenerations(ctx)
}

// Behind says how the index's generations fall behind the sites', or "".
func Behind(ix, onSites map[string]uint64, where map[string]string) string {
	var out []string
	for _, v := range slices.Sorted(maps.Keys(onSites)) {
		if ix[v] < onSites[v] {
			out = append(out, fmt.Sprintf("vault %s: generation %d in the index, %d on site %s", v, ix[v], onSites[v], where[v]))
		}
	}
	return strings.Join(out, "; ")
}
