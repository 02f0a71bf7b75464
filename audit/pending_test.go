package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// memPending is an index's store of pending entries, in memory, whose
// reads and removals can be made to fail (as a crash at that point would
// leave things).
type memPending struct {
	mu         sync.Mutex
	seq        uint64
	keys       []uint64
	entries    [][]byte
	watermark  uint64
	haveW      bool
	failRead   bool
	failRemove bool
}

var errInjected = errors.New("injected failure")

// commit is an index write carrying entry.
func (p *memPending) commit(entry []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	p.keys = append(p.keys, p.seq)
	p.entries = append(p.entries, entry)
}

func (p *memPending) PendingAudit(ctx context.Context, after uint64, max int) ([]uint64, [][]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failRead {
		return nil, nil, errInjected
	}
	var keys []uint64
	var entries [][]byte
	for i, k := range p.keys {
		if k > after && len(keys) < max {
			keys, entries = append(keys, k), append(entries, p.entries[i])
		}
	}
	return keys, entries, nil
}

func (p *memPending) DrainedAudit(ctx context.Context, through, watermark uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failRemove {
		return errInjected
	}
	for len(p.keys) > 0 && p.keys[0] <= through {
		p.keys, p.entries = p.keys[1:], p.entries[1:]
	}
	p.watermark, p.haveW = watermark, true
	return nil
}

func (p *memPending) AuditWatermark(ctx context.Context) (uint64, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.watermark, p.haveW, nil
}

func (p *memPending) set(read, remove bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failRead, p.failRemove = read, remove
}

func (p *memPending) held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.keys)
}

