package audit

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
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
