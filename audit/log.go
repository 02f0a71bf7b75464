package audit

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/site"
)

// Config configures a Log.
type Config struct {
	// Dir is the log's directory in the node directory. It holds the
	// tessera log (tlog/, in the tlog-tiles layout) and the local journal
	// (journal/).
	Dir string
	// Origin names the log in its checkpoints ([Origin]).
	Origin string
	// Keys seals and opens entries.
	Keys Keys
	// Signer signs checkpoints (Ed25519, the node identity); Cosigner, if
	// set, adds an ML-DSA-44 cosignature by the same identity. Both are
	// named Origin.
	Signer, Cosigner note.Signer
	// Verifiers are the keys a checkpoint read back from a site may be
	// signed with: the identity's, and those of identities it replaced.
	Verifiers []note.Verifier
	// Sites returns the sites copies go to (nil: none).
	Sites func() map[string]site.Site
	// Witnesses, if it has any components, must cosign a checkpoint
	// before it is published (C2SP tlog-witness, through tessera); they
	// can be changed while the log runs ([Log.SetWitnesses]). With
	// WitnessFailOpen a checkpoint the quorum did not cosign in time is
	// published anyway (writes go on); without, it is not published, and
	// what waits for a checkpoint on the sites (deletes) waits too.
	// WitnessFailOpen is fixed while the log is open.
	Witnesses       tessera.WitnessGroup
	WitnessFailOpen bool
	// CheckpointInterval is the least time between checkpoints (default
	// 200ms, at least 100ms). A checkpoint covers what was integrated
	// within an interval: at once when the batch went through the
	// appender that publishes (sequencer.go), at its next tick otherwise.
	CheckpointInterval time.Duration
	// BatchDelay is the longest an entry waits in the journal (where it
	// is durable already) before the sequencer takes it to the tree
	// (default 100ms), unless a full chunk of 256 is queued first. What
	// waited goes in as tessera batches of 256 and one batch of the rest
	// (sequencer.go); each writes and fsyncs an entry bundle, a tile per
	// level and the tree state: a few milliseconds here put a dozen
	// fsyncs beside every few puts.
	BatchDelay time.Duration
	// CopyInterval is the time between copies to the sites that nothing
	// urges (default 1s, at least CheckpointInterval; it can be changed
	// while the log runs, [Log.SetCopyInterval]); a Sync (a delete
	// waiting to remove blobs) urges one at once. Each round that finds a
	// newer checkpoint writes, on every site, the partial entry bundle and
	// tiles that changed and the checkpoint, each a durable write; a
	// longer interval writes them less often, and the sites hold the
	// newest entries later ([Log.CopyWindow]).
	CopyInterval time.Duration
	// IntegrateWithCopies: entries wait to be taken to the tree not for
	// BatchDelay but for the next copy round to the sites (which takes
	// what was appended before it, waits for the checkpoint covering it
	// and copies that), for anything that waits for them (a Sync, a
	// proof, reading the entries, Close), for a full chunk, or at most two
	// copy intervals (a log without sites). The sites hold an entry no
	// later than with BatchDelay: a round copies only what a checkpoint
	// covers when it starts. What this saves is the tree's work per
	// batch: every batch writes an entry bundle, a tile a level and the
	// tree state as durable files, and a checkpoint is signed and written
	// after it; at a few entries a second (large PUTs: two entries each)
	// that was a batch an entry, now one a copy interval. The local
	// checkpoint lags the journal by up to a copy interval instead of
	// BatchDelay (docs/design.md, "PUT CPU per GB at 64 MiB (issue 15,
	// thirteenth pass)").
	IntegrateWithCopies bool
	// CopyTimeout bounds one step of a copy to a site (default 60s): the
	// entry bundles and tiles of a few thousand entries, or the last
	// partial ones and the checkpoint. A site far behind catches up step
	// by step, each with its own deadline, keeping what it copied.
	CopyTimeout time.Duration
	Logger      *slog.Logger

	// copyStep is the number of entry bundles a copy step holds (default
	// 16, 4096 entries); tests make it smaller.
	copyStep uint64
	// wrapAdd, if set, wraps every tessera appender's Add (tests: a
	// future that never resolves, as tessera's does when its queue worker
	// stopped before taking the batch).
	wrapAdd func(tessera.AddFn) tessera.AddFn
	// wrapReader, if set, wraps the local log's reader (tests: counting
	// the checkpoint's reads).
	wrapReader func(tessera.LogReader) tessera.LogReader
	// noWatch: no inotify watch of the checkpoint (published.go), as
	// where none can be had.
	noWatch bool
}

