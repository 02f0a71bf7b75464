package audit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Entries committed with the index.
//
// A change is acknowledged once its entry is durable (DESIGN §7). An
// entry appended to the journal costs its own fsync, after the index
// commit's fsync has been paid for the change itself: on small puts that
// second wait cost up to a quarter of the throughput. So the engine seals
// the entry of a commit ([Log.IndexEntry]) and writes it into the index in
// the commit's own transaction, where the index's fsync makes it durable
// with the change: neither is ever on disk without the other. The index
// keeps such entries in commit order until the log has drained them
// ([Pending]): the journal takes them, ahead of every group it writes
// (so that whatever was committed before an Append call precedes the
// call's entries in the log), and in the background shortly after each
// commit; once they are in the journal the index forgets them, storing a
// watermark. A crash between the journal's write and the index's removal
// leaves entries in both: [Log.AttachIndex] finds them in the log from the
// watermark on (every entry is unique: it commits to a random salt) and
// appends only the others, so an entry is in the log exactly once.

// Pending is the index's store of entries committed with its writes.
type Pending interface {
	// PendingAudit returns up to max entries with keys above after, in
	// key (commit) order, and their keys.
	PendingAudit(ctx context.Context, after uint64, max int) (keys []uint64, entries [][]byte, err error)
	// DrainedAudit removes the entries with keys up to through and stores
	// watermark: no entry with a key above through was appended to the log
	// before it held watermark entries.
	DrainedAudit(ctx context.Context, through, watermark uint64) error
	// AuditWatermark returns the watermark last stored, if any.
	AuditWatermark(ctx context.Context) (uint64, bool, error)
}

// ErrNotAttached: the log takes no entries from the index given to
// [Log.IndexEntry]; the caller appends its events instead.
var ErrNotAttached = errors.New("audit: the log takes no entries from this index")

// pullPage is how many pending entries one read of the index returns.
const pullPage = 4096

// drainDelay is how long the background drain lets commits gather after
// the first one before it takes them into the journal.
const drainDelay = 50 * time.Millisecond

// AttachIndex makes the log drain the entries src holds, and take every
// entry committed there before an Append ahead of the Append's own. Entries
// src holds that the log already has (a crash after the journal took them,
// before the index forgot them) are not appended again. Attaching the
// same index again does nothing; attaching another drains the one attached
// (what it cannot take stays in that index, for when it is attached again)
// and takes its place.
func (l *Log) AttachIndex(ctx context.Context, src Pending) error {
	l.amu.Lock()
	defer l.amu.Unlock()
	l.pmu.Lock()
	old := l.src
	l.pmu.Unlock()
	if old == src {
		return nil
	}
	if old != nil {
		if err := l.drain(ctx); err != nil {
			l.log.Warn("audit log: entries committed with the index left there (taken when it is attached again)", "err", err)
		}
		l.pmu.Lock()
		l.src = nil
		l.pmu.Unlock()
	}
	w, haveW, err := src.AuditWatermark(ctx)
	if err != nil {
		return fmt.Errorf("audit log: pending entries: %w", err)
	}
	var keys []uint64
	var entries [][]byte
	for after := uint64(0); ; {
		k, e, err := src.PendingAudit(ctx, after, pullPage)
		if err != nil {
			return fmt.Errorf("audit log: pending entries: %w", err)
		}
		keys, entries = append(keys, k...), append(entries, e...)
		if len(k) < pullPage {
			break
		}
		after = k[len(k)-1]
	}
	// Nothing pulls from src yet: whatever of entries is not in the log
	// now is appended at size or later (the watermark).
	size := l.appended()
	var through uint64
	if len(keys) > 0 {
		from := uint64(0)
		if haveW {
			from = min(w, size)
		}
		n, err := l.alreadyIn(ctx, entries, from, size)
		if err != nil {
			return err
		}
		if n > 0 {
			through = keys[n-1]
			l.log.Warn("audit log: entries committed with the index were in the log already (a crash before the index forgot them): not appended again", "count", n)
		}
		if n < len(keys) {
			l.log.Info("audit log: taking over entries committed with the index", "count", len(keys)-n)
		}
	}
	if err := src.DrainedAudit(ctx, through, size); err != nil {
		return fmt.Errorf("audit log: pending entries: %w", err)
	}
	l.pmu.Lock()
	if l.closing {
		l.pmu.Unlock()
		return fmt.Errorf("%w: closed", ErrLog)
	}
	l.src, l.pulledKey, l.pulledSeq, l.removedKey = src, through, size, through
	start := l.drained == nil
	if start {
		l.drained = make(chan struct{})
	}
	l.pmu.Unlock()
	l.j.mu.Lock()
	l.j.pull = l.pull
	l.j.mu.Unlock()
	if start {
		go l.drainLoop(l.ctx, l.drained)
	}
	l.pokeDrain()
	return nil
}