// keysInLog returns the keys of the log's events, in log order.
func keysInLog(t *testing.T, l *Log) []string {
	t.Helper()
	var keys []string
	if err := l.Events(t.Context(), 0, func(_ uint64, e Event) error { keys = append(keys, e.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// A crash between an index commit and the journal taking its entry, or
// between the journal taking it and the index forgetting it, leaves the
// entry on the log exactly once after the next opening, and in the order
// it was committed in.
func TestPendingTakenOnceAfterCrash(t *testing.T) {
	for _, c := range []struct {
		name string
		// crash leaves l (open, attached to p, entries committed) as a
		// crash at that point would.
		crash func(t *testing.T, l *Log, p *memPending)
	}{
		{"before the journal took them", func(t *testing.T, l *Log, p *memPending) {
			p.set(true, false) // the log never reads them before it stops
		}},
		{"after the journal took them, before the index forgot them", func(t *testing.T, l *Log, p *memPending) {
			p.set(false, true)
			if err := l.drain(t.Context()); !errors.Is(err, errInjected) {
				t.Fatalf("drain: %v, want the injected removal failure", err)
			}
			if l.Appended() != 5 {
				t.Fatalf("the journal holds %d entries, want 5", l.Appended())
			}
		}},
		{"after the index forgot some of them", func(t *testing.T, l *Log, p *memPending) {
			if err := l.drain(t.Context()); err != nil {
				t.Fatal(err)
			}
			sealCommit(t, l, p, "p3")
			sealCommit(t, l, p, "p4")
			p.set(false, true)
			if err := l.drain(t.Context()); !errors.Is(err, errInjected) {
				t.Fatalf("drain: %v, want the injected removal failure", err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := testKeys(t)
			cfg := testConfig(t, k, t.TempDir(), nil)
			p := &memPending{}
			l := openLog(t, cfg)
			if err := l.AttachIndex(t.Context(), p); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if _, err := l.Append(t.Context(), Event{Kind: "object.put", Key: fmt.Sprint("a", i)}); err != nil {
					t.Fatal(err)
				}
			}
			sealCommit(t, l, p, "p0")
			sealCommit(t, l, p, "p1")
			c.crash(t, l, p)
			closeLog(t, l)

			p.set(false, false)
			l = openLog(t, cfg)
			defer closeLog(t, l)
			if err := l.AttachIndex(t.Context(), p); err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprint(keysInLog(t, l))
			want := "[a0 a1 a2 p0 p1]"
			if c.name == "after the index forgot some of them" {
				want = "[a0 a1 a2 p0 p1 p3 p4]"
			}
			if got != want {
				t.Fatalf("log after the crash holds %s, want %s", got, want)
			}
			if n := p.held(); n != 0 {
				t.Fatalf("the index still holds %d entries the log took", n)
			}
		})
	}
}

// sealCommit commits an entry for key with an index write.
func sealCommit(t *testing.T, l *Log, p *memPending, key string) {
	t.Helper()
	e, err := l.IndexEntry(p, Event{Kind: "object.put", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	p.commit(e)
	l.Committed()
}

// An entry committed with the index before an Append is called precedes
// the Append's entries on the log, whoever appends; and every committed
// entry is on the log once.
func TestPendingPrecedesLaterAppends(t *testing.T) {
	k := testKeys(t)
	l := openLog(t, testConfig(t, k, t.TempDir(), nil))
	defer closeLog(t, l)
	p := &memPending{}
	if err := l.AttachIndex(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				sealCommit(t, l, p, fmt.Sprintf("c%d.%d", w, i))
				if i%4 == 3 {
					if _, err := l.Append(t.Context(), Event{Kind: "config.change", Key: fmt.Sprintf("a%d.%d", w, i)}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	pos := map[string]int{}
	for i, key := range keysInLog(t, l) {
		if _, dup := pos[key]; dup {
			t.Fatalf("%s is on the log twice", key)
		}
		pos[key] = i
	}
	for w := range writers {
		for i := range each {
			c := fmt.Sprintf("c%d.%d", w, i)
			if _, ok := pos[c]; !ok {
				t.Fatalf("committed entry %s is not on the log", c)
			}
			if i%4 == 3 {
				a := fmt.Sprintf("a%d.%d", w, i)
				if pos[a] < pos[c] {
					t.Fatalf("%s (appended after %s was committed) is at %d, before it (%d)", a, c, pos[a], pos[c])
				}
			}
		}
	}
	if len(pos) != writers*each+writers*each/4 {
		t.Fatalf("the log holds %d entries, want %d", len(pos), writers*each+writers*each/4)
	}
}

// watermarkHook is a memPending whose AuditWatermark, which AttachIndex
// calls while no index is attached, first runs hook.
type watermarkHook struct {
	*memPending
	hook func()
}

func (p *watermarkHook) AuditWatermark(ctx context.Context) (uint64, bool, error) {
	p.hook()
	return p.memPending.AuditWatermark(ctx)
}

type heldDrain struct{}

// A drain that found an index attached when it began, and comes to drain
// it while another is being attached (the first let go, the second not
// yet taken), does nothing and fails nothing. It dereferenced the missing
// index before, which broke housekeeping's tests now and then.
func TestDrainWhileAnotherIndexIsAttached(t *testing.T) {
	k := testKeys(t)
	l := openLog(t, testConfig(t, k, t.TempDir(), nil))
	defer closeLog(t, l)
	a := &memPending{}
	if err := l.AttachIndex(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	// An entry committed with a, which the held drain's journal append
	// takes; a then refuses to forget it (as a failing index would), so
	// that it is still to be drained when a is let go.
	e, err := l.IndexEntry(a, Event{Kind: "object.put", Key: "a0"})
	if err != nil {
		t.Fatal(err)
	}
	a.commit(e)
	a.set(false, true)
	// The held drain stops after its journal append, before it looks
	// at the index again, until b's attachment has let a go.
	atHook, proceed, finished := make(chan struct{}), make(chan struct{}), make(chan struct{})
	hook := func(ctx context.Context) {
		if ctx.Value(heldDrain{}) != nil {
			close(atHook)
			<-proceed
		}
	}
	testHookDrainAppended.Store(&hook)
	defer testHookDrainAppended.Store(nil)
	var drainErr error
	go func() {
		defer close(finished)
		drainErr = l.drain(context.WithValue(t.Context(), heldDrain{}, true))
	}()
	<-atHook
	b := &watermarkHook{memPending: &memPending{}, hook: func() {
		close(proceed)
		<-finished
	}}
	if err := l.AttachIndex(t.Context(), b); err != nil {
		t.Fatalf("attaching b: %v", err)
	}
	if drainErr != nil {
		t.Fatalf("the drain during the attachment: %v", drainErr)
	}
	// b is attached and drained as any index.
	if e, err = l.IndexEntry(b, Event{Kind: "object.put", Key: "b0"}); err != nil {
		t.Fatal(err)
	}
	b.commit(e)
	l.Committed()
	if err := l.drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(keysInLog(t, l)); got != "[a0 b0]" {
		t.Fatalf("the log holds %s, want [a0 b0]", got)
	}
}