// Log is the node's audit log. It is safe for concurrent use.
type Log struct {
	cfg     Config
	log     *slog.Logger
	seq     *sequencer // used by Open, then by feed only
	reader  tessera.LogReader
	j       *journal
	cancel  context.CancelFunc
	fed     chan struct{} // closed when the feeder stops
	tessera *tesseraGroup // the goroutines tessera started (tessera.go)

	mu         sync.Mutex
	queue      []journalRecord
	since      time.Time // when the oldest record in queue was queued, or later
	kick       chan struct{}
	urge       chan struct{} // IntegrateWithCopies: take what is queued now
	integrated uint64
	failed     error         // the sequencer stopped: why
	changed    chan struct{} // closed and replaced when integrated moves

	copies *copier
	pub    *published // the latest published checkpoint (published.go)

	// Entries committed with the index (pending.go): the index they are
	// in, how far the journal took them (the last key, and the log size
	// after it), and how far the index forgot them.
	ctx        context.Context
	amu        sync.Mutex // one AttachIndex at a time
	pmu        sync.Mutex
	src        Pending
	pulledKey  uint64
	pulledSeq  uint64
	removedKey uint64
	rmu        sync.Mutex // one removal at a time
	drainKick  chan struct{}
	drainStop  chan struct{} // closed by Close: the drain loop stops
	drained    chan struct{} // closed when the drain loop stops
	closing    bool

	// witnesses is the witness policy in force, read by tessera for each
	// checkpoint it publishes.
	witnesses witnessPolicy
}

// witnessPolicy is the witness group in force, changeable while tessera
// runs: tessera asks it for the witnesses' endpoints and whether their
// cosignatures satisfy the policy each time it publishes a checkpoint.
type witnessPolicy struct {
	g atomic.Pointer[tessera.WitnessGroup]
}

// Satisfied reports whether cp carries the cosignatures the policy needs.
func (p *witnessPolicy) Satisfied(cp []byte) bool {
	g := p.g.Load()
	return g == nil || len(g.Components) == 0 || g.Satisfied(cp)
}

// Endpoints returns the add-checkpoint URLs of the witnesses in force.
func (p *witnessPolicy) Endpoints() map[string]note.Verifier {
	if g := p.g.Load(); g != nil && len(g.Components) > 0 {
		return g.Endpoints()
	}
	return map[string]note.Verifier{}
}

// SetWitnesses puts a new witness policy in force: the next checkpoint is
// sent to its witnesses and published when its quorum cosigned (an empty
// group: no witness). Whether a checkpoint without the quorum is
// published (Config.WitnessFailOpen) does not change.
func (l *Log) SetWitnesses(g tessera.WitnessGroup) {
	l.witnesses.g.Store(&g)
}

// WitnessFailOpen reports the log's Config.WitnessFailOpen.
func (l *Log) WitnessFailOpen() bool { return l.cfg.WitnessFailOpen }

// ErrLog: the log cannot take entries (its journal failed, or it is
// closed). A node with fail_closed refuses the change being recorded.
var ErrLog = errors.New("audit log unavailable")

