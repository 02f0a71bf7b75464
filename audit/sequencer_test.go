package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
)

// fakeTree models tessera's queues (storage/internal/queue.go, v1.0.4)
// in front of one tree, taking every liberty their code leaves: a batch
// cut in Add because it is full is sent to the sequencing goroutine
// before Add returns; a batch cut by its timer is sent by the timer's
// goroutine, after the queue's lock is released, so here as late as
// possible: after every batch cut later (what a descheduled timer
// goroutine does). Its timers fire right after every Add that leaves
// entries queued. Deterministic: nothing runs until a future is called.
type fakeTree struct {
	mu      sync.Mutex
	batches int // cut so far
	tree    [][]byte
	sent    []*fakeBatch // in the channel to the sequencing goroutine, in order
	held    []*fakeBatch // cut by a timer, not sent yet
}

type fakeBatch struct {
	entries [][]byte
	first   uint64
	done    bool
}

type fakeQueue struct {
	tr      *fakeTree
	maxSize int
	timed   bool // its batches have an age limit
	items   [][]byte
	slots   []*fakeSlot
}

type fakeSlot struct {
	b *fakeBatch
	k int
}

// appender is an appenderFunc for the fake.
func (tr *fakeTree) appender(maxSize uint, maxAge time.Duration) (tessera.AddFn, error) {
	q := &fakeQueue{tr: tr, maxSize: int(maxSize), timed: maxAge != never}
	return q.add, nil
}

func (q *fakeQueue) add(_ context.Context, e *tessera.Entry) tessera.IndexFuture {
	tr := q.tr
	tr.mu.Lock()
	defer tr.mu.Unlock()
	slot := &fakeSlot{k: len(q.items)}
	q.items, q.slots = append(q.items, bytes.Clone(e.Data())), append(q.slots, slot)
	switch {
	case len(q.items) >= q.maxSize:
		tr.sent = append(tr.sent, q.cut())
	case q.timed:
		tr.held = append(tr.held, q.cut())
	}
	return func() (tessera.Index, error) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if slot.b == nil {
			// Still queued, and no timer will cut it: tessera's future
			// would never resolve.
			return tessera.Index{}, errors.New("fake tessera: awaited an entry that no batch will ever hold")
		}
		if !slot.b.done {
			// The held batches are sent now, newest first, and the
			// sequencing goroutine takes everything sent, in order.
			for i := len(tr.held) - 1; i >= 0; i-- {
				tr.sent = append(tr.sent, tr.held[i])
			}
			tr.held = nil
			for _, b := range tr.sent {
				b.first, b.done = uint64(len(tr.tree)), true
				tr.tree = append(tr.tree, b.entries...)
			}
			tr.sent = nil
		}
		return tessera.Index{Index: slot.b.first + uint64(slot.k)}, nil
	}
}

// cut makes a batch of what is queued (tr.mu held).
func (q *fakeQueue) cut() *fakeBatch {
	q.tr.batches++
	b := &fakeBatch{entries: q.items}
	for _, s := range q.slots {
		s.b = b
	}
	q.items, q.slots = nil, nil
	return b
}

func fakeEntries(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "entry %d", from+i)
	}
	return out
}

