package audit

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/site"
)

// SitePrefix is where a site holds its copy of the log, in the tlog-tiles
// layout: SitePrefix+"checkpoint", SitePrefix+"tile/...".
const SitePrefix = "log/"

// maxResource bounds a tile, a bundle or a checkpoint read from a site.
const maxResource = 256 * (2 + MaxEntry)

// copier copies the log to the sites: bundles and tiles first, the
// checkpoint last, so that a site's checkpoint only ever covers what the
// site holds.
type copier struct {
	l *Log

	mu      sync.Mutex
	sites   map[string]*siteCopy
	changed chan struct{}
	kick    chan struct{}
	urgent  bool // the next round ignores retry times (someone waits)
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
	copies  sync.WaitGroup // the copies under way
	sem     chan struct{}  // bounds the copies that run at once
	// interval is the time between rounds that nothing urges
	// (Config.CopyInterval, then [Log.SetCopyInterval]), in nanoseconds.
	interval atomic.Int64
}

// siteCopy is what the copier knows of one site's copy.
type siteCopy struct {
	known bool   // size read from the site (or written by us)
	size  uint64 // entries the site's checkpoint covers
	// copied: the site holds every full entry bundle and full tile of the
	// first copied entries (copied >= size), though its checkpoint may
	// cover fewer. Full bundles and tiles never change, so a copy that
	// stops half way goes on from here. Kept in memory only: the site's
	// checkpoint is the durable record.
	copied uint64
	// garbage: partial tiles and bundles of trees of this size or more
	// may be on the site under full ones, to clean up after a checkpoint
	// (noGarbage: none).
	garbage uint64
	// partial: the partial tiles and bundle of a tree of this size are on
	// the site, written by this copier since it last read the site's
	// checkpoint (0: none known). A partial tile or bundle is named by its
	// width, and one of a given width holds the same hashes or entries in
	// every tree that has it, so a copy of a larger tree need not write
	// again the ones this one shares (the upper levels' tiles, most
	// rounds).
	partial uint64
	seen    bool  // the site's checkpoint was read once
	busy    bool  // a copy to the site runs
	err     error // the last attempt's failure
	tried   time.Time
	retryAt time.Time
	fails   int
}

func newCopier(l *Log) *copier {
	c := &copier{l: l, sites: map[string]*siteCopy{}, changed: make(chan struct{}), kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}), sem: make(chan struct{}, 8)}
	c.interval.Store(int64(l.cfg.CopyInterval))
	return c
}

// SetCopyInterval sets the time between copies to the sites that nothing
// urges (0: the default, 1s; at least Config.CheckpointInterval), in
// force from the next round, which it starts at once.
func (l *Log) SetCopyInterval(d time.Duration) {
	d = max(cmp.Or(d, DefaultCopyInterval), l.cfg.CheckpointInterval)
	if time.Duration(l.copies.interval.Swap(int64(d))) != d {
		l.copies.poke()
	}
}

// CopyInterval is the time between copies to the sites that nothing urges.
func (l *Log) CopyInterval() time.Duration { return time.Duration(l.copies.interval.Load()) }

// CopyWindow bounds the time from an entry's append to a checkpoint
// covering it on every site that answers, but for the copy's own time:
// the sequencer's BatchDelay, a CheckpointInterval, then a CopyInterval.
// A Sync (a delete waiting to remove blobs) does not wait for the copy
// interval: it urges a copy as soon as a checkpoint covers what it waits
// for.
func (l *Log) CopyWindow() time.Duration {
	return l.cfg.BatchDelay + l.cfg.CheckpointInterval + l.CopyInterval()
}

// DefaultCopyInterval is the time between copies to the sites that
// nothing urges, unless Config.CopyInterval says otherwise.
const DefaultCopyInterval = time.Second

func (c *copier) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *copier) run(ctx context.Context) {
	defer close(c.done)
	if c.l.cfg.Sites == nil {
		return
	}
	defer c.copies.Wait()
	iv := time.Duration(c.interval.Load())
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.quit:
			// The copies under way finish, then a last round copies the
			// latest checkpoint to every site that lacks it.
			c.copies.Wait()
			c.round(ctx, true)
			c.copies.Wait()
			return
		case <-c.kick:
		case <-t.C:
		}
		if d := time.Duration(c.interval.Load()); d != iv {
			iv = d
			t.Reset(d)
		}
		c.mu.Lock()
		urgent := c.urgent
		c.urgent = false
		c.mu.Unlock()
		c.round(ctx, urgent)
	}
}

