package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
)

// slowSite is a site whose every Put takes at least delay, and whose Puts
// wait while it is held.
type slowSite struct {
	site.Site
	delay time.Duration

	mu      sync.Mutex
	hold    chan struct{} // non-nil: Puts wait until it is closed
	waiting chan struct{} // closed when a Put waits on hold
	// timedOut counts the Puts that gave up waiting on hold.
	timedOut atomic.Int64
}

func (s *slowSite) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	s.mu.Lock()
	hold, waiting := s.hold, s.waiting
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-waiting:
		default:
			close(waiting)
		}
		select {
		case <-hold:
		case <-ctx.Done():
			s.timedOut.Add(1)
			return ctx.Err()
		}
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Site.Put(ctx, name, r, size)
}

// holdPuts makes Puts wait from now on, and returns a channel closed when
// one does and a function that lets them go.
func (s *slowSite) holdPuts() (<-chan struct{}, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hold, waiting := make(chan struct{}), make(chan struct{})
	s.hold, s.waiting = hold, waiting
	return waiting, func() {
		s.mu.Lock()
		s.hold = nil
		s.mu.Unlock()
		close(hold)
	}
}

// TestSlowSiteCatchesUp: a site too slow to take the whole backlog within
// one copy deadline still gets the log, step by step, each step within
// the deadline; and while it copies, copies to another site go on.
func TestSlowSiteCatchesUp(t *testing.T) {
	k := testKeys(t)
	root := t.TempDir()
	da, err := dir.New(filepath.Join(root, "a"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := dir.New(filepath.Join(root, "b"))
	if err != nil {
		t.Fatal(err)
	}
	// 8192 entries, one bundle a step: 32 bundles, 32 level-0 tiles and
	// more, each Put at least 200ms, so the backlog takes at least 12.8s,
	// more than the deadline, and a step (two or three Puts) a sixteenth
	// of it.
	const n, timeout, delay = 8192, 10 * time.Second, 200 * time.Millisecond
	slow := &slowSite{Site: da, delay: delay}
	cfg := testConfig(t, k, filepath.Join(root, "node"), map[string]site.Site{"a": slow, "b": db})
	cfg.CopyTimeout = timeout
	cfg.copyStep = 1
	if puts := 2 * n / 256; time.Duration(puts)*delay <= timeout {
		t.Fatalf("the backlog (%d Puts of %v) fits in the deadline %v: the test proves nothing", puts, delay, timeout)
	}
	// Site a waits from the start, so that site b (on a loaded machine)
	// takes the backlog before anything is measured.
	_, release := slow.holdPuts()
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	l := openLog(t, cfg)
	defer closeLog(t, l)
	ctx := t.Context()

	evs := make([]Event, n)
	for i := range evs {
		evs[i] = event(i)
	}
	last, err := l.Append(ctx, evs...)
	if err != nil {
		t.Fatal(err)
	}
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := l.Sync(bctx, last+1, []string{"b"}); err != nil {
		t.Fatal(err)
	}

	// With site a in the middle of a Put (a new one, far from its
	// deadline), a copy to b of a later entry must not wait for it.
	release()
	waiting, release := slow.holdPuts()
	select {
	case <-waiting:
	case <-time.After(time.Minute):
		t.Fatal("no copy to site a began")
	}
	before := slow.timedOut.Load()
	more, err := l.Append(ctx, event(n))
	if err != nil {
		t.Fatal(err)
	}
	err = l.Sync(bctx, more+1, []string{"b"})
	gaveUp := slow.timedOut.Load() - before
	release()
	released = true
	if err != nil {
		t.Fatalf("copy to site b while site a is slow: %v", err)
	}
	if gaveUp != 0 {
		t.Fatalf("the copy to site b waited for site a's held Put to time out")
	}
	for _, st := range l.Sites() {
		if st.Site == "a" && st.Size > last {
			t.Fatalf("site a holds %d entries already: the test did not hold it", st.Size)
		}
	}

	// Site a catches up: Sync again after a failed step (there should be
	// none), until a deadline.
	actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var errs []error
	for {
		err := l.Sync(actx, more+1, []string{"a"})
		if err == nil {
			break
		}
		if actx.Err() != nil {
			t.Fatalf("site a never caught up: %v (earlier: %v)", err, errs)
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		t.Errorf("copy steps failed on the way (each should fit its deadline): %v", errs)
	}
	rep, err := l.CheckCopies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]string{}
	for _, c := range rep.Copies {
		sizes[c.Site] = fmt.Sprintf("%d %q", c.Size, c.Problem)
	}
	want := fmt.Sprintf("%d %q", n+1, "")
	if sizes["a"] != want || sizes["b"] != want || len(rep.Problems) != 0 {
		t.Fatalf("copies: %v, problems %v; want %s on both", sizes, rep.Problems, want)
	}
	// No partial tile or bundle is left under a full one.
	for _, s := range []site.Site{da, db} {
		names := map[string]bool{}
		if err := s.List(ctx, SitePrefix, func(i site.Info) error { names[i.Name] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		for name := range names {
			if full, _, ok := strings.Cut(name, ".p/"); ok && names[full] {
				t.Errorf("%s is left under %s", name, full)
			}
		}
	}
}

// countingSite records the names a copier writes and removes, and fails
// the Puts fail names (while set).
type countingSite struct {
	site.Site

	mu      sync.Mutex
	put     []string
	deleted []string
	fail    func(name string) error
}

func (s *countingSite) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(name); err != nil {
			return err
		}
	}
	if err := s.Site.Put(ctx, name, r, size); err != nil {
		return err
	}
	s.mu.Lock()
	s.put = append(s.put, name)
	s.mu.Unlock()
	return nil
}

func (s *countingSite) Delete(ctx context.Context, name string) error {
	if err := s.Site.Delete(ctx, name); err != nil {
		return err
	}
	s.mu.Lock()
	s.deleted = append(s.deleted, name)
	s.mu.Unlock()
	return nil
}

// take returns the names written and removed since the last take.
func (s *countingSite) take() (put, deleted []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	put, deleted = s.put, s.deleted
	s.put, s.deleted = nil, nil
	return put, deleted
}

func (s *countingSite) failPuts(fail func(name string) error) {
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
}

// appendAndSync appends n events and waits until site id holds them.
func appendAndSync(t *testing.T, l *Log, id string, from, n int) uint64 {
	t.Helper()
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = event(from + i)
	}
	last, err := l.Append(t.Context(), evs...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := l.Sync(ctx, last+1, []string{id}); err != nil {
		t.Fatal(err)
	}
	return last + 1
}

// checkCopiesClean fails the test unless every site's copy verifies.
func checkCopiesClean(t *testing.T, l *Log) {
	t.Helper()
	rep, err := l.CheckCopies(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Fatalf("the sites' copies do not verify: %v", rep.Problems)
	}
	for _, c := range rep.Copies {
		if c.Problem != "" {
			t.Fatalf("site %s: %s", c.Site, c.Problem)
		}
	}
}

// A copy writes the partial tiles and bundle that changed, not again
// those the site holds from the last copy (the upper levels' tiles);
// after a failed copy, and after a restart, it trusts nothing it did not
// write since, so a site that lost one gets it back before a checkpoint
// covers it.
func TestCopyWritesOnlyChangedPartials(t *testing.T) {
	k := testKeys(t)
	root := t.TempDir()
	ds, err := dir.New(filepath.Join(root, "a"))
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingSite{Site: ds}
	cfg := testConfig(t, k, filepath.Join(root, "node"), map[string]site.Site{"a": cs})
	cfg.CopyInterval = time.Hour // copies only when Sync urges them
	l := openLog(t, cfg)
	defer func() {
		if l != nil {
			closeLog(t, l)
		}
	}()

	// 300 entries: a full bundle and level-0 tile, a partial bundle and
	// level-0 tile, and level 1's partial tile of width 1.
	const level1 = "log/tile/1/000.p/1"
	n := appendAndSync(t, l, "a", 0, 300)
	put, _ := cs.take()
	if !slices.Contains(put, level1) {
		t.Fatalf("the first copy wrote %v, not %s", put, level1)
	}
	// More entries within the same bundle: the level-1 tile is the same.
	for i := range 3 {
		n = appendAndSync(t, l, "a", int(n), 5+i)
		put, _ = cs.take()
		for _, name := range put {
			if name != SitePrefix+"checkpoint" && !strings.HasPrefix(name, "log/tile/entries/001.p/") && !strings.HasPrefix(name, "log/tile/0/001.p/") {
				t.Errorf("copy %d to %d entries wrote %s again, which the site holds", i, n, name)
			}
		}
		if !slices.Contains(put, SitePrefix+"checkpoint") {
			t.Fatalf("copy %d wrote no checkpoint: %v", i, put)
		}
	}
	checkCopiesClean(t, l)

	// A copy that fails before its checkpoint, on a site that then lost
	// its level-1 tile (restored from a backup): the next copy writes it
	// again before the checkpoint.
	refused := errors.New("refused")
	cs.failPuts(func(name string) error {
		if name == SitePrefix+"checkpoint" {
			return refused
		}
		return nil
	})
	evs := []Event{event(int(n)), event(int(n) + 1)}
	last, err := l.Append(t.Context(), evs...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := l.Sync(ctx, last+1, []string{"a"}); !errors.Is(err, refused) {
		t.Fatalf("Sync with the site refusing its checkpoint: %v, want %v", err, refused)
	}
	if err := ds.Delete(ctx, level1); err != nil {
		t.Fatal(err)
	}
	cs.failPuts(nil)
	n = appendAndSync(t, l, "a", int(last+1), 1)
	if put, _ = cs.take(); !slices.Contains(put, level1) {
		t.Fatalf("the copy after a failed one wrote %v, not %s, which the site lost", put, level1)
	}
	checkCopiesClean(t, l)

	// After a restart, the same; here the last process stopped in the
	// middle of a copy (its partial files written, the site refusing its
	// checkpoint, as if it had crashed before writing it).
	cs.failPuts(func(name string) error {
		if name == SitePrefix+"checkpoint" {
			return refused
		}
		return nil
	})
	if _, err := l.Append(t.Context(), event(int(n))); err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)
	l = nil
	if put, _ = cs.take(); !slices.ContainsFunc(put, func(name string) bool { return strings.HasPrefix(name, "log/tile/entries/001.p/") }) {
		t.Fatalf("the last copy before closing wrote %v, no partial bundle: it did not stop midway", put)
	}
	if err := ds.Delete(ctx, level1); err != nil {
		t.Fatal(err)
	}
	cs.failPuts(nil)
	l = openLog(t, cfg)
	appendAndSync(t, l, "a", int(n)+1, 1)
	if put, _ = cs.take(); !slices.Contains(put, level1) {
		t.Fatalf("the first copy after a restart wrote %v, not %s, which the site lost", put, level1)
	}
	checkCopiesClean(t, l)
}

// The partial bundles and tiles a full one replaces are all removed once
// the full one is on the site, and nothing else is.
func TestCopyRemovesReplacedPartials(t *testing.T) {
	k := testKeys(t)
	root := t.TempDir()
	ds, err := dir.New(filepath.Join(root, "a"))
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingSite{Site: ds}
	cfg := testConfig(t, k, filepath.Join(root, "node"), map[string]site.Site{"a": cs})
	cfg.CopyInterval = time.Hour
	l := openLog(t, cfg)
	defer closeLog(t, l)
	n := appendAndSync(t, l, "a", 0, 10)
	var written []string
	for n < 250 {
		n = appendAndSync(t, l, "a", int(n), 30)
		put, _ := cs.take()
		written = append(written, put...)
	}
	n = appendAndSync(t, l, "a", int(n), 300-int(n))
	// Sync returns once the site's checkpoint covers the entries; the
	// copier removes the replaced partial ones after that.
	awaitClean(t, l, "a", n)
	put, deleted := cs.take()
	written = append(written, put...)
	var partials []string
	for _, name := range written {
		if strings.HasPrefix(name, "log/tile/entries/000.p/") || strings.HasPrefix(name, "log/tile/0/000.p/") {
			partials = append(partials, name)
		}
	}
	slices.Sort(partials)
	slices.Sort(deleted)
	if len(partials) < 16 || !slices.Equal(slices.Compact(partials), deleted) {
		t.Fatalf("removed %v, want the partial ones the full bundle and tile replaced: %v", deleted, partials)
	}
	if err := ds.List(t.Context(), SitePrefix, func(i site.Info) error {
		if strings.HasPrefix(i.Name, "log/tile/entries/000.p/") || strings.HasPrefix(i.Name, "log/tile/0/000.p/") {
			t.Errorf("%s is left beside the full one", i.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	checkCopiesClean(t, l)
}

// awaitClean waits until the copier has removed from site id the partial
// tiles and bundles that full ones of a tree of size entries replaced (its
// clean-up, which runs after the checkpoint that Sync waits for).
func awaitClean(t *testing.T, l *Log, id string, size uint64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		c := l.copies
		c.mu.Lock()
		st := c.sites[id]
		done := st != nil && st.garbage >= size
		c.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("site %s: the copier's clean-up did not reach %d entries in a minute", id, size)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With a copy interval longer than the test, a Sync still gets its entry
// copied (it urges a copy once a checkpoint covers the entry, rather than
// wait for the next round), and a shorter interval set while the log runs
// starts the rounds that copy an entry nobody waits for.
func TestCopyIntervalSetWhileRunning(t *testing.T) {
	k := testKeys(t)
	root := t.TempDir()
	ds, err := dir.New(filepath.Join(root, "a"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, k, filepath.Join(root, "node"), map[string]site.Site{"a": ds})
	cfg.CopyInterval = time.Hour
	l := openLog(t, cfg)
	defer closeLog(t, l)
	if got := l.CopyInterval(); got != time.Hour {
		t.Fatalf("CopyInterval %v, want 1h", got)
	}
	// Sync: at once, whatever the interval (each of these would wait an
	// hour for the round otherwise).
	n := uint64(0)
	for i := range 5 {
		n = appendAndSync(t, l, "a", int(n), 1+i)
	}
	// An entry nobody waits for reaches the site once the interval is
	// short.
	last, err := l.Append(t.Context(), event(int(n)))
	if err != nil {
		t.Fatal(err)
	}
	l.SetCopyInterval(150 * time.Millisecond)
	if got := l.CopyInterval(); got != 150*time.Millisecond {
		t.Fatalf("CopyInterval %v after setting 150ms", got)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		sts := l.Sites()
		if len(sts) == 1 && sts[0].Known && sts[0].Size > last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site holds %+v a minute after the interval was set to 150ms, want entry %d", sts, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep, err := l.CheckCopies(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The window it reports: BatchDelay (default 100ms) + the checkpoint
	// interval (100ms here) + the copy interval.
	if rep.CopyInterval != "150ms" || rep.CopyWindow != "350ms" {
		t.Fatalf("CheckCopies reports copy interval %q, window %q; want 150ms, 350ms", rep.CopyInterval, rep.CopyWindow)
	}
	// Shorter than a checkpoint interval is a checkpoint interval: a copy
	// more often finds nothing new.
	l.SetCopyInterval(time.Millisecond)
	if got := l.CopyInterval(); got != cfg.CheckpointInterval {
		t.Fatalf("CopyInterval %v after setting 1ms, want the checkpoint interval %v", got, cfg.CheckpointInterval)
	}
}