// Open opens (or creates) the log in cfg.Dir and takes over whatever its
// journal holds beyond what the log has integrated.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Dir == "" || cfg.Origin == "" || cfg.Keys == nil || cfg.Signer == nil {
		return nil, errors.New("audit: Dir, Origin, Keys and Signer are required")
	}
	if cfg.Signer.Name() != cfg.Origin || (cfg.Cosigner != nil && cfg.Cosigner.Name() != cfg.Origin) {
		return nil, fmt.Errorf("audit: checkpoint signers must be named %q", cfg.Origin)
	}
	cfg.CheckpointInterval = max(cmp.Or(cfg.CheckpointInterval, 200*time.Millisecond), 100*time.Millisecond)
	cfg.BatchDelay = max(cmp.Or(cfg.BatchDelay, 100*time.Millisecond), time.Millisecond)
	cfg.CopyInterval = max(cmp.Or(cfg.CopyInterval, DefaultCopyInterval), cfg.CheckpointInterval)
	cfg.CopyTimeout = cmp.Or(cfg.CopyTimeout, 60*time.Second)
	cfg.copyStep = cmp.Or(cfg.copyStep, 16)
	l := &Log{cfg: cfg, log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)), kick: make(chan struct{}, 1), urge: make(chan struct{}, 1), drainKick: make(chan struct{}, 1), drainStop: make(chan struct{}), changed: make(chan struct{}), fed: make(chan struct{})}
	quietTessera()
	// A log of this directory closed in this process whose tessera
	// goroutines outlived its Close must not write beside this one.
	if err := awaitTesseraStopped(ctx, cfg.Dir); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	// One open log per directory (dirlock.go).
	lock, err := lockDir(cfg.Dir, l.log)
	if err != nil {
		return nil, err
	}
	tdir := filepath.Join(cfg.Dir, "tlog")
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		lock.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	drv, err := posix.New(ctx, posix.Config{Path: tdir})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	lc, ok := drv.(driverAppender)
	if !ok {
		lock.Close()
		return nil, fmt.Errorf("audit log: tessera driver %T makes no appenders", drv)
	}
	var cosigners []note.Signer
	if cfg.Cosigner != nil {
		cosigners = append(cosigners, cfg.Cosigner)
	}
	// The policy is always installed, so that witnesses added later take
	// part; with none, tessera publishes at once.
	l.SetWitnesses(cfg.Witnesses)
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var reader tessera.LogReader
	// One appender per chunk size (sequencer.go); the first publishes.
	wrap := func(add tessera.AddFn) tessera.AddFn {
		if cfg.wrapAdd != nil {
			return cfg.wrapAdd(add)
		}
		return add
	}
	// Every goroutine tessera starts is started by an appender made
	// here: the group knows them, and Close waits for them.
	l.tessera = newTesseraGroup(cfg.Dir)
	l.tessera.lock = lock
	// The appenders of chunk sizes other than powers of two are made when
	// first needed, by the feeder: each is made under the group's label
	// too.
	//
	// Every appender, the publisher too, is the POSIX driver's own, without
	// the lifecycle tessera.NewAppender wraps around it, which adds per
	// appender a goroutine reading the tree state twice every 100 ms for
	// metrics embassy does not export (eight of them read it some 160
	// times a second on an idle node), a size check that SealEntry makes
	// already (MaxEntry), a tracing span and a memoized future for every
	// entry, and a shutdown that waits for a checkpoint covering the
	// appender's entries, which Close waits for once for all
	// (awaitCheckpoint). The checks NewAppender makes of the options hold
	// here: a signer, and checkpoint signers named Origin (above). See
	// docs/design.md, "Why the sequencer cuts tessera's batches itself".
	appender := func(maxSize uint, maxAge time.Duration) (tessera.AddFn, error) {
		opts := tessera.NewAppendOptions().WithBatching(maxSize, maxAge)
		if reader == nil {
			opts = opts.WithPushback(8192).
				WithCheckpointSigner(cfg.Signer, cosigners...).
				WithCheckpointInterval(cfg.CheckpointInterval).
				WithWitnesses(tessera.NewWitnessGroup(1, &l.witnesses), &tessera.WitnessOptions{FailOpen: cfg.WitnessFailOpen})
		} else {
			opts = opts.WithCheckpointSigner(noPublisher{cfg.Origin}).
				WithCheckpointInterval(never).
				WithCheckpointRepublishInterval(0).
				WithGarbageCollectionInterval(0)
		}
		app, r, err := lc.Appender(actx, opts)
		if err != nil {
			return nil, err
		}
		if reader == nil {
			reader = r
		}
		return wrap(app.Add), nil
	}
	seq, err := newSequencer(func(maxSize uint, maxAge time.Duration) (add tessera.AddFn, err error) {
		l.tessera.do(actx, func() { add, err = appender(maxSize, maxAge) })
		return add, err
	})
	fail := func(err error) (*Log, error) {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		cancel()
		l.tessera.stop(sctx, l.log)
		return nil, err
	}
	if err != nil {
		return fail(fmt.Errorf("audit log: %w", err))
	}
	size, err := reader.IntegratedSize(ctx)
	if err != nil {
		return fail(fmt.Errorf("audit log: %w", err))
	}
	if cfg.wrapReader != nil {
		reader = cfg.wrapReader(reader)
	}
	l.seq, l.reader, l.cancel, l.ctx = seq, reader, cancel, actx
	local := size
	if size, err = l.catchUp(ctx, size); err != nil {
		return fail(err)
	}
	j, recs, err := openJournal(filepath.Join(cfg.Dir, "journal"), local, size)
	if err != nil {
		return fail(err)
	}
	// Journal entries the sites' log now holds must be the same entries.
	for len(recs) > 0 && recs[0].seq < size {
		r := recs[0]
		same := false
		readEntries(ctx, reader.ReadEntryBundle, r.seq, r.seq+1, func(_ uint64, e []byte) error {
			same = bytes.Equal(e, r.entry)
			return nil
		})
		if !same {
			j.close()
			return fail(fmt.Errorf("audit log: entry %d in the node's journal is not the entry %d of the sites' log: the node directory and the sites hold different histories; move %s aside to take the sites' log, after keeping it for investigation", r.seq, r.seq, cfg.Dir))
		}
		recs = recs[1:]
	}
	l.j = j
	l.integrated = size
	l.queue, l.since = recs, time.Now()
	j.onWrite = l.enqueue
	l.watchPublished(tdir)
	go l.feed(actx)
	if len(recs) > 0 {
		l.log.Info("audit log: taking over entries from the local journal", "from", recs[0].seq, "count", len(recs))
		l.poke()
	}
	c := newCopier(l)
	l.mu.Lock()
	l.copies = c
	l.mu.Unlock()
	go c.run(actx)
	return l, nil
}