func (c *copier) stop(ctx context.Context) {
	c.once.Do(func() { close(c.quit) })
	select {
	case <-c.done:
	case <-ctx.Done():
	}
}

// round starts a copy of the latest checkpoint to every site that lacks
// it, but those that failed recently (they wait for their retry time,
// unless urgent) and those a copy still runs to (the next round copies
// the latest checkpoint). It does not wait for the copies: a slow site
// does not hold up copies to the others.
func (c *copier) round(ctx context.Context, urgent bool) {
	if c.l.cfg.IntegrateWithCopies {
		c.l.integrateForCopy(ctx)
	}
	raw, err := c.l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return
	}
	cp, err := c.l.openCheckpoint(raw)
	if err != nil {
		c.l.log.Error("audit log: the local checkpoint does not verify", "err", err)
		return
	}
	sites := c.l.cfg.Sites()
	now := time.Now()
	for _, id := range slices.Sorted(maps.Keys(sites)) {
		c.mu.Lock()
		st := c.sites[id]
		if st == nil {
			st = &siteCopy{garbage: noGarbage}
			c.sites[id] = st
		}
		skip := st.busy || (st.known && st.size >= cp.Size) || (!urgent && now.Before(st.retryAt))
		if !skip {
			st.busy = true
		}
		c.mu.Unlock()
		if skip {
			continue
		}
		s := sites[id]
		c.copies.Go(func() {
			c.sem <- struct{}{}
			defer func() { <-c.sem }()
			err := c.copySite(ctx, st, s, raw, cp)
			c.mu.Lock()
			st.busy = false
			st.err, st.tried = err, time.Now()
			if err != nil {
				st.fails++
				st.retryAt = st.tried.Add(min(time.Duration(1<<min(st.fails, 5))*time.Second, 30*time.Second) + rand.N(time.Second))
				// Read the site's checkpoint again next time: the
				// site may have lost or regained its copy meanwhile.
				st.known, st.partial = false, 0
			} else {
				st.fails, st.retryAt = 0, time.Time{}
			}
			fails := st.fails // read under the lock: the next copy to this site writes it
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
			if err != nil && !errors.Is(err, errStale) && fails <= 3 {
				c.l.log.Warn("audit log not copied to a site; it catches up on a later copy", "site", id, "err", err)
			}
		})
	}
}

// integrateForCopy has the sequencer take what was appended (the journal;
// not what the index holds and the drain takes shortly) and waits for a
// checkpoint covering it, so that the round that calls it copies it
// (Config.IntegrateWithCopies). It waits at most a copy interval: a
// checkpoint a witness policy holds back, or a sequencer that stopped,
// leaves the round to copy the checkpoint there is, as it would without.
func (l *Log) integrateForCopy(ctx context.Context) {
	size := l.appended()
	if size == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, l.CopyInterval())
	defer cancel()
	if err := l.AwaitIntegrated(wctx, size); err != nil {
		return
	}
	// The publishing appender publishes at once after a batch (unless it
	// published within a checkpoint interval: then at its next tick).
	// Only the size is known here, unverified: the round reads the
	// checkpoint again and verifies it before copying anything.
	l.pub.await(wctx, size)
}