// alreadyIn returns how many of entries, from the first, are among the
// log's entries [from, size).
func (l *Log) alreadyIn(ctx context.Context, entries [][]byte, from, size uint64) (int, error) {
	want := make(map[[32]byte]int, len(entries))
	for i, e := range entries {
		c, err := Commitment(e)
		if err != nil {
			return 0, fmt.Errorf("audit log: pending entry: %w", err)
		}
		want[c] = i
	}
	found := make([]bool, len(entries))
	if err := l.AwaitIntegrated(ctx, size); err != nil {
		return 0, err
	}
	err := readEntries(ctx, l.reader.ReadEntryBundle, from, size, func(_ uint64, e []byte) error {
		if c, err := Commitment(e); err == nil {
			if i, ok := want[c]; ok {
				found[i] = true
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for n < len(found) && found[n] {
		n++
	}
	for _, f := range found[n:] {
		if f {
			// The journal takes pending entries in order: a gap means
			// the index or the log was edited.
			return 0, fmt.Errorf("audit log: entries committed with the index are in the log out of order: the index or the log was changed by hand")
		}
	}
	return n, nil
}

// pull is the journal's: every entry the index holds beyond those pulled
// before (called by the journal's flusher only).
func (l *Log) pull() ([][]byte, func(uint64), error) {
	l.pmu.Lock()
	src, after := l.src, l.pulledKey
	l.pmu.Unlock()
	if src == nil {
		return nil, nil, nil
	}
	var keys []uint64
	var entries [][]byte
	for {
		k, e, err := src.PendingAudit(l.ctx, after, pullPage)
		if err != nil {
			return nil, nil, err
		}
		keys, entries = append(keys, k...), append(entries, e...)
		if len(k) < pullPage {
			break
		}
		after = k[len(k)-1]
	}
	if len(keys) == 0 {
		return nil, nil, nil
	}
	last := keys[len(keys)-1]
	return entries, func(first uint64) {
		l.pmu.Lock()
		if l.src == src { // not replaced meanwhile (AttachIndex)
			l.pulledKey, l.pulledSeq = last, first+uint64(len(entries))
		}
		l.pmu.Unlock()
	}, nil
}

// IndexEntry seals ev as an entry to be committed with the write into the
// index into that makes the change it records (index.Version.Audit); the
// caller calls [Log.Committed] once the write committed. It returns
// ErrNotAttached when the log takes no entries from into (append them
// instead), and an
// error wrapping ErrLog, with the entry, when the log cannot take entries
// now: a fail-closed node refuses the change; another may commit the
// entry, which the log takes when it is sound again (reopened).
func (l *Log) IndexEntry(into Pending, ev Event) ([]byte, error) {
	l.pmu.Lock()
	attached := l.src != nil && l.src == into
	l.pmu.Unlock()
	if !attached {
		return nil, ErrNotAttached
	}
	if ev.Time == 0 {
		ev.Time = time.Now().UnixNano()
	}
	e, err := SealEntry(l.cfg.Keys, ev)
	if err != nil {
		return nil, err
	}
	if err := l.healthy(); err != nil {
		return e, err
	}
	return e, nil
}

// healthy returns why the log cannot take entries, if it cannot: its
// journal failed or is closed (as Append would fail).
func (l *Log) healthy() error {
	l.j.mu.Lock()
	jerr := l.j.err
	l.j.mu.Unlock()
	if jerr != nil {
		return fmt.Errorf("%w: %v", ErrLog, jerr)
	}
	return nil
}

// Committed tells the log that index writes carrying entries committed:
// it takes them into the journal shortly.
func (l *Log) Committed() { l.pokeDrain() }

func (l *Log) pokeDrain() {
	select {
	case l.drainKick <- struct{}{}:
	default:
	}
}

// drainLoop takes the index's entries into the journal, drainDelay after
// a commit pokes it, and has the index forget them.
func (l *Log) drainLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.drainStop:
			return
		case <-l.drainKick:
		}
		t.Reset(drainDelay)
		select {
		case <-ctx.Done():
			return
		case <-l.drainStop:
			return
		case <-t.C:
		}
		if err := l.drain(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("audit log: entries committed with the index not taken yet (they are durable there; retried at the next commit)", "err", err)
		}
	}
}

// testHookDrainAppended, if set (by tests), is called by drain after its
// journal append, before it looks at the index again.
var testHookDrainAppended atomic.Pointer[func(ctx context.Context)]

// drain takes every entry the index holds into the journal and has the
// index forget them.
func (l *Log) drain(ctx context.Context) error {
	l.pmu.Lock()
	attached := l.src != nil
	l.pmu.Unlock()
	if !attached {
		return nil
	}
	if _, err := l.j.append(nil); err != nil {
		return err
	}
	if h := testHookDrainAppended.Load(); h != nil {
		(*h)(ctx)
	}
	l.rmu.Lock()
	defer l.rmu.Unlock()
	l.pmu.Lock()
	src, through, seq, removed := l.src, l.pulledKey, l.pulledSeq, l.removedKey
	l.pmu.Unlock()
	// AttachIndex may have let the index go meanwhile, to attach
	// another: nothing to drain until that one is taken (it drains it).
	if src == nil || through <= removed {
		return nil
	}
	if err := src.DrainedAudit(ctx, through, seq); err != nil {
		return err
	}
	l.pmu.Lock()
	l.removedKey = max(l.removedKey, through)
	l.pmu.Unlock()
	return nil
}