// driverAppender is the lifecycle a tessera storage driver implements
// (posix.Storage's Appender, which tessera.NewAppender calls).
type driverAppender interface {
	Appender(context.Context, *tessera.AppendOptions) (*tessera.Appender, tessera.LogReader, error)
}

// Append makes events durable in the local journal and returns the index
// of the last one. Events with no time get the current time.
func (l *Log) Append(ctx context.Context, evs ...Event) (uint64, error) {
	if len(evs) == 0 {
		return 0, errors.New("audit: nothing to append")
	}
	now := time.Now().UnixNano()
	entries := make([][]byte, len(evs))
	for i := range evs {
		if evs[i].Time == 0 {
			evs[i].Time = now
		}
		e, err := SealEntry(l.cfg.Keys, evs[i])
		if err != nil {
			return 0, err
		}
		entries[i] = e
	}
	first, err := l.j.append(entries)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrLog, err)
	}
	return first + uint64(len(entries)) - 1, nil
}

// enqueue hands written journal records to the sequencer (called by the
// journal in seq order).
func (l *Log) enqueue(recs []journalRecord) {
	l.mu.Lock()
	if len(l.queue) == 0 {
		l.since = time.Now()
	}
	l.queue = append(l.queue, recs...)
	l.mu.Unlock()
	l.poke()
}

