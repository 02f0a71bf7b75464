package vault

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/index"
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
	loaded    bool
	sites     map[string]uint64 // what the sites hold, as far as this engine knows
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
	ix, err := gi.Generations(ctx)
	if err != nil {
		return err
	}
	sites := e.siteStores()
	if !e.gens.loaded {
		if err := e.loadGenerations(ctx, gi, ix); err != nil {
			return err
		}
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
	for _, s := range sites {
		wg.Go(func() { s.Put(ctx, evidence.GenerationsBlob, bytes.NewReader(blob), int64(len(blob))) })
	}
	wg.Wait()
	e.gens.sites = out
	return nil
}

// loadGenerations reads the commit generations the sites hold and marks
// the index stale when its own (ix) are behind them. It must run before
// the engine's first commit (New does it): each commit raises the index's
// generation of its vault, so a restored index that took as many commits
// as it had lost before the sites were read would match them, and its
// staleness, and the deletions it does not know of, would go unseen
// (until the nineteenth pass it ran at the first write of the
// generations, a second after the first commit).
func (e *Engine) loadGenerations(ctx context.Context, gi GenerationIndex, ix map[string]uint64) error {
	onSites, where := evidence.ReadGenerations(ctx, e.siteStores(), e.k(), e.node)
	if behind := Behind(ix, onSites, where); behind != "" {
		if err := gi.MarkStale(ctx, index.StaleBehind, "the index is older than the sites ("+behind+")"); err != nil {
			return err
		}
		e.log.Error("the index is older than the sites; garbage collection is off until 'embassy index rebuild'", "why", behind)
	}
	e.gens.sites, e.gens.loaded = onSites, true
	return nil
}

// checkGenerationsAtOpen is loadGenerations at New, within
// generationsAtOpen. A failure is logged and left to the first write of
// the generations to try again, as before.
func (e *Engine) checkGenerationsAtOpen() {
	gi, ok := e.index.(GenerationIndex)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), generationsAtOpen)
	defer cancel()
	e.genFlush.Lock()
	defer e.genFlush.Unlock()
	ix, err := gi.Generations(ctx)
	if err == nil {
		err = e.loadGenerations(ctx, gi, ix)
	}
	if err != nil {
		e.log.Warn("the sites' commit generations not checked at open; checked at the first write of them", "err", err)
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
