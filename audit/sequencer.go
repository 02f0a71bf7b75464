package audit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/transparency-dev/tessera"
)

// The journal gives every entry its index before tessera sees it (an
// Append returns it), so entry i of the journal must be entry i of the
// tree. tessera promises that "any further calls to Add after this returns
// will guarantee that the later entry appears later in the log", but its
// queue (storage/internal/queue.go in v1.0.4) does not keep that promise
// across batches: a batch is cut either in the Add that fills it (maxSize)
// or by a timer goroutine (maxAge), and both send the cut batch to the one
// goroutine that sequences only after releasing the queue's lock. A timer
// cut whose goroutine is descheduled between the two can be overtaken by
// any later cut, and the later entries then get the earlier indexes (seen
// at load average ~40: "journal entry 173056 was sequenced at 173179").
//
// So the sequencer never lets tessera cut a batch on its own. It runs one
// appender per batch size over the same POSIX storage, each with a batch
// age that never runs out: a chunk of n entries goes to the appender of
// size n, whose queue cuts it in the Add of its n-th entry, in the
// sequencer's own goroutine, and the sequencer waits for that chunk's
// indexes before it adds anything else. At most one batch is ever between
// the queue and the tree, so no two can swap. A run of entries is added as
// chunks of maxChunk, then the rest as one chunk; how long entries wait to
// be batched is the sequencer's choice (Config.BatchDelay), not tessera's.
//
// The appenders of the sizes 1, 2, 4, ... maxChunk are made with the
// sequencer; one of any other size the first time a chunk of that size
// comes (at most maxChunk appenders in all, each two idle goroutines of
// tessera's). Every tessera batch writes the entry bundle, a tile a level
// and the tree state, each a file written with O_SYNC, renamed and its
// directory fsynced, after reading back the partial bundle and tiles: one
// batch for what gathered in BatchDelay, where the binary decomposition of
// the count made one for each bit set in it (docs/design.md, "Small puts
// (issue 15, eleventh pass)"). Should an appender of another size fail to
// be made, its chunks go as before, largest power of two first.
//
// Only the size-1 appender publishes checkpoints (and collects old partial
// tiles); the others' signer refuses, and their checkpoint interval never
// comes, so no two publishers can race to write an older checkpoint over a
// newer one. All share one posix storage, whose lock serialises their
// integrations; each reads the tree's size afresh when it integrates.

// maxChunk is the largest batch the sequencer hands tessera: one entry
// bundle.
const maxChunk = 256

// never is a batch age (and checkpoint interval) that does not run out.
const never = time.Duration(math.MaxInt64)

// appenderFunc makes an appender whose queue cuts a batch at maxSize
// entries or when its first entry is maxAge old. The first call makes the
// appender that publishes checkpoints.
type appenderFunc func(maxSize uint, maxAge time.Duration) (tessera.AddFn, error)

// sequencer adds entries to the tree at the indexes the journal gave them.
// It is used by one goroutine at a time, and not again after sequence
// returned an error.
type sequencer struct {
	mk      appenderFunc
	add     [maxChunk + 1]tessera.AddFn // add[n] is the appender of batch size n, nil until made
	futures []tessera.IndexFuture
}

func newSequencer(mk appenderFunc) (*sequencer, error) {
	s := &sequencer{mk: mk, futures: make([]tessera.IndexFuture, maxChunk)}
	for size := 1; size <= maxChunk; size *= 2 {
		add, err := mk(uint(size), never)
		if err != nil {
			return nil, err
		}
		s.add[size] = add
	}
	return s, nil
}

// chunk returns how many of n (1 to maxChunk) entries go in the next
// batch, and the appender that cuts batches of that many: all n, by an
// appender of size n made now if there is none yet, or, if it cannot be
// made, the largest power of two of them.
func (s *sequencer) chunk(n int) (int, tessera.AddFn) {
	if s.add[n] == nil {
		if add, err := s.mk(uint(n), never); err == nil {
			s.add[n] = add
		}
	}
	if s.add[n] == nil {
		n = 1 << (bits.Len(uint(n)) - 1)
	}
	return n, s.add[n]
}

// sequence adds entries at indexes first, first+1, ... and returns when
// they are integrated, calling done with the tree's size after each chunk.
// An entry tessera puts anywhere else is an error (it cannot happen, see
// above; the check stays).
//
// ctx is the context the appenders run under. When it ends, sequence
// returns at once with its error, even while a chunk is in flight:
// tessera's queue worker stops with that context, and a batch it had not
// yet taken from its channel is dropped, its futures never resolved
// (storage/internal/queue.go in v1.0.4). So a chunk's futures are awaited
// aside, and that wait is abandoned when ctx ends: Log.Close cancels ctx
// and then waits for the feeder, which would otherwise wait for ever. (The
// goroutine awaiting a dropped batch stays blocked; that happens only when
// a Close ran out of time with a chunk in flight. The entries stay in the
// journal and are taken at the next Open.)
func (s *sequencer) sequence(ctx context.Context, first uint64, entries [][]byte, done func(size uint64)) error {
	for len(entries) > 0 {
		n, add := s.chunk(min(len(entries), maxChunk))
		for k := range n {
			s.futures[k] = add(ctx, tessera.NewEntry(entries[k]))
		}
		resolved := make(chan error, 1)
		go func(futures []tessera.IndexFuture, first uint64) {
			var err error
			for k, f := range futures {
				idx, ferr := f()
				if ferr == nil && idx.Index != first+uint64(k) {
					ferr = fmt.Errorf("journal entry %d was sequenced at %d", first+uint64(k), idx.Index)
				}
				if err == nil {
					err = ferr
				}
				futures[k] = nil
			}
			resolved <- err
		}(s.futures[:n], first)
		var err error
		select {
		case err = <-resolved:
		case <-ctx.Done():
			return fmt.Errorf("audit log: entries %d-%d handed to tessera and not integrated yet: %w", first, first+uint64(n)-1, ctx.Err())
		}
		if err != nil {
			return err
		}
		first += uint64(n)
		entries = entries[n:]
		if done != nil {
			done(first)
		}
	}
	return nil
}

// noPublisher is the checkpoint signer of the appenders that must not
// publish: it refuses to sign.
type noPublisher struct{ origin string }

var errNoPublisher = errors.New("audit log: this appender does not publish checkpoints")

func (s noPublisher) Name() string                    { return s.origin }
func (s noPublisher) KeyHash() uint32                 { return 0 }
func (s noPublisher) Sign(msg []byte) ([]byte, error) { return nil, errNoPublisher }