func (l *Log) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// feed is the single sequencer: it adds journal records to the tessera
// log in order (sequencer.go), each at its own index. Records wait for
// more to join them until the oldest is Config.BatchDelay old or a full
// chunk is queued.
func (l *Log) feed(ctx context.Context) {
	defer close(l.fed)
	var entries [][]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		}
		if !l.gather(ctx) {
			return
		}
		// What is queued now goes in; what arrives meanwhile waits for
		// the next round (it was queued after now).
		l.mu.Lock()
		todo := len(l.queue)
		l.since = time.Now()
		l.mu.Unlock()
		for todo > 0 {
			l.mu.Lock()
			n := min(todo, 1024)
			// Copied out and cleared, so that the queue's array does not
			// keep every record of a burst alive after it is integrated.
			batch := slices.Clone(l.queue[:n])
			clear(l.queue[:n])
			l.queue = l.queue[n:]
			if len(l.queue) == 0 {
				l.queue = nil
			}
			l.mu.Unlock()
			todo -= n
			entries = entries[:0]
			for _, r := range batch {
				entries = append(entries, r.entry)
			}
			err := l.seq.sequence(ctx, batch[0].seq, entries, func(size uint64) {
				l.mu.Lock()
				l.integrated = size
				close(l.changed)
				l.changed = make(chan struct{})
				l.mu.Unlock()
			})
			clear(entries)
			if err != nil {
				if ctx.Err() == nil {
					l.log.Error("audit log: the sequencer stopped; entries stay in the local journal until the node restarts", "err", err)
				}
				l.mu.Lock()
				l.failed = err
				close(l.changed)
				l.changed = make(chan struct{})
				l.mu.Unlock()
				return
			}
			l.j.release(batch[n-1].seq + 1)
		}
		if l.queued() > 0 {
			l.poke()
		}
	}
}

// gather waits until the oldest queued record is BatchDelay old or a full
// chunk is queued; false if ctx ended.
func (l *Log) gather(ctx context.Context) bool {
	l.mu.Lock()
	n, since := len(l.queue), l.since
	l.mu.Unlock()
	if n >= maxChunk {
		return true
	}
	wait, urge := l.cfg.BatchDelay, (<-chan struct{})(nil)
	if l.cfg.IntegrateWithCopies {
		wait, urge = 2*l.copyInterval(), l.urge
	}
	t := time.NewTimer(wait - time.Since(since))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-urge:
			return true
		case <-l.kick:
			if l.queued() >= maxChunk {
				return true
			}
		}
	}
}

func (l *Log) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

// urgeIntegration has the sequencer take what is queued now
// (IntegrateWithCopies; otherwise it takes it within BatchDelay anyway).
func (l *Log) urgeIntegration() {
	if !l.cfg.IntegrateWithCopies {
		return
	}
	select {
	case l.urge <- struct{}{}:
	default:
	}
}

// copyInterval is the copy interval in force (Config.CopyInterval until
// the copier runs).
func (l *Log) copyInterval() time.Duration {
	l.mu.Lock()
	c := l.copies
	l.mu.Unlock()
	if c == nil {
		return l.cfg.CopyInterval
	}
	return time.Duration(c.interval.Load())
}

// Appended returns the number of entries durably appended, those
// committed with the index (pending.go) included: it takes them first.
func (l *Log) Appended() uint64 {
	if err := l.drain(context.Background()); err != nil {
		l.log.Warn("audit log: entries committed with the index not taken yet", "err", err)
	}
	return l.appended()
}

// appended is Appended without taking the index's entries.
func (l *Log) appended() uint64 {
	l.j.mu.Lock()
	defer l.j.mu.Unlock()
	return l.j.next
}

// Integrated returns the number of entries in the Merkle tree.
func (l *Log) Integrated() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.integrated
}

// AwaitIntegrated waits until the tree holds at least size entries.
func (l *Log) AwaitIntegrated(ctx context.Context, size uint64) error {
	for {
		l.mu.Lock()
		n, failed, ch := l.integrated, l.failed, l.changed
		l.mu.Unlock()
		if n >= size {
			return nil
		}
		if failed != nil {
			return fmt.Errorf("%w: %v", ErrLog, failed)
		}
		l.urgeIntegration()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// awaitCheckpoint waits until the local checkpoint covers size entries:
// the publishing appender publishes what any appender integrated within
// Config.CheckpointInterval (at once for its own batches), unless a
// witness policy without fail-open holds it back. It waits for the
// publication (published.go), then verifies what was published.
func (l *Log) awaitCheckpoint(ctx context.Context, size uint64) error {
	want := size
	for {
		if err := l.pub.await(ctx, want); err != nil {
			return fmt.Errorf("audit log: %w: the latest checkpoint covers %d entries of %d", err, l.pub.latest(), size)
		}
		if _, cp, err := l.Checkpoint(ctx); err == nil && cp.Size >= size {
			return nil
		}
		// Not verified: wait for the next.
		want = max(want, l.pub.latest()+1)
	}
}

// Checkpoint returns the latest checkpoint the log published (signed
// note) and its parsed form.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, *log.Checkpoint, error) {
	raw, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return nil, nil, err
	}
	cp, err := l.openCheckpoint(raw)
	if err != nil {
		return nil, nil, err
	}
	return raw, cp, nil
}