// checkpointSize reads the tree size a checkpoint note states (its second
// line), without verifying anything; 0 when it states none.
func checkpointSize(raw []byte) uint64 {
	_, rest, _ := bytes.Cut(raw, []byte("\n"))
	line, _, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(string(line), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// noGarbage: no partial tile or bundle to clean up.
const noGarbage = math.MaxUint64

// errStale: a local tile or bundle went while copying (the log moved on):
// the next round copies the newer checkpoint.
var errStale = errors.New("the local log moved on while copying")

// copySite copies the log of checkpoint cp (raw) to a site: the full
// bundles and tiles a step of copyStep bundles at a time, each step
// within CopyTimeout and remembered when done; then the partial ones and
// the checkpoint, last, also within CopyTimeout; then it removes the
// partial tiles and bundles that full ones replaced.
func (c *copier) copySite(ctx context.Context, st *siteCopy, s site.Site, raw []byte, cp *log.Checkpoint) error {
	timeout := c.l.cfg.CopyTimeout
	c.mu.Lock()
	known, size := st.known, st.size
	c.mu.Unlock()
	if !known {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		sraw, err := readSite(rctx, s, layout.CheckpointPath)
		switch {
		case errors.Is(err, site.ErrNotFound):
			size = 0
		case err != nil:
			cancel()
			return err
		default:
			scp, err := c.l.openCheckpoint(sraw)
			if err != nil {
				cancel()
				return fmt.Errorf("the site's log checkpoint does not verify (%v): not overwritten; 'embassy audit verify' names the problem", err)
			}
			if err := c.l.consistent(rctx, scp, cp); err != nil {
				cancel()
				return fmt.Errorf("the site holds a log that is not a prefix of the node's (%v): not overwritten; 'embassy audit verify' names the problem", err)
			}
			size = scp.Size
		}
		cancel()
		c.mu.Lock()
		// What the site's checkpoint covers is on the site. What was
		// copied beyond it (in memory) stays copied, unless the site's
		// checkpoint is behind what the node last wrote there: the site
		// lost its copy, which is copied again from its checkpoint.
		switch {
		case !st.seen && size == 0:
			st.copied, st.garbage = 0, noGarbage
		case !st.seen:
			st.copied, st.garbage = size, size
		case size < st.size || st.copied < size:
			st.copied, st.garbage = size, min(st.garbage, size)
		}
		st.known, st.seen, st.size = true, true, size
		// What the site holds of its partial tiles is known again only
		// once this copy writes them.
		st.partial = 0
		c.mu.Unlock()
	}
	for size < cp.Size {
		c.mu.Lock()
		from := max(st.copied, size)
		c.mu.Unlock()
		// The immutable part, step by step.
		end := cp.Size / layout.EntryBundleWidth * layout.EntryBundleWidth
		for from < end {
			to := min((from/layout.EntryBundleWidth+c.l.cfg.copyStep)*layout.EntryBundleWidth, end)
			sctx, cancel := context.WithTimeout(ctx, timeout)
			err := c.copyNames(sctx, s, fullBetween(from, to))
			cancel()
			if err != nil {
				return err
			}
			c.mu.Lock()
			st.copied = max(st.copied, to)
			c.mu.Unlock()
			from = to
		}
		// The partial tiles and bundles, then the checkpoint. Partial
		// ones go from the node as the log grows: copy the latest, but
		// those the site holds already.
		c.mu.Lock()
		st.garbage = min(st.garbage, cp.Size)
		held := st.partial
		c.mu.Unlock()
		names := partialOf(cp.Size)
		if held != 0 {
			have := partialOf(held)
			names = slices.DeleteFunc(names, func(n string) bool { return slices.Contains(have, n) })
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.copyNames(sctx, s, names)
		if err == nil {
			err = s.Put(sctx, SitePrefix+layout.CheckpointPath, bytes.NewReader(raw), int64(len(raw)))
		}
		cancel()
		if errors.Is(err, errStale) {
			nraw, rerr := c.l.reader.ReadCheckpoint(ctx)
			if rerr != nil {
				return err
			}
			ncp, rerr := c.l.openCheckpoint(nraw)
			if rerr != nil || ncp.Size <= cp.Size {
				return err
			}
			raw, cp = nraw, ncp
			continue
		}
		if err != nil {
			return err
		}
		c.mu.Lock()
		st.size, size = cp.Size, cp.Size
		st.copied = max(st.copied, cp.Size)
		st.partial = cp.Size
		garbage := st.garbage
		c.mu.Unlock()
		if garbage < cp.Size {
			c.clean(ctx, st, s, garbage, cp.Size)
		}
	}
	return nil
}

// clean removes the partial tiles and bundles that full ones of a tree of
// size entries cover, among those a tree of from entries held only
// partly: the full one holds every hash and entry they held. The partial
// ones under one full one sit in one directory and are removed at once,
// so that their removals share the directory's fsync (a site's Delete is
// durable when it returns; the dir driver groups concurrent ones).
func (c *copier) clean(ctx context.Context, st *siteCopy, s site.Site, from, size uint64) {
	for _, p := range fullBetween(from, size) {
		gctx, cancel := context.WithTimeout(ctx, c.l.cfg.CopyTimeout)
		var names []string
		err := s.List(gctx, SitePrefix+p+".p/", func(i site.Info) error {
			names = append(names, i.Name)
			return nil
		})
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, cleanWidth)
		for _, n := range names {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if derr := s.Delete(gctx, n); derr != nil {
					mu.Lock()
					err = cmp.Or(err, derr)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		cancel()
		if err != nil {
			return // left for the next clean-up
		}
	}
	// The partial ones of this tree are what the next clean-up looks for.
	c.mu.Lock()
	if st.garbage == from {
		st.garbage = size
	}
	c.mu.Unlock()
}

// cleanWidth bounds the removals of one clean-up that run at once.
const cleanWidth = 16

// fullBetween lists the full entry bundles and tiles a tree of to entries
// has that one of from entries lacks or holds only partly.
func fullBetween(from, to uint64) []string {
	var names []string
	for i := from / layout.EntryBundleWidth; i < to/layout.EntryBundleWidth; i++ {
		names = append(names, layout.EntriesPath(i, 0))
	}
	for _, t := range tilesBetween(from, to) {
		if t.partial == 0 {
			names = append(names, layout.TilePath(t.level, t.index, 0))
		}
	}
	return names
}

// partialOf lists the partial entry bundle and tiles of a tree of size
// entries.
func partialOf(size uint64) []string {
	var names []string
	if p := layout.PartialTileSize(0, size/layout.EntryBundleWidth, size); p > 0 {
		names = append(names, layout.EntriesPath(size/layout.EntryBundleWidth, p))
	}
	base := size / layout.EntryBundleWidth * layout.EntryBundleWidth
	for _, t := range tilesBetween(base, size) {
		if t.partial > 0 {
			names = append(names, layout.TilePath(t.level, t.index, t.partial))
		}
	}
	return names
}

// copyNames copies local tlog resources to the site.
func (c *copier) copyNames(ctx context.Context, s site.Site, names []string) error {
	tdir := filepath.Join(c.l.cfg.Dir, "tlog")
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(tdir, n))
		if errors.Is(err, fs.ErrNotExist) {
			return errStale
		}
		if err != nil {
			return err
		}
		if err := s.Put(ctx, SitePrefix+n, bytes.NewReader(b), int64(len(b))); err != nil {
			return err
		}
	}
	return nil
}

type tileID struct {
	level, index uint64
	partial      uint8
}

// tilesBetween lists the tiles a tree of size entries has that one of
// from entries lacks or holds only partly.
func tilesBetween(from, size uint64) []tileID {
	var out []tileID
	for level := uint64(0); level < 8; level++ {
		n := size >> (layout.TileHeight * level)
		if n == 0 {
			break
		}
		lo := (from >> (layout.TileHeight * level)) / layout.TileWidth
		for i := lo; i <= (n-1)/layout.TileWidth; i++ {
			out = append(out, tileID{level, i, layout.PartialTileSize(level, i, size)})
		}
	}
	return out
}

// Sync waits until each of sites holds a checkpoint covering the first
// size entries. It fails as soon as a copy to one of them fails after the
// call began, naming the site.
func (l *Log) Sync(ctx context.Context, size uint64, sites []string) error {
	if len(sites) == 0 {
		return nil
	}
	start := time.Now()
	if err := l.AwaitIntegrated(ctx, size); err != nil {
		return err
	}
	configured := l.cfg.Sites
	if configured == nil {
		return fmt.Errorf("audit log not copied to %v: the log has no sites", sites)
	}
	for {
		c := l.copies
		c.mu.Lock()
		c.urgent = true
		c.mu.Unlock()
		c.poke()
		known := configured()
		c.mu.Lock()
		ch := c.changed
		var waiting bool
		var errs []error
		for _, id := range sites {
			if _, ok := known[id]; !ok {
				errs = append(errs, fmt.Errorf("site %s is not configured", id))
				continue
			}
			st := c.sites[id]
			if st != nil && st.known && st.size >= size {
				continue
			}
			waiting = true
			if st != nil && st.err != nil && st.tried.After(start) {
				errs = append(errs, fmt.Errorf("site %s: %w", id, st.err))
			}
		}
		c.mu.Unlock()
		if len(errs) > 0 {
			return fmt.Errorf("audit log not copied: %w", errors.Join(errs...))
		}
		if !waiting {
			return nil
		}
		// A round copies the latest checkpoint, which may not cover size
		// yet (one is published within a checkpoint interval of the
		// integration): then it copies nothing new, and nothing would
		// end this wait before the next round nothing urges (the copy
		// interval). So urge another after half a checkpoint interval;
		// the waiting Syncs share it (one round reads the checkpoint
		// once for all of them).
		t := time.NewTimer(l.cfg.CheckpointInterval / 2)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("audit log not copied to %v in time: %w", sites, ctx.Err())
		}
		t.Stop()
	}
}

// SiteState is what the node knows of a site's copy of its log.
type SiteState struct {
	Site string
	// Size is the number of entries the site's checkpoint covers, as far
	// as the node knows (Known is false until it has read or written it).
	Size  uint64
	Known bool
	// Err is the last copy's failure, if it failed.
	Err error
}

// Sites reports what the node knows of every site's copy.
func (l *Log) Sites() []SiteState {
	c := l.copies
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []SiteState
	for _, id := range slices.Sorted(maps.Keys(c.sites)) {
		st := c.sites[id]
		out = append(out, SiteState{Site: id, Size: st.size, Known: st.known, Err: st.err})
	}
	return out
}

// openCheckpoint verifies a checkpoint against the log's keys.
func (l *Log) openCheckpoint(raw []byte) (*log.Checkpoint, error) {
	return OpenCheckpoint(raw, l.cfg.Origin, l.cfg.Verifiers)
}

// OpenCheckpoint verifies a checkpoint of origin signed by any of
// verifiers and parses it.
func OpenCheckpoint(raw []byte, origin string, verifiers []note.Verifier) (*log.Checkpoint, error) {
	if len(verifiers) == 0 {
		return nil, errors.New("no key to verify the checkpoint with")
	}
	var first error
	for _, v := range verifiers {
		cp, _, _, err := log.ParseCheckpoint(raw, origin, v)
		if err == nil {
			return cp, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// consistent checks that the tree of old is a prefix of the local tree of
// cur (old.Size <= cur.Size), from the local tiles.
func (l *Log) consistent(ctx context.Context, old, cur *log.Checkpoint) error {
	if old.Size > cur.Size {
		return fmt.Errorf("its checkpoint covers %d entries, the node's %d", old.Size, cur.Size)
	}
	if old.Size == 0 {
		return nil
	}
	pb, err := client.NewProofBuilder(ctx, cur.Size, l.reader.ReadTile)
	if err != nil {
		return err
	}
	p, err := pb.ConsistencyProof(ctx, old.Size, cur.Size)
	if err != nil {
		return err
	}
	return proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cur.Size, p, old.Hash, cur.Hash)
}

// readSite reads one log resource from a site's copy.
func readSite(ctx context.Context, s site.Site, name string) ([]byte, error) {
	rc, err := s.Get(ctx, SitePrefix+name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxResource+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxResource {
		return nil, fmt.Errorf("%s%s: larger than %d bytes", SitePrefix, name, maxResource)
	}
	return b, nil
}

// SiteFetcher reads a site's copy of a log (the tlog-tiles resources),
// for the tessera client and for verification.
type SiteFetcher struct{ Site site.Site }

// ReadCheckpoint reads the site's checkpoint.
func (f SiteFetcher) ReadCheckpoint(ctx context.Context) ([]byte, error) {
	return readSite(ctx, f.Site, layout.CheckpointPath)
}

// ReadTile reads a tile, the full one if the partial one is gone.
func (f SiteFetcher) ReadTile(ctx context.Context, l, i uint64, p uint8) ([]byte, error) {
	b, err := readSite(ctx, f.Site, layout.TilePath(l, i, p))
	if p > 0 && errors.Is(err, site.ErrNotFound) {
		b, err = readSite(ctx, f.Site, layout.TilePath(l, i, 0))
	}
	return b, err
}

// ReadEntryBundle reads an entry bundle, the full one if the partial one
// is gone.
func (f SiteFetcher) ReadEntryBundle(ctx context.Context, i uint64, p uint8) ([]byte, error) {
	b, err := readSite(ctx, f.Site, layout.EntriesPath(i, p))
	if p > 0 && errors.Is(err, site.ErrNotFound) {
		b, err = readSite(ctx, f.Site, layout.EntriesPath(i, 0))
	}
	return b, err
}