// feedAsBefore is how feed added a batch of journal records before the
// sequencer (669d431): all of them to one appender that cuts at 1024
// entries or BatchDelay, then every future awaited.
func feedAsBefore(ctx context.Context, add tessera.AddFn, first uint64, entries [][]byte) error {
	futures := make([]tessera.IndexFuture, len(entries))
	for i, e := range entries {
		futures[i] = add(ctx, tessera.NewEntry(e))
	}
	for i, f := range futures {
		idx, err := f()
		if err == nil && idx.Index != first+uint64(i) {
			err = fmt.Errorf("journal entry %d was sequenced at %d", first+uint64(i), idx.Index)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// TestSequencerOrder runs the sequencer and the feed loop it replaced
// against a tessera that reorders batches wherever queue.go lets it.
func TestSequencerOrder(t *testing.T) {
	sizes := []int{1, 2, 3, 7, 255, 256, 257, 1000, 1024, 5, 511, 64}
	t.Run("sequencer", func(t *testing.T) {
		tr := &fakeTree{}
		s, err := newSequencer(tr.appender)
		if err != nil {
			t.Fatal(err)
		}
		var want [][]byte
		var dones []uint64
		for _, n := range sizes {
			es := fakeEntries(len(want), n)
			if err := s.sequence(t.Context(), uint64(len(want)), es, func(size uint64) { dones = append(dones, size) }); err != nil {
				t.Fatalf("after %d entries: %v", len(want), err)
			}
			want = append(want, es...)
			if dones[len(dones)-1] != uint64(len(want)) {
				t.Fatalf("done reported %d after %d entries", dones[len(dones)-1], len(want))
			}
		}
		for i := range want {
			if !bytes.Equal(tr.tree[i], want[i]) {
				t.Fatalf("tree entry %d is %q, want %q", i, tr.tree[i], want[i])
			}
		}
		if len(tr.tree) != len(want) {
			t.Fatalf("tree holds %d entries, want %d", len(tr.tree), len(want))
		}
	})
	// The same fake catches the old loop, and the sequencer if its
	// appenders had a batch age: the test can fail.
	t.Run("feed before", func(t *testing.T) {
		tr := &fakeTree{}
		add, _ := tr.appender(1024, 100*time.Millisecond)
		err := feedAsBefore(t.Context(), add, 0, fakeEntries(0, 300))
		if err == nil || !strings.Contains(err.Error(), "journal entry 0 was sequenced at 299") {
			t.Fatalf("the old feed loop gave %v, want entry 0 sequenced last", err)
		}
	})
	t.Run("sequencer with a batch age", func(t *testing.T) {
		tr := &fakeTree{}
		s, err := newSequencer(func(maxSize uint, _ time.Duration) (tessera.AddFn, error) {
			return tr.appender(maxSize, 100*time.Millisecond)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.sequence(t.Context(), 0, fakeEntries(0, 7), nil); err == nil || !strings.Contains(err.Error(), "was sequenced at") {
			t.Fatalf("got %v, want entries out of order", err)
		}
	})
}

// TestSequencerRandomRuns: runs of random lengths, each as its chunks.
func TestSequencerRandomRuns(t *testing.T) {
	tr := &fakeTree{}
	s, err := newSequencer(tr.appender)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	next := 0
	for range 200 {
		n := 1 + r.IntN(600)
		if err := s.sequence(t.Context(), uint64(next), fakeEntries(next, n), nil); err != nil {
			t.Fatalf("run of %d from %d: %v", n, next, err)
		}
		next += n
	}
	for i, e := range tr.tree {
		if want := fmt.Sprintf("entry %d", i); string(e) != want {
			t.Fatalf("tree entry %d is %q", i, e)
		}
	}
}

// TestSequencerOneBatchARun: a run of up to maxChunk entries goes to
// tessera as one batch, a longer one as full chunks and one batch for the
// rest (the binary decomposition made one batch for each bit set in the
// count: eight for 255); and where an appender of the size cannot be made,
// as that decomposition, still in order.
func TestSequencerOneBatchARun(t *testing.T) {
	runs := []int{1, 3, 20, 50, 255, 256, 257, 600, 7}
	check := func(t *testing.T, tr *fakeTree, s *sequencer, batches func(n int) int) {
		next := 0
		for _, n := range runs {
			before := tr.batches
			if err := s.sequence(t.Context(), uint64(next), fakeEntries(next, n), nil); err != nil {
				t.Fatalf("run of %d from %d: %v", n, next, err)
			}
			if got, want := tr.batches-before, batches(n); got != want {
				t.Errorf("a run of %d entries went to tessera as %d batches, want %d", n, got, want)
			}
			next += n
		}
		for i, e := range tr.tree {
			if want := fmt.Sprintf("entry %d", i); string(e) != want {
				t.Fatalf("tree entry %d is %q", i, e)
			}
		}
		if len(tr.tree) != next {
			t.Fatalf("tree holds %d entries, want %d", len(tr.tree), next)
		}
	}
	t.Run("one a run", func(t *testing.T) {
		tr := &fakeTree{}
		s, err := newSequencer(tr.appender)
		if err != nil {
			t.Fatal(err)
		}
		check(t, tr, s, func(n int) int { return (n + maxChunk - 1) / maxChunk })
	})
	t.Run("powers of two only", func(t *testing.T) {
		tr := &fakeTree{}
		s, err := newSequencer(func(maxSize uint, maxAge time.Duration) (tessera.AddFn, error) {
			if maxSize&(maxSize-1) != 0 {
				return nil, errors.New("no appender of this size")
			}
			return tr.appender(maxSize, maxAge)
		})
		if err != nil {
			t.Fatal(err)
		}
		check(t, tr, s, func(n int) int { return n/maxChunk + bits.OnesCount(uint(n%maxChunk)) })
	})
}

// TestTreeOrderIsJournalOrder appends runs of every length from several
// writers through the real tessera appenders, with batches gathered for a
// millisecond, and reads every entry back at the index Append returned
// for it; the checkpoint, published by one appender only, never shrinks.
func TestTreeOrderIsJournalOrder(t *testing.T) {
	k := testKeys(t)
	cfg := testConfig(t, k, t.TempDir(), nil)
	cfg.BatchDelay = time.Millisecond
	l := openLog(t, cfg)
	defer closeLog(t, l)
	ctx := t.Context()

	var mu sync.Mutex
	keyAt := map[uint64]string{}
	const writers, rounds = 4, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range rounds {
				evs := make([]Event, 1+r.IntN(300))
				for j := range evs {
					evs[j] = event(0)
					evs[j].Key = fmt.Sprintf("w%d/r%d/%d", w, i, j)
				}
				last, err := l.Append(ctx, evs...)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for j := range evs {
					keyAt[last-uint64(len(evs)-1-j)] = evs[j].Key
				}
				mu.Unlock()
			}
		})
	}
	stop := make(chan struct{})
	watched := make(chan error, 1)
	go func() {
		var prev uint64
		for {
			select {
			case <-stop:
				watched <- nil
				return
			case <-time.After(20 * time.Millisecond):
			}
			_, cp, err := l.Checkpoint(ctx)
			if err != nil {
				continue // none published yet
			}
			if cp.Size < prev {
				watched <- fmt.Errorf("checkpoint went from %d entries back to %d", prev, cp.Size)
				return
			}
			prev = cp.Size
		}
	}()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	n := uint64(0)
	err := l.Events(ctx, 0, func(i uint64, e Event) error {
		if e.Key != keyAt[i] {
			return fmt.Errorf("tree entry %d is %q, the journal gave that index to %q", i, e.Key, keyAt[i])
		}
		n++
		return nil
	})
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if n != uint64(len(keyAt)) {
		t.Fatalf("read %d entries, appended %d", n, len(keyAt))
	}
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
}