// Reader returns the local log's reader (tiles, bundles, checkpoint).
func (l *Log) Reader() tessera.LogReader { return l.reader }

// Origin returns the log's origin.
func (l *Log) Origin() string { return l.cfg.Origin }

// Entries calls fn for every integrated entry at index from or later, in
// order, with its raw bytes. It first waits for what was appended before
// the call to be integrated.
func (l *Log) Entries(ctx context.Context, from uint64, fn func(i uint64, entry []byte) error) error {
	if err := l.drain(ctx); err != nil {
		return err
	}
	size := l.appended()
	if err := l.AwaitIntegrated(ctx, size); err != nil {
		return err
	}
	return readEntries(ctx, l.reader.ReadEntryBundle, from, size, fn)
}

// Events is Entries with every entry opened.
func (l *Log) Events(ctx context.Context, from uint64, fn func(i uint64, e Event) error) error {
	return l.Entries(ctx, from, func(i uint64, entry []byte) error {
		e, _, err := OpenEntry(l.cfg.Keys, entry)
		if err != nil {
			return fmt.Errorf("audit log entry %d: %w", i, err)
		}
		return fn(i, e)
	})
}

// readEntries reads entries [from, size) of a tree of size entries
// through a bundle fetcher, one bundle at a time.
func readEntries(ctx context.Context, fetch func(context.Context, uint64, uint8) ([]byte, error), from, size uint64, fn func(i uint64, entry []byte) error) error {
	if from >= size {
		return nil
	}
	for ri := range layout.Range(from, size-from, size) {
		raw, err := fetch(ctx, ri.Index, ri.Partial)
		if err != nil {
			return fmt.Errorf("audit log: entry bundle %d: %w", ri.Index, err)
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return fmt.Errorf("audit log: entry bundle %d: %w", ri.Index, err)
		}
		if uint(len(b.Entries)) < ri.First+ri.N {
			return fmt.Errorf("audit log: entry bundle %d holds %d entries, want %d", ri.Index, len(b.Entries), ri.First+ri.N)
		}
		for k := ri.First; k < ri.First+ri.N; k++ {
			if err := fn(ri.Index*layout.EntryBundleWidth+uint64(k), b.Entries[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close stops taking entries, waits (within ctx) for the sequencer to
// integrate what the journal holds and for a checkpoint covering it, makes
// a last copy to the sites, and closes the log. When ctx ends first, Close
// stops the log's goroutines and returns ctx's error without waiting for a
// batch tessera still holds (sequencer.sequence); what the journal holds
// beyond the tree is taken at the next Open.
func (l *Log) Close(ctx context.Context) error {
	// The background drain stops first: the last drain is this one.
	l.pmu.Lock()
	drained := l.drained
	if !l.closing {
		l.closing = true
		close(l.drainStop)
	}
	l.pmu.Unlock()
	if drained != nil {
		<-drained
	}
	if err := l.drain(ctx); err != nil {
		l.log.Warn("audit log: entries committed with the index not taken before closing (they are durable there; taken at the next opening)", "err", err)
	}
	size := l.appended()
	l.j.close()
	err := l.AwaitIntegrated(ctx, size)
	if err == nil && size > 0 {
		err = l.awaitCheckpoint(ctx, size)
	}
	l.copies.stop(ctx)
	l.cancel()
	<-l.fed
	// tessera's goroutines stop with the context, but it has no way to
	// wait for them: one caught publishing a checkpoint, integrating a
	// batch or collecting garbage writes after the cancel.
	l.tessera.stop(ctx, l.log)
	l.pub.close()
	return err
}
